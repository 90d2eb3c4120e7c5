"""Adapters to EC2, Batch, ECS, SSM, Secrets Manager and Step Functions. Nothing above this
module touches boto3."""

from __future__ import annotations

import hashlib
import json
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from secrets import token_hex
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from dcvfleet.errors import (
    ConfigurationError,
    DcvFleetError,
    HostCommandError,
    ImageNotBuiltError,
    LaunchError,
    ReleaseConflictError,
    ReleaseNotFoundError,
)
from dcvfleet.quotas import VCPU_QUOTA_ERRORS
from dcvfleet.store import now_iso

SESSION_TAG = "dcvfleet:session-id"
OWNER_TAG = "dcvfleet:owner"
OS_TAG = "dcvfleet:os"
SECRET_TAG = "dcvfleet:secret-arn"  # noqa: S105 - a tag key, not a secret
#: On a warm pool's host: the profile whose pool it is in (it has no session tag until claimed).
POOL_TAG = "dcvfleet:pool"
#: On a warm pool's host: put there by the host's own agent once it runs, waiting for a claim
#: (the host is made: its first boot installed DCV and the agent). Only the host itself may put
#: it (HostRole: CreateTags of this one key, on the instance the credentials were delivered to).
POOL_READY_TAG = "dcvfleet:pool-ready"
#: On a batch session's secret: "<job role id>:<ECS task id>", the only principal (aws:userid)
#: the job role's policy lets read it.
READER_TAG = "dcvfleet:reader"
#: Batch tags the instances of its managed compute environments with this key.
BATCH_INSTANCE_TAG = "aws:batch:compute-environment"
CAPACITY_ERRORS = frozenset(
    {"InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported", "InstanceLimitExceeded"}
)
#: SendTaskSuccess/SendTaskFailure answers for a task that is no longer waiting.
TASK_GONE = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})
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
    launch_time: str | None = None
    availability_zone: str | None = None


class CapacityUnavailable(Exception):
    """One instance type in one subnet has no capacity."""


class QuotaExhausted(Exception):
    """EC2 refused a type because the account's vCPU quota for its family is used up (0 in a
    new account): no subnet, and no type of the same quota, can launch either."""

    def __init__(self, code: str, instance_type: str, subnet_id: str, message: str) -> None:
        super().__init__(f"{code}: {instance_type} in {subnet_id}: {message}".rstrip(": "))
        self.code = code
        self.instance_type = instance_type
        self.subnet_id = subnet_id
        self.message = message


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
            launch_time=raw["LaunchTime"].isoformat() if raw.get("LaunchTime") else None,
            availability_zone=raw.get("Placement", {}).get("AvailabilityZone"),
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
        hibernate: bool = False,
    ) -> Instance:
        """``hibernate``: enable hibernation at launch, whatever the launch template says (the
        desktop's idle action is hibernate; it cannot be enabled later:
        https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/enabling-hibernation.html)."""
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
        if hibernate:
            request["HibernationOptions"] = {"Configured": True}
        try:
            try:
                resp = self._ec2.run_instances(**request)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "UnsupportedHibernationConfiguration":
                    raise
                # the launch template asks for hibernation, which this type cannot do: a
                # desktop that can only stop is better than none (its idle action falls back)
                request["ClientToken"] = f"{client_token[:60]}-nh"
                request["HibernationOptions"] = {"Configured": False}
                resp = self._ec2.run_instances(**request)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in CAPACITY_ERRORS:
                raise CapacityUnavailable(f"{code}: {instance_type} in {subnet_id}") from exc
            if code in VCPU_QUOTA_ERRORS:
                message = exc.response["Error"].get("Message", "")
                raise QuotaExhausted(code, instance_type, subnet_id, message) from exc
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

    def fleet_page(
        self, filters: dict[str, list[str]], limit: int, token: str | None
    ) -> tuple[list[Instance], str | None]:
        """One page of DescribeInstances (``filters``: name -> values) and EC2's next token."""
        kwargs: dict[str, Any] = {
            "Filters": [{"Name": k, "Values": v} for k, v in filters.items()],
            "MaxResults": limit,
        }
        if token:
            kwargs["NextToken"] = token
        resp = self._ec2.describe_instances(**kwargs)
        found = [self._instance(i) for r in resp["Reservations"] for i in r["Instances"]]
        return found, resp.get("NextToken") or None

    def start(self, instance_id: str) -> None:
        self._ec2.start_instances(InstanceIds=[instance_id])

    def impaired(self, instance_ids: list[str]) -> dict[str, list[str]]:
        """Of ``instance_ids``, those EC2's status checks find impaired, each with the checks that
        failed ("system status check", "instance status check", "attached EBS status check").

        DescribeInstanceStatus with IncludeAllInstances (else it describes running instances
        only); each check's summary status is ok, impaired, insufficient-data, not-applicable or
        initializing
        (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceStatus.html,
        https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceStatusSummary.html).
        An instance id EC2 no longer knows (terminated meanwhile) makes the whole call fail:
        then each is asked alone, and the one EC2 does not know is left out."""
        if not instance_ids:
            return {}
        try:
            resp = self._ec2.describe_instance_status(
                InstanceIds=instance_ids, IncludeAllInstances=True
            )
        except ClientError as exc:
            if not exc.response["Error"]["Code"].startswith("InvalidInstanceID"):
                raise
            if len(instance_ids) == 1:
                return {}
            return {k: v for i in instance_ids for k, v in self.impaired([i]).items()}
        checks = {
            "SystemStatus": "system status check",
            "InstanceStatus": "instance status check",
            "AttachedEbsStatus": "attached EBS status check",
        }
        found: dict[str, list[str]] = {}
        for status in resp.get("InstanceStatuses", []):
            failed = [
                name
                for key, name in checks.items()
                if status.get(key, {}).get("Status") == "impaired"
            ]
            if failed:
                found[status["InstanceId"]] = failed
        return found

    def tag(self, instance_id: str, tags: dict[str, str]) -> None:
        """Put ``tags`` on an instance (CreateTags adds them, and overwrites a key it has:
        https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateTags.html)."""
        self._ec2.create_tags(
            Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
        )

    def hibernation_problem(self, instance_type: str, root_volume_gib: int) -> str | None:
        """Why an instance of ``instance_type`` with a root volume of ``root_volume_gib`` GiB
        cannot hibernate, in plain words; None when it can. EC2 says whether the type supports
        it (DescribeInstanceTypes' HibernationSupported, and its RAM: MemoryInfo.SizeInMiB,
        https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_InstanceTypeInfo.html), and
        the RAM is written to the root volume, which must be large enough to hold it
        (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/hibernating-prerequisites.html;
        the launch templates' root volumes are encrypted, as hibernation also requires). 0
        GiB: the root volume's size is unknown, and not checked. The AMI's own support cannot
        be read here: a launch it refuses is made without hibernation (``launch``)."""
        try:
            resp = self._ec2.describe_instance_types(InstanceTypes=[instance_type])
        except ClientError as exc:
            return f"whether {instance_type} can hibernate could not be read ({exc})"
        found = resp.get("InstanceTypes", [])
        if not found or not found[0].get("HibernationSupported"):
            return f"{instance_type} cannot hibernate (EC2 does not support it for that type)"
        ram_mib = int(found[0].get("MemoryInfo", {}).get("SizeInMiB", 0))
        if root_volume_gib and ram_mib >= root_volume_gib * 1024:
            return (
                f"{instance_type}'s {ram_mib // 1024} GiB of RAM do not fit on its"
                f" {root_volume_gib} GiB root volume (RootVolumeSizeGiB)"
            )
        return None

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

    def __init__(
        self, secretsmanager: Any, prefix: str = "dcvfleet/sessions/", kms_key_id: str = ""
    ) -> None:
        self._sm = secretsmanager
        self._prefix = prefix
        #: The fleet's customer-managed key (KmsKeyArn); "" for Secrets Manager's own key.
        self._kms = {"KmsKeyId": kms_key_id} if kms_key_id else {}

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
                SecretString=json.dumps(
                    # eventKey: the host's agent signs its events with it (events.signature)
                    {"username": username, "password": password, "eventKey": token_hex(32)}
                ),
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                **self._kms,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise
            resp = self._sm.describe_secret(SecretId=self.name_for(session_id))
        arn: str = resp["ARN"]
        return arn

    def read(self, secret_arn: str) -> dict[str, str] | None:
        """The user name and password, or None once the secret is deleted (or being deleted)."""
        try:
            value = self._sm.get_secret_value(SecretId=secret_arn)["SecretString"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] in (
                "ResourceNotFoundException",
                "InvalidRequestException",
            ):
                return None
            raise
        data = json.loads(value)
        return {"username": str(data["username"]), "password": str(data["password"])}

    def grant_reader(self, secret_arn: str, reader: str) -> None:
        """Let exactly one host or job's task read this secret (see READER_TAG); idempotent."""
        self._sm.tag_resource(SecretId=secret_arn, Tags=[{"Key": READER_TAG, "Value": reader}])

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


class EventKeys:
    """The sessions' event keys, read from their secrets through Powertools' SecretsProvider
    and cached (a key never changes for the life of its secret)."""

    MAX_AGE_SECONDS = 900

    def __init__(self, secretsmanager: Any) -> None:
        self._provider = SecretsProvider(boto3_client=secretsmanager)

    def key(self, secret_arn: str) -> str | None:
        """The key, or None when the secret is gone, unreadable or holds none."""
        try:
            value = self._provider.get(secret_arn, transform="json", max_age=self.MAX_AGE_SECONDS)
        except GetParameterError:
            return None
        key = value.get("eventKey") if isinstance(value, dict) else None
        return key if isinstance(key, str) and key else None


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

    @staticmethod
    def _target(
        parameters: dict[str, str], platform: str, task_arn: str | None
    ) -> tuple[dict[str, str], str]:
        """A batch desktop's DCV runs in its container: the container documents' one step
        ("container") finds it on the host by its ECS task and runs the command inside."""
        if task_arn:
            return {**parameters, "taskArn": task_arn}, "container"
        return parameters, platform

    def session_renderer(
        self, instance_id: str, document: str, dcv_session_id: str, *, task_arn: str
    ) -> str:
        """``glxinfo -B`` as the DCV session's own OpenGL client sees it, inside a batch
        desktop's container (its output; HostCommandError when it did not run)."""
        parameters, step = self._target({"dcvSessionId": dcv_session_id}, "linux", task_arn)
        result = self.run(instance_id, document, parameters, step=step)
        _succeeded(result, f"glxinfo -B in the DCV session on {instance_id}")
        return result.stdout

    def list_connections(
        self,
        instance_id: str,
        document: str,
        dcv_session_id: str,
        *,
        platform: str,
        task_arn: str | None = None,
    ) -> int:
        """How many clients are connected to the DCV session right now, asked on the host."""
        parameters, step = self._target({"dcvSessionId": dcv_session_id}, platform, task_arn)
        result = self.run(instance_id, document, parameters, step=step)
        _succeeded(result, f"dcv list-connections on {instance_id}")
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
        self,
        instance_id: str,
        document: str,
        dcv_session_id: str,
        message: str,
        *,
        platform: str,
        task_arn: str | None = None,
    ) -> None:
        parameters, step = self._target(
            {"dcvSessionId": dcv_session_id, "message": message}, platform, task_arn
        )
        result = self.run(instance_id, document, parameters, step=step)
        if result.status != "Success":
            raise HostCommandError(
                f"in-session notice on {instance_id}: {result.status} (exit {result.exit_code})"
            )


def _succeeded(result: CommandResult, what: str) -> None:
    """HostCommandError naming ``what`` unless the Run Command succeeded, with the start of what
    the command printed."""
    if result.status != "Success":
        detail = " ".join((result.stderr or result.stdout).split())[:300]
        raise HostCommandError(
            f"{what}: {result.status} (exit {result.exit_code}) {detail}".strip()
        )


class OperatorNotices:
    """Messages to the fleet's operators: the OperatorTopic (SNS; OperatorEmail subscribes)."""

    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self.topic_arn = topic_arn

    def publish(self, subject: str, message: str) -> None:
        # an e-mail subject is ASCII, at most 100 characters, and has no line break:
        # https://docs.aws.amazon.com/sns/latest/api/API_Publish.html
        self._sns.publish(TopicArn=self.topic_arn, Subject=subject[:100], Message=message)


class FleetEvents:
    """Events the control plane puts on the fleet bus (source ``dcvfleet``) from a function."""

    SOURCE = "dcvfleet"

    def __init__(self, events: Any, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        resp = self._events.put_events(
            Entries=[
                {
                    "EventBusName": self._bus,
                    "Source": self.SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, separators=(",", ":")),
                }
            ]
        )
        if resp.get("FailedEntryCount"):
            failed = resp["Entries"][0]
            raise RuntimeError(
                f"{detail_type} was not published: {failed.get('ErrorCode')} "
                f"{failed.get('ErrorMessage')}"
            )


class UserNotifications:
    """The users' topic: each user's address is subscribed with a filter policy on the message
    attribute ``owner`` (every publish to the topic sets it), so a notification reaches its
    owner only (https://docs.aws.amazon.com/sns/latest/dg/sns-message-filtering.html)."""

    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    @staticmethod
    def filter_policy(owner: str) -> str:
        """Only messages whose ``owner`` attribute is ``owner`` (scope MessageAttributes)."""
        return json.dumps({"owner": [owner]})

    def subscribe(self, email: str, owner: str) -> str:
        """Subscribe ``email`` to ``owner``'s notifications; the subscription's ARN. SNS sends
        the address a confirmation e-mail; nothing is delivered until it is confirmed. Subscribe
        answers an existing subscription of the same endpoint and attributes with its ARN
        (https://docs.aws.amazon.com/sns/latest/api/API_Subscribe.html); ReturnSubscriptionArn
        gives the ARN of one pending confirmation too."""
        resp = self._sns.subscribe(
            TopicArn=self._topic_arn,
            Protocol="email",
            Endpoint=email,
            Attributes={
                "FilterPolicyScope": "MessageAttributes",
                "FilterPolicy": self.filter_policy(owner),
            },
            ReturnSubscriptionArn=True,
        )
        arn: str = resp["SubscriptionArn"]
        return arn

    def unsubscribe(self, subscription_arn: str) -> bool:
        """Delete a subscription of the users' topic; False when it is gone already or SNS
        refuses (it may, for one still pending confirmation, which it drops unconfirmed after
        three days) (https://docs.aws.amazon.com/sns/latest/api/API_Unsubscribe.html)."""
        if not subscription_arn.startswith(f"{self._topic_arn}:"):
            return False  # not one of this topic's (nor "pending confirmation")
        try:
            self._sns.unsubscribe(SubscriptionArn=subscription_arn)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NotFound", "InvalidParameter"):
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
        return self._answer(
            self._sfn.send_task_success, taskToken=task_token, output=json.dumps(output)
        )

    def fail(self, task_token: str, error: DcvFleetError) -> bool:
        """Fail a waiting task with one of DCV Fleet's errors (its Catch sees the class's name,
        never a reserved ``States.*`` one); False when the task is already gone."""
        return self._answer(
            self._sfn.send_task_failure,
            taskToken=task_token,
            error=type(error).__name__,
            cause=error.message[:32768],
        )

    @staticmethod
    def _answer(call: Callable[..., Any], **params: Any) -> bool:
        try:
            call(**params)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in (
                "TaskTimedOut",
                "TaskDoesNotExist",
                "InvalidToken",
            ):
                return False
            raise
        return True


#: Windows caps local account names at 20 characters ("User account names are limited to 20
#: characters", https://learn.microsoft.com/en-us/windows/win32/api/lmaccess/ns-lmaccess-user_info_0);
#: Linux allows 32. One cap for every host keeps one name per owner.
MAX_OS_USERNAME = 20
_USERNAME_HASH_CHARS = 6


def dcv_username(owner_name: str) -> str:
    """An OS-safe user name derived from the Cognito user name: ``dcv`` and the name's lowercase
    letters and digits, at most MAX_OS_USERNAME characters. A name too long for that keeps its
    first letters and ends in a short hash of the whole owner name, so two long names that share
    a prefix still get different accounts."""
    allowed = string.ascii_lowercase + string.digits
    cleaned = "".join(c for c in owner_name.lower() if c in allowed)
    if not cleaned:
        return "dcvuser"
    name = f"dcv{cleaned}"
    if len(name) <= MAX_OS_USERNAME:
        return name
    digest = hashlib.sha256(owner_name.encode()).hexdigest()[:_USERNAME_HASH_CHARS]
    return name[: MAX_OS_USERNAME - _USERNAME_HASH_CHARS] + digest


JOB_WAITING = frozenset({"SUBMITTED", "PENDING", "RUNNABLE"})
JOB_ENDED = frozenset({"SUCCEEDED", "FAILED"})


@dataclass(frozen=True)
class BatchJob:
    job_id: str
    name: str
    status: str
    status_reason: str
    created_at: float  # epoch seconds
    container_instance_arn: str | None
    task_arn: str | None
    exit_code: int | None
    container_reason: str

    @property
    def task_id(self) -> str | None:
        return self.task_arn.rsplit("/", 1)[-1] if self.task_arn else None

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> BatchJob:
        container = raw.get("container") or {}
        exit_code = container.get("exitCode")
        return cls(
            job_id=raw["jobId"],
            name=raw.get("jobName", ""),
            status=raw["status"],
            status_reason=raw.get("statusReason", "") or "",
            created_at=float(raw.get("createdAt") or 0) / 1000,
            container_instance_arn=container.get("containerInstanceArn") or None,
            task_arn=container.get("taskArn") or None,
            exit_code=int(exit_code) if isinstance(exit_code, int) else None,
            container_reason=container.get("reason", "") or "",
        )


class BatchJobs:
    """A desktop container is one Batch job named after its session, in one job queue."""

    def __init__(self, batch: Any, ecs: Any, job_queue: str) -> None:
        self._batch = batch
        self._ecs = ecs
        self.job_queue = job_queue

    @staticmethod
    def name_for(session_id: str) -> str:
        return f"dcvfleet-{session_id}"

    def find(self, session_id: str) -> BatchJob | None:
        """The session's newest job that has not ended, if any (a retried submit finds it)."""
        summaries = self._batch.list_jobs(
            jobQueue=self.job_queue,
            filters=[{"name": "JOB_NAME", "values": [self.name_for(session_id)]}],
        ).get("jobSummaryList", [])
        for summary in sorted(summaries, key=lambda j: j.get("createdAt", 0), reverse=True):
            if summary.get("status") not in JOB_ENDED:
                return self.describe(summary["jobId"])
        return None

    def submit(
        self,
        session_id: str,
        job_definition: str,
        environment: dict[str, str],
        timeout_seconds: int,
        tags: dict[str, str],
    ) -> str:
        params: dict[str, Any] = {
            "jobName": self.name_for(session_id),
            "jobQueue": self.job_queue,
            "jobDefinition": job_definition,
            "containerOverrides": {
                "environment": [{"name": k, "value": v} for k, v in environment.items()]
            },
            "tags": tags,
            "propagateTags": True,
        }
        if timeout_seconds > 0:
            params["timeout"] = {"attemptDurationSeconds": max(60, timeout_seconds)}
        job_id: str = self._batch.submit_job(**params)["jobId"]
        return job_id

    def describe(self, job_id: str) -> BatchJob | None:
        jobs = self._batch.describe_jobs(jobs=[job_id]).get("jobs", [])
        return BatchJob.from_api(jobs[0]) if jobs else None

    def terminate(self, job_id: str, reason: str) -> None:
        """Cancel a job that has not started, end one that runs; a no-op on an ended job."""
        self._batch.terminate_job(jobId=job_id, reason=reason[:256])

    def instance_of(self, job: BatchJob) -> str | None:
        """The EC2 instance the job's container runs on (its ECS container instance's)."""
        if not job.container_instance_arn:
            return None
        # arn:aws:ecs:<region>:<account>:container-instance/<cluster>/<id>
        parts = job.container_instance_arn.split(":", 5)[-1].split("/")
        if len(parts) != 3:
            return None
        found = self._ecs.describe_container_instances(
            cluster=parts[1], containerInstances=[job.container_instance_arn]
        ).get("containerInstances", [])
        instance_id = found[0].get("ec2InstanceId") if found else None
        return str(instance_id) if instance_id else None


@dataclass(frozen=True)
class Release:
    release: str
    image: str
    job_definition: str


class Releases:
    """The current release of the desktop image: an SSM parameter holding a JSON document."""

    def __init__(self, ssm: Any, parameter: str) -> None:
        self._ssm = ssm
        self.parameter = parameter

    def publish(self, release: str, image: str, job_definition: str) -> None:
        value = {"release": release, "image": image, "jobDefinition": job_definition}
        self._ssm.put_parameter(
            Name=self.parameter,
            Value=json.dumps(value, separators=(",", ":")),
            Type="String",
            Overwrite=True,
        )

    def current(self) -> Release:
        text = self._ssm.get_parameter(Name=self.parameter)["Parameter"]["Value"]
        try:
            data = json.loads(text)
            return Release(
                release=str(data["release"]),
                image=str(data["image"]),
                job_definition=str(data["jobDefinition"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"SSM parameter {self.parameter} is not a release document: {exc}"
            ) from exc


class ImageBuilds:
    """The release's image in ECR, and the job definition revisions that run it."""

    def __init__(self, ecr: Any, batch: Any) -> None:
        self._ecr = ecr
        self._batch = batch

    def image_uri(self, repository_uri: str, tag: str) -> str:
        """``<repository>:<tag>`` once the build pushed it (tags are immutable)."""
        name = repository_uri.split("/", 1)[1]
        try:
            found = self._ecr.describe_images(
                repositoryName=name, imageIds=[{"imageTag": tag}]
            ).get("imageDetails", [])
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in (
                "ImageNotFoundException",
                "RepositoryNotFoundException",
            ):
                raise
            found = []
        if not found:
            raise ImageNotBuiltError(f"no image {repository_uri}:{tag}: the build pushed nothing")
        return f"{repository_uri}:{tag}"

    def register_revision(self, current: str, image: str, release: str) -> str:
        """A new revision of ``current``'s job definition that runs ``image``."""
        found = self._batch.describe_job_definitions(jobDefinitions=[current]).get(
            "jobDefinitions", []
        )
        if not found:
            raise ConfigurationError(f"job definition {current} does not exist")
        base = found[0]
        container = dict(base["containerProperties"])
        container["image"] = image
        # Tags under aws: are AWS's own (CloudFormation's aws:cloudformation:*): a request that
        # sets one is refused.
        tags = {k: v for k, v in base.get("tags", {}).items() if not k.lower().startswith("aws:")}
        params: dict[str, Any] = {
            "jobDefinitionName": base["jobDefinitionName"],
            "type": base.get("type", "container"),
            "containerProperties": container,
            "tags": {**tags, "dcvfleet:release": release},
            "propagateTags": base.get("propagateTags", True),
        }
        for key in ("parameters", "retryStrategy", "timeout", "platformCapabilities"):
            if base.get(key):
                params[key] = base[key]
        arn: str = self._batch.register_job_definition(**params)["jobDefinitionArn"]
        return arn

    def deregister_revision(self, job_definition: str) -> None:
        """Desktops still running on it go on; no new one starts on it."""
        try:
            self._batch.deregister_job_definition(jobDefinition=job_definition)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ClientException":
                raise


class ReleaseRecords:
    """One DynamoDB item per release (its version is the key), string attributes only."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def create(self, release: str, fields: dict[str, str]) -> None:
        now = now_iso()
        item = {k: {"S": v} for k, v in {**fields, "createdAt": now, "updatedAt": now}.items()}
        try:
            self._db.put_item(
                TableName=self._table,
                Item={"release": {"S": release}, **item},
                ConditionExpression="attribute_not_exists(#r)",
                ExpressionAttributeNames={"#r": "release"},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise ReleaseConflictError(
                f"release {release} exists already; a build's version names one release"
            ) from exc

    def get(self, release: str) -> dict[str, str] | None:
        item = self._db.get_item(
            TableName=self._table, Key={"release": {"S": release}}, ConsistentRead=True
        ).get("Item")
        return {k: v["S"] for k, v in item.items()} if item else None

    def require(self, release: str) -> dict[str, str]:
        record = self.get(release)
        if record is None:
            raise ReleaseNotFoundError(f"release {release} does not exist")
        return record

    def update(self, release: str, **fields: str) -> None:
        fields = {**fields, "updatedAt": now_iso()}
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": {"S": v} for i, v in enumerate(fields.values())}
        self._db.update_item(
            TableName=self._table,
            Key={"release": {"S": release}},
            UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
            ConditionExpression="attribute_exists(#r)",
            ExpressionAttributeNames={**names, "#r": "release"},
            ExpressionAttributeValues=values,
        )

    def list(self) -> list[dict[str, str]]:
        items: list[dict[str, str]] = []
        kwargs: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        while True:
            page = self._db.scan(**kwargs)
            items += [{k: v["S"] for k, v in item.items()} for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return sorted(items, key=lambda r: r.get("createdAt", ""))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
