"""The OCI distribution API's read side, under /v2: OCI clients (oras, skopeo) pull packages.

A package is the repository of its name and the tag of its version; its image is
`ArtifactStore.oci.image` (ADR-0013), byte for byte what `export-oci` writes. Routes:
`GET /v2/` (the API version check), `GET|HEAD /v2/<name>/manifests/<tag or sha256:digest>`,
`GET|HEAD /v2/<name>/blobs/sha256:<hex>` (a file's blob, with Range, or the config blob) and
`GET /v2/<name>/tags/list` (finalized versions, `n` and `last` paging). Names hold '/', so the
route is read from the right, as /v1 does. Pushing through /v2 is not offered: every other
method is 405 UNSUPPORTED.

Tokens are /v1's (api.authorize_request): `Authorization: Bearer <secret>`, prefix-limited
tokens refused outside their prefix (403 DENIED), anonymous reads when the server allows them.
A 401 names `GET /v2/token` as its realm: a client holding a token as a password (`oras
login`, `docker login`, `skopeo --creds`) trades Basic auth there for a bearer token, the same
secret. Errors are the distribution spec's body `{"errors": [{"code", "message"}]}`.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from artifactstore import (
    ArtifactStore,
    ArtifactStoreError,
    DatabaseError,
    InvalidInputError,
    NotFoundError,
    OciImage,
    Package,
    StorageError,
    StoredFile,
    check_name,
    check_version,
)
from artifactstore.api import ApiError, authorize_request, byte_range, opened, stream_range
from artifactstore.api_recent import ByManifestDigest

_log = logging.getLogger(__name__)

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_API_CODES = {400: "UNSUPPORTED", 401: "UNAUTHORIZED", 403: "DENIED", 416: "UNSUPPORTED"}
"""/v1's own answers (auth, range) as distribution-spec error codes."""


class V2Error(Exception):
    """An answer of the distribution API: status, error code and a message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or {}


def error_response(status: int, code: str, message: str) -> Response:
    """The distribution spec's error body; a 401 says where to get a token."""
    response = jsonify({"errors": [{"code": code, "message": message}]})
    response.status_code = status
    response.headers[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
    if status == 401:
        realm = f"{request.host_url}v2/token"
        response.headers["WWW-Authenticate"] = f'Bearer realm="{realm}",service="artifactstore"'
    return response


def http_error(exc: HTTPException) -> Response:
    """Flask's own errors under /v2 (another method: pushing is not offered; unknown route)."""
    status = exc.code or 500
    if status == 405:
        message = f"{request.method} {request.path}: /v2 is read-only here (pull, not push)"
        return error_response(405, "UNSUPPORTED", message)
    return error_response(status, "UNSUPPORTED", f"{exc.name}: {request.method} {request.path}")


ImageCache = ByManifestDigest[OciImage]
"""The OCI images of recently read packages (`api_recent`): a pull asks for the manifest and then
each blob, and each would otherwise read and check the package's manifest again."""


def _image(store: ArtifactStore, images: ImageCache, package: Package) -> OciImage:
    """The image of a finalized package."""
    return images.get(package, lambda: store.oci.image(package))


def blueprint(get_store: Callable[[], ArtifactStore | ArtifactStoreError]) -> Blueprint:
    """The /v2 routes over the store get_store gives (or the error that keeps it closed)."""
    v2 = Blueprint("v2", __name__, url_prefix="/v2")
    images = ImageCache(64)

    def store() -> ArtifactStore:
        return opened(get_store)

    @v2.get("/")
    def base() -> Response:
        authorize_request(store(), None, "read")
        return _with_version(jsonify({}))

    @v2.get("/token")
    def token() -> Response:
        return _with_version(_token(store()))

    @v2.get("/<path:rest>")
    def repository_route(rest: str) -> Response:
        parts = rest.split("/")
        if len(parts) >= 3 and parts[-2:] == ["tags", "list"]:
            name = _name(parts[:-2])
            authorize_request(store(), name, "read")
            return _with_version(_tags(store(), name))
        if len(parts) >= 3 and parts[-2] in ("manifests", "blobs"):
            name = _name(parts[:-2])
            authorize_request(store(), name, "read")
            if parts[-2] == "manifests":
                return _with_version(_manifest(store(), images, name, parts[-1]))
            return _with_version(_blob(store(), images, name, parts[-1]))
        raise V2Error(404, "NAME_UNKNOWN", f"no route GET /v2/{rest}")

    v2.register_error_handler(V2Error, _v2_error)
    v2.register_error_handler(ApiError, _api_error)
    v2.register_error_handler(ArtifactStoreError, _library_error)
    return v2


def _with_version(response: Response) -> Response:
    response.headers[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
    return response


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, _API_CODES.get(exc.status, "UNSUPPORTED"), str(exc))


def _v2_error(exc: V2Error) -> Response:
    response = error_response(exc.status, exc.code, str(exc))
    response.headers.update(exc.headers)
    return response


def _library_error(exc: ArtifactStoreError) -> Response:
    if isinstance(exc, NotFoundError):
        return error_response(404, "NAME_UNKNOWN", str(exc))
    if isinstance(exc, InvalidInputError):
        return error_response(400, "NAME_INVALID", str(exc))
    _log.error("%s %s failed: %s", request.method, request.path, exc)
    if isinstance(exc, DatabaseError | StorageError):
        return error_response(503, "UNAVAILABLE", "the server failed; its log has the details")
    return error_response(500, "UNKNOWN", "the server failed; its log has the details")


def _name(parts: list[str]) -> str:
    try:
        return check_name("/".join(parts))
    except InvalidInputError as exc:
        raise V2Error(400, "NAME_INVALID", str(exc)) from None


def _token(store: ArtifactStore) -> Response:
    """A bearer token for a client that sends a token secret as its Basic-auth password."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    secret = ""
    if scheme.lower() == "basic":
        try:
            secret = base64.b64decode(credentials, validate=True).decode().partition(":")[2]
        except ValueError:
            secret = ""
    elif scheme.lower() == "bearer":
        secret = credentials.strip()
    found = store.authenticate_token(secret) if secret else None
    if found is None or not found.allows("read", None, datetime.now(UTC)):
        raise V2Error(401, "UNAUTHORIZED", "send a token as the password (Basic) or as Bearer")
    response = jsonify({"token": secret, "access_token": secret})
    response.headers["Cache-Control"] = "no-store"
    return response


def _versions(store: ArtifactStore, name: str) -> list[Package]:
    """The finalized, live versions of repository name; NAME_UNKNOWN if it has none."""
    found = [p for p in store.list_packages(name) if p.is_finalized]
    if not found:
        raise V2Error(404, "NAME_UNKNOWN", f"no finalized package named {name!r}")
    return found


def _tags(store: ArtifactStore, name: str) -> Response:
    tags = sorted(p.version for p in _versions(store, name))
    last = request.args.get("last")
    if last is not None:
        tags = [t for t in tags if t > last]
    count = request.args.get("n")
    headers = {}
    if count is not None:
        if not count.isdigit():
            raise V2Error(400, "UNSUPPORTED", f"n={count!r} is not a whole number")
        if len(tags) > int(count):
            tags = tags[: int(count)]
            headers["Link"] = f'</v2/{name}/tags/list?n={count}&last={tags[-1]}>; rel="next"'
    response = jsonify({"name": name, "tags": tags})
    response.headers.update(headers)
    return response


def _manifest(store: ArtifactStore, images: ImageCache, name: str, reference: str) -> Response:
    """The image manifest of a tag (version) or of its sha256 digest, exact bytes."""
    if _SHA256.fullmatch(reference):
        versions = (_image(store, images, p) for p in _versions(store, name))
        found = next((image for image in versions if image.digest == reference), None)
    else:
        try:
            package = store.get_package(name, check_version(reference))
        except NotFoundError:
            _versions(store, name)
            package = None
        except InvalidInputError:
            raise V2Error(404, "MANIFEST_UNKNOWN", f"{reference!r} is no tag or digest") from None
        found = None
        if package is not None and package.is_finalized:
            found = _image(store, images, package)
    if found is None:
        raise V2Error(404, "MANIFEST_UNKNOWN", f"repository {name!r} has no manifest {reference}")
    response = Response(found.manifest, mimetype=MANIFEST_MEDIA_TYPE)
    response.headers["Docker-Content-Digest"] = found.digest
    response.set_etag(found.digest)
    return response


def _blob(store: ArtifactStore, images: ImageCache, name: str, digest: str) -> Response:
    """A blob of repository name by digest: a file's bytes (verified as they stream), or the
    config blob (the package's canonical manifest)."""
    if not _SHA256.fullmatch(digest):
        raise V2Error(404, "BLOB_UNKNOWN", f"{digest!r} is not sha256:<64 lowercase hex>")
    hex_digits = digest.removeprefix("sha256:")
    package = store.oci.package_with_blob(name, hex_digits)
    if package is not None:
        files = _image(store, images, package).files
        found = next((f for f in files if f.sha256.hex == hex_digits), None)
        if found is not None:
            return _file(store, found, digest, f"{package} {found.path}")
    for version in _versions(store, name):
        image = _image(store, images, version)
        if image.config_digest == digest:
            return _bytes(image.config, digest)
    raise V2Error(404, "BLOB_UNKNOWN", f"repository {name!r} has no blob {digest}")


def _range(size: int) -> tuple[int, int, int]:
    """(status, start, end) the request's Range asks of size bytes; 200 and all without one."""
    if "Range" not in request.headers:
        return 200, 0, size
    try:
        start, end = byte_range(request.headers["Range"], size)
    except ApiError as exc:
        headers = {"Content-Range": f"bytes */{size}"} if exc.status == 416 else {}
        raise V2Error(exc.status, _API_CODES[exc.status], str(exc), headers) from None
    return 206, start, end


def _blob_headers(digest: str, status: int, start: int, end: int, size: int) -> dict[str, str]:
    headers = {"Docker-Content-Digest": digest, "Accept-Ranges": "bytes"}
    headers["Content-Length"] = str(end - start)
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return headers


def _file(store: ArtifactStore, found: StoredFile, digest: str, label: str) -> Response:
    status, start, end = _range(found.size)
    reader = store.open_file(found, label)
    body = stream_range(reader, start, end, f"{request.method} {request.path}")
    headers = _blob_headers(digest, status, start, end, found.size)
    response = Response(body, status=status, headers=headers, mimetype="application/octet-stream")
    response.set_etag(digest)
    # A body never iterated (HEAD, a client gone early) never enters the generator's `with`.
    response.call_on_close(reader.close)
    return response


def _bytes(data: bytes, digest: str) -> Response:
    status, start, end = _range(len(data))
    headers = _blob_headers(digest, status, start, end, len(data))
    response = Response(
        data[start:end], status=status, headers=headers, mimetype="application/octet-stream"
    )
    response.set_etag(digest)
    return response
