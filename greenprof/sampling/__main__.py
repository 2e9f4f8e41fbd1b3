"""``python -m greenprof.sampling``: the sampling helper process (see ``helper``)."""

import sys

from greenprof.sampling.helper import main

sys.exit(main())
