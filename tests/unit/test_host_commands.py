"""The SSM Run Command adapter and the launch's hibernation fallback, against stub clients that
answer as the AWS APIs do: every failure becomes one readable error, never a crash or a hang."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from dcvfleet.adapters import Ec2Hosts, HostCommands
from dcvfleet.errors import HostCommandError


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} from the stub"}}, "Call")


class StubSsm:
    def __init__(
        self, invocations: list[dict[str, Any] | ClientError], send: ClientError | None = None
    ) -> None:
        self.invocations = invocations
        self.send = send
        self.asked: list[dict[str, Any]] = []

    def send_command(self, **kwargs: Any) -> dict[str, Any]:
        if self.send is not None:
            raise self.send
        return {"Command": {"CommandId": "cmd-1"}}

    def get_command_invocation(self, **kwargs: Any) -> dict[str, Any]:
        self.asked.append(kwargs)
        answer = self.invocations.pop(0) if len(self.invocations) > 1 else self.invocations[0]
        if isinstance(answer, ClientError):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _commands(ssm: StubSsm, timeout: float = 5) -> HostCommands:
    clock = Clock()
    return HostCommands(ssm, timeout=timeout, poll=1, sleep=clock.sleep, clock=lambda: clock.now)


def _done(stdout: str, status: str = "Success", code: int = 0) -> dict[str, Any]:
    return {
        "Status": status,
        "ResponseCode": code,
        "StandardOutputContent": stdout,
        "StandardErrorContent": "boom",
    }


def test_connections_are_counted_from_the_hosts_own_answer_after_it_finishes() -> None:
    # Given an invocation that is not there yet, then in progress, then done with 2 connections
    ssm = StubSsm(
        [
            _error("InvocationDoesNotExist"),
            {"Status": "InProgress"},
            _done('[{"connection-id": 1}, {"connection-id": 2}]'),
        ]
    )
    # When the connections are asked for on a Linux host
    count = _commands(ssm).list_connections(
        "i-0abc", "ListConnections", "desktop", platform="linux"
    )
    # Then the count is the host's, and the Linux step's result was read
    assert count == 2
    assert all(a["PluginName"] == "linux" for a in ssm.asked)


@pytest.mark.parametrize(
    ("ssm", "message"),
    [
        (
            StubSsm([_done("")], send=_error("InvalidInstanceId")),
            "could not be sent to i-0abc: InvalidInstanceId",
        ),
        (StubSsm([_done("", status="Failed", code=1)]), r"Failed \(exit 1\) boom"),
        (StubSsm([_done("Welcome <html> not JSON")]), "not JSON"),
        (StubSsm([_done('{"connections": 0}')]), "did not print a list"),
        (StubSsm([{"Status": "InProgress"}]), "did not finish within 5s"),
    ],
    ids=["not-sent", "command-failed", "not-json", "not-a-list", "hung"],
)
def test_every_failure_of_the_live_check_is_one_readable_error(ssm: StubSsm, message: str) -> None:
    with pytest.raises(HostCommandError, match=message):
        _commands(ssm).list_connections("i-0abc", "ListConnections", "desktop", platform="linux")


def test_a_failed_notice_is_an_error_the_caller_may_log() -> None:
    ssm = StubSsm([_done("", status="Failed", code=2)])
    with pytest.raises(HostCommandError, match="in-session notice on i-0abc: Failed"):
        _commands(ssm).notify("i-0abc", "NotifyUsers", "console", "hello", platform="windows")
    assert ssm.asked[0]["PluginName"] == "windows"


class StubEc2:
    def __init__(self, refuse_first_with: str | None) -> None:
        self.refuse_first_with = refuse_first_with
        self.calls: list[dict[str, Any]] = []

    def run_instances(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.refuse_first_with and len(self.calls) == 1:
            raise _error(self.refuse_first_with)
        return {
            "Instances": [
                {
                    "InstanceId": "i-0new",
                    "State": {"Name": "pending"},
                    "InstanceType": kwargs["InstanceType"],
                }
            ]
        }


def test_a_type_that_cannot_hibernate_is_launched_without_hibernation() -> None:
    # Given a launch template asking for hibernation, which the type refuses
    ec2 = StubEc2("UnsupportedHibernationConfiguration")
    # When the host is launched
    instance = Ec2Hosts(ec2).launch(
        launch_template_id="lt-1",
        instance_type="g5.xlarge",
        subnet_id="subnet-a",
        tags={"k": "v"},
        client_token="t" * 64,
    )
    # Then it is launched again without hibernation, under its own idempotency token
    assert instance.instance_id == "i-0new"
    assert "HibernationOptions" not in ec2.calls[0]
    assert ec2.calls[1]["HibernationOptions"] == {"Configured": False}
    assert ec2.calls[1]["ClientToken"] != ec2.calls[0]["ClientToken"]
    assert len(ec2.calls[1]["ClientToken"]) <= 64


def test_a_launch_that_is_refused_for_another_reason_is_not_retried() -> None:
    ec2 = StubEc2("UnauthorizedOperation")
    with pytest.raises(Exception, match="UnauthorizedOperation"):
        Ec2Hosts(ec2).launch(
            launch_template_id="lt-1",
            instance_type="g5.xlarge",
            subnet_id="subnet-a",
            tags={},
            client_token="t",
        )
    assert len(ec2.calls) == 1
