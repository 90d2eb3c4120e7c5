"""What ``make local`` prints (local/console.py): the banner a person needs, moto's start-up
notices and its failing-state reports kept out of the terminal but whole in the debug log."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from local import console

ROLE = "arn:aws:iam::123456789012:role/workflow"
#: A capacity failure's cause as the provisioning workflow records it: long, one line.
CAUSE = "no capacity for g5.xlarge, g4dn.xlarge, g6.xlarge in " + ", ".join(
    f"subnet-{i:017x}" for i in range(60)
)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[tuple[io.StringIO, Path]]:
    """The process's log configured as ``make local`` does; the root logger restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    debug_log = console.configure(tmp_path, stream)
    try:
        yield stream, debug_log
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)


def _run_state(state: Mapping[str, object]) -> str:
    """Run a state machine of this one state in moto's interpreter until it ends; its status."""
    end = {} if state["Type"] == "Fail" else {"End": True}  # a Fail state ends by itself
    definition = {"StartAt": "Probe", "States": {"Probe": {**state, **end}}}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="probe", definition=json.dumps(definition), roleArn=ROLE
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
        deadline = time.monotonic() + 30
        while (status := sfn.describe_execution(executionArn=execution)["status"]) == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not end"
            time.sleep(0.05)
        return str(status)


def test_a_capacity_failure_is_one_short_line_in_the_terminal_and_whole_in_the_debug_log(
    terminal: tuple[io.StringIO, Path],
) -> None:
    stream, debug_log = terminal
    # Given moto's interpreter running a state that fails as a capacity failure does
    failing = {"Type": "Fail", "Error": "InsufficientCapacityError", "Cause": CAUSE}
    assert _run_state(failing) == "FAILED"
    # Then the terminal has one short line naming the error and the start of its cause
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "ERROR" not in lines[0]
    assert "state failed: InsufficientCapacityError: no capacity for g5.xlarge" in lines[0]
    assert len(lines[0]) < 200, lines[0]
    # And the debug log has moto's whole report, cause and all
    assert CAUSE in debug_log.read_text()


def test_a_state_failure_reported_by_each_part_it_passes_through_shows_once(
    terminal: tuple[io.StringIO, Path],
) -> None:
    stream, debug_log = terminal
    # Given a state whose parameter names a path its input does not have: moto reports the
    # failure from each part of the state around it (four records), then the state's own error
    missing = {"Type": "Pass", "Parameters": {"orphans.$": "$.work.counts.orphan"}}
    assert _run_state(missing) == "FAILED"
    reports = [line for line in debug_log.read_text().splitlines() if "NoSuchJsonPathError" in line]
    assert len(reports) > 1, "moto reports the failure once per part: nothing to fold"
    # Then the terminal has one line for the failure and one for the state's error
    shown = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]  # no time
    assert shown == [
        "state failed: NoSuchJsonPathError at $.work.counts.orphan",
        "state failed: States.Runtime: The JSONPath '$.work.counts.orphan' specified for the "
        "field 'orphans.$' could not be found in the input '{}'",
    ]


def test_motos_notices_about_resources_it_does_not_create_stay_out_of_the_terminal(
    terminal: tuple[io.StringIO, Path],
) -> None:
    stream, debug_log = terminal
    # Given a template with a resource type moto's CloudFormation does not create
    template = {"Resources": {"Ready": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}
    with mock_aws():
        cfn = boto3.client("cloudformation", region_name="us-east-1")
        cfn.create_stack(StackName="probe", TemplateBody=json.dumps(template))
    # Then moto's notices went to the debug log only
    assert "AWS::CloudFormation::WaitConditionHandle" in debug_log.read_text()
    assert stream.getvalue() == ""
    # And a warning of the stack's own still reaches the terminal
    logging.getLogger("local.sim.hosts").warning("the agent does not know config key(s) ['x']")
    assert "WARNING local.sim.hosts: the agent does not know" in stream.getvalue()


def test_the_banner_says_where_everything_is_both_users_and_how_to_stop() -> None:
    urls = {"portal_url": ":1/", "api_url": ":2/v1", "control_url": ":3", "aws_endpoint_url": ":4"}
    info = SimpleNamespace(
        **{key: f"http://127.0.0.1{port}" for key, port in urls.items()},
        region="us-east-1",
        demo_user={"username": "demo", "password": "Demo-secret1a"},
        admin_user={"username": "admin", "password": "Admin-secret1a"},
        not_emulated=["PortalDistribution (AWS::CloudFront::Distribution): served locally"],
    )
    text = "\n".join(
        console.banner(info, Path("/s/stack.json"), Path("/s/local.log"), minute_seconds=5)
    )
    for url in ("http://127.0.0.1:1/", "http://127.0.0.1:2/v1", "http://127.0.0.1:3"):
        assert url in text
    assert "demo   password Demo-secret1a   (a user)" in text
    assert "admin  password Admin-secret1a   (an administrator: the admins group)" in text
    assert "dcvfleet login --username demo" in text
    assert "Debug log      /s/local.log" in text
    assert "PortalDistribution" in text
    assert "one minute lasts 5 s" in text
    assert text.endswith("Ctrl-C stops it.")
