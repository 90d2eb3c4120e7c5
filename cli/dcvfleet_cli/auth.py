"""Sign-in through Cognito (USER_SRP_AUTH: the password never leaves this machine) and the
token cache: one file per API URL in ``$XDG_CACHE_HOME/dcvfleet/``, readable by its owner only.
The ID token is refreshed (REFRESH_TOKEN_AUTH) when it expires within two minutes, or when the
API answers 401."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dcvfleet_cli.errors import EXPIRED, NOT_SIGNED_IN, CliError
from dcvfleet_cli.stack import Stack

#: Refresh the ID token when it expires within this many seconds.
REFRESH_MARGIN = 120.0
#: At most this many challenges after the password (a new password, then MFA set-up or a code).
MAX_CHALLENGES = 3


def no_mfa_code(secret: str | None) -> str:
    raise CliError("sign-in needs a code from your authenticator app, which was not given")


@dataclass
class Tokens:
    id_token: str
    access_token: str
    refresh_token: str
    #: When the ID token expires (seconds since the epoch).
    expires_at: float
    username: str
    #: The user pool client the tokens were issued to (a rebuilt stack has another).
    client_id: str

    @classmethod
    def from_json(cls, data: Any) -> Tokens | None:
        try:
            return cls(
                id_token=str(data["id_token"]),
                access_token=str(data["access_token"]),
                refresh_token=str(data["refresh_token"]),
                expires_at=float(data["expires_at"]),
                username=str(data["username"]),
                client_id=str(data["client_id"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def claims(self) -> dict[str, Any]:
        return jwt_claims(self.id_token)


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (the API verifies; this is only for display and expiry)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return data if isinstance(data, dict) else {}


def cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "dcvfleet"


class TokenCache:
    """The tokens of one stack (named by a hash of its API URL), in a file only its owner reads."""

    def __init__(self, directory: Path, api_url: str) -> None:
        digest = hashlib.sha256(api_url.encode()).hexdigest()[:16]
        self.path = directory / f"tokens-{digest}.json"
        self.api_url = api_url

    def load(self) -> Tokens | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return Tokens.from_json(data)

    def save(self, tokens: Tokens) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"api_url": self.api_url, **asdict(tokens)}, out)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def clear(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


def cognito_client(stack: Stack) -> Any:
    """A ``cognito-idp`` client for the public (unsigned) calls: no AWS credentials needed."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(
        signature_version=UNSIGNED,
        connect_timeout=10,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return boto3.client(
        "cognito-idp",
        region_name=stack.region,
        endpoint_url=stack.cognito_endpoint or None,
        config=config,
    )


def _error_of(exc: Exception, what: str) -> CliError:
    """A Cognito failure as one sentence."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message") or str(exc)
        if code in ("NotAuthorizedException", "UserNotFoundException"):
            return CliError(f"{what} failed: {message}")
        if code == "CodeMismatchException":
            return CliError(
                f"{what} failed: the code from your authenticator app is wrong or expired"
            )
        if code == "PasswordResetRequiredException":
            return CliError(f"{what} failed: your password must be reset ({message})")
        return CliError(f"{what} failed: {code}: {message}")
    if isinstance(exc, BotoCoreError):
        return CliError(f"{what} failed: cannot reach Cognito: {exc}")
    return CliError(f"{what} failed: {exc}")


class Auth:
    """The signed-in user of one stack."""

    def __init__(
        self,
        stack: Stack,
        cache: TokenCache,
        client_factory: Callable[[Stack], Any] = cognito_client,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stack = stack
        self.cache = cache
        self._client_factory = client_factory
        self._client: Any = None
        self._clock = clock

    @property
    def idp(self) -> Any:
        if self._client is None:
            self._client = self._client_factory(self.stack)
        return self._client

    def login(
        self,
        username: str,
        password: str,
        new_password: Callable[[], str],
        mfa_code: Callable[[str | None], str] = no_mfa_code,
    ) -> Tokens:
        """USER_SRP_AUTH, then the challenges Cognito may ask for: NEW_PASSWORD_REQUIRED (an
        administrator-created user's first sign-in), SOFTWARE_TOKEN_MFA (a code from the user's
        authenticator app) and MFA_SETUP (a pool with MFA ON, a user without an app yet: the
        app's secret key is shown through ``mfa_code(secret)``, then its first code verified);
        the tokens are cached (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_RespondToAuthChallenge.html)."""
        from botocore.exceptions import BotoCoreError, ClientError
        from pycognito.aws_srp import AWSSRP

        client_id = self.stack.user_pool_client_id
        try:
            srp = AWSSRP(
                username=username,
                password=password,
                pool_id=self.stack.user_pool_id,
                client_id=client_id,
                client=self.idp,
            )
            params = srp.get_auth_params()
            started = self.idp.initiate_auth(
                ClientId=client_id, AuthFlow="USER_SRP_AUTH", AuthParameters=params
            )
            challenge = started.get("ChallengeName")
            if challenge != "PASSWORD_VERIFIER":
                raise CliError(f"sign-in failed: unexpected challenge {challenge}")
            answer = srp.process_challenge(started["ChallengeParameters"], params)
            resp = self.idp.respond_to_auth_challenge(
                ClientId=client_id, ChallengeName="PASSWORD_VERIFIER", ChallengeResponses=answer
            )
            user = started["ChallengeParameters"].get("USERNAME") or username
            for _ in range(MAX_CHALLENGES):
                if "AuthenticationResult" in resp:
                    break
                resp = self._answer(resp, user, new_password, mfa_code)
        except (ClientError, BotoCoreError, ValueError) as exc:
            raise _error_of(exc, "sign-in") from None
        if "AuthenticationResult" not in resp:
            raise CliError(
                f"sign-in needs {resp.get('ChallengeName')}, which dcvfleet cannot answer: "
                "ask the fleet's administrator"
            )
        result = resp["AuthenticationResult"]
        tokens = Tokens(
            id_token=result["IdToken"],
            access_token=result["AccessToken"],
            refresh_token=result["RefreshToken"],
            expires_at=self._expiry(result),
            username=username,
            client_id=client_id,
        )
        self.cache.save(tokens)
        return tokens

    def _answer(
        self,
        resp: Mapping[str, Any],
        user: str,
        new_password: Callable[[], str],
        mfa_code: Callable[[str | None], str],
    ) -> Any:
        """Cognito's next answer to one challenge; ``resp`` unchanged for one not supported."""
        client_id = self.stack.user_pool_client_id
        name = resp.get("ChallengeName")
        if name == "NEW_PASSWORD_REQUIRED":
            responses = {"USERNAME": user, "NEW_PASSWORD": new_password()}
            session = resp["Session"]
        elif name == "SOFTWARE_TOKEN_MFA":
            responses = {"USERNAME": user, "SOFTWARE_TOKEN_MFA_CODE": mfa_code(None)}
            session = resp["Session"]
        elif name == "MFA_SETUP":
            associated = self.idp.associate_software_token(Session=resp["Session"])
            code = mfa_code(str(associated["SecretCode"]))
            verified = self.idp.verify_software_token(
                Session=associated["Session"], UserCode=code, FriendlyDeviceName="dcvfleet"
            )
            if verified.get("Status") == "ERROR":
                raise CliError("sign-in failed: the code from your authenticator app was wrong")
            session = verified["Session"]
            responses = {"USERNAME": user, "SESSION": session}
        else:
            return resp
        return self.idp.respond_to_auth_challenge(
            ClientId=client_id, ChallengeName=name, Session=session, ChallengeResponses=responses
        )

    def _expiry(self, result: Mapping[str, Any]) -> float:
        exp = jwt_claims(str(result["IdToken"])).get("exp")
        if isinstance(exp, int | float):
            return float(exp)
        return self._clock() + float(result.get("ExpiresIn", 3600))

    def tokens(self) -> Tokens:
        """The cached tokens; an error if there are none for this stack."""
        tokens = self.cache.load()
        if tokens is None:
            raise CliError(NOT_SIGNED_IN)
        if tokens.client_id != self.stack.user_pool_client_id:
            raise CliError(EXPIRED)
        return tokens

    def id_token(self) -> str:
        """A valid ID token, refreshed first if it expires within REFRESH_MARGIN."""
        tokens = self.tokens()
        if tokens.expires_at - self._clock() < REFRESH_MARGIN:
            tokens = self._refresh(tokens)
        return tokens.id_token

    def refresh(self) -> str:
        """A new ID token now (the API refused the cached one)."""
        return self._refresh(self.tokens()).id_token

    def _refresh(self, tokens: Tokens) -> Tokens:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self.idp.initiate_auth(
                ClientId=self.stack.user_pool_client_id,
                AuthFlow="REFRESH_TOKEN_AUTH",
                AuthParameters={"REFRESH_TOKEN": tokens.refresh_token},
            )
        except ClientError:
            raise CliError(EXPIRED) from None
        except BotoCoreError as exc:
            raise _error_of(exc, "refreshing your sign-in") from None
        result = resp.get("AuthenticationResult")
        if not result:
            raise CliError(EXPIRED)
        tokens = Tokens(
            id_token=result["IdToken"],
            access_token=result["AccessToken"],
            refresh_token=result.get("RefreshToken") or tokens.refresh_token,
            expires_at=self._expiry(result),
            username=tokens.username,
            client_id=tokens.client_id,
        )
        self.cache.save(tokens)
        return tokens

    def logout(self) -> bool:
        """Forget the tokens (and revoke the refresh token, where Cognito can); False if there
        were none."""
        tokens = self.cache.load()
        if tokens is None:
            return False
        with contextlib.suppress(Exception):
            self.idp.revoke_token(
                Token=tokens.refresh_token, ClientId=self.stack.user_pool_client_id
            )
        return self.cache.clear()
