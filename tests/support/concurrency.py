"""Running calls at the same moment, for the tests of what must happen exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_together(call: Callable[[], None], copies: int, timeout: float) -> None:
    """Runs ``copies`` of ``call``, each on its own thread, released together by a barrier, and
    waits up to ``timeout`` seconds for each thread."""
    start = threading.Barrier(copies)

    def run() -> None:
        start.wait()
        call()

    workers = [threading.Thread(target=run) for _ in range(copies)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=timeout)
