"""What makes a log valid: gapless sequences, an unbroken hash chain, and the package rules.

A pure fold over events in sequence order. `LogChecker` is what `verify --all` and `replay`
run over the whole log; `next_state` is the package rule alone, which the writer also applies
to the events it is about to append, taking the current state from the log itself (never
from a view row, which anyone with database access could edit).

The package rules (SPEC "Concepts"): a package is created once; files are added and the
package finalized or abandoned only while it is open; after its finalize only retention
events, a hold placed and released, and one end (expired or deleted, never while held) may
follow; after an end or an abandon nothing. A blob's deletion names no package. The token
rules: a token name is created once (never reused, even after its revocation) and revoked only
while active; token events name no package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from artifactstore import schema
from artifactstore.cbor import decode_strict
from artifactstore.errors import ManifestError
from artifactstore.events.model import (
    BLOB_DELETED,
    FILE_INGESTED,
    HOLD_PLACED,
    HOLD_RELEASED,
    PACKAGE_ABANDONED,
    PACKAGE_CREATED,
    PACKAGE_DELETED,
    PACKAGE_EXPIRED,
    PACKAGE_FINALIZED,
    RETENTION_ASSIGNED,
    TOKEN_CREATED,
    TOKEN_EVENTS,
    TOKEN_REVOKED,
    Event,
    digest_event,
)

OPEN, FINALIZED, ABANDONED = "open", "finalized", "abandoned"
HELD = "held"
"""A finalized package under a hold: it cannot end until the hold is released."""
EXPIRED, DELETED = "expired", "deleted"
ENDED = frozenset({ABANDONED, EXPIRED, DELETED})
ACTIVE, REVOKED = "active", "revoked"

_TRANSITIONS: dict[str, dict[str | None, str]] = {
    PACKAGE_CREATED: {None: OPEN},
    RETENTION_ASSIGNED: {OPEN: OPEN, FINALIZED: FINALIZED, HELD: HELD},
    FILE_INGESTED: {OPEN: OPEN},
    PACKAGE_FINALIZED: {OPEN: FINALIZED},
    PACKAGE_ABANDONED: {OPEN: ABANDONED},
    HOLD_PLACED: {FINALIZED: HELD},
    HOLD_RELEASED: {HELD: FINALIZED},
    PACKAGE_EXPIRED: {FINALIZED: EXPIRED},
    PACKAGE_DELETED: {FINALIZED: DELETED},
}

LIFECYCLE = tuple(t for t in _TRANSITIONS if t not in (RETENTION_ASSIGNED, FILE_INGESTED))
"""The event types that change a package's state (the others keep it)."""


class RuleError(Exception):
    """An event that the package rules do not allow in the package's current state."""


def next_state(state: str | None, event_type: str) -> str:
    """The package state after an event of event_type; RuleError if the rules forbid it.

    state is None for a package the log has never mentioned.
    """
    allowed = _TRANSITIONS.get(event_type)
    if allowed is None:
        raise RuleError(f"unknown event type {event_type!r}")
    if state not in allowed:
        where = "an unknown package" if state is None else f"an {state} package"
        if state in (FINALIZED, HELD):
            where = "a finalized package" if state == FINALIZED else "a held package"
        raise RuleError(f"{event_type} is not allowed on {where}")
    return allowed[state]


_TOKEN_TRANSITIONS: dict[str, dict[str | None, str]] = {
    TOKEN_CREATED: {None: ACTIVE},
    TOKEN_REVOKED: {ACTIVE: REVOKED},
}


def next_token_state(state: str | None, event_type: str) -> str:
    """The token state after a token event; RuleError if the token rules forbid it.

    state is None for a token name the log has never mentioned.
    """
    allowed = _TOKEN_TRANSITIONS[event_type]
    if state not in allowed:
        where = {None: "an unknown token", ACTIVE: "an active token"}.get(state, "a revoked token")
        raise RuleError(f"{event_type} is not allowed on {where}")
    return allowed[state]


def token_name(payload: bytes) -> str:
    """The token name a token event's payload names; RuleError if it names none."""
    try:
        value = decode_strict(payload)
    except ManifestError as exc:
        raise RuleError(f"token event payload is not canonical CBOR: {exc}") from None
    name = value.get("name") if isinstance(value, dict) else None
    if not isinstance(name, str):
        raise RuleError("token event payload names no token")
    return name


@dataclass(frozen=True, slots=True)
class LogProblem:
    """The first thing wrong at one sequence; kind is 'chain' (bytes, gaps) or 'rule'."""

    sequence: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"event {self.sequence}: {self.message}"


@dataclass(slots=True)
class LogChecker:
    """Feed it every event in order; it reports each one that breaks the log.

    After a problem it carries on from the stored values (the next event chains from the
    stored digest, the sequence count from the stored sequence, a rule-breaking event leaves
    the package as it was), so a forced replay can skip bad events and keep going.
    `checkpoints` maps sequences to the chain digests (hex) a caller kept.
    """

    checkpoints: Mapping[int, str] = field(default_factory=dict)
    last_sequence: int = 0
    chain_digest: str = schema.GENESIS_CHAIN_DIGEST
    states: dict[str, str] = field(default_factory=dict)
    token_states: dict[str, str] = field(default_factory=dict)

    def check(self, event: Event) -> list[LogProblem]:
        """Check one event against everything before it; return its problems (usually none)."""
        problems: list[LogProblem] = []
        if event.sequence != self.last_sequence + 1:
            problems.append(
                LogProblem(
                    self.last_sequence + 1,
                    "chain",
                    f"missing from the log (the next stored event is {event.sequence})",
                )
            )
        expected = digest_event(self.chain_digest, event.sequence, event)
        if expected != event.chain_digest:
            problems.append(
                LogProblem(
                    event.sequence, "chain", f"{event.event_type} does not match its chain digest"
                )
            )
        kept = self.checkpoints.get(event.sequence)
        if kept is not None and kept != event.chain_digest:
            problems.append(
                LogProblem(
                    event.sequence,
                    "chain",
                    f"chain digest is blake3:{event.chain_digest}, "
                    f"the checkpoint says blake3:{kept} (the log was rewritten)",
                )
            )
        self.last_sequence = event.sequence
        self.chain_digest = event.chain_digest
        if event.event_type in TOKEN_EVENTS:
            problems.extend(self._check_token(event))
        elif event.event_type == BLOB_DELETED:
            if event.package_id is not None:
                problems.append(
                    LogProblem(event.sequence, "rule", f"{BLOB_DELETED} names a package")
                )
        elif event.package_id is not None:
            try:
                self.states[event.package_id] = next_state(
                    self.states.get(event.package_id), event.event_type
                )
            except RuleError as exc:
                problems.append(
                    LogProblem(event.sequence, "rule", f"package {event.package_id}: {exc}")
                )
        return problems

    def _check_token(self, event: Event) -> list[LogProblem]:
        try:
            if event.package_id is not None:
                raise RuleError(f"{event.event_type} names package {event.package_id}")
            name = token_name(event.payload)
        except RuleError as exc:
            return [LogProblem(event.sequence, "rule", str(exc))]
        try:
            state = next_token_state(self.token_states.get(name), event.event_type)
        except RuleError as exc:
            return [LogProblem(event.sequence, "rule", f"token {name}: {exc}")]
        self.token_states[name] = state
        return []

    def finish(self, head_sequence: int, head_digest: str) -> list[LogProblem]:
        """Problems once every event up to the head was fed: head mismatch, unseen checkpoints."""
        problems: list[LogProblem] = []
        if (head_sequence, head_digest) != (self.last_sequence, self.chain_digest):
            problems.append(
                LogProblem(
                    head_sequence,
                    "chain",
                    f"the log head says sequence {head_sequence} but the log ends at "
                    f"{self.last_sequence}",
                )
            )
        for sequence in sorted(s for s in self.checkpoints if s > self.last_sequence):
            problems.append(
                LogProblem(
                    sequence,
                    "chain",
                    f"a checkpoint names it but the log ends at {self.last_sequence}",
                )
            )
        return problems
