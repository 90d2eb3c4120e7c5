"""DCV Fleet host agent: brings a desktop host to "ready" and reports it to the control plane.

Runs on Python 3.9+ with only the standard library and boto3/botocore.
"""

__version__ = "0.1.0"
