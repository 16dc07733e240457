"""``python -m degkit``: the command line."""

import sys

from degkit.cli import main

sys.exit(main())
