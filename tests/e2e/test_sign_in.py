"""Sign-in on the local stack is the template's: its app client allows SRP and refresh only, and
the emulated user pool refuses any other flow as Cognito does (COGNITO_AUTH_FLOWS); the pool
offers authenticator-app MFA as the ``Mfa`` parameter (default OPTIONAL) says."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.support.stack import Stack


def test_the_app_client_refuses_a_password_sent_in_the_request(fleet: Stack) -> None:
    user = fleet.new_user()  # signed in through SRP, as the portal and the CLI sign in
    password = fleet.create_user(f"{user.username}-2")
    idp = fleet.client("cognito-idp")
    with pytest.raises(ClientError) as refused:
        idp.initiate_auth(
            ClientId=fleet.info["user_pool_client_id"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": f"{user.username}-2", "PASSWORD": password},
        )
    assert refused.value.response["Error"] == {
        "Code": "InvalidParameterException",
        "Message": "USER_PASSWORD_AUTH flow not enabled for this client",
    }
    assert user.call("GET", "/sessions").status_code == 200


def test_the_user_pool_offers_an_authenticator_app(fleet: Stack) -> None:
    idp = fleet.client("cognito-idp")
    config = idp.get_user_pool_mfa_config(UserPoolId=fleet.info["user_pool_id"])
    assert config["MfaConfiguration"] == "OPTIONAL"
    assert config["SoftwareTokenMfaConfiguration"] == {"Enabled": True}
