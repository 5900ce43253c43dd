"""``python -m skphotoz.cli``, as ``python -m skphotoz``."""

import sys

from . import main

sys.exit(main())
