"""The `artifactstore` CLI against this leg's database.

Every test drives the CLI's entry point with the database URL and blob root in the
environment, and checks exit codes, stdout and stderr the way a CI job would see them:
in-process (Click's CliRunner isolation), and in a real process where only a process shows
it (exit codes end to end, a terminal for progress and prompts).
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import blake3
import pytest
from click.testing import CliRunner

from artifactstore import ArtifactStore
from artifactstore.cli import main
from artifactstore.pull import TEMP_PREFIX

PASSWORD = "hunter2-secret"
UNREACHABLE_URL = f"postgresql://ci:{PASSWORD}@127.0.0.1:1/artifacts"
NAME, VERSION = "acme/app", "1.4.2"


@dataclass(frozen=True)
class Result:
    """What one CLI run left behind."""

    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        """stdout as text."""
        return self.out.decode()

    def json(self) -> object:
        """stdout parsed as one JSON document."""
        return json.loads(self.out)


class Cli:
    """Runs the `artifactstore` entry point with a fixed environment and working directory.

    In-process by default (Click's test isolation: ~3 ms a run instead of ~0.4 s for a
    process); `process()` runs `python -m artifactstore` for what only a real process shows.
    """

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def __call__(self, *args: str | Path, env: dict[str, str] | None = None) -> Result:
        environ = {**self.env, **(env or {})}
        # Variables the run should not see are removed, as a process given environ would not.
        hidden: dict[str, str | None] = {name: None for name in os.environ if name not in environ}
        with CliRunner().isolation(env={**hidden, **environ}) as (out, err, _):
            code = 0
            with contextlib.chdir(self.cwd):
                try:
                    main([str(arg) for arg in args])
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
            return Result(code, out.getvalue(), err.getvalue().decode())

    def process(self, *args: str | Path) -> Result:
        """Run in a real process, as a CI step does."""
        done = subprocess.run(
            [sys.executable, "-m", "artifactstore", *map(str, args)],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr.decode())

    def ok(self, *args: str | Path) -> Result:
        """Run and require exit 0 with a quiet stderr (no progress bar off a terminal)."""
        result = self(*args)
        assert (result.code, result.err) == (0, ""), result
        return result

    def events(self) -> list[tuple[int, str]]:
        """(sequence, type) of every event in the log, read in-process (a subprocess is slower)."""
        url = self.env["ARTIFACTSTORE_DATABASE_URL"]
        with ArtifactStore.open(url, self.env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"]) as store:
            return [(e.sequence, e.event_type) for e in store.tail_events(0)]


def base_env(tmp_path: Path) -> dict[str, str]:
    """The test process environment (ARTIFACTSTORE_* already cleared) plus a blob root."""
    # health counts a missing root as failing (an unmounted volume looks just like that).
    root = tmp_path / "blobs"
    root.mkdir(exist_ok=True)
    return {**os.environ, "ARTIFACTSTORE_STORAGE_LOCAL_ROOT": str(root)}


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> Cli:
    """A CLI over a fresh, migrated database and an empty blob root."""
    return Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A build output: text, an executable, nested binary data and an empty file."""
    root = tmp_path / "dist"
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "deep").mkdir(parents=True)
    (root / "README.txt").write_text("hello\n")
    (root / "bin" / "app").write_bytes(b"#!/bin/sh\necho app\n")
    (root / "bin" / "app").chmod(0o755)
    (root / "lib" / "deep" / "data.bin").write_bytes(os.urandom(300_000))
    (root / "lib" / "empty").write_bytes(b"")
    return root


def one_error_line(result: Result, code: int) -> str:
    """Check the run failed with code and exactly one 'artifactstore: error:' line."""
    assert result.code == code, result
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("artifactstore: error: ")
    assert "Traceback" not in result.err
    return lines[0]


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under directory: bytes and permission bits, by relative path."""
    return {
        path.relative_to(directory).as_posix(): (
            path.read_bytes(),
            stat.S_IMODE(path.stat().st_mode),
        )
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


# -- the happy path ---------------------------------------------------------------------------


def test_push_verify_pull_round_trip_is_byte_exact(cli: Cli, tree: Path, tmp_path: Path) -> None:
    digest = cli.ok("push", NAME, VERSION, tree, "--meta", "git_sha=3f2a", "--retention", "ci")
    manifest_digest = digest.text.strip()
    assert manifest_digest.startswith("blake3:") and len(manifest_digest) == 7 + 64

    verified = cli.ok("verify", NAME, VERSION)
    assert "4 files" in verified.text and verified.text.strip().endswith(": ok")

    dest = tmp_path / "out"
    cli.ok("pull", NAME, VERSION, dest)
    assert snapshot(dest) == snapshot(tree)
    assert snapshot(dest)["bin/app"][1] == 0o755
    assert snapshot(dest)["README.txt"][1] == 0o644
    assert not list(dest.rglob(f"{TEMP_PREFIX}*"))

    [listed] = [line.split("\t") for line in cli.ok("ls").text.splitlines()]
    assert listed[:4] == [f"{NAME}:{VERSION}", "finalized", "ci", "293.0 KiB"]
    assert listed[4].endswith("Z") and listed[5] == manifest_digest
    assert cli.ok("ls", "other/name").text == ""

    data = tree / "lib" / "deep" / "data.bin"
    assert cli.ok("cat", NAME, VERSION, "lib/deep/data.bin").out == data.read_bytes()

    cbor = cli.ok("show", NAME, VERSION, "--format", "cbor").out
    assert f"blake3:{blake3.blake3(cbor).hexdigest()}" == manifest_digest
    manifest = json.loads(cli.ok("show", NAME, VERSION, "--format", "jcs").out)
    assert [f["path"] for f in manifest["files"]] == [
        "README.txt",
        "bin/app",
        "lib/deep/data.bin",
        "lib/empty",
    ]
    assert manifest["package"]["metadata"] == {"git_sha": "3f2a"}
    assert manifest["retention_summary"]["class"] == "ci"


def test_json_output_parses_with_sorted_keys(cli: Cli, tree: Path, tmp_path: Path) -> None:
    pushed = cli.ok("--json", "push", NAME, VERSION, tree).json()
    assert isinstance(pushed, dict)
    assert list(pushed) == sorted(pushed)
    assert pushed["files"] == 4 and pushed["bytes"] == 300_000 + 6 + 19
    assert (pushed["name"], pushed["version"]) == (NAME, VERSION)

    listed = cli.ok("--json", "ls").json()
    assert isinstance(listed, list) and listed[0]["manifest_digest"] == pushed["manifest_digest"]

    report = cli.ok("--json", "verify", "--all").json()
    assert report == {
        "bytes": pushed["bytes"],
        "chain": {"checked": 3, "ok": True, "problem": None},
        "files": 4,
        "ok": True,
        "packages": 1,
        "problems": [],
    }

    pulled = cli.ok("--json", "pull", NAME, VERSION, tmp_path / "out").json()
    assert isinstance(pulled, dict) and pulled["manifest_digest"] == pushed["manifest_digest"]

    events = [json.loads(line) for line in cli.ok("--json", "events").text.splitlines()]
    assert [e["sequence"] for e in events] == list(range(1, 4))
    assert events[-1]["event_type"] == "v1.package.finalized"
    assert events[-1]["payload"]["package"]["name"] == NAME
    assert cli.ok("--json", "version").json() == {"version": "0.1.0"}

    replay = cli.ok("--json", "replay", "--check").json()
    assert isinstance(replay, dict) and replay["identical"] is True and replay["events"] == 3


def test_repush_of_the_same_tree_returns_the_same_digest_and_appends_nothing(
    cli: Cli, tree: Path
) -> None:
    first = cli.ok("push", NAME, VERSION, tree).text
    events = cli.events()
    assert cli.ok("push", NAME, VERSION, tree).text == first
    assert cli.events() == events


def test_repush_of_a_changed_tree_is_a_conflict_that_changes_nothing(cli: Cli, tree: Path) -> None:
    cli.ok("push", NAME, VERSION, tree)
    events, listing = cli.events(), cli.ok("ls").text
    (tree / "README.txt").write_text("changed\n")
    line = one_error_line(cli("push", NAME, VERSION, tree), 2)
    assert "README.txt" in line
    assert (cli.events(), cli.ok("ls").text) == (events, listing)


# -- bad input --------------------------------------------------------------------------------


def _symlink(tree: Path) -> None:
    (tree / "link").symlink_to(tree / "README.txt")


def _fifo(tree: Path) -> None:
    os.mkfifo(tree / "pipe")


@pytest.mark.parametrize(
    ("args", "prepare", "mentions"),
    [
        (("push", "Acme/App", VERSION, "{tree}"), None, "Acme/App"),
        (("push", NAME, "1.0+build", "{tree}"), None, "1.0+build"),
        (("push", NAME, VERSION, "{tree}", "--retention", "forever"), None, "forever"),
        (("push", NAME, VERSION, "{tree}", "--meta", "no-equals"), None, "no-equals"),
        (("push", NAME, VERSION, "{tree}/missing"), None, "missing"),
        (("push", NAME, VERSION, "{tree}"), _symlink, "link"),
        (("push", NAME, VERSION, "{tree}"), _fifo, "pipe"),
        (("push", NAME, VERSION), None, "DIR"),
        (("frobnicate",), None, "frobnicate"),
    ],
    ids=[
        "invalid-name",
        "invalid-version",
        "unknown-retention",
        "meta-without-equals",
        "missing-directory",
        "symlink",
        "fifo",
        "missing-argument",
        "unknown-command",
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    cli: Cli,
    tree: Path,
    stored_blobs: Callable[[Path], int],
    args: tuple[str, ...],
    prepare: object,
    mentions: str,
) -> None:
    if callable(prepare):
        prepare(tree)
    line = one_error_line(cli(*(a.format(tree=tree) for a in args)), 2)
    assert mentions in line
    assert cli.events() == []
    assert stored_blobs(Path(cli.env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"])) == 0


def test_exit_codes_end_to_end_in_a_real_process(cli: Cli, tree: Path) -> None:
    pushed = cli.process("push", NAME, VERSION, tree)
    assert (pushed.code, pushed.err) == (0, "")
    assert pushed.text.startswith("blake3:")
    assert "package name" in one_error_line(cli.process("push", "Bad Name", "1", tree), 2)
    assert "no package" in one_error_line(cli.process("verify", NAME, "9"), 2)
    assert "not the expected" in one_error_line(
        cli.process("show", NAME, VERSION, "--expect-digest", "blake3:" + "0" * 64), 1
    )


def test_verbose_shows_the_traceback(cli: Cli) -> None:
    result = cli("-v", "show", NAME, VERSION)
    assert result.code == 2
    assert "Traceback" in result.err
    assert result.err.splitlines()[-1] == (
        f"artifactstore: error: no package {NAME}:{VERSION} (no version of {NAME} exists)"
    )


def test_lookups_of_missing_things_exit_2(cli: Cli, tree: Path, tmp_path: Path) -> None:
    cli.ok("push", NAME, VERSION, tree)
    one_error_line(cli("pull", NAME, "9.9", tmp_path / "never"), 2)
    assert not (tmp_path / "never").exists()
    one_error_line(cli("cat", NAME, VERSION, "no/such/file"), 2)
    one_error_line(cli("show", "no/such", VERSION), 2)
    one_error_line(cli("verify", NAME), 2)
    one_error_line(cli("verify", NAME, VERSION, "--all"), 2)


def test_pull_refuses_a_non_empty_destination_without_force(
    cli: Cli, tree: Path, tmp_path: Path
) -> None:
    cli.ok("push", NAME, VERSION, tree)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine\n")
    (dest / "README.txt").write_text("stale\n")
    assert "--force" in one_error_line(cli("pull", NAME, VERSION, dest), 2)
    assert (dest / "README.txt").read_text() == "stale\n"
    cli.ok("pull", NAME, VERSION, dest, "--force")
    assert (dest / "README.txt").read_text() == "hello\n"
    assert (dest / "keep.txt").read_text() == "mine\n"


def test_pull_into_a_destination_that_cannot_be_used_exits_2(
    cli: Cli, tree: Path, tmp_path: Path
) -> None:
    cli.ok("push", NAME, VERSION, tree)
    (tmp_path / "file").write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "out" / "lib").mkdir(parents=True)
    (tmp_path / "out" / "lib" / "deep").symlink_to(tmp_path / "dist")
    cases = {
        "file/out": "Not a directory",
        "file": "it is not a directory",
        "dangling": "it is a symlink to nothing",
        "out": "'lib/deep' under",
    }
    for dest, reason in cases.items():
        line = one_error_line(cli("pull", NAME, VERSION, tmp_path / dest, "--force"), 2)
        assert str(tmp_path / dest) in line and reason in line


def test_pull_force_removes_the_temp_files_an_older_pull_left(
    cli: Cli, tree: Path, tmp_path: Path
) -> None:
    cli.ok("push", NAME, VERSION, tree)
    dest = tmp_path / "out"
    (dest / f"{TEMP_PREFIX}killed").mkdir(parents=True)
    (dest / f"{TEMP_PREFIX}killed" / "7").write_text("half a file")
    (dest / "lib" / "deep").mkdir(parents=True)
    (dest / "lib" / "deep" / f"{TEMP_PREFIX}a1b2c3").write_text("an older version's temp file")
    (dest / "keep.txt").write_text("mine\n")
    an_hour_ago = time.time() - 3600
    os.utime(dest / f"{TEMP_PREFIX}killed", (an_hour_ago, an_hour_ago))
    cli.ok("pull", NAME, VERSION, dest, "--force")
    assert not list(dest.rglob(f"{TEMP_PREFIX}*"))
    assert set(snapshot(dest)) == {*snapshot(tree), "keep.txt"}


@pytest.mark.parametrize(
    ("sent", "code", "said"), [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")]
)
def test_a_pull_stopped_by_a_signal_leaves_no_temp_files(
    cli: Cli, tmp_path: Path, sent: str, code: int, said: str
) -> None:
    many = tmp_path / "many"
    for n in range(1_000):
        (many / f"d{n % 10}").mkdir(parents=True, exist_ok=True)
        (many / f"d{n % 10}" / f"f{n}").write_bytes(n.to_bytes(4, "big") * 100)
    cli.ok("push", NAME, VERSION, many)
    dest = tmp_path / "out"
    # `python -m artifactstore`, except that Ctrl-C raises KeyboardInterrupt even when this
    # test runs in a background job (which starts with SIGINT ignored, and so its children).
    script = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from artifactstore.cli import main; main(sys.argv[1:])"
    )
    pulling = subprocess.Popen(
        [sys.executable, "-c", script, "pull", NAME, VERSION, str(dest)],
        env=cli.env,
        cwd=cli.cwd,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while not list(dest.rglob(f"{TEMP_PREFIX}*")) and pulling.poll() is None:
            time.sleep(0.005)  # until the pull is writing files
        pulling.send_signal(getattr(signal, sent))
        _, err = pulling.communicate(timeout=60)
    finally:
        pulling.kill()
    assert pulling.returncode == code, err
    assert err.decode().strip() == f"artifactstore: error: {said}"  # Click starts ^C on a new line
    assert not list(dest.rglob(f"{TEMP_PREFIX}*"))
    assert not [path for path in dest.rglob("*") if path.is_file()]


# -- integrity --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["README.txt", "lib/deep/data.bin"])  # packed and one-file blobs
def test_a_corrupted_blob_fails_verify_pull_and_cat(
    cli: Cli, tree: Path, tmp_path: Path, path: str, corrupt_blob: Callable[[Path, bytes], None]
) -> None:
    cli.ok("push", NAME, VERSION, tree)
    corrupt_blob(Path(cli.env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"]), (tree / path).read_bytes())

    for args in (("verify", NAME, VERSION), ("verify",)):
        result = cli(*args)
        assert result.code == 1, result
        problems = [line for line in result.text.splitlines() if line.startswith("problem:")]
        assert len(problems) == 1 and path in problems[0]
        assert "expected" in problems[0] and "got" in problems[0]

    report = cli("--json", "verify").json()
    assert isinstance(report, dict) and report["ok"] is False
    assert [p["path"] for p in report["problems"]] == [path]

    dest = tmp_path / "out"
    line = one_error_line(cli("pull", NAME, VERSION, dest), 1)
    assert path in line
    assert not (dest / path).exists()
    assert not list(dest.rglob(f"{TEMP_PREFIX}*"))

    assert path in one_error_line(cli("cat", NAME, VERSION, path), 1)


# -- operations -------------------------------------------------------------------------------


def test_events_since_and_follow_with_timeout(cli: Cli, tree: Path) -> None:
    cli.ok("push", NAME, VERSION, tree)
    lines = cli.ok("events", "--since", "0").text.splitlines()
    assert len(lines) == 3
    assert lines[0].split("\t")[:3:2] == ["1", "v1.package.created"]
    assert len(cli.ok("events", "--since", "1").text.splitlines()) == 2
    followed = cli.ok("events", "--since", "2", "--follow", "--timeout", "1")
    assert [line.split("\t")[0] for line in followed.text.splitlines()] == ["3"]


def test_replay_rebuilds_and_checks(cli: Cli, tree: Path) -> None:
    cli.ok("push", NAME, VERSION, tree)
    assert "identical" in cli.ok("replay").text
    assert "identical" in cli.ok("replay", "--check").text
    assert cli.ok("ls").text.startswith(f"{NAME}:{VERSION}\tfinalized")


def test_health_is_0_when_healthy_and_1_when_storage_root_is_a_file(
    cli: Cli, tmp_path: Path
) -> None:
    healthy = cli.ok("--json", "health").json()
    assert isinstance(healthy, dict)
    assert healthy["status"] == "ok" and healthy["failing"] == []
    assert healthy["database"]["reachable"] is True
    assert "status: ok" in cli.ok("health").text

    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    broken = cli("--root", not_a_directory, "--json", "health")
    assert broken.code == 1
    document = broken.json()
    assert isinstance(document, dict) and document["failing"] == ["storage"]


def test_migrate_fresh_needs_yes_off_a_terminal_and_then_empties_the_store(
    cli: Cli, tree: Path
) -> None:
    cli.ok("push", NAME, VERSION, tree)
    assert "--yes" in one_error_line(cli("migrate", "--fresh"), 2)
    assert len(cli.events()) == 3
    assert "schema revision" in cli.ok("migrate").text
    cli.ok("migrate", "--fresh", "--yes")
    assert cli.events() == []
    assert cli.ok("ls").text == ""


def test_an_unmigrated_database_is_refused_until_migrate(
    database_url: str, database_kind: str, tmp_path: Path
) -> None:
    if database_kind == "sqlite":
        # A fresh SQLite file would be migrated on open; a database holding some other table
        # is one artifactstore must not touch until told to.
        import sqlite3

        with sqlite3.connect(tmp_path / "registry.db") as connection:
            connection.execute("CREATE TABLE unrelated (id INTEGER)")
    cli = Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": database_url}, tmp_path)
    assert "artifactstore migrate" in one_error_line(cli("ls"), 2)
    assert cli("health").code == 1
    migrated = cli.ok("--json", "migrate").json()
    assert isinstance(migrated, dict) and migrated["revision_before"] is None
    assert cli.ok("ls").text == ""


def test_a_database_password_is_never_printed(tmp_path: Path) -> None:
    cli = Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": UNREACHABLE_URL}, tmp_path)
    listed, migrated = cli("ls"), cli("migrate")
    assert "ci:***@127.0.0.1:1" in one_error_line(listed, 2)
    one_error_line(migrated, 2)
    health = cli("--json", "health")
    assert health.code == 1
    document = health.json()
    assert isinstance(document, dict) and document["failing"] == ["database"]
    for result in (listed, migrated, health):
        assert PASSWORD not in result.text + result.err


def test_a_malformed_database_url_exits_2(tmp_path: Path) -> None:
    cli = Cli(base_env(tmp_path), tmp_path)
    assert "not-a-url" in one_error_line(cli("--db", "not-a-url", "ls"), 2)


def on_terminal(cli: Cli, *args: str | Path, typed: bytes = b"") -> tuple[int, bytes, bytes]:
    """Run with stdin and stderr on a pseudo-terminal (what was typed is already waiting).

    Returns the exit code, stdout, and everything written to the terminal.
    """
    controller, terminal = pty.openpty()
    try:
        os.write(controller, typed)
        with subprocess.Popen(
            [sys.executable, "-m", "artifactstore", *map(str, args)],
            env=cli.env,
            cwd=cli.cwd,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=terminal,
        ) as process:
            os.close(terminal)
            terminal = -1
            shown = b""
            while True:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # EIO: every writer has closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            out = process.stdout.read() if process.stdout else b""
            code = process.wait(timeout=60)
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    return code, out, shown


def test_progress_is_drawn_only_when_stderr_is_a_terminal(cli: Cli, tree: Path) -> None:
    code, out, shown = on_terminal(cli, "push", NAME, VERSION, tree)
    assert code == 0
    assert out.decode().startswith("blake3:")
    assert b"push: 4/4 files" in shown and b"/s" in shown
    # Off a terminal the same command writes nothing but the digest.
    assert cli.ok("push", NAME, VERSION, tree).text == out.decode()


def test_migrate_fresh_asks_on_a_terminal(cli: Cli, tree: Path) -> None:
    cli.ok("push", NAME, VERSION, tree)
    code, _, shown = on_terminal(cli, "migrate", "--fresh", typed=b"n\n")
    assert code == 2 and b"Delete every package and event" in shown
    assert len(cli.events()) == 3
    code, _, _ = on_terminal(cli, "migrate", "--fresh", typed=b"y\n")
    assert code == 0
    assert cli.events() == []


def test_storage_is_one_url_and_root_is_its_short_form(
    cli: Cli, tree: Path, tmp_path: Path
) -> None:
    url = (tmp_path / "blobs").as_uri()
    pushed = cli.ok("--storage", url, "push", NAME, VERSION, tree).text
    assert cli.ok("--root", tmp_path / "blobs", "verify", NAME, VERSION).text.endswith(": ok\n")
    assert cli.ok("push", NAME, VERSION, tree).text == pushed  # the environment's root
    assert "not both" in one_error_line(
        cli("--root", tmp_path / "blobs", "--storage", url, "ls"), 2
    )
    assert "'gs' is not supported" in one_error_line(cli("--storage", "gs://bucket/p", "ls"), 2)
