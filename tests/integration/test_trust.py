"""What proves a version (SPEC "Trust"): tampering with the database is refused or caught.

Each test edits the registry database directly, as someone with database access could, and
checks that reads go through the manifest the log fixed, that writers refuse to change a
finalized package, that `verify --all` names what was changed, that replay refuses a broken
log, and that a kept checkpoint catches a log whose chain was recomputed. The CLI is run
in-process (Click's CliRunner) against this leg's database.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import ColumnElement, Engine, delete, insert, select, text, update

from artifactstore import (
    ArtifactStore,
    DigestMismatchError,
    IntegrityError,
    LogIntegrityError,
    PackageFinalizedError,
    PackageStateError,
    schema,
)
from artifactstore.cli import cli
from artifactstore.events.model import Event, NewEvent, canonical_bytes, chain_digest
from artifactstore.ingest import staged_payload
from artifactstore.uploads import StagedFile

NAME, VERSION = "acme/app", "1"
TREE = {
    "README.md": b"# acme\n",
    "bin/app": os.urandom(100_000),
    "lib/data.bin": os.urandom(3_000),
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    for rel, data in TREE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "bin/app").chmod(0o755)
    return root


@pytest.fixture
def pushed(store: ArtifactStore, tree: Path) -> str:
    """The manifest digest of NAME:VERSION, pushed from `tree`."""
    return str(store.push(NAME, VERSION, tree).digest)


def run(store: ArtifactStore, blob_root: Path, *args: str) -> Result:
    """Run the CLI in-process against the store's database and blob root."""
    url = store.engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(cli, ["--db", url, "--root", str(blob_root), *args])


def tamper(store: ArtifactStore, statement: object) -> None:
    engine: Engine = store.engine
    with engine.begin() as connection:
        connection.execute(statement)  # type: ignore[call-overload]


def files_row(path: str) -> ColumnElement[bool]:
    return schema.artifact_files.c.path == path


def test_an_edited_file_row_changes_no_bytes_and_fails_verify_all(
    store: ArtifactStore, blob_root: Path, pushed: str, tmp_path: Path
) -> None:
    readme = next(f for f in store.list_files((NAME, VERSION)) if f.path == "README.md")
    other = next(f for f in store.list_files((NAME, VERSION)) if f.path == "lib/data.bin")
    tamper(
        store,
        update(schema.artifact_files)
        .where(files_row("bin/app"))
        .values(
            digest_primary=readme.blake3.hex,
            content_address=str(readme.content_address),
            size=other.size,
            executable=False,
        ),
    )
    with store.get_file((NAME, VERSION), "bin/app") as handle:
        assert handle.read() == TREE["bin/app"]
    assert (
        run(store, blob_root, "cat", f"{NAME}:{VERSION}", "bin/app").stdout_bytes == TREE["bin/app"]
    )
    store.pull((NAME, VERSION), tmp_path / "out")
    assert (tmp_path / "out/bin/app").read_bytes() == TREE["bin/app"]
    assert os.access(tmp_path / "out/bin/app", os.X_OK)

    result = run(store, blob_root, "verify", "--all")
    assert result.exit_code == 1, result.output
    assert f"artifact_files: package {NAME}:{VERSION} differs from the log" in result.output


def test_a_deleted_file_row_is_caught_and_pull_still_writes_every_file(
    store: ArtifactStore, blob_root: Path, pushed: str, tmp_path: Path
) -> None:
    tamper(store, delete(schema.artifact_files).where(files_row("README.md")))
    pulled = store.pull((NAME, VERSION), tmp_path / "out")
    assert sorted(f.path for f in pulled) == sorted(TREE)
    report = store.verify_all()
    assert not report.ok
    assert [p.message for p in report.problems] == [
        f"artifact_files: package {NAME}:{VERSION} differs from the log"
    ]


def test_an_inserted_file_row_is_never_pulled_and_fails_verify_all(
    store: ArtifactStore, blob_root: Path, pushed: str, tmp_path: Path
) -> None:
    real = store.list_files((NAME, VERSION))[0]
    package = store.get_package(NAME, VERSION)
    tamper(
        store,
        insert(schema.artifact_files).values(
            package_id=package.id,
            path="evil.sh",
            size=real.size,
            digest_algorithm="blake3",
            digest_primary=real.blake3.hex,
            digest_sha256=real.sha256.hex,
            content_address=str(real.content_address),
            executable=True,
            backend_id=real.backend_id,
            ingested_at="2026-11-30T00:00:00.000000Z",
        ),
    )
    store.pull((NAME, VERSION), tmp_path / "out")
    assert not (tmp_path / "out/evil.sh").exists()
    assert "evil.sh" not in run(store, blob_root, "show", NAME, VERSION).output
    result = run(store, blob_root, "verify", "--all")
    assert result.exit_code == 1
    assert f"artifact_files: package {NAME}:{VERSION} differs from the log" in result.output


def test_a_package_row_flipped_back_to_open_cannot_be_written_to(
    store: ArtifactStore, pushed: str
) -> None:
    tamper(
        store,
        update(schema.artifact_packages)
        .where(schema.artifact_packages.c.name == NAME)
        .values(state="open", manifest_digest=None, finalized_at=None),
    )
    before = len(list(store.tail_events()))
    package = store.get_package(NAME, VERSION)
    with pytest.raises(PackageFinalizedError, match="finalized"):
        store.ingest_file(package, "evil.sh", b"#!/bin/sh\n")
    with pytest.raises(PackageFinalizedError, match="finalized"):
        store.finalize_package(package)
    assert len(list(store.tail_events())) == before
    report = store.verify_all()
    assert any("artifact_packages" in p.message for p in report.problems), report.problems


def test_a_view_digest_that_disagrees_with_the_log_stops_reads(
    store: ArtifactStore, pushed: str, tree: Path, tmp_path: Path
) -> None:
    other = store.push(NAME, "2", tree, metadata={"other": "yes"})
    tamper(
        store,
        update(schema.artifact_packages)
        .where(schema.artifact_packages.c.version == VERSION)
        .values(manifest_digest=str(other.digest)),
    )
    with pytest.raises(IntegrityError, match="event log holds"):
        store.pull((NAME, VERSION), tmp_path / "out")
    assert not store.verify_package((NAME, VERSION)).ok


def test_a_deleted_event_is_caught_and_replay_refuses_the_log(
    store: ArtifactStore, blob_root: Path, pushed: str
) -> None:
    tamper(store, delete(schema.events).where(schema.events.c.sequence == 3))
    digest_before = store.state_digest()
    report = store.verify_all()
    assert report.chain is not None and report.chain.first_bad_sequence == 3

    with pytest.raises(LogIntegrityError, match="sequence 3"):
        store.replay()
    assert store.state_digest() == digest_before
    result = run(store, blob_root, "replay")
    assert result.exit_code == 1
    assert "sequence 3" in result.output
    checked = run(store, blob_root, "replay", "--check")
    assert checked.exit_code == 1
    assert "sequence 3" in checked.output
    assert "conflicted" not in checked.output
    assert run(store, blob_root, "replay", "--force").exit_code == 0


def test_an_event_after_a_finalize_breaks_the_rules(store: ArtifactStore, pushed: str) -> None:
    engine: Engine = store.engine
    with engine.begin() as connection:
        last = connection.execute(
            select(schema.events).order_by(schema.events.c.sequence.desc()).limit(1)
        ).one()
        finalized = connection.execute(
            select(schema.events).where(schema.events.c.event_type == "v1.package.finalized")
        ).one()
        # A forger with database access appends a file event, chained correctly.
        forged = {
            "sequence": last.sequence + 1,
            "event_id": "forged",
            "event_type": "v1.file.ingested",
            "occurred_at": finalized.occurred_at,
            "actor": "mallory",
            "package_id": finalized.package_id,
            "payload": staged_payload(
                StagedFile("extra", 1, "0" * 64, "0" * 64, False, "local", "k", last.occurred_at)
            ),
        }
        digest = chain_digest(
            last.chain_digest,
            canonical_bytes(
                forged["sequence"], NewEvent(**{k: v for k, v in forged.items() if k != "sequence"})
            ),
        )
        connection.execute(insert(schema.events).values(**forged, chain_digest=digest))
        connection.execute(
            update(schema.event_log_head).values(
                last_sequence=last.sequence + 1, chain_digest=digest
            )
        )
    report = store.verify_chain()
    assert [p.kind for p in report.problems] == ["rule"]
    assert "not allowed on a finalized package" in str(report.problems[0])
    with pytest.raises(LogIntegrityError, match=f"sequence {last.sequence + 1}"):
        store.replay(check=True)


def test_a_recomputed_chain_is_caught_by_a_kept_checkpoint(
    store: ArtifactStore, blob_root: Path, pushed: str, tree: Path
) -> None:
    kept = run(store, blob_root, "checkpoint").output.strip()
    store.push(NAME, "2", tree)
    engine: Engine = store.engine
    with engine.begin() as connection:
        connection.execute(
            update(schema.events).where(schema.events.c.sequence == 1).values(actor="mallory")
        )
        # Recompute every chain digest after the edit, as a careful forger would.
        previous = schema.GENESIS_CHAIN_DIGEST
        rows = connection.execute(select(schema.events).order_by(schema.events.c.sequence)).all()
        for row in rows:
            event = Event(*row)
            previous = chain_digest(previous, canonical_bytes(event.sequence, event))
            connection.execute(
                update(schema.events)
                .where(schema.events.c.sequence == event.sequence)
                .values(chain_digest=previous)
            )
        connection.execute(update(schema.event_log_head).values(chain_digest=previous))
    assert store.verify_chain().ok
    assert run(store, blob_root, "verify", "--all").exit_code == 0
    result = run(store, blob_root, "verify", "--all", "--checkpoint", kept)
    assert result.exit_code == 1
    assert "the log was rewritten" in result.output


def test_a_checkpoint_past_the_end_or_malformed_fails(
    store: ArtifactStore, blob_root: Path, pushed: str
) -> None:
    head = store.checkpoint()
    good = f"{head.sequence}:blake3:{head.chain_digest}"
    assert run(store, blob_root, "verify", "--all", "--checkpoint", good).exit_code == 0
    past = f"{head.sequence + 5}:blake3:{head.chain_digest}"
    result = run(store, blob_root, "verify", "--all", "--checkpoint", past)
    assert (result.exit_code, "log ends at" in result.output) == (1, True)
    assert run(store, blob_root, "verify", "--all", "--checkpoint", "x:y").exit_code == 2


def test_pinning_by_digest_and_expect_digest(
    store: ArtifactStore, blob_root: Path, pushed: str, tmp_path: Path, tree: Path
) -> None:
    assert store.get_manifest((NAME, VERSION)).digest == pushed
    pinned = f"{NAME}@{pushed}"
    assert run(store, blob_root, "cat", pinned, "README.md").stdout_bytes == TREE["README.md"]
    assert run(store, blob_root, "verify", pinned).exit_code == 0
    assert (
        run(store, blob_root, "show", f"{NAME}:{VERSION}", "--expect-digest", pushed).exit_code == 0
    )
    wrong = "blake3:" + "0" * 64
    for args in (
        ("pull", NAME, VERSION, str(tmp_path / "out"), "--expect-digest", wrong),
        ("cat", NAME, VERSION, "README.md", "--expect-digest", wrong),
        ("show", NAME, VERSION, "--expect-digest", wrong),
        ("verify", NAME, VERSION, "--expect-digest", wrong),
    ):
        result = run(store, blob_root, *args)
        assert result.exit_code == 1, (args, result.output)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert run(store, blob_root, "cat", f"{NAME}@{wrong}", "README.md").exit_code == 2
    with pytest.raises(DigestMismatchError):
        store.get_manifest_bytes((NAME, VERSION), expect_digest=wrong)


def test_open_packages_are_not_pulled_catted_or_verified(
    store: ArtifactStore, blob_root: Path, tmp_path: Path
) -> None:
    package = store.create_package(NAME, VERSION)
    store.ingest_file(package, "a", b"part of a build")
    pull = run(store, blob_root, "pull", NAME, VERSION, str(tmp_path / "out"))
    assert (pull.exit_code, "not finalized" in pull.output) == (2, True)
    assert not (tmp_path / "out").exists()
    cat = run(store, blob_root, "cat", f"{NAME}:{VERSION}", "a")
    assert (cat.exit_code, "not finalized" in cat.output) == (2, True)
    verify = run(store, blob_root, "verify", NAME, VERSION)
    assert (verify.exit_code, "not finalized" in verify.output) == (1, True)
    assert run(store, blob_root, "verify", "--all").exit_code == 0
    assert "\topen\t" in run(store, blob_root, "ls").output
    with pytest.raises(PackageStateError):
        store.get_file(package, "a")


def test_push_json_carries_the_finalize_event(
    store: ArtifactStore, blob_root: Path, tree: Path
) -> None:
    first = run(store, blob_root, "--json", "push", f"{NAME}:{VERSION}", str(tree))
    assert first.exit_code == 0, first.output
    created = json.loads(first.output)
    again = json.loads(run(store, blob_root, "--json", "push", NAME, VERSION, str(tree)).output)
    assert (created["created"], again["created"]) == (True, False)
    assert created["digest"] == again["digest"] == created["manifest_digest"]
    [finalized] = [e for e in store.tail_events() if e.event_type == "v1.package.finalized"]
    assert created["sequence"] == again["sequence"] == finalized.sequence
    assert created["chain_digest"] == again["chain_digest"] == f"blake3:{finalized.chain_digest}"
    head = json.loads(run(store, blob_root, "--json", "checkpoint").output)
    assert head == {"sequence": finalized.sequence, "chain_digest": created["chain_digest"]}


def test_a_replay_check_names_nothing_when_the_views_are_true(
    store: ArtifactStore, pushed: str
) -> None:
    report = store.replay(check=True)
    assert report.identical and report.differences == ()
    engine: Engine = store.engine
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM upload_sessions")).scalar() == 0
