"""`POST /v1/packages/{name}/versions/{version}/blobs`: a version's small files, many to an
answer, as frames in the order asked; refused (400, 403, 404) for what a read may not get.

Driven with Flask's test client over a store with packages pushed (test_api.py's fixtures).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import blake3
from test_api import BIG, NAME, SMALL, Api, api, error_of, make_api
from werkzeug.test import TestResponse

from artifactstore import ArtifactStore, ContentAddress, batch

__all__ = ["api", "make_api"]  # fixtures of test_api.py, used here by name

ROUTE = f"/v1/packages/{NAME}/versions/1/blobs"


def address(data: bytes) -> str:
    """The content address of data."""
    return f"blake3:{blake3.blake3(data).hexdigest()}"


def fetch(api: Api, blobs: object, route: str = ROUTE, secret: str | None = "") -> TestResponse:
    """POST the body {"blobs": blobs} to route with the read token (or secret, or none)."""
    token = api.secret if secret == "" else secret
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return api.client.post(route, json={"blobs": blobs}, headers=headers)


def frames(answer: TestResponse, blobs: list[bytes]) -> list[bytes]:
    """The bytes of each frame of answer, which must be blobs' frames in order."""
    entries = [batch.Entry(ContentAddress.parse(address(b)), len(b)) for b in blobs]
    return [data for _, data in batch.frames(io.BytesIO(answer.get_data()), entries)]


def test_blobs_come_as_frames_in_the_order_asked(api: Api) -> None:
    answer = fetch(api, [address(SMALL), address(BIG)])
    assert answer.status_code == 200, answer.get_data()
    assert answer.mimetype == "application/octet-stream"
    assert int(answer.headers["Content-Length"]) == len(answer.get_data())
    assert frames(answer, [SMALL, BIG]) == [SMALL, BIG]
    assert frames(fetch(api, [address(BIG), address(SMALL)]), [BIG, SMALL]) == [BIG, SMALL]
    assert frames(fetch(api, []), []) == []


def test_only_a_version_s_own_small_files_are_sent(api: Api, tmp_path: Path) -> None:
    large = os.urandom(batch.MAX_BLOB + 1)
    tree = tmp_path / "large"
    tree.mkdir()
    (tree / "big.bin").write_bytes(large)
    api.store.push("acme/large", "1", tree)
    route = "/v1/packages/acme/large/versions/1/blobs"
    for blobs, route_, status, code in (
        ([address(b"not in the package")], ROUTE, 404, "package_file_not_found"),
        ([address(SMALL)], route, 404, "package_file_not_found"),  # another version's blob
        ([address(large)], route, 400, "invalid_input"),  # above MAX_BLOB: GET .../file
        ("blake3:00", ROUTE, 400, "invalid_input"),
        ([1, 2], ROUTE, 400, "invalid_input"),
        ([address(SMALL)] * (batch.MAX_BLOBS + 1), ROUTE, 400, "invalid_input"),
        ([address(SMALL)], f"/v1/packages/{NAME}/versions/9/blobs", 404, "package_not_found"),
    ):
        answer = fetch(api, blobs, route_)
        assert (answer.status_code, error_of(answer)["code"]) == (status, code), blobs


def test_the_route_needs_a_read_token_for_the_name(api: Api) -> None:
    assert fetch(api, [address(SMALL)], secret=None).status_code == 401
    _, acme_only = api.store.create_token("acme-reader", "read", "acme/")
    _, other_only = api.store.create_token("other-reader", "read", "other/")
    assert fetch(api, [address(SMALL)], secret=acme_only).status_code == 200
    answer = fetch(api, [address(SMALL)], secret=other_only)
    assert (answer.status_code, error_of(answer)["code"]) == (403, "forbidden")


def test_anonymous_reads_reach_the_route_only_when_allowed(
    make_api: Callable[[bool], Api],
) -> None:
    assert fetch(make_api(False), [address(SMALL)], secret=None).status_code == 401
    answer = fetch(make_api(True), [address(SMALL)], secret=None)
    assert frames(answer, [SMALL]) == [SMALL]


def test_a_corrupt_blob_cuts_the_answer_short_before_its_frame(
    api: Api, blob_root: Path, corrupt_blob: Callable[[Path, bytes], None]
) -> None:
    corrupt_blob(blob_root, SMALL)
    answer = fetch(api, [address(BIG), address(SMALL)])
    body = answer.get_data()
    assert int(answer.headers["Content-Length"]) > len(body)
    # The good blob before it came whole; not a byte of the bad one.
    entry = batch.Entry(ContentAddress.parse(address(BIG)), len(BIG))
    assert body == entry.frame_line() + BIG


def test_a_post_to_another_leaf_is_still_a_write(api: Api, store: ArtifactStore) -> None:
    answer = api.client.post(
        f"/v1/packages/{NAME}/versions/9/open",
        data=json.dumps({}),
        headers={"Authorization": f"Bearer {api.secret}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 403
    assert "9" not in {p.version for p in store.list_packages(NAME, include_ended=True)}
