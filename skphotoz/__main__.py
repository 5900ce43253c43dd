"""``python -m skphotoz``: the command line, also under ``torchrun -m skphotoz``."""

import sys

from .cli import main

sys.exit(main())
