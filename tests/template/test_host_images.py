"""The host image pipelines: component documents Image Builder accepts, the same documents in
the template, a test phase that checks each piece and that DCV starts, and each new image
published in the parameter the launch template resolves at launch.

https://docs.aws.amazon.com/imagebuilder/latest/userguide/toe-use-documents.html
https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_SsmParameterConfiguration.html
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-systems-manager-parameter-to-find-AMI.html
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.support import imagebuilder
from tests.support.template import ROOT, TEMPLATE
from tools import host_images

RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
#: os -> (component, recipe, distribution, pipeline, image parameter, launch template, document)
HOSTS = {
    "Linux": (
        "LinuxHostComponent",
        "LinuxHostRecipe",
        "LinuxHostDistribution",
        "LinuxHostPipeline",
        "LinuxHostImage",
        "LinuxLaunchTemplate",
        "images/linux.yaml",
    ),
    "Windows": (
        "WindowsHostComponent",
        "WindowsHostRecipe",
        "WindowsHostDistribution",
        "WindowsHostPipeline",
        "WindowsHostImage",
        "WindowsLaunchTemplate",
        "images/windows.yaml",
    ),
}


def _document(platform: str) -> str:
    return (ROOT / HOSTS[platform][6]).read_text(encoding="utf-8")


@pytest.mark.parametrize("platform", HOSTS)
def test_component_documents_follow_image_builders_rules(platform: str) -> None:
    assert imagebuilder.problems(_document(platform), platform) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda d: d["phases"][0].update(name="deploy"), "'deploy' is not one of"),
        (
            lambda d: d["phases"][0]["steps"][0].update(action="RunShell"),
            "'RunShell' is not one of",
        ),
        (lambda d: d["phases"][0]["steps"][0].update(onFailure="Retry"), "'Retry' is not one of"),
        (lambda d: d["phases"][0]["steps"][0].update(name="has space"), "does not match"),
        (lambda d: d["phases"][0]["steps"][0].pop("inputs"), "'inputs' is a required property"),
        (lambda d: d.pop("schemaVersion"), "'schemaVersion' is a required property"),
        (
            lambda d: d["phases"][0]["steps"].append(dict(d["phases"][0]["steps"][0])),
            "step names repeat",
        ),
        (lambda d: d["phases"].append(dict(d["phases"][1])), "phase names repeat"),
        (
            lambda d: d["phases"][0]["steps"][0].update(
                inputs={"commands": ["echo {{ Nowhere }}"]}
            ),
            "{{ Nowhere }} is no parameter",
        ),
        (
            lambda d: d["phases"][0]["steps"][0].update(
                action="ExecutePowerShell", inputs={"commands": ["Get-Date"]}
            ),
            "ExecutePowerShell does not run on Linux",
        ),
        (
            lambda d: d["phases"][0]["steps"][0].update(
                action="S3Download",
                inputs=[{"source": "https://example.com/x", "destination": "/x"}],
            ),
            "does not match",
        ),
        (lambda d: d.update(description="x" * imagebuilder.MAX_DATA_CHARS), "over the 16000"),
    ],
)
def test_the_rules_refuse_what_image_builder_refuses(change: Any, complaint: str) -> None:
    document = yaml.safe_load(_document("Linux"))
    change(document)
    found = imagebuilder.problems(yaml.safe_dump(document), "Linux")
    assert any(complaint in problem for problem in found), found


@pytest.mark.parametrize("platform", HOSTS)
def test_the_template_carries_the_component_document_files(platform: str) -> None:
    component = RESOURCES[HOSTS[platform][0]]["Properties"]
    assert component["Platform"] == platform
    assert component["Data"] == _document(platform), (
        f"template.yaml's {HOSTS[platform][0]} differs from {HOSTS[platform][6]}:"
        " run python tools/host_images.py"
    )
    assert host_images.main(["--check"]) == 0


def test_the_copy_tool_names_a_stale_component(capsys: pytest.CaptureFixture[str]) -> None:
    template = (ROOT / "template.yaml").read_text(encoding="utf-8")
    stale = host_images.render(template, {"LinuxHostComponent": "schemaVersion: 1.0\n"})
    assert stale != template
    assert host_images.render(stale, {"LinuxHostComponent": _document("Linux")}) == template


def test_the_test_phase_checks_each_piece_and_that_dcv_starts() -> None:
    linux = imagebuilder.commands(_document("Linux"), "test")
    for piece in (
        "nice-dcv-server",
        "nice-dcv-web-viewer",
        "nice-xdcv",
        "nice-dcv-gl",
        "nvidia-smi",
        "gnome-shell",
        "dcvfleet_agent/__init__.py",
        "test ! -e /etc/dcvfleet/agent.json",
        "systemctl start dcvserver",
        "dcv create-session --type virtual",
    ):
        assert piece in linux, piece
    windows = imagebuilder.commands(_document("Windows"), "test")
    for piece in (
        "Get-Service -Name dcvserver",
        "dcvfleet_agent\\__init__.py",
        "C:\\ProgramData\\DCVFleet\\agent.json') { throw 'the agent is bound'",
        "python --version",
        "Start-Service -Name dcvserver",
        "list-sessions",
    ):
        assert piece in windows, piece


@pytest.mark.parametrize("platform", HOSTS)
def test_each_new_image_is_published_where_the_launch_template_resolves_it(platform: str) -> None:
    component, recipe, distribution, pipeline, parameter, launch_template, _ = HOSTS[platform]
    # the launch template names the parameter, resolved by EC2 at each launch
    data = RESOURCES[launch_template]["Properties"]["LaunchTemplateData"]
    assert data["ImageId"] == {"Fn::Sub": f"resolve:ssm:${{{parameter}}}"}
    assert RESOURCES[parameter]["Properties"]["DataType"] == "aws:ec2:image"
    # the distribution writes each new image's id into that parameter
    (target,) = RESOURCES[distribution]["Properties"]["Distributions"]
    assert target["Region"] == {"Ref": "AWS::Region"}
    assert target["SsmParameterConfigurations"] == [
        {"ParameterName": {"Ref": parameter}, "DataType": "aws:ec2:image"}
    ]
    # the pipeline builds the recipe with its tests on, on the schedule, and distributes there
    props = RESOURCES[pipeline]["Properties"]
    assert props["ImageRecipeArn"] == {"Ref": recipe}
    assert props["DistributionConfigurationArn"] == {"Ref": distribution}
    assert props["ImageTestsConfiguration"]["ImageTestsEnabled"] is True
    assert props["Schedule"]["ScheduleExpression"] == {"Ref": "HostImageSchedule"}
    assert props["Status"] == "ENABLED"
    # the recipe passes the component exactly the parameters its document declares
    (used,) = RESOURCES[recipe]["Properties"]["Components"]
    assert used["ComponentArn"] == {"Ref": component}
    declared = {n for p in yaml.safe_load(_document(platform)).get("parameters", []) for n in p}
    assert {p["Name"] for p in used["Parameters"]} == declared


def test_until_an_image_exists_the_base_ami_and_first_boot_install_stay() -> None:
    """The Linux parameter starts as LinuxAmiId's base AMI, and the user data installs the desktop
    and DCV only where the image has no dcv; the Windows one starts as WindowsAmiId's image."""
    assert RESOURCES["LinuxHostImage"]["Properties"]["Value"] == {"Ref": "LinuxAmiId"}
    assert RESOURCES["WindowsHostImage"]["Properties"]["Value"] == {
        "Fn::Sub": "{{resolve:ssm:${WindowsAmiId}}}"
    }
    user_data = RESOURCES["LinuxLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
    script = user_data["Fn::Base64"]["Fn::Sub"]
    install = script.index("if ! command -v dcv >/dev/null 2>&1; then")
    assert (
        install < script.index("dnf groupinstall -y -q Desktop") < script.index("\nfi\n", install)
    )
    # the agent is bound at every boot, image or not
    assert script.rindex("linux/install.sh") > script.index("\nfi\n", install)


def test_the_schedule_takes_image_builders_six_field_cron_only() -> None:
    """https://docs.aws.amazon.com/imagebuilder/latest/userguide/cron-expressions.html: six
    required fields, one space apart, no leading or trailing space."""
    parameter = TEMPLATE["Parameters"]["HostImageSchedule"]
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.fullmatch(parameter["Default"])
    assert pattern.fullmatch("cron(0 3 ? * sun *)")
    assert pattern.fullmatch("cron(30 1 1 * ? 2027)")
    for wrong in (
        "cron(0 3 * * 0)",
        "rate(7 days)",
        "cron( 0 3 ? * sun *)",
        "cron(0 3 ? * sun * *)",
    ):
        assert not pattern.fullmatch(wrong), wrong
