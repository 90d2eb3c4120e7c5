"""A stand-in for the background `typeperf` the Windows CPU signal reads (TypeperfCpu's
``spawn``): it prints given lines, then either keeps running or has exited."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class FakeTypeperf:
    def __init__(self, text: str, exit_code: int | None = None) -> None:
        self.stdout: Iterable[str] = text.splitlines(keepends=True)
        self.exit_code = exit_code

    def poll(self) -> int | None:
        return self.exit_code


class Spawner:
    """Hands out one FakeTypeperf per start and records each argv; an exception to raise may
    stand in for a run."""

    def __init__(self, *runs: FakeTypeperf | BaseException) -> None:
        self.runs = list(runs)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> FakeTypeperf:
        self.calls.append(list(argv))
        run = self.runs.pop(0) if len(self.runs) > 1 else self.runs[0]
        if isinstance(run, BaseException):
            raise run
        return FakeTypeperf("".join(run.stdout), run.exit_code)
