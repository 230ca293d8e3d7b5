"""A real server for the remote client's tests: gunicorn with 4 workers over a store, and a
TCP proxy in front of it that records each request and can cut an answer off mid-body.

The server is gunicorn itself (`artifactstore.web:create_app()`, as `artifactstore serve`
runs it) with an access log, so a test counts the PUTs a push made from the server's side.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from test_web import free_port

from artifactstore import ArtifactStore, migration, schema

WORKERS = 4


@dataclass(frozen=True)
class Served:
    """A running server: its URL, the store's settings, its logs, and a token per scope."""

    url: str
    database_url: str
    blob_root: Path
    access_log: Path
    error_log: Path
    admin: str
    writer: str
    reader: str
    acme_writer: str

    def open(self) -> ArtifactStore:
        """The server's store, opened locally (as an operator on the server's host would)."""
        return ArtifactStore.open(self.database_url, self.blob_root)

    def requests(self, head: str) -> int:
        """How many requests the server has logged whose line starts with head
        ('PUT /v1/blobs/')."""
        if not self.access_log.exists():
            return 0
        return self.access_log.read_text(encoding="utf-8", errors="replace").count(f'"{head}')

    def blob_puts(self) -> int:
        """How many blob uploads (PUT /v1/blobs/...) the server has logged."""
        return self.requests("PUT /v1/blobs/")

    def blob_batches(self) -> int:
        """How many batch uploads of small blobs (POST /v1/blobs/batch) the server has logged."""
        return self.requests("POST /v1/blobs/batch")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextlib.contextmanager
def serving(database_url: str, where: Path) -> Iterator[Served]:
    """Migrate database_url, make tokens, run gunicorn with WORKERS workers; stop it after."""
    engine = schema.make_engine(database_url)
    try:
        migration.upgrade(engine)
    finally:
        engine.dispose()
    root = where / "server-blobs"
    with ArtifactStore.open(database_url, root) as store:
        secrets = {
            name: store.create_token(name, scope, prefix)[1]
            for name, scope, prefix in (
                ("admin", "admin", None),
                ("writer", "write", None),
                ("reader", "read", None),
                ("acme-writer", "write", "acme/"),
            )
        }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    access, errors = where / "access.log", where / "error.log"
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", str(WORKERS), "--timeout", "120", "--no-control-socket"]
    argv += ["--access-logfile", str(access), "--error-logfile", str(errors)]
    env = {
        **os.environ,
        "ARTIFACTSTORE_DATABASE_URL": database_url,
        "ARTIFACTSTORE_STORAGE_LOCAL_ROOT": str(root),
        "HOME": str(where),
    }
    process = subprocess.Popen(
        [*argv, "artifactstore.web:create_app()"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers(url):
            assert process.poll() is None, errors.read_text() if errors.exists() else "died"
            assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
            time.sleep(0.1)
        yield Served(
            url,
            database_url,
            root,
            access,
            errors,
            secrets["admin"],
            secrets["writer"],
            secrets["reader"],
            secrets["acme-writer"],
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Proxy:
    """A loopback TCP proxy to a server that records request heads and breaks some exchanges.

    Each rule applies once, to the next request whose head (request line and headers)
    satisfies its test: `cut` lets `after` bytes of the answer through, `cut_upload` lets
    `after` bytes of the request through, and then the proxy closes both connections, as a
    network failure would; `refuse` answers `status` itself (and closes) instead of
    forwarding the request. Everything else passes through unchanged.
    """

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.heads: list[str] = []
        self._rules: list[tuple[str, Callable[[str], bool], int]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, when: Callable[[str], bool], after: int) -> None:
        """Cut the next answer to a request whose head satisfies when after `after` bytes."""
        with self._lock:
            self._rules.append(("answer", when, after))

    def cut_upload(self, when: Callable[[str], bool], after: int) -> None:
        """Cut the next request whose head satisfies when after `after` bytes of it."""
        with self._lock:
            self._rules.append(("request", when, after))

    def refuse(self, when: Callable[[str], bool], status: int) -> None:
        """Answer the next request whose head satisfies when with status, unforwarded."""
        with self._lock:
            self._rules.append(("refuse", when, status))

    def close(self) -> None:
        """Stop accepting connections."""
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            budget: list[int | None] = [None]
            threading.Thread(target=self._up, args=(client, server, budget), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, budget), daemon=True).start()

    def _rule(self, head: str) -> tuple[str, int] | None:
        with self._lock:
            self.heads.append(head)
            for index, (kind, when, number) in enumerate(self._rules):
                if when(head):
                    del self._rules[index]
                    return kind, number
        return None

    def _up(self, client: socket.socket, server: socket.socket, budget: list[int | None]) -> None:
        up_budget: int | None = None
        with contextlib.suppress(OSError):
            while data := client.recv(1 << 16):
                if data[:8].split(b" ")[0] in (b"GET", b"PUT", b"POST", b"DELETE", b"HEAD"):
                    rule = self._rule(data.split(b"\r\n\r\n")[0].decode("latin-1"))
                    if rule is not None and rule[0] == "refuse":
                        body = b'{"error": {"code": "unavailable", "message": "proxy says no"}}'
                        client.sendall(
                            f"HTTP/1.1 {rule[1]} Refused\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                            + body
                        )
                        break
                    if rule is not None and rule[0] == "answer":
                        budget[0] = rule[1]
                    if rule is not None and rule[0] == "request":
                        up_budget = rule[1]
                if up_budget is not None and len(data) >= up_budget:
                    server.sendall(data[:up_budget])
                    break
                if up_budget is not None:
                    up_budget -= len(data)
                server.sendall(data)
        _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, budget: list[int | None]) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(1 << 16):
                left = budget[0]
                if left is not None and len(data) >= left:
                    client.sendall(data[:left])
                    break
                if left is not None:
                    budget[0] = left - len(data)
                client.sendall(data)
        _close(client, server)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
