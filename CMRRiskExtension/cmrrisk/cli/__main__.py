"""``python -m cmrrisk.cli ...`` is ``cmrrisk ...``."""

import sys

from . import main

sys.exit(main())
