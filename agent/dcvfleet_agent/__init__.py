"""DCV Fleet host agent: brings a desktop host to "ready", reports it to the control plane, then
reports the host's idleness (Host Heartbeat, Session Idle) for as long as it runs.

Runs on Python 3.9+ with the standard library alone (aws.py makes its few AWS calls).
"""

__version__ = "0.1.0"
