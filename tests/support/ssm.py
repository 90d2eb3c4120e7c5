"""SSM Run Command documents as the template writes them: a Linux step and a Windows step."""

from __future__ import annotations

from typing import Any

#: The parameter every document of the fleet takes: the DCV session's name.
DCV_SESSION_PARAMETER = {
    "dcvSessionId": {"type": "String", "allowedPattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
}


def run_command_document(
    description: str, linux: list[str], windows: list[str], **parameters: Any
) -> dict[str, Any]:
    """A schema 2.2 document taking ``dcvSessionId`` (and ``parameters``) whose step "linux"
    runs the shell commands ``linux`` and step "windows" the PowerShell commands ``windows``."""
    return {
        "schemaVersion": "2.2",
        "description": description,
        "parameters": {**DCV_SESSION_PARAMETER, **parameters},
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "linux",
                "precondition": {"StringEquals": ["platformType", "Linux"]},
                "inputs": {"runCommand": linux},
            },
            {
                "action": "aws:runPowerShellScript",
                "name": "windows",
                "precondition": {"StringEquals": ["platformType", "Windows"]},
                "inputs": {"runCommand": windows},
            },
        ],
    }
