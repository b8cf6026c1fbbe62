"""``python -m trailseal_verify``: the same as ``trailseal-verify``."""

import sys

from .cli import main

sys.exit(main())
