"""The earlier name of `funcnn.verify.reference`, the literal loop-level oracle: importing it warns once (a
FutureWarning, shown to scripts by default) and it goes in the release after 0.1. Import `funcnn.verify.reference`,
which holds the same functions."""

import warnings

warnings.warn("funcnn.reference is deprecated and goes in the next release: import funcnn.verify.reference (the "
              "same functions)", FutureWarning, stacklevel=2)

from .verify.reference import *  # noqa: E402,F401,F403
from .verify.reference import conv_dx_literal, conv_nd, conv_transpose_nd  # noqa: E402,F401
