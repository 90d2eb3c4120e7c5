"""Cognito user pools: a real SRP-6a server, app clients' auth flows and read attributes, TOTP.

The SRP server (RFC 3526's 3072-bit group, g = 2, SHA-256, as ``pycognito.aws_srp`` and
amazon-cognito-identity-js compute it) is written here, not imported, so the client in the tests
checks an independent server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from local.emulator.gap import Gap, Patch

log = logging.getLogger("local.emulator")


#: SRP-6a's group as Cognito (and every Cognito client) uses it: RFC 3526's 3072-bit prime, g = 2.
SRP_N = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
SRP_G = 2
#: HKDF's info for the password authentication key, as every Cognito client derives it.
SRP_KEY_INFO = b"Caldera Derived Key"
#: Random bytes in a ``SECRET_BLOCK`` (Cognito's is opaque base64 too).
SECRET_BLOCK_BYTES = 256
#: A client's ``AuthSessionValidity`` (minutes) when it has none: Cognito's default.
AUTH_SESSION_MINUTES = 3


def srp_bytes(value: int) -> bytes:
    """``value`` big-endian, with a leading zero byte when its top bit is set: SRP's ``padHex``,
    through which every number is hashed."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def srp_hash(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha256(b"".join(parts)).digest(), "big")


SRP_K = srp_hash(srp_bytes(SRP_N), srp_bytes(SRP_G))


def srp_verifier(pool_id: str, user_id_for_srp: str, password: str, salt: int) -> int:
    """v = g^x with x = H(salt | H(poolName | USER_ID_FOR_SRP | ":" | password)), the client's x
    (poolName: the pool id after its "_")."""
    identity = f"{pool_id.split('_', 1)[1]}{user_id_for_srp}:{password}".encode()
    return pow(SRP_G, srp_hash(srp_bytes(salt), hashlib.sha256(identity).digest()), SRP_N)


@dataclass
class SrpChallenge:
    """COGNITO_SRP: the server's side of one USER_SRP_AUTH sign-in, until its PASSWORD_VERIFIER."""

    session: str  # moto's session for the sign-in
    client_id: str
    pool_id: str
    username: str
    user_id_for_srp: str
    password: str
    big_a: int
    expires: float  # time.monotonic()
    salt: int = field(default_factory=lambda: secrets.randbits(128))
    small_b: int = field(default_factory=lambda: secrets.randbits(256))  # RFC 5054: >= 256
    secret_block: bytes = field(default_factory=lambda: secrets.token_bytes(SECRET_BLOCK_BYTES))
    verifier: int = field(init=False)
    big_b: int = field(init=False)

    def __post_init__(self) -> None:
        self.verifier = srp_verifier(self.pool_id, self.user_id_for_srp, self.password, self.salt)
        self.big_b = (SRP_K * self.verifier + pow(SRP_G, self.small_b, SRP_N)) % SRP_N

    def parameters(self) -> dict[str, str]:
        """The challenge's parameters, as Cognito's (hex numbers, base64 secret block)."""
        return {
            "SALT": f"{self.salt:x}",
            "SRP_B": f"{self.big_b:x}",
            "SECRET_BLOCK": base64.b64encode(self.secret_block).decode(),
            "USER_ID_FOR_SRP": self.user_id_for_srp,
            "USERNAME": self.username,
        }

    def signature(self, timestamp: str) -> str:
        """The ``PASSWORD_CLAIM_SIGNATURE`` a client knowing the password sends at ``timestamp``."""
        u = srp_hash(srp_bytes(self.big_a), srp_bytes(self.big_b))
        shared = pow(self.big_a * pow(self.verifier, u, SRP_N), self.small_b, SRP_N)
        prk = hmac.new(srp_bytes(u), srp_bytes(shared), hashlib.sha256).digest()
        key = hmac.new(prk, SRP_KEY_INFO + b"\x01", hashlib.sha256).digest()[:16]
        message = b"".join(
            (
                self.pool_id.split("_", 1)[1].encode(),
                self.user_id_for_srp.encode(),
                self.secret_block,
                timestamp.encode(),
            )
        )
        return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()

    def accepts(self, client_id: str, responses: Mapping[str, str]) -> bool:
        """A PASSWORD_VERIFIER answer for this sign-in, in time, signed with the password."""
        signature, timestamp = responses.get("PASSWORD_CLAIM_SIGNATURE"), responses.get("TIMESTAMP")
        if not signature or not timestamp or self.big_a % SRP_N == 0:
            return False
        if client_id != self.client_id or time.monotonic() >= self.expires:
            return False
        if responses.get("USERNAME") not in (self.username, self.user_id_for_srp):
            return False
        return hmac.compare_digest(self.signature(timestamp).encode(), signature.encode())


#: Every sign-in between its USER_SRP_AUTH and its PASSWORD_VERIFIER, by its ``SECRET_BLOCK``.
SRP_CHALLENGES: dict[str, SrpChallenge] = {}
_srp_lock = threading.Lock()


def _srp_number(text: str) -> int:
    """A client's hex number; 0 (refused at PASSWORD_VERIFIER) when it is none."""
    try:
        return int(text, 16)
    except ValueError:
        return 0


def cognito_srp_patches() -> list[Patch]:
    """COGNITO_SRP: ``initiate_auth`` answers USER_SRP_AUTH with a real challenge (salt, B,
    secret block) and ``respond_to_auth_challenge`` checks the PASSWORD_VERIFIER signature, once,
    before moto's own flow goes on.."""
    from moto.cognitoidp.exceptions import NotAuthorizedError
    from moto.cognitoidp.models import CognitoIdpBackend

    original_initiate = CognitoIdpBackend.initiate_auth
    original_respond = CognitoIdpBackend.respond_to_auth_challenge

    def initiate_auth(
        self: Any, client_id: str, auth_flow: str, auth_parameters: dict[str, str]
    ) -> dict[str, Any]:
        result: dict[str, Any] = original_initiate(self, client_id, auth_flow, auth_parameters)
        if result.get("ChallengeName") != "PASSWORD_VERIFIER":  # not USER_SRP_AUTH
            return result
        parameters = result["ChallengeParameters"]
        _, pool = self.sessions[result["Session"]]
        user = pool._get_user(parameters["USERNAME"])
        minutes = pool.clients[client_id].extended_config.get("AuthSessionValidity")
        challenge = SrpChallenge(
            session=result["Session"],
            client_id=client_id,
            pool_id=pool.id,
            username=user.username,
            user_id_for_srp=parameters["USER_ID_FOR_SRP"],  # moto's: the user's sub
            # no password (none set yet): no password signs in
            password=secrets.token_hex(32) if user.password is None else user.password,
            big_a=_srp_number(auth_parameters["SRP_A"]),
            expires=time.monotonic() + 60 * (minutes or AUTH_SESSION_MINUTES),
        )
        parameters.update(challenge.parameters())
        with _srp_lock:
            now = time.monotonic()
            for expired in [key for key, old in SRP_CHALLENGES.items() if old.expires <= now]:
                del SRP_CHALLENGES[expired]
            SRP_CHALLENGES[parameters["SECRET_BLOCK"]] = challenge
        return result

    def respond_to_auth_challenge(
        self: Any,
        session: str,
        client_id: str,
        challenge_name: str,
        challenge_responses: dict[str, str],
    ) -> dict[str, Any]:
        if challenge_name != "PASSWORD_VERIFIER":
            return original_respond(self, session, client_id, challenge_name, challenge_responses)
        with _srp_lock:  # usable once, whatever the answer
            challenge = SRP_CHALLENGES.pop(
                challenge_responses.get("PASSWORD_CLAIM_SECRET_BLOCK") or "", None
            )
        if challenge is None or not challenge.accepts(client_id, challenge_responses):
            if challenge is not None:
                self.sessions.pop(challenge.session, None)
            raise NotAuthorizedError("Incorrect username or password.")
        # moto finds its session by the secret block, and the user by USERNAME
        responses = {
            **challenge_responses,
            "USERNAME": challenge.username,
            "PASSWORD_CLAIM_SECRET_BLOCK": challenge.session,
        }
        result: dict[str, Any] = original_respond(
            self, session, client_id, challenge_name, responses
        )
        return result

    return [
        Patch(CognitoIdpBackend, "initiate_auth", initiate_auth),
        Patch(CognitoIdpBackend, "respond_to_auth_challenge", respond_to_auth_challenge),
    ]


#: Each InitiateAuth/AdminInitiateAuth flow and the ExplicitAuthFlows values that allow it.
AUTH_FLOW_ALLOWED_BY = {
    "USER_SRP_AUTH": {"ALLOW_USER_SRP_AUTH"},
    "USER_PASSWORD_AUTH": {"ALLOW_USER_PASSWORD_AUTH", "USER_PASSWORD_AUTH"},
    "ADMIN_USER_PASSWORD_AUTH": {"ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"},
    "ADMIN_NO_SRP_AUTH": {"ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"},
    "CUSTOM_AUTH": {"ALLOW_CUSTOM_AUTH", "CUSTOM_AUTH_FLOW_ONLY"},
    "REFRESH_TOKEN_AUTH": {"ALLOW_REFRESH_TOKEN_AUTH"},
    "REFRESH_TOKEN": {"ALLOW_REFRESH_TOKEN_AUTH"},
    "USER_AUTH": {"ALLOW_USER_AUTH"},
}
#: What a client without ExplicitAuthFlows allows.
DEFAULT_AUTH_FLOWS = ("ALLOW_USER_SRP_AUTH", "ALLOW_CUSTOM_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")


def auth_flow_allowed(explicit: list[str] | None, flow: str) -> bool:
    """Whether an app client with ``explicit`` ExplicitAuthFlows lets ``flow`` sign in."""
    allowed = set(explicit or DEFAULT_AUTH_FLOWS)
    if flow in ("REFRESH_TOKEN_AUTH", "REFRESH_TOKEN") and not any(
        value.startswith("ALLOW_") for value in allowed
    ):
        return True  # legacy values never gated refreshing
    return bool(allowed & AUTH_FLOW_ALLOWED_BY.get(flow, set()))


def cognito_auth_flow_patches() -> list[Patch]:
    """COGNITO_AUTH_FLOWS: ``initiate_auth`` and ``admin_initiate_auth`` refuse a flow the app
    client's ExplicitAuthFlows does not allow, before moto's own flow.."""
    from moto.cognitoidp.exceptions import InvalidParameterException
    from moto.cognitoidp.models import CognitoIdpBackend

    original_initiate = CognitoIdpBackend.initiate_auth
    original_admin = CognitoIdpBackend.admin_initiate_auth

    def check(backend: Any, client_id: str, flow: str) -> None:
        for pool in backend.user_pools.values():
            client = pool.clients.get(client_id)
            if client is not None:
                if not auth_flow_allowed(client.extended_config.get("ExplicitAuthFlows"), flow):
                    raise InvalidParameterException(f"{flow} flow not enabled for this client")
                return

    def initiate_auth(
        self: Any, client_id: str, auth_flow: str, auth_parameters: dict[str, str]
    ) -> dict[str, Any]:
        check(self, client_id, auth_flow)
        result: dict[str, Any] = original_initiate(self, client_id, auth_flow, auth_parameters)
        return result

    def admin_initiate_auth(
        self: Any,
        user_pool_id: str,
        client_id: str,
        auth_flow: str,
        auth_parameters: dict[str, str],
    ) -> dict[str, Any]:
        check(self, client_id, auth_flow)
        result: dict[str, Any] = original_admin(
            self, user_pool_id, client_id, auth_flow, auth_parameters
        )
        return result

    return [
        Patch(CognitoIdpBackend, "initiate_auth", initiate_auth),
        Patch(CognitoIdpBackend, "admin_initiate_auth", admin_initiate_auth),
    ]


TOTP_SETTING = "MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP"
# moto reads it at each call


def cognito_read_attribute_patches() -> list[Patch]:
    """COGNITO_READ_ATTRIBUTES: a client without ``ReadAttributes`` reads every attribute but
    the custom ones (which moto's ID token adds anyway).."""
    from moto.cognitoidp.models import CognitoIdpUserPool

    original = CognitoIdpUserPool.get_user_extra_data_by_client_id

    def get_user_extra_data_by_client_id(self: Any, client_id: str, username: str) -> Any:
        client = self.clients.get(client_id)
        if client is None or "ReadAttributes" in client.extended_config:
            return original(self, client_id, username)
        return {
            attribute["Name"]: attribute["Value"]
            for attribute in self._get_user(username).attributes
            if not attribute["Name"].startswith("custom:") and attribute["Name"] != "sub"
        }

    return [
        Patch(
            CognitoIdpUserPool,
            "get_user_extra_data_by_client_id",
            get_user_extra_data_by_client_id,
        )
    ]


COGNITO_SRP = Gap(
    "COGNITO_SRP",
    moto_does="USER_SRP_AUTH checks nothing: InitiateAuth answers a random SALT and SRP_B and"
    " RespondToAuthChallenge takes any PASSWORD_CLAIM_SIGNATURE, so a wrong password signs in",
    we_do="the emulator is Cognito's SRP-6a server: InitiateAuth derives the verifier from the"
    " user's password and returns SALT, SRP_B = k*v + g^b, SECRET_BLOCK, USER_ID_FOR_SRP and"
    " USERNAME; the PASSWORD_VERIFIER answer is checked (HMAC-SHA256 over HKDF(S, u)); a wrong"
    " signature, A = 0 mod N, a secret block unknown, used or older than AuthSessionValidity,"
    " another client or another USERNAME is NotAuthorizedException; each challenge answers once."
    " The TIMESTAMP's format and skew are not checked",
    install=lambda context: cognito_srp_patches(),
)
COGNITO_AUTH_FLOWS = Gap(
    "COGNITO_AUTH_FLOWS",
    moto_does="InitiateAuth and AdminInitiateAuth ignore the app client's ExplicitAuthFlows: a"
    " client that allows only SRP signs a user in with USER_PASSWORD_AUTH",
    we_do="a flow the client does not allow is refused as Cognito refuses it"
    " (InvalidParameterException <FLOW> flow not enabled for this client); a client without the"
    " list allows SRP, custom and refresh"
    " (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPoolClient.html)",
    install=lambda context: cognito_auth_flow_patches(),
)
COGNITO_TOTP = Gap(
    "COGNITO_TOTP",
    moto_does="an authenticator app's code (VerifySoftwareToken, the SOFTWARE_TOKEN_MFA answer)"
    " is not checked unless MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP is true, so any code signs in",
    we_do="that setting is on, and codes are checked (RFC 6238, 30 s steps) against the secret"
    " key AssociateSoftwareToken gave. Not worked around: that key is one value for every user",
    install=lambda context: [Patch(os.environ, TOTP_SETTING, "true")],
)
COGNITO_READ_ATTRIBUTES = Gap(
    "COGNITO_READ_ATTRIBUTES",
    moto_does="an app client without ReadAttributes puts none of the user's attributes in the ID"
    " token (so no email claim)",
    we_do="such a client reads the standard attributes, as Cognito lets it"
    " (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPoolClient.html)",
    install=lambda context: cognito_read_attribute_patches(),
)
