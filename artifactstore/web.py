"""The HTTP app: a Flask factory that gunicorn serves (`gunicorn 'artifactstore.web:create_app()'`).

`GET /health` is here; the package API under /v1 is api.py's blueprint. The app must come up
even when the database is down, so a load balancer can see it is unhealthy: without a store
given, the factory tries to open one from the ARTIFACTSTORE_* variables and, if that fails,
tries again on each request until it works (one request at a time; the others answer at once
with the last error instead of queueing behind a slow database). `HTTP_STATUSES` is the one
table from errors to HTTP statuses; every error the app answers, unknown routes and methods and
unexpected exceptions included, is JSON `{"error": message}`, and under /v1 the API's
`{"error": {"code", "message"}}`; the OCI distribution API's read side under /v2 is
api_v2.py's blueprint, with the spec's `{"errors": [...]}`. ARTIFACTSTORE_ANONYMOUS_READ=1
(`serve --anonymous-read`) lets /v1 and /v2 reads go without a token.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from artifactstore import (
    ENV_PREFIX,
    ArtifactStore,
    ArtifactStoreError,
    ConflictError,
    DatabaseError,
    InvalidInputError,
    MaintenanceReport,
    NotFoundError,
    Settings,
    api,
    api_v2,
    api_write,
    check_health,
    configure_logging,
    load_settings,
    parse_duration,
    start_maintenance,
)
from artifactstore.api_files import FileIndex

_log = logging.getLogger(__name__)

HTTP_STATUSES: tuple[tuple[type[ArtifactStoreError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidInputError, 422),
    (ArtifactStoreError, 500),
)
"""Errors to HTTP statuses, first match wins; the body is {"error": message}."""


def status_for(exc: ArtifactStoreError) -> int:
    """The HTTP status for an error raised while handling a request (see HTTP_STATUSES)."""
    return next(status for kind, status in HTTP_STATUSES if isinstance(exc, kind))


class _StoreHolder:
    """The app's store, opened on first success; until then, the error that stopped it."""

    def __init__(self, settings: Settings, store: ArtifactStore | None) -> None:
        self._settings = settings
        self._store = store
        self._error: ArtifactStoreError = DatabaseError("another request is opening the store")
        # Held only by the one request that tries to open the store; never waited for.
        self._opening = threading.Lock()

    def get(self) -> ArtifactStore | ArtifactStoreError:
        """The open store, or the error opening it raised (the last one, while another request
        is trying again)."""
        if self._store is not None:
            return self._store
        if not self._opening.acquire(blocking=False):
            return self._error
        try:
            if self._store is None:
                self._store = ArtifactStore.from_settings(self._settings, create=False)
            return self._store
        except ArtifactStoreError as exc:
            _log.warning("cannot open the store: %s", exc)
            self._error = exc
            return exc
        finally:
            self._opening.release()


MAINTENANCE_INTERVAL = f"{ENV_PREFIX}MAINTENANCE_INTERVAL"
MAINTENANCE_GRACE = f"{ENV_PREFIX}MAINTENANCE_GRACE"


def _start_maintenance(holder: _StoreHolder) -> None:
    """With ARTIFACTSTORE_MAINTENANCE_INTERVAL set (`serve --maintenance-interval`), run expiry
    and gc that often, in whichever worker holds the maintenance lease."""
    every = os.environ.get(MAINTENANCE_INTERVAL)
    if not every:
        return
    interval = parse_duration(every)
    grace = parse_duration(os.environ.get(MAINTENANCE_GRACE) or "1h")
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def maintain() -> MaintenanceReport | None:
        store = holder.get()
        if isinstance(store, ArtifactStoreError):
            raise store
        return store.maintain(worker, interval, grace)

    start_maintenance(maintain, interval)


def create_app(store: ArtifactStore | None = None) -> Flask:
    """Build the app over store, or over one opened from the ARTIFACTSTORE_* variables."""
    settings = load_settings(os.environ)
    configure_logging(settings)
    holder = _StoreHolder(settings, store)
    # Open now so a misconfiguration shows in the log at boot; a failure is retried per request.
    holder.get()
    _start_maintenance(holder)
    app = Flask(__name__)
    app.config[api.ANONYMOUS_READ] = os.environ.get(api.ANONYMOUS_READ) == "1"
    index = FileIndex()
    routes = api.blueprint(holder.get, index)
    api_write.register(routes, holder.get, index)
    app.register_blueprint(routes)
    app.register_blueprint(api_v2.blueprint(holder.get))

    @app.get("/health")
    def get_health() -> tuple[Response, int]:
        """Database and storage health: 200 when both are usable, else 503 naming the parts."""
        report = check_health(settings, holder.get())
        response = jsonify(report.to_json())
        # A cached "ok" would hide an outage from the next probe.
        response.headers["Cache-Control"] = "no-store"
        return response, 200 if report.ok else 503

    @app.errorhandler(ArtifactStoreError)
    def on_error(exc: ArtifactStoreError) -> tuple[Response, int]:
        return jsonify({"error": str(exc)}), status_for(exc)

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException) -> WerkzeugResponse:
        # Flask's own errors (unknown route, method, and the 500 that wraps an unexpected
        # exception, already logged with its traceback) come as HTML; the API answers JSON,
        # naming only the status and the request, never the exception's text.
        if request.path == "/v1" or request.path.startswith("/v1/"):
            return api.http_error(exc)
        if request.path == "/v2" or request.path.startswith("/v2/"):
            return api_v2.http_error(exc)
        response = exc.get_response()
        response.set_data(json.dumps({"error": f"{exc.name}: {request.method} {request.path}"}))
        response.content_type = "application/json"
        return response

    return app
