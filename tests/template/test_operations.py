"""What operators see: log retention, dead-letter queues and their alarms, the dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support.template import TEMPLATE

RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in RESOURCES.items() if res["Type"] == kind}


def test_every_log_group_keeps_logs_for_the_retention_parameter() -> None:
    groups = _of_type("AWS::Logs::LogGroup")
    assert groups
    for name, res in groups.items():
        assert res["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def test_every_function_has_its_own_log_group_so_its_retention_is_set() -> None:
    named = {
        res["Properties"]["LogGroupName"].get("Fn::Sub", "")
        for res in _of_type("AWS::Logs::LogGroup").values()
        if isinstance(res["Properties"].get("LogGroupName"), dict)
    }
    for name in _of_type("AWS::Serverless::Function"):
        assert f"/aws/lambda/${{{name}}}" in named, f"{name} has no log group"


def test_every_asynchronous_invocation_and_rule_target_has_a_dead_letter_queue() -> None:
    for name, res in {
        **_of_type("AWS::Serverless::Function"),
        **_of_type("AWS::Serverless::StateMachine"),
    }.items():
        events = {
            n: e
            for n, e in res["Properties"].get("Events", {}).items()
            if e["Type"] in ("EventBridgeRule", "Schedule", "CloudWatchEvent")
        }
        for event_name, event in events.items():
            assert "DeadLetterConfig" in event["Properties"], f"{name}.{event_name}"
        if events and res["Type"] == "AWS::Serverless::Function":
            # EventBridge invokes functions asynchronously: failures after Lambda's retries
            assert res["Properties"]["DeadLetterQueue"]["Type"] == "SQS", name


def test_every_dead_letter_queue_and_workflow_alarms_the_operators() -> None:
    alarms = _of_type("AWS::CloudWatch::Alarm").values()
    watched = {
        json.dumps(d["Value"]) for a in alarms for d in a["Properties"].get("Dimensions", [])
    }
    for queue in (n for n in _of_type("AWS::SQS::Queue") if n.endswith("DeadLetterQueue")):
        assert json.dumps({"Fn::GetAtt": [queue, "QueueName"]}) in watched, queue
    for machine in _of_type("AWS::Serverless::StateMachine"):
        assert json.dumps({"Ref": machine}) in watched, machine
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "OperatorTopic"}]


def test_time_to_ready_p95_alarms_above_its_parameter() -> None:
    alarm = RESOURCES["TimeToReadyAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("DCVFleet", "TimeToReady")
    assert alarm["ExtendedStatistic"] == "p95"
    assert alarm["Threshold"] == {"Ref": "TimeToReadyAlarmSeconds"}
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "DCVFleet"


def test_the_dashboard_is_valid_json_and_shows_every_fleet_metric() -> None:
    body, variables = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    placeholders = set(re.findall(r"\$\{([^}]+)\}", body))
    known = set(variables) | set(RESOURCES) | set(TEMPLATE["Parameters"]) | {"AWS::Region"}
    assert {p.split(".")[0] for p in placeholders} <= known
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "1", body))
    text = json.dumps(dashboard)
    for metric in (
        "TimeToReady",
        "ProvisioningFailed",
        "IdleStops",
        "IdleStopsCancelled",
        "ActiveSessions",
        "AgentEventsRejected",
        "ExecutionsFailed",
        "ApproximateNumberOfMessagesVisible",
    ):
        assert metric in text, metric
    alarm_widget = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert len(alarm_widget[0]["properties"]["alarms"]) == len(_of_type("AWS::CloudWatch::Alarm"))


def test_a_customer_managed_key_encrypts_tables_secrets_bus_and_user_topic_when_given() -> None:
    key = {"Fn::If": ["HasKmsKey", {"Ref": "KmsKeyArn"}, {"Ref": "AWS::NoValue"}]}
    for table in ("SessionsTable", "ReleasesTable", "IdempotencyTable"):
        assert RESOURCES[table]["Properties"]["SSESpecification"]["KMSMasterKeyId"] == key
    assert RESOURCES["FleetBus"]["Properties"]["KmsKeyIdentifier"] == key
    assert RESOURCES["NotificationTopic"]["Properties"]["KmsMasterKeyId"] == {
        "Fn::If": ["HasKmsKey", {"Ref": "KmsKeyArn"}, "alias/aws/sns"]
    }
    # CloudWatch publishes to the operators' topic: its key is the stack's own (test_kms.py)
    assert RESOURCES["OperatorTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "OperatorTopicKey"}
    env = RESOURCES["CreateCredentialsFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SECRETS_KMS_KEY_ID"] == {"Ref": "KmsKeyArn"}


def test_every_role_may_use_the_key_only_through_the_services_it_encrypts() -> None:
    use = {"Fn::If": ["HasKmsKey", {"Ref": "KmsKeyUsePolicy"}, {"Ref": "AWS::NoValue"}]}
    for name, res in RESOURCES.items():
        if res["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            assert use in res["Properties"].get("Policies", []), name
    for role in ("HostRole", "DesktopJobRole"):
        assert use in RESOURCES[role]["Properties"]["ManagedPolicyArns"], role
    (statement,) = RESOURCES["KmsKeyUsePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Resource"] == {"Ref": "KmsKeyArn"}
    assert "kms:ViaService" in statement["Condition"]["StringEquals"]
