"""Migrations: head matches schema.py on both databases, round-trips, ships inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text

from artifactstore import ArtifactStore, SchemaVersionError, migration, schema

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    built = schema.make_engine(database_url)
    yield built
    built.dispose()


def test_code_revision_is_the_migrations_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(migration.migrations_directory()))
    assert ScriptDirectory.from_config(config).get_current_head() == schema.SCHEMA_REVISION


def test_upgraded_schema_matches_the_table_definitions(engine: Engine) -> None:
    migration.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, schema.metadata) == []


def test_upgrade_seeds_the_five_retention_classes_and_the_log_head(engine: Engine) -> None:
    migration.upgrade(engine)
    with engine.connect() as connection:
        classes = connection.execute(
            select(schema.retention_classes.c.name, schema.retention_classes.c.keep_days)
        ).all()
        head = connection.execute(select(schema.event_log_head)).one()
    assert sorted(classes) == sorted(
        [("ephemeral", 1), ("ci", 14), ("standard", 90), ("release", None), ("legal-hold", None)]
    )
    assert (head.last_sequence, head.chain_digest) == (0, schema.GENESIS_CHAIN_DIGEST)


def test_downgrade_to_base_and_up_again(engine: Engine) -> None:
    migration.upgrade(engine)
    migration.downgrade(engine)
    with engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        assert migration.current_revision(connection) is None
    migration.upgrade(engine)
    with engine.connect() as connection:
        assert migration.current_revision(connection) == schema.SCHEMA_REVISION


def test_open_refuses_a_database_that_is_behind(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    migration.upgrade(engine)
    migration.downgrade(engine)
    with pytest.raises(SchemaVersionError, match="artifactstore migrate"):
        ArtifactStore.open(database_url, tmp_path / "blobs")


def test_open_refuses_a_database_that_is_ahead(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    migration.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaVersionError, match="revision 9999"):
        ArtifactStore.open(database_url, tmp_path / "blobs")


def test_open_creates_and_migrates_a_new_sqlite_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new/registry.db"
    with ArtifactStore.open(url, tmp_path / "blobs") as store:
        assert store.schema_revision() == schema.SCHEMA_REVISION
        assert store.storage_health().reachable
    assert (tmp_path / "blobs").is_dir()


def test_open_leaves_a_missing_root_of_an_existing_store_missing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/registry.db"
    ArtifactStore.open(url, tmp_path / "blobs").close()
    (tmp_path / "blobs").rmdir()
    with ArtifactStore.open(url, tmp_path / "blobs") as store:
        assert not store.storage_health().reachable


def test_moving_the_payload_last_keeps_every_event(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    def columns() -> list[str]:
        with engine.connect() as connection:
            return [c["name"] for c in inspect(connection).get_columns("events")]

    def events() -> list[tuple[object, ...]]:
        with engine.connect() as connection:
            query = text("SELECT sequence, payload, chain_digest FROM events ORDER BY sequence")
            return [tuple(row) for row in connection.execute(query)]

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"a")
    migration.upgrade(engine)
    with ArtifactStore.open(database_url, tmp_path / "blobs") as store:
        store.push("acme/moved", "1", tree)
    written = events()
    migration.downgrade(engine, "0004")
    assert columns()[-2:] == ["payload", "chain_digest"]
    assert events() == written
    migration.upgrade(engine)
    assert columns()[-2:] == ["chain_digest", "payload"]
    assert events() == written
    with ArtifactStore.open(database_url, tmp_path / "blobs") as store:
        assert store.verify_all().ok
        assert store.replay(check=True).identical


def test_upgrading_to_tombstones_rebuilds_abandoned_packages_as_replay_would(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"a")
    migration.upgrade(engine)
    with ArtifactStore.open(database_url, tmp_path / "blobs") as store:
        store.push("acme/kept", "1", tree)
        store.create_package("acme/dropped", "1", "ci", {"k": "v"})
        store.ingest_file(("acme/dropped", "1"), "a.txt", b"a")
        store.abandon_package(("acme/dropped", "1"))
        expected = store.state_digest()
    migration.downgrade(engine, "0005")  # abandoned packages leave the views, as they did
    with engine.connect() as connection:
        names = connection.execute(text("SELECT name FROM artifact_packages")).scalars()
        assert list(names) == ["acme/kept"]
    migration.upgrade(engine)
    with ArtifactStore.open(database_url, tmp_path / "blobs") as store:
        assert store.state_digest() == expected
        assert store.replay(check=True).identical
        dropped = store.get_package("acme/dropped", "1")
        assert (dropped.state, dropped.retention_class) == ("abandoned", "ci")


def test_upgrading_adds_the_sha256_index_the_v2_blob_lookup_uses(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    def indexes() -> set[str]:
        with engine.connect() as connection:
            return {str(i["name"]) for i in inspect(connection).get_indexes("artifact_files")}

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(b"a")
    migration.upgrade(engine, "0006")
    assert "ix_artifact_files_digest_sha256" not in indexes()
    with engine.begin() as connection:  # a store of the previous revision, with a package
        connection.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    with ArtifactStore.open(database_url, tmp_path / "blobs") as store:
        store.push("acme/indexed", "1", tree)
        sha256 = store.list_files(("acme/indexed", "1"))[0].sha256.hex
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    migration.upgrade(engine)
    assert "ix_artifact_files_digest_sha256" in indexes()
    with ArtifactStore.open(database_url, tmp_path / "blobs") as store:
        found = store.oci.package_with_blob("acme/indexed", sha256)
        assert found is not None and found.version == "1"
        assert store.replay(check=True).identical
    migration.downgrade(engine, "0006")
    assert "ix_artifact_files_digest_sha256" not in indexes()


@pytest.mark.slow
def test_migrations_run_from_the_built_wheel_without_a_checkout(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
    )
    [wheel] = (tmp_path / "dist").glob("artifactstore-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert "artifactstore/_migrations/env.py" in names
    assert "artifactstore/_migrations/versions/0001_initial.py" in names
    script = (
        "import sys; from artifactstore import migration, schema;"
        "assert str(migration.migrations_directory()).startswith(sys.argv[1]);"
        "e = schema.make_engine(sys.argv[2]); migration.upgrade(e);"
        "print(e.connect().exec_driver_sql('select version_num from alembic_version').scalar())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "site"), f"sqlite:///{tmp_path}/w.db"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == schema.SCHEMA_REVISION
