"""The `database_url` fixture gives each test a fresh, empty database of the leg's kind."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from pg_server import PostgresServer

_seen_urls: list[str] = []


def _table_names(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_database_url_connects_to_the_selected_kind(
    database_url: str, database_kind: str, tmp_path: Path
) -> None:
    if database_kind == "sqlite":
        db_file = tmp_path / "registry.db"
        assert database_url == f"sqlite:///{db_file}"
        assert not db_file.exists()
    engine = sa.create_engine(database_url)
    try:
        assert engine.dialect.name == database_kind
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            if database_kind == "postgresql":
                version = conn.execute(sa.text("SHOW server_version")).scalar_one()
                assert str(version).startswith("15")
    finally:
        engine.dispose()


@pytest.mark.parametrize("turn", [1, 2])
def test_each_test_gets_a_fresh_empty_database(database_url: str, turn: int) -> None:
    # Each turn leaves a table behind; the other turn must not see it.
    assert database_url not in _seen_urls
    _seen_urls.append(database_url)
    assert _table_names(database_url) == []
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE left_by_turn_{turn} (id INTEGER PRIMARY KEY)"))
    finally:
        engine.dispose()
    assert _table_names(database_url) == [f"left_by_turn_{turn}"]


def test_drop_database_disconnects_remaining_sessions(postgres_server: PostgresServer) -> None:
    name = f"t_{uuid.uuid4().hex}"
    postgres_server.create_database(name)
    leaked = psycopg.connect(postgres_server.url(name).replace("+psycopg", ""))
    try:
        leaked.execute("SELECT 1")
        postgres_server.drop_database(name)
    finally:
        leaked.close()
    admin = sa.create_engine(postgres_server.url("postgres"))
    try:
        with admin.connect() as conn:
            count = conn.execute(
                sa.text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar_one()
        assert count == 0
    finally:
        admin.dispose()
