"""What the CLI writes: JSON documents, human sizes, and a progress line for long operations.

Kept apart from `cli.py` so the commands read as parse, call, render. Results go to stdout;
progress goes to stderr and only when stderr is a terminal, so pipes and CI logs see nothing
but the result.
"""

from __future__ import annotations

import json
import sys
import time
from types import TracebackType
from typing import Self, TextIO

import click

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
# Redraw at most this often: a terminal cannot show more, and each redraw costs a write.
_REDRAW_SECONDS = 0.1


def emit_json(value: object) -> None:
    """Print value as one line of JSON with sorted keys (stable for scripts and diffs)."""
    click.echo(json.dumps(value, sort_keys=True, ensure_ascii=False))


def human_bytes(count: float) -> str:
    """A byte count in binary units with one decimal: '1.5 MiB'."""
    for unit in _UNITS:
        if abs(count) < 1024 or unit == _UNITS[-1]:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable: the loop returns at the last unit")


class Progress:
    """A one-line 'files and bytes, with rate' meter on stderr; silent unless it is a terminal.

    Use as a context manager; call `advance(size)` once per finished file.
    """

    def __init__(
        self, label: str, total_files: int, total_bytes: int, stream: TextIO | None = None
    ) -> None:
        self._label = label
        self._total_files = total_files
        self._total_bytes = total_bytes
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty()
        self._files = 0
        self._bytes = 0
        self._started = time.monotonic()
        self._drawn_at = 0.0

    @classmethod
    def is_wanted(cls) -> bool:
        """True when stderr is a terminal, so callers skip work that only feeds the meter."""
        return sys.stderr.isatty()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._enabled and self._drawn_at:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()

    def advance(self, size: int) -> None:
        """Count one more file of size bytes and redraw if enough time has passed."""
        self._files += 1
        self._bytes += size
        now = time.monotonic()
        if self._enabled and now - self._drawn_at >= _REDRAW_SECONDS:
            self._drawn_at = now
            self._draw()

    def _draw(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        line = (
            f"{self._label}: {self._files}/{self._total_files} files, "
            f"{human_bytes(self._bytes)}/{human_bytes(self._total_bytes)}, "
            f"{human_bytes(self._bytes / elapsed)}/s"
        )
        # \r and erase-to-end-of-line redraw in place without scrolling the terminal.
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()
