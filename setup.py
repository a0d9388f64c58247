"""The compiled part of hierlm; everything else is declared in pyproject.toml."""
from setuptools import Extension, setup

# the engine posterior's density, gradient and draws (C, called through ctypes by
# hierlm/bayes/kernels.py): compiled here at install rather than at run time
# the REML engine's dense Cholesky recursion (C calling scipy's BLAS through the
# function pointers scipy publishes; bound by ctypes in hierlm/lmm/dense.py)
setup(ext_modules=[Extension("hierlm.bayes._kernels", sources=["hierlm/bayes/_kernels.c"]),
                   Extension("hierlm.lmm._dense", sources=["hierlm/lmm/_dense.c"])])
