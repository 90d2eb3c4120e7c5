"""Fixtures made from a factory: a fresh object for each test, under the name the tests ask for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def fresh(name: str, factory: Callable[[], T]) -> Any:
    """A fixture called ``name`` that gives each test a new ``factory()``.

    Assign it to a module-level name in a test module or conftest.py for pytest to find it."""

    @pytest.fixture(name=name)
    def fixture() -> T:
        return factory()

    return fixture
