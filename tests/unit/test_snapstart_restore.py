"""A SnapStart function makes its clients before the snapshot, and after each restore makes
them again in the restored environment: nothing one environment restored from the snapshot
holds (credentials, connection pools, ``random``'s state) is shared with another
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html). The restore is played
as Lambda's runtime plays it: each hook registered with snapshot_restore_py is called in turn
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html)."""

from __future__ import annotations

import importlib
import random
from collections.abc import Iterator

import pytest
import snapshot_restore_py

from bench import coldstart
from dcvfleet import aws, snapstart
from tests.support.template import translated

SNAP_START = {snapstart.INITIALIZATION_TYPE: snapstart.SNAP_START}


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No clients and no hooks before each test, and none left after it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASNAPSHOTSNAPSHOT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "at-snapshot")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", [])
    aws.reset_clients()
    yield
    aws.reset_clients()


def restore() -> None:
    """What Lambda's runtime does on a restore: each after-restore hook, in registration order."""
    for hook, args, kwargs in snapshot_restore_py.get_after_restore():
        hook(*args, **kwargs)


def test_a_snapstart_init_makes_the_clients_before_the_snapshot() -> None:
    assert snapstart.prepare(["dynamodb", "ec2"], SNAP_START)

    assert set(aws._CLIENTS) == {"dynamodb", "ec2"}
    assert len(snapshot_restore_py.get_after_restore()) == 1


def test_any_other_init_makes_nothing_early_and_registers_nothing() -> None:
    for kind in ("on-demand", "provisioned-concurrency", None):
        environ = {} if kind is None else {snapstart.INITIALIZATION_TYPE: kind}
        assert not snapstart.prepare(["dynamodb"], environ)
    assert aws._CLIENTS == {}
    assert snapshot_restore_py.get_after_restore() == []


def test_after_a_restore_the_clients_are_made_again_with_the_environments_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    snapstart.prepare(["ec2"], SNAP_START)
    before = aws.client("ec2")
    loader = aws._CORE[0].get_component("data_loader")
    # the restored environment has credentials of its own
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIARESTOREDRESTORED")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "after-restore")

    restore()
    after = aws.client("ec2")

    assert after is not before
    assert after._request_signer._credentials.access_key == "AKIARESTOREDRESTORED"
    assert before._request_signer._credentials.access_key == "AKIASNAPSHOTSNAPSHOT"
    # only what the loader read before the snapshot (the service models) is kept
    assert aws._CORE[0].get_component("data_loader") is loader


def test_after_a_restore_random_is_seeded_again() -> None:
    snapstart.prepare([], SNAP_START)
    random.seed(17)  # the state every environment restored from one snapshot would start with
    at_snapshot = random.getstate()

    restore()

    assert random.getstate() != at_snapshot


def test_each_snapstart_handler_makes_the_clients_its_body_asks_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resources = translated()["Resources"]
    handlers = {
        resource["Properties"]["Handler"]: name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function"
        and resource["Properties"].get("SnapStart", {}).get("ApplyOn") == "PublishedVersions"
    }
    functions = {function.name: function for function in coldstart.functions(coldstart.ROOT)}
    for name in handlers.values():  # what the modules read as they are imported
        for key, value in functions[name].environment.items():
            monkeypatch.setenv(key, value)
    made: dict[str, tuple[str, ...]] = {}
    for module in {handler.rpartition(".")[0] for handler in handlers}:
        declared = importlib.import_module(module).SNAPSTART_CLIENTS
        made.update({f"{module}.{function}": clients for function, clients in declared.items()})

    assert set(made) == set(handlers)
    for handler, name in handlers.items():
        asked = coldstart.handler_clients(coldstart.ROOT, functions[name])
        assert sorted(made[handler]) == sorted(asked), handler
