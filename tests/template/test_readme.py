"""tools/readme.py: the generated parameters table and workflow diagrams, in whichever page
(README.md or docs/*.md) holds their markers: docs/parameters.md and docs/workflows.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools import readme

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL = REPO_ROOT / "tools" / "readme.py"

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: Fixture stack for the README generator
Parameters:
  Stage:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
    Description: Deployment stage | picks the config set
  HostedZoneName:
    Type: String
    AllowedPattern: "^(internal|[a-z0-9-]+\\\\.[a-z]{2,})$"
    Description: >
      Route 53 zone that session
      records are written to.
  MaxSessions:
    Type: Number
    Default: 8
    Description: Upper bound on concurrent desktop sessions.
Mappings:
  RegionMap:
    us-east-1:
      Ami: ami-12345678
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  IsNotProd: !Not [!Condition IsProd]
  Either: !Or [!Condition IsProd, !And [!Condition IsNotProd, !Condition IsProd]]
Resources:
  Artifacts:
    Type: AWS::S3::Bucket
    Condition: IsProd
    Properties:
      BucketName: !Sub "${AWS::StackName}-${Stage}-artifacts"
      Tags:
        - Key: zone
          Value: !Join ["-", [!Select [0, !Split [".", !Ref HostedZoneName]], fleet]]
  Broker:
    Type: AWS::Serverless::Function
    Properties:
      Handler: broker.handler
      Environment:
        Variables:
          BUCKET_ARN: !GetAtt Artifacts.Arn
          AMI: !If [IsProd, !FindInMap [RegionMap, !Ref "AWS::Region", Ami], ""]
          FIRST_AZ: !Select [0, !GetAZs ""]
          VPC_ID: !ImportValue shared-vpc-id
          SUBNET: !Select [0, !Cidr ["10.0.0.0/16", 4, 8]]
  Host:
    Type: AWS::EC2::Instance
    Properties:
      UserData: !Base64 |
        #!/bin/sh
        echo ready
"""

PROVISION: dict[str, Any] = {
    "Comment": "Bring a GPU host up for a session",
    "StartAt": "Validate",
    "States": {
        "Validate": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Retry": [
                {
                    "ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"],
                    "MaxAttempts": 3,
                }
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
            "Next": "IsReady",
        },
        "IsReady": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.status", "StringEquals": "READY", "Next": 'Record "ready"'}
            ],
            "Default": "WaitForHost",
        },
        "WaitForHost": {"Type": "Wait", "Seconds": 30, "Next": "Validate"},
        'Record "ready"': {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "Error": "ProvisionFailed"},
    },
}

TEARDOWN: dict[str, Any] = {
    "StartAt": "Drain",
    "States": {
        "Drain": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "StopDcv",
                    "States": {"StopDcv": {"Type": "Task", "Resource": "arn:x", "End": True}},
                },
                {
                    "StartAt": "Snapshot",
                    "States": {
                        "Snapshot": {"Type": "Task", "Resource": "arn:y", "Next": "Tag"},
                        "Tag": {"Type": "Pass", "End": True},
                    },
                },
            ],
            "Catch": [{"ErrorEquals": ["States.TaskFailed", "States.Timeout"], "Next": "Cleanup"}],
            "Next": "EachVolume",
        },
        "EachVolume": {
            "Type": "Map",
            "ItemsPath": "$.volumes",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Detach",
                "States": {"Detach": {"Type": "Task", "Resource": "arn:z", "End": True}},
            },
            "Next": "Cleanup",
        },
        "Cleanup": {"Type": "Pass", "End": True},
    },
}

README_HEAD = "# Fixture fleet\n\nHand-written intro | with a pipe.\n\n## Parameters\n\n"
README_MIDDLE = "\n\nHand-written text between the regions.\n\n## Workflows\n\n"
README_TAIL = "\n\nHand-written footer.\n"
README = (
    README_HEAD
    + "<!-- parameters:start -->\nstale table\n<!-- parameters:end -->"
    + README_MIDDLE
    + "<!-- workflows:start -->\n<!-- workflows:end -->"
    + README_TAIL
)

EXPECTED_TABLE = [
    "| Parameter | Default | Allowed | Description |",
    "| --- | --- | --- | --- |",
    "| `Stage` | `dev` | dev, prod | Deployment stage \\| picks the config set |",
    "| `HostedZoneName` | — | `^(internal\\|[a-z0-9-]+\\.[a-z]{2,})$` "
    "| Route 53 zone that session records are written to. |",
    "| `MaxSessions` | `8` | — | Upper bound on concurrent desktop sessions. |",
]

EXPECTED_PROVISION = """\
flowchart TD
    START(("Start"))
    s_Validate["Validate<br/>retry: Lambda.ServiceException…"]
    s_IsReady{"IsReady"}
    s_WaitForHost(["WaitForHost"])
    s_Record__ready_["Record #quot;ready#quot;"]
    s_Done["Done"]
    s_Failed[["Failed"]]
    END(("End"))
    START --> s_Validate
    s_Validate --> s_IsReady
    s_Validate -. "States.ALL" .-> s_Failed
    s_IsReady -->|"$.status == 'READY'"| s_Record__ready_
    s_IsReady -->|"default"| s_WaitForHost
    s_WaitForHost --> s_Validate
    s_Record__ready_ --> s_Done
    s_Done --> END
    s_Failed --> END"""

EXPECTED_TEARDOWN = """\
flowchart TD
    START(("Start"))
    subgraph s_Drain ["Drain"]
        subgraph s_Drain_b1 ["branch 1"]
            s_Drain_b1_start(("Start"))
            s_StopDcv["StopDcv"]
            s_Drain_b1_end(("End"))
            s_Drain_b1_start --> s_StopDcv
            s_StopDcv --> s_Drain_b1_end
        end
        subgraph s_Drain_b2 ["branch 2"]
            s_Drain_b2_start(("Start"))
            s_Snapshot["Snapshot"]
            s_Tag["Tag"]
            s_Drain_b2_end(("End"))
            s_Drain_b2_start --> s_Snapshot
            s_Snapshot --> s_Tag
            s_Tag --> s_Drain_b2_end
        end
    end
    subgraph s_EachVolume ["EachVolume"]
        s_EachVolume_start(("Start"))
        s_Detach["Detach"]
        s_EachVolume_end(("End"))
        s_EachVolume_start --> s_Detach
        s_Detach --> s_EachVolume_end
    end
    s_Cleanup["Cleanup"]
    END(("End"))
    START --> s_Drain
    s_Drain --> s_EachVolume
    s_Drain -. "States.TaskFailed, States.Timeout" .-> s_Cleanup
    s_EachVolume --> s_Cleanup
    s_Cleanup --> END"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(TEMPLATE, encoding="utf-8")
    machines = tmp_path / "statemachines"
    machines.mkdir()
    (machines / "teardown.asl.json").write_text(json.dumps(TEARDOWN, indent=2), encoding="utf-8")
    (machines / "provision.asl.json").write_text(json.dumps(PROVISION, indent=2), encoding="utf-8")
    (machines / "notes.json").write_text("{}", encoding="utf-8")  # not an ASL file: ignored
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    return tmp_path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def region(text: str, name: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    return text[text.index(start) + len(start) : text.index(end)]


def mermaid_blocks(text: str) -> list[str]:
    return [chunk.split("\n```", 1)[0] for chunk in text.split("```mermaid\n")[1:]]


def test_template_with_intrinsic_tags_loads() -> None:
    template = readme.load_template(TEMPLATE)
    variables = template["Resources"]["Broker"]["Properties"]["Environment"]["Variables"]
    assert variables["BUCKET_ARN"] == {"Fn::GetAtt": ["Artifacts", "Arn"]}
    assert variables["AMI"] == {
        "Fn::If": [
            "IsProd",
            {"Fn::FindInMap": ["RegionMap", {"Ref": "AWS::Region"}, "Ami"]},
            "",
        ]
    }
    assert variables["FIRST_AZ"] == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    assert variables["VPC_ID"] == {"Fn::ImportValue": "shared-vpc-id"}
    assert template["Conditions"]["IsNotProd"] == {"Fn::Not": [{"Condition": "IsProd"}]}
    assert list(template["Parameters"]) == ["Stage", "HostedZoneName", "MaxSessions"]


def test_parameters_table_rows() -> None:
    table = readme.render_parameters(readme.load_template(TEMPLATE))
    assert table.splitlines() == EXPECTED_TABLE


def test_flowchart_choice_catch_retry_wait_fail() -> None:
    chart = readme.render_flowchart(PROVISION, "provision.asl.json")
    assert chart == EXPECTED_PROVISION
    assert '    s_Validate -. "States.ALL" .-> s_Failed' in chart.splitlines()


def test_flowchart_parallel_and_map_subgraphs() -> None:
    assert readme.render_flowchart(TEARDOWN, "teardown.asl.json") == EXPECTED_TEARDOWN


def test_legacy_map_iterator_and_id_collisions() -> None:
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "Iterator": {"StartAt": "a-b", "States": {"a-b": {"Type": "Succeed"}}},
                "Next": "a b",
            },
            "a b": {"Type": "Pass", "End": True},
        },
    }
    lines = readme.render_flowchart(definition).splitlines()
    assert '    subgraph s_Each ["Each"]' in lines
    assert '        s_a_b_2["a-b"]' in lines
    assert "        s_a_b_2 --> s_Each_end" in lines
    assert '    s_a_b["a b"]' in lines
    assert "    s_Each --> s_a_b" in lines


def test_unknown_transition_is_an_error() -> None:
    broken = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Missing"}}}
    with pytest.raises(readme.AslError, match="'Missing'"):
        readme.render_flowchart(broken, "broken.asl.json")


def test_generate_then_check_then_stale(repo: Path) -> None:
    first = run_cli("--root", str(repo))
    assert first.returncode == 0, first.stderr
    text = (repo / "README.md").read_text(encoding="utf-8")

    # Text outside the markers is untouched.
    assert text.startswith(README_HEAD + "<!-- parameters:start -->\n")
    assert "<!-- parameters:end -->" + README_MIDDLE + "<!-- workflows:start -->\n" in text
    assert text.endswith("\n<!-- workflows:end -->" + README_TAIL)

    assert region(text, "parameters") == "\n" + "\n".join(EXPECTED_TABLE) + "\n"
    workflows = region(text, "workflows")
    assert workflows.index("### provision\n") < workflows.index("### teardown\n")
    assert "notes" not in workflows
    assert mermaid_blocks(workflows) == [EXPECTED_PROVISION, EXPECTED_TEARDOWN]

    check = run_cli("--check", "--root", str(repo))
    assert check.returncode == 0, check.stderr
    again = run_cli("--root", str(repo))
    assert again.returncode == 0
    assert "up to date" in again.stdout
    assert (repo / "README.md").read_text(encoding="utf-8") == text

    template = repo / "template.yaml"
    template.write_text(
        template.read_text(encoding="utf-8").replace("Default: 8", "Default: 16"),
        encoding="utf-8",
    )
    stale = run_cli("--check", "--root", str(repo))
    assert stale.returncode == 1
    assert "'parameters'" in stale.stderr
    assert "'workflows'" not in stale.stderr
    assert (repo / "README.md").read_text(encoding="utf-8") == text  # --check never writes

    asl = repo / "statemachines" / "provision.asl.json"
    edited = json.loads(asl.read_text(encoding="utf-8"))
    edited["States"]["WaitForHost"]["Next"] = "IsReady"
    asl.write_text(json.dumps(edited), encoding="utf-8")
    both = run_cli("--check", "--root", str(repo))
    assert both.returncode == 1
    assert "'parameters'" in both.stderr
    assert "'workflows'" in both.stderr

    fixed = run_cli("--root", str(repo))
    assert fixed.returncode == 0
    assert "| `MaxSessions` | `16` |" in (repo / "README.md").read_text(encoding="utf-8")
    assert run_cli("--check", "--root", str(repo)).returncode == 0


def test_missing_markers_is_an_error(repo: Path) -> None:
    (repo / "README.md").write_text("# No markers here\n", encoding="utf-8")
    result = run_cli("--check", "--root", str(repo))
    assert result.returncode == 2
    assert "<!-- parameters:start -->" in result.stderr


@pytest.mark.skipif(
    not (REPO_ROOT / "README.md").exists(),
    reason="README.md does not exist yet in the repository root, so there is nothing to check",
)
def test_real_readme_is_up_to_date() -> None:
    result = run_cli("--check", cwd=REPO_ROOT)
    assert result.returncode == 0, (
        f"README.md is stale; run `python tools/readme.py`.\n{result.stderr}"
    )


def test_regions_held_by_pages_of_docs_are_generated_there(repo: Path) -> None:
    # Given the parameters table in docs/parameters.md and the diagrams in docs/workflows.md
    docs = repo / "docs"
    docs.mkdir()
    readme_text = "# Fixture fleet\n\nSee [the parameters](docs/parameters.md).\n"
    (repo / "README.md").write_text(readme_text, encoding="utf-8")
    parameters_page = "# Parameters\n\n<!-- parameters:start -->\n<!-- parameters:end -->\n"
    (docs / "parameters.md").write_text(parameters_page, encoding="utf-8")
    workflows_page = "# Workflows\n\n<!-- workflows:start -->\n<!-- workflows:end -->\n"
    (docs / "workflows.md").write_text(workflows_page, encoding="utf-8")
    assert run_cli("--check", "--root", str(repo)).returncode == 1
    # When the tool runs
    result = run_cli("--root", str(repo))
    assert result.returncode == 0, result.stderr
    # Then each page has its region, and the README is untouched
    parameters = (docs / "parameters.md").read_text(encoding="utf-8")
    assert region(parameters, "parameters") == "\n" + "\n".join(EXPECTED_TABLE) + "\n"
    workflows = (docs / "workflows.md").read_text(encoding="utf-8")
    assert mermaid_blocks(region(workflows, "workflows")) == [EXPECTED_PROVISION, EXPECTED_TEARDOWN]
    assert (repo / "README.md").read_text(encoding="utf-8") == readme_text
    assert run_cli("--check", "--root", str(repo)).returncode == 0


def test_a_region_in_two_pages_is_an_error(repo: Path) -> None:
    (repo / "docs").mkdir()
    (repo / "docs" / "parameters.md").write_text(
        "<!-- parameters:start -->\n<!-- parameters:end -->\n", encoding="utf-8"
    )
    result = run_cli("--check", "--root", str(repo))
    assert result.returncode == 2
    assert "more than one page" in result.stderr


def test_the_real_parameters_and_diagrams_live_in_docs() -> None:
    texts = {page.name: page.read_text(encoding="utf-8") for page in readme.pages(REPO_ROOT)}
    assert "<!-- parameters:start -->" in texts["parameters.md"]
    assert "<!-- workflows:start -->" in texts["workflows.md"]
    assert "<!-- parameters:start -->" not in texts["README.md"]
    assert "<!-- workflows:start -->" not in texts["README.md"]
