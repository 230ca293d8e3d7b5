"""Server tokens: create one (its secret shown once), list, revoke, and authenticate a secret.

A token has a name, a scope (`read` < `write` < `admin`), an optional package-name prefix and
an optional expiry. Its secret is `as_<name>_<64 hex digits>`: 256 random bits, with the name
in front so that a secret is checked against the one row its name keys, and so that secret
scanners can spot it. The database and the log keep only the SHA-256 of the secret. A slow
password hash (bcrypt, argon2) guards low-entropy passwords against guessing; 256 random bits
cannot be guessed, so it would only slow every request down. Hashes are compared with
`hmac.compare_digest`, in constant time.

Creating and revoking a token are events (`v1.token.created`, `v1.token.revoked`, no secret in
either), so replay rebuilds the `tokens` view, and the writer checks the token rules against
the log, as it does the package rules (`events.checker`). The HTTP layer authenticates a
request's bearer secret with `authenticate` and asks the token whether it `allows` the call;
events it writes on a token's behalf name `token:<name>` as their actor.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from artifactstore import cbor, schema
from artifactstore.database import Database
from artifactstore.errors import (
    AlreadyExistsError,
    InvalidInputError,
    LogIntegrityError,
    ManifestError,
    TokenNotFoundError,
)
from artifactstore.events.checker import ACTIVE, RuleError, next_token_state, token_name
from artifactstore.events.model import TOKEN_CREATED, TOKEN_EVENTS, TOKEN_REVOKED
from artifactstore.manifest.model import format_timestamp, parse_timestamp

TOKEN_SCOPES = ("read", "write", "admin")
"""The scopes, weakest first: each allows what the ones before it allow."""

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_PREFIX = re.compile(r"[a-z0-9._/-]{1,255}")
_SECRET = re.compile(r"as_([a-z0-9][a-z0-9._-]{0,63})_([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class Token:
    """A server token as the store lists it: never its secret, nor the secret's hash."""

    name: str
    scope: str
    prefix: str | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None

    def allows(self, scope: str, package_name: str | None, now: datetime) -> bool:
        """True if the token may act with scope on package_name at now.

        False once revoked or expired (from expires_at on), for a scope above its own, and for
        a name its prefix does not begin. package_name None is a call about no one package (a
        blob upload): only scope, expiry and revocation count then.
        """
        needed = TOKEN_SCOPES.index(check_scope(scope))
        if self.revoked_at is not None or TOKEN_SCOPES.index(self.scope) < needed:
            return False
        if self.expires_at is not None and now >= parse_timestamp(self.expires_at):
            return False
        return self.prefix is None or package_name is None or package_name.startswith(self.prefix)


def check_scope(scope: str) -> str:
    """Return scope if it is one of TOKEN_SCOPES; InvalidInputError otherwise."""
    if scope not in TOKEN_SCOPES:
        raise InvalidInputError(f"token scope {scope!r} is not one of read, write, admin")
    return scope


def _check_name(name: str) -> str:
    """Return name if it is a valid token name (1-64 of a-z 0-9 . _ -, starting with a letter
    or digit); InvalidInputError otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"token name {name!r} is not 1 to 64 lowercase letters, digits, '.', '_' or '-' "
            "starting with a letter or digit"
        )
    return name


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise InvalidInputError(
            f"token prefix {prefix!r} is not the start of a package name (1 to 255 of "
            "lowercase letters, digits, '.', '_', '-' and '/')"
        )
    return prefix


def _sha256(secret: str) -> str:
    """The SHA-256 (hex) of a secret: what the database keeps instead of it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create(
    db: Database,
    name: str,
    scope: str,
    prefix: str | None,
    expires_in: timedelta | None,
    actor: str | None,
) -> tuple[Token, str]:
    """Create a token; returns it and its secret, which nothing keeps.

    AlreadyExistsError if the name was ever used (a revoked token's name is not reused).
    """
    _check_name(name)
    check_scope(scope)
    if prefix is not None:
        _check_prefix(prefix)
    now = db.now()
    expires_at = None if expires_in is None else _expiry(now, expires_in)
    secret = f"as_{name}_{secrets.token_hex(32)}"
    payload = {
        "name": name,
        "scope": scope,
        "prefix": prefix,
        "secret_sha256": _sha256(secret),
        "expires_at": expires_at,
    }
    event = db.event(TOKEN_CREATED, None, cbor.encode(payload), actor, format_timestamp(now))
    with db.write() as connection:
        if name in _states(connection):
            raise AlreadyExistsError(
                f"token {name!r} already exists (a revoked token's name is not reused either)"
            )
        db.record(connection, [event])
        return _get(connection, name), secret


def _expiry(now: datetime, expires_in: timedelta) -> str:
    if expires_in <= timedelta(0):
        raise InvalidInputError("a token's lifetime must be longer than 0")
    try:
        return format_timestamp(now + expires_in)
    except (OverflowError, ManifestError):
        raise InvalidInputError(f"a token's lifetime of {expires_in} is too long") from None


def list_tokens(db: Database) -> list[Token]:
    """Every token, revoked and expired ones too, by name."""
    with db.read() as connection:
        rows = connection.execute(select(schema.tokens).order_by(schema.tokens.c.name))
        return [_token(row) for row in rows]


def revoke(db: Database, name: str, actor: str | None) -> Token:
    """Revoke a token for good; revoking it again changes nothing. TokenNotFoundError if the
    name is unknown."""
    with db.write() as connection:
        state = _states(connection).get(name)
        if state is None:
            raise TokenNotFoundError(
                f"no token named {name!r}; 'artifactstore token list' shows them"
            )
        if state == ACTIVE:
            payload = cbor.encode({"name": name})
            db.record(connection, [db.event(TOKEN_REVOKED, None, payload, actor)])
        return _get(connection, name)


def authenticate(db: Database, secret: str) -> Token | None:
    """The token whose secret this is (even revoked or expired: ask `allows`), or None."""
    match = _SECRET.fullmatch(secret) if isinstance(secret, str) else None
    if match is None:
        return None
    with db.read() as connection:
        row = connection.execute(
            select(schema.tokens).where(schema.tokens.c.name == match[1])
        ).first()
    if row is None or not hmac.compare_digest(row.secret_sha256, _sha256(secret)):
        return None
    return _token(row)


def _states(connection: Connection) -> dict[str, str]:
    """Each token name's state ('active' or 'revoked') as the log says, not the views."""
    events = schema.events
    rows = connection.execute(
        select(events.c.event_type, events.c.payload)
        .where(events.c.package_id.is_(None), events.c.event_type.in_(TOKEN_EVENTS))
        .order_by(events.c.sequence)
    )
    states: dict[str, str] = {}
    try:
        for event_type, payload in rows:
            name = token_name(payload)
            states[name] = next_token_state(states.get(name), event_type)
    except RuleError as exc:
        raise LogIntegrityError(
            f"the event log breaks the token rules ({exc}); run 'artifactstore verify --all'"
        ) from None
    return states


def _get(connection: Connection, name: str) -> Token:
    row = connection.execute(select(schema.tokens).where(schema.tokens.c.name == name)).first()
    if row is None:
        raise TokenNotFoundError(
            f"no token named {name!r} in the views; run 'artifactstore replay'"
        )
    return _token(row)


def _token(row: Any) -> Token:
    return Token(
        name=row.name,
        scope=row.scope,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
