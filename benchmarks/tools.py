"""The tools and what each one runs: artifactstore, the physical limits and the peers.

A tool turns a workload directory and a fresh work directory into steps. A step is one timed
operation (its commands run in order and are measured together) after untimed preparation,
such as `restic init` or copying the tree into a DVC project. artifactstore and the peers
share four roles, so that their figures can be set side by side:

| role | artifactstore | git | restic | DVC |
| --- | --- | --- | --- | --- |
| store | `push` | `add -A` + `commit` | `backup` | `add` |
| store again | `push` of a new version | `add -A` + `commit --allow-empty` | `backup` | `add` |
| restore | `pull` | `checkout` into a new work tree | `restore` | `checkout` |
| verify | `verify NAME VERSION` | `fsck --full` | `check --read-data` | (none) |

A limit has one step, the role `limit`. Every step of a tool in one repetition runs in the
same work directory, so `pull` reads the store `push` wrote.
"""

from __future__ import annotations

import compileall
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import provision
from benchmarks.measure import Command

ROLES = ("store", "store again", "restore", "verify")
LIMIT = "limit"
REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "bench/tree"
_GIT_IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@example.invalid")


@dataclass(frozen=True, slots=True)
class Step:
    """One timed operation: a role, the label shown for it, its commands and their preparation."""

    role: str
    label: str
    commands: tuple[Command, ...]
    prepare: tuple[Command, ...] = ()


Plan = Callable[[Path, Path], tuple[Step, ...]]


@dataclass(frozen=True, slots=True)
class Tool:
    """artifactstore, a limit or a peer (`kind`); plan is None when the tool is missing."""

    name: str
    kind: str
    version: str
    plan: Plan | None
    missing: str | None = None


def _cmd(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> Command:
    return Command(tuple(str(a) for a in argv), cwd, tuple(sorted((env or {}).items())))


def compile_bytecode() -> None:
    """Compile artifactstore's and the helpers' bytecode, as `pip install` does.

    They run from this source tree, and with PYTHONDONTWRITEBYTECODE set (as on the CI
    machines) Python would compile every module again in every timed process: 0.1-0.3 s of
    each command that an installed artifactstore never pays.
    """
    for package in ("artifactstore", "benchmarks"):
        if not compileall.compile_dir(REPO_ROOT / package, quiet=1):
            raise RuntimeError(f"could not compile the bytecode of {REPO_ROOT / package}")


def artifactstore() -> Tool:
    """The artifactstore CLI beside this interpreter, on a fresh SQLite file and blob root."""
    exe = Path(sys.executable).with_name("artifactstore")

    def plan(tree: Path, work: Path) -> tuple[Step, ...]:
        store = work / "store"
        cli = (exe, "--db", f"sqlite:///{store}/registry.db", "--root", store / "blobs")
        # An empty store means a migrated one: creating the schema is set-up, not push.
        setup = (_cmd("mkdir", "-p", store), _cmd(*cli, "migrate"))
        return (
            Step("store", "push", (_cmd(*cli, "push", PACKAGE, "1", tree),), setup),
            Step("store again", "re-push (unchanged)", (_cmd(*cli, "push", PACKAGE, "2", tree),)),
            Step("restore", "pull", (_cmd(*cli, "pull", PACKAGE, "1", work / "out"),)),
            Step("verify", "verify", (_cmd(*cli, "verify", PACKAGE, "1"),)),
        )

    version = provision.version_of([str(exe), "version"])
    return Tool("artifactstore", "artifactstore", version, plan)


def limits() -> list[Tool]:
    """The physical limits: copy + sync, read, and hashing every file (tools and in-process)."""
    python = (sys.executable, "-m", "benchmarks.hashfiles")
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    }
    helper = provision.Program(
        Path(sys.executable), provision.version_of([sys.executable, "-c", _PY_VERSIONS])
    )

    def single(label: str, build: Callable[[Path, Path], tuple[Command, ...]]) -> Plan:
        return lambda tree, work: (Step(LIMIT, label, build(tree, work)),)

    def each_file(tool: str) -> Callable[[Path, Path], tuple[Command, ...]]:
        return lambda tree, _: (
            _cmd("sh", "-c", f'find "$1" -type f -print0 | xargs -0 {tool} >/dev/null', "sh", tree),
        )

    def in_process(mode: str) -> Callable[[Path, Path], tuple[Command, ...]]:
        return lambda tree, _: (_cmd(*python, mode, tree, env=env),)

    cp = provision.path_program("cp")
    table: list[tuple[str, provision.Program, Callable[[Path, Path], tuple[Command, ...]]]] = [
        (
            "cp -r + sync",
            cp,
            lambda tree, work: (_cmd("cp", "-r", tree, work / "copy"), _cmd("sync")),
        ),
        ("read every file (Python)", helper, in_process("read")),
        ("sha256sum", provision.path_program("sha256sum"), each_file("sha256sum")),
        (
            "b3sum",
            provision.debian_program("b3sum", "b3sum", "--version", install=False),
            each_file("b3sum"),
        ),
        ("SHA-256 (hashlib, 1 thread)", helper, in_process("sha256")),
        ("BLAKE3 (blake3-py, 1 thread)", helper, in_process("blake3")),
        ("both digests (2 threads)", helper, in_process("dual")),
    ]
    return [
        Tool(
            label,
            LIMIT,
            program.version,
            single(label, build) if program.path else None,
            program.missing,
        )
        for label, program, build in table
    ]


_PY_VERSIONS = (
    "import platform, blake3; "
    "print('Python', platform.python_version(), '+ blake3', blake3.__version__)"
)


def git() -> Tool:
    """git: commit the tree into a fresh repository, check it out, fsck it."""
    program = provision.path_program("git")
    if program.path is None:
        return Tool("git", "peer", "", None, program.missing)
    exe = program.path

    def plan(tree: Path, work: Path) -> tuple[Step, ...]:
        # gc.auto=0: with 10,000 loose objects a commit starts `git gc --auto` in the
        # background, which then steals CPU from the next tool and races `git fsck`.
        repo = (exe, "-c", "gc.auto=0", "--git-dir", work / "repo" / ".git")
        add = _cmd(*repo, "--work-tree", tree, "add", "-A")

        def commit(*extra: str) -> Command:
            return _cmd(*repo, *_GIT_IDENTITY, "--work-tree", tree, "commit", "-q", *extra)

        out = work / "out"
        return (
            Step(
                "store",
                "add -A + commit",
                (add, commit("-m", "1")),
                (_cmd(exe, "init", "-q", work / "repo"),),
            ),
            Step(
                "store again",
                "add -A + commit (unchanged)",
                (add, commit("--allow-empty", "-m", "2")),
            ),
            Step(
                "restore",
                "checkout into a new work tree",
                (_cmd(*repo, "--work-tree", out, "checkout", "-f", "HEAD", "--", "."),),
                (_cmd("mkdir", "-p", out),),
            ),
            Step("verify", "fsck --full", (_cmd(*repo, "fsck", "--full"),)),
        )

    return Tool("git", "peer", program.version, plan)


def restic(install: bool) -> Tool:
    """restic: back the tree up into a fresh repository, restore it, check it reading all data."""
    program = provision.debian_program("restic", "restic", "version", install)
    if program.path is None:
        return Tool("restic", "peer", "", None, program.missing)
    exe = program.path
    env = {"RESTIC_PASSWORD": os.environ.get("RESTIC_PASSWORD", "artifactstore-bench")}

    def plan(tree: Path, work: Path) -> tuple[Step, ...]:
        base = (exe, "--repo", work / "repo", "--cache-dir", work / "cache", "--quiet")

        def restic_cmd(*argv: str | Path) -> Command:
            return _cmd(*base, *argv, env=env)

        return (
            Step("store", "backup", (restic_cmd("backup", tree),), (restic_cmd("init"),)),
            Step("store again", "backup (unchanged)", (restic_cmd("backup", tree),)),
            Step(
                "restore", "restore", (restic_cmd("restore", "latest", "--target", work / "out"),)
            ),
            Step("verify", "check --read-data", (restic_cmd("check", "--read-data"),)),
        )

    return Tool("restic", "peer", program.version, plan)


def dvc(venv: Path, install: bool) -> Tool:
    """DVC: add a copy of the tree to a fresh project (untimed copy), check it out again."""
    program = provision.dvc_program(venv, install)
    if program.path is None:
        return Tool("dvc", "peer", "", None, program.missing)
    exe = program.path
    env = {"DVC_NO_ANALYTICS": "1"}

    def plan(tree: Path, work: Path) -> tuple[Step, ...]:
        project = work / "project"

        def dvc_cmd(*argv: str | Path) -> Command:
            return _cmd(exe, *argv, cwd=project, env=env)

        # DVC tracks data inside its project only, so the tree is copied in before timing.
        setup = (
            _cmd("mkdir", "-p", project),
            _cmd("cp", "-r", tree, project / "data"),
            dvc_cmd("init", "--no-scm", "-q"),
            dvc_cmd("config", "core.site_cache_dir", work / "site-cache"),
        )
        return (
            Step("store", "add", (dvc_cmd("add", "-q", "data"),), setup),
            Step("store again", "add (unchanged)", (dvc_cmd("add", "-q", "data"),)),
            Step(
                "restore",
                "checkout",
                (dvc_cmd("checkout", "-q"),),
                (_cmd("rm", "-rf", project / "data"),),
            ),
        )

    return Tool("dvc", "peer", program.version, plan)
