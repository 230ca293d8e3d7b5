"""A settable now, for stores whose time a test moves (the `timed` fixture)."""

from __future__ import annotations

from datetime import datetime


class Clock:
    """Returns `now` when called; a test sets `now` to move the store's time."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now
