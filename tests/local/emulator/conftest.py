"""Fixtures of the emulator's gap tests: fake credentials, a plain moto server, plain moto itself,
and gaps installed through the registry for one test.

Every test here starts on plain moto: no gap installed in the process (``registry.applied()`` is
empty), so a ``test_gap_*`` shows moto's own behaviour and cannot skip; a test that installs a gap
(``install``) has it removed when it ends. A process that ran a local stack is plain again once
the stack stopped (``LocalStack.stop`` reverts the registry).

``DCVFLEET_GAPS_INSTALLED`` (gap names, comma-separated) installs those gaps around every test
instead: it is how ``test_registry.py`` shows that a gap test fails once moto behaves as AWS does.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
import requests
from moto.core.config import default_user_config

from local.emulator import registry
from local.emulator.gap import Context
from local.emulator.hooks import SimulatorHooks
from tests.support.emulator import (
    FAKE_CREDENTIALS,
    HANDLERS,
    REDIRECTING_VARIABLES,
    Installer,
    no_aws_files,
)


@pytest.fixture(autouse=True)
def fake_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in REDIRECTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**FAKE_CREDENTIALS, **no_aws_files(tmp_path)}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def moto_server(moto_server: str) -> Iterator[str]:
    """The session's moto server (tests/conftest.py), plain, emptied after each test, with moto's
    global config restored."""
    with mock.patch.dict(default_user_config):
        try:
            yield moto_server
        finally:
            requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()


#: Gaps installed around every test instead of plain moto (see the module's docstring).
INSTALLED_FOR_EVERY_TEST = "DCVFLEET_GAPS_INSTALLED"


@pytest.fixture(autouse=True)
def plain_moto() -> Iterator[None]:
    """The test runs on plain moto (or with the gaps ``DCVFLEET_GAPS_INSTALLED`` names)."""
    leaked = registry.applied()
    if leaked:
        pytest.fail(
            f"gaps installed in this process before the test: {', '.join(leaked)}; whatever"
            " installed them (registry.apply_all, LocalStack.start) must revert them"
        )
    names = [n for n in os.environ.get(INSTALLED_FOR_EVERY_TEST, "").split(",") if n]
    with registry.installed(names, Context(None, 0, SimulatorHooks())):
        yield
    assert registry.applied() == [], "the test left gaps installed"


@pytest.fixture
def install() -> Iterator[Installer]:
    """Installs gaps through the registry, as the local stack does, until the test ends; the
    hooks they report to (what the stack hands the simulators)."""
    with contextlib.ExitStack() as stack:

        def installing(
            *names: str, endpoint_url: str | None = None, port: int = 0
        ) -> SimulatorHooks:
            hooks = SimulatorHooks()
            stack.enter_context(registry.installed(names, Context(endpoint_url, port, hooks)))
            return hooks

        yield installing


@pytest.fixture
def handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on ``sys.path`` holding ``HANDLERS``, imported afresh by this test."""
    directory = tmp_path / "handlers"
    directory.mkdir()
    for name, code in HANDLERS.items():
        (directory / f"{name}.py").write_text(code)
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(directory))
    yield directory
    for name in HANDLERS:
        sys.modules.pop(name, None)
