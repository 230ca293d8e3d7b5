"""The OCI projection of a package (oci.layout): exact JSON bytes, their digest, and layouts
read back (titled layers, the executable annotation, what is refused)."""

from __future__ import annotations

import hashlib
import json

import pytest

from artifactstore.errors import InvalidInputError
from artifactstore.identity import Digest
from artifactstore.oci import layout
from artifactstore.records import StoredFile


def stored(path: str, data: bytes, executable: bool = False) -> StoredFile:
    sha = hashlib.sha256(data).hexdigest()
    return StoredFile(
        path, len(data), Digest("blake3", "0" * 64), Digest("sha256", sha), executable, ""
    )


FILES = [stored("bin/run", b"#!/bin/sh\n", True), stored("dü/empty", b"")]
CONFIG = b"\xa1canonical"


def test_the_image_digest_is_the_sha256_of_the_exact_bytes() -> None:
    image = layout.image(CONFIG, "blake3:" + "1" * 64, FILES)
    assert image.digest == "sha256:" + hashlib.sha256(image.manifest).hexdigest()
    assert image.config_digest == "sha256:" + hashlib.sha256(CONFIG).hexdigest()
    assert image.manifest == layout.image(CONFIG, "blake3:" + "1" * 64, FILES).manifest
    # One form: sorted keys, no spaces, UTF-8 as is (no \\u escapes).
    document = json.loads(image.manifest)
    assert (
        image.manifest
        == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert "dü/empty".encode() in image.manifest


def test_the_manifest_is_an_artifact_with_a_titled_layer_per_file() -> None:
    document = json.loads(layout.image(CONFIG, "blake3:" + "1" * 64, FILES).manifest)
    assert document["schemaVersion"] == 2
    assert document["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert document["artifactType"] == "application/vnd.artifactstore.package.v1"
    assert document["config"]["mediaType"] == "application/vnd.artifactstore.manifest.v1+cbor"
    assert document["config"]["size"] == len(CONFIG)
    assert document["annotations"] == {"dev.artifactstore.manifest.digest": "blake3:" + "1" * 64}
    assert [layer["annotations"] for layer in document["layers"]] == [
        {"org.opencontainers.image.title": "bin/run", "dev.artifactstore.file.executable": "true"},
        {"org.opencontainers.image.title": "dü/empty"},
    ]
    assert document["layers"][1]["digest"] == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert layout.read_layers(layout.image(CONFIG, "x", FILES).manifest) == [
        layout.Layer("bin/run", FILES[0].sha256.hex, len(b"#!/bin/sh\n"), True),
        layout.Layer("dü/empty", FILES[1].sha256.hex, 0, False),
    ]


def test_the_index_tags_the_manifest_with_the_version() -> None:
    image = layout.image(CONFIG, "x", FILES)
    index = layout.index(image, "1.4.2")
    assert layout.pick_manifest(index, "anything") == (image.digest, len(image.manifest))
    descriptor = json.loads(index)["manifests"][0]
    assert descriptor["annotations"] == {"org.opencontainers.image.ref.name": "1.4.2"}


def oras_manifest(*layers: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": "sha256:" + "4" * 64,
                "size": 2,
            },
            "layers": list(layers),
        }
    ).encode()


def layer(
    title: str | None, digest: str = "sha256:" + "a" * 64, size: object = 3
) -> dict[str, object]:
    found: dict[str, object] = {
        "mediaType": "application/octet-stream",
        "digest": digest,
        "size": size,
    }
    if title is not None:
        found["annotations"] = {"org.opencontainers.image.title": title}
    return found


def test_untitled_layers_are_skipped_but_not_all_of_them() -> None:
    assert layout.read_layers(oras_manifest(layer("a.txt"), layer(None))) == [
        layout.Layer("a.txt", "a" * 64, 3, False)
    ]
    with pytest.raises(InvalidInputError, match=r"no layer .* has a title"):
        layout.read_layers(oras_manifest(layer(None)))
    assert layout.read_layers(oras_manifest()) == []


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (oras_manifest(layer("a", digest="sha512:" + "a" * 128)), "not sha256"),
        (oras_manifest(layer("a", digest="sha256:" + "A" * 64)), "not sha256"),
        (oras_manifest(layer("a", size=-1)), "not a whole number"),
        (oras_manifest(layer("a", size=True)), "not a whole number"),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "layers": [],
                }
            ).encode(),
            "not an OCI image manifest",
        ),
    ],
)
def test_a_malformed_manifest_is_refused(manifest: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        layout.read_layers(manifest)


def test_an_index_of_several_manifests_needs_the_version_tag() -> None:
    def descriptor(digest: str, tag: str) -> dict[str, object]:
        return {
            "digest": digest,
            "size": 1,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }

    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                descriptor("sha256:" + "1" * 64, "1"),
                descriptor("sha256:" + "2" * 64, "2"),
            ],
        }
    ).encode()
    assert layout.pick_manifest(index, "2") == ("sha256:" + "2" * 64, 1)
    with pytest.raises(InvalidInputError, match="0 tagged '3'"):
        layout.pick_manifest(index, "3")
    with pytest.raises(InvalidInputError, match="naming a manifest"):
        layout.pick_manifest(b'{"schemaVersion": 2, "manifests": []}', "1")
