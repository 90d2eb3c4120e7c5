"""What the emulator's gap tests share: the account they probe, clients, templates, builders."""

from __future__ import annotations

import io
import json
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config

from local.emulator import trust_policy
from local.emulator.hooks import SimulatorHooks


class Installer(Protocol):
    """The ``install`` fixture: installs the named gaps for the test; the hooks they report to."""

    def __call__(
        self, *names: str, endpoint_url: str | None = None, port: int = 0
    ) -> SimulatorHooks: ...


ROOT = Path(__file__).resolve().parents[2]


REGION = "us-east-1"


ACCOUNT = "123456789012"


ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/gap-probe"


GPU_AMI_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"


PASS_MACHINE = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "End": True}}}


#: An ASL file with a placeholder, as the project's ``statemachines/*.asl.json`` are.
ASL_WITH_PLACEHOLDER = json.dumps(
    {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Result": {"greeting": "${Greeting}"}, "End": True}},
    }
)


#: A Swagger 2.0 body with one method, as aws-sam-translator writes for an ``AWS::Serverless::Api``.
SWAGGER_BODY: dict[str, Any] = {
    "swagger": "2.0",
    "info": {"title": "fleet", "version": "1.0"},
    "paths": {
        "/sessions": {
            "get": {
                "x-amazon-apigateway-integration": {
                    "type": "aws_proxy",
                    "httpMethod": "POST",
                    "uri": (
                        f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
                        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fleet-fn/invocations"
                    ),
                },
                "responses": {},
            }
        }
    },
}


LAMBDA_TRUST = trust_policy("lambda.amazonaws.com")


#: A failed call fails the test at once (botocore would retry an unparsable error response).
NO_RETRIES = Config(retries={"total_max_attempts": 1})


FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


#: Variables that would point a client, or moto's interpreter, somewhere else.
REDIRECTING_VARIABLES = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MOTO_PORT")


def no_aws_files(directory: Path) -> dict[str, str]:
    """A developer's ~/.aws files may name a profile, a region or an endpoint of their own."""
    return {
        "AWS_CONFIG_FILE": str(directory / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(directory / "no-aws-credentials"),
    }


# -- small helpers -----------------------------------------------------------------------------
def zip_bytes(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def tar_gz_bytes(files: dict[str, str], mode: int = 0o644) -> bytes:
    """A .tar.gz of ``files`` (name: text), each with permissions ``mode``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


PROBE_CODE = zip_bytes(
    {"probe.py": "def handler(event, context):\n    print('probe ran')\n    return {'ran': True}\n"}
)


def aws_client(service: str, endpoint_url: str | None = None) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint_url, config=NO_RETRIES)


def create_role(endpoint_url: str | None = None) -> None:
    aws_client("iam", endpoint_url).create_role(
        RoleName="gap-probe", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
    )


def create_probe_function(name: str, endpoint_url: str | None = None) -> str:
    """A Python function (its role created first); its ARN."""
    create_role(endpoint_url)
    arn: str = aws_client("lambda", endpoint_url).create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE_ARN,
        Handler="probe.handler",
        Code={"ZipFile": PROBE_CODE},
    )["FunctionArn"]
    return arn


def create_stack(name: str, template: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    cfn = aws_client("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template), **kwargs)
    stack: dict[str, Any] = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return stack


def stack_resources(name: str) -> list[dict[str, Any]]:
    response = aws_client("cloudformation").describe_stack_resources(StackName=name)
    resources: list[dict[str, Any]] = response["StackResources"]
    return resources


def stack_outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def ssm_value(name: str) -> str:
    value: str = aws_client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    return value


def wait_execution(sfn: Any, execution_arn: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING" or time.monotonic() > deadline:
            return execution
        time.sleep(0.05)


def resource_paths(apigateway: Any, api_id: str) -> dict[str, list[str]]:
    items = apigateway.get_resources(restApiId=api_id)["items"]
    return {item["path"]: sorted(item.get("resourceMethods", {})) for item in items}


# ==============================================================================================
# SFN_FROM_CLOUDFORMATION (its workaround: test_workaround_sfn_from_cloudformation, below)
def state_machine_template(**definition: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": "probe",
                    "RoleArn": ROLE_ARN,
                    "DefinitionSubstitutions": {"Greeting": "hello"},
                    **definition,
                },
            }
        }
    }


# ==============================================================================================
# EVENTBUS_REF
BUS_OUTPUT_TEMPLATE: dict[str, Any] = {
    "Resources": {"Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "fleet-bus"}}},
    "Outputs": {"BusName": {"Value": {"Ref": "Bus"}}},
}


BUS_RULE_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "rule-bus"}},
        "Rule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": "probe",
                "EventBusName": {"Ref": "Bus"},
                "EventPattern": {"source": ["dcvfleet.probe"]},
            },
        },
    }
}


# -- EVENTS_SCHEDULE_PATTERN -------------------------------------------------------------------
def probe_queue(name: str) -> tuple[str, str]:
    sqs = aws_client("sqs")
    url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def drain(queue_url: str) -> list[dict[str, Any]]:
    sqs, bodies = aws_client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


# -- CODEBUILD_FROM_CLOUDFORMATION ------------
CODEBUILD_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "ImageBuildProject": {
            "Type": "AWS::CodeBuild::Project",
            "Properties": {
                "Name": "probe-image",
                "ServiceRole": ROLE_ARN,
                "Source": {"Type": "NO_SOURCE", "BuildSpec": "version: 0.2"},
                "Artifacts": {"Type": "NO_ARTIFACTS"},
                "Environment": {
                    "Type": "LINUX_CONTAINER",
                    "ComputeType": "BUILD_GENERAL1_MEDIUM",
                    "Image": "aws/codebuild/amazonlinux-x86_64-standard:5.0",
                    "PrivilegedMode": True,
                },
            },
        }
    },
    "Outputs": {
        "Name": {"Value": {"Ref": "ImageBuildProject"}},
        "Arn": {"Value": {"Fn::GetAtt": ["ImageBuildProject", "Arn"]}},
    },
}


# -- CODEBUILD_BUILDS --------------------------------------------------------------------------
BUILDS_BUCKET = "probe-builds"


SOURCE_KEY = "image-source/dcvfleet-image.zip"


IMAGE_REPOSITORY = "probe-desktop"


REPOSITORY_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{IMAGE_REPOSITORY}"


def image_project(source: dict[str, Any] | None = None) -> None:
    """The image build project as the template declares it (S3 source, the repository's URI)."""
    aws_client("codebuild").create_project(
        name="probe-image",
        source=source
        or {
            "type": "S3",
            "location": f"{BUILDS_BUCKET}/{SOURCE_KEY}",
            "buildspec": "container/buildspec.yml",
        },
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "computeType": "BUILD_GENERAL1_MEDIUM",
            "image": "aws/codebuild/amazonlinux-x86_64-standard:5.0",
            "privilegedMode": True,
            "environmentVariables": [
                {"name": "IMAGE_REPOSITORY_URI", "value": REPOSITORY_URI, "type": "PLAINTEXT"}
            ],
        },
        serviceRole=ROLE_ARN,
    )


#: The handler modules the in-process runtime imports, written for each test.
HANDLERS = {
    "gap_probe_handler": (
        "import os\n"
        "def handler(event, context):\n"
        "    print('probe ran for', context.function_name)\n"
        "    return {'event': event, 'greeting': os.environ['GREETING']}\n"
    ),
    "gap_probe_target": (
        "import json, os\n"
        "def handler(event, context):\n"
        "    with open(os.environ['PROBE_OUT'], 'a') as out:\n"
        "        out.write(json.dumps(event) + '\\n')\n"
    ),
    # a function busy until the file PROBE_RELEASE exists (at most 30 s), then as the target
    "gap_probe_held": (
        "import json, os, time\n"
        "def handler(event, context):\n"
        "    deadline = time.monotonic() + 30\n"
        "    while not os.path.exists(os.environ['PROBE_RELEASE']) and time.monotonic() < deadline:\n"
        "        time.sleep(0.02)\n"
        "    with open(os.environ['PROBE_OUT'], 'a') as out:\n"
        "        out.write(json.dumps(event) + '\\n')\n"
    ),
}


def server_port(url: str) -> int:
    """The port of a moto server's URL."""
    return int(url.rsplit(":", 1)[1])


def create_handler_function(name: str, handler: str, url: str | None = None, **kwargs: Any) -> str:
    """A function whose handler the in-process runtime imports (``HANDLERS``); its ARN."""
    aws_client("iam", url).create_role(
        RoleName="gap-probe", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
    )
    arn: str = aws_client("lambda", url).create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE_ARN,
        Handler=handler,
        Code={"ZipFile": b"in-process: the handler is imported"},
        **kwargs,
    )["FunctionArn"]
    return arn


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()
