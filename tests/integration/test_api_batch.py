"""`POST /v1/blobs/batch`: many small blobs in one streamed request, held before they are
written, each checked against its address; bad bodies and limits refused (400, 422).

Driven with Flask's test client (test_api_write.py's Writer), and the garbage-collection race
with `gc --grace 0` in another process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_api_write import CHUNKED, Writer, address, error_code, writer_over

from artifactstore import ArtifactStore, ContentAddress, NamedBlob, batch

ROUTE = "/v1/blobs/batch"


@pytest.fixture
def writer(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> Writer:
    return writer_over(store, monkeypatch)


def body(blobs: list[bytes], frames: list[bytes] | None = None) -> bytes:
    """A batch body announcing blobs, with frames (default: the blobs themselves)."""
    entries = [batch.Entry(ContentAddress.parse(address(b)), len(b)) for b in blobs]
    sent = blobs if frames is None else frames
    return batch.index_line(entries) + b"".join(
        e.frame_line() + data for e, data in zip(entries, sent, strict=True)
    )


def stored(store: ArtifactStore, data: bytes) -> bool:
    """Whether the store has data's blob."""
    return store.dataplane.stat_object(ContentAddress.parse(address(data))) is not None


def post(writer: Writer, content: bytes, token: str = "writer", **kwargs: Any) -> Any:
    """POST content as a batch body."""
    return writer.call("POST", ROUTE, token, data=content, **kwargs)


def test_a_batch_stores_each_blob_once_and_says_which_were_there(writer: Writer) -> None:
    blobs = [os.urandom(n) for n in (0, 1, 5000, 200_000, batch.MAX_BLOB)]
    assert writer.upload(blobs[1]).status_code == 201
    answer = post(writer, body(blobs))
    assert answer.status_code == 200, answer.get_data()
    assert answer.get_json() == {
        "present": [address(blobs[1])],
        "stored": [address(b) for b in blobs if b is not blobs[1]],
    }
    for data in blobs:
        with writer.store.dataplane.serve_object(ContentAddress.parse(address(data))) as found:
            assert found.read() == data
    asked = {"blobs": [address(b) for b in blobs]}
    assert writer.call("POST", "/v1/blobs/missing", json=asked).get_json() == {"missing": []}
    # The blobs are held with what the server hashed: a publish names them without sending.
    files = [
        {"path": f"f{n}", "content_address": address(b), "executable": False}
        for n, b in enumerate(blobs)
    ]
    published = writer.publish("1", files)
    assert published.status_code == 201, published.get_data()
    assert not writer.store.verify_package(("acme/app", "1")).problems
    # Streamed: a body without Content-Length is read as it comes.
    again = writer.call("POST", ROUTE, input_stream=io.BytesIO(body(blobs[:2])), **CHUNKED)
    assert again.status_code == 200 and again.get_json()["stored"] == []


def test_a_batch_needs_the_write_scope(writer: Writer) -> None:
    content = body([b"scoped"])
    assert post(writer, content, token="reader").status_code == 403
    assert writer.call("POST", ROUTE, None, data=content).status_code == 401
    assert not stored(writer.store, b"scoped")


def test_a_frame_whose_bytes_do_not_match_is_refused_by_name(writer: Writer) -> None:
    good, bad, later = b"good blob", b"announced blob", b"never reached"
    answer = post(writer, body([good, bad, later], [good, b"other  blob!!!", later]))
    assert answer.status_code == 422 and error_code(answer) == "digest_mismatch"
    assert address(bad) in answer.get_json()["error"]["message"]
    assert stored(writer.store, good)  # whole and checked before the bad frame: it stays
    assert not stored(writer.store, bad) and not stored(writer.store, later)
    asked = {"blobs": [address(good), address(bad)]}
    answer = writer.call("POST", "/v1/blobs/missing", json=asked)
    assert answer.get_json() == {"missing": [address(bad)]}


def test_a_truncated_body_is_refused_and_nothing_of_the_cut_frame_is_visible(
    writer: Writer,
) -> None:
    first, cut = b"first whole blob", os.urandom(300_000)
    whole = body([first, cut])
    for end in (len(whole) - 1, len(whole) - len(cut) - 1, len(whole) - len(cut) // 2):
        answer = writer.call("POST", ROUTE, input_stream=io.BytesIO(whole[:end]), **CHUNKED)
        assert answer.status_code == 400 and error_code(answer) == "invalid_input", end
        assert "ended" in answer.get_json()["error"]["message"]
        assert not stored(writer.store, cut)
    asked = {"blobs": [address(first), address(cut)]}
    answer = writer.call("POST", "/v1/blobs/missing", json=asked)
    assert answer.get_json() == {"missing": [address(cut)]}


def test_malformed_bodies_and_limits_are_refused(writer: Writer) -> None:
    big = {"content_address": address(b"x"), "size": batch.MAX_BLOB + 1}
    many = [{"content_address": address(b"%d" % n), "size": 1} for n in range(batch.MAX_BLOBS + 1)]
    heavy = [
        {"content_address": address(b"%d" % n), "size": batch.MAX_BLOB}
        for n in range(batch.MAX_BYTES // batch.MAX_BLOB + 1)
    ]
    twice = [{"content_address": address(b"x"), "size": 1}] * 2
    for blobs in ([big], many, heavy, twice, "no list", [{"size": 1}]):
        answer = post(writer, json.dumps({"blobs": blobs}).encode() + b"\n")
        assert answer.status_code == 400 and error_code(answer) == "invalid_input", blobs
    for content in (
        b"not json\n",
        b'{"blobs": []}',  # no newline: the index line never ends
        body([b"a"]) + b"more",  # bytes after the last frame
        # the frames in another order than the index's
        body([b"a", b"b"]).split(b"\n")[0] + b"\n" + body([b"b", b"a"]).split(b"\n", 1)[1],
        b"x" * (batch.MAX_INDEX + 2),
    ):
        answer = post(writer, content)
        assert answer.status_code == 400 and error_code(answer) == "invalid_input", content[:40]
    assert post(writer, b'{"blobs": []}\n').get_json() == {"present": [], "stored": []}


def test_a_batch_beside_gc_grace_0_in_another_process_loses_no_blob(
    migrated_url: str, blob_root: Path, tmp_path: Path
) -> None:
    """The blobs a batch finds stored (so does not write) belong to a deleted package; gc, in
    another process, runs once every frame is in: they are held, so it must keep them."""
    blobs = [b"shared one", b"shared two", os.urandom(100_000)]
    tree = tmp_path / "t"
    tree.mkdir()
    for n, data in enumerate(blobs):
        (tree / f"f{n}").write_bytes(data)
    with ArtifactStore.open(migrated_url, blob_root) as store:
        store.push("p", "old", tree)
        store.delete_package("p:old")
        source = GcAtTheEnd(body(blobs), migrated_url, blob_root)
        stored_now, present = store.uploads.receive_many(source)
        assert source.freed is not None and source.freed.startswith(b"freed 0 blobs")
        assert (stored_now, present) == ([], [address(b) for b in blobs])
        assert all(stored(store, data) for data in blobs)
        files = [NamedBlob.checked(f"f{n}", address(b), False) for n, b in enumerate(blobs)]
        store.uploads.publish("p", "new", files, "standard", None)
        assert store.verify_package("p:new").ok


class GcAtTheEnd(io.BytesIO):
    """A batch body that runs `gc --grace 0` in another process when it is read to its end."""

    def __init__(self, content: bytes, url: str, root: Path) -> None:
        super().__init__(content)
        self._url, self._root, self._size = url, root, len(content)
        self.freed: bytes | None = None

    def read(self, size: int | None = -1, /) -> bytes:
        """Read; at the end, run gc first (once)."""
        if self.freed is None and self.tell() == self._size:
            env = {
                **os.environ,
                "ARTIFACTSTORE_DATABASE_URL": self._url,
                "ARTIFACTSTORE_STORAGE_LOCAL_ROOT": str(self._root),
            }
            done = subprocess.run(
                [sys.executable, "-m", "artifactstore", "gc", "--grace", "0"],
                env=env,
                capture_output=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            self.freed = done.stdout
        return super().read(size)
