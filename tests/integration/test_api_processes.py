"""The /v1 write side under real gunicorn: a dropped upload, and a 1 GiB upload and download
with each worker's peak memory measured."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_web import environment, free_port, started

from artifactstore import ArtifactStore, ContentAddress, batch, digest_stream
from artifactstore.identity import DualHasher

MIB = 1024 * 1024


@contextmanager
def server(
    store: ArtifactStore, migrated_url: str, root: Path, tmp_path: Path
) -> Iterator[tuple[str, int, str, int]]:
    """`artifactstore serve --workers 2` over the store: host, port, a write token's secret and
    the gunicorn master's pid."""
    _, secret = store.create_token("ci", "write")
    port = free_port()
    argv = [sys.executable, "-m", "artifactstore", "serve", "--port", str(port), "--workers", "2"]
    env = {**environment(migrated_url, root), "HOME": str(tmp_path)}
    with started(argv, env, port) as (_, process):
        yield "127.0.0.1", port, secret, process.pid


def workers(master: int) -> list[int]:
    """The pids of a gunicorn master's workers (its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{master}\n" in status:
                found.append(int(entry.name))
    return found


def peak_rss_mib(pid: int) -> float:
    """The peak resident set of a process (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_an_upload_cut_off_halfway_stores_nothing_and_a_retry_succeeds(
    store: ArtifactStore, migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    data = os.urandom(4 * MIB)
    address = digest_stream(data).content_address
    with server(store, migrated_url, blob_root, tmp_path) as (host, port, secret, _):
        with socket.create_connection((host, port)) as raw:
            raw.sendall(
                f"PUT /v1/blobs/{address} HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {secret}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            )
            raw.sendall(data[: len(data) // 2])
        time.sleep(1)
        assert store.dataplane.stat_object(address) is None
        leftovers = [p for p in blob_root.rglob("*") if p.is_file() and p.stat().st_size > MIB]
        assert leftovers == []
        connection = http.client.HTTPConnection(host, port, timeout=60)
        headers = {"Authorization": f"Bearer {secret}"}
        connection.request("PUT", f"/v1/blobs/{address}", body=data, headers=headers)
        answer = connection.getresponse()
        assert answer.status == 201, answer.read()
    with store.dataplane.serve_object(address) as stored:
        assert stored.read() == data


def test_a_batch_cut_off_inside_a_frame_keeps_the_frames_before_it_only(
    store: ArtifactStore, migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    first, cut = os.urandom(1000), os.urandom(MIB)
    entries = [batch.Entry(digest_stream(d).content_address, len(d)) for d in (first, cut)]
    content = batch.index_line(entries) + b"".join(
        e.frame_line() + d for e, d in zip(entries, (first, cut), strict=True)
    )
    with server(store, migrated_url, blob_root, tmp_path) as (host, port, secret, _):
        with socket.create_connection((host, port)) as raw:
            raw.sendall(
                f"POST /v1/blobs/batch HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {secret}\r\nContent-Length: {len(content)}\r\n\r\n".encode()
            )
            raw.sendall(content[: len(content) - len(cut) // 2])
        time.sleep(1)
        assert store.dataplane.stat_object(entries[0].address) is not None
        assert store.dataplane.stat_object(entries[1].address) is None
        connection = http.client.HTTPConnection(host, port, timeout=60)
        headers = {"Authorization": f"Bearer {secret}"}
        connection.request("POST", "/v1/blobs/batch", body=content, headers=headers)
        answer = connection.getresponse()
        assert answer.status == 200, answer.read()
        assert json.loads(answer.read()) == {
            "present": [str(entries[0].address)],
            "stored": [str(entries[1].address)],
        }
    with store.dataplane.serve_object(entries[1].address) as stored:
        assert stored.read() == cut


def _chunks(total: int, seed: bytes) -> Iterator[bytes]:
    """total bytes of a repeating 1 MiB pattern, in 1 MiB chunks."""
    block = (seed * (MIB // len(seed) + 1))[:MIB]
    for _ in range(total // MIB):
        yield block


@pytest.mark.slow
def test_a_1_gib_upload_and_download_keep_each_worker_under_100_mib(
    store: ArtifactStore, migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    size = 1024 * MIB
    seed = os.urandom(4096)
    hasher = DualHasher()
    for chunk in _chunks(size, seed):
        hasher.update(chunk)
    address: ContentAddress = hasher.result().content_address
    with server(store, migrated_url, blob_root, tmp_path) as (host, port, secret, master):
        headers = {"Authorization": f"Bearer {secret}", "Content-Length": str(size)}
        connection = http.client.HTTPConnection(host, port, timeout=600)
        connection.request("PUT", f"/v1/blobs/{address}", body=_chunks(size, seed), headers=headers)
        answer = connection.getresponse()
        assert answer.status == 201, answer.read()
        answer.read()
        files = [{"path": "big.bin", "content_address": str(address), "executable": False}]
        body = json.dumps({"files": files})
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        connection.request("PUT", "/v1/packages/acme/big/versions/1", body=body, headers=headers)
        published = connection.getresponse()
        assert published.status == 201, published.read()
        published.read()
        connection.request(
            "GET", "/v1/packages/acme/big/versions/1/file?path=big.bin", headers=headers
        )
        download = connection.getresponse()
        assert download.status == 200
        received = DualHasher()
        while chunk := download.read(MIB):
            received.update(chunk)
        assert received.result().content_address == address
        peaks = [peak_rss_mib(pid) for pid in workers(master)]
    print(f"worker peak RSS (MiB): {peaks}")
    assert peaks and max(peaks) < 100, peaks
