"""The OCI distribution API's read side under /v2 (ADR-0013): routes, ranges, tokens and
errors with Flask's test client, then real clients (skopeo, the oras SDK) against gunicorn."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import oras.client
import oras.decorator
import pytest
from flask.testing import FlaskClient
from oci_clients import skopeo
from served import Served, serving
from sqlalchemy import text
from werkzeug.test import TestResponse

from artifactstore import ArtifactStore
from artifactstore.web import create_app

NAME = "acme/tools/app"
BIG = os.urandom(200_000)  # several 64 KiB chunks, stored as a file of its own


@dataclass
class V2:
    """A test client over a store with acme/tools/app 1 and 2 and other/lib 1, and secrets of
    a read token and of a read token limited to acme/."""

    client: FlaskClient
    store: ArtifactStore
    reader: str
    acme: str

    def get(self, url: str, secret: str | None = "", **headers: str) -> TestResponse:
        """GET url with the read token (secret ""), another secret, or none (None)."""
        token = self.reader if secret == "" else secret
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.get(url, headers=headers)


def push(store: ArtifactStore, root: Path, name: str, version: str) -> None:
    """Push an executable big file and a small file naming the package."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "bin" / "run").write_bytes(BIG)
    (root / "bin" / "run").chmod(0o755)
    (root / "readme.txt").write_bytes(f"{name} {version}\n".encode())
    store.push(name, version, root)


@pytest.fixture
def make_v2(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[bool], V2]:
    """make_v2(anonymous_read): the app over the store (see V2)."""
    for name, version in ((NAME, "1"), ("other/lib", "1"), (NAME, "2")):
        push(store, tmp_path / f"{name}-{version}", name, version)
    reader = store.create_token("reader", "read")[1]
    acme = store.create_token("acme", "read", "acme/")[1]

    def make(anonymous_read: bool = False) -> V2:
        monkeypatch.setenv("ARTIFACTSTORE_ANONYMOUS_READ", "1" if anonymous_read else "0")
        return V2(create_app(store).test_client(), store, reader, acme)

    return make


@pytest.fixture
def v2(make_v2: Callable[[bool], V2]) -> V2:
    """The app without anonymous reads."""
    return make_v2(False)


def error(response: TestResponse) -> str:
    """The code of a distribution-spec error body."""
    body = response.get_json()
    assert isinstance(body, dict) and len(body["errors"]) == 1, body
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    return str(body["errors"][0]["code"])


def test_the_base_route_needs_a_token_and_names_the_api_version(v2: V2) -> None:
    answer = v2.get("/v2/")
    assert answer.status_code == 200 and answer.get_json() == {}
    assert answer.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    refused = v2.get("/v2/", secret=None)
    assert refused.status_code == 401 and error(refused) == "UNAUTHORIZED"
    assert refused.headers["WWW-Authenticate"] == (
        'Bearer realm="http://localhost/v2/token",service="artifactstore"'
    )
    assert error(v2.get("/v2/", secret="as_nobody_00")) == "UNAUTHORIZED"


def test_a_manifest_by_tag_or_digest_is_the_exported_bytes(v2: V2, tmp_path: Path) -> None:
    image = v2.store.oci.export((NAME, "2"), tmp_path / "layout")
    exported = (tmp_path / "layout" / "blobs" / "sha256" / image.digest[7:]).read_bytes()
    by_tag = v2.get(f"/v2/{NAME}/manifests/2")
    assert by_tag.status_code == 200 and by_tag.data == exported
    assert by_tag.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
    assert by_tag.headers["Docker-Content-Digest"] == image.digest
    assert (
        by_tag.headers["Docker-Content-Digest"] == f"sha256:{hashlib.sha256(exported).hexdigest()}"
    )
    by_digest = v2.get(f"/v2/{NAME}/manifests/{image.digest}")
    assert by_digest.status_code == 200 and by_digest.data == exported
    head = v2.client.head(
        f"/v2/{NAME}/manifests/2", headers={"Authorization": f"Bearer {v2.reader}"}
    )
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == str(len(exported))
    other = v2.store.oci.image(("other/lib", "1")).digest
    assert error(v2.get(f"/v2/{NAME}/manifests/{other}")) == "MANIFEST_UNKNOWN"


def test_blobs_stream_with_ranges_and_the_config_is_the_package_manifest(v2: V2) -> None:
    image = v2.store.oci.image((NAME, "1"))
    digest = f"sha256:{hashlib.sha256(BIG).hexdigest()}"
    whole = v2.get(f"/v2/{NAME}/blobs/{digest}")
    assert whole.status_code == 200 and whole.data == BIG
    assert whole.headers["Docker-Content-Digest"] == digest
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = v2.get(f"/v2/{NAME}/blobs/{digest}", Range="bytes=70000-70009")
    assert part.status_code == 206 and part.data == BIG[70000:70010]
    assert part.headers["Content-Range"] == f"bytes 70000-70009/{len(BIG)}"
    assert v2.get(f"/v2/{NAME}/blobs/{digest}", Range="bytes=-5").data == BIG[-5:]
    past = v2.get(f"/v2/{NAME}/blobs/{digest}", Range=f"bytes={len(BIG)}-")
    assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{len(BIG)}"
    config = v2.get(f"/v2/{NAME}/blobs/{image.config_digest}")
    assert config.status_code == 200
    assert config.data == v2.store.get_manifest_bytes((NAME, "1"))
    assert (
        v2.get(f"/v2/{NAME}/blobs/{image.config_digest}", Range="bytes=0-1").data == config.data[:2]
    )
    assert error(v2.get(f"/v2/{NAME}/blobs/sha256:{'0' * 64}")) == "BLOB_UNKNOWN"
    assert error(v2.get(f"/v2/{NAME}/blobs/sha512:{'0' * 128}")) == "BLOB_UNKNOWN"


def test_a_blob_is_served_only_from_a_repository_that_names_it(v2: V2) -> None:
    own = f"sha256:{hashlib.sha256(b'other/lib 1' + bytes([10])).hexdigest()}"
    assert v2.get(f"/v2/other/lib/blobs/{own}").status_code == 200
    assert error(v2.get(f"/v2/{NAME}/blobs/{own}")) == "BLOB_UNKNOWN"
    config = v2.store.oci.image(("other/lib", "1")).config_digest
    assert error(v2.get(f"/v2/{NAME}/blobs/{config}")) == "BLOB_UNKNOWN"


def test_tags_are_finalized_live_versions_with_paging(v2: V2) -> None:
    assert v2.get(f"/v2/{NAME}/tags/list").get_json() == {"name": NAME, "tags": ["1", "2"]}
    first = v2.get(f"/v2/{NAME}/tags/list?n=1")
    assert first.get_json()["tags"] == ["1"]
    assert first.headers["Link"] == f'</v2/{NAME}/tags/list?n=1&last=1>; rel="next"'
    assert v2.get(f"/v2/{NAME}/tags/list?n=1&last=1").get_json()["tags"] == ["2"]
    v2.store.create_package(NAME, "3")
    v2.store.delete_package((NAME, "1"))
    assert v2.get(f"/v2/{NAME}/tags/list").get_json()["tags"] == ["2"]
    assert error(v2.get(f"/v2/{NAME}/manifests/1")) == "MANIFEST_UNKNOWN"
    assert error(v2.get(f"/v2/{NAME}/manifests/3")) == "MANIFEST_UNKNOWN"
    big = f"sha256:{hashlib.sha256(BIG).hexdigest()}"
    assert v2.get(f"/v2/{NAME}/blobs/{big}").data == BIG  # version 2 names it too
    readme = hashlib.sha256(f"{NAME} 1\n".encode()).hexdigest()
    assert error(v2.get(f"/v2/{NAME}/blobs/sha256:{readme}")) == "BLOB_UNKNOWN"


def test_unknown_names_and_routes_and_writes_get_oci_errors(v2: V2) -> None:
    assert error(v2.get("/v2/acme/none/tags/list")) == "NAME_UNKNOWN"
    assert error(v2.get("/v2/acme/none/manifests/1")) == "NAME_UNKNOWN"
    assert error(v2.get(f"/v2/{NAME}/manifests/9")) == "MANIFEST_UNKNOWN"
    assert error(v2.get(f"/v2/{NAME}/manifests/not*a*tag")) == "MANIFEST_UNKNOWN"
    invalid = v2.get("/v2/Acme/App/tags/list")
    assert invalid.status_code == 400 and error(invalid) == "NAME_INVALID"
    unknown = v2.get(f"/v2/{NAME}/referrers")
    assert unknown.status_code == 404 and error(unknown) == "NAME_UNKNOWN"
    upload = v2.client.post(f"/v2/{NAME}/blobs/uploads/")
    assert upload.status_code == 405 and error(upload) == "UNSUPPORTED"
    put = v2.client.put(f"/v2/{NAME}/manifests/3", data=b"{}")
    assert put.status_code == 405 and error(put) == "UNSUPPORTED"


def test_a_manifest_the_log_does_not_vouch_for_is_a_500_without_its_cause(v2: V2) -> None:
    with v2.store.engine.begin() as connection:
        connection.execute(
            text("UPDATE artifact_packages SET manifest_digest = :d WHERE version = '2'"),
            {"d": "blake3:" + "0" * 64},
        )
    broken = v2.get(f"/v2/{NAME}/manifests/2")
    assert broken.status_code == 500 and error(broken) == "UNKNOWN"
    assert "blake3" not in broken.get_data(as_text=True)
    assert v2.get(f"/v2/{NAME}/manifests/1").status_code == 200


def test_a_prefixed_token_is_denied_outside_its_prefix(v2: V2) -> None:
    assert v2.get(f"/v2/{NAME}/manifests/1", secret=v2.acme).status_code == 200
    for url in (
        "/v2/other/lib/manifests/1",
        "/v2/other/lib/tags/list",
        "/v2/other/lib/blobs/sha256:" + "0" * 64,
    ):
        denied = v2.get(url, secret=v2.acme)
        assert denied.status_code == 403 and error(denied) == "DENIED"
        assert "may read only names under 'acme/'" in denied.get_json()["errors"][0]["message"]
    v2.store.revoke_token("reader")
    assert error(v2.get(f"/v2/{NAME}/manifests/1")) == "DENIED"


def test_anonymous_reads_only_when_the_server_allows_them(make_v2: Callable[[bool], V2]) -> None:
    closed = make_v2(False)
    assert closed.get(f"/v2/{NAME}/manifests/1", secret=None).status_code == 401
    opened = make_v2(True)
    assert opened.get(f"/v2/{NAME}/manifests/1", secret=None).status_code == 200
    assert opened.get("/v2/", secret=None).status_code == 200
    assert opened.get(f"/v2/{NAME}/manifests/1", secret="as_bad_00").status_code == 401


def test_the_token_route_trades_a_basic_password_for_a_bearer_token(v2: V2) -> None:
    def basic(secret: str) -> TestResponse:
        credentials = base64.b64encode(f"ci:{secret}".encode()).decode()
        return v2.client.get("/v2/token", headers={"Authorization": f"Basic {credentials}"})

    answer = basic(v2.reader)
    assert answer.status_code == 200
    assert answer.get_json() == {"token": v2.reader, "access_token": v2.reader}
    assert answer.headers["Cache-Control"] == "no-store"
    assert error(basic("as_unknown_00")) == "UNAUTHORIZED"
    assert error(v2.client.get("/v2/token")) == "UNAUTHORIZED"
    assert v2.get("/v2/token").status_code == 200
    v2.store.revoke_token("reader")
    assert basic(v2.reader).status_code == 401


# -- real clients against gunicorn ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """gunicorn over a fresh store holding acme/app 1.0 and other/lib 1, for this module."""
    with serving(module_database_url, tmp_path_factory.mktemp("server")) as served:
        tree = tmp_path_factory.mktemp("tree")
        (tree / "bin").mkdir()
        (tree / "bin" / "run").write_bytes(BIG)
        (tree / "bin" / "run").chmod(0o755)
        (tree / "dü").mkdir()
        (tree / "dü" / "é.txt").write_text("café\n")
        (tree / "empty").write_bytes(b"")
        with served.open() as store:
            store.push("acme/app", "1.0", tree)
            store.push("other/lib", "1", tree)
        yield served


def hostname(server: Served) -> str:
    return server.url.removeprefix("http://")


def test_skopeo_copies_from_serve_and_the_copy_imports_as_the_same_files(
    server: Served, tmp_path: Path
) -> None:
    source = f"docker://{hostname(server)}/acme/app:1.0"
    with server.open() as store:
        image = store.oci.image(("acme/app", "1.0"))
        files = store.list_files(("acme/app", "1.0"))
        entries = store.get_manifest(("acme/app", "1.0")).files
    raw = skopeo(
        "inspect", "--raw", "--tls-verify=false", "--registry-token", server.reader, source
    )
    assert raw.stdout.encode() == image.manifest
    creds = f"ci:{server.reader}"
    layout = tmp_path / "copied"
    skopeo("copy", "--src-tls-verify=false", "--src-creds", creds, source, f"oci:{layout}:1.0")
    with ArtifactStore.open(f"sqlite:///{tmp_path / 'second.db'}", tmp_path / "blobs") as second:
        second.oci.import_layout(layout, "acme/app", "1.0")
        assert second.list_files(("acme/app", "1.0")) == files
        assert second.get_manifest(("acme/app", "1.0")).files == entries
    with pytest.raises(subprocess.CalledProcessError) as refused:
        skopeo("inspect", "--raw", "--tls-verify=false", source)
    assert "unauthorized" in refused.value.stderr.lower()


def test_oras_pulls_the_files_under_their_names(
    server: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # oras keeps logins in ~/.docker/config.json
    target = f"{hostname(server)}/acme/app:1.0"
    client = oras.client.OrasClient(hostname=hostname(server), insecure=True)
    client.auth.set_token_auth(server.reader)
    pulled = client.pull(target=target, outdir=str(tmp_path / "out"))
    assert sorted(Path(p).relative_to(tmp_path / "out").as_posix() for p in pulled) == [
        "bin/run",
        "dü/é.txt",
        "empty",
    ]
    assert (tmp_path / "out" / "bin" / "run").read_bytes() == BIG
    assert (tmp_path / "out" / "dü" / "é.txt").read_text() == "café\n"
    login = oras.client.OrasClient(hostname=hostname(server), insecure=True)
    login.login(username="ci", password=server.reader, hostname=hostname(server))
    assert len(login.pull(target=target, outdir=str(tmp_path / "again"))) == 3


@pytest.mark.parametrize("token", ["acme-writer", None])
def test_oras_is_refused_without_a_token_for_the_name(
    server: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    # oras retries a request whose auth flow fails five times, sleeping 3 s to 83 s between
    # tries (2 min 11 s in all): the refusal is the same each time, only the wait goes.
    monkeypatch.setattr(oras.decorator.time, "sleep", lambda _seconds: None)
    client = oras.client.OrasClient(hostname=hostname(server), insecure=True)
    if token is not None:
        client.auth.set_token_auth(server.acme_writer)
    with pytest.raises(ValueError):
        client.pull(target=f"{hostname(server)}/other/lib:1", outdir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    access = server.access_log.read_text()
    assert '"GET /v2/other/lib/manifests/1 HTTP/1.1" 40' in access
    assert json.dumps(server.reader) not in access
