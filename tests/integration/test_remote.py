"""The remote client (`artifactstore.connect`, `--server`) against gunicorn with 4 workers.

One server per module, over this leg's database (SQLite, or the PostgreSQL leg's server) and
its own blob folder; each "runner" is another directory with no store of its own, so every
byte it gets came over HTTP. The CLI runs in-process (tests/integration/test_cli.py's Cli)
except where only a process shows it (a follower waiting for an event).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import blake3
import pytest
from served import Proxy, Served, serving
from test_cli import Cli, one_error_line
from test_web import free_port

from artifactstore import (
    AccessDeniedError,
    ConflictError,
    DigestMismatchError,
    IntegrityError,
    InvalidInputError,
    PackageNotFoundError,
    PackageStateError,
    RemoteStore,
    ServerUnavailableError,
    batch,
    connect,
)
from artifactstore.cli.output import package_json
from artifactstore.remote import fetching, upload
from artifactstore.remote.transport import Transport
from artifactstore.tree import TreeFile, scan

BIG = 3_000_000


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """gunicorn with 4 workers over a fresh store, for this module's tests."""
    with serving(module_database_url, tmp_path_factory.mktemp("server")) as served:
        yield served


def runner(server: Served, where: Path, token: str | None = "") -> Cli:
    """The CLI of a CI runner in directory where, with --server in its environment.

    token "" is the write token, None none at all.
    """
    where.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ARTIFACTSTORE_SERVER": server.url}
    secret = server.writer if token == "" else token
    if secret is not None:
        env["ARTIFACTSTORE_TOKEN"] = secret
    return Cli(env, where)


def make_tree(root: Path, seed: str) -> Path:
    """A build output: an executable, a big binary, a small text, an empty file, a duplicate."""
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "deep").mkdir(parents=True)
    (root / "bin" / "app").write_bytes(f"#!/bin/sh\necho {seed}\n".encode())
    (root / "bin" / "app").chmod(0o755)
    (root / "lib" / "deep" / "data.bin").write_bytes(os.urandom(BIG))
    (root / "README.txt").write_text(f"hello {seed}\n")
    (root / "lib" / "empty").write_bytes(b"")
    (root / "lib" / "copy.txt").write_text(f"hello {seed}\n")
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under root: its bytes and whether it is executable."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), bool(p.stat().st_mode & stat.S_IXUSR))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- push and pull between two runners -------------------------------------------------------


def test_push_on_one_runner_pull_on_another_is_byte_identical(
    server: Served, tmp_path: Path
) -> None:
    source = make_tree(tmp_path / "a" / "dist", "one")
    pushed = runner(server, tmp_path / "a").ok("--json", "push", "acme/app", "1", "dist")
    digest = pushed.json()["digest"]  # type: ignore[index]
    assert pushed.json()["created"] is True  # type: ignore[index]
    b = runner(server, tmp_path / "b")
    pulled = b.ok("pull", f"acme/app@{digest}", "out")
    assert pulled.text.startswith("pulled 5 files (") and pulled.text.endswith(" into out\n")
    assert snapshot(tmp_path / "b" / "out") == snapshot(source)
    assert not (tmp_path / "b" / ".artifactstore").exists()  # no local store was made
    assert b.ok("verify", "acme/app", "1").text.endswith(": ok\n")
    # show over the server is the manifest the server's own store has, byte for byte.
    remote_cbor = b.ok("show", "acme/app:1", "--format", "cbor").out
    assert f"blake3:{blake3.blake3(remote_cbor).hexdigest()}" == digest
    with server.open() as local:
        assert local.get_manifest_bytes(("acme/app", "1"), "jcs") + b"\n" == (
            b.ok("show", "acme/app", "1").out
        )
        listed = [package_json(p) for p in local.list_packages("acme/app")]
    assert b.ok("--json", "ls", "acme/app").json() == listed
    assert b.ok("cat", "acme/app", "1", "bin/app").out == b"#!/bin/sh\necho one\n"


def test_a_re_push_uploads_no_blob(server: Served, tmp_path: Path) -> None:
    make_tree(tmp_path / "dist", "again")
    cli = runner(server, tmp_path)
    before = server.blob_puts(), server.blob_batches()
    first = cli.ok("push", "acme/again", "1", "dist").text
    # Five files, four blobs (README.txt and lib/copy.txt are one); the empty file's blob the
    # server had from an earlier test: three sent, the big one alone, the two small in a batch.
    assert (server.blob_puts() - before[0], server.blob_batches() - before[1]) == (1, 1)
    assert cli.ok("push", "acme/again", "1", "dist").text == first
    assert cli.ok("push", "acme/again", "2", "dist").text != first  # another version...
    # ...of the same bytes: nothing sent either
    assert (server.blob_puts() - before[0], server.blob_batches() - before[1]) == (1, 1)
    with connect(server.url, server.writer) as store:
        store.push("acme/again", "3", tmp_path / "dist")
        assert store.uploaded_blobs == 0


def test_a_push_of_many_small_files_sends_them_in_batches(
    server: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload, "BATCH_BLOBS", 10)
    tree = tmp_path / "dist"
    tree.mkdir()
    for n in range(25):
        (tree / f"f{n:02}.txt").write_bytes(os.urandom(100 + n))
    (tree / "edge.bin").write_bytes(os.urandom(1 << 20))  # the largest a batch carries
    (tree / "big.bin").write_bytes(os.urandom((1 << 20) + 1))  # one byte more: sent alone
    before = server.blob_puts(), server.blob_batches()
    cli = runner(server, tmp_path)
    cli.ok("push", "acme/many", "1", "dist")
    # 26 small blobs in runs of at most 10: three batches; the big one alone.
    assert (server.blob_puts() - before[0], server.blob_batches() - before[1]) == (1, 3)
    monkeypatch.setattr(fetching, "BATCH_BLOBS", 10)
    fetches = "POST /v1/packages/acme/many/versions/1/blobs"
    gets = "GET /v1/packages/acme/many/versions/1/file"
    before = server.requests(fetches), server.requests(gets)
    pulled = runner(server, tmp_path / "b")
    pulled.ok("pull", "acme/many", "1", "out")
    assert snapshot(tmp_path / "b" / "out") == snapshot(tree)
    # The same way back: three batches of small blobs, the big file alone.
    assert (server.requests(fetches) - before[0], server.requests(gets) - before[1]) == (3, 1)
    assert pulled.ok("verify", "acme/many", "1").text.endswith(": ok\n")
    assert (server.requests(fetches) - before[0], server.requests(gets) - before[1]) == (6, 2)


def test_a_small_file_changed_after_hashing_is_refused_and_not_stored(
    server: Served, tmp_path: Path
) -> None:
    kept, changed = tmp_path / "kept.txt", tmp_path / "changed.txt"
    kept.write_bytes(b"sent whole before the changed one\n")
    changed.write_bytes(b"the bytes that were hashed\n")
    items = [upload.hash_path(p.name, p, None) for p in (kept, changed)]
    changed.write_bytes(b"other bytes written later!\n")  # same size, new bytes and mtime
    os.utime(changed, ns=(0, items[1].mtime_ns + 1_000_000))
    transport = Transport(server.url, server.writer)
    try:
        with pytest.raises(InvalidInputError, match="changed while reading it"):
            upload.put_batch(transport, items)
        assert str(items[1].address) in upload.missing(transport, [items[1].address])
    finally:
        transport.close()
    with server.open() as local:
        assert local.dataplane.stat_object(items[1].address) is None


@pytest.mark.parametrize("sha256", [True, False])
@pytest.mark.parametrize("more_large", [{}, {"e-large": 3 * batch.MAX_BLOB, "f-large": 1 << 22}])
def test_hash_files_gives_both_digests_of_small_and_large_files_in_scan_order(
    tmp_path: Path, more_large: dict[str, int], sha256: bool
) -> None:
    # One large file is hashed on two cores; several, each on its thread, the largest first.
    # Without sha256, each file gets its address alone.
    sizes = {"a-empty": 0, "b-large": batch.MAX_BLOB + 1, "c-small": 5000, "d-edge": 1 << 20}
    sizes.update(more_large)
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(os.urandom(size))
    found = scan(tmp_path)
    hashed = upload.hash_files(found, sha256)
    assert [item.path for item in hashed] == sorted(sizes)
    for item in hashed:
        data = (tmp_path / item.path).read_bytes()
        expected = hashlib.sha256(data).hexdigest() if sha256 else None
        assert (item.size, item.sha256) == (len(data), expected)
        assert str(item.address) == f"blake3:{blake3.blake3(data).hexdigest()}"


def test_a_large_blob_hashed_for_its_address_alone_is_checked_against_the_servers_sha256(
    server: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "large.bin"
    source.write_bytes(os.urandom(2 * upload.CHUNK + 5))
    [item] = upload.hash_files(scan(tmp_path), sha256=False)
    assert item.sha256 is None
    transport = Transport(server.url, server.writer)
    try:
        # SHA-256 is computed as the bytes are sent: the server's answer must match it. A
        # server that hashed wrongly cannot be made for real; a client hasher that is not
        # SHA-256 gives the same disagreement.
        monkeypatch.setattr(hashlib, "sha256", hashlib.sha3_256)
        with pytest.raises(IntegrityError, match=r"the server stored .* with sha256:"):
            upload.put_blob(transport, item)
        monkeypatch.undo()
        upload.put_blob(transport, item)  # stored already: the same answer, now agreed
    finally:
        transport.close()


@pytest.mark.parametrize("size", [5000, batch.MAX_BLOB + 1])
def test_a_file_changed_between_scan_and_hashing_is_refused(tmp_path: Path, size: int) -> None:
    target = tmp_path / "grows.bin"
    target.write_bytes(bytes(size))
    [found] = scan(tmp_path)
    target.write_bytes(bytes(size + 1))
    with pytest.raises(InvalidInputError, match="changed while reading it"):
        upload.hash_files([found])


def test_hash_files_stops_hashing_once_a_file_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(200):
        (tmp_path / f"f{n:03}").write_bytes(b"x" * 100)
    found = scan(tmp_path)
    os.utime(tmp_path / "f000", ns=(0, found[0].mtime_ns + 1_000_000))
    hashed: list[str] = []
    real = upload.hash_file

    def slow_hash_file(item: TreeFile, *args: object) -> upload.LocalFile:
        time.sleep(0.002)  # each file takes a while, so the ones after a failure are queued
        result = real(item, *args)  # type: ignore[arg-type]
        hashed.append(item.path)
        return result

    monkeypatch.setattr(upload, "hash_file", slow_hash_file)
    with pytest.raises(InvalidInputError, match="changed while reading it"):
        upload.hash_files(found)
    assert len(hashed) < 50  # not the whole tree


def test_an_upload_body_ends_after_its_current_piece_once_stopped(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(3 * upload.CHUNK))
    (tmp_path / "a.txt").write_bytes(b"a")
    (tmp_path / "b.txt").write_bytes(b"b")
    first, second, big = (upload.hash_file(item) for item in scan(tmp_path))
    stop = threading.Event()
    body = upload._Sent(big, stop).body()
    assert len(next(body)) == upload.CHUNK
    stop.set()
    with pytest.raises(upload.StoppedError):
        next(body)
    stop.clear()
    frames = upload._batch_body(b"index", [first, second], stop)
    assert next(frames) == b"index"
    assert next(frames).endswith(b"a")
    stop.set()
    with pytest.raises(upload.StoppedError):
        next(frames)


def test_a_different_re_push_conflicts_and_uploads_nothing(server: Served, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "dist", "conflict")
    cli = runner(server, tmp_path)
    cli.ok("push", "acme/conflict", "1", "dist")
    (tree / "new.txt").write_text("not there before\n")
    before = server.blob_puts(), server.blob_batches()
    line = one_error_line(cli("push", "acme/conflict", "1", "dist"), 2)
    assert "new.txt" in line and "already exists" in line
    assert (server.blob_puts(), server.blob_batches()) == before
    with connect(server.url, server.writer) as store, pytest.raises(ConflictError):
        store.push("acme/conflict", "1", tree)


def test_assembly_through_the_library(server: Served, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "dist", "assembly")
    with connect(server.url, server.writer) as store:
        package = store.create_package("acme/parts", "1", "ci", {"git_sha": "3f2a"})
        assert (package.state, package.retention_class) == ("open", "ci")
        one = store.ingest_file(package, "extra/one.bin", b"one\n")
        assert (one.size, one.executable) == (4, False)
        run = store.ingest_file(("acme/parts", "1"), "run", tree / "bin" / "app")
        assert run.executable is True
        with (tree / "README.txt").open("rb") as handle:
            store.ingest_file("acme/parts:1", "stream.txt", handle, executable=True)
        added = store.ingest_directory(package, tree / "lib")
        assert [f.path for f in added] == ["copy.txt", "deep/data.bin", "empty"]
        assert len(store.list_files(package)) == 6
        manifest = store.finalize_package(package)
        assert store.get_package("acme/parts", "1").manifest_digest == str(manifest.digest)
        assert [f.path for f in store.list_files(package)] == [
            "copy.txt",
            "deep/data.bin",
            "empty",
            "extra/one.bin",
            "run",
            "stream.txt",
        ]
        with store.get_file(package, "stream.txt") as reader:
            assert reader.read() == b"hello assembly\n"
        store.create_package("acme/parts", "2")
        with pytest.raises(PackageStateError, match="open for assembly"):
            store.push("acme/parts", "2", tree)
        store.abandon_package(("acme/parts", "2"))
        with server.open() as local:
            assert local.get_package("acme/parts", "1").manifest_digest == str(manifest.digest)
            events = [e for e in local.tail_events() if e.package_id == package.id]
            assert {e.actor for e in events} == {"token:writer"}
        with pytest.raises(PackageNotFoundError):
            store.get_package("acme/parts", "3")


def test_assembly_commands_over_the_server(server: Served, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "dist", "jobs")
    first, second = runner(server, tmp_path / "job1"), runner(server, tmp_path / "job2")
    first.ok("create", "acme/jobs", "1", "--retention", "ci", "--meta", "git_sha=3f2a")
    first.ok("add", "acme/jobs", "1", str(tree / "lib"), "--prefix", "linux")
    second.ok("add", "acme/jobs:1", str(tree / "bin" / "app"), "--prefix", "bin")
    second.ok("add", "acme/jobs:1", str(tree / "bin" / "app"), "--prefix", "bin")  # a retry
    opened = json.loads(first.ok("show", "acme/jobs", "1").text)
    assert opened["state"] == "open" and len(opened["files"]) == 4
    digest = second.ok("finalize", "acme/jobs", "1").text.strip()
    with server.open() as local:
        package = local.get_package("acme/jobs", "1")
        assert package.manifest_digest == digest
        assert [f.path for f in local.list_files(package)] == [
            "bin/app",
            "linux/copy.txt",
            "linux/deep/data.bin",
            "linux/empty",
        ]
        assert local.list_files(package)[0].executable
    first.ok("create", "acme/jobs", "2")
    first.ok("abandon", "acme/jobs", "2")
    one_error_line(first("add", "acme/jobs", "2", str(tree)), 2)  # abandoned


def test_pinned_digests_are_checked_on_the_client(server: Served, tmp_path: Path) -> None:
    make_tree(tmp_path / "dist", "pin")
    cli = runner(server, tmp_path)
    digest = cli.ok("push", "acme/pin", "1", "dist").text.strip()
    other = "blake3:" + "0" * 64
    line = one_error_line(cli("pull", "acme/pin", "1", "out", "--expect-digest", other), 1)
    assert digest in line and other in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    one_error_line(cli("cat", f"acme/pin@{other}", "README.txt"), 2)  # no such version
    with connect(server.url, server.reader) as store:
        with pytest.raises(DigestMismatchError):
            store.get_manifest(f"acme/pin@{digest}", expect_digest=other)
        assert store.package(f"acme/pin@{digest}").version == "1"


def test_remote_verify_finds_a_blob_corrupted_on_the_server(server: Served, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "dist", "rot")
    cli = runner(server, tmp_path)
    cli.ok("push", "acme/rot", "1", "dist")
    data = (tree / "lib" / "deep" / "data.bin").read_bytes()
    hexdigest = blake3.blake3(data).hexdigest()
    blob = server.blob_root / "blake3" / hexdigest[:2] / hexdigest[2:4] / hexdigest
    blob.chmod(0o644)
    blob.write_bytes(b"X" + data[1:])
    result = cli("verify", "acme/rot", "1")
    assert result.code == 1, result
    assert f"problem: acme/rot:1 lib/deep/data.bin: blake3:{hexdigest}:" in result.text
    assert result.text.endswith("1 problem\n")
    pulled = cli("pull", "acme/rot", "1", "out")
    assert pulled.code == 1 and "data.bin" in pulled.err
    assert not (tmp_path / "out" / "lib" / "deep" / "data.bin").exists()
    # Files are fetched several at once; none appears, not even those that came whole.
    assert not [p for p in (tmp_path / "out").rglob("*") if not p.is_dir()]


def test_a_small_blob_corrupted_on_the_server_is_found_by_verify_and_pull(
    server: Served, tmp_path: Path, corrupt_blob: Callable[[Path, bytes], None]
) -> None:
    tree = make_tree(tmp_path / "dist", "small rot")
    cli = runner(server, tmp_path)
    cli.ok("push", "acme/small-rot", "1", "dist")
    # The server cuts its batch answer short at the bad blob; the client then fetches that
    # batch's files one by one, and the bad one is named.
    corrupt_blob(server.blob_root, (tree / "bin" / "app").read_bytes())
    result = cli("verify", "acme/small-rot", "1")
    assert result.code == 1, result
    assert "problem: acme/small-rot:1 bin/app: blake3:" in result.text
    assert result.text.endswith("1 problem\n")
    pulled = cli("pull", "acme/small-rot", "1", "out")
    assert pulled.code == 1 and "bin/app" in pulled.err
    assert not [p for p in (tmp_path / "out").rglob("*") if not p.is_dir()]


# -- failures the user sees ------------------------------------------------------------------


def test_a_push_without_a_write_token_names_the_scope(server: Served, tmp_path: Path) -> None:
    make_tree(tmp_path / "dist", "auth")
    for token, status in ((None, "401"), (server.reader, "403")):
        line = one_error_line(runner(server, tmp_path, token)("push", "x/y", "1", "dist"), 2)
        assert "write scope" in line and status in line and server.url in line
    line = one_error_line(runner(server, tmp_path, None)("ls"), 2)
    assert "read scope" in line and "none was given" in line
    line = one_error_line(
        runner(server, tmp_path, server.acme_writer)("push", "other/app", "1", "dist"), 2
    )
    assert "write scope" in line and "acme/" in line
    with pytest.raises(AccessDeniedError, match="write scope"):
        RemoteStore(server.url, server.reader).push("acme/denied", "1", tmp_path / "dist")


def test_a_token_file_is_read_and_never_printed(server: Served, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(server.reader + "\n")
    cli = runner(server, tmp_path, None)
    assert cli.ok("--token-file", "token", "ls").code == 0
    line = one_error_line(cli("--token-file", "missing", "ls"), 2)
    assert "cannot read the token file 'missing'" in line


def test_an_unreachable_server_is_named_without_the_token(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    secret = "s3cret-token-never-shown"
    cli = Cli({**os.environ, "ARTIFACTSTORE_SERVER": url, "ARTIFACTSTORE_TOKEN": secret}, tmp_path)
    for args in (("ls",), ("pull", "a/b", "1", "out"), ("-v", "show", "a/b:1")):
        result = cli(*args)
        assert result.code == 2, result
        assert f"cannot reach the artifactstore server at {url}" in result.err
        assert secret not in result.err and secret not in result.text
    store = connect(url, secret)
    assert secret not in repr(store)
    with pytest.raises(ServerUnavailableError) as caught:
        store.list_packages()
    assert secret not in str(caught.value) and url in str(caught.value)


@pytest.mark.parametrize(
    "args",
    [
        ("migrate",),
        ("replay", "--check"),
        ("checkpoint",),
        ("health",),
        ("verify", "--all"),
        ("verify",),
        ("token", "list"),
        ("token", "create", "t", "--scope", "read"),
        ("serve",),
        ("migrate-storage", "--to", "file:///tmp/elsewhere"),
    ],
)
def test_local_only_commands_refuse_a_server(tmp_path: Path, args: tuple[str, ...]) -> None:
    cli = Cli({**os.environ, "ARTIFACTSTORE_SERVER": "http://127.0.0.1:1"}, tmp_path)
    line = one_error_line(cli(*args), 2)
    assert "is not available with --server" in line
    assert not (tmp_path / ".artifactstore").exists()


# -- the network in the way -------------------------------------------------------------------


def test_an_interrupted_download_resumes_with_a_range(server: Served, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "dist", "resume")
    with connect(server.url, server.writer) as store:
        store.push("acme/resume", "1", source)
    proxy = Proxy(server.url)
    try:
        # The first whole-file answer for data.bin is cut at ~1 MB: the connection drops.
        proxy.cut(lambda head: "data.bin" in head and "range:" not in head.lower(), 1_000_000)
        with connect(proxy.url, server.reader) as store:
            store.pull("acme/resume:1", tmp_path / "out")
        ranged = [h for h in proxy.heads if "data.bin" in h and "range:" in h.lower()]
    finally:
        proxy.close()
    assert snapshot(tmp_path / "out") == snapshot(source)
    assert len(ranged) == 1
    assert "If-Match:" in ranged[0] or "if-match:" in ranged[0]
    start = int(ranged[0].lower().split("range: bytes=")[1].split("-")[0])
    assert 900_000 < start < 1_000_000  # resumed where the bytes stopped, not from 0


def test_an_upload_whose_answer_is_lost_is_sent_again(server: Served, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "dist", "upload-cut")
    proxy = Proxy(server.url)
    try:
        proxy.cut(lambda head: head.startswith("PUT /v1/blobs/"), 0)  # the answer never comes
        with connect(proxy.url, server.writer) as store:
            result = store.push("acme/upload-cut", "1", source)
    finally:
        proxy.close()
    assert result.created and result.files == 5
    with server.open() as local:
        assert local.verify_package(("acme/upload-cut", "1")).ok


def test_an_upload_cut_halfway_is_sent_again_and_nothing_half_stored(
    server: Served, tmp_path: Path
) -> None:
    source = make_tree(tmp_path / "dist", "half")
    data = (source / "lib" / "deep" / "data.bin").read_bytes()
    address = f"blake3:{blake3.blake3(data).hexdigest()}"
    proxy = Proxy(server.url)
    try:
        # The first upload of data.bin loses its connection after half of its bytes.
        proxy.cut_upload(lambda head: head.startswith(f"PUT /v1/blobs/{address}"), BIG // 2)
        with connect(proxy.url, server.writer) as store:
            result = store.push("acme/half", "1", source)
        puts = [h for h in proxy.heads if h.startswith(f"PUT /v1/blobs/{address}")]
    finally:
        proxy.close()
    assert len(puts) == 2  # cut, then sent again whole
    assert result.created
    with server.open() as local:
        assert local.verify_package(("acme/half", "1")).ok
        with local.get_file(("acme/half", "1"), "lib/deep/data.bin") as reader:
            assert reader.read() == data


def test_a_read_is_retried_after_a_503_and_a_post_is_not(server: Served, tmp_path: Path) -> None:
    make_tree(tmp_path / "dist", "retry")
    proxy = Proxy(server.url)
    try:
        proxy.refuse(lambda head: head.startswith("GET /v1/packages "), 503)
        proxy.refuse(lambda head: head.startswith("POST /v1/blobs/missing"), 503)
        with connect(proxy.url, server.writer) as store:
            assert isinstance(store.list_packages(), list)
            with pytest.raises(ServerUnavailableError, match=r"\(503 unavailable\)"):
                store.push("acme/retry", "1", tmp_path / "dist")
        lists = [h for h in proxy.heads if h.startswith("GET /v1/packages ")]
        posts = [h for h in proxy.heads if h.startswith("POST /v1/blobs/missing")]
    finally:
        proxy.close()
    assert (len(lists), len(posts)) == (2, 1)


# -- following the log -----------------------------------------------------------------------


def test_events_follow_gets_a_push_from_another_client_within_a_second(
    server: Served, tmp_path: Path
) -> None:
    with server.open() as local:
        last = local.checkpoint().sequence
    env = {**os.environ, "ARTIFACTSTORE_SERVER": server.url, "ARTIFACTSTORE_TOKEN": server.reader}
    argv = [sys.executable, "-m", "artifactstore", "--json", "events", "--follow"]
    argv += ["--since", str(last), "--timeout", "60"]
    make_tree(tmp_path / "dist", "follow")
    with subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as follower:
        try:
            time.sleep(2.5)  # started, and waiting on the server
            assert follower.poll() is None
            with connect(server.url, server.writer) as store:
                store.push("acme/follow", "1", tmp_path / "dist")
            pushed = time.monotonic()
            assert follower.stdout is not None
            first = json.loads(follower.stdout.readline())
            waited = time.monotonic() - pushed
        finally:
            follower.terminate()
    assert first["event_type"] == "v1.package.created" and first["sequence"] == last + 1
    assert first["actor"] == "token:writer"
    assert waited < 1.0


def test_tail_events_rebuilds_the_logged_events(server: Served, tmp_path: Path) -> None:
    make_tree(tmp_path / "dist", "tail")
    with connect(server.url, server.admin) as store:
        store.push("acme/tail", "1", tmp_path / "dist")
        remote = list(store.tail_events())
    with server.open() as local:
        assert remote == list(local.tail_events())  # payload bytes and chain digests too
    digest = hashlib.sha256(server.writer.encode()).hexdigest()
    assert all(server.writer not in repr(e) and digest != e.event_id for e in remote)
