"""Every workflow stays within Step Functions' quotas at its template parameters' limits.

Quotas: https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html (25,000 history
events per Standard execution, one year per execution, 256 KiB of state data). The worst case is
computed from each ASL graph by ``tools/workflow_quotas.py`` (its docstring says how events are
counted per state type and how loops are bounded); moto's interpreter enforces none of these
quotas, so only this check can show a workflow that would fail on AWS at a parameter's limit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import workflow_quotas as quotas

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = quotas.load_template(ROOT)
WORKFLOWS = sorted(quotas.state_machines(TEMPLATE))


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_the_worst_case_at_the_parameters_limits_is_within_every_quota(workflow: str) -> None:
    report = quotas.worst_case(TEMPLATE, workflow)
    figures = report.figures
    print(
        f"{workflow}: {figures.events} events, {figures.seconds / 3600:.1f} h, "
        f"{figures.payload} bytes, at the limits {report.parameters}"
    )
    assert report.problems == [], "\n".join(report.problems)
    assert figures.events <= quotas.MAX_HISTORY_EVENTS
    assert figures.seconds <= quotas.MAX_EXECUTION_SECONDS
    assert figures.payload <= quotas.MAX_PAYLOAD_BYTES


def test_every_loop_is_bounded_by_its_own_data_or_a_declared_deadline() -> None:
    for workflow in WORKFLOWS:
        problems = quotas.worst_case(TEMPLATE, workflow).problems
        assert not [p for p in problems if "unbounded" in p or "no declared cap" in p], problems


def test_a_loop_with_no_bound_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # the check itself can fail: without what ends the capacity wait, that loop is unbounded
    monkeypatch.setattr(
        quotas,
        "LOOP_DEADLINES",
        {k: v for k, v in quotas.LOOP_DEADLINES.items() if k[1] != "CheckJob"},
    )
    problems = quotas.worst_case(TEMPLATE, "provision_session.asl.json").problems
    assert any("unbounded" in p and "CheckJob" in p for p in problems), problems


def test_a_parameter_a_workflow_uses_without_limits_is_reported() -> None:
    template = quotas.load_template(ROOT)
    del template["Parameters"]["HostReadyTimeoutSeconds"]["MaxValue"]
    problems = quotas.worst_case(template, "provision_session.asl.json").problems
    assert "parameter HostReadyTimeoutSeconds has no MaxValue" in problems


def test_events_are_counted_per_state_type_as_the_history_shows_them() -> None:
    lambda_task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Retry": [{"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 3}],
    }
    # Entered, Exited; 1 + 3 attempts of Scheduled, Started, Succeeded/Failed
    assert quotas.task_events(lambda_task) == 2 + 4 * 3
    callback = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken"}
    # Entered, Exited; Scheduled, Started, Submitted, Succeeded
    assert quotas.task_events(callback) == 2 + 4
