"""The HTTP app under a real gunicorn: /health healthy and unhealthy, and the error table.

Each gunicorn runs as a subprocess on a free loopback port and is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from artifactstore import ArtifactStore
from artifactstore.config import redact_url
from artifactstore.errors import (
    ArtifactStoreError,
    ConflictError,
    InvalidNameError,
    PackageNotFoundError,
)
from artifactstore.schema import SCHEMA_REVISION
from artifactstore.web import create_app

PASSWORD = "hunter2-secret"
UNREACHABLE_URL = f"postgresql://ci:{PASSWORD}@127.0.0.1:1/artifacts"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    """GET url; (status, body) for any HTTP answer, URLError while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as answer:
        return answer.code, answer.read()


@contextmanager
def running(argv: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    """Start a server process, wait until it answers on port, and stop it by PID afterwards."""
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                get(f"{base}/health")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "server did not answer within 30 s"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def gunicorn(port: int) -> list[str]:
    """The gunicorn command line the operator docs give, on a test port."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        # The default control socket is one path per user: parallel servers would share it.
        "--no-control-socket",
        "artifactstore.web:create_app()",
    ]


def environment(database_url: str, root: Path) -> dict[str, str]:
    """The test environment with the store's settings in ARTIFACTSTORE_* variables."""
    return {
        **os.environ,
        "ARTIFACTSTORE_DATABASE_URL": database_url,
        "ARTIFACTSTORE_STORAGE_LOCAL_ROOT": str(root),
    }


def health(base: str) -> tuple[int, dict[str, object], bytes]:
    """GET /health: status, parsed JSON body and raw body."""
    status, body = get(f"{base}/health")
    document = json.loads(body)
    assert isinstance(document, dict)
    return status, document, body


def test_health_is_200_with_every_field_when_healthy(
    migrated_url: str, database_kind: str, tmp_path: Path
) -> None:
    root = tmp_path / "blobs"
    root.mkdir()
    port = free_port()
    with running(gunicorn(port), environment(migrated_url, root), port) as base:
        status, document, _ = health(base)
    assert status == 200
    assert document["status"] == "ok" and document["failing"] == []
    assert document["version"] == "0.1.0"
    assert document["database"] == {
        "detail": "ok",
        "dialect": database_kind,
        "expected_schema_revision": SCHEMA_REVISION,
        "reachable": True,
        "schema_revision": SCHEMA_REVISION,
        "url": redact_url(migrated_url),
    }
    storage = document["storage"]
    assert isinstance(storage, dict)
    assert storage["backend_id"] == "local" and storage["reachable"] is True
    assert isinstance(storage["free_bytes"], int) and storage["free_bytes"] > 0


def test_health_is_503_naming_the_database_when_it_is_unreachable(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    root.mkdir()
    port = free_port()
    with running(gunicorn(port), environment(UNREACHABLE_URL, root), port) as base:
        status, document, body = health(base)
    assert status == 503
    assert document["status"] == "unhealthy" and document["failing"] == ["database"]
    assert PASSWORD.encode() not in body
    assert b"ci:***@127.0.0.1:1" in body


@pytest.mark.parametrize("problem", ["missing", "a-file"])
def test_health_is_503_naming_storage_when_its_root_is_unusable(
    migrated_url: str, tmp_path: Path, problem: str
) -> None:
    root = tmp_path / "blobs"
    if problem == "a-file":
        root.write_text("not a directory")
    port = free_port()
    with running(gunicorn(port), environment(migrated_url, root), port) as base:
        status, document, _ = health(base)
    assert status == 503
    assert document["failing"] == ["storage"]


def test_serve_runs_the_app_under_gunicorn(migrated_url: str, tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    root.mkdir()
    port = free_port()
    argv = [sys.executable, "-m", "artifactstore", "serve", "--port", str(port)]
    argv += ["--workers", "1"]
    # serve keeps gunicorn's per-user control socket; a private HOME keeps it private too.
    env = {**environment(migrated_url, root), "HOME": str(tmp_path)}
    with running(argv, env, port) as base:
        status, document, _ = health(base)
    assert status == 200 and document["status"] == "ok"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (PackageNotFoundError("no package acme/app:1"), 404),
        (ConflictError("package acme/app:1 is finalized with different files"), 409),
        (InvalidNameError("package name 'Acme' contains 'A'"), 422),
        (ArtifactStoreError("database postgresql://ci:***@db/x: gone"), 500),
    ],
)
def test_errors_map_to_http_statuses_with_a_json_body(
    migrated_url: str, tmp_path: Path, error: ArtifactStoreError, status: int
) -> None:
    with ArtifactStore.open(migrated_url, tmp_path / "blobs") as store:
        app = create_app(store)

        def fail() -> str:
            raise error

        app.add_url_rule("/fail", view_func=fail)
        answer = app.test_client().get("/fail")
    assert answer.status_code == status
    assert answer.get_json() == {"error": str(error)}
