"""dcvfleet: the command-line client of DCV Fleet (GPU remote desktops on AWS)."""

__version__ = "0.1.0"
