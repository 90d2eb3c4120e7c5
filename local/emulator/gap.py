"""How a gap is declared: what moto does, what the local stack does instead, how it is installed.

Each service module of ``local.emulator`` declares its gaps as ``Gap`` values; ``registry`` lists
them in the order they are installed. An install returns ``Patch`` values and changes nothing
itself: the registry applies them, remembers what they replaced, and can put that back.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from local.emulator.hooks import SimulatorHooks


class Patch(NamedTuple):
    """What a workaround sets: ``owner.name = value`` (a class, module or object), or
    ``owner[name] = value`` when ``owner`` is a mapping (``os.environ``, moto's user config)."""

    owner: Any
    name: str
    value: Any


@dataclass(frozen=True)
class Context:
    """What an install may need: the emulator's URL and port, and the simulators' hooks."""

    endpoint_url: str | None
    port: int
    hooks: SimulatorHooks


@dataclass(frozen=True)
class Gap:
    """One place where moto (the version pinned in requirements) differs from AWS.

    ``install`` returns the patches that close it; None when the gap is closed elsewhere, as
    ``we_do`` says (the deployer rewrites the template, the stack runs a scheduler). Each gap
    has tests in ``tests/local/emulator/`` naming it: ``test_gap_*`` shows moto's behaviour
    (and fails when moto changes), ``test_workaround_*`` shows ours."""

    name: str
    moto_does: str
    we_do: str
    install: Callable[[Context], Sequence[Patch]] | None = None


MISSING: Any = object()


def current(patch: Patch) -> Any:
    """What ``patch.owner`` holds under ``patch.name`` itself (not inherited); MISSING if none."""
    if isinstance(patch.owner, MutableMapping):
        return patch.owner.get(patch.name, MISSING)
    return vars(patch.owner).get(patch.name, MISSING)


def holds(patch: Patch) -> bool:
    """Whether ``patch.owner`` still holds ``patch.value`` (a mapping's text values compare
    equal; anything else must be the very object)."""
    found = current(patch)
    if isinstance(patch.owner, MutableMapping) and isinstance(found, str):
        return bool(found == patch.value)
    return found is patch.value


def put(owner: Any, name: str, value: Any) -> None:
    """Set (or, for MISSING, remove) ``name`` on ``owner``."""
    if isinstance(owner, MutableMapping):
        if value is MISSING:
            owner.pop(name, None)
        else:
            owner[name] = value
    elif value is MISSING:
        delattr(owner, name)
    else:
        setattr(owner, name, value)
