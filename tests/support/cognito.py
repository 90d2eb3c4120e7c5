"""A Cognito user pool as the portal and the CLI sign in to it (SRP), and the stack file that
names it to the CLI."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

#: TOTP's time step (RFC 6238, as Cognito uses it:
#: https://docs.aws.amazon.com/cognito/latest/developerguide/user-pool-settings-mfa-totp.html).
TOTP_STEP_SECONDS = 30
#: A code is made only with at least this long left in its step: the emulator accepts a code in
#: its own step alone, and a loaded machine may take seconds between making and sending it.
TOTP_FRESH_SECONDS = 12


def srp_pool(idp: Any, pool_name: str, client_name: str, *, mfa: bool = False) -> tuple[str, str]:
    """A user pool (TOTP MFA OPTIONAL when ``mfa``) and an app client that signs in with SRP
    only, as template.yaml's; (pool id, client id)."""
    pool_id: str = idp.create_user_pool(PoolName=pool_name)["UserPool"]["Id"]
    if mfa:
        idp.set_user_pool_mfa_config(
            UserPoolId=pool_id,
            SoftwareTokenMfaConfiguration={"Enabled": True},
            MfaConfiguration="OPTIONAL",
        )
    client_id: str = idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=client_name,
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    return pool_id, client_id


def write_stack_file(path: Path, pool_id: str, client_id: str) -> Path:
    """The stack file the CLI reads (DCVFLEET_STACK_FILE), naming the pool and an API that is
    never reached."""
    path.write_text(
        json.dumps(
            {
                "api_url": "http://127.0.0.1:9/v1",
                "user_pool_id": pool_id,
                "user_pool_client_id": client_id,
                "region": "us-east-1",
            }
        )
    )
    return path


def totp_code(secret: str, clock: Any = time.time, sleep: Any = time.sleep) -> str:
    """The code an authenticator app shows for ``secret`` (6 digits, SHA-1, 30 s), made at the
    start of a step when the current one is nearly over, so it is still valid when it arrives."""
    left = TOTP_STEP_SECONDS - clock() % TOTP_STEP_SECONDS
    if left < TOTP_FRESH_SECONDS:
        sleep(left + 0.05)
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    totp = TOTP(key, 6, SHA1(), TOTP_STEP_SECONDS, enforce_key_length=False)  # noqa: S303
    return totp.generate(clock()).decode()
