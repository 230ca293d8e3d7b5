"""Suite-wide fixtures: a clean environment and one fresh database per test.

``ARTIFACTSTORE_TEST_DATABASE`` picks the database leg: ``sqlite`` (the default) or
``postgresql`` (tox's ``postgres`` factor sets it). `database_url` gives each test the URL of
a fresh, empty database of that kind; on the PostgreSQL leg the suite starts its own
throwaway server (tests/pg_server.py) the first time a test needs it, and every test that
uses `database_url`, `module_database_url` or `postgres_server` is marked ``postgres``, so
``pytest -m postgres`` runs exactly those. Tests that use `postgres_server` directly are
skipped on the SQLite leg.

When that server cannot start, the tests that need it are skipped, except under ``CI=true``
(or ``1``), where they fail: a CI leg that silently skips proves nothing (restic's rule).

Tests marked ``slow`` (racing processes, crash kills, memory of large pushes) are deselected
unless ``CI`` is set or the ``-m`` expression names ``slow``: a developer's default run stays
short, and `.ci/run` (which sets ``CI=true``) runs everything with the same command.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PostgresServer, PostgresUnavailableError, bin_dir_from
from s3_server import DUMMY_CREDENTIALS, S3Server, new_bucket

from artifactstore.config import S3Location

# pytester runs inner pytest sessions: tests/unit/test_test_infrastructure.py checks these rules.
pytest_plugins = ["pytester"]

DATABASE_ENV = "ARTIFACTSTORE_TEST_DATABASE"
DATABASE_KINDS = ("sqlite", "postgresql")
_KIND_KEY = pytest.StashKey[str]()
_DATABASE_FIXTURES = ("database_url", "module_database_url", "postgres_server")
"""A test using one of these runs on this leg's database: on PostgreSQL it is marked postgres."""


def pytest_configure(config: pytest.Config) -> None:
    kind = os.environ.get(DATABASE_ENV) or "sqlite"
    if kind not in DATABASE_KINDS:
        raise pytest.UsageError(
            f"{DATABASE_ENV}={kind!r} is not one of {', '.join(DATABASE_KINDS)}"
        )
    config.stash[_KIND_KEY] = kind


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _in_ci() and "slow" not in (config.option.markexpr or ""):
        slow = [item for item in items if item.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("slow")]
    on_postgres = config.stash[_KIND_KEY] == "postgresql"
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if on_postgres and any(name in fixtures for name in _DATABASE_FIXTURES):
            item.add_marker(pytest.mark.postgres)
        elif "postgres_server" in fixtures:
            # A test of the server itself belongs to the PostgreSQL leg; the SQLite leg
            # should not need PostgreSQL installed.
            item.add_marker(pytest.mark.skip(reason=f"PostgreSQL leg only ({DATABASE_ENV})"))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the developer's ARTIFACTSTORE_* settings from every test (Flask does the same)."""
    for name in list(os.environ):
        if name.startswith("ARTIFACTSTORE_") and not name.startswith("ARTIFACTSTORE_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def database_kind(pytestconfig: pytest.Config) -> str:
    """The database leg this run tests: "sqlite" or "postgresql"."""
    return pytestconfig.stash[_KIND_KEY]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's throwaway PostgreSQL server, started on first use."""
    try:
        server = PostgresServer.start(bin_dir_from(os.environ))
    except PostgresUnavailableError as exc:
        reason = f"PostgreSQL test server unavailable: {exc}"
        if _in_ci():
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database_url(
    database_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh, empty database; dropped after the test."""
    if database_kind == "sqlite":
        yield f"sqlite:///{tmp_path}/registry.db"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex}"
    server.create_database(name)
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture(scope="module")
def module_database_url(
    database_kind: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """Like database_url, one fresh database shared by a module's tests (a served store)."""
    if database_kind == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('module-db')}/registry.db"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex}"
    server.create_database(name)
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The session's S3-protocol server (moto, a child process on loopback), started on first
    use. moto is a test dependency, so there is no skip: a server that cannot start fails."""
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_location(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Location:
    """A fresh bucket on the test server, prefix 'store/'; dummy AWS credentials in the env."""
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = new_bucket(s3_server.endpoint)
    return S3Location(bucket, "store/", s3_server.endpoint, "us-east-1")


@pytest.fixture
def s3_url(s3_location: S3Location) -> str:
    """The storage URL of `s3_location`."""
    location = s3_location
    return f"s3://{location.bucket}/store?endpoint_url={location.endpoint_url}&region=us-east-1"


@pytest.fixture
def s3_server_endpoint(s3_location: S3Location) -> str:
    """The endpoint URL of the test S3 server (credentials set as for `s3_location`)."""
    assert s3_location.endpoint_url is not None
    return s3_location.endpoint_url
