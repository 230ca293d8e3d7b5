"""Retention: when a package expires, given its class. Pure.

The five classes are seeded by the first migration (SPEC "Retention class"). A package is
assigned its class when it is created; its expiry is fixed when it is finalized. Enforcement
(deleting expired packages) comes in a later stage.
"""

from __future__ import annotations

from datetime import timedelta

from artifactstore.manifest.model import format_timestamp, parse_timestamp

DEFAULT_CLASS = "standard"


def expires_at(finalized_at: str, keep_days: int | None) -> str | None:
    """The expiry of a package finalized at finalized_at, or None if its class keeps forever."""
    if keep_days is None:
        return None
    return format_timestamp(parse_timestamp(finalized_at) + timedelta(days=keep_days))
