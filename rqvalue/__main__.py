"""`python -m rqvalue ...` is the `rqvalue` command."""

import sys

from rqvalue.cli import main

sys.exit(main())
