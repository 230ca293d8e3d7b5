"""-q/--quiet (no progress, no informational lines) and --actor / ARTIFACTSTORE_ACTOR / the
CI job as the actor of events.

In-process through test_cli.py's Cli, and a real process on a pseudo-terminal for progress.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from served import Served, serving
from test_cli import NAME, VERSION, Cli, base_env, on_terminal, one_error_line
from test_remote import runner

CI_VARIABLES = (
    *("GITHUB_ACTIONS", "GITHUB_RUN_ID", "GITHUB_REPOSITORY", "GITHUB_JOB"),
    *("GITLAB_CI", "CI_JOB_ID", "CI_PROJECT_PATH", "ARTIFACTSTORE_ACTOR"),
)


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> Cli:
    """A CLI over a fresh, migrated database, in an environment of no CI and no actor."""
    env = {**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}
    return Cli({k: v for k, v in env.items() if k not in CI_VARIABLES}, tmp_path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    (root / "b.bin").write_bytes(os.urandom(100_000))
    return root


def test_quiet_silences_informational_lines_but_not_results(
    cli: Cli, tree: Path, tmp_path: Path
) -> None:
    digest = cli.ok("-q", "push", NAME, VERSION, tree).text  # the result a script captures
    assert digest.startswith("blake3:")
    for args in (
        ("pull", NAME, VERSION, tmp_path / "out"),
        ("verify", NAME, VERSION),
        ("verify", "--all"),
        ("replay", "--check"),
        ("migrate",),
        ("create", NAME, "2"),
        ("add", NAME, "2", tree),
        ("create", NAME, "3"),
        ("abandon", NAME, "3"),
    ):
        assert cli.ok("-q", *args).text == "", args
    assert cli.ok("--quiet", "finalize", NAME, "2").text.startswith("blake3:")
    # JSON is the result itself: -q leaves it alone.
    pulled = cli.ok("-q", "--json", "pull", NAME, VERSION, tmp_path / "again").json()
    assert isinstance(pulled, dict) and pulled["files"] == 2
    # A failed check still lists its problems.
    pinned = cli("-q", "verify", NAME, VERSION, "--expect-digest", "blake3:" + "0" * 64)
    assert pinned.code == 1 and pinned.text.startswith("problem: ")


def test_quiet_draws_no_progress_even_on_a_terminal(cli: Cli, tree: Path) -> None:
    code, out, shown = on_terminal(cli, "push", NAME, VERSION, tree)
    assert code == 0 and b"push: " in shown
    code, again, shown = on_terminal(cli, "-q", "push", NAME, VERSION, tree)
    assert (code, again, shown) == (0, out, b"")


def actors(cli: Cli) -> set[str]:
    lines = cli.ok("--json", "events").text.splitlines()
    return {json.loads(line)["actor"] for line in lines}


def test_actor_from_option_environment_ci_or_user_at_host(cli: Cli, tree: Path) -> None:
    cli.ok("push", NAME, "1", tree)
    assert actors(cli) == {f"{getpass.getuser()}@{socket.gethostname()}"}

    def actor_of(*args: str, **env: str) -> str:
        cli.env = {**{k: v for k, v in cli.env.items() if k not in CI_VARIABLES}, **env}
        before = len(cli.events())
        cli.ok(*args, "create", NAME, f"v{before}")
        return actors_since(cli, before)

    github = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "acme/app"}
    assert actor_of(**github, GITHUB_JOB="build") == "github:acme/app#42/build"
    assert actor_of(**github) == "github:acme/app#42"
    gitlab = {"GITLAB_CI": "true", "CI_JOB_ID": "7", "CI_PROJECT_PATH": "acme/app"}
    assert actor_of(**gitlab) == "gitlab:acme/app#7"
    assert actor_of(ARTIFACTSTORE_ACTOR="release-bot", **github) == "release-bot"
    assert actor_of("--actor", "alice", ARTIFACTSTORE_ACTOR="release-bot") == "alice"
    assert "--actor" in one_error_line(cli("--actor", " ", "ls"), 2)


def actors_since(cli: Cli, before: int) -> str:
    lines = cli.ok("--json", "events", "--since", str(before)).text.splitlines()
    [actor] = {json.loads(line)["actor"] for line in lines}
    return str(actor)


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(module_database_url, tmp_path_factory.mktemp("server")) as served:
        yield served


def test_with_a_server_the_token_is_the_actor(server: Served, tmp_path: Path) -> None:
    remote = runner(server, tmp_path / "runner")
    assert "token's name" in one_error_line(remote("--actor", "alice", "ls"), 2)
    remote.env["ARTIFACTSTORE_ACTOR"] = "ignored"
    remote.ok("create", "acme/actor", "1")
    events = [json.loads(line) for line in remote.ok("--json", "events").text.splitlines()]
    assert {e["actor"] for e in events} == {"token:writer"}
