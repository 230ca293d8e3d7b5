"""The package API's write side, under /v1 (SPEC "HTTP"): blobs in, packages published.

A remote push asks which blobs the server lacks (`POST /v1/blobs/missing`), sends those
(`PUT /v1/blobs/{content address}`, the raw bytes, streamed from the WSGI input into the data
plane and hashed as they are written: never a whole body in memory; small blobs go many to a
request, `POST /v1/blobs/batch`, read frame by frame as `artifactstore.batch` says), then
publishes the version in one request (`PUT /v1/packages/{name}/versions/{version}`),
atomically, with the same outcomes as a local push: 201 created, 200 identical, 409 conflict,
422 missing blobs. Several jobs can assemble one package instead (`POST .../open`, `add`,
`finalize`, `abandon`).

Writes need a token with the write scope whose prefix covers the name (DELETE: admin); every
event they make names the token as its actor (`token:<name>`). JSON bodies are read whole, up
to MAX_JSON_BYTES, and must say their length; blob bodies are never read whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import Blueprint, Response, jsonify, request

from artifactstore import (
    ArtifactStore,
    ArtifactStoreError,
    InvalidInputError,
    NamedBlob,
    PushResult,
    Token,
)
from artifactstore.api import ApiError, authorize_request, opened, route
from artifactstore.api_files import FileIndex, many_blobs
from artifactstore.cli.output import file_json, package_json

MAX_JSON_BYTES = 64 * 1024 * 1024
"""The largest JSON body: a publish of 100,000 files with long paths is about 20 MB."""

ASSEMBLY = ("open", "add", "finalize", "abandon")


def register(
    api: Blueprint, get_store: Callable[[], ArtifactStore | ArtifactStoreError], index: FileIndex
) -> None:
    """Add the write routes (and the one read that is a POST, `.../blobs`) to the /v1
    blueprint, over the store get_store gives."""

    def writer(name: str | None, scope: str = "write") -> tuple[ArtifactStore, str]:
        store = opened(get_store)
        token = authorize_request(store, name, scope)
        assert token is not None  # only reads may be anonymous
        return store, actor(token)

    @api.post("/blobs/missing")
    def missing_blobs() -> Response:
        store, who = writer(None)
        blobs = _json_body().get("blobs")
        if not isinstance(blobs, list) or not all(isinstance(b, str) for b in blobs):
            raise InvalidInputError("the body needs 'blobs': a list of content addresses")
        return jsonify({"missing": store.uploads.missing(blobs, who)})

    @api.put("/blobs/<address>")
    def put_blob(address: str) -> Response:
        store, who = writer(None)
        facts, created = store.uploads.receive(address, request.stream, who)
        body = {
            "content_address": facts.content_address,
            "created": created,
            "sha256": facts.sha256,
            "size": facts.size,
        }
        response = jsonify(body)
        response.status_code = 201 if created else 200
        return response

    @api.post("/blobs/batch")
    def put_blobs() -> Response:
        store, who = writer(None)
        stored, present = store.uploads.receive_many(request.stream, who)
        return jsonify({"present": present, "stored": stored})

    @api.put("/packages/<path:rest>")
    def publish(rest: str) -> Response:
        name, version = _version_route(rest, None)
        store, who = writer(name)
        body = _json_body()
        result = store.uploads.publish(
            name,
            version,
            _files(body),
            _text(body, "retention_class", "standard"),
            _metadata(body),
            who,
        )
        response = jsonify(_result_json(result))
        response.status_code = 201 if result.created else 200
        return response

    @api.post("/packages/<path:rest>")
    def assemble(rest: str) -> Response:
        name, version, leaf = route(rest, (*ASSEMBLY, "blobs"))
        if version is None or leaf is None:
            raise ApiError(404, "not_found", f"no route POST /v1/packages/{rest}")
        if leaf == "blobs":
            store = opened(get_store)
            authorize_request(store, name, "read")
            wanted = _json_body().get("blobs")
            return many_blobs(store, store.get_package(name, version), wanted, index)
        store, who = writer(name)
        ref = (name, version)
        if leaf == "open":
            body = _json_body() if request.content_length else {}
            package = store.create_package(
                name,
                version,
                _text(body, "retention_class", "standard"),
                _metadata(body),
                actor=who,
            )
            response = jsonify(package_json(package))
            response.status_code = 201
            return response
        if leaf == "add":
            body = _json_body()
            replace = body.get("replace", False)
            if not isinstance(replace, bool):
                raise InvalidInputError("'replace' must be true or false")
            added = store.uploads.add(ref, _files(body), replace, who)
            return jsonify({"files": [file_json(f) for f in added]})
        if leaf == "finalize":
            result = store.finalize(ref, actor=who)
            package = store.get_package(name, version)
            return jsonify({**package_json(package), **_result_json(result)})
        store.abandon_package(ref, actor=who)
        return jsonify(package_json(store.get_package(name, version)))

    @api.delete("/packages/<path:rest>")
    def delete(rest: str) -> Response:
        name, version = _version_route(rest, None)
        store, who = writer(name, "admin")
        return jsonify(package_json(store.delete_package((name, version), actor=who)))


def actor(token: Token) -> str:
    """The actor of the events a request with token makes."""
    return f"token:{token.name}"


def _version_route(rest: str, leaf: str | None) -> tuple[str, str]:
    """(name, version) of a route that must name one version and no leaf; ApiError 404 else."""
    name, version, found = route(rest, ())
    if version is None or found != leaf:
        raise ApiError(404, "not_found", f"no route {request.method} /v1/packages/{rest}")
    return name, version


def _json_body() -> dict[str, object]:
    """The request's JSON object; InvalidInputError (400) or ApiError (411, 413) if it is not."""
    length = request.content_length
    if length is None:
        raise ApiError(411, "length_required", "a JSON body must say its Content-Length")
    if length > MAX_JSON_BYTES:
        raise ApiError(413, "too_large", f"a JSON body is at most {MAX_JSON_BYTES} bytes")
    try:
        value = json.loads(request.get_data(cache=False))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInputError("the body is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidInputError("the body must be a JSON object")
    return value


def _files(body: dict[str, object]) -> list[NamedBlob]:
    """The body's 'files': [{path, content_address, executable}]."""
    files = body.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise InvalidInputError(
            "the body needs 'files': a list of {path, content_address, executable}"
        )
    return [
        NamedBlob.checked(f.get("path"), f.get("content_address"), f.get("executable"))
        for f in files
    ]


def _text(body: dict[str, object], key: str, default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise InvalidInputError(f"{key!r} must be text")
    return value


def _metadata(body: dict[str, object]) -> dict[str, object]:
    value = body.get("metadata", {})
    if not isinstance(value, dict):
        raise InvalidInputError("'metadata' must be a JSON object")
    return value


def _result_json(result: PushResult) -> dict[str, object]:
    """A publish or finalize: the version, its digest, created or not, its finalize event."""
    return {
        "bytes": result.bytes,
        "chain_digest": result.chain_digest,
        "created": result.created,
        "digest": str(result.digest),
        "files": result.files,
        "name": result.name,
        "sequence": result.sequence,
        "version": result.version,
    }
