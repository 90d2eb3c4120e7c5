"""Every custom resource answers CloudFormation: when its handler succeeds, fails, cannot even be
imported, or is still working as the function's timeout nears (``dcvfleet.custom_resource``).

CloudFormation waits up to an hour for an answer that never comes:
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html
Each case runs the entry point as Lambda would, in a process of its own, against a stand-in for
the pre-signed response URL.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from dcvfleet import custom_resource

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())

#: Runs a function's entry point (its template Handler) in a fresh interpreter, as Lambda does:
#: the event on stdin; the handler, the remaining time and any module to break at import in argv.
DRIVER = """
import importlib, importlib.abc, json, sys
entry_point, remaining_ms, broken = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

class Broken(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in broken:
            raise ImportError(f"{name}: simulated failure at init")
        return None

sys.meta_path.insert(0, Broken())

class Context:
    function_name = "custom-resource"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:custom-resource"
    memory_limit_in_mb = 256
    aws_request_id = "r"
    def get_remaining_time_in_millis(self):
        return remaining_ms

module, _, function = entry_point.rpartition(".")
getattr(importlib.import_module(module), function)(json.load(sys.stdin), Context())
"""


def _custom_resources() -> dict[str, dict[str, Any]]:
    """Each custom resource of the template, with the function behind its ServiceToken."""
    found = {}
    for name, res in TEMPLATE["Resources"].items():
        if (
            res["Type"].startswith("Custom::")
            or res["Type"] == "AWS::CloudFormation::CustomResource"
        ):
            function = res["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
            found[name] = TEMPLATE["Resources"][function]["Properties"]
    return found


class ResponseUrl:
    """CloudFormation's pre-signed response URL: records each answer and when it came."""

    def __init__(self) -> None:
        self.answers: list[tuple[float, dict[str, Any]]] = []
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                answers.append((time.monotonic(), json.loads(self.rfile.read(length))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/answer"

    def wait(self, seconds: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while not self.answers and time.monotonic() < deadline:
            time.sleep(0.05)
        return [answer for _, answer in self.answers]


@pytest.fixture
def response_url() -> Iterator[ResponseUrl]:
    url = ResponseUrl()
    yield url
    url.server.shutdown()


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An endpoint that takes connections and never answers: every AWS call hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def _event(
    url: str, request_type: str = "Create", config: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/fleet/1",
        "RequestId": "request-1",
        "LogicalResourceId": "PortalSite",
        "ResourceType": "Custom::PortalSite",
        "ResourceProperties": {
            "Bucket": "portal",
            "DistributionId": "",
            "Config": config
            or {
                "apiUrl": "https://abc.execute-api.us-east-1.amazonaws.com/v1",
                "region": "us-east-1",
                "userPoolId": "us-east-1_abc",
                "userPoolClientId": "client",
                "cognitoEndpoint": "https://cognito-idp.us-east-1.amazonaws.com/",
            },
        },
    }


def _run(
    props: dict[str, Any],
    event: dict[str, Any],
    *,
    remaining_ms: int = 300_000,
    broken: tuple[str, ...] = (),
    endpoint: str = "http://127.0.0.1:9",
    tmp_path: Path,
) -> subprocess.Popen[str]:
    """The function's entry point invoked in a process of its own, with its template environment."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "DCVFLEET_", "POWERTOOLS_"))
    }
    env.update({k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()})
    env.update(
        {
            "PYTHONPATH": str(ROOT / "functions"),
            "PORTAL_ASSETS": str(tmp_path),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": endpoint,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "DCVFleet",
        }
    )
    (tmp_path / "index.html").write_text("<!doctype html>")
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, props["Handler"], str(remaining_ms), *broken],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps(event))
    process.stdin.close()
    return process


def test_every_custom_resource_is_answered_by_the_entry_point_that_always_answers() -> None:
    resources = _custom_resources()
    assert resources, "the template has custom resources"
    for props in resources.values():
        assert props["Handler"] == "dcvfleet.custom_resource.handler"
        delegate = props["Environment"]["Variables"]["CUSTOM_RESOURCE_HANDLER"]
        assert delegate.startswith("dcvfleet.handlers.")
        # the answer must go out before Lambda stops the function
        assert props["Timeout"] > custom_resource.DEADLINE_MARGIN_SECONDS + 5


@pytest.mark.parametrize("name", sorted(_custom_resources()))
def test_a_failure_at_init_is_answered_failed(
    name: str, response_url: ResponseUrl, tmp_path: Path
) -> None:
    # Given the function's code cannot be imported (a dependency missing from the package)
    props = _custom_resources()[name]
    process = _run(
        props, _event(response_url.url), broken=("aws_lambda_powertools",), tmp_path=tmp_path
    )
    process.wait(timeout=60)
    # Then CloudFormation is answered FAILED, with the reason, once
    (answer,) = response_url.wait(5)
    assert answer["Status"] == "FAILED"
    assert "aws_lambda_powertools: simulated failure at init" in answer["Reason"]
    assert answer["RequestId"] == "request-1"
    assert answer["LogicalResourceId"] == "PortalSite"


#: The custom resources whose handlers call AWS, and so can be held up by it. DesktopProfilesCheck
#: only reads its properties and environment: nothing it does can outlast the deadline.
CALLS_AWS = sorted(set(_custom_resources()) - {"DesktopProfilesCheck"})


@pytest.mark.parametrize("name", CALLS_AWS)
def test_a_handler_still_working_at_its_deadline_is_answered_before_it(
    name: str, response_url: ResponseUrl, black_hole: str, tmp_path: Path
) -> None:
    # Given every AWS call hangs, and the invocation has 3 s left before the margin
    props = _custom_resources()[name]
    margin = custom_resource.DEADLINE_MARGIN_SECONDS
    started = time.monotonic()
    process = _run(
        props,
        _event(response_url.url),
        remaining_ms=int((margin + 3) * 1000),
        endpoint=black_hole,
        tmp_path=tmp_path,
    )
    try:
        # Then CloudFormation is answered FAILED, "timed out", before the function's timeout
        (answer,) = response_url.wait(margin + 3)
        answered_after = response_url.answers[0][0] - started
    finally:
        process.kill()
        process.wait()
    assert answer["Status"] == "FAILED"
    assert answer["Reason"].startswith("timed out")
    assert answered_after < margin + 3


def test_a_success_is_answered_with_the_handlers_result(
    response_url: ResponseUrl, black_hole: str, tmp_path: Path
) -> None:
    # Given a Delete of a resource with no bucket left to empty (no AWS call to make)
    props = _custom_resources()["PortalSite"]
    event = {**_event(response_url.url, "Delete"), "PhysicalResourceId": "portal"}
    event["ResourceProperties"] = {**event["ResourceProperties"], "Bucket": ""}
    _run(props, event, endpoint=black_hole, tmp_path=tmp_path).wait(timeout=60)
    (answer,) = response_url.wait(5)
    assert answer["Status"] == "SUCCESS"
    assert answer["Reason"] == "0 object versions removed"
    assert answer["PhysicalResourceId"] == "portal"


def test_an_error_of_the_handler_is_answered_failed_with_its_message(
    response_url: ResponseUrl, black_hole: str, tmp_path: Path
) -> None:
    # Given a Create whose config lacks a key (it fails before any AWS call)
    props = _custom_resources()["PortalSite"]
    event = _event(response_url.url, config={"apiUrl": "https://x"})
    _run(props, event, endpoint=black_hole, tmp_path=tmp_path).wait(timeout=60)
    (answer,) = response_url.wait(5)
    assert answer["Status"] == "FAILED"
    assert answer["Reason"].startswith("ValueError:")
    assert "region" in answer["Reason"]
    # a create that failed made nothing: its id is the logical one
    assert answer["PhysicalResourceId"] == "PortalSite"
