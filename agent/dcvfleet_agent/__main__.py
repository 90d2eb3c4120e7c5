"""`python -m dcvfleet_agent`: bring this host to ready, report it, then watch it until stopped."""

import sys

from .agent import main

if __name__ == "__main__":
    sys.exit(main())
