"""The OCI projection of a package: its image manifest, the index naming it, the layout file.

A package is an OCI artifact (image-spec 1.1): an image manifest with `artifactType`
ARTIFACT_TYPE, the package's canonical CBOR manifest as its config blob (CONFIG_MEDIA_TYPE),
and one layer per file, in the manifest's path order, titled with the file's path
(`org.opencontainers.image.title`, the ORAS convention) and marked EXECUTABLE when it is one.
Every layer digest is the SHA-256 the manifest recorded at ingest: nothing is hashed again
but the config and the JSON written here. The JSON is serialized once (sorted keys, no
spaces, UTF-8) and its digest is taken over exactly those bytes; an export and /v2 serve the
same bytes because both take them from `image`.

Reading a layout back (`read_image`) takes exact bytes too: the manifest blob must hash to
the digest the index gives, and the JSON is never serialized again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from artifactstore.errors import InvalidInputError
from artifactstore.records import StoredFile

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
ARTIFACT_TYPE = "application/vnd.artifactstore.package.v1"
CONFIG_MEDIA_TYPE = "application/vnd.artifactstore.manifest.v1+cbor"
LAYER_MEDIA_TYPE = "application/vnd.artifactstore.file.v1"
TITLE = "org.opencontainers.image.title"
REF_NAME = "org.opencontainers.image.ref.name"
EXECUTABLE = "dev.artifactstore.file.executable"
MANIFEST_DIGEST = "dev.artifactstore.manifest.digest"
LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'
"""The `oci-layout` file of every layout written."""


@dataclass(frozen=True, slots=True)
class OciImage:
    """A finalized package as an OCI image: the manifest JSON bytes and their digest
    ('sha256:<hex>'), the config blob (the package's canonical CBOR manifest) and its digest,
    the files its layers are, in layer order, and the package's own manifest digest."""

    manifest: bytes
    digest: str
    config: bytes
    config_digest: str
    files: tuple[StoredFile, ...]
    package_digest: str


def sha256_digest(data: bytes) -> str:
    """'sha256:<hex>' of data."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def encode_json(value: object) -> bytes:
    """The one JSON form written: sorted keys, no spaces, UTF-8 (not ASCII escapes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def image(package_manifest: bytes, manifest_digest: str, files: list[StoredFile]) -> OciImage:
    """The OCI image of a package from its checked canonical manifest and its files."""
    config_digest = sha256_digest(package_manifest)
    document = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": config_digest,
            "size": len(package_manifest),
        },
        "layers": [_layer(f) for f in files],
        "annotations": {MANIFEST_DIGEST: manifest_digest},
    }
    data = encode_json(document)
    digest = sha256_digest(data)
    return OciImage(data, digest, package_manifest, config_digest, tuple(files), manifest_digest)


def _layer(file: StoredFile) -> dict[str, object]:
    annotations = {TITLE: file.path}
    if file.executable:
        annotations[EXECUTABLE] = "true"
    return {
        "mediaType": LAYER_MEDIA_TYPE,
        "digest": f"sha256:{file.sha256.hex}",
        "size": file.size,
        "annotations": annotations,
    }


def index(found: OciImage, version: str) -> bytes:
    """The `index.json` of a layout holding found, tagged version."""
    descriptor = {
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "digest": found.digest,
        "size": len(found.manifest),
        "annotations": {REF_NAME: version},
    }
    document = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [descriptor]}
    return encode_json(document)


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer of a layout read back: the file's path, SHA-256 hex, size and executable bit."""

    path: str
    sha256: str
    size: int
    executable: bool


def pick_manifest(index_bytes: bytes, version: str) -> tuple[str, int]:
    """The (digest, size) of the image manifest an index names for version.

    The one manifest of an index that has one; else the one whose ref.name is version.
    InvalidInputError if there is none, or the index is not an OCI index.
    """
    found = json_object(index_bytes, "index.json")
    manifests = found.get("manifests")
    if found.get("schemaVersion") != 2 or not isinstance(manifests, list) or not manifests:
        raise InvalidInputError("index.json is not an OCI image index naming a manifest")
    if len(manifests) > 1:
        manifests = [m for m in manifests if _annotations(m).get(REF_NAME) == version]
        if len(manifests) != 1:
            raise InvalidInputError(
                f"index.json names several manifests and {len(manifests)} tagged {version!r}"
            )
    return _descriptor(manifests[0], "the manifest index.json names")


def read_layers(manifest_bytes: bytes) -> list[Layer]:
    """The files an image manifest's layers are: each titled layer, in order.

    Layers without a title are left out (as `oras pull` leaves them out: they name no file),
    but an image of layers none of which has one is refused. InvalidInputError for something
    not an OCI image manifest, a malformed descriptor, or a layer ORAS packed from a directory
    (a tar archive to unpack).
    """
    found = json_object(manifest_bytes, "the image manifest")
    media_type = found.get("mediaType", MANIFEST_MEDIA_TYPE)
    layers = found.get("layers")
    if found.get("schemaVersion") != 2 or media_type != MANIFEST_MEDIA_TYPE:
        raise InvalidInputError(f"the manifest is not an OCI image manifest ({media_type!r})")
    if not isinstance(layers, list):
        raise InvalidInputError("the image manifest has no 'layers' list")
    read = []
    for layer in layers:
        annotations = _annotations(layer)
        title = annotations.get(TITLE)
        digest, size = _descriptor(layer, f"layer {title!r}")
        if title is None:
            continue
        if not isinstance(title, str):
            raise InvalidInputError(f"layer {digest} has a title that is not text")
        if annotations.get("io.deis.oras.content.unpack") == "true":
            raise InvalidInputError(f"layer {title!r} is a directory archive; unpack it first")
        executable = annotations.get(EXECUTABLE) == "true"
        read.append(Layer(title, digest.removeprefix("sha256:"), size, executable))
    if layers and not read:
        raise InvalidInputError("no layer of the image manifest has a title naming its file")
    return read


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """data parsed as one JSON object; InvalidInputError naming what if it is not one."""
    try:
        found = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"{what} is not JSON: {exc}") from None
    if not isinstance(found, dict):
        raise InvalidInputError(f"{what} is not a JSON object")
    return found


def _annotations(descriptor: object) -> dict[str, object]:
    found = descriptor.get("annotations") if isinstance(descriptor, dict) else None
    return found if isinstance(found, dict) else {}


def _descriptor(descriptor: object, what: str) -> tuple[str, int]:
    """A descriptor's (digest, size); the digest must be 'sha256:<64 lowercase hex>'."""
    if not isinstance(descriptor, dict):
        raise InvalidInputError(f"{what} is not a descriptor object")
    digest, size = descriptor.get("digest"), descriptor.get("size")
    if not is_sha256_digest(digest):
        raise InvalidInputError(f"{what} has digest {digest!r}, not sha256:<64 lowercase hex>")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInputError(f"{what} has size {size!r}, not a whole number")
    assert isinstance(digest, str)
    return digest, size


def is_sha256_digest(text: object) -> bool:
    """True for 'sha256:' followed by 64 lowercase hex digits."""
    if not isinstance(text, str) or not text.startswith("sha256:"):
        return False
    hex_digits = text.removeprefix("sha256:")
    return len(hex_digits) == 64 and all(c in "0123456789abcdef" for c in hex_digits)
