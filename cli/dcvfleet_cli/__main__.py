"""``python -m dcvfleet_cli``."""

import sys

from dcvfleet_cli.main import main

sys.exit(main())
