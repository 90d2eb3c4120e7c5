"""LAMBDA_RUNTIME: moto runs Lambda code only in Docker."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from moto import mock_aws

from tests.support.emulator import (
    Installer,
    aws_client,
    create_handler_function,
    create_probe_function,
)


# ==============================================================================================
# LAMBDA_RUNTIME
def test_gap_lambda_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """GAP LAMBDA_RUNTIME: moto runs a function's code only in Docker; without it, never.

    Without Docker moto echoes the event back (the handler never runs); with Docker configured
    but unreachable the invocation errors. When this fails, moto has changed: drop the
    workaround in local/emulator/lambda_runtime.py (``LAMBDA_RUNTIME``).
    """
    with mock_aws(config={"lambda": {"use_docker": False}}):
        create_probe_function("probe")
        response = aws_client("lambda").invoke(FunctionName="probe", Payload=json.dumps({"x": 1}))
        assert "FunctionError" not in response
        assert json.loads(response["Payload"].read()) == {"x": 1}

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with mock_aws():
        create_probe_function("probe")
        response = aws_client("lambda").invoke(FunctionName="probe", Payload=b"{}")
        assert response["FunctionError"] == "Handled"
        assert response["Payload"].read().startswith(b"error running docker")


def test_workaround_lambda_runtime(install: Installer, handlers: Path) -> None:
    """LAMBDA_RUNTIME's install runs the handler in-process, with the function's own
    environment (not leaking into the process) and its log lines in ``/aws/lambda/<name>``."""
    install("LAMBDA_RUNTIME")
    with mock_aws():
        create_handler_function(
            "probe",
            "gap_probe_handler.handler",
            Environment={"Variables": {"GREETING": "hello"}},
        )
        response = aws_client("lambda").invoke(FunctionName="probe", Payload='{"x": 1}')
        logs = aws_client("logs").filter_log_events(logGroupName="/aws/lambda/probe")["events"]
        assert response.get("FunctionError") is None
        assert json.loads(response["Payload"].read()) == {"event": {"x": 1}, "greeting": "hello"}
    assert [e["message"] for e in logs] == ["probe ran for probe"]
    assert "GREETING" not in os.environ
