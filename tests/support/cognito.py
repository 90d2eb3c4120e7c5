"""A Cognito user pool as the portal and the CLI sign in to it (SRP), and the stack file that
names it to the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
