"""Smoke test of the benchmark suite (benchmarks/, scripts/bench) on a tiny workload.

Proves the suite runs end to end and writes every table, without needing restic or DVC: DVC
is pointed at an empty directory with installing forbidden, so it must show as missing, and
restic runs only if it happens to be installed. The numbers themselves are not checked.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "PERFORMANCE.md"
    argv = [
        str(ROOT / "scripts" / "bench"),
        "--quick",
        "--repeat=1",
        "--workloads=small",
        "--no-install",
        f"--dvc-venv={tmp_path / 'no-dvc'}",
        f"--scratch={tmp_path}",
        f"--out={out}",
    ]
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    for section in ("## Method", "## Machine and tools", "## Targets", "## Micro-benchmarks"):
        assert section in page
    assert "## Workload `small`" in page
    for operation in ("push", "re-push (unchanged)", "pull", "verify"):
        row = re.escape(f"| artifactstore | {operation} | ")
        assert re.search(row + r"[0-9]+\.[0-9]{3} \|", page), operation
    assert re.search(r"\| limit \| cp -r \+ sync \| [0-9]+\.[0-9]{3} \|", page)
    assert "| dvc | dvc | missing: no DVC at" in page
    assert not list(tmp_path.glob("artifactstore-bench-*")), "scratch directory left behind"


def test_workloads_are_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import workloads

    def fingerprint(root: Path) -> str:
        digest = hashlib.sha256()
        for path in workloads.tree_files(root):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    for name in workloads.NAMES:
        first = workloads.generate(name, tmp_path / f"{name}-1", 1 / 512)
        second = workloads.generate(name, tmp_path / f"{name}-2", 1 / 512)
        assert fingerprint(first.root) == fingerprint(second.root)
        assert (first.files, first.size) == (second.files, second.size)
    mixed = workloads.generate("mixed", tmp_path / "mixed", 1 / 64)
    assert 0.1 < mixed.duplicates / mixed.files < 0.3
