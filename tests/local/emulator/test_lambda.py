"""LAMBDA_RUNTIME: moto runs Lambda code only in Docker (its workaround: test_process_global.py)."""

from __future__ import annotations

import json

import pytest
from moto import mock_aws

from tests.local.emulator.support import (
    aws_client,
    create_probe_function,
)


# ==============================================================================================
# LAMBDA_RUNTIME (its workaround: test_workaround_lambda_runtime, with the child process below)
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
