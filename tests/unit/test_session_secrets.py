"""The session secret: credentials, the event key, and the fleet's KMS key when there is one."""

from __future__ import annotations

import json
import re
import uuid

import boto3
from moto import mock_aws

from dcvfleet.adapters import EventKeys, SessionSecrets

SESSIONS = [str(uuid.UUID(int=n)) for n in (1, 2, 3)]
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@mock_aws
def test_a_secret_holds_a_fresh_event_key_and_uses_the_fleets_kms_key_when_given() -> None:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    # When two sessions' secrets are made with the fleet's key, and one without
    arn = SessionSecrets(sm, kms_key_id=KEY).create(SESSIONS[0], "alice", {"dcvfleet:fleet": "x"})
    other = SessionSecrets(sm, kms_key_id=KEY).create(SESSIONS[1], "bob", {"dcvfleet:fleet": "x"})
    plain = SessionSecrets(sm).create(SESSIONS[2], "carol", {"dcvfleet:fleet": "x"})
    # Then each holds its own 256-bit event key, which EventKeys reads
    keys = [EventKeys(sm).key(a) for a in (arn, other, plain)]
    assert all(k is not None and re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)
    assert len(set(keys)) == 3
    assert json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])["username"] == "alice"
    # And the fleet's key encrypts the first two; Secrets Manager's own key the third
    assert sm.describe_secret(SecretId=arn)["KmsKeyId"] == KEY
    assert "KmsKeyId" not in sm.describe_secret(SecretId=plain)


@mock_aws
def test_a_deleted_or_keyless_secret_has_no_event_key() -> None:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    keyless = sm.create_secret(Name="old", SecretString=json.dumps({"username": "u"}))["ARN"]
    assert EventKeys(sm).key(keyless) is None
    assert EventKeys(sm).key(keyless.replace("old", "gone")) is None
