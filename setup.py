"""The compiled part of hierlm; everything else is declared in pyproject.toml."""
from setuptools import Extension, setup

# the engine posterior's density, gradient and draws (C, called through ctypes by
# hierlm/bayes/kernels.py): compiled here at install rather than at run time
setup(ext_modules=[Extension("hierlm.bayes._kernels", sources=["hierlm/bayes/_kernels.c"])])
