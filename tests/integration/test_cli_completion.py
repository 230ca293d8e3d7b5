"""Shell completion: `completion SHELL` prints Click's script, and package arguments complete
from the local store, quietly and never with an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import Cli, Result, base_env

SHELLS = ("bash", "zsh", "fish")


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> Cli:
    """A CLI over a fresh, migrated database holding acme/app 1.0 and 1.10 and acme/lib 2."""
    ran = Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    for name, version in (("acme/app", "1.0"), ("acme/app", "1.10"), ("acme/lib", "2")):
        ran.ok("push", name, version, tree)
    return ran


def tab(cli: Cli, line: str, **env: str) -> Result:
    """What bash's Tab at the end of line asks the program for (Click's bash_complete)."""
    words = line.split(" ")
    asking = {"_ARTIFACTSTORE_COMPLETE": "bash_complete", "COMP_WORDS": line}
    return cli(env={**asking, "COMP_CWORD": str(len(words) - 1), **env})


def offered(result: Result) -> list[str]:
    """The values offered, in order; the run must be quiet and succeed."""
    assert (result.code, result.err) == (0, ""), result
    return [line.partition(",")[2] for line in result.text.splitlines() if line]


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_prints_the_script_click_sources(cli: Cli, shell: str) -> None:
    script = cli.ok("completion", shell).out
    assert b"_ARTIFACTSTORE_COMPLETE" in script
    assert cli(env={"_ARTIFACTSTORE_COMPLETE": f"{shell}_source"}).out == script


def test_completion_refuses_an_unknown_shell(cli: Cli) -> None:
    assert cli("completion", "tcsh").code == 2


def test_package_names_versions_and_then_files_complete_from_the_local_store(cli: Cli) -> None:
    assert offered(tab(cli, "artifactstore pull ac")) == ["acme/app", "acme/lib"]
    assert offered(tab(cli, "artifactstore show acme/l")) == ["acme/lib"]
    assert offered(tab(cli, "artifactstore pull acme/app ")) == ["1.10", "1.0"]
    assert offered(tab(cli, "artifactstore verify acme/app:1.1")) == ["acme/app:1.10"]
    assert offered(tab(cli, "artifactstore ls acme/")) == ["acme/app", "acme/lib"]
    # After the package, pull's DEST is a local path; the shell completes it.
    result = tab(cli, "artifactstore pull acme/app 1.0 ou")
    assert result.text.splitlines() == ["file,ou"]
    assert offered(tab(cli, "artifactstore cat acme/app:1.0 ")) == []
    # diff takes two versions of NAME, or two NAME:VERSIONs.
    assert offered(tab(cli, "artifactstore diff acme/app 1.0 ")) == ["1.10", "1.0"]
    assert offered(tab(cli, "artifactstore diff acme/app:1.0 acme/l")) == ["acme/lib"]
    assert offered(tab(cli, "artifactstore diff acme/app 1.0 1.10 ")) == []


def test_completion_is_silent_without_a_store_and_creates_none(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "registry.db"
    result = tab(cli, "artifactstore pull ac", ARTIFACTSTORE_DATABASE_URL=f"sqlite:///{missing}")
    assert offered(result) == []
    assert not missing.parent.exists()
    # A broken URL and a --server (not asked on a Tab) complete to nothing, without a word.
    assert offered(tab(cli, "artifactstore pull ac", ARTIFACTSTORE_DATABASE_URL="nope://")) == []
    assert offered(tab(cli, "artifactstore --server http://127.0.0.1:9 pull ac")) == []


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_completes_package_names_in_bash(cli: Cli) -> None:
    script = (
        'eval "$(artifactstore completion bash)"; '
        "COMP_WORDS=(artifactstore pull acme/a); COMP_CWORD=2; "
        '_artifactstore_completion artifactstore; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env={**cli.env, "PATH": path},
        cwd=cli.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["acme/app"], done
