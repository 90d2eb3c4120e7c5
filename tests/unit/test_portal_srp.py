"""The portal's Cognito SRP (portal/js/srp.js), run in headless Chromium, against pycognito's.

For the same secret ``a``, server values and timestamp, the browser must send the SRP_A and the
PASSWORD_CLAIM_SIGNATURE that pycognito's ``AWSSRP`` sends (pycognito signs in to real Cognito), for
passwords and user ids beyond ASCII and for values whose hex needs each padding rule.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pycognito import aws_srp

PORTAL = Path(__file__).resolve().parents[2] / "portal"
ORIGIN = "https://portal.test"  # served by page.route, never by the network; https for WebCrypto
BIG_N = aws_srp.hex_to_long(aws_srp.N_HEX)
POOL_ID = "eu-west-1_Ab3dEf9Gh"


def _secret(seed: str) -> int:
    """A fixed 1024-byte-strong secret exponent, reproducible from its seed."""
    return int.from_bytes(hashlib.shake_256(seed.encode()).digest(128), "big") % BIG_N


def _public(seed: str) -> str:
    """g^secret mod N as hex: what a server's B looks like."""
    return aws_srp.long_to_hex(pow(2, _secret(seed), BIG_N))


@dataclass(frozen=True)
class Case:
    name: str
    small_a: int
    srp_b_hex: str
    salt_hex: str
    user_id_for_srp: str
    password: str
    secret_block_b64: str
    now: datetime.datetime  # naive UTC, as pycognito's datetime.utcnow() returns

    @property
    def large_a(self) -> int:
        return pow(2, self.small_a, BIG_N)

    @property
    def u_hex(self) -> str:
        return aws_srp.long_to_hex(
            aws_srp.calculate_u(self.large_a, aws_srp.hex_to_long(self.srp_b_hex))
        )


REAL_SECRET_BLOCK = base64.b64encode(hashlib.shake_256(b"secret block").digest(1100)).decode()
CASES = [
    Case(
        name="ascii, A B u with the high bit set",
        small_a=_secret("a0"),
        srp_b_hex=_public("b0"),
        salt_hex="f3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8",
        user_id_for_srp="alice",
        password="Correct-Horse-Battery-9",
        secret_block_b64=REAL_SECRET_BLOCK,
        now=datetime.datetime(2025, 11, 2, 9, 5, 7),
    ),
    Case(
        name="latin-1 password and user id, A of odd length, odd-length salt",
        small_a=_secret("a9"),
        srp_b_hex=_public("b9"),
        salt_hex="abcdef0123456789abcdef012345678",
        user_id_for_srp="zoë.müller",
        password="Pässwörd-Ünïcødé-1",
        secret_block_b64=REAL_SECRET_BLOCK,
        now=datetime.datetime(2026, 1, 31, 23, 59, 59),
    ),
    Case(
        name="CJK and emoji password, B of odd length, salt with a leading zero",
        small_a=_secret("a4"),
        srp_b_hex=_public("b4"),
        salt_hex="0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        user_id_for_srp="b1946ac9-2fa4-4e5a-9d4b-1c0d2e3f4a5b",
        password="密码-パスワード-🔐-Aa1",
        secret_block_b64=REAL_SECRET_BLOCK,
        now=datetime.datetime(2026, 12, 10, 0, 0, 0),
    ),
    Case(
        name="decomposed accent (no normalisation), u of odd length",
        small_a=_secret("a21"),
        srp_b_hex=_public("b21"),
        salt_hex="7c9e6679742540de944be07fc1f90ae7",
        user_id_for_srp="cafe",
        password="Cafe\u0301-\u03a9mega-12",
        secret_block_b64=REAL_SECRET_BLOCK,
        now=datetime.datetime(2024, 2, 29, 12, 30, 1),
    ),
    Case(
        name="the local emulator's short B and UUID secret block",
        small_a=_secret("a14"),
        srp_b_hex="9f2c3e4d5a6b7c8d9e0f1a2b3c4d5e6f",
        salt_hex="8d777f385d3dfec8815d20f7496026dc",
        user_id_for_srp="demo",
        password="Demo-xYz_12345678901a",
        secret_block_b64="3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        now=datetime.datetime(2026, 7, 4, 7, 8, 9),
    ),
]


def _padding(hex_value: str) -> str:
    """Which of pad_hex's rules a value's hex takes."""
    if len(hex_value) % 2:
        return "odd length"
    return "high bit" if hex_value[0] in "89abcdefABCDEF" else "as is"


def _pycognito_claim(case: Case, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """pycognito's answer to the challenge, with its a and its clock fixed."""
    srp = aws_srp.AWSSRP(
        username=case.user_id_for_srp,
        password=case.password,
        pool_id=POOL_ID,
        client_id="portal-client",
        client=object(),  # never called: only the arithmetic is used
    )
    srp.small_a_value = case.small_a
    srp.large_a_value = srp.calculate_a()
    clock = SimpleNamespace(utcnow=lambda: case.now)
    monkeypatch.setattr(aws_srp, "datetime", SimpleNamespace(datetime=clock))
    challenge = {
        "USERNAME": case.user_id_for_srp,
        "USER_ID_FOR_SRP": case.user_id_for_srp,
        "SALT": case.salt_hex,
        "SRP_B": case.srp_b_hex,
        "SECRET_BLOCK": case.secret_block_b64,
    }
    answer: dict[str, str] = srp.process_challenge(challenge, srp.get_auth_params())
    answer["SRP_A"] = srp.get_auth_params()["SRP_A"]
    return answer


@pytest.fixture(scope="module")
def srp_page(chromium: Any) -> Iterator[Any]:
    tab = chromium.new_page()
    tab.route(f"{ORIGIN}/**", _serve_portal)
    tab.goto(f"{ORIGIN}/")
    yield tab
    tab.close()


def _serve_portal(route: Any) -> None:
    path = route.request.url.removeprefix(ORIGIN).split("?")[0]
    if path == "/":
        route.fulfill(body="<!doctype html><title>srp</title>", content_type="text/html")
        return
    file = (PORTAL / path.lstrip("/")).resolve()
    if not file.is_relative_to(PORTAL) or not file.is_file():
        route.fulfill(status=404)
        return
    content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    route.fulfill(body=file.read_bytes(), content_type=content_type)


def _srp_js(page: Any, function: str, argument: Any) -> Any:
    """Calls an export of srp.js in the page and returns its (awaited) result."""
    return page.evaluate(
        "async ([name, arg]) => (await import('/js/srp.js'))[name](arg)", [function, argument]
    )


def test_the_cases_cover_every_padding_rule() -> None:
    for value in ("A", "B", "u"):
        seen = {
            _padding(
                {
                    "A": aws_srp.long_to_hex(case.large_a),
                    "B": aws_srp.long_to_hex(aws_srp.hex_to_long(case.srp_b_hex)),
                    "u": case.u_hex,
                }[value]
            )
            for case in CASES
        }
        assert seen == {"odd length", "high bit", "as is"}, value
    assert {_padding(case.salt_hex) for case in CASES} == {"odd length", "high bit", "as is"}
    assert any(case.salt_hex.startswith("0") for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_password_claim_matches_pycognito(
    srp_page: Any, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _pycognito_claim(case, monkeypatch)
    claim = _srp_js(
        srp_page,
        "passwordClaim",
        {
            "userPoolId": POOL_ID,
            "userIdForSrp": case.user_id_for_srp,
            "password": case.password,
            "smallAHex": aws_srp.long_to_hex(case.small_a),
            "saltHex": case.salt_hex,
            "srpBHex": case.srp_b_hex,
            "secretBlockB64": case.secret_block_b64,
            "timestamp": expected["TIMESTAMP"],
        },
    )
    assert claim == {
        "srpAHex": expected["SRP_A"],
        "signatureB64": expected["PASSWORD_CLAIM_SIGNATURE"],
    }


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_timestamp_is_what_pycognito_sends(
    srp_page: Any, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _pycognito_claim(case, monkeypatch)["TIMESTAMP"]
    epoch_ms = case.now.replace(tzinfo=datetime.UTC).timestamp() * 1000
    assert (
        srp_page.evaluate(
            "async (ms) => (await import('/js/srp.js')).cognitoTimestamp(new Date(ms))", epoch_ms
        )
        == expected
    )


def test_timestamp_day_has_no_leading_zero(srp_page: Any) -> None:
    epoch_ms = datetime.datetime(2025, 11, 2, 9, 5, 7, tzinfo=datetime.UTC).timestamp() * 1000
    assert (
        srp_page.evaluate(
            "async (ms) => (await import('/js/srp.js')).cognitoTimestamp(new Date(ms))", epoch_ms
        )
        == "Sun Nov 2 09:05:07 UTC 2025"
    )


@pytest.mark.parametrize(
    "value",
    ["1", "7f", "80", "abc", "0abc", "F0", "00ff", "ff" * 384, aws_srp.N_HEX],
    ids=lambda value: f"{value[:6]}({len(value)})",
)
def test_pad_hex_matches_pycognito(srp_page: Any, value: str) -> None:
    assert _srp_js(srp_page, "padHex", value) == aws_srp.pad_hex(value)


def test_pad_hex_of_a_number_matches_pycognito(srp_page: Any) -> None:
    for number in (1, 0x7F, 0x80, 0xABC, BIG_N, BIG_N - 1):
        padded = srp_page.evaluate(
            "async (hex) => (await import('/js/srp.js')).padHex(BigInt('0x' + hex))",
            aws_srp.long_to_hex(number),
        )
        assert padded == aws_srp.pad_hex(number), number


def test_large_a_is_g_to_the_a(srp_page: Any) -> None:
    small_a = _secret("a0")
    assert _srp_js(srp_page, "largeAHex", aws_srp.long_to_hex(small_a)) == aws_srp.long_to_hex(
        pow(2, small_a, BIG_N)
    )


def test_random_secret_is_fresh_and_below_n(srp_page: Any) -> None:
    first, second = (_srp_js(srp_page, "randomSmallAHex", None) for _ in range(2))
    assert first != second
    assert 0 < aws_srp.hex_to_long(first) < BIG_N


def test_a_server_b_of_zero_mod_n_is_refused(srp_page: Any) -> None:
    error = srp_page.evaluate(
        """async (arg) => {
            try { await (await import('/js/srp.js')).passwordClaim(arg); return null; }
            catch (e) { return e.message; }
        }""",
        {
            "userPoolId": POOL_ID,
            "userIdForSrp": "alice",
            "password": "x",
            "smallAHex": "1234",
            "saltHex": "ab",
            "srpBHex": aws_srp.N_HEX,
            "secretBlockB64": REAL_SECRET_BLOCK,
            "timestamp": "Sun Nov 2 09:05:07 UTC 2025",
        },
    )
    assert error == "SRP safety check failed: B is zero."
