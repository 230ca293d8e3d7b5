"""`artifactstore serve --workers 2` with its blobs in S3, used by a remote client over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import sys
from pathlib import Path

from s3_server import DUMMY_CREDENTIALS, client
from test_web import free_port, started

from artifactstore import ArtifactStore, digest_stream
from artifactstore.config import S3Location

MIB = 1024 * 1024


def test_a_server_over_s3_takes_uploads_publishes_and_serves_ranges(
    migrated_url: str, s3_url: str, s3_location: S3Location, tmp_path: Path
) -> None:
    with ArtifactStore.open(migrated_url, storage_url=s3_url) as store:
        _, secret = store.create_token("ci", "write")
    big, small = os.urandom(20 * MIB), b"small file\n"
    port = free_port()
    env = {**os.environ, "ARTIFACTSTORE_DATABASE_URL": migrated_url}
    env |= {"ARTIFACTSTORE_STORAGE_URL": s3_url, "HOME": str(tmp_path)}
    argv = [sys.executable, "-m", "artifactstore", "serve", "--port", str(port), "--workers", "2"]
    with started(argv, env, port):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        auth = {"Authorization": f"Bearer {secret}"}
        files = []
        for name, data in (("big.bin", big), ("small.txt", small)):
            address = digest_stream(data).content_address
            connection.request("PUT", f"/v1/blobs/{address}", body=data, headers=auth)
            answer = connection.getresponse()
            assert answer.status == 201, answer.read()
            answer.read()
            files.append({"path": name, "content_address": str(address), "executable": False})
        body = json.dumps({"files": files})
        headers = {**auth, "Content-Type": "application/json"}
        connection.request("PUT", "/v1/packages/acme/app/versions/1", body=body, headers=headers)
        published = connection.getresponse()
        assert published.status == 201, published.read()
        published.read()
        path = "/v1/packages/acme/app/versions/1/file?path=big.bin"
        connection.request("GET", path, headers={**auth, "Range": "bytes=1000-1999"})
        ranged = connection.getresponse()
        assert (ranged.status, ranged.read()) == (206, big[1000:2000])
        connection.request("GET", path, headers=auth)
        whole = connection.getresponse()
        assert (whole.status, whole.read()) == (200, big)
        connection.request("GET", "/health")
        health = connection.getresponse()
        document = health.read().decode()
        assert health.status == 200, document
        assert s3_location.bucket in json.loads(document)["storage"]["detail"]
        for secret_value in DUMMY_CREDENTIALS.values():
            if "secret" in secret_value.lower() or secret_value.startswith("AKIA"):
                assert secret_value not in document
    assert s3_location.endpoint_url is not None
    listing = client(s3_location.endpoint_url).list_objects_v2(Bucket=s3_location.bucket)
    hexes = [digest_stream(data).content_address.hex for data in (big, small)]
    assert sorted(item["Key"] for item in listing.get("Contents", [])) == sorted(
        f"store/blake3/{h[:2]}/{h[2:4]}/{h}" for h in hexes
    )
