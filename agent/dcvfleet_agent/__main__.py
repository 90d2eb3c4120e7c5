"""`python -m dcvfleet_agent`: bring this host to ready and report it."""

import sys

from .agent import main

if __name__ == "__main__":
    sys.exit(main())
