"""The local stack. It runs the Lambda package (``functions/``) in-process, so that package is
importable from here on."""

import sys
from pathlib import Path

_FUNCTIONS = str(Path(__file__).resolve().parent.parent / "functions")
if _FUNCTIONS not in sys.path:
    sys.path.insert(0, _FUNCTIONS)
