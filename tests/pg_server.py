"""A throwaway PostgreSQL 15 server for the test suite.

`PostgresServer.start()` runs ``initdb`` into a fresh temporary directory and starts
``postgres`` on 127.0.0.1 on a free port, with trust authentication and the superuser
``artifactstore``; `stop()` shuts it down and removes the directory. Tests get one empty
database each (`create_database` / `drop_database`) and reach it through `url()`.

PostgreSQL refuses to run as root. When the suite runs as root, the data directory belongs
to the unprivileged ``postgres`` OS user and every server binary runs as that user; otherwise
everything runs as the current user. The binaries come from ``/usr/lib/postgresql/15/bin``
unless ``ARTIFACTSTORE_TEST_PG_BIN`` names another directory.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

DEFAULT_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
BIN_DIR_ENV = "ARTIFACTSTORE_TEST_PG_BIN"
SUPERUSER = "artifactstore"
HOST = "127.0.0.1"
_UNPRIVILEGED_OS_USER = "postgres"
_START_ATTEMPTS = 3
_TIMEOUT_SECONDS = 60


class PostgresUnavailableError(RuntimeError):
    """The test server could not be started; the message says why."""


@dataclass(frozen=True, slots=True)
class _RunAs:
    """The OS identity the server binaries run as (None: the current user)."""

    uid: int | None
    gid: int | None


def bin_dir_from(environ: Mapping[str, str]) -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    configured = environ.get(BIN_DIR_ENV)
    return Path(configured) if configured else DEFAULT_BIN_DIR


class PostgresServer:
    """A running throwaway server; build it with `PostgresServer.start()`."""

    def __init__(self, bin_dir: Path, base_dir: Path, port: int, run_as: _RunAs) -> None:
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.port = port
        self._run_as = run_as

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    @classmethod
    def start(cls, bin_dir: Path) -> PostgresServer:
        """Initialise and start a server; raises PostgresUnavailableError with the reason."""
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not os.access(bin_dir / tool, os.X_OK):
                raise PostgresUnavailableError(
                    f"PostgreSQL binary {bin_dir / tool} not found or not executable; "
                    f"install PostgreSQL 15 or set {BIN_DIR_ENV}"
                )
        run_as = _unprivileged_identity()
        base_dir = _make_base_dir(run_as)
        server = cls(bin_dir, base_dir, port=0, run_as=run_as)
        try:
            server._initdb()
            server._start_on_free_port()
        except BaseException:
            shutil.rmtree(base_dir, ignore_errors=True)
            raise
        return server

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        try:
            result = self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(_TIMEOUT_SECONDS))
            if result.returncode != 0:
                self._pg_ctl("stop", "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL of database dbname on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def create_database(self, name: str) -> None:
        """Create an empty database called name."""
        with self._admin_connection() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        """Drop database name, disconnecting whoever still uses it (e.g. a leaked pool)."""
        with self._admin_connection() as conn:
            # WITH (FORCE) (PostgreSQL 13+) terminates the other backends on that database
            # first, in the same statement, so a new connection cannot sneak in between.
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def _admin_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=HOST, port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        )

    def _initdb(self) -> None:
        self._run(
            [
                str(self.bin_dir / "initdb"),
                *("-D", str(self.data_dir), "-U", SUPERUSER),
                *("--auth=trust", "--encoding=UTF8", "--locale=C"),
                # The cluster is thrown away at the end of the session: no need to fsync it.
                "--no-sync",
            ]
        )

    def _start_on_free_port(self) -> None:
        # The free port is found by binding port 0 and closing the socket, so another process
        # can take it before postgres binds it: retry with a new port.
        failure = ""
        for _ in range(_START_ATTEMPTS):
            self.port = _free_port()
            options = [
                "-c listen_addresses=" + HOST,
                f"-c port={self.port}",
                "-c unix_socket_directories=" + shlex.quote(str(self.base_dir)),
                "-c max_connections=100",
                # fsync and full-page writes protect against power loss, which a throwaway
                # test server does not need to survive; without them the suite runs faster.
                "-c fsync=off",
                "-c full_page_writes=off",
            ]
            result = self._pg_ctl(
                "start",
                *("-w", "-t", str(_TIMEOUT_SECONDS), "-l", str(self.log_file)),
                *("-o", " ".join(options)),
            )
            if result.returncode == 0:
                return
            failure = f"{result.stdout}{result.stderr}{self._log_tail()}"
            if "already in use" not in failure:
                break
        raise PostgresUnavailableError(f"PostgreSQL server failed to start:\n{failure}")

    def _pg_ctl(self, action: str, *options: str) -> subprocess.CompletedProcess[str]:
        return self._run(
            [str(self.bin_dir / "pg_ctl"), action, "-D", str(self.data_dir), *options],
            check=False,
        )

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-20:])

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            argv,
            cwd=self.base_dir,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_SECONDS * 2,
            user=self._run_as.uid,
            group=self._run_as.gid,
            extra_groups=[] if self._run_as.uid is not None else None,
            check=False,
        )
        if check and result.returncode != 0:
            raise PostgresUnavailableError(
                f"{shlex.join(argv)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result


def _unprivileged_identity() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs(uid=None, gid=None)
    try:
        entry = pwd.getpwnam(_UNPRIVILEGED_OS_USER)
    except KeyError:
        raise PostgresUnavailableError(
            f"running as root and there is no {_UNPRIVILEGED_OS_USER!r} OS user to run "
            "PostgreSQL as (postgres refuses to run as root)"
        ) from None
    return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid)


def _make_base_dir(run_as: _RunAs) -> Path:
    parent = Path(tempfile.gettempdir())
    if run_as.uid is not None and not _traversable_by_others(parent):
        # The server user must be able to reach its data directory; a private TMPDIR
        # (say under /root) is not reachable by it, /tmp always is.
        parent = Path("/tmp")
    base_dir = Path(tempfile.mkdtemp(prefix="artifactstore-pg-", dir=parent))
    if run_as.uid is not None and run_as.gid is not None:
        os.chown(base_dir, run_as.uid, run_as.gid)
    return base_dir


def _traversable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port
