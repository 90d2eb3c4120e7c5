"""EC2 Image Builder's rules for a component document (AWSTOE), as a JSON schema and the checks
a schema cannot state. Written by hand from AWS's pages, as AWS publishes no schema file:

* document, phases and steps:
  https://docs.aws.amazon.com/imagebuilder/latest/userguide/toe-use-documents.html
* the action modules and their inputs:
  https://docs.aws.amazon.com/imagebuilder/latest/userguide/toe-action-modules.html
* parameters (``{{ Name }}`` in a step's inputs):
  https://docs.aws.amazon.com/imagebuilder/latest/userguide/toe-user-defined-variables.html
* ``Data`` at most 16,000 characters:
  https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_CreateComponent.html
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import yaml

#: CreateComponent's limit on ``data``.
MAX_DATA_CHARS = 16000
#: The phases Image Builder runs: build and validate while building, test on the new image.
PHASES = ["build", "validate", "test"]
#: AWSTOE's action modules (toe-action-modules.html).
ACTIONS = [
    "Assert",
    "ExecuteBash",
    "ExecuteBinary",
    "ExecuteDocument",
    "ExecutePowerShell",
    "S3Download",
    "S3Upload",
    "WebDownload",
    "AppendFile",
    "CopyFile",
    "CopyFolder",
    "CreateFile",
    "CreateFolder",
    "CreateSymlink",
    "DeleteFile",
    "DeleteFolder",
    "ListFiles",
    "MoveFile",
    "MoveFolder",
    "ReadFile",
    "SetFileEncoding",
    "SetFileOwner",
    "SetFolderOwner",
    "SetFilePermissions",
    "SetFolderPermissions",
    "InstallMSI",
    "UninstallMSI",
    "Reboot",
    "SetRegistry",
    "UpdateOS",
]
#: The actions that run only on one platform.
PLATFORM_ACTIONS = {
    "Linux": {"ExecutePowerShell", "InstallMSI", "UninstallMSI", "SetRegistry"},
    "Windows": {"ExecuteBash"},
}

_COMMANDS = {
    "type": "object",
    "properties": {"commands": {"type": "array", "minItems": 1, "items": {"type": "string"}}},
    "required": ["commands"],
}


def _downloads(source_pattern: str) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "properties": {
                "source": {"type": "string", "pattern": source_pattern},
                "destination": {"type": "string", "minLength": 1},
                "overwrite": {"type": "boolean"},
            },
            "required": ["source", "destination"],
            "additionalProperties": False,
        },
    }


def _step(action: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "if": {"properties": {"action": {"const": action}}},
        "then": {"properties": {"inputs": inputs}},
    }


SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "schemaVersion": {"enum": [1.0, "1.0"]},
        "parameters": {
            "type": "array",
            "items": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "type": {"const": "string"},
                        "default": {"type": "string"},
                        "description": {"type": "string"},
                    },
                    "required": ["type"],
                    "additionalProperties": False,
                },
            },
        },
        "phases": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"enum": PHASES},
                    "steps": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
                                "action": {"enum": ACTIONS},
                                "inputs": {"type": ["object", "array"]},
                                "onFailure": {"enum": ["Abort", "Continue", "Ignore"]},
                                "timeoutSeconds": {"type": "integer", "minimum": -1},
                                "maxAttempts": {"type": "integer", "minimum": 1},
                            },
                            "required": ["name", "action", "inputs"],
                            "additionalProperties": False,
                            "allOf": [
                                _step("ExecuteBash", _COMMANDS),
                                _step("ExecutePowerShell", _COMMANDS),
                                _step(
                                    "S3Download",
                                    _downloads(
                                        "^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+|\\{\\{ *[A-Za-z0-9_.]+ *\\}\\})$"
                                    ),
                                ),
                                _step("WebDownload", _downloads("^https://")),
                                _step(
                                    "Reboot",
                                    {
                                        "type": "object",
                                        "properties": {
                                            "delaySeconds": {"type": "integer", "minimum": 0}
                                        },
                                        "additionalProperties": False,
                                    },
                                ),
                            ],
                        },
                    },
                },
                "required": ["name", "steps"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["schemaVersion", "phases"],
    "additionalProperties": False,
}

_REFERENCE = re.compile(r"\{\{\s*([A-Za-z0-9_.:]+)\s*\}\}")


def problems(text: str, platform: str) -> list[str]:
    """What Image Builder would refuse in the component document ``text`` for ``platform``
    (``Linux`` or ``Windows``); empty when it is valid."""
    found: list[str] = []
    if len(text) > MAX_DATA_CHARS:
        found.append(f"{len(text)} characters, over the {MAX_DATA_CHARS} CreateComponent takes")
    document = yaml.safe_load(text)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(document)"
        found.append(f"{where}: {error.message}")
    if found:
        return found
    names = [phase["name"] for phase in document["phases"]]
    if len(set(names)) != len(names):
        found.append(f"phase names repeat: {names}")
    declared = {name for p in document.get("parameters", []) for name in p}
    for phase in document["phases"]:
        steps = [step["name"] for step in phase["steps"]]
        if len(set(steps)) != len(steps):
            found.append(f"{phase['name']}: step names repeat: {steps}")
        for step in phase["steps"]:
            if step["action"] in PLATFORM_ACTIONS[platform]:
                found.append(
                    f"{phase['name']}/{step['name']}: {step['action']} does not run on {platform}"
                )
            for name in _REFERENCE.findall(yaml.safe_dump(step["inputs"])):
                if name not in declared:
                    found.append(
                        f"{phase['name']}/{step['name']}: {{{{ {name} }}}} is no parameter"
                    )
    return found


def commands(text: str, phase: str) -> str:
    """Every command of the ``phase`` of the component document ``text``, one a line."""
    document = yaml.safe_load(text)
    return "\n".join(
        command
        for p in document["phases"]
        if p["name"] == phase
        for step in p["steps"]
        if isinstance(step["inputs"], dict)
        for command in step["inputs"].get("commands", [])
    )
