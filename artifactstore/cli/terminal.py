"""What the CLI does differently on a terminal: the progress line, and binary refused.

Progress goes to stderr and only when stderr is a terminal (and not -q), so pipes and CI logs
see nothing but the result; binary bytes (`show --format cbor`, `cat` of a binary file) are
not written to a terminal unless --force is given.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Self, TextIO

import click

from artifactstore.cli.output import human_bytes

# Redraw at most this often: a terminal cannot show more, and each redraw costs a write.
_REDRAW_SECONDS = 0.1


SNIFF_BYTES = 8192
"""How much of a file `cat` looks at to decide whether it is binary."""


def is_binary(head: bytes) -> bool:
    """True if head holds a NUL byte or is not UTF-8 (a sequence cut at its end is allowed)."""
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Only a multi-byte character cut by the end of head is not a sign of binary.
        return not (exc.reason == "unexpected end of data" and exc.end == len(head))
    return False


def refuse_binary_on_terminal(what: str) -> None:
    """Exit 2 if stdout is a terminal: binary bytes there garble it and help no one."""
    if sys.stdout.isatty():
        raise click.UsageError(
            f"refusing to write {what} to a terminal; redirect stdout, pipe it, or use --force"
        )


class Progress:
    """A one-line 'files and bytes, with rate' meter on stderr; silent unless it is a terminal
    (and always with quiet, -q).

    Use as a context manager; call `advance(size)` once per finished file. The totals are
    given here or, once known, to `start`.
    """

    def __init__(
        self,
        label: str,
        total_files: int = 0,
        total_bytes: int = 0,
        stream: TextIO | None = None,
        *,
        quiet: bool = False,
    ) -> None:
        self._label = label
        self._total_files = total_files
        self._total_bytes = total_bytes
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() and not quiet
        self._files = 0
        self._bytes = 0
        self._started = time.monotonic()
        self._drawn_at = 0.0

    @classmethod
    def is_wanted(cls, quiet: bool = False) -> bool:
        """True when stderr is a terminal and not quiet, so callers skip work that only feeds
        the meter."""
        return sys.stderr.isatty() and not quiet

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

    def start(self, total_files: int, total_bytes: int) -> None:
        """Set the totals the meter counts towards."""
        self._total_files = total_files
        self._total_bytes = total_bytes

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
