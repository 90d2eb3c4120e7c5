"""The fleet's API as a user calls it: signed in through Cognito (SRP), then with the ID token.

The demo, the tests and the benchmarks drive the local stack through it."""

from __future__ import annotations

from typing import Any

import boto3
import requests


class Client:
    """A user's view of the API: sign in, then call it with the ID token."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.idp = boto3.client(
            "cognito-idp", endpoint_url=info["aws_endpoint_url"], region_name=info["region"]
        )
        self.token = ""
        self.username = ""

    def sign_in(self, username: str, password: str) -> None:
        """USER_SRP_AUTH, as the portal and the CLI sign in (pycognito's SRP client): the app
        client allows no flow that sends the password."""
        from pycognito.aws_srp import AWSSRP

        resp = AWSSRP(
            username=username,
            password=password,
            pool_id=self.info["user_pool_id"],
            client_id=self.info["user_pool_client_id"],
            client=self.idp,
        ).authenticate_user()
        self.token = resp["AuthenticationResult"]["IdToken"]
        self.username = username

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method,
            self.info["api_url"] + path,
            headers={"Authorization": self.token},
            json=body,
            timeout=30,
        )
