"""A real S3-protocol server on loopback for the tests: moto's server mode.

`S3Server` runs `python -m moto.server` as a child process on a free port of 127.0.0.1, so the
tests talk HTTP to it exactly as to any S3-compatible store; `stop()` ends it. Its state lives in
that process. `ThreadedS3Server` runs one in this process instead (moto.server.ThreadedMotoServer),
for the tests that stop the server in the middle of a transfer and then want to look at what is
left: its state outlives `stop()`, and a new one started on the same port serves it again.

Started with `{"INITIAL_NO_AUTH_ACTION_COUNT": "N"}` in env, moto checks credentials after its
first N requests, and refuses keys it does not know (InvalidAccessKeyId).

`DUMMY_CREDENTIALS` are what the tests put in the environment (moto accepts any); they are
distinctive so a test can search output for them.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import TYPE_CHECKING

import boto3

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIATESTSECRETKEYID42",
    "AWS_SECRET_ACCESS_KEY": "test-secret-DO-NOT-PRINT-8d1f",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Keep the developer's ~/.aws out of the tests.
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(endpoint: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"moto server exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


_sessions: list[boto3.session.Session] = []


def client(endpoint: str) -> S3Client:
    """A boto3 client of the server (credentials from the environment)."""
    if not _sessions:
        _sessions.append(boto3.session.Session())  # loads the service model once
    return _sessions[0].client("s3", endpoint_url=endpoint, region_name="us-east-1")


def new_bucket(endpoint: str) -> str:
    """Create a bucket with a fresh name on the server; return its name."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    client(endpoint).create_bucket(Bucket=name)
    return name


class S3Server:
    """moto's server in a child process on a free loopback port."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=None if env is None else {**os.environ, **env},
        )
        try:
            _wait_until_up(self.endpoint, self._process)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """End the server process (its state goes with it)."""
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class ThreadedS3Server:
    """moto's server on a thread of this process; the state stays after stop()."""

    def __init__(self, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        host, self.port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{self.port}"
        _wait_until_up(self.endpoint)

    def stop(self) -> None:
        """Stop serving; open connections are cut."""
        self._server.stop()
