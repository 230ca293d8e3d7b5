"""Run commands and measure them: wall time and peak resident set size of the process tree.

Every timed step is a subprocess, so artifactstore, the limits and the peers are measured the
same way, start-up included, as a CI job would see them. Peak RSS is the "Maximum resident
set size" GNU time reports (`/usr/bin/time -f %M`): the largest RSS of the command and every
descendant it waited for. The harness cannot ask the kernel itself: a child forked from this
big Python process inherits its high-water mark across exec, so without GNU time the figure
is `os.wait4`'s and includes the harness (the report says so).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DROP_CACHES = Path("/proc/sys/vm/drop_caches")


@dataclass(frozen=True, slots=True)
class Command:
    """One process to run: argv, working directory and extra environment."""

    argv: tuple[str, ...]
    cwd: Path | None = None
    env: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True, slots=True)
class Sample:
    """Wall seconds and peak RSS (KiB) of one timed step, which may be several commands."""

    seconds: float
    peak_rss_kib: int


class CommandError(Exception):
    """A command exited non-zero; `brief` is its exit code and the tail of its stderr."""

    def __init__(self, command: Command, code: int, tail: str) -> None:
        super().__init__(f"{command} exited {code}: {tail}")
        self.brief = f"exit {code}: {tail}"


@dataclass(frozen=True, slots=True)
class Runner:
    """Runs commands under GNU time when `gnu_time` is set, else measures RSS via os.wait4."""

    gnu_time: Path | None

    def run(self, command: Command) -> Sample:
        """Run command to completion and measure it; raise CommandError if it fails."""
        env = {**os.environ, **dict(command.env)}
        with tempfile.NamedTemporaryFile() as rss, tempfile.TemporaryFile() as stderr:
            argv = command.argv
            if self.gnu_time is not None:
                argv = (str(self.gnu_time), "-f", "%M", "-o", rss.name, *argv)
            started = time.perf_counter()
            process = subprocess.Popen(
                argv,
                cwd=command.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            # wait4 rather than Popen.wait: it returns the rusage too.
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode != 0:
                stderr.seek(0)
                tail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
                raise CommandError(command, process.returncode, " | ".join(tail))
            peak = usage.ru_maxrss
            if self.gnu_time is not None:
                peak = int(Path(rss.name).read_text().split()[-1])
        return Sample(seconds, peak)

    def run_all(self, commands: Sequence[Command]) -> Sample:
        """Run commands in order as one step: summed wall time, the largest peak RSS."""
        if not commands:
            return Sample(0.0, 0)
        samples = [self.run(command) for command in commands]
        return Sample(sum(s.seconds for s in samples), max(s.peak_rss_kib for s in samples))


def can_drop_caches() -> bool:
    """Whether this process may write /proc/sys/vm/drop_caches (root on Linux)."""
    return os.access(DROP_CACHES, os.W_OK)


def drop_caches() -> None:
    """Write dirty pages out, then drop the page cache, dentries and inodes."""
    os.sync()
    DROP_CACHES.write_text("3\n")
