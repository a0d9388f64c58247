"""The kernel engine's dense Cholesky factorization (C in ``_dense.c``).

:func:`cholesky_lower` factors the Schur complement that
:class:`hierlm.lmm.deviance.LargeProfiledDeviance` builds (row-major, lower
triangle) in place, as LAPACK's ``dpotrf`` on its transpose does, but by a
recursion that trades the triangular solves for triangular products
(``_dense.c`` says why that is accurate here and what it saves).  The BLAS
and LAPACK routines are scipy's own, reached through the function pointers
scipy publishes for compiled code (``scipy.linalg.cython_blas`` and
``cython_lapack``), so nothing is linked at install.
"""

from __future__ import annotations

import ctypes

import numpy as np
from scipy.linalg import cython_blas, cython_lapack, lapack

try:
    from . import _dense
except ImportError:  # pragma: no cover  (a source tree used without installing it)
    _dense = None

# Leaf size of the recursion: LAPACK's own factorization below it (96-128
# were fastest for 600 to 2,500 columns on two cores, ad hoc; at 5,000,
# 256 by 3%).
LEAF = 128
# Smallest random-effects block factored by the recursion: below about 500
# columns dpotrf is as fast or faster (300: 0.42 ms against 0.49).
MIN_NZ = 512
# Largest random-effects block factored by the recursion: its inverse
# blocks need a workspace of that size squared (128 MB here); above it,
# dpotrf, which is as fast at those sizes (its products dominate).
MAX_NZ = 4096


class _Lapack(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in ("potrf", "trtri", "lacpy", "trmm", "trsm", "syrk")]


def _address(module, name: str) -> int:
    capsule = module.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get(capsule, get_name(capsule))


def _load():
    if _dense is None:  # pragma: no cover
        return None, None
    lib = ctypes.CDLL(_dense.__file__)
    lib.hl_cholesky.argtypes = [ctypes.POINTER(_Lapack), ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                ctypes.c_int, ctypes.c_void_p]
    lib.hl_cholesky.restype = ctypes.c_int
    routines = _Lapack(_address(cython_lapack, "dpotrf"), _address(cython_lapack, "dtrtri"),
                       _address(cython_lapack, "dlacpy"), _address(cython_blas, "dtrmm"),
                       _address(cython_blas, "dtrsm"), _address(cython_blas, "dsyrk"))
    return lib, routines


_LIB, _ROUTINES = _load()


class Workspace:
    """The recursion's workspace for one engine (``nz x nz`` doubles), reused
    from one factorization to the next."""

    def __init__(self, nz: int):
        self.nz = nz
        self.W = np.empty((nz, nz))


def recursion_applies(nz: int) -> bool:
    """Whether a random-effects block of ``nz`` columns is factored by the
    recursion (built, and between MIN_NZ and MAX_NZ) rather than dpotrf."""
    return _LIB is not None and MIN_NZ <= nz <= MAX_NZ


def workspace_for(nz: int) -> Workspace | None:
    """The workspace :func:`cholesky_lower` needs for a block of ``nz``
    random effects, or None where dpotrf factors it."""
    return Workspace(nz) if recursion_applies(nz) else None


def cholesky_lower(S: np.ndarray, nz: int, work: Workspace | None) -> int:
    """In place: the lower triangle of the row-major ``S`` becomes ``L`` with
    ``S = L L'`` (the strict upper triangle is neither read nor written).

    With a ``work`` (:func:`workspace_for`), the first ``nz`` columns (the
    random effects, where ``S >= I``) go by the recursion of ``_dense.c``
    and the rest by a triangular solve; with None, LAPACK's ``dpotrf``.

    Returns
    -------
    int
        0, or LAPACK's ``info``: the 1-based column where ``S`` is not
        positive definite (``L`` is then partly overwritten).
    """
    if work is None or S.shape[0] == 0:
        _, info = lapack.dpotrf(S.T, lower=0, clean=0, overwrite_a=1)
        return int(info)
    if not (S.flags.c_contiguous and S.dtype == np.float64 and S.shape[0] == S.shape[1]):
        raise ValueError("cholesky_lower needs a square, C-ordered float64 matrix")
    if work.nz != nz or nz > S.shape[0]:
        raise ValueError(f"workspace for {work.nz} columns, asked to factor {nz} of {S.shape[0]}")
    m = S.shape[0]
    # S row-major lower = S.T column-major upper, leading dimension m
    return int(_LIB.hl_cholesky(ctypes.byref(_ROUTINES), S.ctypes.data, m, m, nz, LEAF, work.W.ctypes.data))
