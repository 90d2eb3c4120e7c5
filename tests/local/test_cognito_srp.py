"""COGNITO_SRP: with ``cognito_srp_patches`` the emulator checks USER_SRP_AUTH as Cognito does.

The client is pycognito's ``AWSSRP``, written apart from the emulator's SRP server (which borrows
nothing from it), so these tests also show the two agree. The workaround is applied as
``tests/local/emulator/test_cognito.py`` applies its ``*_patches`` (monkeypatched, on in-process moto), here
for the whole module: every test signs in to one pool, each with users of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.server import ThreadedMotoServer
from pycognito import aws_srp
from pycognito.exceptions import ForceChangePasswordException

from local.emulator import cognito

REGION = "us-east-1"
PASSWORD = "Correct-Horse-42"
NEW_PASSWORD = "Battery-Staple-43"
WRONG = "Incorrect username or password."
NO_RETRIES = Config(retries={"total_max_attempts": 1})
USER_NUMBERS = itertools.count(1)
BROWSER = {"Origin": "http://localhost:5173", "Content-Type": "application/x-amz-json-1.1"}


@dataclass
class Pool:
    """The pool and portal client every test signs in to (creating a pool takes moto ~0.3 s)."""

    idp: Any
    pool_id: str
    client_id: str


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        for owner, name, replacement in cognito.cognito_srp_patches():
            patch.setattr(owner, name, replacement)
        with mock_aws():
            idp = boto3.client("cognito-idp", region_name=REGION, config=NO_RETRIES)
            yield Pool(idp, *_pool(idp))


@pytest.fixture
def user(pool: Pool) -> str:
    """A new confirmed user with ``PASSWORD``."""
    return _user(pool.idp, pool.pool_id)


def _pool(idp: Any) -> tuple[str, str]:
    """A pool and its client as the portal's (template.yaml): SRP and password flows."""
    pool_id = idp.create_user_pool(PoolName="fleet-users")["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="portal",
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH"],
    )["UserPoolClient"]["ClientId"]
    return pool_id, client_id


def _user(idp: Any, pool_id: str, *, confirmed: bool = True) -> str:
    username = f"user-{next(USER_NUMBERS)}"
    idp.admin_create_user(
        UserPoolId=pool_id, Username=username, TemporaryPassword=PASSWORD, MessageAction="SUPPRESS"
    )
    if confirmed:
        idp.admin_set_user_password(
            UserPoolId=pool_id, Username=username, Password=PASSWORD, Permanent=True
        )
    return username


def _srp(pool: Pool, username: str, password: str = PASSWORD) -> aws_srp.AWSSRP:
    return aws_srp.AWSSRP(username, password, pool.pool_id, pool.client_id, client=pool.idp)


def _challenge(pool: Pool, username: str) -> tuple[dict[str, str], dict[str, str]]:
    """USER_SRP_AUTH's challenge parameters, and the right PASSWORD_VERIFIER answer."""
    client = _srp(pool, username)
    auth_parameters = client.get_auth_params()
    challenge = pool.idp.initiate_auth(
        ClientId=pool.client_id, AuthFlow="USER_SRP_AUTH", AuthParameters=auth_parameters
    )
    assert challenge["ChallengeName"] == "PASSWORD_VERIFIER"
    parameters: dict[str, str] = challenge["ChallengeParameters"]
    return parameters, client.process_challenge(parameters, auth_parameters)


def _verify(pool: Pool, answer: dict[str, str]) -> dict[str, Any]:
    response: dict[str, Any] = pool.idp.respond_to_auth_challenge(
        ClientId=pool.client_id, ChallengeName="PASSWORD_VERIFIER", ChallengeResponses=answer
    )
    return response


def _signed_in_as(pool: Pool, response: dict[str, Any]) -> str:
    access_token = response["AuthenticationResult"]["AccessToken"]
    username: str = pool.idp.get_user(AccessToken=access_token)["Username"]
    return username


def _refused(error: pytest.ExceptionInfo[ClientError]) -> bool:
    return error.value.response["Error"] == {"Code": "NotAuthorizedException", "Message": WRONG}


def test_the_group_is_the_clients() -> None:
    """The emulator's N, g and k are pycognito's (and so amazon-cognito-identity-js's)."""
    client = aws_srp.AWSSRP("u", "p", "us-east-1_x", "c", client=object())
    client_group = (client.big_n, client.val_g, client.val_k)
    assert client_group == (cognito.SRP_N, cognito.SRP_G, cognito.SRP_K)


def test_right_password_signs_in(pool: Pool, user: str) -> None:
    parameters, answer = _challenge(pool, user)
    # what Cognito sends: hex numbers, an opaque base64 secret block, the user's ids
    assert int(parameters["SRP_B"], 16) % cognito.SRP_N != 0
    assert int(parameters["SALT"], 16) > 0
    assert len(base64.b64decode(parameters["SECRET_BLOCK"], validate=True)) >= 64
    assert parameters["USERNAME"] == user
    assert parameters["USER_ID_FOR_SRP"]
    assert _signed_in_as(pool, _verify(pool, answer)) == user
    # and the whole flow, as a client runs it
    tokens = _srp(pool, user).authenticate_user()["AuthenticationResult"]
    assert {"AccessToken", "IdToken", "RefreshToken"} <= tokens.keys()


def test_wrong_password_is_refused(pool: Pool, user: str) -> None:
    with pytest.raises(ClientError) as error:
        _srp(pool, user, password=PASSWORD + "!").authenticate_user()
    assert _refused(error)


def test_a_challenge_answers_once(pool: Pool, user: str) -> None:
    """A replayed PASSWORD_VERIFIER answer is refused, and so is the right answer after a wrong
    one to the same challenge."""
    _, answer = _challenge(pool, user)
    assert _signed_in_as(pool, _verify(pool, answer)) == user
    with pytest.raises(ClientError) as error:
        _verify(pool, answer)
    assert _refused(error)

    _, answer = _challenge(pool, user)
    forged = base64.b64encode(b"x" * 32).decode()
    with pytest.raises(ClientError) as error:
        _verify(pool, {**answer, "PASSWORD_CLAIM_SIGNATURE": forged})
    assert _refused(error)
    with pytest.raises(ClientError) as error:
        _verify(pool, answer)
    assert _refused(error)


def test_answers_that_do_not_fit_are_refused(pool: Pool, user: str) -> None:
    """Signed with the user's password, but not this challenge's answer: refused. Answering for
    another user of the pool too."""
    other = _user(pool.idp, pool.pool_id)
    changes: list[dict[str, str | None]] = [
        {"PASSWORD_CLAIM_SECRET_BLOCK": base64.b64encode(b"?" * 64).decode()},
        {"TIMESTAMP": "Mon Jan 1 00:00:00 UTC 2024"},
        {"TIMESTAMP": None},
        {"PASSWORD_CLAIM_SIGNATURE": None},
        {"USERNAME": other},
    ]
    for change in changes:
        _, answer = _challenge(pool, user)
        changed = {key: value for key, value in {**answer, **change}.items() if value is not None}
        with pytest.raises(ClientError) as error:
            _verify(pool, changed)
        assert _refused(error), change


def test_user_id_for_srp_as_username(pool: Pool, user: str) -> None:
    """amazon-cognito-identity-js answers with USERNAME = USER_ID_FOR_SRP: the same user."""
    parameters, answer = _challenge(pool, user)
    response = _verify(pool, {**answer, "USERNAME": parameters["USER_ID_FOR_SRP"]})
    assert _signed_in_as(pool, response) == user


def test_expired_challenge_is_refused(pool: Pool, user: str) -> None:
    parameters, answer = _challenge(pool, user)
    cognito.SRP_CHALLENGES[parameters["SECRET_BLOCK"]].expires = time.monotonic() - 1
    with pytest.raises(ClientError) as error:
        _verify(pool, answer)
    assert _refused(error)


def test_a_zero_a_is_refused(pool: Pool, user: str) -> None:
    """A = N makes S = 0 whatever the password: the signature a client forges from that,
    without the password, is refused."""
    challenge = pool.idp.initiate_auth(
        ClientId=pool.client_id,
        AuthFlow="USER_SRP_AUTH",
        AuthParameters={"USERNAME": user, "SRP_A": f"{cognito.SRP_N:x}"},
    )
    parameters = challenge["ChallengeParameters"]
    u = aws_srp.calculate_u(cognito.SRP_N, int(parameters["SRP_B"], 16))
    key = aws_srp.compute_hkdf(
        bytearray.fromhex(aws_srp.pad_hex(0)), bytearray.fromhex(aws_srp.pad_hex(u))
    )
    timestamp = "Mon Jan 1 00:00:00 UTC 2024"
    message = (
        pool.pool_id.split("_")[1].encode()
        + parameters["USER_ID_FOR_SRP"].encode()
        + base64.b64decode(parameters["SECRET_BLOCK"])
        + timestamp.encode()
    )
    forged = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    answer = {
        "USERNAME": user,
        "TIMESTAMP": timestamp,
        "PASSWORD_CLAIM_SECRET_BLOCK": parameters["SECRET_BLOCK"],
        "PASSWORD_CLAIM_SIGNATURE": forged,
    }
    with pytest.raises(ClientError) as error:
        _verify(pool, answer)
    assert _refused(error)


def test_force_change_password(pool: Pool) -> None:
    """A new user signs in with the temporary password, is asked for a new one (only after a
    right signature) and sets it; then the new password signs in and the old one does not."""
    user = _user(pool.idp, pool.pool_id, confirmed=False)
    with pytest.raises(ClientError) as error:
        _srp(pool, user, password=NEW_PASSWORD).authenticate_user()
    assert _refused(error)
    with pytest.raises(ForceChangePasswordException):
        _srp(pool, user).authenticate_user()
    tokens = _srp(pool, user).set_new_password_challenge(NEW_PASSWORD)
    assert _signed_in_as(pool, tokens) == user
    status = pool.idp.admin_get_user(UserPoolId=pool.pool_id, Username=user)["UserStatus"]
    assert status == "CONFIRMED"
    assert "AuthenticationResult" in _srp(pool, user, NEW_PASSWORD).authenticate_user()
    with pytest.raises(ClientError) as error:
        _srp(pool, user).authenticate_user()
    assert _refused(error)


def test_user_password_auth_still_works(pool: Pool, user: str) -> None:
    def sign_in(password: str) -> dict[str, Any]:
        response: dict[str, Any] = pool.idp.initiate_auth(
            ClientId=pool.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": user, "PASSWORD": password},
        )
        return response

    assert _signed_in_as(pool, sign_in(PASSWORD)) == user
    with pytest.raises(ClientError) as error:
        sign_in(NEW_PASSWORD)
    assert _refused(error)


def test_browser_srp_over_http(pool: Pool, user: str) -> None:
    """As the portal signs in: unsigned JSON calls to moto's server, from a browser's origin. A
    wrong password is HTTP 400 ``NotAuthorizedException``, readable by the page (CORS). (The
    server shares this process's backends, so it serves the module's pool.)"""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()

        def call(target: str, body: dict[str, Any]) -> requests.Response:
            headers = {**BROWSER, "X-Amz-Target": f"AWSCognitoIdentityProviderService.{target}"}
            url = f"http://{host}:{port}/"
            return requests.post(url, headers=headers, data=json.dumps(body), timeout=10)

        for password, status in ((PASSWORD + "!", 400), (PASSWORD, 200)):
            client = _srp(pool, user, password)
            auth_parameters = client.get_auth_params()
            body = {"AuthFlow": "USER_SRP_AUTH", "AuthParameters": auth_parameters}
            challenge = call("InitiateAuth", {**body, "ClientId": pool.client_id})
            assert challenge.status_code == 200, challenge.text
            parameters = challenge.json()["ChallengeParameters"]
            answer = call(
                "RespondToAuthChallenge",
                {
                    "ChallengeName": "PASSWORD_VERIFIER",
                    "ClientId": pool.client_id,
                    "Session": challenge.json()["Session"],
                    "ChallengeResponses": client.process_challenge(parameters, auth_parameters),
                },
            )
            assert answer.status_code == status, answer.text
            assert answer.headers["Access-Control-Allow-Origin"] == BROWSER["Origin"]
            if status == 400:
                assert answer.json() == {"__type": "NotAuthorizedException", "message": WRONG}
            else:
                assert "AccessToken" in answer.json()["AuthenticationResult"]
    finally:
        server.stop()
