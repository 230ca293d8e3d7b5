"""HTTP to one server: one httpx client, the token, retries, and errors as library errors.

One `httpx.Client` per remote store, so connections are reused (keep-alive) across requests
and the upload threads. Timeouts: CONNECT_TIMEOUT to connect, READ_TIMEOUT between bytes.
Idempotent requests (GET, HEAD, PUT, and a POST its caller says is idempotent, such as a batch
upload) are tried again, up to ATTEMPTS times with a doubling pause, on a connection error or
a 5xx answer; any other POST is sent once.

An error answer `{"error": {"code", "message"}}` becomes the library error of that code
(`error_class`), so a caller catches the same class as with a local store; 401/403 become
AccessDeniedError naming the scope the route needs, and a server that cannot be reached,
times out or fails (5xx) ServerUnavailableError naming its URL. The token goes only into the
Authorization header: never into a message, a repr or a log line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from urllib.request import getproxies

import httpx

from artifactstore.config import redact_url
from artifactstore.errors import (
    AccessDeniedError,
    ArtifactStoreError,
    ConflictError,
    InvalidInputError,
    MissingBlobsError,
    NotFoundError,
    ServerUnavailableError,
    error_class,
)

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
ATTEMPTS = 4
FIRST_PAUSE = 0.25
"""Seconds before the second attempt; each later pause doubles (0.25, 0.5, 1)."""
IDEMPOTENT = frozenset(("GET", "HEAD", "PUT"))

Body = Callable[[], bytes | Iterable[bytes]]
"""Makes a request body afresh for each attempt (a streamed file is opened again)."""


def scope_for(method: str) -> str:
    """The token scope a request method needs: read for GET, admin for DELETE, else write."""
    if method in ("GET", "HEAD"):
        return "read"
    return "admin" if method == "DELETE" else "write"


def verifies_tls(url: str) -> bool:
    """Whether requests to url need a verifying TLS context: an https server, or any proxy
    (which may itself be https). Plain http to the server speaks no TLS at all, and building
    that context (loading the CA bundle) was 40-60 ms of every remote command."""
    return url.startswith("https://") or bool(getproxies())


class Transport:
    """Requests to one server with one connection pool; see the module docstring."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        attempts: int = ATTEMPTS,
        first_pause: float = FIRST_PAUSE,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"server URL {redact_url(url)!r} is not http:// or https://")
        self.url = url.rstrip("/")
        self.shown_url = redact_url(self.url)
        self._has_token = bool(token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            follow_redirects=False,
            verify=verifies_tls(self.url),
        )
        self._attempts = max(1, attempts)
        self._first_pause = first_pause

    def __repr__(self) -> str:
        return f"Transport({self.shown_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: object = None,
        scope: str | None = None,
    ) -> object:
        """Send a request (body as JSON, if any) and return the JSON answer.

        scope names the token scope a refusal says is needed, when the operation this request
        is part of needs more than the method alone does (a push looking its version up).
        """
        content = None if body is None else json.dumps(body, sort_keys=True).encode()
        response = self.send(
            method,
            path,
            params=params,
            body=None if content is None else (lambda: content),
            headers={"Content-Type": "application/json"} if content is not None else None,
            scope=scope,
        )
        try:
            return response.json()
        except ValueError as exc:
            raise ServerUnavailableError(
                f"the server at {self.shown_url} answered {method} {path} with no JSON"
            ) from exc

    @contextmanager
    def stream(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> Iterator[httpx.Response]:
        """A GET whose body is read as it arrives; the response is closed on leaving."""
        response = self.send(
            "GET", path, params=params, headers=headers, stream=True, read_timeout=read_timeout
        )
        try:
            yield response
        finally:
            response.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Body | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        read_timeout: float | None = None,
        scope: str | None = None,
        idempotent: bool = False,
    ) -> httpx.Response:
        """Send one request, trying an idempotent one (by its method, or as the caller says)
        again on failure; raise error answers."""
        attempts = self._attempts if idempotent or method in IDEMPOTENT else 1
        timeout = None
        if read_timeout is not None:
            timeout = httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT)
        for attempt in range(1, attempts + 1):
            request = self._client.build_request(
                method,
                path,
                params=params,
                content=None if body is None else body(),
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            try:
                response = self._client.send(request, stream=stream)
            except httpx.TransportError as exc:
                if attempt < attempts:
                    self._pause(attempt)
                    continue
                raise self.unavailable(exc) from exc
            if response.status_code >= 500 and attempt < attempts:
                response.close()
                self._pause(attempt)
                continue
            if response.status_code >= 400:
                try:
                    response.read()
                except httpx.TransportError as exc:
                    raise self.unavailable(exc) from exc
                finally:
                    response.close()
                raise self.error(method, path, response, scope)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def unavailable(self, exc: httpx.TransportError) -> ServerUnavailableError:
        """A connection error, timeout or failed DNS look-up as ServerUnavailableError."""
        if isinstance(exc, httpx.TimeoutException):
            reason = f"timed out ({type(exc).__name__})"
        else:
            reason = str(exc) or type(exc).__name__
        return ServerUnavailableError(
            f"cannot reach the artifactstore server at {self.shown_url}: {reason}"
        )

    def error(
        self, method: str, path: str, response: httpx.Response, scope: str | None = None
    ) -> ArtifactStoreError:
        """The library error an error answer stands for (see the module docstring)."""
        status = response.status_code
        code, message, missing = _error_body(response)
        if status in (401, 403):
            given = (
                ""
                if self._has_token
                else " and none was given (set ARTIFACTSTORE_TOKEN or --token-file)"
            )
            return AccessDeniedError(
                f"the server at {self.shown_url} refused {method} {path} ({status}): it needs "
                f"a token with the {scope or scope_for(method)} scope{given}; it said: {message}"
            )
        if status >= 500:
            return ServerUnavailableError(
                f"the server at {self.shown_url} failed on {method} {path} "
                f"({status} {code or 'error'}): {message}"
            )
        kind = error_class(code)
        if kind is MissingBlobsError:
            return MissingBlobsError(message, missing)
        if kind is not None and kind not in (AccessDeniedError, ServerUnavailableError):
            return kind(message)
        if status == 404:
            return NotFoundError(message)
        if status == 409:
            return ConflictError(message)
        return InvalidInputError(f"the server refused {method} {path} ({status}): {message}")

    def _pause(self, attempt: int) -> None:
        time.sleep(self._first_pause * 2 ** (attempt - 1))


def _error_body(response: httpx.Response) -> tuple[str, str, list[str]]:
    """(code, message, missing) of an error answer; a body of another shape gives its status."""
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
        missing = error.get("missing", [])
        if isinstance(code, str) and isinstance(message, str) and isinstance(missing, list):
            return code, message, [str(item) for item in missing]
    except (ValueError, KeyError, TypeError):
        pass
    return "", f"HTTP {response.status_code} {response.reason_phrase}".strip(), []
