"""The engine posterior's compiled kernels (:mod:`hierlm.bayes.marginal`).

The density, its gradient, the exact draws of beta and b and nutpie's C
callbacks are C (``hierlm/bayes/_kernels.c``), compiled when the package is
installed and reached here through ctypes.  They were numba functions,
which compiled at the first engine posterior of a machine: 13 of the 16 s
of a first ``hierlm demo`` (profiled), now nothing.  Every model is one
float64 buffer (``hierlm.bayes.marginal.EnginePosterior._buf``), the same one
nutpie hands the callbacks.
"""

from __future__ import annotations

import ctypes
from math import lgamma

import numpy as np

from ..errors import HierlmError

_LOG2PI = np.log(2.0 * np.pi)
# prior kinds of the compiled density (pack_prior; the enum in _kernels.c)
_FLAT, _NORMAL, _STUDENT, _HALFNORMAL, _HALFCAUCHY, _EXPONENTIAL = range(6)


try:
    from . import _kernels
except ImportError:  # pragma: no cover  (a source tree used without installing it)
    _kernels = None


def _load() -> ctypes.CDLL:
    if _kernels is None:  # pragma: no cover
        raise HierlmError("hierlm's compiled kernels (hierlm/bayes/_kernels.c) are not built: install the package "
                          "(pip install -e . in a clone), which compiles them")
    lib = ctypes.CDLL(_kernels.__file__)
    f64 = np.ctypeslib.ndpointer(dtype=np.float64, flags="C_CONTIGUOUS")
    u8 = np.ctypeslib.ndpointer(dtype=np.uint8, flags="C_CONTIGUOUS")
    i64, c_int = ctypes.c_int64, ctypes.c_int
    lib.hl_logp.argtypes = [f64, f64, c_int, ctypes.POINTER(ctypes.c_double), f64]
    lib.hl_logp.restype = c_int
    lib.hl_draw.argtypes = [f64, i64, f64, f64, f64, f64, f64, f64, f64, u8]
    lib.hl_draw.restype = c_int
    lib.hl_corr_cholesky_many.argtypes = [f64, i64, i64, f64]
    lib.hl_corr_cholesky_many.restype = c_int
    return lib


_LIB = _load()


def _check(rc: int) -> None:
    if rc < 0:  # pragma: no cover
        raise MemoryError("the engine posterior's kernel could not allocate its workspace")


def pack_prior(prior) -> np.ndarray:
    """A prior as a row for the compiled density: kind code, then
    (loc, scale, nu, log normalizing constant, rate).  The same numbers as
    :meth:`hierlm.priors.Prior.logpdf` (by closed forms: scipy.stats' checks
    cost ~0.2 ms a call, and the sampler evaluates the density at every
    gradient)."""
    par, fam = prior.params, prior.family
    loc, scale, nu, c, lam = 0.0, 1.0, 1.0, 0.0, 0.0
    if fam == "Flat":
        code = _FLAT
    elif fam == "Normal":
        code, loc, scale = _NORMAL, par["mu"], par["sigma"]
        c = -0.5 * _LOG2PI - np.log(scale)
    elif fam in ("StudentT", "HalfStudentT"):
        code, loc, scale, nu = _STUDENT, par.get("mu", 0.0), par["sigma"], par["nu"]
        c = (lgamma((nu + 1) / 2) - lgamma(nu / 2) - 0.5 * np.log(nu * np.pi) - np.log(scale)
             + (np.log(2.0) if fam == "HalfStudentT" else 0.0))
    elif fam == "HalfNormal":
        code, scale = _HALFNORMAL, par["sigma"]
        c = np.log(2.0) - 0.5 * _LOG2PI - np.log(scale)
    elif fam == "HalfCauchy":
        code, scale = _HALFCAUCHY, par["beta"]
        c = np.log(2.0) - np.log(np.pi) - np.log(scale)
    elif fam == "Exponential":
        code, lam = _EXPONENTIAL, par["lam"]
        c = np.log(lam)
    else:  # pragma: no cover  (Prior validates families)
        raise ValueError(f"no density for {fam}")
    return np.array([code, loc, scale, nu, c, lam], dtype=float)


def _expect(name: str, arr: np.ndarray, shape: tuple) -> None:
    """The C kernels read and write by the model buffer's sizes: an array of another
    shape would be read or written past its end, so it is refused here."""
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}; the model's kernels need {shape}")


def _sizes(buf: np.ndarray) -> tuple[int, int, int, int, int]:
    """(levels, p1, R, q_rest, size) from the model buffer's header (layout in _kernels.c)."""
    return int(buf[1]), int(buf[2]), int(buf[3]), int(buf[4]), int(buf[9])


def marginal_logp(buf: np.ndarray, phi: np.ndarray, grad: bool = True):
    """Log marginal posterior at ``phi`` and its gradient (zeros when not
    ``grad``) for the model packed in ``buf``; returns ``(logp, gradient,
    ok)``, ``ok`` False where the density does not exist (an extreme point)."""
    phi = np.ascontiguousarray(phi, dtype=float)
    _expect("phi", phi, (_sizes(buf)[4],))
    g = np.zeros(phi.size)
    val = ctypes.c_double()
    rc = _LIB.hl_logp(buf, phi, int(bool(grad)), ctypes.byref(val), g)
    _check(rc)
    return val.value, g, rc == 0


def draw_effects(buf: np.ndarray, phis: np.ndarray, Zb: np.ndarray, Zr: np.ndarray, Z1: np.ndarray):
    """Exact draws of beta and b for each row of ``phis``, from standard
    normals ``Zb`` (S, p), ``Zr`` (S, q_rest), ``Z1`` (S, levels, p1):
    ``beta ~ N(beta^, H^-1)``, then the rest's ``u_r | beta`` (the first
    term integrated out: the reduced factor), then level by level
    ``u_1i | u_r, beta ~ N(M_i^-1 T1' A1r_i [-Lambda_r u_r; -beta; 1], sigma^2 M_i^-1)``.
    Returns (beta (S, p), b of the rest (S, q_rest), b of the first term
    (S, levels, p1), ok per draw)."""
    phis = np.ascontiguousarray(phis, dtype=float)
    Zb, Zr, Z1 = (np.ascontiguousarray(z, dtype=float) for z in (Zb, Zr, Z1))
    l1, p1, R, qr, size = _sizes(buf)
    S = phis.shape[0]
    for name, arr, shape in (("phis", phis, (S, size)), ("Zb", Zb, (S, R - qr - 1)), ("Zr", Zr, (S, qr)),
                             ("Z1", Z1, (S, l1, p1))):
        _expect(name, arr, shape)
    # the kernel writes every entry (zeros where a draw has no factor)
    beta, b_rest, b_first = np.empty(Zb.shape), np.empty(Zr.shape), np.empty(Z1.shape)
    good = np.empty(S, dtype=np.uint8)
    rc = _LIB.hl_draw(buf, S, phis, Zb, Zr, Z1, beta, b_rest, b_first, good)
    _check(rc)
    return beta, b_rest, b_first, good.astype(bool)


def corr_cholesky_many(W: np.ndarray, p: int) -> np.ndarray:
    """Cholesky factors of the correlation matrices of many free vectors (rows of W)."""
    W = np.ascontiguousarray(W, dtype=float)
    _expect("W", W, (W.shape[0], p * (p - 1) // 2))
    out = np.empty((W.shape[0], p, p))
    _check(_LIB.hl_corr_cholesky_many(W, W.shape[0], int(p), out))
    return out


class _Callback:
    """A C function of the kernels by its address (what nutpie's compiled model reads)."""

    def __init__(self, name: str):
        self.address = ctypes.cast(getattr(_LIB, name), ctypes.c_void_p).value


def callbacks():
    """``(logp, expand)``: the density's C callbacks for nutpie, which calls them
    on its own threads with the model buffer as user data."""
    return _Callback("hl_logp_callback"), _Callback("hl_expand_callback")
