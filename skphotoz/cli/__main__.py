"""``python -m skphotoz.cli``, as ``python -m skphotoz``."""

import sys

from . import main

if __name__ == "__main__":  # importing this module must not run anything
    sys.exit(main())
