"""The cold-start bench runs and prints a figure per function it measures, and the provisioning
path's handlers keep their cold start light: a fresh interpreter set up as Lambda's that imports
one of them imports none of the packages only validating handlers need.

Lambda's INIT phase runs the handler module's imports before the first invocation
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html), so whatever a
handler module imports at the top is paid on every cold start of that function."""

from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess
import sys
from typing import Any

import boto3
import pytest

from bench import coldstart
from dcvfleet import aws

#: Packages the provisioning path's handlers never use: pydantic (profile and API models) and
#: jsonschema (validating events and requests) are imported only where something is validated.
NOT_ON_THE_PROVISIONING_PATH = ("pydantic", "jsonschema")
#: The pooled path's functions (SnapStart) and one without SnapStart.
MEASURED = (
    "LaunchInstanceFunction",
    "AwaitHostReadyFunction",
    "AgentEventsFunction",
    "MarkReadyFunction",
    "CreateCredentialsFunction",
)
SNAPSTART = (
    "LaunchInstanceFunction",
    "AwaitHostReadyFunction",
    "AgentEventsFunction",
    "MarkReadyFunction",
)


def test_bench_prints_import_client_and_memory_figures_for_each_function_it_measures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    only = [argument for name in MEASURED for argument in ("--only", name)]

    assert coldstart.main(["--repeat", "1", "--baseline", "", *only]) == 0

    out = capsys.readouterr().out
    for name in MEASURED:
        row = re.search(
            rf"^\s+{name}\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+\.\d)\s+(\d+|-)$", out, re.MULTILINE
        )
        assert row is not None, f"no figures for {name} in:\n{out}"
        imports, clients, total, rss = (float(figure) for figure in row.groups()[:4])
        assert imports > 0
        assert rss > 0
        assert total == pytest.approx(imports + clients, abs=1)
        # a SnapStart function's restore is played after its INIT; the others have none
        assert (row[5] != "-") == (name in SNAPSTART), row[0]
    assert re.search(r"^  now\s+4\s+[\d,]+ ms\s+[\d,]+ ms \+ 4 snapshot restores", out, re.M)
    assert "now: LaunchInstance > AwaitHostReady > AgentEvents > MarkReady" in out
    assert "not Lambda" in out


def test_the_pooled_path_is_printed_now_and_at_the_baseline_side_by_side() -> None:
    restored = coldstart.Figures(imports=0.3, clients=0.0, rss_mib=80, restored=0.05)
    on_demand = coldstart.Figures(imports=0.3, clients=0.2, rss_mib=80)
    now = dict.fromkeys(SNAPSTART, restored)
    then = dict.fromkeys(MEASURED, on_demand)

    lines = coldstart.path_lines(now, then, list(SNAPSTART), list(MEASURED), "abc1234")

    assert re.search(r"^  now\s+4\s+1,200 ms\s+200 ms \+ 4 snapshot restores", lines[2])
    assert re.search(r"^  at abc1234\s+5\s+2,500 ms\s+2,500 ms\s*$", lines[3])
    assert lines[5] == (
        "  at abc1234: LaunchInstance > AwaitHostReady > AgentEvents > MarkReady > CreateCredentials"
    )
    assert "not measured" in lines[-1]


def test_bench_reads_every_function_of_the_template_and_the_workflows_lambda_tasks() -> None:
    listed = {function.name: function for function in coldstart.functions(coldstart.ROOT)}
    path = coldstart.provisioning_path(coldstart.ROOT)

    assert listed["LaunchInstanceFunction"].handler == "dcvfleet.handlers.provision.launch_instance"
    assert listed["LaunchInstanceFunction"].environment["SESSIONS_TABLE"]  # from the Globals
    assert listed["ApiFunction"].environment["ALLOWED_INSTANCE_TYPES"]  # the function's own
    assert {"LaunchInstanceFunction", "MarkReadyFunction"} <= set(path)
    assert set(path) <= set(listed)
    assert path.index("LaunchInstanceFunction") < path.index("MarkReadyFunction")


def test_a_pool_hit_waits_for_the_host_ready_consumer_between_the_wait_and_mark_ready() -> None:
    assert coldstart.pooled_path(coldstart.ROOT) == [
        "LaunchInstanceFunction",
        "AwaitHostReadyFunction",
        "AgentEventsFunction",
        "MarkReadyFunction",
    ]


def test_an_ec2_desktop_passes_through_three_functions_its_credentials_made_with_its_host() -> None:
    # a warm pool hit takes this path too (the claim is in LaunchInstance): each function on it
    # is a cold start on AWS, so the credentials are made by the launch's function, not one of
    # their own (CreateCredentials stays for a batch desktop, on its SubmitJob path)
    assert coldstart.provisioning_path(coldstart.ROOT) == [
        "LaunchInstanceFunction",
        "AwaitHostReadyFunction",
        "MarkReadyFunction",
    ]


def test_bench_refuses_a_function_the_template_does_not_have(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        coldstart.main(["--repeat", "1", "--baseline", "", "--only", "NoSuchFunction"])

    assert "no such function in template.yaml: NoSuchFunction" in capsys.readouterr().err


@pytest.mark.parametrize("name", coldstart.provisioning_path(coldstart.ROOT))
def test_provisioning_handler_imports_neither_pydantic_nor_jsonschema_on_a_cold_start(
    name: str,
) -> None:
    function = {each.name: each for each in coldstart.functions(coldstart.ROOT)}[name]
    probe = (
        f"import sys, json, {function.module}\n"
        f"print(json.dumps(sorted(set(sys.modules) & set({NOT_ON_THE_PROVISIONING_PATH!r}))))"
    )

    completed = subprocess.run(
        [sys.executable, "-c", probe],
        env=coldstart.lambda_environment(coldstart.ROOT, function),
        cwd=coldstart.ROOT / "functions",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == [], (
        f"{function.handler} imports {completed.stdout.strip()} on a cold start"
    )


def test_clients_share_one_session_so_each_client_does_not_load_botocore_data_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sessions: list[boto3.session.Session] = []
    real = boto3.session.Session

    def counted(**kwargs: Any) -> boto3.session.Session:
        sessions.append(real(**kwargs))
        return sessions[-1]

    monkeypatch.setattr(boto3.session, "Session", counted)
    aws.reset_clients()

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        made = list(pool.map(aws.client, ["sqs", "sns", "sqs", "ssm", "sns"]))

    assert len(sessions) == 1
    assert made[0] is made[2]
    assert made[1] is made[4]
    aws.reset_clients()
    aws.client("sqs")
    assert len(sessions) == 2  # a reset forgets the session too (tests switch credentials)
