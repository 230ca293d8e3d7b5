"""The database error boundary: SQLAlchemy and driver errors become ours here, and only here.

Every path that talks to the registry database (the store's transactions, opening a store,
following the log, migrating) runs inside `errors(url)`, the way httpx maps its transport's
errors at one edge: a unique or foreign-key violation becomes ConflictError (two writers
raced), anything else DatabaseError, with the URL's password hidden and the driver's message
cut to its first line (the rest can quote SQL and parameters).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy.exc

from artifactstore.config import redact_url
from artifactstore.errors import ConflictError, DatabaseError


@contextmanager
def errors(redacted_url: str, doing: str = "") -> Iterator[None]:
    """Translate database errors raised inside the block; doing says what failed ('migrate')."""
    try:
        yield
    except sqlalchemy.exc.IntegrityError as exc:
        raise ConflictError(f"a concurrent change conflicted with this one: {reason(exc)}") from exc
    except sqlalchemy.exc.SQLAlchemyError as exc:
        what = f"cannot {doing} database" if doing else "database"
        raise DatabaseError(f"{what} {redacted_url}: {reason(exc)}") from exc


def reason(exc: sqlalchemy.exc.SQLAlchemyError) -> str:
    """The driver's message without SQL text or parameters (which may hold secrets)."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return redact_url(text[0]) if text else type(exc).__name__
