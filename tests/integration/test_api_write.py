"""The /v1 package API's write side over a real store: blobs in, publish, assembly, auth.

Driven with Flask's test client; the multi-process cases (gunicorn workers, racing clients, a
connection dropped mid-upload) are in test_api_processes.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from artifactstore import ArtifactStore, digest_stream
from artifactstore.web import create_app

NAME = "acme/app"
BIG = os.urandom(300_000)  # above the small-blob limit: the one-file-per-blob tier
SMALL = b"#!/bin/sh\necho hi\n"
CHUNKED: dict[str, Any] = {
    "environ_overrides": {"CONTENT_LENGTH": "", "wsgi.input_terminated": True},
    "headers": {"Transfer-Encoding": "chunked"},
}
"""A request body without a Content-Length, as a chunked one reaches the app."""


def address(data: bytes) -> str:
    """The content address of data."""
    return str(digest_stream(data).content_address)


@dataclass
class Writer:
    """A test client with a write token (and an admin and a read one) over a store."""

    client: FlaskClient
    store: ArtifactStore
    secrets: dict[str, str]

    def call(
        self, method: str, url: str, token: str | None = "writer", **kwargs: Any
    ) -> TestResponse:
        """Call url as the named token (None: no Authorization header)."""
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {self.secrets[token]}"
        return self.client.open(url, method=method, headers=headers, **kwargs)

    def upload(self, data: bytes, token: str = "writer") -> TestResponse:
        """PUT data as the blob it is."""
        return self.call("PUT", f"/v1/blobs/{address(data)}", token, data=data)

    def publish(
        self, version: str, files: list[dict[str, object]], **extra: object
    ) -> TestResponse:
        """PUT a version made of files (already uploaded blobs)."""
        body = {"files": files, **extra}
        return self.call("PUT", f"/v1/packages/{NAME}/versions/{version}", json=body)


@pytest.fixture
def writer(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[Writer]:
    yield writer_over(store, monkeypatch)


def writer_over(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> Writer:
    """A Writer over store, its tokens made, anonymous reads off."""
    monkeypatch.setenv("ARTIFACTSTORE_ANONYMOUS_READ", "0")
    secrets = {
        "writer": store.create_token("writer", "write")[1],
        "reader": store.create_token("reader", "read")[1],
        "admin": store.create_token("admin", "admin")[1],
        "other": store.create_token("other", "write", prefix="other/")[1],
    }
    return Writer(create_app(store).test_client(), store, secrets)


def files() -> list[dict[str, object]]:
    """The file list of a version made of BIG (bin/tool, executable) and SMALL."""
    return [
        {"path": "bin/tool", "content_address": address(BIG), "executable": True},
        {"path": "run.sh", "content_address": address(SMALL), "executable": False},
    ]


def error_code(answer: TestResponse) -> str:
    """The error code of an API error answer."""
    code = answer.get_json()["error"]["code"]
    assert isinstance(code, str)
    return code


def test_missing_lists_only_what_the_server_lacks_then_upload_fills_it(writer: Writer) -> None:
    asked = {"blobs": [address(BIG), address(SMALL), address(BIG)]}
    answer = writer.call("POST", "/v1/blobs/missing", json=asked)
    assert answer.status_code == 200
    assert answer.get_json() == {"missing": [address(BIG), address(SMALL)]}
    first = writer.upload(BIG)
    assert first.status_code == 201
    assert first.get_json() == {
        "content_address": address(BIG),
        "created": True,
        "sha256": hashlib.sha256(BIG).hexdigest(),
        "size": len(BIG),
    }
    assert writer.upload(BIG).status_code == 200
    assert writer.upload(SMALL).status_code == 201
    answer = writer.call("POST", "/v1/blobs/missing", json=asked)
    assert answer.get_json() == {"missing": []}


def test_a_blob_whose_bytes_do_not_match_its_address_is_refused_and_not_stored(
    writer: Writer,
) -> None:
    for data in (BIG, SMALL):
        wrong = address(data + b"x")
        answer = writer.call("PUT", f"/v1/blobs/{wrong}", data=data)
        assert answer.status_code == 422 and error_code(answer) == "digest_mismatch"
        still = writer.call("POST", "/v1/blobs/missing", json={"blobs": [wrong, address(data)]})
        assert still.get_json() == {"missing": [wrong, address(data)]}


def test_an_upload_is_streamed_from_the_request_body(writer: Writer) -> None:
    # A body without Content-Length (chunked): read from the stream, never whole.
    answer = writer.call(
        "PUT", f"/v1/blobs/{address(BIG)}", input_stream=io.BytesIO(BIG), **CHUNKED
    )
    assert answer.status_code == 201
    with writer.store.dataplane.serve_object(digest_stream(BIG).content_address) as stored:
        assert stored.read() == BIG


def test_publish_creates_then_confirms_then_conflicts(writer: Writer) -> None:
    writer.upload(BIG)
    writer.upload(SMALL)
    created = writer.publish("1", files(), metadata={"git": "abc"})
    assert created.status_code == 201, created.get_data()
    body = created.get_json()
    assert body["created"] is True and body["files"] == 2 and body["bytes"] == len(BIG) + len(SMALL)
    package = writer.store.get_package(NAME, "1")
    assert package.manifest_digest == body["digest"]
    again = writer.publish("1", files(), metadata={"git": "abc"})
    assert again.status_code == 200 and again.get_json()["created"] is False
    assert again.get_json()["digest"] == body["digest"]
    other = files()
    other[0]["executable"] = False
    conflict = writer.publish("1", other, metadata={"git": "abc"})
    assert conflict.status_code == 409 and error_code(conflict) == "conflict"
    assert "executable bit" in conflict.get_json()["error"]["message"]


def test_published_files_have_the_servers_digests_and_events_name_the_token(
    writer: Writer,
) -> None:
    writer.upload(BIG)
    writer.upload(SMALL)
    assert writer.publish("1", files()).status_code == 201
    stored = {f.path: f for f in writer.store.list_files((NAME, "1"))}
    assert stored["bin/tool"].sha256.hex == hashlib.sha256(BIG).hexdigest()
    assert stored["bin/tool"].size == len(BIG) and stored["bin/tool"].executable
    assert stored["run.sh"].sha256.hex == hashlib.sha256(SMALL).hexdigest()
    assert not writer.store.verify_package((NAME, "1")).problems
    actors = {e.actor for e in writer.store.tail_events() if e.package_id is not None}
    assert actors == {"token:writer"}


def test_publish_naming_missing_blobs_lists_them_and_changes_nothing(writer: Writer) -> None:
    writer.upload(SMALL)
    answer = writer.publish("1", files())
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["code"] == "missing_blobs" and error["missing"] == [address(BIG)]
    assert writer.store.list_packages(NAME) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"files": [{"path": "../x", "content_address": address(SMALL), "executable": False}]},
            "invalid_path",
        ),
        (
            {"files": [{"path": "x", "content_address": "md5:00", "executable": False}]},
            "invalid_address",
        ),
        (
            {"files": [{"path": "x", "content_address": address(SMALL), "executable": "no"}]},
            "invalid_input",
        ),
        ({"files": "x"}, "invalid_input"),
        ({"files": [], "metadata": []}, "invalid_input"),
        ({"files": [], "retention_class": "forever"}, "invalid_retention_class"),
        (
            {"files": [{"path": "x", "content_address": address(SMALL), "executable": False}] * 2},
            "invalid_path",
        ),
    ],
)
def test_malformed_publish_bodies_are_400(
    writer: Writer, body: dict[str, object], code: str
) -> None:
    writer.upload(SMALL)
    answer = writer.call("PUT", f"/v1/packages/{NAME}/versions/1", json=body)
    assert answer.status_code == 400, answer.get_data()
    assert error_code(answer) == code
    assert writer.store.list_packages(NAME) == []


def test_a_body_that_is_not_json_is_400(writer: Writer) -> None:
    answer = writer.call("PUT", f"/v1/packages/{NAME}/versions/1", data=b"{nope")
    assert answer.status_code == 400 and error_code(answer) == "invalid_input"
    bad_name = writer.call("PUT", "/v1/packages/Acme/versions/1", json={"files": []})
    assert bad_name.status_code == 400 and error_code(bad_name) == "invalid_name"


def test_assembly_open_add_finalize(writer: Writer) -> None:
    writer.upload(BIG)
    writer.upload(SMALL)
    base = f"/v1/packages/{NAME}/versions/2"
    opened = writer.call("POST", f"{base}/open", json={"metadata": {"job": "1"}})
    assert opened.status_code == 201 and opened.get_json()["state"] == "open"
    [tool, script] = files()
    added = writer.call("POST", f"{base}/add", json={"files": [tool]})
    assert added.status_code == 200
    assert [f["path"] for f in added.get_json()["files"]] == ["bin/tool"]
    # The same file again is no change; another blob under its path is a conflict.
    assert writer.call("POST", f"{base}/add", json={"files": [tool]}).status_code == 200
    other = {**tool, "content_address": address(SMALL)}
    clash = writer.call("POST", f"{base}/add", json={"files": [other]})
    assert clash.status_code == 409 and error_code(clash) == "already_exists"
    assert writer.call("POST", f"{base}/add", json={"files": [script]}).status_code == 200
    finalized = writer.call("POST", f"{base}/finalize")
    assert finalized.status_code == 200 and finalized.get_json()["state"] == "finalized"
    assert {f.path for f in writer.store.list_files((NAME, "2"))} == {"bin/tool", "run.sh"}
    late = writer.call("POST", f"{base}/add", json={"files": [script]})
    assert late.status_code == 409 and error_code(late) == "package_finalized"


def test_assembly_abandon_and_adding_a_missing_blob(writer: Writer) -> None:
    base = f"/v1/packages/{NAME}/versions/3"
    assert writer.call("POST", f"{base}/open").status_code == 201
    missing = writer.call("POST", f"{base}/add", json={"files": files()})
    assert missing.status_code == 422 and error_code(missing) == "missing_blobs"
    abandoned = writer.call("POST", f"{base}/abandon")
    assert abandoned.status_code == 200 and abandoned.get_json()["state"] == "abandoned"
    gone = writer.call("POST", f"{base}/finalize")
    assert gone.status_code == 409 and error_code(gone) == "package_state"


def test_publish_onto_an_open_version_is_409(writer: Writer) -> None:
    writer.upload(BIG)
    writer.upload(SMALL)
    writer.call("POST", f"/v1/packages/{NAME}/versions/4/open")
    answer = writer.publish("4", files())
    assert answer.status_code == 409 and error_code(answer) == "package_state"


def test_writes_need_the_write_scope_and_the_prefix(writer: Writer) -> None:
    blob = f"/v1/blobs/{address(SMALL)}"
    assert writer.call("PUT", blob, token=None, data=SMALL).status_code == 401
    assert writer.call("PUT", blob, token="reader", data=SMALL).status_code == 403
    denied = writer.call(
        "PUT", f"/v1/packages/{NAME}/versions/1", token="reader", json={"files": []}
    )
    assert denied.status_code == 403 and "needs write" in denied.get_json()["error"]["message"]
    outside = writer.call("POST", f"/v1/packages/{NAME}/versions/1/open", token="other", json={})
    assert outside.status_code == 403 and "other/" in outside.get_json()["error"]["message"]
    inside = writer.call("POST", "/v1/packages/other/x/versions/1/open", token="other")
    assert inside.status_code == 201
    assert writer.call("PUT", blob, token="other", data=SMALL).status_code == 201


def test_anonymous_reads_never_allow_anonymous_writes(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTSTORE_ANONYMOUS_READ", "1")
    client = create_app(store).test_client()
    answer = client.put(f"/v1/blobs/{address(SMALL)}", data=SMALL)
    assert answer.status_code == 401


def test_delete_is_admin_only_refused_under_a_hold_and_ends_the_package(writer: Writer) -> None:
    writer.upload(BIG)
    writer.upload(SMALL)
    assert writer.publish("1", files()).status_code == 201
    url = f"/v1/packages/{NAME}/versions/1"
    assert writer.call("DELETE", url).status_code == 403
    writer.store.hold((NAME, "1"), "audit")
    held = writer.call("DELETE", url, token="admin")
    assert held.status_code == 409 and error_code(held) == "package_held"
    writer.store.unhold((NAME, "1"))
    answer = writer.call("DELETE", url, token="admin")
    assert answer.status_code == 200 and answer.get_json()["state"] == "deleted"
    assert writer.store.get_package(NAME, "1").state == "deleted"
    listed = writer.call("GET", "/v1/packages", token="admin").get_json()["packages"]
    assert listed == []
    listed = writer.call("GET", "/v1/packages?all=true", token="admin").get_json()["packages"]
    assert [p["state"] for p in listed] == ["deleted"]
    [event] = [e for e in writer.store.tail_events(0) if e.event_type == "v1.package.deleted"]
    assert event.actor == "token:admin"
    gone = writer.call("GET", f"{url}/manifest", token="admin")
    assert gone.status_code == 409 and "deleted" in gone.get_json()["error"]["message"]
    again = writer.publish("1", files())
    assert again.status_code == 409 and error_code(again) == "package_state"


def test_json_bodies_must_say_their_length(writer: Writer) -> None:
    body = json.dumps({"blobs": []}).encode()
    answer = writer.call("POST", "/v1/blobs/missing", input_stream=io.BytesIO(body), **CHUNKED)
    assert answer.status_code == 411 and error_code(answer) == "length_required"


def test_unknown_write_routes_answer_in_the_api_shape(writer: Writer, tmp_path: Path) -> None:
    assert error_code(writer.call("POST", f"/v1/packages/{NAME}/versions/1/push")) == "not_found"
    assert error_code(writer.call("PUT", f"/v1/packages/{NAME}/versions")) == "not_found"
    assert writer.call("PATCH", "/v1/blobs/x").status_code == 405
