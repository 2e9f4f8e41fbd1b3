"""``python -m greenprof`` runs the command line."""

import sys

from greenprof.cli import main

sys.exit(main())
