"""Facts about the machine a run happened on, for the head of the report."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

_FLAGS = ("sha_ni", "avx2", "avx512f")


def facts(scratch: Path) -> list[tuple[str, str]]:
    """(name, value) pairs: CPU, cores, ISA flags, memory, filesystem, load, kernel, Python."""
    cpuinfo = _read("/proc/cpuinfo")
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor() or "?",
    )
    flags = next(
        (line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), []
    )
    present = [flag for flag in _FLAGS if flag in flags]
    absent = [flag for flag in _FLAGS if flag not in flags]
    memory = next((line.split()[1] for line in _read("/proc/meminfo") if "MemTotal" in line), "")
    return [
        ("CPU", model),
        ("cores (os.cpu_count)", str(os.cpu_count())),
        ("CPU flags", f"has {', '.join(present) or 'none'}; lacks {', '.join(absent) or 'none'}"),
        ("memory", f"{int(memory) / 1024 / 1024:.1f} GiB" if memory else "?"),
        ("scratch filesystem", _filesystem(scratch)),
        ("load average at the start (1, 5, 15 min)", " ".join(f"{n:.2f}" for n in os.getloadavg())),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
    ]


def _read(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _filesystem(path: Path) -> str:
    done = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "-T", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) < 3:
        return "?"
    return f"{fields[0]} on {fields[1]} ({fields[2]}), at {path}"
