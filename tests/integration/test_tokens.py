"""Server tokens on this leg's database: through the library and the CLI.

SPEC "CLI" and "HTTP": a token's secret is printed once and stored hashed; `token list` shows
no secret; creating and revoking are events (without the secret), so replay rebuilds the
tokens; a revoked or expired token allows nothing; scopes are ordered read < write < admin.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from test_cli import Cli, base_env, one_error_line

from artifactstore import (
    AlreadyExistsError,
    ArtifactStore,
    InvalidInputError,
    LogIntegrityError,
    Token,
    TokenNotFoundError,
    cbor,
    schema,
)
from artifactstore.events import log
from artifactstore.events.model import TOKEN_CREATED, NewEvent

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(migrated_url: str, blob_root: Path, clock: Clock) -> Iterator[ArtifactStore]:
    """A store whose clock is `clock`."""
    with ArtifactStore.open(migrated_url, blob_root) as opened:
        yield ArtifactStore(opened.engine, opened.dataplane, actor="ops@host", now=clock)


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> Cli:
    """A CLI over a fresh, migrated database and an empty blob root."""
    return Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)


def every_stored_value(store: ArtifactStore) -> bytes:
    """Every value of every row of every table, as bytes, for a search for secrets."""
    found: list[bytes] = []
    with store.engine.connect() as connection:
        for table in schema.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                found.extend(v if isinstance(v, bytes) else str(v).encode() for v in row)
    return b"\n".join(found)


def test_create_returns_the_secret_and_the_store_keeps_only_its_hash(
    timed: ArtifactStore,
) -> None:
    token, secret = timed.create_token("ci-acme", "write", "acme/", timedelta(days=30))
    assert token == Token(
        name="ci-acme",
        scope="write",
        prefix="acme/",
        created_at="2026-12-01T12:00:00.000000Z",
        expires_at="2026-12-31T12:00:00.000000Z",
        revoked_at=None,
    )
    assert secret.startswith("as_ci-acme_") and len(secret) == len("as_ci-acme_") + 64
    assert timed.list_tokens() == [token]
    stored = every_stored_value(timed)
    random_part = secret.rpartition("_")[2]
    assert random_part.encode() not in stored
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored
    [event] = list(timed.tail_events())
    assert event.event_type == "v1.token.created"
    assert (event.package_id, event.actor) == (None, "ops@host")
    assert event.payload_value() == {
        "name": "ci-acme",
        "scope": "write",
        "prefix": "acme/",
        "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
        "expires_at": "2026-12-31T12:00:00.000000Z",
    }


def test_each_token_gets_its_own_random_secret(store: ArtifactStore) -> None:
    _, first = store.create_token("one", "read")
    _, second = store.create_token("two", "read")
    assert first.rpartition("_")[2] != second.rpartition("_")[2]


def test_authenticate_finds_the_token_of_a_genuine_secret_only(store: ArtifactStore) -> None:
    token, secret = store.create_token("reader", "read")
    _, other = store.create_token("writer", "write")
    assert store.authenticate_token(secret) == token
    forged = secret[:-1] + ("0" if secret[-1] != "0" else "1")
    swapped = f"as_reader_{other.rpartition('_')[2]}"
    for wrong in (forged, swapped, "as_nobody_" + "0" * 64, "", "Bearer " + secret, secret + "x"):
        assert store.authenticate_token(wrong) is None, wrong


def test_a_revoked_token_still_authenticates_but_allows_nothing(
    timed: ArtifactStore, clock: Clock
) -> None:
    _, secret = timed.create_token("ci", "admin")
    clock.now += timedelta(minutes=5)
    revoked = timed.revoke_token("ci")
    assert revoked.revoked_at == "2026-12-01T12:05:00.000000Z"
    found = timed.authenticate_token(secret)
    assert found == revoked
    assert not found.allows("read", "acme/app", clock.now)
    assert timed.list_tokens() == [revoked]


def test_an_expired_token_allows_nothing(timed: ArtifactStore, clock: Clock) -> None:
    _, secret = timed.create_token("short", "write", expires_in=timedelta(hours=1))
    found = timed.authenticate_token(secret)
    assert found is not None and found.allows("write", "any/name", clock.now)
    clock.now += timedelta(hours=1)
    assert not found.allows("read", "any/name", clock.now)


def test_revoking_again_changes_nothing_and_an_unknown_name_is_not_found(
    store: ArtifactStore,
) -> None:
    store.create_token("ci", "read")
    first = store.revoke_token("ci")
    assert store.revoke_token("ci") == first
    assert [e.event_type for e in store.tail_events()] == ["v1.token.created", "v1.token.revoked"]
    with pytest.raises(TokenNotFoundError, match="no token named 'nope'"):
        store.revoke_token("nope")


def test_a_name_is_never_reused(store: ArtifactStore) -> None:
    store.create_token("ci", "read")
    with pytest.raises(AlreadyExistsError, match="already exists"):
        store.create_token("ci", "admin")
    store.revoke_token("ci")
    with pytest.raises(AlreadyExistsError):
        store.create_token("ci", "read")
    assert len(list(store.tail_events())) == 2


@pytest.mark.parametrize(
    ("name", "scope", "prefix", "expires_in", "message"),
    [
        ("Upper", "read", None, None, "token name 'Upper'"),
        ("", "read", None, None, "token name ''"),
        ("-dash", "read", None, None, "token name '-dash'"),
        ("a" * 65, "read", None, None, "token name"),
        ("ci/x", "read", None, None, "token name"),
        ("ci", "root", None, None, "scope 'root'"),
        ("ci", "read", "", None, "prefix ''"),
        ("ci", "read", "Acme/", None, "prefix 'Acme/'"),
        ("ci", "read", None, timedelta(0), "longer than 0"),
        ("ci", "read", None, timedelta(days=-1), "longer than 0"),
        ("ci", "read", None, timedelta(days=999_999_999), "too long"),
    ],
)
def test_bad_input_changes_nothing(
    store: ArtifactStore,
    name: str,
    scope: str,
    prefix: str | None,
    expires_in: timedelta | None,
    message: str,
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.create_token(name, scope, prefix, expires_in)
    assert list(store.tail_events()) == []


def test_replay_rebuilds_the_tokens_and_check_names_a_changed_one(store: ArtifactStore) -> None:
    store.create_token("keep", "read", "acme/")
    store.create_token("gone", "write", expires_in=timedelta(days=1))
    store.revoke_token("gone")
    digest = store.state_digest()
    with store.engine.begin() as connection:
        connection.execute(schema.tokens.delete())
    assert store.list_tokens() == []
    assert not store.replay(check=True).identical
    report = store.replay()
    assert store.state_digest() == digest == report.digest_after
    assert [t.name for t in store.list_tokens()] == ["gone", "keep"]
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE tokens SET scope = 'admin' WHERE name = 'keep'"))
    assert store.replay(check=True).differences == ("tokens: token keep differs from the log",)
    store.replay()
    assert store.verify_all().ok


def test_the_log_check_refuses_a_token_created_twice(store: ArtifactStore) -> None:
    store.create_token("ci", "read")
    payload = {"name": "ci", "scope": "admin", "prefix": None, "expires_at": None}
    forged = NewEvent(
        str(uuid.uuid4()),
        TOKEN_CREATED,
        "2026-12-01T12:00:00.000000Z",
        "mallory",
        None,
        cbor.encode({**payload, "secret_sha256": "0" * 64}),
    )
    with store.engine.begin() as connection:
        log.write(connection, [forged])
    chain = store.verify_chain()
    assert chain.problem == "event 2: token ci: v1.token.created is not allowed on an active token"
    # The writer judges by the log too, and a log that breaks the rules is no ground to write on.
    with pytest.raises(LogIntegrityError, match="breaks the token rules"):
        store.create_token("other", "read")


def test_racing_creators_of_one_name_have_one_winner(migrated_url: str, blob_root: Path) -> None:
    env = {
        **os.environ,
        "ARTIFACTSTORE_DATABASE_URL": migrated_url,
        "ARTIFACTSTORE_STORAGE_LOCAL_ROOT": str(blob_root),
    }
    command = [sys.executable, "-m", "artifactstore", "token", "create", "ci", "--scope", "read"]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    codes = sorted(p.wait(timeout=120) for p in processes)
    for p in processes:
        assert p.stdout is not None and p.stderr is not None
        p.stdout.close()
        p.stderr.close()
    assert codes == [0, 2, 2, 2]
    with ArtifactStore.open(migrated_url, blob_root) as store:
        assert [t.name for t in store.list_tokens()] == ["ci"]
        assert store.verify_all().ok


def test_cli_create_prints_the_secret_once_and_never_again(cli: Cli) -> None:
    secret = cli.ok("token", "create", "ci-acme", "--scope", "write", "--prefix", "acme/").text
    secret = secret.strip()
    assert secret.startswith("as_ci-acme_")
    created = cli.ok("--json", "token", "create", "adm", "--scope", "admin", "--expires-in", "30d")
    document = created.json()
    assert isinstance(document, dict)
    assert document["secret"].startswith("as_adm_")
    assert (document["scope"], document["prefix"], document["revoked_at"]) == ("admin", None, None)
    listed = cli.ok("token", "list").text
    rows = [line.split("\t") for line in listed.splitlines()]
    assert [(r[0], r[1], r[2], r[4], r[5]) for r in rows] == [
        ("adm", "admin", "-", document["expires_at"], "-"),
        ("ci-acme", "write", "acme/", "-", "-"),
    ]
    as_json = cli.ok("--json", "token", "list").json()
    assert isinstance(as_json, list) and [t["name"] for t in as_json] == ["adm", "ci-acme"]
    revoked = cli.ok("token", "revoke", "ci-acme").text
    assert revoked.startswith("token ci-acme revoked at ")
    everything = [
        cli.ok("token", "list").out,
        cli.ok("--json", "token", "list").out,
        cli.ok("events").out,
        cli.ok("--json", "events").out,
        cli.ok("--json", "token", "revoke", "ci-acme").out,
    ]
    for secret_text in (secret, document["secret"]):
        for shown in everything:
            assert secret_text.rpartition("_")[2].encode() not in shown
    assert [t for _, t in cli.events()] == ["v1.token.created"] * 2 + ["v1.token.revoked"]
    assert cli.ok("verify", "--all").text.endswith(": ok\n")
    cli.ok("replay", "--check")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "Bad", "--scope", "read"), "token name 'Bad'"),
        (("create", "ci", "--scope", "root"), "'root' is not one of"),
        (("create", "ci"), "Missing option '--scope'"),
        (("create", "ci", "--scope", "read", "--expires-in", "3w"), "duration '3w'"),
        (("create", "ci", "--scope", "read", "--expires-in", "0"), "longer than 0"),
        (("create", "ci", "--scope", "read", "--prefix", "A/"), "prefix 'A/'"),
        (("create", "taken", "--scope", "read"), "token 'taken' already exists"),
        (("revoke", "nope"), "no token named 'nope'"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(cli: Cli, args: tuple[str, ...], message: str) -> None:
    secret = cli.ok("token", "create", "taken", "--scope", "read").text.strip()
    line = one_error_line(cli("token", *args), 2)
    assert message in line
    assert secret.rpartition("_")[2] not in line
    assert [t for _, t in cli.events()] == ["v1.token.created"]
