"""The portal's sign-in (portal/js/auth.js, run in Node: its fetch and WebCrypto are the
browser's) with multi-factor sign-in, against moto's Cognito with the local stack's SRP server
(COGNITO_SRP) and TOTP codes checked (MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP): a code from the
person's authenticator app signs them in, a wrong one is refused in plain words, and an account
that must first set an app up is told how, in plain words, never a crash."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from pycognito.aws_srp import AWSSRP

from local.emulator import cognito as emulated_cognito
from tests.support.cognito import srp_pool, totp_code

AUTH_JS = Path(__file__).resolve().parents[2] / "portal" / "js" / "auth.js"
PASSWORD = "Correct-Horse-42"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")

#: Signs in as the portal does; prints what each step resolved to, or the error's type/message.
SCRIPT = """
globalThis.sessionStorage = { getItem: () => null, setItem() {}, removeItem() {} };
const { Auth } = await import(process.env.AUTH_JS);
const auth = new Auth(JSON.parse(process.env.CONFIG));
const steps = [];
try {
  steps.push(await auth.signIn(process.env.USERNAME, process.env.PASSWORD));
  if (steps[0] === "mfa-code") steps.push(await auth.answerCode(process.env.CODE));
  steps.push(auth.userName);
} catch (error) {
  steps.push({ type: error.type, message: error.message });
}
console.log(JSON.stringify(steps));
process.exit(0); // the refresh timer would keep Node running
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def cognito() -> Iterator[dict[str, Any]]:
    """A moto server with the local stack's Cognito workarounds, a pool with TOTP MFA
    (OPTIONAL) and the portal's client (SRP and refresh only, as template.yaml's)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP": "true",
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        for patches in (
            emulated_cognito.cognito_srp_patches,
            emulated_cognito.cognito_auth_flow_patches,
        ):
            for owner, name, replacement in patches():
                patch.setattr(owner, name, replacement)
        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        server.start()
        try:
            endpoint = f"http://127.0.0.1:{port}/"
            idp = boto3.client("cognito-idp", endpoint_url=endpoint, region_name="us-east-1")
            pool_id, client_id = srp_pool(idp, "fleet-users", "portal", mfa=True)
            yield {
                "idp": idp,
                "endpoint": endpoint,
                "pool_id": pool_id,
                "client_id": client_id,
            }
        finally:
            server.stop()


def _user(cognito: dict[str, Any], name: str, *, app: bool) -> str | None:
    """A confirmed user; with ``app``, one who set up an authenticator app (its secret)."""
    idp = cognito["idp"]
    idp.admin_create_user(UserPoolId=cognito["pool_id"], Username=name, MessageAction="SUPPRESS")
    idp.admin_set_user_password(
        UserPoolId=cognito["pool_id"], Username=name, Password=PASSWORD, Permanent=True
    )
    if not app:
        return None
    tokens = AWSSRP(
        username=name,
        password=PASSWORD,
        pool_id=cognito["pool_id"],
        client_id=cognito["client_id"],
        client=idp,
    ).authenticate_user()["AuthenticationResult"]
    secret = str(idp.associate_software_token(AccessToken=tokens["AccessToken"])["SecretCode"])
    idp.verify_software_token(AccessToken=tokens["AccessToken"], UserCode=totp_code(secret))
    idp.set_user_mfa_preference(
        AccessToken=tokens["AccessToken"],
        SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
    )
    return secret


def _portal_sign_in(cognito: dict[str, Any], username: str, code: str = "") -> list[Any]:
    config = {
        "cognitoEndpoint": cognito["endpoint"],
        "userPoolId": cognito["pool_id"],
        "userPoolClientId": cognito["client_id"],
    }
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", SCRIPT],
        env={
            "AUTH_JS": AUTH_JS.as_uri(),
            "CONFIG": json.dumps(config),
            "USERNAME": username,
            "PASSWORD": PASSWORD,
            "CODE": code,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    steps: list[Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return steps


def test_a_code_from_the_authenticator_app_signs_in(cognito: dict[str, Any]) -> None:
    secret = _user(cognito, "alice", app=True)
    assert secret is not None
    assert _portal_sign_in(cognito, "alice", totp_code(secret)) == [
        "mfa-code",
        "signed-in",
        "alice",
    ]


def test_a_wrong_code_is_refused(cognito: dict[str, Any]) -> None:
    _user(cognito, "bob", app=True)
    first, refused = _portal_sign_in(cognito, "bob", "000000")
    assert first == "mfa-code"
    assert refused["type"] == "CodeMismatchException"


def test_an_account_without_a_code_signs_in_with_its_password_alone(
    cognito: dict[str, Any],
) -> None:
    _user(cognito, "carol", app=False)
    assert _portal_sign_in(cognito, "carol") == ["signed-in", "carol"]


def test_an_app_to_set_up_first_is_explained_not_a_crash(cognito: dict[str, Any]) -> None:
    _user(cognito, "dave", app=False)
    idp = cognito["idp"]
    idp.set_user_pool_mfa_config(
        UserPoolId=cognito["pool_id"],
        SoftwareTokenMfaConfiguration={"Enabled": True},
        MfaConfiguration="ON",
    )
    try:
        (refused,) = _portal_sign_in(cognito, "dave")
    finally:
        idp.set_user_pool_mfa_config(
            UserPoolId=cognito["pool_id"],
            SoftwareTokenMfaConfiguration={"Enabled": True},
            MfaConfiguration="OPTIONAL",
        )
    assert refused["type"] == "UnsupportedChallenge"
    assert "authenticator app" in refused["message"]
    assert "dcvfleet login" in refused["message"]
