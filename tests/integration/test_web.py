"""The HTTP app under a real gunicorn: /health healthy and unhealthy, and the error table.

Each gunicorn runs as a subprocess on a free loopback port and is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
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
        with urllib.request.urlopen(url, timeout=15) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as answer:
        return answer.code, answer.read()


@contextmanager
def running(argv: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    """Start a server process, wait until it answers on port, and stop it by PID afterwards."""
    with started(argv, env, port) as (base, _):
        yield base


@contextmanager
def started(
    argv: list[str], env: dict[str, str], port: int
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """running(), giving the process too: (base URL, process)."""
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
        yield base, process
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


def serve(port: int) -> list[str]:
    """The `artifactstore serve` command line on a test port."""
    return [sys.executable, "-m", "artifactstore", "serve", "--port", str(port), "--workers", "1"]


@pytest.mark.parametrize("how", ["deleted", "garbage"])
@pytest.mark.parametrize(("part", "name"), [("database", "registry.db"), ("storage", "small")])
def test_health_is_503_when_a_file_is_deleted_or_replaced_under_the_server(
    tmp_path: Path, part: str, name: str, how: str
) -> None:
    # The server's pooled connections keep reading the unlinked file: /health answered 200.
    root = tmp_path / "blobs"
    url = f"sqlite:///{tmp_path}/registry.db"
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_bytes(b"small")
    with ArtifactStore.open(url, root) as store:
        store.push("acme/app", "1", source)
    target = tmp_path / name if part == "database" else root / "small-blobs.db"
    port = free_port()
    with running(gunicorn(port), environment(url, root), port) as base:
        assert health(base)[0] == 200
        if how == "deleted":
            target.unlink()
        else:
            garbage = target.with_name("garbage")
            garbage.write_bytes(os.urandom(8192))
            garbage.replace(target)
        status, document, _ = health(base)
    assert status == 503
    assert document["failing"] == [part]


@pytest.mark.slow  # waits out the 5 s connect timeout, twice
def test_health_is_503_within_seconds_when_postgresql_does_not_answer(tmp_path: Path) -> None:
    # A listening socket that never accepts: the TCP connection opens, the server never speaks.
    root = tmp_path / "blobs"
    root.mkdir()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"postgresql://ci:{PASSWORD}@127.0.0.1:{silent.getsockname()[1]}/artifacts"
        port = free_port()
        with running(gunicorn(port), environment(url, root), port) as base:
            started = time.monotonic()
            status, document, _ = health(base)
            assert time.monotonic() - started < 10
    assert status == 503 and document["failing"] == ["database"]


def test_a_slow_store_opening_does_not_hold_up_other_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        # connect_timeout=2 (psycopg's least) keeps the test short.
        url = f"postgresql://ci@127.0.0.1:{silent.getsockname()[1]}/x?connect_timeout=2"
        monkeypatch.setenv("ARTIFACTSTORE_DATABASE_URL", url)
        monkeypatch.setenv("ARTIFACTSTORE_STORAGE_LOCAL_ROOT", str(tmp_path))
        app = create_app()
        slow = threading.Thread(target=lambda: app.test_client().get("/health"))
        slow.start()
        time.sleep(0.5)  # the slow request is now opening the store
        started = time.monotonic()
        answer = app.test_client().get("/health")
        waited = time.monotonic() - started
        slow.join()
    assert answer.status_code == 503
    assert waited < 1, f"the second request waited {waited:.1f} s for the first"


def test_every_error_is_json(migrated_url: str, tmp_path: Path) -> None:
    with ArtifactStore.open(migrated_url, tmp_path / "blobs") as store:
        app = create_app(store)

        def crash() -> str:
            raise RuntimeError("secret detail")

        app.add_url_rule("/crash", view_func=crash)
        client = app.test_client()
        answers = {
            404: client.get("/"),
            405: client.post("/health"),
            500: client.get("/crash"),
        }
    for status, answer in answers.items():
        assert answer.status_code == status
        assert answer.mimetype == "application/json"
        document = answer.get_json()
        assert isinstance(document, dict) and set(document) == {"error"}
        assert isinstance(document["error"], str)
    assert answers[405].headers["Allow"]
    assert b"secret" not in answers[500].data and b"Traceback" not in answers[500].data


def test_serve_runs_the_app_under_gunicorn(migrated_url: str, tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    root.mkdir()
    port = free_port()
    env = {**environment(migrated_url, root), "HOME": str(tmp_path)}
    with running(serve(port), env, port) as base:
        status, document, _ = health(base)
    assert status == 200 and document["status"] == "ok"


def test_two_servers_of_one_user_do_not_share_a_control_socket(
    migrated_url: str, tmp_path: Path
) -> None:
    # gunicorn's default control socket is ~/.gunicorn/gunicorn.ctl: the second server took it
    # over and stopping either deleted it under the other.
    root = tmp_path / "blobs"
    root.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {**environment(migrated_url, root), "HOME": str(home), "XDG_RUNTIME_DIR": ""}
    first, second = free_port(), free_port()
    with running(serve(first), env, first) as base:
        with running(serve(second), env, second) as other:
            assert health(other)[0] == 200
            sockets = list(home.rglob("*.ctl"))
            # None, or one each.
            assert len(sockets) in (0, 2), sockets
        assert health(base)[0] == 200
        assert len(list(home.rglob("*.ctl"))) == len(sockets) // 2


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
