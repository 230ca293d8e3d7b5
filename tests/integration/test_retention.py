"""Retention that ends packages: expiry by class on an injected clock, holds, delete, and the
tombstones an ended package leaves (SPEC "Retention, deletion and garbage collection")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clock import Clock
from test_cli import Cli, base_env, one_error_line

from artifactstore import (
    ArtifactStore,
    PackageHeldError,
    PackageStateError,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> Cli:
    """A CLI over a fresh, migrated database and an empty blob root."""
    return Cli({**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}, tmp_path)


def push(store: ArtifactStore, tmp_path: Path, version: str, retention: str) -> None:
    tree = tmp_path / f"tree-{version}"
    tree.mkdir(exist_ok=True)
    (tree / "a.txt").write_bytes(f"file of {version}".encode())
    store.push("acme/app", version, tree, retention_class=retention)


@pytest.mark.parametrize(
    ("retention", "days"),
    [("ephemeral", 1), ("ci", 14), ("standard", 90), ("release", None), ("legal-hold", None)],
)
def test_each_class_expires_exactly_when_spec_says(
    timed: ArtifactStore, clock: Clock, tmp_path: Path, retention: str, days: int | None
) -> None:
    push(timed, tmp_path, "1", retention)
    if days is None:
        assert list(timed.expire(START + timedelta(days=100_000))) == []
        assert timed.get_package("acme/app", "1").state == "finalized"
        return
    due = START + timedelta(days=days)
    assert list(timed.expire(due - timedelta(microseconds=1))) == []
    assert [str(p) for p in timed.expire(due, dry_run=True)] == ["acme/app:1"]
    assert timed.get_package("acme/app", "1").state == "finalized"
    assert [str(p) for p in timed.expire(due)] == ["acme/app:1"]
    assert timed.get_package("acme/app", "1").state == "expired"
    assert list(timed.expire(due)) == []


def test_expire_uses_now_by_default(timed: ArtifactStore, clock: Clock, tmp_path: Path) -> None:
    push(timed, tmp_path, "1", "ephemeral")
    push(timed, tmp_path, "2", "ci")
    clock.now = START + timedelta(days=2)
    assert [str(p) for p in timed.expire()] == ["acme/app:1"]
    assert [str(p) for p in timed.list_packages()] == ["acme/app:2"]
    states = {p.version: p.state for p in timed.list_packages(include_ended=True)}
    assert states == {"1": "expired", "2": "finalized"}


def test_a_hold_blocks_expire_and_delete_until_released(
    timed: ArtifactStore, clock: Clock, tmp_path: Path
) -> None:
    push(timed, tmp_path, "1", "ephemeral")
    held = timed.hold("acme/app:1", "incident 4711")
    assert held.hold_reason == "incident 4711"
    assert timed.hold("acme/app:1", "incident 4711") == held  # again: nothing changes
    with pytest.raises(PackageHeldError, match="held"):
        timed.hold("acme/app:1", "another reason")
    assert list(timed.expire(START + timedelta(days=30))) == []
    with pytest.raises(PackageHeldError, match="incident 4711"):
        timed.delete_package("acme/app:1")
    assert timed.unhold("acme/app:1").hold_reason is None
    assert [str(p) for p in timed.expire(START + timedelta(days=30))] == ["acme/app:1"]


def test_legal_hold_class_refuses_delete_until_the_class_changes(
    timed: ArtifactStore, tmp_path: Path
) -> None:
    push(timed, tmp_path, "1", "legal-hold")
    with pytest.raises(PackageHeldError, match="legal-hold"):
        timed.delete_package("acme/app:1")
    changed = timed.change_retention("acme/app:1", "ci")
    assert changed.retention_class == "ci"
    assert changed.expires_at == "2026-01-15T00:00:00.000000Z"
    assert timed.delete_package("acme/app:1").state == "deleted"


def test_a_retention_change_recomputes_expiry_from_the_finalize_time(
    timed: ArtifactStore, clock: Clock, tmp_path: Path
) -> None:
    push(timed, tmp_path, "1", "ephemeral")
    clock.now = START + timedelta(hours=12)
    assert timed.change_retention("acme/app:1", "release").expires_at is None
    assert list(timed.expire(START + timedelta(days=1000))) == []
    assert timed.change_retention("acme/app:1", "ci").expires_at == "2026-01-15T00:00:00.000000Z"


def test_an_ended_version_keeps_its_tombstone(
    timed: ArtifactStore, tmp_path: Path, migrated_url: str, blob_root: Path
) -> None:
    push(timed, tmp_path, "1", "standard")
    timed.delete_package("acme/app:1")
    for call in (
        lambda: timed.list_files("acme/app:1"),
        lambda: timed.get_file("acme/app:1", "a.txt"),
        lambda: timed.pull("acme/app:1", tmp_path / "out"),
        lambda: timed.verify_package("acme/app:1"),
        lambda: push(timed, tmp_path, "1", "standard"),
        lambda: timed.delete_package("acme/app:1"),
    ):
        with pytest.raises(PackageStateError, match="deleted"):
            call()
    assert not (tmp_path / "out").exists()
    assert timed.verify_all().ok
    assert timed.replay(check=True).identical


def test_an_abandoned_version_is_never_reused(timed: ArtifactStore) -> None:
    timed.create_package("acme/app", "1")
    timed.abandon_package("acme/app:1")
    assert timed.get_package("acme/app", "1").state == "abandoned"
    with pytest.raises(Exception, match="already exists"):
        timed.create_package("acme/app", "1")
    assert timed.replay(check=True).identical


def test_replay_after_ends_and_holds_reproduces_identical_views(
    timed: ArtifactStore, clock: Clock, tmp_path: Path
) -> None:
    for version, retention in (("1", "ephemeral"), ("2", "ci"), ("3", "standard")):
        push(timed, tmp_path, version, retention)
    timed.hold("acme/app:2", "audit")
    timed.change_retention("acme/app:3", "release")
    list(timed.expire(START + timedelta(days=20)))
    timed.unhold("acme/app:2")
    timed.delete_package("acme/app:2")
    before = timed.state_digest()
    report = timed.replay()
    assert report.identical and timed.state_digest() == before
    states = {str(p): p.state for p in timed.list_packages(include_ended=True)}
    assert states == {"acme/app:1": "expired", "acme/app:2": "deleted", "acme/app:3": "finalized"}


def test_cli_delete_hold_expire_and_ls_all(cli: Cli, tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "a").write_bytes(b"a")
    assert cli("push", "acme/app", "1", str(tree), "--retention", "ephemeral").code == 0
    assert cli("push", "acme/app", "2", str(tree)).code == 0
    assert cli("hold", "acme/app", "2", "--reason", "audit").code == 0
    assert "held" in one_error_line(cli("delete", "acme/app:2", "--yes"), 2)
    assert "--yes" in one_error_line(cli("delete", "acme/app:1"), 2)
    expired = cli("expire", "--as-of", "2999-01-01T00:00:00Z", "--dry-run")
    assert expired.code == 0 and expired.text.startswith("acme/app:1\t")
    assert cli("ls").text.count("\n") == 2
    assert as_dict(cli("--json", "expire", "--as-of", "2999-01-01T00:00:00Z").json())["count"] == 1
    assert [line.split("\t")[0] for line in cli("ls").text.splitlines()] == ["acme/app:2"]
    assert "expired" in cli("ls", "--all").text
    assert "expired" in one_error_line(cli("pull", "acme/app", "1", str(tmp_path / "o")), 2)
    assert "expired" in one_error_line(cli("push", "acme/app", "1", str(tree)), 2)
    assert "RFC 3339" in one_error_line(cli("expire", "--as-of", "tomorrow"), 2)
    assert cli("unhold", "acme/app", "2").code == 0
    assert cli("retention", "acme/app", "2", "release").code == 0
    assert cli("delete", "acme/app", "2", "--yes").code == 0
    listed = cli("--json", "ls", "--all").json()
    assert isinstance(listed, list)
    assert {p["version"]: p["state"] for p in listed} == {"1": "expired", "2": "deleted"}


def as_dict(value: object) -> dict[str, object]:
    assert isinstance(value, dict)
    return value
