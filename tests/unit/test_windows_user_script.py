"""The PowerShell the agent runs to make the desktop's Windows account, checked on its parse tree
(tree-sitter's PowerShell grammar, tools/pslint.py): PowerShell cannot run here."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from dcvfleet_agent.users import (
    _WINDOWS_SCRIPT,
    WINDOWS_MAX_USERNAME,
    WINDOWS_USERS_SID,
    Credentials,
    UserSetupError,
    ensure_os_user,
)
from tools.pslint import commands, errors, nodes

SCRIPT = _WINDOWS_SCRIPT.format(user="dcvalicesmith")


def by_name(name: str) -> list[int]:
    return [c.start for c in commands(SCRIPT) if c.name == name]


def test_the_account_script_parses() -> None:
    assert errors(SCRIPT) == []


def test_the_script_refuses_a_name_over_twenty_characters_before_new_localuser() -> None:
    # An `if ($name.Length -gt 20)` whose block throws, before the account is made.
    caps = [
        node
        for node in nodes(SCRIPT, "if_statement")
        if any(
            (c.text or b"").decode().replace(" ", "") == f"$name.Length-gt{WINDOWS_MAX_USERNAME}"
            for c in nodes((node.text or b"").decode(), "comparison_expression")
        )
        and b"throw" in (node.child_by_field_name("statement_block") or node).text  # type: ignore[operator]
    ]
    assert caps, "no length check of the account name"
    assert by_name("new-localuser"), "no New-LocalUser"
    assert caps[0].start_byte < min(by_name("new-localuser"))


def test_the_account_joins_builtin_users_by_its_sid() -> None:
    adds = [c for c in commands(SCRIPT) if c.name == "add-localgroupmember"]
    assert adds, "the account is never added to BUILTIN\\Users"
    assert adds[0].elements[:2] == ["-SID", f"'{WINDOWS_USERS_SID}'"]
    assert "-Member" in adds[0].elements
    assert "$name" in adds[0].elements
    assert min(by_name("new-localuser")) < adds[0].start


def test_a_long_name_is_refused_with_a_clear_error_before_powershell_runs() -> None:
    ran: list[Sequence[str]] = []

    def run(argv: Sequence[str], **_: object) -> subprocess.CompletedProcess[str]:
        ran.append(argv)
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    creds = Credentials(username="dcv" + "x" * WINDOWS_MAX_USERNAME, password="pw")
    with pytest.raises(UserSetupError, match="at most 20"):
        ensure_os_user("windows", creds, run)
    assert ran == []
