"""``dcvfleet login`` with multi-factor sign-in (the template's ``Mfa`` parameter): it answers
SOFTWARE_TOKEN_MFA with a code from the user's authenticator app and, on a pool with MFA ON,
sets the app up (MFA_SETUP: the secret key shown, its first code verified); a wrong or missing
code is a sentence, not a traceback. Cognito (moto) checks the codes
(MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pycognito.aws_srp import AWSSRP

from dcvfleet_cli.main import main
from tests.support.cognito import srp_pool, totp_code, write_stack_file

PASSWORD = "Secret-Pw-1"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's settings (the stack it remembers) in this test's folder, never the user's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "config"))
    return tmp_path / "config" / "dcvfleet" / "config.json"


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A pool with TOTP MFA (OPTIONAL unless the test turns it ON), its CLI client, and a
    stack file naming them."""
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP": "true",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("DCVFLEET_PASSWORD", "DCVFLEET_NEW_PASSWORD", "DCVFLEET_MFA_CODE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        idp = boto3.client("cognito-idp", region_name="us-east-1")
        pool_id, client_id = srp_pool(idp, "fleet", "cli", mfa=True)
        stack_file = write_stack_file(tmp_path / "stack.json", pool_id, client_id)
        monkeypatch.setenv("DCVFLEET_STACK_FILE", str(stack_file))
        monkeypatch.setenv("DCVFLEET_PASSWORD", PASSWORD)
        idp.admin_create_user(UserPoolId=pool_id, Username="alice", MessageAction="SUPPRESS")
        idp.admin_set_user_password(
            UserPoolId=pool_id, Username="alice", Password=PASSWORD, Permanent=True
        )
        yield {"idp": idp, "pool_id": pool_id, "client_id": client_id}


def _with_authenticator_app(pool: dict[str, Any]) -> str:
    """alice sets up her authenticator app (as she would with the AWS CLI); its secret."""
    idp = pool["idp"]
    tokens = AWSSRP(
        username="alice",
        password=PASSWORD,
        pool_id=pool["pool_id"],
        client_id=pool["client_id"],
        client=idp,
    ).authenticate_user()["AuthenticationResult"]
    secret = idp.associate_software_token(AccessToken=tokens["AccessToken"])["SecretCode"]
    idp.verify_software_token(AccessToken=tokens["AccessToken"], UserCode=totp_code(secret))
    idp.set_user_mfa_preference(
        AccessToken=tokens["AccessToken"],
        SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
    )
    return str(secret)


def _login(monkeypatch: pytest.MonkeyPatch, stdin: io.StringIO | None = None) -> int:
    monkeypatch.setattr("sys.stdin", stdin or io.StringIO(""))
    return main(["login", "--username", "alice"])


def test_login_answers_the_code_challenge_with_the_users_code(
    pool: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = _with_authenticator_app(pool)
    monkeypatch.setenv("DCVFLEET_MFA_CODE", totp_code(secret))
    assert _login(monkeypatch) == 0
    assert "Signed in as alice" in capsys.readouterr().err


def test_login_asks_for_the_code_on_a_terminal(
    pool: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = _with_authenticator_app(pool)
    assert _login(monkeypatch, Tty(totp_code(secret) + "\n")) == 0
    err = capsys.readouterr().err
    assert "Code from your authenticator app: " in err
    assert "Signed in as alice" in err


def test_a_wrong_or_missing_code_is_a_plain_failure(
    pool: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_authenticator_app(pool)
    # no terminal, no DCVFLEET_MFA_CODE: it cannot ask, and says how to give one
    assert _login(monkeypatch) == 2
    err = capsys.readouterr().err
    assert "authenticator app" in err
    assert "DCVFLEET_MFA_CODE" in err
    # a wrong code
    monkeypatch.setenv("DCVFLEET_MFA_CODE", "000000")
    assert _login(monkeypatch) == 1
    err = capsys.readouterr().err
    assert "the code from your authenticator app is wrong or expired" in err
    assert "Traceback" not in err


def test_login_sets_up_the_authenticator_app_when_the_fleet_requires_one(
    pool: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pool["idp"].set_user_pool_mfa_config(
        UserPoolId=pool["pool_id"],
        SoftwareTokenMfaConfiguration={"Enabled": True},
        MfaConfiguration="ON",
    )
    shown: list[str] = []

    class App(Tty):
        """The user reads the secret key the CLI shows and types their app's first code."""

        def readline(self, size: int | None = -1) -> str:
            text = capsys.readouterr().err
            shown.append(text)
            secret = text.split("secret key to your app (time-based, TOTP): ")[1].split()[0]
            return totp_code(secret) + "\n"

    assert _login(monkeypatch, App("")) == 0
    assert "otpauth://totp/DCV%20Fleet:alice?secret=" in shown[0]
    assert "Signed in as alice" in capsys.readouterr().err
