"""Guard tests: the README and docs/ stay in step with the code (sqlite-utils' test_docs.py).

Every CLI command is in README's table and has a section in docs/OPERATOR.md, with help text;
every ADR is linked; every relative link and anchor resolves; the quick start is exactly the
two one-line commands CI runs; the library example in README runs; every ARTIFACTSTORE_*
variable in .env.example is documented; test names the docs cite exist; and `__all__` is
sorted, importable and complete (httpx's test_exported_members).
"""

from __future__ import annotations

import configparser
import inspect
import re
import shutil
from pathlib import Path

import pytest

import artifactstore
from artifactstore.cli import cli

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
OPERATOR = ROOT / "docs" / "OPERATOR.md"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
ADR_DIR = ROOT / "docs" / "adr"
MARKDOWN_FILES = sorted([README, *ROOT.glob("docs/*.md"), *ADR_DIR.glob("*.md")])

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)
_CITED_TEST = re.compile(r"(tests/[\w/]+\.py)::(test_\w+)")


def command_names() -> set[str]:
    """Every command registered on the Click group."""
    return set(cli.commands)


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section of a Markdown text, up to the next `## `."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"no '## {heading}' section"
    return match.group(1)


def without_code_blocks(text: str) -> str:
    """The text with fenced code blocks removed (links and headings inside them do not count)."""
    return _FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading in a Markdown file."""
    return {slug(h) for h in _HEADING.findall(without_code_blocks(path.read_text()))}


def test_every_command_is_in_the_readme_cli_table() -> None:
    table = section(README.read_text(), "The CLI")
    listed = set(re.findall(r"^\| `([a-z-]+)[ `]", table, re.MULTILINE))
    assert listed == command_names()


def test_every_command_has_a_section_in_the_operator_reference() -> None:
    reference = section(OPERATOR.read_text(), "CLI reference")
    documented = set(re.findall(r"^### `([a-z-]+)[ `]", reference, re.MULTILINE))
    assert documented == command_names()


@pytest.mark.parametrize("adr", sorted(p.name for p in ADR_DIR.glob("*.md")))
def test_every_adr_is_linked_from_architecture_or_operator(adr: str) -> None:
    linking = [
        doc.name
        for doc in (ARCHITECTURE, OPERATOR)
        if f"adr/{adr}" in _LINK.findall(without_code_blocks(doc.read_text()))
    ]
    assert linking, f"docs/adr/{adr} is linked from neither ARCHITECTURE.md nor OPERATOR.md"


def test_adrs_are_numbered_from_0001_without_gaps() -> None:
    numbers = sorted(int(adr.name[:4]) for adr in ADR_DIR.glob("0*.md"))
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 6  # the six from the foundation workplan, 0001-0006


@pytest.mark.parametrize("doc", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_and_headings_that_exist(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(without_code_blocks(doc.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{doc.relative_to(ROOT)}: {broken}"


def quick_start_blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced code block in README's quick start."""
    return _FENCE.findall(section(README.read_text(), "Quick start"))


def test_quick_start_is_exactly_two_one_line_shell_commands() -> None:
    blocks = quick_start_blocks()
    assert [language for language, _ in blocks] == ["sh", "sh"]
    for _, body in blocks:
        assert body.count("\n") == 1 and body.strip(), f"not one line: {body!r}"


def test_quick_start_first_command_installs_and_runs_push_verify_pull() -> None:
    (_, first), _ = quick_start_blocks()
    steps = [step.strip() for step in first.split("&&")]
    assert steps[0] == "python3 -m venv .venv"
    assert steps[1].startswith(".venv/bin/pip install")
    commands = [s.split()[1] for s in steps if s.startswith(".venv/bin/artifactstore ")]
    assert commands == ["push", "verify", "pull"]
    # Re-runnable: pulling into a directory the first run filled needs --force.
    assert "--force" in steps[-1].split()
    # The pushed folder must exist in every clone.
    pushed = next(s for s in steps if " push " in s).split()[-1]
    assert (ROOT / pushed).is_dir()


def test_quick_start_second_command_is_what_ci_runs() -> None:
    _, (_, second) = quick_start_blocks()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert second.strip() in ci_lines


def test_readme_library_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [example] = [
        body for language, body in _FENCE.findall(README.read_text()) if language == "python"
    ]
    shutil.copy(README, tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    monkeypatch.chdir(tmp_path)
    exec(compile(example, str(README), "exec"), {})
    assert (tmp_path / ".artifactstore" / "registry.db").is_file()


def test_every_env_var_in_env_example_is_documented_in_operator() -> None:
    variables = set(re.findall(r"\bARTIFACTSTORE_[A-Z_]+\b", (ROOT / ".env.example").read_text()))
    assert variables
    operator = OPERATOR.read_text()
    assert sorted(v for v in variables if v not in operator) == []


def test_every_test_the_docs_cite_exists() -> None:
    cited = {
        (file, name)
        for doc in MARKDOWN_FILES
        for file, name in _CITED_TEST.findall(doc.read_text())
    }
    missing = [
        f"{file}::{name}"
        for file, name in sorted(cited)
        if not (ROOT / file).is_file()
        or not re.search(rf"^def {name}\(", (ROOT / file).read_text(), re.MULTILINE)
    ]
    assert not missing


def test_all_has_no_duplicates() -> None:
    # Its order is ruff's (RUF022: constants, then classes, then functions).
    assert len(artifactstore.__all__) == len(set(artifactstore.__all__))


@pytest.mark.parametrize("name", artifactstore.__all__)
def test_every_public_name_is_importable(name: str) -> None:
    value = getattr(artifactstore, name)
    if inspect.isclass(value) or inspect.isfunction(value):
        assert value.__module__.startswith("artifactstore.")


def test_no_other_public_names_leak() -> None:
    # What the package namespace holds besides __all__: submodules, and the import machinery
    # of its lazy loading (`from __future__ import annotations`, TYPE_CHECKING).
    machinery = {"annotations", "TYPE_CHECKING"}
    leaked = [
        name
        for name, value in vars(artifactstore).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and name not in artifactstore.__all__
        and name not in machinery
    ]
    assert leaked == []
    # Every lazily loaded name is public, and every public name can be loaded.
    assert set(artifactstore._LOCATIONS) | {"__version__"} == set(artifactstore.__all__)


def test_setup_cfg_ships_every_package() -> None:
    # setup.cfg lists packages by name; a new subpackage missing there is missing from the
    # wheel (and from tox's installed copy) while an editable install hides it.
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    listed = set(parser["options"]["packages"].split())
    package_root = ROOT / "artifactstore"
    found = {
        ".".join(("artifactstore", *init.parent.relative_to(package_root).parts))
        for init in package_root.rglob("__init__.py")
    }
    assert found <= listed


def test_ci_run_sets_ci_mode_itself() -> None:
    # README and OPERATOR promise that .ci/run runs with CI=true (slow tests, no skipped
    # PostgreSQL leg), whoever starts it.
    assert re.search(r"^export CI=true$", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)
