"""DCV Fleet control plane: domain, adapters and Lambda entry points."""
