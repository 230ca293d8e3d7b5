"""Pure parts of server tokens: DURATION parsing and what a token allows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from artifactstore import InvalidInputError, Token, parse_duration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOKEN = Token(
    name="ci",
    scope="write",
    prefix=None,
    created_at="2026-12-01T00:00:00.000000Z",
    expires_at=None,
    revoked_at=None,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("90m", timedelta(minutes=90)),
        ("12h", timedelta(hours=12)),
        ("30d", timedelta(days=30)),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
    ],
)
def test_durations_are_an_integer_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "30", "d", "30D", "3w", "1.5h", "-1d", "+1d", " 1d", "1d ", "1h30m", "\u0661d", "1 d"],
)
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(InvalidInputError, match="is not an integer with a unit"):
        parse_duration(text)


def test_a_duration_past_what_a_timedelta_holds_is_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="too long"):
        parse_duration("9999999999d")


@pytest.mark.parametrize(
    ("scope", "needed", "allowed"),
    [
        ("read", "read", True),
        ("read", "write", False),
        ("read", "admin", False),
        ("write", "read", True),
        ("write", "write", True),
        ("write", "admin", False),
        ("admin", "read", True),
        ("admin", "write", True),
        ("admin", "admin", True),
    ],
)
def test_scopes_are_ordered_read_write_admin(scope: str, needed: str, allowed: bool) -> None:
    assert replace(TOKEN, scope=scope).allows(needed, "acme/app", NOW) is allowed


def test_a_prefix_confines_the_token_to_names_that_begin_with_it() -> None:
    confined = replace(TOKEN, prefix="acme/")
    assert confined.allows("write", "acme/app", NOW)
    assert confined.allows("write", "acme/team/app", NOW)
    assert not confined.allows("write", "acme-evil/app", NOW)
    assert not confined.allows("read", "other/app", NOW)
    assert not confined.allows("read", "acme", NOW)
    # A call about no one package (a blob upload) is judged by scope and validity alone.
    assert confined.allows("write", None, NOW)


def test_a_token_expires_at_its_expiry() -> None:
    expiring = replace(TOKEN, expires_at="2026-12-01T12:00:00.000000Z")
    assert expiring.allows("read", "acme/app", NOW - timedelta(microseconds=1))
    assert not expiring.allows("read", "acme/app", NOW)
    assert not expiring.allows("read", None, NOW + timedelta(days=1))


def test_a_revoked_token_allows_nothing() -> None:
    revoked = replace(TOKEN, scope="admin", revoked_at="2026-12-01T11:00:00.000000Z")
    assert not revoked.allows("read", "acme/app", NOW)
    assert not revoked.allows("read", None, NOW)


def test_an_unknown_scope_is_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="not one of read, write, admin"):
        TOKEN.allows("root", "acme/app", NOW)
