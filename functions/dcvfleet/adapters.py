"""Adapters to EC2, Secrets Manager and Step Functions. Nothing above this module touches boto3."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dcvfleet.errors import LaunchError

SESSION_TAG = "dcvfleet:session-id"
OWNER_TAG = "dcvfleet:owner"
OS_TAG = "dcvfleet:os"
SECRET_TAG = "dcvfleet:secret-arn"  # noqa: S105 - a tag key, not a secret
CAPACITY_ERRORS = frozenset(
    {"InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported", "InstanceLimitExceeded"}
)
LIVE_STATES = ("pending", "running", "stopping", "stopped")


@dataclass(frozen=True)
class Instance:
    instance_id: str
    state: str
    instance_type: str
    tags: dict[str, str]
    public_dns: str | None
    public_ip: str | None
    private_ip: str | None


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
        try:
            resp = self._ec2.run_instances(
                LaunchTemplate={"LaunchTemplateId": launch_template_id, "Version": "$Latest"},
                InstanceType=instance_type,
                SubnetId=subnet_id,
                MinCount=1,
                MaxCount=1,
                ClientToken=client_token,
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": tag_list},
                    {"ResourceType": "volume", "Tags": tag_list},
                ],
            )
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in CAPACITY_ERRORS:
                raise CapacityUnavailable(f"{code}: {instance_type} in {subnet_id}") from exc
            raise LaunchError(f"{code}: {exc.response['Error'].get('Message', '')}") from exc
        return self._instance(resp["Instances"][0])

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
