"""``python -m skphotoz``: the command line, also under ``torchrun -m skphotoz``."""

import sys

from .cli import main

if __name__ == "__main__":  # importing this module must not run anything
    sys.exit(main())
