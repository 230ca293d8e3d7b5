"""Deterministic workloads: the directory trees every tool is timed on.

Three trees, each from a fixed seed so that every run, on every machine, sees the same bytes:

- `big`: one incompressible file of 1 GiB;
- `small`: 10,000 files of 4 KiB in 100 directories;
- `mixed`: a build-output-like tree of about 2,000 files with log-normal sizes (median
  16 KiB), a few of 20-100 MiB, about 500 MiB in all, where about 20 % of the files repeat
  another file's content and the files under `bin/` are executable.

`scale` shrinks a workload for quick runs: file counts and the big sizes are multiplied by it
(with small floors so that every shape survives), the median size of a mixed file is not.
Content is random bytes, so no tool gains from compression.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KIB = 1 << 10
MIB = 1 << 20
SEED = 20_261_129
NAMES = ("big", "small", "mixed")

_MIXED_DIRS = (
    ("bin", ""),
    ("lib", ".so"),
    ("obj", ".o"),
    ("include", ".h"),
    ("reports", ".xml"),
    ("share/doc", ".html"),
    ("wheels", ".whl"),
)


@dataclass(frozen=True, slots=True)
class Workload:
    """A generated tree: its name, where it is, and how many files and bytes it holds."""

    name: str
    root: Path
    files: int
    size: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class _File:
    path: str
    size: int
    seed: int
    executable: bool


def generate(name: str, root: Path, scale: float = 1.0) -> Workload:
    """Write workload `name` into the new directory root at the given scale and describe it."""
    plans: dict[str, Callable[[float], list[_File]]] = {
        "big": _plan_big,
        "small": _plan_small,
        "mixed": _plan_mixed,
    }
    files = plans[name](scale)
    root.mkdir(parents=True)
    for file in files:
        _write(root / file.path, file)
    seeds = [f.seed for f in files]
    return Workload(
        name, root, len(files), sum(f.size for f in files), len(seeds) - len(set(seeds))
    )


def _plan_big(scale: float) -> list[_File]:
    size = max(MIB, round(1024 * MIB * scale))
    return [_File("big.bin", size, SEED, executable=False)]


def _plan_small(scale: float) -> list[_File]:
    count = max(10, round(10_000 * scale))
    directories = min(100, count)
    return [
        _File(f"d{n % directories:03d}/f{n:05d}.bin", 4 * KIB, SEED + 1 + n, executable=False)
        for n in range(count)
    ]


def _plan_mixed(scale: float) -> list[_File]:
    rng = random.Random(SEED)
    count = max(20, round(2_000 * scale))
    files: list[_File] = []
    originals: list[_File] = []
    for n in range(count):
        directory, extension = _MIXED_DIRS[n % len(_MIXED_DIRS)]
        path = f"{directory}/g{n % 9}/f{n:04d}{extension}"
        executable = directory == "bin"
        if originals and rng.random() < 0.2:
            # A duplicate takes the content (seed and size) of an earlier original file.
            source = rng.choice(originals)
            files.append(_File(path, source.size, source.seed, executable))
            continue
        size = min(max(round(rng.lognormvariate(math.log(16 * KIB), 1.6)), 64), 4 * MIB)
        originals.append(_File(path, size, SEED + 1_000_000 + n, executable))
        files.append(originals[-1])
    remaining = round(500 * MIB * scale) - sum(f.size for f in files)
    large: list[int] = []
    while remaining >= 20 * MIB * scale or not large:
        size = min(round(rng.uniform(20, 100) * MIB * scale), max(remaining, 1))
        large.append(size)
        remaining -= size
    for n, size in enumerate(large):
        files.append(_File(f"models/m{n}.bin", size, SEED + 2_000_000 + n, executable=False))
    return files


def _write(path: Path, file: _File) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(file.seed)
    with path.open("wb") as out:
        for offset in range(0, file.size, MIB):
            out.write(rng.randbytes(min(MIB, file.size - offset)))
    if file.executable:
        path.chmod(0o755)


def tree_files(root: Path) -> list[Path]:
    """Every regular file under root, sorted, for tools that walk the tree themselves."""
    found = [Path(top) / name for top, _, names in os.walk(root) for name in names]
    return sorted(found)
