"""Output scripts can trust: one JSON style for every command, JSON errors, and what a
terminal gets.

In-process through the `cli` fixture; a real process with stdout on a pseudo-terminal where
only a terminal shows it (binary refused).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import NAME, VERSION, Cli, Result, base_env, one_error_line

from artifactstore.cli import cli as cli_group

NOT_WALKED = {
    "serve",  # replaces the process with gunicorn; it prints nothing of its own
    "completion",  # prints a shell script, never JSON (test_cli_completion.py)
}


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> Cli:
    """A CLI over a fresh, migrated database and an empty blob root."""
    return Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "bin").mkdir(parents=True)
    (root / "README.txt").write_text("hello\n")
    (root / "bin" / "app").write_bytes(b"\x7fELF\x00\x01binary")
    return root


def json_text(document: object) -> str:
    """The one style, written out here so a change to the CLI's own cannot pass unseen."""
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def one_style(result: Result) -> list[object]:
    """Each stdout line parsed; each must be exactly json_text of what it parses to."""
    assert result.code == 0, result
    documents = []
    for line in result.text.splitlines():
        document = json.loads(line)
        assert json_text(document) == line, line
        documents.append(document)
    assert documents, result
    return documents


def test_every_command_json_output_parses_and_follows_one_style(
    cli: Cli, tree: Path, tmp_path: Path
) -> None:
    walked: set[str] = set()

    def run(*args: str | Path) -> object:
        walked.add(str(args[0]))
        [document] = one_style(cli("--json", *args))
        return document

    run("version")
    run("migrate")
    run("health")
    pushed = run("push", NAME, VERSION, tree)
    assert isinstance(pushed, dict) and pushed["created"] is True
    run("pull", NAME, VERSION, tmp_path / "out")
    run("verify", NAME, VERSION)
    run("verify", "--all")
    run("ls")
    run("show", NAME, VERSION)
    walked.add("events")
    assert len(one_style(cli("--json", "events"))) == len(cli.events())
    run("checkpoint")
    run("replay", "--check")
    run("create", NAME, "2")
    run("add", NAME, "2", tree)
    walked.add("show")
    run("finalize", NAME, "2")
    run("diff", NAME, VERSION, "2")
    run("create", NAME, "3")
    run("abandon", NAME, "3")
    run("migrate-storage", "--to", (tmp_path / "copy").as_uri())
    run("export-oci", NAME, VERSION, tmp_path / "layout")
    run("import-oci", tmp_path / "layout", NAME, "from-oci")
    run("retention", NAME, VERSION, "release")
    run("hold", NAME, VERSION, "--reason", "audit")
    run("unhold", NAME, VERSION)
    run("expire", "--dry-run")
    run("delete", NAME, "2", "--yes")
    run("gc", "--dry-run")
    walked.add("token")
    for args in (("create", "ci", "--scope", "read"), ("list",), ("revoke", "ci")):
        one_style(cli("--json", "token", *args))
    walked.add("cat")  # writes the file's bytes, never JSON
    assert walked == set(cli_group.commands) - NOT_WALKED


def test_show_prints_jcs_in_the_same_style_as_every_other_document(cli: Cli, tree: Path) -> None:
    cli.ok("push", NAME, VERSION, tree)
    one_style(cli("show", NAME, VERSION))


def test_push_and_finalize_json_say_created_and_the_finalize_event(cli: Cli, tree: Path) -> None:
    first = cli.ok("--json", "push", NAME, VERSION, tree).json()
    again = cli.ok("--json", "push", NAME, VERSION, tree).json()
    assert isinstance(first, dict) and isinstance(again, dict)
    assert (first["created"], again["created"]) == (True, False)
    head = cli.ok("--json", "checkpoint").json()
    assert {k: first[k] for k in ("sequence", "chain_digest")} == head
    assert {k: again[k] for k in ("digest", "sequence", "chain_digest")} == {
        k: first[k] for k in ("digest", "sequence", "chain_digest")
    }
    cli.ok("create", NAME, "2")
    cli.ok("add", NAME, "2", tree)
    done = cli.ok("--json", "finalize", NAME, "2").json()
    head = cli.ok("--json", "checkpoint").json()
    assert isinstance(done, dict) and done["created"] is True
    assert {k: done[k] for k in ("sequence", "chain_digest")} == head
    assert (done["files"], done["bytes"]) == (2, 6 + 12)
    repeat = cli.ok("--json", "finalize", NAME, "2").json()
    assert isinstance(repeat, dict) and repeat == {**done, "created": False}
    assert cli.ok("finalize", NAME, "2").text.strip() == done["digest"]


def json_error(result: Result, code: int) -> dict[str, str]:
    """The run failed with code and one JSON object on stderr: {"error": {code, message}}."""
    assert result.code == code, result
    [line] = result.err.splitlines()
    document = json.loads(line)
    assert json_text(document) == line
    assert list(document) == ["error"] and sorted(document["error"]) == ["code", "message"]
    error: dict[str, str] = document["error"]
    return error


def test_errors_under_json_are_one_json_object_with_the_same_exit_codes(
    cli: Cli, tree: Path
) -> None:
    cli.ok("push", NAME, VERSION, tree)
    missing = json_error(cli("--json", "show", NAME, "9.9"), 2)
    assert missing["code"] == "package_not_found" and "acme/app:9.9" in missing["message"]
    assert json_error(cli("--json", "show", NAME), 2)["code"] == "usage_error"
    assert json_error(cli("--json", "--nope", "ls"), 2)["code"] == "usage_error"
    pinned = cli("--json", "show", NAME, VERSION, "--expect-digest", "blake3:" + "0" * 64)
    assert json_error(pinned, 1)["code"] == "digest_mismatch"
    assert json_error(cli("--json", "push", "Acme/App", "1", tree), 2)["code"] == "invalid_name"
    bad_level = cli("--json", "ls", env={"ARTIFACTSTORE_LOG_LEVEL": "bogus"})
    assert json_error(bad_level, 2)["code"] == "config"  # the group's own settings failed
    # Without --json the same errors stay one plain line.
    assert "no package" in one_error_line(cli("show", NAME, "9.9"), 2)


def test_human_events_name_the_package_and_json_keeps_its_id(cli: Cli, tree: Path) -> None:
    cli.ok("push", NAME, VERSION, tree)
    lines = [line.split("\t") for line in cli.ok("events").text.splitlines()]
    assert {fields[3] for fields in lines} == {f"{NAME}:{VERSION}"}
    package_id = cli.ok("--json", "ls").json()[0]["id"]  # type: ignore[index]
    assert {e["package_id"] for e in one_style(cli("--json", "events"))} == {package_id}  # type: ignore[index]


def test_events_timeout_without_follow_is_a_usage_error(cli: Cli) -> None:
    assert "--timeout goes with --follow" in one_error_line(cli("events", "--timeout", "1"), 2)
    cli.ok("events", "--follow", "--timeout", "0")


def test_pull_counts_one_file_in_the_singular(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.txt").write_text("a")
    cli.ok("push", NAME, VERSION, tmp_path / "one")
    assert cli.ok("pull", NAME, VERSION, tmp_path / "out").text.startswith("pulled 1 file (")


def stdout_on_terminal(cli: Cli, *args: str | Path) -> tuple[int, bytes, str]:
    """Run with stdout on a pseudo-terminal: exit code, what the terminal got, stderr."""
    controller, terminal = pty.openpty()
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "artifactstore", *map(str, args)],
            env=cli.env,
            cwd=cli.cwd,
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=subprocess.PIPE,
        ) as process:
            os.close(terminal)
            terminal = -1
            shown = b""
            while True:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # EIO: the writer has closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            err = process.stderr.read().decode() if process.stderr else ""
            return process.wait(timeout=60), shown, err
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)


def test_binary_is_refused_on_a_terminal_unless_forced(cli: Cli, tree: Path) -> None:
    cli.ok("push", NAME, VERSION, tree)
    for args in (("show", NAME, VERSION, "--format", "cbor"), ("cat", NAME, VERSION, "bin/app")):
        code, shown, err = stdout_on_terminal(cli, *args)
        assert (code, shown) == (2, b""), (args, err)
        assert "refusing to write" in err and "--force" in err
        code, shown, _ = stdout_on_terminal(cli, *args, "--force")
        assert code == 0 and shown
    # Text goes to a terminal as it is; redirected, binary goes out byte for byte.
    code, shown, _ = stdout_on_terminal(cli, "cat", NAME, VERSION, "README.txt")
    assert (code, shown) == (0, b"hello\r\n")
    assert cli.ok("cat", NAME, VERSION, "bin/app").out == b"\x7fELF\x00\x01binary"


@pytest.mark.parametrize(
    ("head", "binary"),
    [
        (b"", False),
        (b"plain text\n", False),
        ("h\u00e9llo".encode(), False),
        ("\u00e9".encode()[:1], False),  # a character cut at the end of the sniffed bytes
        (b"a\x00b", True),
        (b"\xff\xfe", True),
        (b"\xc3(", True),
    ],
)
def test_what_cat_counts_as_binary(head: bytes, binary: bool) -> None:
    from artifactstore.cli.terminal import is_binary

    assert is_binary(head) is binary
