"""``python -m degkit.cli``: the command line."""

import sys

from degkit.cli import main

sys.exit(main())
