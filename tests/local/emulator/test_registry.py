"""The gap registry: every gap declared once, shown by a gap test, installed and removed whole.

``python -m local.emulator`` prints the same list for a person."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from local.emulator import registry
from local.emulator.gap import Context, current
from local.emulator.hooks import SimulatorHooks
from tests.support.emulator import ROOT

HERE = Path(__file__).resolve().parent
GAP_NAME = re.compile(r"\bGAP ([A-Z][A-Z0-9_]+)")


def _gap_test_docstrings() -> dict[str, str]:
    """Each ``test_gap_*`` here (``file::name``) and its docstring."""
    found = {}
    for path in sorted(HERE.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_gap_"):
                found[f"{path.name}::{node.name}"] = ast.get_docstring(node) or ""
    return found


def test_every_gap_is_declared_once_with_what_moto_does_and_what_we_do() -> None:
    names = [gap.name for gap in registry.GAPS]
    assert len(names) == len(set(names)), names
    for gap in registry.GAPS:
        assert gap.moto_does.strip(), gap.name
        assert gap.we_do.strip(), gap.name
        assert registry.gap(gap.name) is gap


def test_every_gap_has_a_gap_test_naming_it_and_every_named_gap_is_declared() -> None:
    """A gap test's docstring begins ``GAP <NAME>``: each declared gap has one, and each name a
    gap test gives is declared (a retired gap leaves no test behind)."""
    named = {
        name: test for test, doc in _gap_test_docstrings().items() for name in GAP_NAME.findall(doc)
    }
    declared = {gap.name for gap in registry.GAPS}
    assert sorted(declared - named.keys()) == []
    assert sorted(named.keys() - declared) == []


def test_apply_all_then_revert_leaves_moto_as_it_was() -> None:
    """Every install's patches go on, in order, and come off again: each name they replaced
    holds its original value afterwards (moto's class, module and config as they were)."""
    context = Context("http://127.0.0.1:1", 1, SimulatorHooks())
    installable = [gap.name for gap in registry.GAPS if gap.install is not None]
    patches = [
        (patch, current(patch))
        for gap in registry.GAPS
        if gap.install is not None
        for patch in gap.install(context)
    ]
    with registry.installed(installable, context):
        assert registry.applied() == installable
    assert registry.applied() == []
    for patch, before in patches:
        assert current(patch) is before or current(patch) == before, (patch.owner, patch.name)


def test_revert_refuses_to_undo_a_gap_another_wraps() -> None:
    """COGNITO_AUTH_FLOWS wraps COGNITO_SRP's InitiateAuth: removing COGNITO_SRP alone would
    drop both, so it is refused and nothing changes; removing both works."""
    from moto.cognitoidp.models import CognitoIdpBackend

    original = CognitoIdpBackend.initiate_auth
    context = Context(None, 0, SimulatorHooks())
    with registry.installed(["COGNITO_SRP", "COGNITO_AUTH_FLOWS"], context):
        wrapped = CognitoIdpBackend.initiate_auth
        with pytest.raises(RuntimeError, match="COGNITO_SRP: initiate_auth was replaced again"):
            registry.revert(["COGNITO_SRP"])
        assert CognitoIdpBackend.initiate_auth is wrapped
        assert registry.applied() == ["COGNITO_SRP", "COGNITO_AUTH_FLOWS"]
    assert CognitoIdpBackend.initiate_auth is original


#: Gap tests run with their gaps installed, in a pytest of their own; each must fail.
FIXED = {
    "EC2_PAGE_TOKEN": "test_ec2.py::test_gap_ec2_page_token",
    "EC2_LAUNCH_TIME": "test_ec2.py::test_gap_ec2_launch_time",
    "SNS_SUBSCRIBE_ATTRIBUTES": "test_sns.py::test_gap_sns_subscribe_attributes",
}


def test_a_gap_test_fails_once_moto_behaves_as_aws_does(tmp_path: Path) -> None:
    """With its workaround standing in for a moto that behaves as AWS does
    (``DCVFLEET_GAPS_INSTALLED``, read by conftest.py), each gap test fails: the gap tests run
    where nothing can make them skip, and they can fail."""
    env = {**os.environ, "DCVFLEET_GAPS_INSTALLED": ",".join(FIXED)}
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            # the plugins these tests do not use cost seconds to load
            "-p", "no:xdist", "-p", "no:hypothesispytest", "-p", "no:schemathesis", "-p", "no:anyio",
            "--basetemp", str(tmp_path / "fixed"), "-rf",
            *(str(HERE / test) for test in FIXED.values()),
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    failed = set(re.findall(r"^FAILED \S+/(test_\w+\.py::test_\w+)", run.stdout, re.MULTILINE))
    assert failed == set(FIXED.values()), run.stdout[-3000:]
    assert f"{len(FIXED)} failed" in run.stdout
