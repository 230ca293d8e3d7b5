"""Find, and if allowed install, the programs the suite runs; report each one's version.

restic and b3sum come from Debian (`apt-get install`, as root); DVC comes from PyPI into its
own virtual environment, created on first use, so that its many dependencies never touch the
project's environment. A program that cannot be found or installed yields a reason instead of
a path, and the report shows the tool as missing with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Program:
    """An executable and its version line, or why it is missing (then path is None)."""

    path: Path | None
    version: str
    missing: str | None = None


def default_dvc_venv() -> Path:
    """Where DVC's own virtual environment lives unless --dvc-venv says otherwise."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "artifactstore-bench" / "dvc"


def version_of(argv: list[str]) -> str:
    """First line a program prints for its version flag, or '?' if it prints nothing."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return f"? ({exc})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def debian_program(name: str, package: str, version_flag: str, install: bool) -> Program:
    """A program from a Debian package, installed with apt-get if missing and allowed."""
    found = shutil.which(name)
    if found is None and install:
        found = _apt_install(package, name)
    if found is None:
        how = "apt-get install failed or not allowed" if install else "--no-install given"
        return Program(None, "", f"`{name}` not on PATH ({how})")
    return Program(Path(found), version_of([found, version_flag]))


def _apt_install(package: str, name: str) -> str | None:
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "install", "-y", "-q", package], env=env, capture_output=True, check=False)
    return shutil.which(name)


def dvc_program(venv: Path, install: bool) -> Program:
    """DVC from its own virtual environment, created with pip if missing and allowed."""
    dvc = venv / "bin" / "dvc"
    if not dvc.exists() and install:
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "pip"), "install", "--quiet", "dvc"],
        ]
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-1:] or ["?"]
                return Program(None, "", f"installing DVC into {venv} failed: {tail[0]}")
    if not dvc.exists():
        how = "--no-install given" if not install else "installation did not produce it"
        return Program(None, "", f"no DVC at {dvc} ({how})")
    return Program(dvc, f"dvc {version_of([str(dvc), '--version'])}")


def path_program(name: str, version_flag: str = "--version") -> Program:
    """A program looked up on PATH and never installed by the suite (cp, git, sha256sum)."""
    found = shutil.which(name)
    if found is None:
        return Program(None, "", f"`{name}` not on PATH")
    return Program(Path(found), version_of([found, version_flag]))
