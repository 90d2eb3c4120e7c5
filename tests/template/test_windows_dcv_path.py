"""Windows hosts find dcv.exe beside the dcvserver service's program, wherever DCV is installed:
the agent's install script and the Run Command documents' PowerShell steps, checked on their
parse trees (tree-sitter's PowerShell grammar, tools/pslint.py). The service is DCV Server's,
"dcvserver" (admin guide, "Stopping the Amazon DCV server",
https://docs.aws.amazon.com/dcv/latest/adminguide/manage-stop.html)."""

from __future__ import annotations

from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from tools.pslint import commands, errors, nodes

ROOT = Path(__file__).resolve().parents[2]
INSTALL = (ROOT / "agent" / "windows" / "install.ps1").read_text()
DOCUMENTS = ("ListConnectionsDocument", "NotifyUsersDocument")


def windows_step(document: str) -> str:
    resources = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]
    steps = resources[document]["Properties"]["Content"]["mainSteps"]
    [step] = [s for s in steps if s["action"] == "aws:runPowerShellScript"]
    return "\n".join(step["inputs"]["runCommand"])


def strings(source: str) -> list[str]:
    found = nodes(source, "verbatim_string_characters") + nodes(source, "expandable_string_literal")
    return [(n.text or b"").decode() for n in found]


def reads_the_dcvserver_service(source: str) -> bool:
    return any(
        c.name == "get-ciminstance"
        and c.elements[:2] == ["-ClassName", "Win32_Service"]
        and "\"Name='dcvserver'\"" in c.elements
        for c in commands(source)
    )


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_run_command_steps_run_the_dcv_beside_the_service(document: str) -> None:
    script = windows_step(document)
    assert errors(script) == []
    assert reads_the_dcvserver_service(script)
    [call] = [
        c
        for c in commands(script)
        if c.elements and c.elements[0] in ("list-connections", "notify-users")
    ]
    assert call.name == "$dcv"
    assert not [text for text in strings(script) if "NICE\\DCV" in text]


def test_the_install_script_writes_the_dcv_beside_the_service_into_the_config() -> None:
    assert reads_the_dcvserver_service(INSTALL)
    assert not [text for text in strings(INSTALL) if "NICE\\DCV" in text]
    joins = [c for c in commands(INSTALL) if c.name == "join-path" and "'dcv.exe'" in c.elements]
    assert joins, "dcv.exe is not joined to the service's folder"
    assert "(Split-Path -Parent $serverExe)" in joins[0].elements
