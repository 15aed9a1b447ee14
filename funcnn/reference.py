"""The earlier name of `funcnn.verify.reference`, the literal loop-level oracle (kept so that existing code runs)."""

from .verify.reference import *  # noqa: F401,F403
from .verify.reference import conv_dx_literal, conv_nd, conv_transpose_nd  # noqa: F401
