"""`python -m funcnn.launch -n N -- funcnn train ...`: N processes of one run on this machine (see
funcnn.train.distributed)."""

import sys

from .train.distributed import main

if __name__ == "__main__":
    sys.exit(main())
