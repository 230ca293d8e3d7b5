"""The event log through `GET /v1/events`: pages of JSON lines, long-polled to follow.

Without follow, pages of PAGE events are read until one comes back empty. With follow, each
request waits on the server up to WAIT seconds (`wait`, the server's limit is 25) for a new
event, and asks again until the timeout (None: forever). Each event is rebuilt as an Event and
chained to the one before it when their sequences are consecutive (`values.check_chain`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from artifactstore.errors import IntegrityError
from artifactstore.events.model import Event
from artifactstore.remote.transport import READ_TIMEOUT, Transport
from artifactstore.remote.values import check_chain, event_from_json

PAGE = 1000
WAIT = 20


def tail(
    transport: Transport, since: int = 0, follow: bool = False, timeout: float | None = None
) -> Iterator[Event]:
    """Events after sequence since; with follow, wait for new ones until timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    previous: Event | None = None
    while True:
        wait = 0
        if follow:
            left = WAIT if deadline is None else deadline - time.monotonic()
            wait = max(0, min(WAIT, int(left)))
        page = _page(transport, since, wait)
        for event in page:
            if event.sequence <= since:
                raise IntegrityError(
                    f"the server sent event {event.sequence} when asked for those after {since}"
                )
            check_chain(previous, event)
            previous = event
            since = event.sequence
            yield event
        if page and len(page) == PAGE:
            continue  # more are waiting: no need to wait for them
        if not follow or (deadline is not None and time.monotonic() >= deadline):
            return
        if not page and wait == 0:
            # Under a second left: a last look after it has passed.
            time.sleep(max(0.0, deadline - time.monotonic()) if deadline is not None else 0.5)


def _page(transport: Transport, since: int, wait: int) -> list[Event]:
    params = {"since": since, "limit": PAGE, "wait": wait}
    # The server holds the answer up to wait seconds before the first byte.
    with transport.stream("/v1/events", params=params, read_timeout=READ_TIMEOUT + wait) as answer:
        lines = [line for line in answer.iter_lines() if line.strip()]
    try:
        return [event_from_json(json.loads(line)) for line in lines]
    except ValueError as exc:
        raise IntegrityError(f"the server sent an event that is not JSON: {exc}") from exc
