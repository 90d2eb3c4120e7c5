"""CORS as a browser checks it: the preflight it sends before a cross-origin call."""

from __future__ import annotations

import requests


def preflight(url: str, origin: str, method: str, headers: str) -> requests.Response:
    """The answer to a browser's ``OPTIONS`` preflight from ``origin`` for a ``method`` call to
    ``url`` with ``headers`` (comma-separated, lower case)."""
    return requests.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        timeout=10,
    )
