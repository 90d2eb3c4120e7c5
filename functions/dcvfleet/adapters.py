"""Adapters to EC2, SSM, Secrets Manager and Step Functions. Nothing above this module touches
boto3."""

from __future__ import annotations

import json
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dcvfleet.errors import HostCommandError, LaunchError

SESSION_TAG = "dcvfleet:session-id"
OWNER_TAG = "dcvfleet:owner"
OS_TAG = "dcvfleet:os"
SECRET_TAG = "dcvfleet:secret-arn"  # noqa: S105 - a tag key, not a secret
CAPACITY_ERRORS = frozenset(
    {"InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported", "InstanceLimitExceeded"}
)
LIVE_STATES = ("pending", "running", "stopping", "stopped")
#: StopInstances' answers when an instance cannot hibernate (not configured, not supported, or
#: not yet ready to hibernate after boot): the stop falls back to a plain stop.
HIBERNATE_REFUSALS = frozenset(
    {"UnsupportedHibernationConfiguration", "UnsupportedOperation", "IncorrectInstanceState"}
)


@dataclass(frozen=True)
class Instance:
    instance_id: str
    state: str
    instance_type: str
    tags: dict[str, str]
    public_dns: str | None
    public_ip: str | None
    private_ip: str | None
    hibernation_configured: bool = False


class CapacityUnavailable(Exception):
    """One instance type in one subnet has no capacity."""


class Ec2Hosts:
    def __init__(self, ec2: Any) -> None:
        self._ec2 = ec2

    @staticmethod
    def _instance(raw: dict[str, Any]) -> Instance:
        return Instance(
            instance_id=raw["InstanceId"],
            state=raw["State"]["Name"],
            instance_type=raw["InstanceType"],
            tags={t["Key"]: t["Value"] for t in raw.get("Tags", [])},
            public_dns=raw.get("PublicDnsName") or None,
            public_ip=raw.get("PublicIpAddress") or None,
            private_ip=raw.get("PrivateIpAddress") or None,
            hibernation_configured=bool(raw.get("HibernationOptions", {}).get("Configured")),
        )

    def describe(self, instance_id: str) -> Instance | None:
        try:
            resp = self._ec2.describe_instances(InstanceIds=[instance_id])
        except ClientError as exc:
            if exc.response["Error"]["Code"].startswith("InvalidInstanceID"):
                return None
            raise
        found = [i for r in resp["Reservations"] for i in r["Instances"]]
        return self._instance(found[0]) if found else None

    def find_by_session(self, session_id: str) -> list[Instance]:
        resp = self._ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{SESSION_TAG}", "Values": [session_id]},
                {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
            ]
        )
        return [self._instance(i) for r in resp["Reservations"] for i in r["Instances"]]

    def launch(
        self,
        *,
        launch_template_id: str,
        instance_type: str,
        subnet_id: str,
        tags: dict[str, str],
        client_token: str,
    ) -> Instance:
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        request: dict[str, Any] = {
            "LaunchTemplate": {"LaunchTemplateId": launch_template_id, "Version": "$Latest"},
            "InstanceType": instance_type,
            "SubnetId": subnet_id,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": client_token,
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list},
                {"ResourceType": "volume", "Tags": tag_list},
            ],
        }
        try:
            try:
                resp = self._ec2.run_instances(**request)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "UnsupportedHibernationConfiguration":
                    raise
                # the launch template asks for hibernation, which this type cannot do: a
                # desktop that can only stop is better than none (its idle action falls back)
                request["ClientToken"] = f"{client_token[:60]}-nh"
                resp = self._ec2.run_instances(**request, HibernationOptions={"Configured": False})
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in CAPACITY_ERRORS:
                raise CapacityUnavailable(f"{code}: {instance_type} in {subnet_id}") from exc
            raise LaunchError(f"{code}: {exc.response['Error'].get('Message', '')}") from exc
        return self._instance(resp["Instances"][0])

    def fleet_instances(self, tag_key: str, tag_value: str, states: list[str]) -> list[Instance]:
        """Instances carrying the fleet tag, in ``states``."""
        paginator = self._ec2.get_paginator("describe_instances")
        pages = paginator.paginate(
            Filters=[
                {"Name": f"tag:{tag_key}", "Values": [tag_value]},
                {"Name": "instance-state-name", "Values": states},
            ]
        )
        return [
            self._instance(i)
            for page in pages
            for r in page["Reservations"]
            for i in r["Instances"]
        ]

    def start(self, instance_id: str) -> None:
        self._ec2.start_instances(InstanceIds=[instance_id])

    def stop(self, instance: Instance, *, hibernate: bool) -> str:
        """Stop (or hibernate) an instance; returns what was done: "hibernate" or "stop".

        Hibernation is tried only where the instance was launched for it, and an instance that
        refuses it is stopped instead: an idle desktop must stop either way.
        """
        if hibernate and instance.hibernation_configured:
            try:
                self._ec2.stop_instances(InstanceIds=[instance.instance_id], Hibernate=True)
                return "hibernate"
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in HIBERNATE_REFUSALS:
                    raise
        self._ec2.stop_instances(InstanceIds=[instance.instance_id])
        return "stop"

    def terminate(self, instance_id: str) -> None:
        try:
            self._ec2.terminate_instances(InstanceIds=[instance_id])
        except ClientError as exc:
            if not exc.response["Error"]["Code"].startswith("InvalidInstanceID"):
                raise


class SessionSecrets:
    """Per-session DCV credentials. Only ARNs leave this class."""

    PASSWORD_LENGTH = 24

    def __init__(self, secretsmanager: Any, prefix: str = "dcvfleet/sessions/") -> None:
        self._sm = secretsmanager
        self._prefix = prefix

    def name_for(self, session_id: str) -> str:
        return f"{self._prefix}{session_id}"

    def create(self, session_id: str, username: str, tags: dict[str, str]) -> str:
        password = self._sm.get_random_password(
            PasswordLength=self.PASSWORD_LENGTH,
            ExcludeCharacters="\"'`\\$ ",
            RequireEachIncludedType=True,
        )["RandomPassword"]
        try:
            resp = self._sm.create_secret(
                Name=self.name_for(session_id),
                ClientRequestToken=session_id,
                Description=f"DCV credentials of desktop session {session_id}",
                SecretString=json.dumps({"username": username, "password": password}),
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise
            resp = self._sm.describe_secret(SecretId=self.name_for(session_id))
        arn: str = resp["ARN"]
        return arn

    def delete(self, session_id: str) -> bool:
        try:
            self._sm.delete_secret(
                SecretId=self.name_for(session_id), ForceDeleteWithoutRecovery=True
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return False
            raise
        return True


@dataclass(frozen=True)
class CommandResult:
    status: str
    exit_code: int
    stdout: str
    stderr: str


class HostCommands:
    """Commands run on a host through SSM Run Command: a live check that does not trust the agent.

    Every failure (the host is not managed by SSM, the command fails or times out) is one
    HostCommandError with a readable message.
    """

    TERMINAL = frozenset({"Success", "Failed", "Cancelled", "TimedOut"})

    def __init__(
        self,
        ssm: Any,
        *,
        timeout: float = 30.0,
        poll: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ssm = ssm
        self.timeout = timeout
        self.poll = poll
        self._sleep = sleep
        self._clock = clock

    def run(
        self, instance_id: str, document: str, parameters: dict[str, str], *, step: str
    ) -> CommandResult:
        """Run ``document`` on the instance; ``step`` names the document step whose result is
        read (the fleet's documents have one step per platform: "linux" and "windows")."""
        try:
            command_id = self._ssm.send_command(
                InstanceIds=[instance_id],
                DocumentName=document,
                Parameters={k: [v] for k, v in parameters.items()},
                TimeoutSeconds=max(30, int(self.timeout)),
            )["Command"]["CommandId"]
        except ClientError as exc:
            error = exc.response["Error"]
            raise HostCommandError(
                f"{document} could not be sent to {instance_id}: {error['Code']} "
                f"{error.get('Message', '')}".strip()
            ) from exc
        deadline = self._clock() + self.timeout
        while True:
            try:
                resp = self._ssm.get_command_invocation(
                    CommandId=command_id, InstanceId=instance_id, PluginName=step
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "InvocationDoesNotExist":
                    raise
                resp = {"Status": "Pending"}
            if resp["Status"] in self.TERMINAL:
                return CommandResult(
                    status=resp["Status"],
                    exit_code=int(resp.get("ResponseCode", -1)),
                    stdout=resp.get("StandardOutputContent", ""),
                    stderr=resp.get("StandardErrorContent", ""),
                )
            if self._clock() >= deadline:
                raise HostCommandError(
                    f"{document} on {instance_id} did not finish within {self.timeout:g}s"
                )
            self._sleep(self.poll)

    def list_connections(
        self, instance_id: str, document: str, dcv_session_id: str, *, platform: str
    ) -> int:
        """How many clients are connected to the DCV session right now, asked on the host."""
        result = self.run(instance_id, document, {"dcvSessionId": dcv_session_id}, step=platform)
        if result.status != "Success":
            detail = " ".join((result.stderr or result.stdout).split())[:300]
            raise HostCommandError(
                f"dcv list-connections on {instance_id}: {result.status} "
                f"(exit {result.exit_code}) {detail}".strip()
            )
        try:
            data = json.loads(result.stdout)
        except ValueError as exc:
            raise HostCommandError(
                f"dcv list-connections on {instance_id} printed something that is not JSON"
            ) from exc
        if not isinstance(data, list):
            raise HostCommandError(f"dcv list-connections on {instance_id} did not print a list")
        return len(data)

    def notify(
        self, instance_id: str, document: str, dcv_session_id: str, message: str, *, platform: str
    ) -> None:
        result = self.run(
            instance_id,
            document,
            {"dcvSessionId": dcv_session_id, "message": message},
            step=platform,
        )
        if result.status != "Success":
            raise HostCommandError(
                f"in-session notice on {instance_id}: {result.status} (exit {result.exit_code})"
            )


class Workflows:
    def __init__(self, stepfunctions: Any) -> None:
        self._sfn = stepfunctions

    @staticmethod
    def execution_arn(state_machine_arn: str, name: str) -> str:
        return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"

    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str:
        resp = self._sfn.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload)
        )
        arn: str = resp["executionArn"]
        return arn

    def stop(self, execution_arn: str, cause: str) -> bool:
        """Stop a running execution; False when it is not running (any more)."""
        try:
            self._sfn.stop_execution(executionArn=execution_arn, error="Abandoned", cause=cause)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("ExecutionDoesNotExist", "ExecutionNotRunning"):
                return False
            raise
        return True

    def succeed(self, task_token: str, output: dict[str, Any]) -> bool:
        """Complete a waiting task; False when the task is already gone (done or timed out)."""
        try:
            self._sfn.send_task_success(taskToken=task_token, output=json.dumps(output))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in (
                "TaskTimedOut",
                "TaskDoesNotExist",
                "InvalidToken",
            ):
                return False
            raise
        return True


def dcv_username(owner_name: str) -> str:
    """An OS-safe user name derived from the Cognito user name."""
    allowed = string.ascii_lowercase + string.digits
    cleaned = "".join(c for c in owner_name.lower() if c in allowed)[:24]
    return f"dcv{cleaned}" if cleaned else "dcvuser"
