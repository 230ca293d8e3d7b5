"""The /v1 package API's read side over a real store: routes, ranges, auth, events, errors.

Most tests drive the app with Flask's test client; one runs `artifactstore serve` (gunicorn,
two workers) and downloads a file with a token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from test_web import environment, free_port, running
from werkzeug.test import TestResponse

from artifactstore import ArtifactStore
from artifactstore.api import route
from artifactstore.errors import InvalidNameError, PackageFileNotFoundError
from artifactstore.web import create_app

NAME = "acme/tools/app"
BIG = os.urandom(200_000)  # several 64 KiB chunks
SMALL = b"hello, world\n"


@dataclass
class Api:
    """A test client over a store with packages pushed, and the secret of a read token."""

    client: FlaskClient
    store: ArtifactStore
    secret: str
    source: Path

    def get(self, url: str, secret: str | None = "", **headers: str) -> TestResponse:
        """GET url with the read token (secret ""), another secret, or none (None)."""
        token = self.secret if secret == "" else secret
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.get(url, headers=headers)


def push(store: ArtifactStore, root: Path, name: str, version: str) -> None:
    """Push a tree with an executable big file and a small plain one as (name, version)."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "bin" / "run").write_bytes(BIG)
    (root / "bin" / "run").chmod(0o755)
    (root / "readme.txt").write_bytes(SMALL)
    store.push(name, version, root)


@pytest.fixture
def make_api(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[bool], Api]:
    """make_api(anonymous_read): the app over a store with acme/tools/app 1, 2 and other/lib 1."""
    source = tmp_path / "src"
    for name, version in ((NAME, "1"), ("other/lib", "1"), (NAME, "2")):
        push(store, source, name, version)
    _, secret = store.create_token("reader", "read")

    def make(anonymous_read: bool = False) -> Api:
        monkeypatch.setenv("ARTIFACTSTORE_ANONYMOUS_READ", "1" if anonymous_read else "0")
        return Api(create_app(store).test_client(), store, secret, source)

    return make


@pytest.fixture
def api(make_api: Callable[[bool], Api]) -> Api:
    """The app without anonymous reads."""
    return make_api(False)


def file_url(name: str = NAME, version: str = "1", path: str = "bin/run") -> str:
    """The URL of one file of a package."""
    return f"/v1/packages/{name}/versions/{version}/file?path={path}"


def error_of(answer: TestResponse) -> dict[str, str]:
    """The {"code", "message"} of an API error answer, checking its shape."""
    assert answer.mimetype == "application/json"
    document = answer.get_json()
    assert isinstance(document, dict) and set(document) == {"error"}
    error = document["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message"}
    return error


# -- routes ----------------------------------------------------------------------------------


def test_list_packages_and_filter_by_name(api: Api) -> None:
    everything = api.get("/v1/packages").get_json()["packages"]
    # By name, newest version first (as `ls` lists them), with file counts and sizes.
    assert [(p["name"], p["version"]) for p in everything] == [
        (NAME, "2"),
        (NAME, "1"),
        ("other/lib", "1"),
    ]
    assert all(isinstance(p["size"], int) and p["file_count"] >= 1 for p in everything)
    assert {"state", "manifest_digest", "retention_class", "created_at", "finalized_at"} <= set(
        everything[0]
    )
    named = api.get("/v1/packages?name=other/lib").get_json()["packages"]
    assert [(p["name"], p["version"]) for p in named] == [("other/lib", "1")]


def test_versions_are_newest_first(api: Api) -> None:
    answer = api.get(f"/v1/packages/{NAME}/versions")
    assert answer.status_code == 200
    document = answer.get_json()
    assert document["name"] == NAME
    assert [v["version"] for v in document["versions"]] == ["2", "1"]


def test_one_package_lists_its_files(api: Api) -> None:
    document = api.get(f"/v1/packages/{NAME}/versions/1").get_json()
    package = api.store.get_package(NAME, "1")
    assert document["state"] == "finalized"
    assert document["manifest_digest"] == package.manifest_digest
    assert document["retention_class"] == "standard" and document["metadata"] == {}
    assert document["files"] == [
        {
            "content_address": f"blake3:{f.blake3.hex}",
            "executable": path == "bin/run",
            "path": path,
            "sha256": f"sha256:{hashlib.sha256(data).hexdigest()}",
            "size": len(data),
        }
        for f, (path, data) in zip(
            api.store.list_files(package), [("bin/run", BIG), ("readme.txt", SMALL)], strict=True
        )
    ]


@pytest.mark.parametrize(
    ("form", "mimetype"), [("cbor", "application/cbor"), ("jcs", "application/json")]
)
def test_manifest_bytes_are_the_store_s_with_the_digest_as_etag(
    api: Api, form: str, mimetype: str
) -> None:
    url = f"/v1/packages/{NAME}/versions/1/manifest?format={form}"
    answer = api.get(url)
    digest = str(api.store.get_package(NAME, "1").manifest_digest)
    assert answer.status_code == 200 and answer.mimetype == mimetype
    assert answer.data == api.store.get_manifest_bytes((NAME, "1"), form)
    assert answer.headers["ETag"] == f'"{digest}"'
    again = api.get(url, **{"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304 and again.data == b""


def test_manifest_defaults_to_cbor(api: Api) -> None:
    answer = api.get(f"/v1/packages/{NAME}/versions/1/manifest")
    assert answer.mimetype == "application/cbor"
    assert answer.data == api.store.get_manifest_bytes((NAME, "1"))


@pytest.mark.parametrize(
    ("path", "data", "executable"), [("bin/run", BIG, "true"), ("readme.txt", SMALL, "false")]
)
def test_a_file_is_its_bytes_with_its_digests(
    api: Api, path: str, data: bytes, executable: str
) -> None:
    answer = api.get(file_url(path=path))
    assert answer.status_code == 200
    assert answer.data == data
    address = next(f for f in api.store.list_files((NAME, "1")) if f.path == path).content_address
    assert answer.headers["ETag"] == f'"{address}"'
    sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert answer.headers["Repr-Digest"] == f"sha-256=:{sha256}:"
    assert answer.headers["X-Artifactstore-Executable"] == executable
    assert answer.headers["Content-Length"] == str(len(data))
    assert api.get(file_url(path=path), **{"If-None-Match": f'"{address}"'}).status_code == 304


def test_head_of_a_file_is_its_headers(api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.secret}"}
    answer = api.client.head(file_url(), headers=headers)
    assert answer.status_code == 200 and answer.data == b""
    assert answer.headers["Content-Length"] == str(len(BIG))


def test_a_file_comes_in_chunks(api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.secret}"}
    answer = api.client.get(file_url(), headers=headers, buffered=False)
    pieces = list(answer.iter_encoded())
    answer.close()
    assert b"".join(pieces) == BIG
    assert len(pieces) > 1 and max(len(p) for p in pieces) <= 64 * 1024


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=70000-130000", 70000, 130001),
        ("bytes=199990-", 199990, 200000),
        ("bytes=-7", 199993, 200000),
        ("bytes=-999999", 0, 200000),
        ("bytes=100-999999", 100, 200000),
    ],
)
def test_a_range_is_206_with_its_slice(api: Api, header: str, start: int, end: int) -> None:
    answer = api.get(file_url(), Range=header)
    assert answer.status_code == 206
    assert answer.data == BIG[start:end]
    assert answer.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(BIG)}"
    assert answer.headers["Content-Length"] == str(end - start)


@pytest.mark.parametrize("header", ["bytes=200000-", "bytes=300000-300001", "bytes=-0"])
def test_a_range_past_the_end_is_416(api: Api, header: str) -> None:
    answer = api.get(file_url(), Range=header)
    assert answer.status_code == 416
    assert error_of(answer)["code"] == "range_not_satisfiable"
    assert answer.headers["Content-Range"] == f"bytes */{len(BIG)}"


@pytest.mark.parametrize("header", ["bytes=5-2", "items=0-1", "bytes=0-1,3-4", "bytes=-"])
def test_a_malformed_range_is_400(api: Api, header: str) -> None:
    answer = api.get(file_url(), Range=header)
    assert answer.status_code == 400 and error_of(answer)["code"] == "invalid_input"


def test_a_corrupt_blob_cuts_the_answer_short(
    api: Api, blob_root: Path, corrupt_blob: Callable[[Path, bytes], None]
) -> None:
    corrupt_blob(blob_root, BIG)
    for headers in ({}, {"Range": "bytes=0-9"}):
        answer = api.get(file_url(), **headers)
        assert int(answer.headers["Content-Length"]) > len(answer.data)


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        (f"/v1/packages/{NAME}/versions/9", 404, "package_not_found"),
        ("/v1/packages/nobody/versions", 404, "package_not_found"),
        (file_url(path="missing.txt"), 404, "package_file_not_found"),
        ("/v1/packages/Acme/versions", 400, "invalid_name"),
        (f"/v1/packages/{NAME}/versions/bad%20version", 400, "invalid_name"),
        (file_url(path="../etc/passwd"), 400, "invalid_path"),
        (f"/v1/packages/{NAME}/versions/1/file", 400, "invalid_path"),
        (f"/v1/packages/{NAME}/versions/1/manifest?format=xml", 400, "invalid_input"),
        (f"/v1/packages/{NAME}/1", 404, "not_found"),
        ("/v1/packages?name=Bad!", 400, "invalid_name"),
        ("/v1/events?since=-1", 400, "invalid_input"),
        ("/v1/events?limit=0", 400, "invalid_input"),
        ("/v1/events?wait=600", 400, "invalid_input"),
    ],
)
def test_bad_requests_are_errors_in_the_api_shape(
    api: Api, url: str, status: int, code: str
) -> None:
    answer = api.get(url)
    assert answer.status_code == status
    assert error_of(answer)["code"] == code


def test_an_open_package_has_no_manifest_or_file_yet(api: Api) -> None:
    api.store.create_package(NAME, "3-open")
    assert api.get(f"/v1/packages/{NAME}/versions/3-open").get_json()["state"] == "open"
    for url in (f"/v1/packages/{NAME}/versions/3-open/manifest", file_url(version="3-open")):
        answer = api.get(url)
        assert answer.status_code == 409
        assert error_of(answer)["code"] == "package_state"


def test_unknown_routes_and_methods_answer_in_the_api_shape(api: Api) -> None:
    assert error_of(api.get("/v1/nothing"))["code"] == "not_found"
    answer = api.client.post("/v1/packages", headers={"Authorization": f"Bearer {api.secret}"})
    assert answer.status_code == 405 and error_of(answer)["code"] == "method_not_allowed"
    assert "GET" in answer.headers["Allow"]
    patched = api.client.patch(f"/v1/packages/{NAME}/versions/1")
    assert patched.status_code == 405 and error_of(patched)["code"] == "method_not_allowed"
    # Outside /v1 the app keeps its own shape.
    assert isinstance(api.get("/nothing").get_json()["error"], str)


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("a/versions", ("a", None, None)),
        ("a/b/c/versions/1.0", ("a/b/c", "1.0", None)),
        ("a/b/versions/1/manifest", ("a/b", "1", "manifest")),
        ("a/b/versions/1/file", ("a/b", "1", "file")),
        ("a/versions/b/versions", ("a/versions/b", None, None)),
        ("a/versions/versions/x", ("a/versions", "x", None)),
        ("a/versions/manifest", ("a", "manifest", None)),
    ],
)
def test_routes_are_read_from_the_right(rest: str, expected: tuple[str, str, str]) -> None:
    assert route(rest) == expected


def test_a_name_with_an_empty_segment_is_bad_input() -> None:
    with pytest.raises(InvalidNameError):
        route("a//b/versions")


# -- auth ------------------------------------------------------------------------------------


def test_no_or_an_unknown_token_is_401(api: Api) -> None:
    unknown = "as_reader_" + "0" * 64
    for secret in (None, unknown, "garbage"):
        answer = api.get("/v1/packages", secret=secret)
        assert answer.status_code == 401, secret
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert error_of(answer)["code"] == "unauthorized"
    basic = api.client.get("/v1/packages", headers={"Authorization": f"Basic {api.secret}"})
    assert basic.status_code == 401


def test_expired_revoked_and_outside_prefix_tokens_are_403(api: Api) -> None:
    _, expired = api.store.create_token("brief", "admin", expires_in=timedelta(milliseconds=1))
    _, revoked = api.store.create_token("gone", "read")
    api.store.revoke_token("gone")
    _, other = api.store.create_token("other", "read", prefix="other/")
    time.sleep(0.01)
    for secret, url in (
        (expired, "/v1/packages"),
        (revoked, "/v1/events"),
        (other, f"/v1/packages/{NAME}/versions"),
        (other, file_url()),
        (other, f"/v1/packages?name={NAME}"),
    ):
        answer = api.get(url, secret=secret)
        assert answer.status_code == 403, url
        assert error_of(answer)["code"] == "forbidden"


def test_a_prefixed_token_sees_only_its_names(api: Api) -> None:
    _, acme = api.store.create_token("acme", "read", prefix="acme/")
    listed = api.get("/v1/packages", secret=acme).get_json()["packages"]
    assert {p["name"] for p in listed} == {NAME}
    assert api.get(file_url(), secret=acme).data == BIG


def test_anonymous_reads_only_when_the_server_allows_them(make_api: Callable[[bool], Api]) -> None:
    closed = make_api(False)
    assert closed.get(file_url(), secret=None).status_code == 401
    open_ = make_api(True)
    assert open_.get(file_url(), secret=None).data == BIG
    assert open_.get("/v1/events", secret=None).status_code == 200
    # A token that is sent is still checked.
    assert open_.get("/v1/packages", secret="garbage").status_code == 401


def test_no_answer_or_log_line_holds_a_secret(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    _, revoked = api.store.create_token("gone", "read")
    api.store.revoke_token("gone")
    caplog.set_level(logging.DEBUG)
    secrets = (api.secret, revoked, "as_reader_" + "1" * 64)
    for secret in secrets:
        for url in (
            "/v1/packages",
            "/v1/events",
            file_url(),
            f"/v1/packages/{NAME}/versions/1",
            "/v1/nothing",
            file_url(path="nothing"),
        ):
            answer = api.get(url, secret=secret)
            seen = answer.data + str(answer.headers).encode()
            assert not any(s.encode() in seen for s in secrets), url
    assert not any(s in caplog.text for s in secrets)


# -- events ----------------------------------------------------------------------------------


def events(answer: TestResponse) -> list[dict[str, object]]:
    """The JSON lines of an /v1/events answer."""
    assert answer.status_code == 200, answer.data
    assert answer.mimetype == "application/jsonl"
    return [json.loads(line) for line in answer.data.decode().splitlines()]


def test_events_since_and_limit(api: Api) -> None:
    everything = events(api.get("/v1/events"))
    # A read token sees the package events; token events are for admins (below).
    expected = [e.sequence for e in api.store.tail_events() if e.package_id is not None]
    assert [e["sequence"] for e in everything] == expected
    assert set(everything[0]) == {
        "actor",
        "chain_digest",
        "event_id",
        "event_type",
        "occurred_at",
        "package_id",
        "payload",
        "sequence",
    }
    some = events(api.get(f"/v1/events?since={expected[1]}&limit=2"))
    assert [e["sequence"] for e in some] == expected[2:4]
    assert events(api.get(f"/v1/events?since={expected[-1]}")) == []


def test_a_prefixed_token_sees_only_its_packages_events(api: Api) -> None:
    _, acme = api.store.create_token("acme", "read", prefix="acme/")
    seen = events(api.get("/v1/events", secret=acme))
    ids = {p.id for p in api.store.list_packages(NAME)}
    assert seen and {e["package_id"] for e in seen} == ids
    read = events(api.get("/v1/events"))
    assert not any(str(e["event_type"]).startswith("v1.token.") for e in read)
    _, admin = api.store.create_token("root", "admin")
    everything = events(api.get("/v1/events", secret=admin))
    assert any(str(e["event_type"]).startswith("v1.token.") for e in everything)


def test_a_wait_returns_as_soon_as_an_event_comes(api: Api) -> None:
    last = events(api.get("/v1/events"))[-1]["sequence"]
    pusher = threading.Timer(0.5, push, (api.store, api.source, "acme/late", "1"))
    started = time.monotonic()
    pusher.start()
    try:
        found = events(api.get(f"/v1/events?since={last}&wait=20"))
    finally:
        pusher.join()
    assert time.monotonic() - started < 10
    assert found and found[0]["event_type"] == "v1.package.created"
    assert all(int(str(e["sequence"])) > int(str(last)) for e in found)


def test_a_wait_without_events_ends_empty(api: Api) -> None:
    last = events(api.get("/v1/events"))[-1]["sequence"]
    started = time.monotonic()
    assert events(api.get(f"/v1/events?since={last}&wait=1")) == []
    assert 0.9 <= time.monotonic() - started < 10


# -- a real server ---------------------------------------------------------------------------


@contextmanager
def served(
    store: ArtifactStore, migrated_url: str, root: Path, tmp_path: Path, *flags: str
) -> Iterator[str]:
    """`artifactstore serve --workers 2 [flags]` over the store with a package; its base URL."""
    push(store, tmp_path / "src", NAME, "1")
    port = free_port()
    argv = [sys.executable, "-m", "artifactstore", "serve", "--port", str(port), "--workers", "2"]
    # An inherited variable does not open reads: the flag alone decides.
    env = {**environment(migrated_url, root), "HOME": str(tmp_path)}
    env["ARTIFACTSTORE_ANONYMOUS_READ"] = "1"
    with running([*argv, *flags], env, port) as base:
        yield base


def download(url: str, secret: str | None) -> tuple[int, bytes]:
    """GET url with a bearer secret or none: (status, body)."""
    headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=15) as a:
            assert a.headers["X-Artifactstore-Executable"] == "true"
            return int(a.status), bytes(a.read())
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_gunicorn_serves_a_file_to_a_token(
    store: ArtifactStore, migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    _, secret = store.create_token("ci", "read")
    with served(store, migrated_url, blob_root, tmp_path) as base:
        assert download(f"{base}{file_url()}", secret) == (200, BIG)
        status, body = download(f"{base}{file_url()}", None)
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"


def test_serve_anonymous_read_serves_without_a_token(
    store: ArtifactStore, migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    with served(store, migrated_url, blob_root, tmp_path, "--anonymous-read") as base:
        assert download(f"{base}{file_url()}", None) == (200, BIG)


def test_the_file_index_reads_a_manifest_once_and_keeps_at_most_max_files(api: Api) -> None:
    from artifactstore.api_files import FileIndex

    index = FileIndex(max_files=3)
    first, second = api.store.get_package(NAME, "1"), api.store.get_package("other/lib", "1")
    assert index.find(api.store, first, "bin/run").size == len(BIG)
    assert index.find(api.store, first, "readme.txt").size == len(SMALL)
    assert index.recent.digests() == [str(first.manifest_digest)]
    index.find(api.store, second, "readme.txt")
    # Two manifests of two files each exceed three files: the older one was dropped.
    assert index.recent.digests() == [str(second.manifest_digest)]
    with pytest.raises(PackageFileNotFoundError):
        index.find(api.store, second, "nothing")
