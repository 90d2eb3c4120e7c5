"""Cognito's gaps: COGNITO_SRP, COGNITO_AUTH_FLOWS, COGNITO_READ_ATTRIBUTES, COGNITO_TOTP, and a
browser's calls (checked, not a gap)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws

from local.emulator.cognito import (
    TOTP_SETTING,
    auth_flow_allowed,
    cognito_auth_flow_patches,
    cognito_read_attribute_patches,
)
from tests.support import cors
from tests.support.emulator import (
    Installer,
    aws_client,
)


# -- COGNITO_SRP -------------------------------------------------------------------------------
def _pool_with_alice(idp: Any, flows: list[str], password: str, **user: Any) -> tuple[str, str]:
    """A pool, its portal client allowing ``flows`` and a confirmed user "alice" with
    ``password`` (created with ``user``'s extra arguments); the pool and client ids."""
    pool_id: str = idp.create_user_pool(PoolName="fleet-users")["UserPool"]["Id"]
    client_id: str = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="portal", ExplicitAuthFlows=flows
    )["UserPoolClient"]["ClientId"]
    idp.admin_create_user(UserPoolId=pool_id, Username="alice", MessageAction="SUPPRESS", **user)
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username="alice", Password=password, Permanent=True
    )
    return pool_id, client_id


def _cognito_user(idp: Any, password: str) -> str:
    """A pool, its portal client (SRP and password flows) and a confirmed user "alice"."""
    flows = ["ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH"]
    return _pool_with_alice(idp, flows, password, TemporaryPassword=password)[1]


def _alice_signed_in(idp: Any, **user: Any) -> dict[str, Any]:
    """A pool, a client with the password flow only and a user "alice" (created with ``user``'s
    extra arguments), signed in with her password: the AuthenticationResult."""
    _, client_id = _pool_with_alice(idp, ["ALLOW_USER_PASSWORD_AUTH"], "Correct-Horse-42", **user)
    result: dict[str, Any] = _password_sign_in(idp, client_id)["AuthenticationResult"]
    return result


@mock_aws
def test_gap_cognito_srp() -> None:
    """GAP COGNITO_SRP: USER_SRP_AUTH answers with uuid hex for ``SALT`` and ``SRP_B`` (its
    ``SECRET_BLOCK`` the session id) and signs in with any ``PASSWORD_CLAIM_SIGNATURE``, so with
    no password at all. When this fails, moto has changed: drop ``cognito_srp_patches`` in
    local/emulator/cognito.py (tests/local/test_cognito_srp.py shows Cognito's behaviour)."""

    idp = aws_client("cognito-idp")
    client_id = _cognito_user(idp, "Correct-Horse-42")
    challenge = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_SRP_AUTH",
        AuthParameters={"USERNAME": "alice", "SRP_A": "1"},
    )
    parameters = challenge["ChallengeParameters"]
    assert re.fullmatch(r"[0-9a-f]{32}", parameters["SALT"])
    assert re.fullmatch(r"[0-9a-f]{32}", parameters["SRP_B"])
    assert parameters["SECRET_BLOCK"] == challenge["Session"]
    answer = {
        "USERNAME": "alice",
        "TIMESTAMP": "Mon Jan 1 00:00:00 UTC 2024",
        "PASSWORD_CLAIM_SECRET_BLOCK": parameters["SECRET_BLOCK"],
        "PASSWORD_CLAIM_SIGNATURE": "forged",
    }
    tokens = idp.respond_to_auth_challenge(
        ClientId=client_id, ChallengeName="PASSWORD_VERIFIER", ChallengeResponses=answer
    )["AuthenticationResult"]
    assert idp.get_user(AccessToken=tokens["AccessToken"])["Username"] == "alice"


# -- COGNITO_AUTH_FLOWS ------------------------------------------------------------------------
def _srp_only_client(idp: Any) -> tuple[str, str]:
    """A pool whose portal client allows what template.yaml's does (SRP and refresh), with a
    confirmed user "alice"; the pool and client ids."""
    flows = ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    password = "Correct-Horse-42"
    return _pool_with_alice(idp, flows, password, TemporaryPassword=password)


def _password_sign_in(idp: Any, client_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": "Correct-Horse-42"},
    )
    return answer


@mock_aws
def test_gap_cognito_auth_flows() -> None:
    """GAP COGNITO_AUTH_FLOWS: a client that allows only SRP and refresh signs alice in with
    USER_PASSWORD_AUTH and ADMIN_USER_PASSWORD_AUTH. When this fails, moto has changed: drop
    ``cognito_auth_flow_patches`` in local/emulator/cognito.py."""

    idp = aws_client("cognito-idp")
    pool_id, client_id = _srp_only_client(idp)
    assert "IdToken" in _password_sign_in(idp, client_id)["AuthenticationResult"]
    admin = idp.admin_initiate_auth(
        UserPoolId=pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": "Correct-Horse-42"},
    )
    assert "IdToken" in admin["AuthenticationResult"]


def test_workaround_cognito_auth_flows(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cognito_auth_flow_patches``: the flows the client does not allow are refused as Cognito
    refuses them; SRP and refresh still sign in."""
    for owner, name, replacement in cognito_auth_flow_patches():
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws():
        idp = aws_client("cognito-idp")
        pool_id, client_id = _srp_only_client(idp)
        with pytest.raises(ClientError) as refused:
            _password_sign_in(idp, client_id)
        assert refused.value.response["Error"] == {
            "Code": "InvalidParameterException",
            "Message": "USER_PASSWORD_AUTH flow not enabled for this client",
        }
        with pytest.raises(ClientError) as admin_refused:
            idp.admin_initiate_auth(
                UserPoolId=pool_id,
                ClientId=client_id,
                AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": "alice", "PASSWORD": "Correct-Horse-42"},
            )
        assert admin_refused.value.response["Error"]["Code"] == "InvalidParameterException"
        srp = idp.initiate_auth(
            ClientId=client_id,
            AuthFlow="USER_SRP_AUTH",
            AuthParameters={"USERNAME": "alice", "SRP_A": "1"},
        )
        assert srp["ChallengeName"] == "PASSWORD_VERIFIER"
    # what a client allows by default, and legacy values
    assert auth_flow_allowed(None, "USER_SRP_AUTH")
    assert not auth_flow_allowed(None, "USER_PASSWORD_AUTH")
    assert auth_flow_allowed(["USER_PASSWORD_AUTH"], "USER_PASSWORD_AUTH")
    assert auth_flow_allowed(["ADMIN_NO_SRP_AUTH"], "REFRESH_TOKEN_AUTH")
    assert not auth_flow_allowed(["ALLOW_USER_SRP_AUTH"], "REFRESH_TOKEN_AUTH")


# -- COGNITO_READ_ATTRIBUTES -------------------------------------------------------------------
def _id_token_claims(idp: Any) -> dict[str, Any]:
    """The ID token's claims of a user with an e-mail address, signed in through a client
    without ReadAttributes (as template.yaml's)."""
    attributes = [
        {"Name": "email", "Value": "alice@example.com"},
        {"Name": "email_verified", "Value": "true"},
    ]
    token = _alice_signed_in(idp, UserAttributes=attributes)["IdToken"]
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


@mock_aws
def test_gap_cognito_read_attributes() -> None:
    """GAP COGNITO_READ_ATTRIBUTES: without ReadAttributes the ID token has no ``email``. When
    this fails, moto has changed: drop ``cognito_read_attribute_patches`` in local/emulator/cognito.py."""

    claims = _id_token_claims(aws_client("cognito-idp"))
    assert "email" not in claims
    assert claims["cognito:username"] == "alice"


def test_workaround_cognito_read_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cognito_read_attribute_patches``: the ID token carries the user's e-mail address."""
    for owner, name, replacement in cognito_read_attribute_patches():
        monkeypatch.setattr(owner, name, replacement)
    with mock_aws():
        claims = _id_token_claims(aws_client("cognito-idp"))
    assert claims["email"] == "alice@example.com"


# -- COGNITO_TOTP ------------------------------------------------------------------------------
def _verify_code(idp: Any, code: str) -> dict[str, Any]:
    """alice, signed in, associates an authenticator app and verifies ``code`` from it."""
    access = _alice_signed_in(idp)["AccessToken"]
    idp.associate_software_token(AccessToken=access)
    answer: dict[str, Any] = idp.verify_software_token(AccessToken=access, UserCode=code)
    return answer


@mock_aws
def test_gap_cognito_totp(monkeypatch: pytest.MonkeyPatch) -> None:
    """GAP COGNITO_TOTP: without the setting, any code verifies. When this fails, moto has
    changed: drop ``COGNITO_TOTP`` in local/emulator/cognito.py."""
    monkeypatch.setenv(TOTP_SETTING, "false")
    assert _verify_code(aws_client("cognito-idp"), "000000")["Status"] == "SUCCESS"


@mock_aws
def test_workaround_cognito_totp(monkeypatch: pytest.MonkeyPatch, install: Installer) -> None:
    """COGNITO_TOTP's install turns moto's setting on: a wrong code is refused."""
    monkeypatch.setenv(TOTP_SETTING, "false")
    install("COGNITO_TOTP")
    with pytest.raises(ClientError) as refused:
        _verify_code(aws_client("cognito-idp"), "000000")
    assert refused.value.response["Error"]["Code"] == "CodeMismatchException"


def test_no_gap_browser_calls(moto_server: str) -> None:
    """Checked, not a gap: a browser's unsigned JSON call (no ``Authorization``, as the portal
    calls Cognito) reaches cognito-idp by its ``X-Amz-Target``; a CORS preflight to the server's
    root allows the page's origin and headers; answers (errors too) carry
    ``Access-Control-Allow-Origin``. When this fails, moto has changed: the portal's sign-in on
    the local stack needs a workaround in local/emulator/cognito.py."""
    origin = "http://localhost:5173"
    client_id = _cognito_user(aws_client("cognito-idp", moto_server), "Correct-Horse-42")
    preflight = cors.preflight(f"{moto_server}/", origin, "POST", "content-type,x-amz-target")
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    allowed = {h.strip() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-amz-target"} <= allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]

    def sign_in(password: str) -> requests.Response:
        return requests.post(
            f"{moto_server}/",
            headers={
                "Origin": origin,
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
            },
            data=json.dumps(
                {
                    "AuthFlow": "USER_PASSWORD_AUTH",
                    "ClientId": client_id,
                    "AuthParameters": {"USERNAME": "alice", "PASSWORD": password},
                }
            ),
            timeout=10,
        )

    signed_in = sign_in("Correct-Horse-42")
    assert signed_in.status_code == 200, signed_in.text
    assert "AccessToken" in signed_in.json()["AuthenticationResult"]
    assert signed_in.headers["Access-Control-Allow-Origin"] == origin
    refused = sign_in("wrong")
    assert refused.status_code == 400
    assert refused.json()["__type"] == "NotAuthorizedException"
    assert refused.headers["Access-Control-Allow-Origin"] == origin
