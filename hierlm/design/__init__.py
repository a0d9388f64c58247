"""Design of a mixed model: data checks, factor coding, X and random-effects terms."""

from .build import Design, build_design
from .remat import ReMat

__all__ = ["Design", "ReMat", "build_design"]
