"""The package API's read side, under /v1 (SPEC "HTTP"): packages, manifests, files and events.

Every route needs a token with the read scope (`Authorization: Bearer <secret>`), unless the
server runs with anonymous reads and the request sends no token at all; a token that is sent is
always checked. No or an unknown token is 401, a token that may not read (revoked, expired, or
the name outside its prefix) is 403. A prefixed token lists only its names and sees only its
packages' events. Secrets are never echoed, and never logged.

Names contain '/', so one catch-all route takes everything after /v1/packages/ and reads it
from the right (`route`). Every error is `{"error": {"code": ..., "message": ...}}`: library
errors through the one table `API_ERRORS`, the API's own (auth, range) as `ApiError`, and
Flask's own (unknown route or method) through `http_error`, which web.py calls for /v1 paths.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from typing import BinaryIO

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from artifactstore import (
    TOKEN_SCOPES,
    ArtifactStore,
    ArtifactStoreError,
    ConflictError,
    DatabaseError,
    DigestMismatchError,
    Event,
    InvalidInputError,
    MissingBlobsError,
    NotFoundError,
    Package,
    PackageNotFoundError,
    StorageError,
    Token,
    check_name,
    check_path,
    check_version,
    error_code,
)
from artifactstore.api_files import FileIndex
from artifactstore.cli.output import event_json, file_json, package_json

_log = logging.getLogger(__name__)

API_ERRORS: tuple[tuple[type[ArtifactStoreError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (MissingBlobsError, 422),
    (InvalidInputError, 400),
    (DigestMismatchError, 422),
    (DatabaseError, 503),
    (StorageError, 503),
    (ArtifactStoreError, 500),
)
"""Library errors to HTTP statuses, first match wins. The code is the error's own
(`error_code`: PackageNotFoundError is package_not_found), so the remote client can raise the
same class again; a 5xx answer says "unavailable" or "internal" and never carries the error's
text (it is logged instead)."""

_HTTP_CODES = {400: "invalid_input", 404: "not_found", 405: "method_not_allowed"}

ANONYMOUS_READ = "ARTIFACTSTORE_ANONYMOUS_READ"
"""The app config key (and environment variable, "1" for on) that lets reads go without token."""

MAX_WAIT_SECONDS = 25
"""The longest `wait` of /v1/events: below gunicorn's default 30 s worker timeout, which would
kill a sync worker waiting longer."""

DEFAULT_EVENT_LIMIT = 1000
MAX_EVENT_LIMIT = 10000
CHUNK_BYTES = 64 * 1024
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")


class ApiError(Exception):
    """An answer of the API's own: auth, range, route; status, code and a message to show."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def error_response(status: int, code: str, message: str) -> Response:
    """The JSON error body every /v1 answer uses; 401 also says how to authenticate."""
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="artifactstore"'
    return response


def http_error(exc: HTTPException) -> Response:
    """Flask's own errors (unknown route, method, an unexpected exception's 500) in API shape."""
    status = exc.code or 500
    message = f"{exc.name}: {request.method} {request.path}"
    response = error_response(status, _HTTP_CODES.get(status, "internal"), message)
    if status == 405:
        response.headers["Allow"] = exc.get_response().headers.get("Allow", "")
    return response


def _library_error(exc: ArtifactStoreError) -> Response:
    status = next(s for kind, s in API_ERRORS if isinstance(exc, kind))
    if status >= 500:
        _log.error("%s %s failed: %s", request.method, request.path, exc)
        code = "unavailable" if status == 503 else "internal"
        return error_response(status, code, "the server failed; its log has the details")
    response = error_response(status, error_code(type(exc)), str(exc))
    if isinstance(exc, MissingBlobsError):
        response.set_data(
            json.dumps(
                {"error": {"code": "missing_blobs", "message": str(exc), "missing": exc.missing}}
            )
        )
    return response


def route(
    rest: str, leaves: tuple[str, ...] = ("manifest", "file")
) -> tuple[str, str | None, str | None]:
    """Split what follows /v1/packages/ into (name, version, leaf), reading from the right.

    An optional last segment, one of leaves, is the leaf, before it the version, before that
    the segment 'versions'; the rest is the name. `a/b/versions` lists the versions of 'a/b'
    (version None). ApiError 404 if the path has no 'versions' segment where it must.
    """
    parts = rest.split("/")
    leaf = None
    if len(parts) >= 4 and parts[-1] in leaves and parts[-3] == "versions":
        leaf = parts.pop()
    version = None
    if len(parts) >= 3 and parts[-2] == "versions":
        version = parts.pop()
    if len(parts) < 2 or parts.pop() != "versions":
        raise ApiError(404, "not_found", f"no route {request.method} /v1/packages/{rest}")
    name = check_name("/".join(parts))
    return name, None if version is None else check_version(version), leaf


def byte_range(header: str, size: int) -> tuple[int, int]:
    """The [start, end) a `Range: bytes=a-b | a- | -n` header asks of size bytes.

    ApiError 400 for another syntax (several ranges included), 416 if it starts past the end.
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None or match[1] == match[2] == "":
        raise ApiError(400, "invalid_input", f"Range {header!r} is not bytes=a-b, a- or -n")
    if match[1] == "":
        start, end = max(0, size - int(match[2])), size
    else:
        start, end = int(match[1]), size if match[2] == "" else int(match[2]) + 1
        if match[2] != "" and end <= start:
            raise ApiError(400, "invalid_input", f"Range {header!r} ends before it starts")
    if start >= size:
        raise ApiError(416, "range_not_satisfiable", f"Range {header!r} of {size} bytes")
    return start, min(end, size)


def stream_range(reader: BinaryIO, start: int, end: int, label: str) -> Iterator[bytes]:
    """Yield bytes [start, end) of a verified reader in chunks, never the whole file at once.

    The bytes before start are read and thrown away, and so are those after end: the reader
    checks the blob's digest only at its end, so it is always read to the end. The last piece
    is held back until then, so a blob that fails the check cuts the answer short of its
    Content-Length (the client sees an error) instead of completing it with bad bytes.
    """
    with reader:
        position = 0
        held = b""
        try:
            while chunk := reader.read(CHUNK_BYTES):
                piece = chunk[max(0, start - position) : max(0, end - position)]
                position += len(chunk)
                if piece:
                    if held:
                        yield held
                    held = piece
        except ArtifactStoreError as exc:
            # The answer has started: a log line (label names the request) is all that is left.
            _log.error("%s failed while streaming: %s", label, exc)
            return
        if held:
            yield held


def blueprint(
    get_store: Callable[[], ArtifactStore | ArtifactStoreError], index: FileIndex
) -> Blueprint:
    """The /v1 read routes over the store get_store gives (or the error that keeps it closed),
    finding files through index."""
    api = Blueprint("api", __name__, url_prefix="/v1")

    def store() -> ArtifactStore:
        return opened(get_store)

    def authorize(name: str | None) -> Token | None:
        return authorize_request(store(), name, "read")

    @api.get("/packages")
    def list_packages() -> Response:
        name = request.args.get("name")
        token = authorize(None if name is None else check_name(name))
        found = store().list_packages(name, include_ended=request.args.get("all") == "true")
        if token is not None and token.prefix is not None:
            found = [p for p in found if p.name.startswith(token.prefix)]
        return jsonify({"packages": [package_json(p) for p in found]})

    @api.get("/packages/<path:rest>")
    def package_route(rest: str) -> Response:
        name, version, leaf = route(rest)
        authorize(name)
        if version is None:
            found = store().list_packages(name)
            if not found:
                raise PackageNotFoundError(f"no package named {name!r}")
            found.sort(key=lambda p: (p.created_at, p.version), reverse=True)
            return jsonify({"name": name, "versions": [package_json(p) for p in found]})
        package = store().get_package(name, version)
        if leaf == "manifest":
            return _manifest(store(), package)
        if leaf == "file":
            return _file(store(), package, index)
        files = [file_json(f) for f in store().list_files(package)]
        return jsonify({**package_json(package), "files": files})

    @api.get("/events")
    def events() -> Response:
        token = authorize(None)
        since = _number("since", 0, 0, None)
        limit = _number("limit", DEFAULT_EVENT_LIMIT, 1, MAX_EVENT_LIMIT)
        wait = _number("wait", 0, 0, MAX_WAIT_SECONDS)
        found = _read_events(store(), _visibility(store(), token), since, limit, wait)
        lines = (json.dumps(event_json(e), sort_keys=True, ensure_ascii=False) for e in found)
        return Response("".join(f"{line}\n" for line in lines), mimetype="application/jsonl")

    api.register_error_handler(ApiError, lambda e: error_response(e.status, e.code, str(e)))
    api.register_error_handler(ArtifactStoreError, _library_error)
    return api


def opened(get_store: Callable[[], ArtifactStore | ArtifactStoreError]) -> ArtifactStore:
    """The store get_store gives; the error that keeps it closed is raised."""
    found = get_store()
    if isinstance(found, ArtifactStoreError):
        raise found
    return found


def authorize_request(store: ArtifactStore, name: str | None, scope: str) -> Token | None:
    """The request's token if it may act with scope on name (None: no one package); None when
    the request is an anonymous read and the server allows those. ApiError 401 or 403 otherwise.
    """
    header = request.headers.get("Authorization")
    if header is None:
        if scope == "read" and current_app.config.get(ANONYMOUS_READ):
            return None
        raise ApiError(401, "unauthorized", "send a token: 'Authorization: Bearer <token>'")
    scheme, _, secret = header.strip().partition(" ")
    token = store.authenticate_token(secret.strip()) if scheme.lower() == "bearer" else None
    if token is None:
        raise ApiError(401, "unauthorized", "the Authorization header holds no known token")
    if not token.allows(scope, name, datetime.now(UTC)):
        raise ApiError(403, "forbidden", _refusal(token, name, scope))
    return token


def _refusal(token: Token, name: str | None, scope: str) -> str:
    """Why token may not act with scope on name, as far as the token shows (never its secret)."""
    if token.revoked_at is not None:
        return f"token {token.name!r} is revoked"
    if token.prefix is not None and name is not None and not name.startswith(token.prefix):
        return f"token {token.name!r} may {scope} only names under {token.prefix!r}, not {name!r}"
    if TOKEN_SCOPES.index(token.scope) < TOKEN_SCOPES.index(scope):
        return f"token {token.name!r} has the {token.scope} scope; this needs {scope}"
    return f"token {token.name!r} has expired"


def _manifest(store: ArtifactStore, package: Package) -> Response:
    """The manifest bytes as CBOR or JCS; ETag is the digest, If-None-Match answers 304."""
    form = request.args.get("format", "cbor")
    if form not in ("cbor", "jcs"):
        raise ApiError(400, "invalid_input", f"format={form!r} is not cbor or jcs")
    digest = package.manifest_digest
    if digest is not None and request.if_none_match.contains(digest):
        return _not_modified(digest, {})
    data = store.get_manifest_bytes(package, "jcs" if form == "jcs" else "cbor")
    mimetype = "application/json" if form == "jcs" else "application/cbor"
    response = Response(data, mimetype=mimetype)
    response.set_etag(str(digest))
    return response


def _not_modified(etag: str, headers: dict[str, str]) -> Response:
    """304: the client's copy (If-None-Match) is current."""
    response = Response(status=304, headers=headers)
    response.set_etag(etag)
    return response


def _file(store: ArtifactStore, package: Package, index: FileIndex) -> Response:
    """One file's bytes, streamed from the verified reader; a Range gives 206 or 416."""
    path = check_path(request.args.get("path", ""))
    found = index.find(store, package, path)
    headers = {
        "Accept-Ranges": "bytes",
        "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(found.sha256.hex)).decode()}:",
        "X-Artifactstore-Executable": "true" if found.executable else "false",
    }
    etag = str(found.content_address)
    if request.if_none_match.contains(etag):
        return _not_modified(etag, headers)
    status, start, end = 200, 0, found.size
    if "Range" in request.headers:
        try:
            start, end = byte_range(request.headers["Range"], found.size)
        except ApiError as exc:
            if exc.status == 416:
                headers["Content-Range"] = f"bytes */{found.size}"
                return _with_headers(error_response(exc.status, exc.code, str(exc)), headers)
            raise
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{found.size}"
    reader = store.open_file(found, f"{package} {path}")
    body = stream_range(reader, start, end, f"{request.method} {request.path}")
    response = Response(body, status=status, headers=headers, mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(end - start)
    response.set_etag(etag)
    # A body never iterated (HEAD, a client gone early) never enters the generator's `with`.
    response.call_on_close(reader.close)
    return response


def _with_headers(response: Response, headers: dict[str, str]) -> Response:
    response.headers.update(headers)
    return response


def _number(name: str, default: int, least: int, most: int | None) -> int:
    """The integer query argument name, default when absent; ApiError 400 outside [least, most]."""
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < least or (most is not None and int(text) > most):
        bounds = f"{least} to {most}" if most is not None else f"{least} or more"
        raise ApiError(400, "invalid_input", f"{name}={text!r} is not a whole number {bounds}")
    return int(text)


def _visibility(store: ArtifactStore, token: Token | None) -> Callable[[Event], bool]:
    """Whether an event is visible to token (None: an anonymous read). Events of no package
    (tokens made and revoked) only to an admin token without a prefix; package events to all,
    except that a prefixed token sees only the packages under its prefix."""
    prefix = None if token is None else token.prefix
    admin = token is not None and token.scope == "admin" and prefix is None
    names: dict[str, str | None] = {}

    def visible(event: Event) -> bool:
        if event.package_id is None:
            return admin
        if prefix is None:
            return True
        if event.package_id not in names:
            try:
                names[event.package_id] = store.package(event.package_id).name
            except NotFoundError:
                names[event.package_id] = None
        name = names[event.package_id]
        return name is not None and name.startswith(prefix)

    return visible


def _read_events(
    store: ArtifactStore, visible: Callable[[Event], bool], since: int, limit: int, wait: int
) -> list[Event]:
    """Up to limit visible events after since; if there are none, wait up to wait seconds for
    the first one, then take what else is there (up to limit) and return at once."""
    found = _take(store.tail_events(since), visible, limit)
    if found or wait == 0:
        return found
    first = _take(store.tail_events(since, follow=True, timeout=wait), visible, 1)
    if not first:
        return []
    return first + _take(store.tail_events(first[0].sequence), visible, limit - 1)


def _take(events: Iterator[Event], visible: Callable[[Event], bool], limit: int) -> list[Event]:
    """The first limit visible events; closes the tail (and its connection) at once."""
    taken: list[Event] = []
    if limit <= 0:
        return taken
    with closing(events):  # type: ignore[type-var]
        for event in events:
            if visible(event):
                taken.append(event)
                if len(taken) == limit:
                    break
    return taken
