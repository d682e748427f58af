"""``python -m muscle_mem``: the ``muscle-mem`` command."""

import sys

from .cli import main

sys.exit(main())
