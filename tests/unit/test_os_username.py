"""The desktop's OS user name (``dcv_username``) fits a Windows local account: at most 20
characters (https://learn.microsoft.com/en-us/windows/win32/api/lmaccess/ns-lmaccess-user_info_0),
and stays one name per owner when a long name has to be shortened."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from dcvfleet.adapters import MAX_OS_USERNAME, dcv_username

# The agent's own check of a secret's user name (agent/dcvfleet_agent/config.py USERNAME_RE),
# narrowed to what dcv_username may produce.
OS_SAFE = re.compile(r"^dcv[a-z0-9]+$")


def test_a_short_owner_name_keeps_its_readable_form() -> None:
    assert dcv_username("Alice.Smith") == "dcvalicesmith"
    assert dcv_username("") == "dcvuser"
    assert dcv_username("@@@") == "dcvuser"


def test_a_name_of_exactly_twenty_characters_is_kept_whole() -> None:
    owner = "a" * (MAX_OS_USERNAME - 3)
    assert dcv_username(owner) == "dcv" + owner


def test_a_long_owner_name_is_capped_at_twenty_characters_with_a_hash() -> None:
    name = dcv_username("maximilian.von-hohenstaufen@example.com")
    assert len(name) == MAX_OS_USERNAME == 20
    assert name.startswith("dcvmaximilianv")
    assert OS_SAFE.match(name)


def test_two_long_names_with_one_prefix_get_different_accounts() -> None:
    first = dcv_username("engineering.team.member.one@example.com")
    second = dcv_username("engineering.team.member.two@example.com")
    assert len(first) <= MAX_OS_USERNAME
    assert len(second) <= MAX_OS_USERNAME
    assert first != second


def test_the_name_is_the_same_every_time() -> None:
    owner = "a-very-long-cognito-user-name-0123456789"
    assert dcv_username(owner) == dcv_username(owner)


@given(st.text(max_size=128))
def test_every_owner_name_gives_an_os_safe_name_of_at_most_twenty_characters(owner: str) -> None:
    name = dcv_username(owner)
    assert len(name) <= MAX_OS_USERNAME
    assert OS_SAFE.match(name), name
