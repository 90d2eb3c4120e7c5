"""The AWS emulator (moto, pinned in requirements) and every workaround for its gaps, in one place.

Each workaround names the gap it covers; ``tests/local/test_emulator_gaps.py`` shows each gap on
plain moto, so the test fails (and the workaround can go) when moto's behaviour changes.

Gaps worked around here:

* ``LAMBDA_RUNTIME`` - moto runs Lambda code only in Docker. Functions run in-process instead,
  bound to the real handler in ``functions/``, with the function's own environment (per thread)
  and their log lines saved to CloudWatch Logs as ``/aws/lambda/<name>``. Lambda gives each
  concurrent invocation an execution environment of its own; here they would share the module's
  state (Powertools' API resolver keeps the current event and route there), so a function runs
  one invocation at a time and the others wait their turn.
* ``EVENTS_TARGETS`` - EventBridge delivers only to SQS, logs and bus targets and raises on Lambda
  and Step Functions targets. Those two are delivered here, asynchronously, as EventBridge does,
  with what the target asks for: its ``Input`` (verbatim), ``InputPath`` or ``InputTransformer``,
  else the event (moto keeps all three on the target).
* ``EVENTS_SCHEDULE_PATTERN`` - a rule with a ``ScheduleExpression`` and no ``EventPattern``
  matches every event put on its bus (so every EC2 state change on the default bus would start
  a scheduled workflow). On AWS it matches none: here it is only fired by its schedule.
* ``EVENTS_SCHEDULES`` - rules with a ``ScheduleExpression`` are stored but never fired.
  ``Scheduler`` fires every ENABLED ``rate(N minute|minutes|hour|hours|day|days)`` rule on its
  rate (the first time one rate after it first sees the rule), sending the "Scheduled Event"
  envelope EventBridge sends (source ``aws.events``, detail ``{}``, resources ``[rule ARN]``)
  through the EVENTS_TARGETS delivery. One schedule minute lasts ``minute_seconds`` real
  seconds (``python -m local --minute-seconds S``, default 60). ``cron(...)`` rules are not run
  on their own (a warning names each once); ``POST /schedules/run`` on ``control_url`` fires
  any schedule rule at once.
* ``SSM_DOCUMENT_FROM_CLOUDFORMATION`` - an ``AWS::SSM::Document`` without ``DocumentFormat``
  fails the stack ("Invalid document format None"; AWS defaults to JSON), and a ``Content``
  object (how a template writes it) is kept as a Python repr, so ``GetDocument`` returns no JSON
  and ``DescribeDocument`` fails. Created here as CloudFormation does (JSON text, named
  ``<stack>-<LogicalId>-<suffix>`` without ``Name``).
* ``SSM_RUN_COMMAND`` - ``SendCommand`` records a command without checking its document, its
  parameters or its instances and never runs it; ``GetCommandInvocation`` answers "Success" with
  no output. Here ``SendCommand`` fails as SSM does: ``InvalidDocument`` (no such document),
  ``InvalidParameters`` (a name the document does not declare, a required one missing, a value
  outside ``allowedValues`` or not fully matching ``allowedPattern``), ``InvalidInstanceId`` (an
  instance EC2 does not know, one shutting down or terminated, or one that is not a simulated
  host and so has no SSM Agent; the message is this emulator's, the code is SSM's). A command
  for a simulated host runs: each ``mainSteps`` step whose ``platformType`` precondition fits
  the host runs, in order, through ``bash`` in the host's workdir and environment (``dcv`` and
  ``nvidia-smi`` on ``PATH`` are its simulators), with ``{{ name }}`` placeholders replaced by
  the parameters; the others are reported ``Success``/``Skipped``. Simulated hosts run Linux,
  so a Windows host's ``aws:runPowerShellScript`` step runs the document's
  ``aws:runShellScript`` lines instead (reported under the PowerShell step's name, as on a
  Windows node). While the host is stopped or still booting the invocation stays ``Pending``
  and runs when it is up, or ends ``TimedOut``/``DeliveryTimedOut`` after the command's
  ``TimeoutSeconds`` (default 3600), as SSM's delivery timeout; a host terminated meanwhile
  ends ``Failed``/``Undeliverable``. ``GetCommandInvocation`` reports each step's real
  ``Status`` (``Pending``, ``InProgress``, ``Success``, ``Failed``, ``TimedOut``),
  ``ResponseCode`` (-1 until it ran), ``StandardOutputContent`` and ``StandardErrorContent``
  (their first 24,000 characters); as the API reference says, a document with more than one
  step needs ``PluginName`` (the step's name), else ``InvalidPluginName``.
* ``SFN_EXECUTION`` - state machines execute only after ``POST /moto-api/config`` switches the
  interpreter on, and its own clients call ``http://localhost:$MOTO_PORT``.
* ``SFN_TASK_FAILURE_CAUSE`` - ``SendTaskFailure`` passes only the ``error`` on: its ``cause``
  is dropped, so a Catch sees ``{"Error": ...}`` without the reason. Here the cause goes on too.
* ``SFN_FROM_CLOUDFORMATION`` - CloudFormation-created state machines ignore ``Definition`` /
  ``DefinitionSubstitutions`` and are not executable (handled by ``local.deploy``, which
  creates them through the API with their substitutions resolved).
* ``PUBLIC_PARAMETERS`` - AWS's public ``/aws/service/...`` SSM parameters (the AMI defaults of
  the launch templates) are missing apart from a few, and their names are reserved, so they are
  seeded into the emulator's parameter store directly.
* ``EVENTBUS_REF`` - moto's ``EventBus`` has no CloudFormation physical id, so ``Ref`` to a bus
  yields moto's object instead of the bus name and a rule on a custom bus fails to create.
* ``CFN_LIST_PARAMETERS`` - ``Fn::Join`` over a ``CommaDelimitedList`` parameter left at its
  default joins the characters of its raw string, ``Ref`` to a ``List<...>`` parameter
  stringifies a Python list, and ``Ref`` to a ``CommaDelimitedList`` left at its default is its
  raw string where a list belongs (a compute environment's ``InstanceTypes``), so
  ``Fn::Join [<separator>, Ref List]`` is replaced by the parameter's members joined by the
  separator, and any other ``Ref List`` by its members, as AWS would resolve them.
* ``DDB_ATOMIC_WRITES`` - DynamoDB conditional writes and transactions check their conditions,
  write, and (for a failed transaction) restore a copy of the table without a lock, so two
  threads can both pass a condition, or a rollback can undo another thread's write. DynamoDB
  serialises them; here one lock does.
* ``EC2_STATE_CHANGES`` - EC2 instances change state without the ``EC2 Instance State-change
  Notification`` events AWS puts on the default bus. After every run, start, stop and
  terminate, the emulator puts them (each transition: pending, running, stopping, stopped,
  shutting-down, terminated) and calls the local stack's listeners.
* ``EC2_PAGE_TOKEN`` - ``DescribeInstances`` with a ``NextToken`` it never gave fails with a
  bare ``ValueError`` (HTTP 500, which clients retry); EC2 refuses it as a client error. Here it
  answers ``InvalidParameterValue``.
* ``CLOUDFRONT`` - moto's CloudFormation has no CloudFront resources, and a custom resource's
  function runs without its layers unpacked. The portal's distribution, its origin access
  control and headers policy, and the ``PortalSite`` custom resource that publishes it are left
  out of the emulated stack (``LOCALLY_SERVED_TYPES``); ``local.portal`` serves ``portal/`` with
  the ``config.json`` ``dcvfleet.portal`` writes on AWS, under the distribution's security
  headers.
* ``CLOUDWATCH_ALARMS`` - moto's CloudFormation has no ``AWS::CloudWatch::Alarm`` (a stack
  naming one fails, and a ``Fn::GetAtt`` of one is an undefined resource). The alarms, and the
  dashboard that lists them, are put through CloudWatch's API after the stack
  (``API_CREATED_TYPES``).
* ``APIGW_ACCOUNT`` - moto's CloudFormation has no ``AWS::ApiGateway::Account`` (it warns and
  leaves the account's CloudWatch role unset). The role is set through API Gateway's
  ``UpdateAccount`` after the stack (``API_CREATED_TYPES``), so ``GetAccount`` answers as on AWS.
* ``CFN_PLACEHOLDERS`` - CloudFormation creates only placeholders for Cognito resources (created
  through the API by ``local.deploy``); ``AWS::ApiGateway::RestApi`` needs a ``Name``.
* ``ECR_FROM_CLOUDFORMATION`` - an ``AWS::ECR::Repository`` without ``RepositoryName`` is named
  ``<stack>-<LogicalId>-<suffix>`` in mixed case, which ECR refuses (the stack fails); its
  scanning and encryption configurations are kept in CloudFormation's casing (DescribeRepositories
  shows neither) and its ``LifecyclePolicy`` is dropped. Created here as CloudFormation does:
  the name in lower case, the configurations in the API's casing, the lifecycle policy put.
* ``BATCH_FROM_CLOUDFORMATION`` - a compute environment must name a ``ServiceRole`` (through
  CloudFormation the stack fails on a KeyError, through the API CreateComputeEnvironment
  refuses); on AWS it is optional and Batch uses its service-linked role
  ``AWSServiceRoleForBatch``, which is what it gets here (created the first time, as AWS does).
  From CloudFormation a compute environment also loses its ``Tags``, and a job definition its
  ``PlatformCapabilities``, ``PropagateTags`` and ``Timeout``, and has its tag keys' first
  letter lower-cased; here they are kept. And a ``ResourceRequirements`` ``Value`` that is a
  ``Ref`` to a Number parameter stays a number (moto's CloudFormation resolves such a ``Ref`` to
  a number; AWS's to a string), so DescribeJobDefinitions returns a number where the API says
  string and the SDK refuses to send the definition back (a new revision of it); here it is a
  string.
* ``BATCH_JOBS`` - moto runs a job's container in Docker. Without Docker (here) a submitted job
  is FAILED within a second, with no ``statusReason``, no instance launched, no ECS container
  instance, an attempt whose ``containerInstanceArn`` is "TBD" and whose ``taskArn`` is the job
  definition's ARN, and no ``Batch Job State Change`` event; each DescribeJobs also adds one
  more ``AWS_BATCH_JOB_ID`` to the job's environment. Here (``batch_job_patches``) a submitted
  job goes PENDING, then RUNNABLE, and waits there for the local stack's job simulator
  (``local.containers``, told through ``JOB_LISTENERS``), which places it when it has simulated
  capacity: an EC2 instance launched as Batch would, registered with the compute environment's
  ECS cluster, then ``job_started`` (STARTING, with ``containerInstanceArn``, an ECS ``taskArn``
  and ``logStreamName``), ``job_running`` (RUNNING, once its simulated container runs the real
  agent) and ``job_ended`` (SUCCEEDED or FAILED, with ``statusReason``, ``exitCode``). Every
  status change puts ``Batch Job State Change`` (detail: the job as DescribeJobs shows it, as the
  Batch User Guide's example) on the default bus. TerminateJob and CancelJob end a job that has
  not started at once; TerminateJob on a started job asks the simulator to stop its container.
* ``CODEBUILD_FROM_CLOUDFORMATION`` - moto's CloudFormation has no ``AWS::CodeBuild::Project``:
  a ``Fn::GetAtt`` of one fails the stack, and without one the stack completes with no project.
  ``codebuild_project_model`` creates the project through CodeBuild's backend (``Ref`` its name,
  ``Arn`` its ARN).
* ``CODEBUILD_BUILDS`` - StartBuild drops ``environmentVariablesOverride`` and records a build
  with a made-up source and environment (not the project's); BatchGetBuilds reports every build
  SUCCEEDED (all phases SUCCEEDED) the first time it is asked, and nothing is built, pushed or
  logged. Here (``codebuild_build_patches``) StartBuild records the build IN_PROGRESS with the
  project's source and environment, its variables with the overrides, and its log stream
  (``/aws/codebuild/<project>``, the build id's suffix); ``BUILD_SECONDS`` (1 s) later the
  build runs the contract of ``container/buildspec.yml``, phase by phase (``SimulatedBuild``):
  DOWNLOAD_SOURCE fetches the project's S3 source bundle (missing: CLIENT_ERROR) and finds its
  build spec in it (YAML_FILE_ERROR otherwise); PRE_BUILD checks ``BUILD_VERSION``,
  ``BUILD_ARTIFACT_S3_URI``, ``IMAGE_REPOSITORY_URI`` and ``UBUNTU_SNAPSHOT`` as the build spec
  does, refuses a
  version the repository has already and downloads the application build from the emulated S3
  (missing: fails); BUILD unpacks it (.tar.gz/.tgz or .zip; anything else fails) and fails when
  it holds a file named ``FAIL_BUILD`` (anywhere; its first line is the reason); POST_BUILD
  pushes the image to the emulated ECR (PutImage: a small Docker v2 manifest unique to the
  build, tag ``BUILD_VERSION``; no repository, or a tag an IMMUTABLE repository has, fails it)
  and exports ``IMAGE_URI`` and ``IMAGE_DIGEST``. The first failing phase is FAILED with a
  context (``statusCode``, ``message``) and the build FAILED; otherwise SUCCEEDED. The log
  (``[Container] ...`` lines, each phase and its outcome) goes to CloudWatch Logs. BatchGetBuilds
  reports each build as it is; StopBuild stops a running one for good. Nothing is really built:
  a simulated container runs whatever image its job definition names.
* ``SFN_AWS_SDK_CASING`` - an ``aws-sdk:<service>:<action>`` Task passes its parameters to the
  SDK as written, so PascalCase names (what AWS documents: ``ProjectName``) fail the state with
  ``States.Runtime`` (a KeyError) for every camelCase API, and its result keeps the API's casing
  (``build.id`` where AWS gives ``Build.Id``); a service error is named after the resource's
  lower-case service (``codebuild.…``). Here (``sfn_aws_sdk_patches``) parameters are matched
  to the API's members by botocore's model, results come back PascalCase, and errors are
  ``CodeBuild.<Error>Exception`` as Step Functions names them.
* ``SFN_JSONPATH_INDEX`` - a definite path through an array index (``$.Builds[0].BuildStatus``)
  yields a one-element list (``["SUCCEEDED"]``), so a Choice on it never matches; Step Functions
  gives the value. Here (``sfn_json_path_patches``) a definite path (no ``..``, ``*``, filter,
  slice or union) that selects one node yields its value; indefinite paths stay moto's.
* ``S3_FROM_CLOUDFORMATION`` - an ``AWS::S3::Bucket`` made by CloudFormation loses its
  ``NotificationConfiguration`` (so S3 sends no event to EventBridge, though moto's S3 does
  for a bucket configured through the API) and its ``VersioningConfiguration``; here
  (``bucket_cloudformation_patches``) both are applied. The events then match AWS's where rules
  and the release workflow read them (``source`` aws.s3, ``detail-type`` "Object Created",
  ``detail.bucket.name``, ``detail.object.key``).
* ``COGNITO_SRP`` - USER_SRP_AUTH checks nothing: InitiateAuth answers with a random ``SALT`` and
  ``SRP_B`` (uuid hex, its ``SECRET_BLOCK`` its session id) and RespondToAuthChallenge takes any
  ``PASSWORD_CLAIM_SIGNATURE``, so a wrong password signs in through SRP. Here
  (``cognito_srp_patches``) the emulator is Cognito's SRP-6a server (RFC 3526's 3072-bit group,
  g = 2, SHA-256, as ``pycognito.aws_srp`` and amazon-cognito-identity-js compute it; written
  here, not imported, so the client in the tests checks an independent server): InitiateAuth
  derives the verifier v = g^x from the user's password (x = H(salt | H(poolName |
  USER_ID_FOR_SRP | ":" | password)), poolName the pool id after its "_", USER_ID_FOR_SRP moto's,
  the user's sub), picks a salt and b, and returns ``SALT``, ``SRP_B`` = k*v + g^b, ``SECRET_BLOCK``
  (base64 random bytes), ``USER_ID_FOR_SRP`` and ``USERNAME``; the PASSWORD_VERIFIER answer is
  checked against HMAC-SHA256(HKDF(S, u, "Caldera Derived Key"), poolName |
  USER_ID_FOR_SRP | secret block | ``TIMESTAMP``), S = (A * v^u)^b, u = H(A | B). A wrong
  signature, A = 0 mod N, a secret block unknown, used or older than the client's
  ``AuthSessionValidity`` (default 3 minutes), another client, or a ``USERNAME`` other than the
  user's (its username or USER_ID_FOR_SRP) is ``NotAuthorizedException`` "Incorrect username or
  password."; each challenge answers once. A right one goes on through moto's flow (tokens,
  NEW_PASSWORD_REQUIRED, MFA). The ``TIMESTAMP``'s format and skew are not checked.
* ``SERVICE_QUOTAS_EC2`` - Service Quotas knows only the ``vpc`` service: GetServiceQuota for
  EC2's G and VT vCPU quotas (``L-DB2E81BA`` "Running On-Demand G and VT instances",
  ``L-3819A6DF`` "All G and VT Spot Instance Requests") is ``NoSuchResourceException`` and
  GetAWSDefaultServiceQuota is not implemented. Here (``service_quota_patches``) GetServiceQuota
  answers those two, as AWS shapes a quota, with ``EC2_QUOTA_VCPUS`` (64, the emulator's own
  value; an account's real ones are its own) until ``set_ec2_quota`` changes one.
* ``CFN_STACK_LIST_PARAMETERS`` - DescribeStacks gives a ``List<...>`` or
  ``CommaDelimitedList`` parameter's value as a Python list's repr (``['subnet-a', 'subnet-b']``);
  AWS gives it as it was passed (``subnet-a,subnet-b``). Here (``stack_parameter_patches``) its
  members are joined with commas.
* ``CFN_DYNAMIC_REFERENCES`` - a ``{{resolve:ssm:<name>}}`` dynamic reference is left as written
  (the Windows launch template's ``ImageId`` would be that text); CloudFormation replaces it with
  the parameter's value when it creates the resource
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/dynamic-references-ssm.html).
  Here (``resolve_ssm_references``) the template's ``Fn::Sub`` of such a reference is resolved
  from the emulator's parameter store before the stack is created.
* ``DEFAULT_VPC_INTERNET`` - the default VPC has no internet gateway and its main route table
  only the local route; AWS gives a default VPC an internet gateway and a ``0.0.0.0/0`` route to
  it (https://docs.aws.amazon.com/vpc/latest/userguide/default-vpc-components.html). Here
  (``default_vpc_patches``) the default VPC gets both when it is made.
* ``COGNITO_AUTH_FLOWS`` - InitiateAuth and AdminInitiateAuth ignore the app client's
  ``ExplicitAuthFlows``: a client that allows only SRP signs a user in with USER_PASSWORD_AUTH
  (the password sent in the request). Here (``cognito_auth_flow_patches``) a flow the client does
  not allow is refused as Cognito refuses it: ``InvalidParameterException`` "<FLOW> flow not
  enabled for this client". Each flow is allowed by its ``ALLOW_*`` value or its legacy one
  (USER_PASSWORD_AUTH, ADMIN_NO_SRP_AUTH, CUSTOM_AUTH_FLOW_ONLY); a client without the list
  allows what Cognito gives it by default: SRP, custom and refresh
  (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPoolClient.html).
* ``COGNITO_READ_ATTRIBUTES`` - an app client without ``ReadAttributes`` puts none of the
  user's attributes in the ID token (so no ``email`` claim); Cognito lets such a client read
  the standard attributes, ``email_verified`` and ``phone_number_verified``
  (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPoolClient.html),
  and puts them in the ID token. Here (``cognito_read_attribute_patches``) it does.
* ``COGNITO_TOTP`` - an authenticator app's code (VerifySoftwareToken, the SOFTWARE_TOKEN_MFA
  answer) is not checked at all unless ``MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP`` is "true", so
  any code signs in. Here that setting is on (``enable_totp_checks``), and codes are checked
  (RFC 6238, 30 s steps) against the secret key AssociateSoftwareToken gave. Not worked
  around: that secret key is one fixed value for every user.
* ``SNS_SUBSCRIBE_ATTRIBUTES`` - Subscribe of an endpoint already subscribed to the topic (same
  protocol) with other attributes answers the existing subscription and overwrites its
  attributes, so a second user subscribing the first one's address with a filter policy on
  their own identity would redirect the second user's notifications to that address. SNS
  refuses it: ``InvalidParameter`` "Invalid parameter: Attributes Reason: Subscription already
  exists with different attributes", and the subscription stays as it was. Here
  (``sns_subscribe_patches``) it does; the attributes the request names are compared
  (``FilterPolicy`` as JSON).
* ``SNS_EMAIL`` - an ``email`` (or ``email-json``) subscription delivers nowhere and leaves no
  record of what it would have sent; it is also confirmed at once (``PendingConfirmation``
  "false"), where SNS e-mails the address a confirmation link and delivers nothing until it is
  followed (not worked around: every address here has confirmed). Here (``sns_email_patches``)
  each message an e-mail subscription would deliver, after its filter policy, goes to
  ``SNS_MAILBOX`` (``to``, ``subject``, ``message``, ``attributes``, ``topicArn``), which
  ``GET /mail`` on ``control_url`` lists.

Checked, not gaps: moto's server answers an unsigned JSON call (no ``Authorization``, as a
browser's call to Cognito's user-pool API) by its ``X-Amz-Target``, and answers a browser's CORS
preflight to its root (``Access-Control-Allow-Origin`` the origin, the requested headers allowed)
and its calls (errors too) with ``Access-Control-Allow-Origin``. ``test_no_gap_browser_calls``
fails when that changes. A Fail state whose ``Error`` or ``ErrorPath`` yields a name beginning
``States.`` (reserved for Step Functions' own errors: "these error names can't begin with the
States. prefix", https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html)
fails the execution with ``States.Runtime``, as on AWS; ``test_no_gap_sfn_fail_reserved_error``
fails when that changes.

Not a gap but noise: moto's Step Functions interpreter logs an ERROR for every path a Choice's
``IsPresent`` finds missing, though the execution goes on correctly.

Not a gap but a cost: ``SFN_COST`` - moto's Step Functions interpreter parses a state machine's
definition again (ANTLR) for every execution, about 0.1 s of CPU for the provisioning workflow,
and makes a new boto3 client for every Task it runs; with 200 desktops asked for at once
(``bench.load``) that was up to a third of the emulator's time. The parse tree is kept per
definition and the clients per region and service (``sfn_cost_patches``).

Gaps listed for moto 5.2.x that no workflow here depends on yet (each lands with its first user):
PascalCase parameter normalisation for batch/ecs/startExecution, JSONata, executions started
without a name. Wait states and Retry back-off sleep in real
time; their durations come from template parameters, never from skipping them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import importlib
import io
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import requests

from local import faults

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
#: (owner, attribute, replacement): what a workaround sets on one of moto's classes.
Patch = tuple[Any, str, Any]

# ------------------------------------------------------------------------------------------------
# Per-thread environment and stdout, so in-process functions each see their own configuration.
_local = threading.local()


class LayeredEnviron(MutableMapping[str, str]):
    """``os.environ`` with a per-thread overlay: a function's variables win inside its thread."""

    def __init__(self, base: MutableMapping[str, str]) -> None:
        self._base = base

    def _overlay(self) -> dict[str, str] | None:
        return getattr(_local, "environ", None)

    def __getitem__(self, key: str) -> str:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            return overlay[key]
        return self._base[key]

    def __setitem__(self, key: str, value: str) -> None:
        overlay = self._overlay()
        if overlay is not None:
            overlay[key] = value
        else:
            self._base[key] = value

    def __delitem__(self, key: str) -> None:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            del overlay[key]
        else:
            del self._base[key]

    def __iter__(self) -> Iterator[str]:
        overlay = self._overlay() or {}
        yield from overlay
        yield from (k for k in self._base if k not in overlay)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        return dict(self)


class ThreadStdout(io.TextIOBase):
    """stdout that a function invocation captures for its own thread (its log lines)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def write(self, text: str) -> int:
        buffer = getattr(_local, "stdout", None)
        if buffer is not None:
            return int(buffer.write(text))
        return int(self._real.write(text))

    def flush(self) -> None:
        self._real.flush()


def in_function() -> bool:
    """Whether the calling thread is running a function invocation."""
    return getattr(_local, "environ", None) is not None


@contextlib.contextmanager
def function_context(environ: dict[str, str]) -> Iterator[io.StringIO]:
    previous_env = getattr(_local, "environ", None)
    previous_out = getattr(_local, "stdout", None)
    _local.environ = dict(environ)
    _local.stdout = io.StringIO()
    try:
        yield _local.stdout
    finally:
        _local.environ = previous_env
        _local.stdout = previous_out


# ------------------------------------------------------------------------------------------------
class FunctionContext:
    """The Lambda context object handlers receive."""

    def __init__(self, name: str, arn: str, memory: int, timeout: int) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


INVOCATIONS: list[str] = []
_invocations_lock = threading.Lock()


def _resolve_handler(handler: str) -> Callable[..., Any]:
    module_name, _, attr = handler.rpartition(".")
    module = importlib.import_module(module_name)
    fn: Callable[..., Any] = getattr(module, attr)
    return fn


_import_lock = threading.Lock()
#: One execution environment per function: an invocation waits for the one in progress. (Re-entrant,
#: so that a function invoked again from its own thread cannot wait for itself.)
_environments: dict[str, threading.RLock] = {}


def _environment(function_arn: str) -> threading.RLock:
    with _invocations_lock:
        return _environments.setdefault(function_arn, threading.RLock())


def run_function(fn: Any, event: Any) -> tuple[str, bool, str]:
    """Run a moto ``LambdaFunction`` in-process: (payload, errored, log output)."""
    environ = {
        **dict(os.environ),
        **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
    }
    context = FunctionContext(fn.function_name, fn.function_arn, int(fn.memory_size), fn.timeout)
    if isinstance(event, str):
        event = json.loads(event or "{}")
    with _invocations_lock:
        INVOCATIONS.append(fn.function_name)
    with _environment(fn.function_arn), function_context(environ) as out:
        try:
            faults.raise_function_fault(fn.function_name)
            with _import_lock:
                handler = _resolve_handler(fn.handler)
            result = handler(event, context)
            payload, errored = json.dumps(result), False
        except Exception as exc:  # the function errored: Lambda reports it, it does not crash
            payload = json.dumps(
                {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc)[-5:],
                }
            )
            errored = True
            out.write(payload + "\n")
        logs = out.getvalue()
    _ship_logs(fn, logs)
    return payload, errored, logs


def _ship_logs(fn: Any, logs: str) -> None:
    """Lambda writes a function's log lines to ``/aws/lambda/<name>``, creating the group."""
    if not logs.strip():
        return
    with _invocations_lock:
        if fn.logs_group_name not in fn.logs_backend.groups:
            fn.logs_backend.create_log_group(fn.logs_group_name, {})
    fn.save_logs(logs)


def patch_lambda_runtime() -> None:
    """LAMBDA_RUNTIME: run functions in-process instead of in Docker."""
    from moto.awslambda import models

    if str(FUNCTIONS_DIR) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS_DIR))
    if not isinstance(os.environ, LayeredEnviron):
        os.environ = LayeredEnviron(os.environ)  # type: ignore[assignment]  # noqa: B003
    if not isinstance(sys.stdout, ThreadStdout):
        sys.stdout = ThreadStdout(sys.stdout)

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        return run_function(self, event)

    models.LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------------------
_delivery = ThreadPoolExecutor(max_workers=16, thread_name_prefix="eventbridge")
#: The target services EventBridge delivers to here (moto raises on them).
DELIVERED_HERE = ("lambda", "states")


def target_input(target: dict[str, Any], event: dict[str, Any]) -> str:
    """What EventBridge sends a target, as JSON text: its ``Input`` verbatim, else the part of
    the event its ``InputPath`` selects, else its ``InputTransformer``'s result, else the event."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

        matches = parse(target["InputPath"]).find(event)
        return json.dumps(matches[0].value if matches else None)
    transformer = target.get("InputTransformer")
    if transformer:
        from moto.events.utils import EventTemplateParser

        parsed = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=cast(Any, {**event, "ingestion-time": event.get("ingestion-time", time.time())}),
        )
        return json.dumps(parsed)
    return json.dumps(event)


def _deliver(target_arn: str, payload: str, endpoint_url: str | None) -> None:
    import boto3
    from moto.utilities.arns import parse_arn

    region = target_arn.split(":")[3]
    if parse_arn(target_arn).service == "lambda":
        client = boto3.client("lambda", endpoint_url=endpoint_url, region_name=region)
        client.invoke(FunctionName=target_arn, Payload=payload.encode())
    else:
        client = boto3.client("stepfunctions", endpoint_url=endpoint_url, region_name=region)
        client.start_execution(stateMachineArn=target_arn, name=str(uuid.uuid4()), input=payload)


def deliver_rule_event(
    rule: Any, original_event: dict[str, Any], endpoint_url: str | None, transform: bool = True
) -> None:
    """Send an event a rule matched (or a schedule fired) to every target of the rule: Lambda and
    Step Functions targets here, asynchronously; the rest through moto's own delivery."""
    from moto.events import models
    from moto.utilities.arns import parse_arn

    ours = [t for t in rule.targets if parse_arn(t["Arn"]).service in DELIVERED_HERE]
    rest = [t for t in rule.targets if t not in ours]
    event = dict(original_event)
    if isinstance(event.get("time"), (int, float)):
        event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["time"]))
    for target in ours:
        _delivery.submit(_deliver, target["Arn"], target_input(target, event), endpoint_url)
    if rest:
        moto_send = getattr(
            models.Rule.send_to_targets, "_dcvfleet_original", models.Rule.send_to_targets
        )
        clone = rule.__class__.__new__(rule.__class__)
        clone.__dict__.update(rule.__dict__)
        clone.targets = rest
        # moto's own delivery reads the ingestion time its put_events adds
        stamped = {"ingestion-time": time.time(), **original_event}
        moto_send(clone, cast(Any, stamped), transform)


def schedule_only(rule: Any) -> bool:
    """A rule with a schedule and no event pattern: on AWS it matches no event put on a bus."""
    return bool(rule.scheduled_expression) and not rule.event_pattern.get_pattern()


def event_targets_patch(endpoint_url: str | None) -> Callable[..., None] | None:
    """EVENTS_TARGETS: deliver to Lambda and Step Functions targets, asynchronously, honouring
    a target's ``Input``, ``InputPath`` and ``InputTransformer``.
    EVENTS_SCHEDULE_PATTERN: a rule with only a schedule matches no event put on its bus.
    The replacement of moto's ``Rule.send_to_targets`` (None when it is already replaced)."""
    from moto.events import models

    original = models.Rule.send_to_targets
    if getattr(original, "_dcvfleet", False):
        return None

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if schedule_only(self) or not self.event_pattern.matches_event(original_event):
            return
        deliver_rule_event(self, original_event, endpoint_url, transform_input)

    send_to_targets._dcvfleet = True  # type: ignore[attr-defined]
    send_to_targets._dcvfleet_original = original  # type: ignore[attr-defined]
    return send_to_targets


def patch_event_targets(endpoint_url: str) -> None:
    from moto.events import models

    replacement = event_targets_patch(endpoint_url)
    if replacement is not None:
        models.Rule.send_to_targets = replacement  # type: ignore[method-assign]


# ------------------------------------------------------------------------------------------------
RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
UNIT_MINUTES = {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}
log = logging.getLogger("local.emulator")


def rate_minutes(expression: str) -> int | None:
    """``rate(5 minutes)`` -> 5; None for anything the local scheduler does not run."""
    match = RATE.match(expression or "")
    if not match or int(match.group(1)) < 1:
        return None
    return int(match.group(1)) * UNIT_MINUTES[match.group(2)]


def schedule_rules() -> list[Any]:
    """Every rule with a ScheduleExpression, in every account and region the emulator holds."""
    from moto.events.models import events_backends

    rules: list[Any] = []
    for regions in list(events_backends.values()):
        for backend in list(regions.values()):
            for bus in list(backend.event_buses.values()):
                rules.extend(r for r in list(bus.rules.values()) if r.scheduled_expression)
    return rules


def scheduled_event(rule: Any) -> dict[str, Any]:
    """The envelope EventBridge sends a scheduled rule's targets."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": rule.account_id,
        "time": int(time.time()),
        "region": rule.region_name,
        "resources": [rule.arn],
        "detail": {},
    }


class Scheduler:
    """EVENTS_SCHEDULES: fire every ENABLED rule with ``rate(N minute|minutes|hour|hours|day|days)``
    on its rate, as EventBridge does: first one rate after the scheduler first sees the rule
    (or sees it enabled, or its expression changed), then every rate. One schedule minute lasts
    ``minute_seconds`` real seconds (time compression for tests and benchmarks; nothing else in
    the stack is compressed). ``cron(...)`` rules are not run on their own: each is logged once,
    and ``run_now`` fires them like any other. Each firing sends a "Scheduled Event" envelope
    (source "aws.events", detail {}, resources [the rule's ARN]) to the rule's targets through
    ``deliver_rule_event``, the EVENTS_TARGETS delivery."""

    def __init__(self, endpoint_url: str | None, minute_seconds: float = 60.0) -> None:
        if minute_seconds <= 0:
            raise ValueError("minute_seconds must be > 0")
        self.endpoint_url = endpoint_url
        self.minute_seconds = minute_seconds
        self.tick = max(0.02, min(0.5, minute_seconds / 4))
        self._due: dict[str, tuple[str, float]] = {}  # rule ARN -> (expression, next firing)
        self._reported: set[tuple[str, str]] = set()
        self.fired: dict[str, int] = {}  # rule ARN -> how many times it fired
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="eventbridge-scheduler", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def period(self, expression: str) -> float | None:
        minutes = rate_minutes(expression)
        return None if minutes is None else minutes * self.minute_seconds

    def _fire(self, rule: Any) -> None:
        with self._lock:
            self.fired[rule.arn] = self.fired.get(rule.arn, 0) + 1
        try:
            deliver_rule_event(rule, scheduled_event(rule), self.endpoint_url)
        except Exception:  # a broken target must not stop the scheduler
            log.exception("scheduled rule %s: delivery failed", rule.name)

    def run_due(self, now: float | None = None) -> list[str]:
        """Fire the rules whose time has come; their names."""
        now = time.monotonic() if now is None else now
        fired, seen = [], set()
        for rule in schedule_rules():
            expression = rule.scheduled_expression
            if rule.state != "ENABLED":
                continue
            period = self.period(expression)
            if period is None:
                if (rule.arn, expression) not in self._reported:
                    self._reported.add((rule.arn, expression))
                    log.warning(
                        "schedule rule %s: %r is not run by the local scheduler (only rate(...)"
                        " is); fire it with POST /schedules/run",
                        rule.name,
                        expression,
                    )
                continue
            seen.add(rule.arn)
            known = self._due.get(rule.arn)
            if known is None or known[0] != expression:
                self._due[rule.arn] = (expression, now + period)
                continue
            if now >= known[1]:
                # one firing per tick; a scheduler that fell behind catches up from now
                self._due[rule.arn] = (expression, max(known[1] + period, now + period / 2))
                self._fire(rule)
                fired.append(rule.name)
        for arn in [a for a in self._due if a not in seen]:
            del self._due[arn]  # deleted, disabled or changed to cron: starts afresh
        return fired

    def run_now(self, name: str | None = None) -> list[str]:
        """Fire every ENABLED schedule rule (or the one named) at once; the names fired.

        Raises KeyError for a name no schedule rule has, ValueError for a DISABLED one."""
        rules = [r for r in schedule_rules() if name is None or r.name == name]
        if name is not None and not rules:
            raise KeyError(name)
        enabled = [r for r in rules if r.state == "ENABLED"]
        if name is not None and not enabled:
            raise ValueError(f"rule {name} is {rules[0].state}")
        for rule in enabled:
            self._fire(rule)
        return [r.name for r in enabled]

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {
                "name": rule.name,
                "arn": rule.arn,
                "expression": rule.scheduled_expression,
                "state": rule.state,
                "runsLocally": self.period(rule.scheduled_expression) is not None,
                "fired": self.fired.get(rule.arn, 0),
                "nextInSeconds": (
                    round(max(0.0, self._due[rule.arn][1] - now), 3)
                    if rule.arn in self._due
                    else None
                ),
            }
            for rule in schedule_rules()
        ]

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.run_due()
            except Exception:  # the emulator is shutting down, or a rule changed under us
                log.debug("scheduler tick failed", exc_info=True)


# ------------------------------------------------------------------------------------------------
_dynamodb_lock = threading.RLock()
DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def atomic_dynamodb_writes() -> dict[str, Callable[..., Any]]:
    """DDB_ATOMIC_WRITES: the emulator's write methods, each serialised by one lock."""
    from moto.dynamodb.models import DynamoDBBackend

    replacements: dict[str, Callable[..., Any]] = {}
    for name in DYNAMODB_WRITES:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_dcvfleet", False):
            continue

        def locked(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return __original(*args, **kwargs)

        locked._dcvfleet = True  # type: ignore[attr-defined]
        replacements[name] = locked
    return replacements


def patch_dynamodb_atomic_writes() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name, replacement in atomic_dynamodb_writes().items():
        setattr(DynamoDBBackend, name, replacement)


#: Called with no arguments after any instance was run, started, stopped or terminated.
INSTANCE_LISTENERS: list[Callable[[], None]] = []
EC2_STATE_CHANGES = ("run_instances", "start_instances", "stop_instances", "terminate_instances")
#: The states EC2 reports on the way to each final state.
_TRANSITIONS = {
    "running": ("pending", "running"),
    "stopped": ("stopping", "stopped"),
    "terminated": ("shutting-down", "terminated"),
}


def _state_change_events(backend: Any, changed: list[tuple[Any, str | None]]) -> None:
    from moto.events.models import events_backends

    entries = []
    for instance, previous in changed:
        final = instance.state
        if final == previous:
            continue  # starting a running instance changes nothing, and says nothing
        arn = f"arn:aws:ec2:{backend.region_name}:{backend.account_id}:instance/{instance.id}"
        for state in _TRANSITIONS.get(final, (final,)):
            entries.append(
                {
                    "Source": "aws.ec2",
                    "DetailType": "EC2 Instance State-change Notification",
                    "Detail": json.dumps({"instance-id": instance.id, "state": state}),
                    "Resources": [arn],
                    "EventBusName": "default",
                }
            )
    if entries:
        events_backends[backend.account_id][backend.region_name].put_events(entries)


def patch_instance_state_changes() -> None:
    """EC2_STATE_CHANGES: put EC2's state-change events and tell the local stack's listeners."""
    from moto.ec2.models.instances import InstanceBackend

    for name in EC2_STATE_CHANGES:
        original = getattr(InstanceBackend, name)
        if getattr(original, "_dcvfleet_listeners", False):
            continue

        def notifying(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            result = __original(self, *args, **kwargs)
            changed: list[tuple[Any, str | None]]
            if hasattr(result, "instances"):  # run_instances: a reservation of new instances
                changed = [(instance, None) for instance in result.instances]
            else:  # start, stop, terminate: (instance, its previous state)
                changed = [(instance, previous.name) for instance, previous in result]
            _state_change_events(self, changed)
            for listener in list(INSTANCE_LISTENERS):
                listener()
            return result

        notifying._dcvfleet_listeners = True  # type: ignore[attr-defined]
        setattr(InstanceBackend, name, notifying)


# ------------------------------------------------------------------------------------------------
# BATCH_JOBS
#: Called with no arguments when a Batch job needs the local stack's simulator: it became
#: RUNNABLE, or TerminateJob asked a job that had started to end.
JOB_LISTENERS: list[Callable[[], None]] = []
NOT_STARTED = ("SUBMITTED", "PENDING", "RUNNABLE")
ENDED = ("SUCCEEDED", "FAILED")
#: The statusReason Batch gives a job whose container exited.
CONTAINER_EXITED = "Essential container in task exited"
#: Check-and-set of a job's status (the simulator's placement, TerminateJob, CancelJob).
_jobs_lock = threading.RLock()


def batch_jobs() -> list[Any]:
    """Every Batch job the emulator holds, in every account and region."""
    from moto.batch.models import batch_backends

    jobs: list[Any] = []
    for regions in list(batch_backends.values()):
        for backend in list(regions.values()):
            jobs.extend(list(backend._jobs.values()))
    return jobs


def _notify_jobs() -> None:
    for listener in list(JOB_LISTENERS):
        listener()


def _sim(job: Any) -> dict[str, Any]:
    """What the simulation knows of a job's container (moto's Job keeps none of it)."""
    state: dict[str, Any] | None = job.__dict__.get("_dcvfleet")
    if state is None:
        state = job.__dict__.setdefault("_dcvfleet", {})
    return state


def _job_state_event(job: Any) -> None:
    """Put Batch's ``Batch Job State Change`` event (detail: the job as DescribeJobs returns it)
    on the default bus."""
    from moto.events.models import events_backends

    backend = job.backend
    try:
        events_backends[backend.account_id][backend.region_name].put_events(
            [
                {
                    "Source": "aws.batch",
                    "DetailType": "Batch Job State Change",
                    "Detail": json.dumps(job.describe(), default=str),
                    "Resources": [job.arn],
                    "EventBusName": "default",
                }
            ]
        )
    except Exception:  # the emulator is being reset under us: the job's state still changes
        log.exception("job %s: its state-change event was not put", job.job_id)


def job_started(job: Any, *, container_instance_arn: str, task_arn: str, log_stream: str) -> bool:
    """ECS placed the job's task on a container instance: STARTING. False (nothing changes)
    when the job is no longer RUNNABLE (it was cancelled or terminated meanwhile)."""
    with _jobs_lock:
        if job.status != "RUNNABLE":
            return False
        container = {
            "containerInstanceArn": container_instance_arn,
            "taskArn": task_arn,
            "logStreamName": log_stream,
            "networkInterfaces": [],
        }
        _sim(job)["container"] = container
        job.log_stream_name = log_stream
        job.latest_attempt = {"container": dict(container)}
        job.attempts.append(job.latest_attempt)
        job.status = "STARTING"
        return True


def job_running(job: Any) -> None:
    """The job's container started: RUNNING (its startedAt)."""
    with _jobs_lock:
        if job.status != "STARTING":
            return
        job.job_started_at = datetime.now()
        if job.latest_attempt is not None:
            job.latest_attempt["startedAt"] = int(job.job_started_at.timestamp() * 1000)
        job.status = "RUNNING"


def job_ended(
    job: Any,
    *,
    reason: str,
    exit_code: int | None = None,
    succeeded: bool = False,
) -> None:
    """The job ended, SUCCEEDED or FAILED, with ``statusReason`` (and its container's
    ``exitCode`` when it has one)."""
    with _jobs_lock:
        if job.status in ENDED:
            return
        container = _sim(job).get("container")
        if container is not None and exit_code is not None:
            container["exitCode"] = exit_code
        job.exit_code = exit_code
        job.job_stopped = True
        job.job_stopped_at = datetime.now()
        job.job_stopped_reason = reason
        if job.latest_attempt is not None and container is not None:
            job.latest_attempt["container"] = dict(container)
            job.latest_attempt["stoppedAt"] = int(job.job_stopped_at.timestamp() * 1000)
            job.latest_attempt["statusReason"] = reason
        job.status = "SUCCEEDED" if succeeded else "FAILED"


def stop_requested(job: Any) -> str | None:
    """Why TerminateJob asked this started job to end, if it did."""
    reason: str | None = _sim(job).get("stopReason")
    return reason


def batch_job_patches() -> list[Patch]:
    """BATCH_JOBS: the replacements of moto's Batch job methods (none when they are already
    replaced).

    * ``Job.run``: no Docker. The job goes PENDING, then RUNNABLE, and the listeners
      (``JOB_LISTENERS``: the local stack's job simulator) are told; it stays RUNNABLE until
      something places it (``job_started``, ``job_running``, ``job_ended``).
    * ``Job.status``: only what happened to the job changes it (moto's state manager would move
      it along on every read), and every change puts ``Batch Job State Change`` on the default
      bus.
    * ``Job._get_container_property``: the job's environment without appending to its
      overrides (each DescribeJobs added one more ``AWS_BATCH_JOB_ID``).
    * ``Job.describe``: ``container`` carries the job definition's ``image``, ``jobRoleArn``,
      ``logConfiguration`` and ``resourceRequirements`` (with the overrides), and once placed
      ``containerInstanceArn``, ``taskArn``, ``logStreamName``, then ``exitCode``;
      ``startedAt`` only once it ran; ``retryStrategy`` and
      ``platformCapabilities``.
    * ``BatchBackend.terminate_job`` / ``cancel_job``: a job that has not started ends FAILED at
      once with the reason (TerminateJob and CancelJob alike); TerminateJob on a STARTING or
      RUNNING job asks the simulator to stop its container (``stop_requested``); CancelJob
      leaves a started job alone, as Batch does.
    """
    from moto.batch.exceptions import ClientException
    from moto.batch.models import BatchBackend, Job

    if getattr(Job.run, "_dcvfleet", False):
        return []
    original_property = Job._get_container_property
    original_describe = Job.describe

    def run(self: Any) -> None:
        self.status = "PENDING"
        self.status = "RUNNABLE"
        _notify_jobs()

    def get_status(self: Any) -> str | None:
        status: str | None = self._status
        return status

    def set_status(self: Any, value: str) -> None:
        previous = self.__dict__.get("_status")
        self._status = value
        if value != previous:
            _job_state_event(self)

    def get_container_property(self: Any, name: str, default: Any) -> Any:
        if name != "environment":
            return original_property(self, name, default)
        overrides = [dict(e) for e in self.container_overrides.get("environment", [])]
        given = {e["name"] for e in overrides}
        defined = self.job_definition.container_properties.get("environment", [])
        return [
            *overrides,
            *(dict(e) for e in defined if e["name"] not in given),
            {"name": "AWS_BATCH_JOB_ID", "value": self.job_id},
        ]

    def describe(self: Any) -> dict[str, Any]:
        result: dict[str, Any] = original_describe(self)
        definition = self.job_definition
        properties = definition.container_properties
        if properties is not None and "container" in result:
            container = result["container"]
            for key in ("image", "jobRoleArn", "executionRoleArn", "logConfiguration"):
                if key in properties:
                    container[key] = properties[key]
            required = {r["type"]: r for r in properties.get("resourceRequirements", [])}
            for requirement in self.container_overrides.get("resourceRequirements", []):
                required[requirement["type"]] = requirement
            container["resourceRequirements"] = [
                {"type": r["type"], "value": str(r["value"])} for r in required.values()
            ]
            container.pop("logStreamName", None)
            container.update(_sim(self).get("container", {}))
        if self.job_started_at.year == 1970:  # it never ran
            result.pop("startedAt", None)
        if definition.retry_strategy:
            result["retryStrategy"] = definition.retry_strategy
        if definition.platform_capabilities:
            result["platformCapabilities"] = definition.platform_capabilities
        return result

    def checked(job_id: str, reason: str) -> None:
        for name, value in (("jobId", job_id), ("reason", reason)):
            if value == "":
                raise ClientException(f"'{name}' is a required field (cannot be an empty string)")

    def terminate_job(self: Any, job_id: str, reason: str) -> None:
        checked(job_id, reason)
        job = self.get_job_by_id(job_id)
        with _jobs_lock:
            if job is None or job.status in ENDED:
                return
            if job.status in NOT_STARTED:
                job_ended(job, reason=reason)
                return
            _sim(job)["stopReason"] = reason
            job.stop = True
        _notify_jobs()

    def cancel_job(self: Any, job_id: str, reason: str) -> None:
        checked(job_id, reason)
        job = self.get_job_by_id(job_id)
        with _jobs_lock:
            if job is not None and job.status in NOT_STARTED:
                job_ended(job, reason=reason)

    run._dcvfleet = True  # type: ignore[attr-defined]
    return [
        (Job, "run", run),
        (Job, "status", property(get_status, set_status)),
        (Job, "_get_container_property", get_container_property),
        (Job, "describe", describe),
        (BatchBackend, "terminate_job", terminate_job),
        (BatchBackend, "cancel_job", cancel_job),
    ]


# ------------------------------------------------------------------------------------------------
# SSM_RUN_COMMAND
@dataclass(frozen=True)
class ManagedNode:
    """A simulated host as Run Command sees it: its ``platformType``, whether its SSM Agent is
    reachable (the host is up), and the shell environment a command runs in."""

    platform: str  # "Linux" or "Windows"
    online: bool
    environ: Mapping[str, str]
    cwd: str


#: Lookups the local stack registers (the host simulator): instance id -> its managed node, or
#: None when the instance is not one of theirs (then it has no SSM Agent).
MANAGED_NODES: list[Callable[[str], ManagedNode | None]] = []
#: GetCommandInvocation returns the first 24,000 characters of each output.
OUTPUT_LIMIT = 24000
NODE_POLL_SECONDS = 0.2
DEFAULT_EXECUTION_TIMEOUT = 3600
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
SHELL_STEP, POWERSHELL_STEP = "aws:runShellScript", "aws:runPowerShellScript"
#: The platform each script action runs on when its step names no precondition.
ACTION_PLATFORM = {SHELL_STEP: "Linux", POWERSHELL_STEP: "Windows"}


def managed_node(instance_id: str) -> ManagedNode | None:
    for lookup in list(MANAGED_NODES):
        node = lookup(instance_id)
        if node is not None:
            return node
    return None


def _ssm_error(code: str, message: str) -> Exception:
    from moto.ssm.exceptions import SSMException

    return SSMException(code, message)


def resolve_parameters(content: dict[str, Any], given: dict[str, Any]) -> dict[str, list[str]]:
    """A document's parameters for one command, as SSM checks them: every given name declared,
    every parameter without a default given, a String given one value, each given value within
    ``allowedValues``, fully matching ``allowedPattern`` and within ``minChars``/``maxChars``.
    Raises InvalidParameters otherwise."""
    declared: dict[str, Any] = content.get("parameters") or {}
    for name in given:
        if name not in declared:
            raise _ssm_error(
                "InvalidParameters", f'Parameter "{name}" is not declared by the document.'
            )
    resolved: dict[str, list[str]] = {}
    for name, spec in declared.items():
        if name not in given:
            if "default" not in spec:
                raise _ssm_error(
                    "InvalidParameters", f'Parameter "{name}" is required and was not given.'
                )
            default = spec["default"]
            resolved[name] = (
                [str(v) for v in default] if isinstance(default, list) else [str(default)]
            )
            continue
        values = given[name] if isinstance(given[name], list) else [given[name]]
        if spec.get("type", "String") == "String" and len(values) != 1:
            raise _ssm_error(
                "InvalidParameters", f'Parameter "{name}" is a String: give exactly one value.'
            )
        for value in map(str, values):
            problem = _parameter_problem(spec, value)
            if problem:
                raise _ssm_error(
                    "InvalidParameters", f'Parameter "{name}" value "{value}" {problem}.'
                )
        resolved[name] = [str(v) for v in values]
    return resolved


def _parameter_problem(spec: dict[str, Any], value: str) -> str:
    allowed = spec.get("allowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        return f"is not one of the allowed values {allowed}"
    pattern = spec.get("allowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        return f"does not match the allowed pattern {pattern}"
    if "minChars" in spec and len(value) < int(spec["minChars"]):
        return f"is shorter than {spec['minChars']} characters"
    if "maxChars" in spec and len(value) > int(spec["maxChars"]):
        return f"is longer than {spec['maxChars']} characters"
    return ""


def substitute(lines: list[str], parameters: dict[str, list[str]]) -> list[str]:
    """``{{ name }}`` -> the parameter's value; a line that is only a list parameter becomes one
    line per value. Placeholders naming no parameter (``{{ssm:...}}``) stay as written."""
    out: list[str] = []
    for line in lines:
        whole = PLACEHOLDER.fullmatch(line.strip())
        if whole and whole.group(1) in parameters:
            out.extend(parameters[whole.group(1)])
            continue
        out.append(
            PLACEHOLDER.sub(
                lambda m: (
                    "\n".join(parameters[m.group(1)]) if m.group(1) in parameters else m.group(0)
                ),
                line,
            )
        )
    return out


def step_applies(step: dict[str, Any], platform: str) -> bool:
    """Whether a schemaVersion 2.2 step runs on a node: its ``platformType`` precondition, or
    (without one) whether its action is for the node's platform."""
    precondition = step.get("precondition")
    if isinstance(precondition, dict) and "StringEquals" in precondition:
        left, right = precondition["StringEquals"]
        if left == "platformType":
            return bool(right == platform)
    return ACTION_PLATFORM.get(step.get("action", ""), platform) == platform


def step_commands(step: dict[str, Any], steps: list[dict[str, Any]]) -> list[str] | str:
    """The shell lines a step runs on a simulated host (which runs Linux), or why it cannot run:
    a Windows node's ``aws:runPowerShellScript`` step runs the document's first
    ``aws:runShellScript`` step's lines instead."""
    action = step.get("action")
    if action == POWERSHELL_STEP:
        step = next((s for s in steps if s.get("action") == SHELL_STEP), {})
        if not step:
            return (
                "local stack: a simulated Windows host runs the document's aws:runShellScript"
                " step in place of its aws:runPowerShellScript step, and this document has none"
            )
    elif action != SHELL_STEP:
        return f"local stack: the {action} action is not emulated"
    commands = step.get("inputs", {}).get("runCommand", [])
    return [commands] if isinstance(commands, str) else [str(c) for c in commands]


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


@dataclass
class StepResult:
    name: str
    status: str = "Pending"
    details: str = "Pending"
    code: int = -1
    stdout: str = ""
    stderr: str = ""
    started: str = ""
    ended: str = ""

    def finish(self, status: str, details: str, code: int, out: str = "", err: str = "") -> None:
        self.status, self.details, self.code = status, details, code
        self.stdout, self.stderr = out[:OUTPUT_LIMIT], err[:OUTPUT_LIMIT]
        self.ended = _now_iso()


@dataclass
class Invocation:
    """One command on one node, step by step, kept in step with moto's invocation record."""

    command: Any
    instance_id: str
    document_version: str
    steps: list[StepResult]
    record: dict[str, Any]
    status: str = "Pending"
    details: str = "Pending"

    def sync(self) -> None:
        """Moto's records (ListCommands, the command's status) follow the real outcome."""
        selected = [s for s in self.steps if s.details != "Skipped"] or self.steps
        failing = next((s for s in selected if s.status not in ("Success", "Pending")), None)
        shown = failing or (selected[-1] if selected else None)
        self.record.update(
            Status=self.status,
            StatusDetails=self.details,
            ResponseCode=shown.code if shown else -1,
            PluginName=shown.name if shown else "",
            StandardOutputContent="".join(s.stdout for s in selected)[:OUTPUT_LIMIT],
            StandardErrorContent="".join(s.stderr for s in selected)[:OUTPUT_LIMIT],
        )
        with _run_commands_lock:
            runs = [r for k, r in RUN_COMMANDS.items() if k[0] == self.command.command_id]
        done = [r for r in runs if r.status not in ("Pending", "InProgress")]
        failed = [r for r in done if r.status != "Success"]
        self.command.completed_count = len(done)
        self.command.error_count = len(failed)
        if len(done) < len(runs):
            status = "InProgress" if any(r.status == "InProgress" for r in runs) else "Pending"
        else:
            status = failed[0].status if failed else "Success"
        self.command.status = self.command.status_details = status


#: (command id, instance id) -> its invocation, for every command sent to a managed node.
RUN_COMMANDS: dict[tuple[str, str], Invocation] = {}
_run_commands_lock = threading.Lock()


def _run_script(
    lines: list[str], node: ManagedNode, where: Path, timeout: float
) -> tuple[int | None, str, str]:
    """Run the lines as one bash script in the node's environment: (exit code or None when it
    timed out, stdout, stderr); the script and its output stay in ``where``, as SSM Agent keeps
    them in its orchestration directory."""
    where.mkdir(parents=True, exist_ok=True)
    script = where / "_script.sh"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    process = subprocess.Popen(
        ["bash", str(script)],
        cwd=node.cwd,
        env=dict(node.environ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        out, err = process.communicate()
        code = None
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    (where / "stdout").write_text(stdout, encoding="utf-8")
    (where / "stderr").write_text(stderr, encoding="utf-8")
    return code, stdout, stderr


def _deliver_invocation(
    invocation: Invocation,
    steps: list[dict[str, Any]],
    parameters: dict[str, list[str]],
    deadline: float,
) -> None:
    """Wait for the node's SSM Agent (until the delivery timeout), then run the steps in order."""
    while True:
        node = managed_node(invocation.instance_id)
        if node is None or node.online or time.monotonic() >= deadline:
            break
        time.sleep(NODE_POLL_SECONDS)
    if node is None or not node.online:
        status, details = (
            ("Failed", "Undeliverable") if node is None else ("TimedOut", "DeliveryTimedOut")
        )
        for result in invocation.steps:
            result.finish(status, details, -1)
        invocation.status, invocation.details = status, details
        invocation.sync()
        return
    invocation.status = invocation.details = "InProgress"
    invocation.record["ExecutionStartDateTime"] = _now_iso()
    invocation.sync()
    where = Path(node.cwd) / "ssm" / invocation.command.command_id
    for step, result in zip(steps, invocation.steps, strict=True):
        if not step_applies(step, node.platform):
            result.finish("Success", "Skipped", -1)
            continue
        result.started, result.status, result.details = _now_iso(), "InProgress", "InProgress"
        commands = step_commands(step, steps)
        if isinstance(commands, str):
            result.finish("Failed", "Failed", 1, err=commands + "\n")
            continue
        timeout = float(step.get("inputs", {}).get("timeoutSeconds", DEFAULT_EXECUTION_TIMEOUT))
        code, out, err = _run_script(
            substitute(commands, parameters), node, where / result.name, timeout
        )
        if code is None:
            result.finish("TimedOut", "ExecutionTimedOut", -1, out, err)
        elif code == 0:
            result.finish("Success", "Success", 0, out, err)
        else:
            result.finish("Failed", "Failed", code, out, err)
    ran = [r for r in invocation.steps if r.details != "Skipped"]
    failing = next((r for r in ran if r.status != "Success"), None)
    invocation.status = failing.status if failing else "Success"
    invocation.details = failing.details if failing else "Success"
    invocation.record["ExecutionEndDateTime"] = _now_iso()
    invocation.sync()


def run_command_patches() -> dict[str, Callable[..., Any]]:
    """SSM_RUN_COMMAND: SendCommand checks the document, its parameters and the nodes as SSM does,
    then runs the document's steps on each simulated host; GetCommandInvocation reports them."""
    import inspect

    from moto.ec2.models import ec2_backends
    from moto.ssm.models import MAX_TIMEOUT_SECONDS, SimpleSystemManagerBackend

    original_send = SimpleSystemManagerBackend.send_command
    original_get = SimpleSystemManagerBackend.get_command_invocation
    if getattr(original_send, "_dcvfleet", False):
        return {}
    signature = inspect.signature(original_send)

    def send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs).arguments
        document = self._get_documents(call.get("document_name")).get_default_version()
        content: dict[str, Any] = document.content_json or {}
        parameters = resolve_parameters(content, call.get("parameters") or {})
        ec2 = ec2_backends[self.account_id][self.region_name]
        for instance_id in call.get("instance_ids") or []:
            instance = ec2.get_instance_by_id(instance_id)
            alive = instance is not None and instance.state not in ("shutting-down", "terminated")
            if not alive or managed_node(instance_id) is None:
                raise _ssm_error(
                    "InvalidInstanceId",
                    f"Instances [[{instance_id}]] not in a valid state for account"
                    f" {self.account_id}",
                )
        command = original_send(self, *args, **kwargs)
        steps = content.get("mainSteps") or [
            {"name": "unsupported", "action": f"schemaVersion {content.get('schemaVersion')}"}
        ]
        timeout = call.get("timeout_seconds") or MAX_TIMEOUT_SECONDS
        deadline = time.monotonic() + float(timeout)
        for record in command.invocations:
            invocation = Invocation(
                command=command,
                instance_id=record["InstanceId"],
                document_version=document.document_version,
                steps=[StepResult(str(step.get("name", ""))) for step in steps],
                record=record,
            )
            with _run_commands_lock:
                RUN_COMMANDS[(command.command_id, invocation.instance_id)] = invocation
        for record in command.invocations:
            invocation = RUN_COMMANDS[(command.command_id, record["InstanceId"])]
            invocation.sync()
            threading.Thread(
                target=_deliver_invocation,
                args=(invocation, steps, parameters, deadline),
                name=f"run-command-{invocation.instance_id}",
                daemon=True,
            ).start()
        return command

    def get_command_invocation(
        self: Any, command_id: str, instance_id: str, plugin_name: str | None
    ) -> dict[str, Any]:
        invocation = RUN_COMMANDS.get((command_id, instance_id))
        if invocation is None:
            return dict(original_get(self, command_id, instance_id, plugin_name))
        names = [s.name for s in invocation.steps]
        if plugin_name is None and len(names) > 1:
            raise _ssm_error(
                "InvalidPluginName",
                f"The document has {len(names)} steps ({', '.join(names)}): name one in"
                " PluginName.",
            )
        if plugin_name is not None and plugin_name not in names:
            raise _ssm_error("InvalidPluginName", f"The document has no step {plugin_name}.")
        step = invocation.steps[names.index(plugin_name) if plugin_name else 0]
        record = invocation.record
        return {
            "CommandId": command_id,
            "InstanceId": instance_id,
            "Comment": record.get("Comment", ""),
            "DocumentName": record.get("DocumentName"),
            "DocumentVersion": invocation.document_version,
            "PluginName": step.name,
            "ResponseCode": step.code,
            "ExecutionStartDateTime": step.started,
            "ExecutionElapsedTime": "",
            "ExecutionEndDateTime": step.ended,
            "Status": step.status,
            "StatusDetails": step.details,
            "StandardOutputContent": step.stdout,
            "StandardOutputUrl": "",
            "StandardErrorContent": step.stderr,
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {
                "CloudWatchLogGroupName": "",
                "CloudWatchOutputEnabled": False,
            },
        }

    send_command._dcvfleet = True  # type: ignore[attr-defined]
    get_command_invocation._dcvfleet = True  # type: ignore[attr-defined]
    return {"send_command": send_command, "get_command_invocation": get_command_invocation}


def patch_run_command() -> None:
    from moto.ssm.models import SimpleSystemManagerBackend

    for name, replacement in run_command_patches().items():
        setattr(SimpleSystemManagerBackend, name, replacement)


def enable_execution(endpoint_url: str, port: int) -> None:
    """SFN_EXECUTION: switch the interpreter on and point its clients at this server."""
    os.environ["MOTO_PORT"] = str(port)
    resp = requests.post(
        f"{endpoint_url}/moto-api/config",
        json={"stepfunctions": {"execute_state_machine": True}},
        timeout=10,
    )
    resp.raise_for_status()


def sfn_task_failure_with_cause() -> Callable[[Any], Any]:
    """SFN_TASK_FAILURE_CAUSE: SendTaskFailure's handler, handing its cause on as well."""
    from moto.core.responses import EmptyResult

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"),
            error=self._get_param("error"),
            cause=self._get_param("cause"),
        )
        return EmptyResult()

    send_task_failure._dcvfleet = True  # type: ignore[attr-defined]
    return send_task_failure


def patch_sfn_task_failure_cause() -> None:
    from moto.stepfunctions.responses import StepFunctionResponse

    if not getattr(StepFunctionResponse.send_task_failure, "_dcvfleet", False):
        setattr(StepFunctionResponse, "send_task_failure", sfn_task_failure_with_cause())  # noqa: B010


def apply_patches(patches: list[Patch]) -> None:
    for owner, attribute, replacement in patches:
        setattr(owner, attribute, replacement)


def apply_all(endpoint_url: str, port: int) -> None:
    patch_lambda_runtime()
    enable_totp_checks()
    faults.install()
    patch_event_targets(endpoint_url)
    patch_event_bus_ref()
    patch_dynamodb_atomic_writes()
    patch_instance_state_changes()
    patch_run_command()
    patch_ssm_document_from_cloudformation()
    patch_ecr_from_cloudformation()
    apply_patches(batch_cloudformation_patches())
    apply_patches(batch_job_patches())
    codebuild_project_model()
    apply_patches(codebuild_build_patches())
    apply_patches(sfn_aws_sdk_patches())
    apply_patches(sfn_json_path_patches())
    apply_patches(sfn_cost_patches())
    apply_patches(bucket_cloudformation_patches())
    apply_patches(cognito_srp_patches())
    apply_patches(cognito_auth_flow_patches())
    apply_patches(sns_email_patches())
    apply_patches(sns_subscribe_patches())
    apply_patches(cognito_read_attribute_patches())
    apply_patches(ec2_page_token_patches())
    apply_patches(service_quota_patches())
    apply_patches(default_vpc_patches())
    apply_patches(stack_parameter_patches())
    patch_sfn_task_failure_cause()
    enable_execution(endpoint_url, port)


#: Resource types whose CloudFormation resources moto only fakes; created through the API instead.
#: CLOUDFRONT: moto's CloudFormation has no CloudFront resources (a stack naming one never
#: completes them), and a Lambda-backed custom resource runs its function, whose layer (the
#: portal's files) is not unpacked in-process. The portal's distribution and publishing are
#: stood in for by the local stack, which serves ``portal/`` and its ``config.json`` itself.
LOCALLY_SERVED_TYPES = frozenset(
    {
        "AWS::CloudFront::Distribution",
        "AWS::CloudFront::OriginAccessControl",
        "AWS::CloudFront::ResponseHeadersPolicy",
        "Custom::PortalSite",
    }
)

API_CREATED_TYPES = frozenset(
    {
        "AWS::Cognito::UserPool",
        "AWS::Cognito::UserPoolClient",
        "AWS::Cognito::UserPoolGroup",
        # moto's CloudFormation ignores a RestApi's Body, so a Deployment of it fails ("no
        # methods"); the Body is imported, deployed and staged through the API instead.
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Stage",
        # moto's CloudFormation adds the permission but gives the resource no physical id.
        "AWS::Lambda::Permission",
        # moto's CloudFormation has no layer versions and no bucket policies (it warns and
        # skips them): layers are published through the API before the stack; bucket policies
        # are left out (the emulator is plain HTTP, where their TLS-only statements refuse all).
        "AWS::Lambda::LayerVersion",
        "AWS::S3::BucketPolicy",
        # CLOUDWATCH_ALARMS: moto's CloudFormation has no alarms. They are put through the API
        # once the stack is up, and then the dashboard, which names them.
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        # APIGW_ACCOUNT: moto's CloudFormation does not set the account's CloudWatch role.
        "AWS::ApiGateway::Account",
    }
)


def patch_event_bus_ref() -> None:
    """EVENTBUS_REF: a bus's physical id (and so its ``Ref``) is its name, as in AWS."""
    from moto.events.models import EventBus

    if "physical_resource_id" not in vars(EventBus):
        EventBus.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]


def document_from_cloudformation() -> classmethod[Any, ..., Any]:
    """SSM_DOCUMENT_FROM_CLOUDFORMATION: create an ``AWS::SSM::Document`` as CloudFormation
    does: ``DocumentFormat`` defaults to JSON, a ``Content`` object (how a template writes it)
    is stored as JSON (or YAML) text, and a document without ``Name`` is named
    ``<stack>-<LogicalId>-<suffix>``, which is its ``Ref``."""
    from moto.ssm.models import ssm_backends

    def create(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = cloudformation_json["Properties"]
        document_format = properties.get("DocumentFormat") or "JSON"
        content = properties.get("Content")
        if not isinstance(content, str):
            if document_format == "JSON":
                content = json.dumps(content)
            else:
                import yaml

                content = yaml.safe_dump(content, sort_keys=False)
        documents = ssm_backends[account_id][region_name].create_document(
            content=content,
            requires=properties.get("Requires"),
            attachments=properties.get("Attachments"),
            name=properties.get("Name") or resource_name,
            version_name=properties.get("VersionName"),
            document_type=properties.get("DocumentType") or "Command",
            document_format=document_format,
            target_type=properties.get("TargetType"),
            tags=properties.get("Tags"),
        )
        return documents.get_default_version()

    create._dcvfleet = True  # type: ignore[attr-defined]
    return classmethod(create)


def patch_ssm_document_from_cloudformation() -> None:
    from moto.ssm.models import Document

    if not getattr(Document.create_from_cloudformation_json, "_dcvfleet", False):
        setattr(Document, "create_from_cloudformation_json", document_from_cloudformation())  # noqa: B010


def _lower_first(value: Any) -> Any:
    """CloudFormation's property casing (``ScanOnPush``) -> the API's (``scanOnPush``); a map of
    tags (``Tags``) and a log driver's ``Options`` keep their keys."""
    if isinstance(value, dict):
        return {
            k[:1].lower() + k[1:]: v if k in ("Tags", "Options") else _lower_first(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_lower_first(v) for v in value]
    return value


def repository_from_cloudformation() -> classmethod[Any, ..., Any]:
    """ECR_FROM_CLOUDFORMATION: create an ``AWS::ECR::Repository`` as CloudFormation does: a
    repository without ``RepositoryName`` is named ``<stack>-<logicalid>-<suffix>`` in lower
    case (ECR refuses upper case), its scanning and encryption configurations are kept in the
    API's casing, and its ``LifecyclePolicy`` is applied."""
    from moto.ecr.models import ecr_backends

    def create(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = cloudformation_json["Properties"]
        backend = ecr_backends[account_id][region_name]
        name = properties.get("RepositoryName") or resource_name.lower()
        repository = backend.create_repository(
            repository_name=name,
            registry_id=None,
            encryption_config=_lower_first(properties.get("EncryptionConfiguration")),
            image_scan_config=_lower_first(properties.get("ImageScanningConfiguration")),
            image_tag_mutability=properties.get("ImageTagMutability"),
            tags=properties.get("Tags", []),
        )
        lifecycle = properties.get("LifecyclePolicy") or {}
        if lifecycle.get("LifecyclePolicyText"):
            backend.put_lifecycle_policy(
                repository.registry_id, name, lifecycle["LifecyclePolicyText"]
            )
        return repository

    create._dcvfleet = True  # type: ignore[attr-defined]
    return classmethod(create)


#: The role AWS Batch uses when a compute environment names no service role.
BATCH_SERVICE_LINKED_ROLE = "AWSServiceRoleForBatch"


def batch_service_role(iam: Any) -> str:
    """The AWS Batch service-linked role's ARN, created (as AWS does) the first time."""
    from moto.iam.exceptions import NotFoundException

    try:
        role = iam.get_role(BATCH_SERVICE_LINKED_ROLE)
    except NotFoundException:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "batch.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam.create_role(
            BATCH_SERVICE_LINKED_ROLE,
            json.dumps(trust),
            "/aws-service-role/batch.amazonaws.com/",
            permissions_boundary=None,
            description="Allows Batch to create and manage AWS resources on your behalf.",
            tags=[],
            max_session_duration="3600",
            linked_service="batch.amazonaws.com",
        )
    return str(role.arn)


def batch_cloudformation_patches() -> list[Patch]:
    """BATCH_FROM_CLOUDFORMATION: the replacements of moto's Batch methods (none when they are
    already replaced).

    * ``BatchBackend.create_compute_environment``: without a service role, the AWS Batch
      service-linked role (CreateComputeEnvironment's ``serviceRole`` is optional on AWS).
    * ``ComputeEnvironment.create_from_cloudformation_json``: ``ServiceRole`` optional,
      ``ComputeEnvironmentName``, ``State`` and ``Tags`` honoured.
    * ``JobDefinition.create_from_cloudformation_json``: ``JobDefinitionName``, ``Type``,
      ``PlatformCapabilities``, ``PropagateTags``, ``Timeout`` and ``Tags`` honoured (tag keys
      as written), ``ResourceRequirements`` values strings."""
    import inspect

    from moto.batch.models import BatchBackend, ComputeEnvironment, JobDefinition, batch_backends

    original = BatchBackend.create_compute_environment
    if getattr(original, "_dcvfleet", False):
        return []
    signature = inspect.signature(original)

    def create_compute_environment(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs)
        if not call.arguments.get("service_role"):
            call.arguments["service_role"] = batch_service_role(self.iam_backend)
        return original(*call.args, **call.kwargs)

    def environment_from_cloudformation(
        cls: Any, /, resource_name: str, cfn: Any, account_id: str, region_name: str, **_: Any
    ) -> Any:
        properties = cfn["Properties"]
        return batch_backends[account_id][region_name].create_compute_environment(
            compute_environment_name=properties.get("ComputeEnvironmentName") or resource_name,
            _type=properties["Type"],
            state=properties.get("State", "ENABLED"),
            compute_resources=_lower_first(properties.get("ComputeResources")),
            service_role=properties.get("ServiceRole"),
            tags=properties.get("Tags"),
        )

    def job_definition_from_cloudformation(
        cls: Any, /, resource_name: str, cfn: Any, account_id: str, region_name: str, **_: Any
    ) -> Any:
        properties = cfn["Properties"]

        def lowered(key: str) -> Any:
            return _lower_first(properties[key]) if key in properties else None

        container = lowered("ContainerProperties")
        if container and "resourceRequirements" in container:  # the API's values are strings
            container["resourceRequirements"] = [
                {**r, "value": str(r["value"])} for r in container["resourceRequirements"]
            ]
        return batch_backends[account_id][region_name].register_job_definition(
            def_name=properties.get("JobDefinitionName") or resource_name,
            parameters=properties.get("Parameters", {}),
            _type=properties.get("Type", "container"),
            tags=properties.get("Tags", {}),
            retry_strategy=lowered("RetryStrategy"),
            container_properties=container,
            node_properties=lowered("NodeProperties"),
            eks_properties=lowered("EksProperties"),
            timeout=lowered("Timeout") or {},
            platform_capabilities=properties.get("PlatformCapabilities"),
            propagate_tags=bool(properties.get("PropagateTags", False)),
        )

    create_compute_environment._dcvfleet = True  # type: ignore[attr-defined]
    return [
        (BatchBackend, "create_compute_environment", create_compute_environment),
        (
            ComputeEnvironment,
            "create_from_cloudformation_json",
            classmethod(environment_from_cloudformation),
        ),
        (
            JobDefinition,
            "create_from_cloudformation_json",
            classmethod(job_definition_from_cloudformation),
        ),
    ]


_codebuild_model: list[type] = []


def codebuild_project_model() -> type:
    """CODEBUILD_FROM_CLOUDFORMATION: moto's CloudFormation has no ``AWS::CodeBuild::Project``
    (the stack fails on a ``Fn::GetAtt`` of one). This model creates the project through
    CodeBuild's backend as CloudFormation would (named ``<stack>-<LogicalId>-<suffix>`` without
    ``Name``; ``Ref`` its name, ``Fn::GetAtt Arn`` its ARN). Defining it registers it with moto's
    CloudFormation, so it is defined once, on first use."""
    if _codebuild_model:
        return _codebuild_model[0]
    from moto.cloudformation import parsing
    from moto.codebuild.models import codebuild_backends
    from moto.core.common_models import CloudFormationModel

    class CodeBuildProject(CloudFormationModel):
        def __init__(self, name: str, arn: str) -> None:
            self.name, self.arn = name, arn

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CodeBuild::Project"

        @staticmethod
        def cloudformation_name_type() -> str:
            return "Name"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            return self.arn

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> CodeBuildProject:
            properties = cloudformation_json["Properties"]
            name = properties.get("Name") or resource_name
            source = _lower_first(properties["Source"])
            if "buildSpec" in source:  # the API spells it buildspec
                source["buildspec"] = source.pop("buildSpec")
            project = codebuild_backends[account_id][region_name].create_project(
                project_name=name,
                description=properties.get("Description"),
                project_source=source,
                artifacts=_lower_first(properties["Artifacts"]),
                environment=_lower_first(properties["Environment"]),
                service_role=properties["ServiceRole"],
                tags=_lower_first(properties.get("Tags")),
                cache=_lower_first(properties.get("Cache")),
                timeout=properties.get("TimeoutInMinutes"),
                queued_timeout=properties.get("QueuedTimeoutInMinutes"),
                source_version=properties.get("SourceVersion"),
                logs_config=_lower_first(properties.get("LogsConfig")),
                vpc_config=_lower_first(properties.get("VpcConfig")),
            )
            return cls(name, str(project["arn"]))

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    _codebuild_model.append(CodeBuildProject)
    return CodeBuildProject


# ------------------------------------------------------------------------------------------------
# CODEBUILD_BUILDS
#: How long a simulated image build runs before its outcome is known.
BUILD_SECONDS = 1.0
#: A file of this name anywhere in an application build makes its simulated image build fail;
#: the file's first line is the reason the build log gives.
FAIL_BUILD_MARKER = "FAIL_BUILD"
#: What the simulated build needs from the project's source bundle: its build spec is the
#: project's ``buildspec``; these are the files that build spec runs.
SOURCE_FILES = {"PRE_BUILD": "agent/build.py", "BUILD": "container/Dockerfile"}
#: The checks ``container/buildspec.yml`` makes of its inputs before anything is built.
BUILD_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
ARTIFACT_URI_PATTERN = re.compile(
    r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+\.(tar\.gz|tgz|zip))$"
)
REPOSITORY_URI_PATTERN = re.compile(
    r"^([0-9]{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/([a-z0-9][a-z0-9._/-]*)$"
)
UBUNTU_SNAPSHOT_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
BUILD_PHASES = (
    "SUBMITTED",
    "QUEUED",
    "PROVISIONING",
    "DOWNLOAD_SOURCE",
    "INSTALL",
    "PRE_BUILD",
    "BUILD",
    "POST_BUILD",
    "UPLOAD_ARTIFACTS",
    "FINALIZING",
    "COMPLETED",
)
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
#: Every read and change of a build's record (StartBuild, the simulated run, BatchGetBuilds).
_builds_lock = threading.RLock()


class BuildFailure(Exception):
    """A simulated build phase failed: its phase context's status code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _iso_now() -> str:
    from moto.core.utils import iso_8601_datetime_with_milliseconds

    return str(iso_8601_datetime_with_milliseconds())


def _sha256(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def _s3_object(account_id: str, region: str, bucket: str, key: str) -> bytes | None:
    """An object's bytes in the emulated S3, None when the bucket or key does not exist."""
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    backend = s3_backends[account_id][get_partition(region)]
    try:
        found = backend.get_object(bucket, key)
    except Exception:  # no such bucket
        return None
    return None if found is None else bytes(found.value)


def archive_members(data: bytes, name: str) -> dict[str, bytes]:
    """The files of an application build (a .tar.gz/.tgz or a .zip) by path; raises
    BuildFailure when it is neither, as ``tar``/``unzip`` would fail on it."""
    import tarfile
    import zipfile

    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            return {m.name: (tar.extractfile(m) or io.BytesIO()).read() for m in tar if m.isfile()}
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise BuildFailure(
            "COMMAND_EXECUTION_ERROR", f"the application build {name} cannot be unpacked: {exc}"
        ) from exc


def _manifest(version: str, artifact: bytes) -> tuple[str, str]:
    """A small, valid image manifest (Docker v2 schema 2) for the build: (text, digest)."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"dcvfleet.build-version": version}},
            "rootfs": {"type": "layers", "diff_ids": [_sha256(artifact)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _sha256(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(artifact),
                    "digest": _sha256(artifact),
                }
            ],
        },
        indent=3,
    )
    return manifest, _sha256(manifest.encode())


@dataclass
class SimulatedBuild:
    """One StartBuild of a project: the record BatchGetBuilds returns (moto's, kept in step)."""

    account_id: str
    region: str
    project: dict[str, Any]  # the project's metadata
    record: dict[str, Any]  # moto's build record
    log: list[str] = field(default_factory=list)
    source_files: set[str] | None = None  # the source bundle's files (None: no source)
    artifact: bytes = b""  # the application build, once downloaded
    exported: list[dict[str, str]] = field(default_factory=list)  # once the image is pushed

    @property
    def variables(self) -> dict[str, str]:
        return {
            v["name"]: str(v.get("value", ""))
            for v in self.record["environment"].get("environmentVariables", [])
        }

    def say(self, line: str) -> None:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime())
        self.log.append(f"[Container] {stamp} {line}")

    # -- the phases ---------------------------------------------------------------------------
    def download_source(self) -> None:
        source = self.project.get("source") or {}
        if source.get("type") == "NO_SOURCE":
            return
        if source.get("type") != "S3":
            raise BuildFailure(
                "CLIENT_ERROR", f"local stack: a {source.get('type')} source is not simulated"
            )
        bucket, _, key = str(source.get("location", "")).partition("/")
        bundle = _s3_object(self.account_id, self.region, bucket, key)
        if bundle is None:
            raise BuildFailure(
                "CLIENT_ERROR",
                f"error while downloading key {key}, error: NoSuchKey: The specified key does"
                " not exist. for primary source and source version",
            )
        files = archive_members(bundle, key)
        buildspec = str(source.get("buildspec") or "buildspec.yml")
        if "\n" not in buildspec and buildspec not in files:
            raise BuildFailure(
                "YAML_FILE_ERROR", f"stat {buildspec}: no such file or directory in {key}"
            )
        self.source_files = set(files)

    def pre_build(self) -> None:
        variables = self.variables
        version = variables.get("BUILD_VERSION", "")
        artifact_uri = variables.get("BUILD_ARTIFACT_S3_URI", "")
        problems = []
        if not BUILD_VERSION_PATTERN.match(version):
            problems.append(f"BUILD_VERSION '{version}' is not a Docker tag")
        if version == "latest":
            problems.append("BUILD_VERSION must not be 'latest'")
        if not ARTIFACT_URI_PATTERN.match(artifact_uri):
            problems.append(
                f"BUILD_ARTIFACT_S3_URI '{artifact_uri}' is not s3://bucket/key.tar.gz or .zip"
            )
        repository_uri = variables.get("IMAGE_REPOSITORY_URI", "")
        if not REPOSITORY_URI_PATTERN.match(repository_uri):
            problems.append(f"IMAGE_REPOSITORY_URI '{repository_uri}' is not an ECR repository URI")
        snapshot = variables.get("UBUNTU_SNAPSHOT", "")
        if not UBUNTU_SNAPSHOT_PATTERN.match(snapshot):
            problems.append(
                f"UBUNTU_SNAPSHOT '{snapshot}' is not an Ubuntu snapshot id (YYYYMMDDTHHMMSSZ)"
            )
        if problems:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR", "; ".join(f"buildspec: {p}" for p in problems)
            )
        tags = self._repository_images()
        if tags is not None and version in tags:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR", f"buildspec: {repository_uri}:{version} already exists"
            )
        bucket, key = ARTIFACT_URI_PATTERN.match(artifact_uri).group(1, 2)  # type: ignore[union-attr]
        artifact = _s3_object(self.account_id, self.region, bucket, key)
        if artifact is None:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR",
                f"fatal error: An error occurred (404) when calling the HeadObject operation: Key"
                f' "{key}" does not exist (aws s3 cp {artifact_uri})',
            )
        self.artifact = artifact
        self._needs("PRE_BUILD")

    def build(self) -> None:
        self._needs("BUILD")
        key = ARTIFACT_URI_PATTERN.match(self.variables["BUILD_ARTIFACT_S3_URI"]).group(2)  # type: ignore[union-attr]
        files = archive_members(self.artifact, key)
        for path, content in sorted(files.items()):
            if path.rsplit("/", 1)[-1] == FAIL_BUILD_MARKER:
                text = content.decode(errors="replace").strip().splitlines()
                reason = text[0] if text else "the application build says it cannot be built"
                raise BuildFailure(
                    "COMMAND_EXECUTION_ERROR",
                    f"docker build failed ({path} in the application build): {reason}",
                )

    def post_build(self) -> None:
        from moto.ecr.exceptions import ImageAlreadyExistsException
        from moto.ecr.models import ecr_backends

        variables = self.variables
        version, uri = variables["BUILD_VERSION"], variables["IMAGE_REPOSITORY_URI"]
        account, region, _, name = REPOSITORY_URI_PATTERN.match(uri).groups()  # type: ignore[union-attr]
        manifest, digest = _manifest(version, self.artifact)
        if self._repository_images() is None:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR",
                f"name unknown: The repository with name '{name}' does not exist in the registry"
                f" with id '{account}' (docker push {uri}:{version})",
            )
        try:
            ecr_backends[account][region].put_image(name, manifest, version, MANIFEST_TYPE, digest)
        except ImageAlreadyExistsException as exc:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR",
                f"tag invalid: The image tag '{version}' already exists in the '{name}'"
                " repository and cannot be overwritten because the repository is immutable.",
            ) from exc
        self.say(f"pushed {uri}:{version} ({digest})")
        self.exported = [
            {"name": "IMAGE_URI", "value": f"{uri}:{version}"},
            {"name": "IMAGE_DIGEST", "value": digest},
        ]

    def _needs(self, phase: str) -> None:
        if self.source_files is not None and SOURCE_FILES[phase] not in self.source_files:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR",
                f"{SOURCE_FILES[phase]}: No such file or directory (not in the source bundle)",
            )

    def _repository_images(self) -> set[str] | None:
        """The tags in the build's repository, None when it does not exist."""
        from moto.ecr.models import ecr_backends

        match = REPOSITORY_URI_PATTERN.match(self.variables.get("IMAGE_REPOSITORY_URI", ""))
        if match is None:
            return None
        account, region, _, name = match.groups()
        repository = ecr_backends[account][region].repositories.get(name)
        if repository is None or repository.registry_id != account:
            return None
        return {tag for image in repository.images for tag in image.image_tags}

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> None:
        """The build's phases in order; the first failure ends it FAILED with its reason."""
        steps: list[tuple[str, Callable[[], None]]] = [
            ("PROVISIONING", lambda: None),
            ("DOWNLOAD_SOURCE", self.download_source),
            ("INSTALL", lambda: None),
            ("PRE_BUILD", self.pre_build),
            ("BUILD", self.build),
            ("POST_BUILD", self.post_build),
            ("UPLOAD_ARTIFACTS", lambda: None),
        ]
        phases: list[dict[str, Any]] = []
        failure: BuildFailure | None = None
        for name, step in steps:
            if self.record["buildStatus"] != "IN_PROGRESS":
                return  # stopped meanwhile
            started = _iso_now()
            self.say(f"Entering phase {name}")
            try:
                step()
            except BuildFailure as exc:
                failure = exc
            except Exception as exc:  # the emulator's own fault: the build fails, saying so
                failure = BuildFailure("CLIENT_ERROR", f"local stack: {exc!r}")
            phase: dict[str, Any] = {
                "phaseType": name,
                "phaseStatus": "FAILED" if failure else "SUCCEEDED",
                "startTime": started,
                "endTime": _iso_now(),
                "durationInSeconds": 0,
            }
            if failure is not None:
                phase["contexts"] = [{"statusCode": failure.code, "message": str(failure)}]
                self.say(f"Phase context status code: {failure.code} Message: {failure}")
            self.say(f"Phase complete: {name} State: {phase['phaseStatus']}")
            phases.append(phase)
            if failure is not None:
                break
        now = _iso_now()
        phases += [
            {"phaseType": "FINALIZING", "phaseStatus": "SUCCEEDED", "startTime": now,
             "endTime": now, "durationInSeconds": 0},
            {"phaseType": "COMPLETED", "startTime": now},
        ]  # fmt: skip
        self._ship_log()
        with _builds_lock:
            if self.record["buildStatus"] != "IN_PROGRESS":
                return
            queued = [p for p in self.record["phases"] if p["phaseType"] in ("SUBMITTED", "QUEUED")]
            for phase in queued:
                phase.setdefault("phaseStatus", "SUCCEEDED")
                phase.setdefault("endTime", phases[0]["startTime"])
            self.record["phases"] = [*queued, *phases]
            self.record["currentPhase"] = "COMPLETED"
            self.record["buildStatus"] = "FAILED" if failure else "SUCCEEDED"
            self.record["buildComplete"] = True
            self.record["endTime"] = now
            if self.exported:
                self.record["exportedEnvironmentVariables"] = self.exported

    def _ship_log(self) -> None:
        """The build's log in ``/aws/codebuild/<project>``, its stream the build id's suffix."""
        from moto.logs.models import logs_backends

        logs = logs_backends[self.account_id][self.region]
        group, stream = self.record["logs"]["groupName"], self.record["logs"]["streamName"]
        stamp = int(time.time() * 1000)
        try:
            logs.ensure_log_group(group)
            logs.ensure_log_stream(group, stream)
            logs.put_log_events(
                group, stream, [{"timestamp": stamp, "message": line} for line in self.log]
            )
        except Exception:  # the log is a convenience; the build's outcome is what matters
            log.debug("build %s: its log was not shipped", self.record["id"], exc_info=True)


def _prepare_build(backend: Any, record: dict[str, Any], overrides: list[dict[str, Any]]) -> None:
    """What StartBuild records as CodeBuild does: the project's source and environment, its
    variables with the overrides, its log group and stream; then the build runs."""
    import copy

    project = backend.codebuild_projects[record["projectName"]].project_metadata
    environment = copy.deepcopy(project.get("environment") or {})
    given = {v["name"]: v for v in overrides}
    environment["environmentVariables"] = [
        *(v for v in environment.get("environmentVariables", []) if v["name"] not in given),
        *({"type": "PLAINTEXT", **v} for v in overrides),
    ]
    group = f"/aws/codebuild/{record['projectName']}"
    stream = record["id"].split(":", 1)[1]
    arn_prefix = f"arn:aws:logs:{backend.region_name}:{backend.account_id}:log-group:{group}"
    record.update(
        source=copy.deepcopy(project.get("source") or {}),
        environment=environment,
        timeoutInMinutes=project.get("timeoutInMinutes") or 60,
        logs={
            "groupName": group,
            "streamName": stream,
            "cloudWatchLogsArn": f"{arn_prefix}:log-stream:{stream}",
            "cloudWatchLogs": {"status": "ENABLED"},
        },
    )
    build = SimulatedBuild(backend.account_id, backend.region_name, project, record)
    timer = threading.Timer(BUILD_SECONDS, build.run)
    timer.name, timer.daemon = f"codebuild-{stream[:8]}", True
    timer.start()


def codebuild_build_patches() -> list[Patch]:
    """CODEBUILD_BUILDS: the replacements of moto's CodeBuild build methods (none when they are
    already replaced).

    * ``CodeBuildResponse.start_build``: the build records the project's source and environment
      with ``environmentVariablesOverride`` (moto drops them), and runs (``SimulatedBuild``).
    * ``CodeBuildBackend.batch_get_builds``: each build as it is (moto reports SUCCEEDED).
    * ``CodeBuildBackend.stop_build``: a running build is STOPPED and stays so."""
    from moto.codebuild.models import CodeBuildBackend
    from moto.codebuild.responses import CodeBuildResponse

    original_start = CodeBuildResponse.start_build
    if getattr(original_start, "_dcvfleet", False):
        return []

    def start_build(self: Any) -> Any:
        overrides = self._get_param("environmentVariablesOverride") or []
        with _builds_lock:
            result = original_start(self)  # checks the project, records the build
            backend = self.codebuild_backend
            record = backend.build_metadata[self._get_param("projectName")].build_metadata
            _prepare_build(backend, record, overrides)
        return result

    def batch_get_builds(self: Any, ids: list[str]) -> list[dict[str, Any]]:
        import copy

        with _builds_lock:
            return [
                copy.deepcopy(build)
                for builds in self.build_metadata_history.values()
                for build in builds
                if build["id"] in ids
            ]

    def stop_build(self: Any, build_id: str) -> dict[str, Any] | None:
        import copy

        with _builds_lock:
            for builds in self.build_metadata_history.values():
                for build in builds:
                    if build["id"] == build_id:
                        if build["buildStatus"] == "IN_PROGRESS":
                            build.update(
                                buildStatus="STOPPED",
                                currentPhase="COMPLETED",
                                buildComplete=True,
                                endTime=_iso_now(),
                            )
                        stopped: dict[str, Any] = copy.deepcopy(build)
                        return stopped
        return None

    start_build._dcvfleet = True  # type: ignore[attr-defined]
    return [
        (CodeBuildResponse, "start_build", start_build),
        (CodeBuildBackend, "batch_get_builds", batch_get_builds),
        (CodeBuildBackend, "stop_build", stop_build),
    ]


# ------------------------------------------------------------------------------------------------
# SFN_AWS_SDK_CASING
#: Step Functions' service names in aws-sdk error names, where they are not the resource's.
SDK_ERROR_SERVICE_NAMES = {"codebuild": "CodeBuild"}
_service_models: dict[str, Any] = {}
_service_models_lock = threading.Lock()


def sdk_operation_model(service: str, action: str) -> Any | None:
    """botocore's model of a service's operation (``action`` in snake case), None if unknown."""
    import botocore.session
    from moto.stepfunctions.parser.utils import camel_to_snake_case

    with _service_models_lock:
        model = _service_models.get(service)
        if model is None:
            model = botocore.session.get_session().get_service_model(service)
            _service_models[service] = model
    for name in model.operation_names:
        if camel_to_snake_case(name) == action:
            return model.operation_model(name)
    return None


def sfn_aws_sdk_patches() -> list[Patch]:
    """SFN_AWS_SDK_CASING: an ``aws-sdk`` Task's parameters in Step Functions' PascalCase become
    the API's member names (``ProjectName`` -> ``projectName``), its result's members PascalCase
    (``build.id`` -> ``Build.Id``), and a service error is ``<Service>.<Error>Exception`` in
    Step Functions' spelling of the service (``CodeBuild.ResourceNotFoundException``), as AWS
    documents for its SDK integrations. None when already replaced."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    task = aws_sdk.StateTaskServiceAwsSdk
    if getattr(task._normalise_parameters, "_dcvfleet", False):
        return []

    def operation(self: Any, service: str | None, action: str | None) -> Any | None:
        return sdk_operation_model(
            self._get_boto_service_name(service), self._get_boto_service_action(action)
        )

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        model = operation(self, boto_service_name, service_action_name)
        if model is not None and model.input_shape is not None:
            self._to_boto_request(parameters, model.input_shape)

    def normalise_response(
        self: Any,
        response: Any,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        model = operation(self, boto_service_name, service_action_name)
        if model is not None and model.output_shape is not None:
            self._from_boto_response(response, model.output_shape)

    normalise_parameters._dcvfleet = True  # type: ignore[attr-defined]
    names = {**aws_sdk._SERVICE_ERROR_NAMES, **SDK_ERROR_SERVICE_NAMES}
    return [
        (task, "_normalise_parameters", normalise_parameters),
        (task, "_normalise_response", normalise_response),
        (aws_sdk, "_SERVICE_ERROR_NAMES", names),
    ]


# ------------------------------------------------------------------------------------------------
# SFN_JSONPATH_INDEX
#: What makes a JSONPath indefinite (it may select several nodes, so Step Functions gives a list):
#: recursive descent, a wildcard, a filter, a slice or a union.
INDEFINITE_PATH = re.compile(r"\.\.|\*|\[\?|\[[^\]]*[:,][^\]]*\]")


def definite_json_path(original: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """SFN_JSONPATH_INDEX: a definite path (``$.Builds[0].BuildStatus``) selects one value, as in
    Step Functions; indefinite ones are left to moto."""

    def extract_json(path: str, data: Any) -> Any:
        if path == "$" or (path.startswith("$.") and not INDEFINITE_PATH.search(path)):
            from jsonpath_ng.ext import parse  # type: ignore[attr-defined]

            matches = parse(path).find(data)
            if len(matches) == 1:
                return matches[0].value
        return original(path, data)  # none found (moto's error), or indefinite

    extract_json._dcvfleet = True  # type: ignore[attr-defined]
    return extract_json


def sfn_json_path_patches() -> list[Patch]:
    """SFN_JSONPATH_INDEX: ``extract_json`` replaced in moto's JSONPath module and in every module
    of its interpreter that imported it (none when already replaced)."""
    import moto.stepfunctions.parser.asl.parse.preprocessor  # noqa: F401 - loads every holder
    from moto.stepfunctions.parser.asl.utils import json_path

    original = json_path.extract_json
    if getattr(original, "_dcvfleet", False):
        return []
    replacement = definite_json_path(original)
    holders = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser")
        and getattr(module, "extract_json", None) is original
    ]
    return [(module, "extract_json", replacement) for module in holders]


# ------------------------------------------------------------------------------------------------
# SFN_COST
def sfn_cost_patches() -> list[Patch]:
    """SFN_COST: the parse tree of each definition kept (every execution still gets components of
    its own from it), and the interpreter's boto3 clients kept per region and service (a state's
    own credentials still get a client of their own). None when already replaced."""
    import moto.stepfunctions.parser.asl.parse.preprocessor  # noqa: F401 - loads every holder
    from moto.stepfunctions.parser.asl.parse import asl_parser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
    from moto.stepfunctions.parser.asl.utils import boto_client

    parse = asl_parser.AmazonStateLanguageParser.parse
    if getattr(parse, "_dcvfleet", False):
        return []
    trees: dict[str, Any] = {}
    make_client = boto_client.boto_client_for
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def parse_once(definition: str) -> tuple[Any, Any]:
        tree = trees.get(definition)
        if tree is None:
            program, tree = parse(definition)  # a definition that does not parse raises here
            trees[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    def client_once(region: str, service: str, state_credentials: Any = None) -> Any:
        if state_credentials is not None:
            return make_client(region, service, state_credentials)
        with lock:
            if (region, service) not in clients:
                clients[(region, service)] = make_client(region, service)
            return clients[(region, service)]

    parse_once._dcvfleet = True  # type: ignore[attr-defined]
    holders = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.parser")
        and getattr(module, "boto_client_for", None) is make_client
    ]
    return [
        (asl_parser.AmazonStateLanguageParser, "parse", staticmethod(parse_once)),
        *[(module, "boto_client_for", client_once) for module in holders],
    ]


# ------------------------------------------------------------------------------------------------
# EC2_PAGE_TOKEN
def ec2_page_token_patches() -> list[Patch]:
    """EC2_PAGE_TOKEN: ``DescribeInstances`` refuses a ``NextToken`` that names no reservation of
    the listing as a client error. None when already replaced."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses.instances import InstanceResponse

    original = InstanceResponse.describe_instances
    if getattr(original, "_dcvfleet", False):
        return []

    def describe_instances(self: Any) -> Any:
        token = self._get_param("NextToken")
        if token:
            filters = self._filters_from_querystring()
            ids = self._get_param("InstanceIds", [])
            reservations = (
                self.ec2_backend.get_reservations_by_instance_ids(ids, filters=filters)
                if ids
                else self.ec2_backend.describe_instances(filters=filters)
            )
            if token not in {reservation.id for reservation in reservations}:
                # not echoed: a control character in it would make the XML answer unreadable
                raise EC2ClientError("InvalidParameterValue", "The NextToken is not valid.")
        return original(self)

    describe_instances._dcvfleet = True  # type: ignore[attr-defined]
    return [(InstanceResponse, "describe_instances", describe_instances)]


# ------------------------------------------------------------------------------------------------
# SERVICE_QUOTAS_EC2
#: EC2's vCPU quotas for G and VT instances, by code, with the names AWS gives them
#: (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-on-demand-instances.html,
#: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html).
EC2_QUOTAS = {
    "L-DB2E81BA": "Running On-Demand G and VT instances",
    "L-3819A6DF": "All G and VT Spot Instance Requests",
}
#: The value each answers with until ``set_ec2_quota`` changes it (the emulator's own).
EC2_QUOTA_VCPUS = 64.0


def _ec2_quota_values(backend: Any) -> dict[str, float]:
    values: dict[str, float] | None = getattr(backend, "_dcvfleet_ec2_quotas", None)
    if values is None:
        values = dict.fromkeys(EC2_QUOTAS, EC2_QUOTA_VCPUS)
        backend._dcvfleet_ec2_quotas = values
    return values


def set_ec2_quota(account_id: str, region: str, code: str, value: float) -> None:
    """Sets one of ``EC2_QUOTAS`` in the emulator (an account's quota, as AWS would have it)."""
    from moto.servicequotas.models import servicequotas_backends

    if code not in EC2_QUOTAS:
        raise ValueError(f"{code} is not one of the emulated EC2 quotas ({', '.join(EC2_QUOTAS)})")
    _ec2_quota_values(servicequotas_backends[account_id][region])[code] = float(value)


def service_quota_patches() -> list[Patch]:
    """SERVICE_QUOTAS_EC2: GetServiceQuota answers ``EC2_QUOTAS``. None when already replaced."""
    from moto.servicequotas.models import ServiceQuotasBackend

    original = ServiceQuotasBackend.get_service_quota
    if getattr(original, "_dcvfleet", False):
        return []

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        if service_code != "ec2" or quota_code not in EC2_QUOTAS:
            return original(self, service_code, quota_code)
        return {
            "ServiceCode": "ec2",
            "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
            "QuotaArn": f"arn:aws:servicequotas:{self.region_name}:{self.account_id}:"
            f"ec2/{quota_code}",
            "QuotaCode": quota_code,
            "QuotaName": EC2_QUOTAS[quota_code],
            "Value": _ec2_quota_values(self)[quota_code],
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }

    get_service_quota._dcvfleet = True  # type: ignore[attr-defined]
    return [(ServiceQuotasBackend, "get_service_quota", get_service_quota)]


# ------------------------------------------------------------------------------------------------
# CFN_STACK_LIST_PARAMETERS
def stack_parameter_patches() -> list[Patch]:
    """CFN_STACK_LIST_PARAMETERS: a list parameter's value as AWS gives it, comma-separated. None
    when already replaced."""
    from moto.cloudformation.models import Stack

    original = cast(property, Stack.__dict__["parameter_list"])
    if getattr(original.fget, "_dcvfleet", False):
        return []
    read = cast(Callable[[Any], list[dict[str, Any]]], original.fget)

    def parameter_list(self: Any) -> list[dict[str, Any]]:
        listed = read(self)
        return [
            {**item, "ParameterValue": ",".join(str(v) for v in item["ParameterValue"])}
            if isinstance(item.get("ParameterValue"), list)
            else item
            for item in listed
        ]

    parameter_list._dcvfleet = True  # type: ignore[attr-defined]
    return [(Stack, "parameter_list", property(parameter_list))]


# ------------------------------------------------------------------------------------------------
# DEFAULT_VPC_INTERNET
def default_vpc_patches() -> list[Patch]:
    """DEFAULT_VPC_INTERNET: the default VPC gets an internet gateway and a ``0.0.0.0/0`` route
    to it in its main route table. None when already replaced."""
    from moto.ec2.models.vpcs import VPCBackend

    original = VPCBackend.create_default_vpc
    if getattr(original, "_dcvfleet", False):
        return []

    def create_default_vpc(self: Any) -> Any:
        vpc = original(self)
        gateway = self.create_internet_gateway()
        self.attach_internet_gateway(gateway.id, vpc.id)
        for table in self.describe_route_tables(filters={"vpc-id": [vpc.id]}):
            if table.main_association_id is not None:
                self.create_route(table.id, "0.0.0.0/0", gateway_id=gateway.id)
        return vpc

    create_default_vpc._dcvfleet = True  # type: ignore[attr-defined]
    return [(VPCBackend, "create_default_vpc", create_default_vpc)]


# ------------------------------------------------------------------------------------------------
# S3_FROM_CLOUDFORMATION
def bucket_cloudformation_patches() -> list[Patch]:
    """S3_FROM_CLOUDFORMATION: an ``AWS::S3::Bucket`` gets its ``VersioningConfiguration`` and
    its ``NotificationConfiguration.EventBridgeConfiguration`` (S3 then sends its events to
    EventBridge). None when already replaced."""
    from moto.s3.models import FakeBucket, s3_backends
    from moto.utilities.utils import get_partition

    original = FakeBucket.create_from_cloudformation_json
    if getattr(original, "_dcvfleet", False):
        return []
    create_bucket = original.__func__  # type: ignore[attr-defined]

    def create(
        cls: Any, /, resource_name: str, cfn: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        bucket = create_bucket(cls, resource_name, cfn, account_id, region_name, **kwargs)
        properties = cfn.get("Properties", {})
        backend = s3_backends[account_id][get_partition(region_name)]
        status = (properties.get("VersioningConfiguration") or {}).get("Status")
        if status:
            backend.put_bucket_versioning(bucket.name, status)
        notifications = properties.get("NotificationConfiguration") or {}
        enabled = (notifications.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled")
        if str(enabled).lower() == "true":
            backend.put_bucket_notification_configuration(
                bucket.name, {"EventBridgeConfiguration": {}}
            )
        return bucket

    create._dcvfleet = True  # type: ignore[attr-defined]
    return [(FakeBucket, "create_from_cloudformation_json", classmethod(create))]


# ------------------------------------------------------------------------------------------------
# COGNITO_SRP
#: SRP-6a's group as Cognito (and every Cognito client) uses it: RFC 3526's 3072-bit prime, g = 2.
SRP_N = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
SRP_G = 2
#: HKDF's info for the password authentication key, as every Cognito client derives it.
SRP_KEY_INFO = b"Caldera Derived Key"
#: Random bytes in a ``SECRET_BLOCK`` (Cognito's is opaque base64 too).
SECRET_BLOCK_BYTES = 256
#: A client's ``AuthSessionValidity`` (minutes) when it has none: Cognito's default.
AUTH_SESSION_MINUTES = 3


def srp_bytes(value: int) -> bytes:
    """``value`` big-endian, with a leading zero byte when its top bit is set: SRP's ``padHex``,
    through which every number is hashed."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def srp_hash(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha256(b"".join(parts)).digest(), "big")


SRP_K = srp_hash(srp_bytes(SRP_N), srp_bytes(SRP_G))


def srp_verifier(pool_id: str, user_id_for_srp: str, password: str, salt: int) -> int:
    """v = g^x with x = H(salt | H(poolName | USER_ID_FOR_SRP | ":" | password)), the client's x
    (poolName: the pool id after its "_")."""
    identity = f"{pool_id.split('_', 1)[1]}{user_id_for_srp}:{password}".encode()
    return pow(SRP_G, srp_hash(srp_bytes(salt), hashlib.sha256(identity).digest()), SRP_N)


@dataclass
class SrpChallenge:
    """COGNITO_SRP: the server's side of one USER_SRP_AUTH sign-in, until its PASSWORD_VERIFIER."""

    session: str  # moto's session for the sign-in
    client_id: str
    pool_id: str
    username: str
    user_id_for_srp: str
    password: str
    big_a: int
    expires: float  # time.monotonic()
    salt: int = field(default_factory=lambda: secrets.randbits(128))
    small_b: int = field(default_factory=lambda: secrets.randbits(256))  # RFC 5054: >= 256
    secret_block: bytes = field(default_factory=lambda: secrets.token_bytes(SECRET_BLOCK_BYTES))
    verifier: int = field(init=False)
    big_b: int = field(init=False)

    def __post_init__(self) -> None:
        self.verifier = srp_verifier(self.pool_id, self.user_id_for_srp, self.password, self.salt)
        self.big_b = (SRP_K * self.verifier + pow(SRP_G, self.small_b, SRP_N)) % SRP_N

    def parameters(self) -> dict[str, str]:
        """The challenge's parameters, as Cognito's (hex numbers, base64 secret block)."""
        return {
            "SALT": f"{self.salt:x}",
            "SRP_B": f"{self.big_b:x}",
            "SECRET_BLOCK": base64.b64encode(self.secret_block).decode(),
            "USER_ID_FOR_SRP": self.user_id_for_srp,
            "USERNAME": self.username,
        }

    def signature(self, timestamp: str) -> str:
        """The ``PASSWORD_CLAIM_SIGNATURE`` a client knowing the password sends at ``timestamp``."""
        u = srp_hash(srp_bytes(self.big_a), srp_bytes(self.big_b))
        shared = pow(self.big_a * pow(self.verifier, u, SRP_N), self.small_b, SRP_N)
        prk = hmac.new(srp_bytes(u), srp_bytes(shared), hashlib.sha256).digest()
        key = hmac.new(prk, SRP_KEY_INFO + b"\x01", hashlib.sha256).digest()[:16]
        message = b"".join(
            (
                self.pool_id.split("_", 1)[1].encode(),
                self.user_id_for_srp.encode(),
                self.secret_block,
                timestamp.encode(),
            )
        )
        return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()

    def accepts(self, client_id: str, responses: Mapping[str, str]) -> bool:
        """A PASSWORD_VERIFIER answer for this sign-in, in time, signed with the password."""
        signature, timestamp = responses.get("PASSWORD_CLAIM_SIGNATURE"), responses.get("TIMESTAMP")
        if not signature or not timestamp or self.big_a % SRP_N == 0:
            return False
        if client_id != self.client_id or time.monotonic() >= self.expires:
            return False
        if responses.get("USERNAME") not in (self.username, self.user_id_for_srp):
            return False
        return hmac.compare_digest(self.signature(timestamp).encode(), signature.encode())


#: Every sign-in between its USER_SRP_AUTH and its PASSWORD_VERIFIER, by its ``SECRET_BLOCK``.
SRP_CHALLENGES: dict[str, SrpChallenge] = {}
_srp_lock = threading.Lock()


def _srp_number(text: str) -> int:
    """A client's hex number; 0 (refused at PASSWORD_VERIFIER) when it is none."""
    try:
        return int(text, 16)
    except ValueError:
        return 0


def cognito_srp_patches() -> list[Patch]:
    """COGNITO_SRP: ``initiate_auth`` answers USER_SRP_AUTH with a real challenge (salt, B,
    secret block) and ``respond_to_auth_challenge`` checks the PASSWORD_VERIFIER signature, once,
    before moto's own flow goes on. None when already replaced."""
    from moto.cognitoidp.exceptions import NotAuthorizedError
    from moto.cognitoidp.models import CognitoIdpBackend

    original_initiate = CognitoIdpBackend.initiate_auth
    if getattr(original_initiate, "_dcvfleet", False):
        return []
    original_respond = CognitoIdpBackend.respond_to_auth_challenge

    def initiate_auth(
        self: Any, client_id: str, auth_flow: str, auth_parameters: dict[str, str]
    ) -> dict[str, Any]:
        result: dict[str, Any] = original_initiate(self, client_id, auth_flow, auth_parameters)
        if result.get("ChallengeName") != "PASSWORD_VERIFIER":  # not USER_SRP_AUTH
            return result
        parameters = result["ChallengeParameters"]
        _, pool = self.sessions[result["Session"]]
        user = pool._get_user(parameters["USERNAME"])
        minutes = pool.clients[client_id].extended_config.get("AuthSessionValidity")
        challenge = SrpChallenge(
            session=result["Session"],
            client_id=client_id,
            pool_id=pool.id,
            username=user.username,
            user_id_for_srp=parameters["USER_ID_FOR_SRP"],  # moto's: the user's sub
            # no password (none set yet): no password signs in
            password=secrets.token_hex(32) if user.password is None else user.password,
            big_a=_srp_number(auth_parameters["SRP_A"]),
            expires=time.monotonic() + 60 * (minutes or AUTH_SESSION_MINUTES),
        )
        parameters.update(challenge.parameters())
        with _srp_lock:
            now = time.monotonic()
            for expired in [key for key, old in SRP_CHALLENGES.items() if old.expires <= now]:
                del SRP_CHALLENGES[expired]
            SRP_CHALLENGES[parameters["SECRET_BLOCK"]] = challenge
        return result

    def respond_to_auth_challenge(
        self: Any,
        session: str,
        client_id: str,
        challenge_name: str,
        challenge_responses: dict[str, str],
    ) -> dict[str, Any]:
        if challenge_name != "PASSWORD_VERIFIER":
            return original_respond(self, session, client_id, challenge_name, challenge_responses)
        with _srp_lock:  # usable once, whatever the answer
            challenge = SRP_CHALLENGES.pop(
                challenge_responses.get("PASSWORD_CLAIM_SECRET_BLOCK") or "", None
            )
        if challenge is None or not challenge.accepts(client_id, challenge_responses):
            if challenge is not None:
                self.sessions.pop(challenge.session, None)
            raise NotAuthorizedError("Incorrect username or password.")
        # moto finds its session by the secret block, and the user by USERNAME
        responses = {
            **challenge_responses,
            "USERNAME": challenge.username,
            "PASSWORD_CLAIM_SECRET_BLOCK": challenge.session,
        }
        result: dict[str, Any] = original_respond(
            self, session, client_id, challenge_name, responses
        )
        return result

    initiate_auth._dcvfleet = True  # type: ignore[attr-defined]
    respond_to_auth_challenge._dcvfleet = True  # type: ignore[attr-defined]
    return [
        (CognitoIdpBackend, "initiate_auth", initiate_auth),
        (CognitoIdpBackend, "respond_to_auth_challenge", respond_to_auth_challenge),
    ]


# COGNITO_AUTH_FLOWS
#: Each InitiateAuth/AdminInitiateAuth flow and the ExplicitAuthFlows values that allow it.
AUTH_FLOW_ALLOWED_BY = {
    "USER_SRP_AUTH": {"ALLOW_USER_SRP_AUTH"},
    "USER_PASSWORD_AUTH": {"ALLOW_USER_PASSWORD_AUTH", "USER_PASSWORD_AUTH"},
    "ADMIN_USER_PASSWORD_AUTH": {"ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"},
    "ADMIN_NO_SRP_AUTH": {"ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"},
    "CUSTOM_AUTH": {"ALLOW_CUSTOM_AUTH", "CUSTOM_AUTH_FLOW_ONLY"},
    "REFRESH_TOKEN_AUTH": {"ALLOW_REFRESH_TOKEN_AUTH"},
    "REFRESH_TOKEN": {"ALLOW_REFRESH_TOKEN_AUTH"},
    "USER_AUTH": {"ALLOW_USER_AUTH"},
}
#: What a client without ExplicitAuthFlows allows.
DEFAULT_AUTH_FLOWS = ("ALLOW_USER_SRP_AUTH", "ALLOW_CUSTOM_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")


def auth_flow_allowed(explicit: list[str] | None, flow: str) -> bool:
    """Whether an app client with ``explicit`` ExplicitAuthFlows lets ``flow`` sign in."""
    allowed = set(explicit or DEFAULT_AUTH_FLOWS)
    if flow in ("REFRESH_TOKEN_AUTH", "REFRESH_TOKEN") and not any(
        value.startswith("ALLOW_") for value in allowed
    ):
        return True  # legacy values never gated refreshing
    return bool(allowed & AUTH_FLOW_ALLOWED_BY.get(flow, set()))


def cognito_auth_flow_patches() -> list[Patch]:
    """COGNITO_AUTH_FLOWS: ``initiate_auth`` and ``admin_initiate_auth`` refuse a flow the app
    client's ExplicitAuthFlows does not allow, before moto's own flow. None when already
    replaced."""
    from moto.cognitoidp.exceptions import InvalidParameterException
    from moto.cognitoidp.models import CognitoIdpBackend

    original_initiate = CognitoIdpBackend.initiate_auth
    if getattr(original_initiate, "_dcvfleet_flows", False):
        return []
    original_admin = CognitoIdpBackend.admin_initiate_auth

    def check(backend: Any, client_id: str, flow: str) -> None:
        for pool in backend.user_pools.values():
            client = pool.clients.get(client_id)
            if client is not None:
                if not auth_flow_allowed(client.extended_config.get("ExplicitAuthFlows"), flow):
                    raise InvalidParameterException(f"{flow} flow not enabled for this client")
                return

    def initiate_auth(
        self: Any, client_id: str, auth_flow: str, auth_parameters: dict[str, str]
    ) -> dict[str, Any]:
        check(self, client_id, auth_flow)
        result: dict[str, Any] = original_initiate(self, client_id, auth_flow, auth_parameters)
        return result

    def admin_initiate_auth(
        self: Any,
        user_pool_id: str,
        client_id: str,
        auth_flow: str,
        auth_parameters: dict[str, str],
    ) -> dict[str, Any]:
        check(self, client_id, auth_flow)
        result: dict[str, Any] = original_admin(
            self, user_pool_id, client_id, auth_flow, auth_parameters
        )
        return result

    initiate_auth._dcvfleet_flows = True  # type: ignore[attr-defined]
    # the COGNITO_SRP wrapper (applied before or after) keeps wrapping this one
    initiate_auth._dcvfleet = getattr(original_initiate, "_dcvfleet", False)  # type: ignore[attr-defined]
    admin_initiate_auth._dcvfleet_flows = True  # type: ignore[attr-defined]
    return [
        (CognitoIdpBackend, "initiate_auth", initiate_auth),
        (CognitoIdpBackend, "admin_initiate_auth", admin_initiate_auth),
    ]


# COGNITO_TOTP
TOTP_SETTING = "MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP"


def enable_totp_checks() -> None:
    """COGNITO_TOTP: moto checks authenticator-app codes (it reads the setting at each call)."""
    os.environ[TOTP_SETTING] = "true"


# COGNITO_READ_ATTRIBUTES
def cognito_read_attribute_patches() -> list[Patch]:
    """COGNITO_READ_ATTRIBUTES: a client without ``ReadAttributes`` reads every attribute but
    the custom ones (which moto's ID token adds anyway). None when already replaced."""
    from moto.cognitoidp.models import CognitoIdpUserPool

    original = CognitoIdpUserPool.get_user_extra_data_by_client_id
    if getattr(original, "_dcvfleet", False):
        return []

    def get_user_extra_data_by_client_id(self: Any, client_id: str, username: str) -> Any:
        client = self.clients.get(client_id)
        if client is None or "ReadAttributes" in client.extended_config:
            return original(self, client_id, username)
        return {
            attribute["Name"]: attribute["Value"]
            for attribute in self._get_user(username).attributes
            if not attribute["Name"].startswith("custom:") and attribute["Name"] != "sub"
        }

    get_user_extra_data_by_client_id._dcvfleet = True  # type: ignore[attr-defined]
    return [
        (CognitoIdpUserPool, "get_user_extra_data_by_client_id", get_user_extra_data_by_client_id)
    ]


# SNS_SUBSCRIBE_ATTRIBUTES
def _same_attribute(name: str, given: Any, current: Any) -> bool:
    if name == "FilterPolicy":
        try:
            return bool(json.loads(given) == json.loads(current))
        except (TypeError, ValueError):
            return False
    return str(given).lower() == str(current).lower()


def sns_subscribe_patches() -> list[Patch]:
    """SNS_SUBSCRIBE_ATTRIBUTES: Subscribe refuses an existing subscription's endpoint with
    other attributes. None when already replaced."""
    from moto.sns.exceptions import SNSInvalidParameter
    from moto.sns.responses import SNSResponse

    original = SNSResponse.subscribe
    if getattr(original, "_dcvfleet", False):
        return []

    def subscribe(self: Any) -> Any:
        existing = self.backend._find_subscription(
            self._get_param("TopicArn"), self._get_param("Endpoint"), self._get_param("Protocol")
        )
        if existing is not None:
            for name, given in (self._get_attributes() or {}).items():
                if not _same_attribute(name, given, existing.attributes.get(name)):
                    raise SNSInvalidParameter(
                        "Invalid parameter: Attributes Reason: Subscription already exists "
                        "with different attributes"
                    )
        return original(self)

    subscribe._dcvfleet = True  # type: ignore[attr-defined]
    return [(SNSResponse, "subscribe", subscribe)]


# SNS_EMAIL
#: Every e-mail SNS would have sent, oldest first.
SNS_MAILBOX: list[dict[str, Any]] = []
_mailbox_lock = threading.Lock()
EMAIL_PROTOCOLS = ("email", "email-json")


def mailbox() -> list[dict[str, Any]]:
    """SNS_EMAIL: a copy of every e-mail delivered so far."""
    with _mailbox_lock:
        return [dict(mail) for mail in SNS_MAILBOX]


def sns_email_patches() -> list[Patch]:
    """SNS_EMAIL: an e-mail subscription's ``publish`` records what it would send, when the
    subscription's filter policy lets the message through. None when already replaced."""
    from moto.sns.models import Subscription

    original = Subscription.publish
    if getattr(original, "_dcvfleet", False):
        return []

    def publish(  # noqa: PLR0917 (moto's signature)
        self: Any,
        message: str,
        message_id: str,
        subject: str | None = None,
        message_attributes: dict[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        message_structure: str | None = None,
    ) -> None:
        if self.protocol not in EMAIL_PROTOCOLS:
            original(
                self, message, message_id, subject, message_attributes, group_id,
                deduplication_id, message_structure,
            )  # fmt: skip
            return
        matcher = self._filter_policy_matcher
        if matcher is not None and not matcher.matches(message_attributes, message):
            return
        if message_structure == "json":
            message = self._parse_message_structure(message, self.protocol)
        attributes = {k: v.get("Value") for k, v in (message_attributes or {}).items()}
        with _mailbox_lock:
            SNS_MAILBOX.append(
                {
                    "to": self.endpoint,
                    "subject": subject,
                    "message": message,
                    "attributes": attributes,
                    "topicArn": self.topic.arn,
                    "messageId": message_id,
                }
            )

    publish._dcvfleet = True  # type: ignore[attr-defined]
    return [(Subscription, "publish", publish)]


def patch_ecr_from_cloudformation() -> None:
    from moto.ecr.models import Repository

    if not getattr(Repository.create_from_cloudformation_json, "_dcvfleet", False):
        setattr(Repository, "create_from_cloudformation_json", repository_from_cloudformation())  # noqa: B010


def fix_template_for_emulator(template: dict[str, Any], parameters: dict[str, str]) -> None:
    """CFN_PLACEHOLDERS and CFN_LIST_PARAMETERS: rewrite what moto's CloudFormation can't take."""
    lists = {
        name: parameters.get(name, str(spec.get("Default", "")))
        for name, spec in template.get("Parameters", {}).items()
        if spec.get("Type") == "CommaDelimitedList" or spec.get("Type", "").startswith("List<")
    }

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if not isinstance(value, dict):
            return value
        join = value.get("Fn::Join")
        if (
            len(value) == 1
            and isinstance(join, list)
            and isinstance(join[0], str)
            and isinstance(join[1], dict)
            and join[1].get("Ref") in lists
        ):
            return join[0].join(members(join[1]["Ref"]))
        if value.keys() == {"Ref"} and value["Ref"] in lists:
            return members(value["Ref"])
        return {k: walk(v) for k, v in value.items()}

    def members(name: str) -> list[str]:
        return [x.strip() for x in lists[name].split(",")]

    template["Resources"] = walk(template.get("Resources", {}))
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::ApiGateway::RestApi":
            resource.setdefault("Properties", {}).setdefault("Name", logical_id)


#: A whole dynamic reference to an SSM String parameter (name, optional :version).
SSM_REFERENCE = re.compile(r"^\{\{resolve:ssm:([^}]+)\}\}$")


def resolve_ssm_references(
    template: dict[str, Any], parameters: dict[str, str], account_id: str, region: str
) -> None:
    """CFN_DYNAMIC_REFERENCES: each ``{"Fn::Sub": "{{resolve:ssm:...}}"}`` (its ``${Param}``
    from the stack's parameters) and each literal ``{{resolve:ssm:...}}`` string becomes the
    parameter's value, as CloudFormation resolves it; a missing parameter fails, as it does."""
    from moto.ssm.models import ssm_backends

    values = {
        name: parameters.get(name, str(spec.get("Default", "")))
        for name, spec in template.get("Parameters", {}).items()
    }

    def resolved(text: str) -> str | None:
        found = SSM_REFERENCE.match(re.sub(r"\$\{(\w+)\}", lambda m: values[m[1]], text))
        if not found:
            return None
        # moto's get_parameter reads "name" and "name:version" as SSM does
        parameter = ssm_backends[account_id][region].get_parameter(found[1])
        if parameter is None:
            raise ValueError(f"dynamic reference {text!r}: no SSM parameter {found[1]}")
        return str(parameter.value)

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return (resolved(value) or value) if "{{resolve:ssm:" in value else value
        if not isinstance(value, dict):
            return value
        sub = value.get("Fn::Sub")
        if value.keys() == {"Fn::Sub"} and isinstance(sub, str) and "{{resolve:ssm:" in sub:
            done = resolved(sub)
            if done is not None:
                return done
        return {k: walk(v) for k, v in value.items()}

    template["Resources"] = walk(template.get("Resources", {}))


def seed_public_parameter(account_id: str, region: str, name: str, value: str) -> None:
    """PUBLIC_PARAMETERS: add an AWS-owned ``/aws/service/...`` parameter, as AWS provides it."""
    from datetime import UTC, datetime

    from moto.ssm.models import Parameter, ssm_backends

    store = ssm_backends[account_id][region]._parameters
    if store.get(name):
        return
    store[name].append(
        Parameter(  # type: ignore[abstract]
            account_id=account_id,
            name=name,
            value=value,
            parameter_type="String",
            description=None,
            allowed_pattern=None,
            keyid=None,
            last_modified_date=datetime.now(UTC),
            version=1,
            data_type="aws:ec2:image",
        )
    )
