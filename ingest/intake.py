"""The collector's HTTP face: `POST /v1/events` as Ray's aggregator agent calls it,
`/healthz`, `/readyz` and Prometheus `/metrics`.

Answers: 200 once a body is durable; 400 with the event index and field when it is
not valid (nothing of it kept); 413 past the size cap; 503 with Retry-After when the
spool is full or the collector is draining (Ray retries). While the flusher is behind
(the rows held for it at their bound), a POST waits up to a second before it is taken:
taken at once it would be parsed twice, and at a saturated intake that second parse
cost a third of the collector's CPU (bench/collector.py: 2.23 -> 1.46 CPU s per 100k).

A plain ASGI application under uvicorn: four fixed routes need no framework, and the
sidecar's 256 MiB is better spent on events than on one (Litestar takes 19 MiB).
A body is taken on the event loop's own thread: the work is CPU-bound under the GIL, and
handing each body to a worker thread cost a fifth of the collector's CPU in thread
switches and GIL hand-offs (bench/collector.py: 2.99 -> 2.35 CPU s per 100k events).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.collector import Collector, CollectorUnavailable
from ingest.parse import BodyError

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]

_JSON = b"application/json"
# Ray's aggregator gives a POST 3 s (RAY_DASHBOARD_AGGREGATOR_AGENT_PUBLISHER_TIMEOUT_SECONDS):
# waiting for the flusher takes a third of it at most.
ROOM_WAIT_SECONDS = 1.0
ROOM_POLL_SECONDS = 0.005


async def _answer(
    send: Send,
    status: int,
    body: Any,
    content_type: bytes = _JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request's body, or None once it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _room(collector: Collector) -> None:
    """Wait, up to ROOM_WAIT_SECONDS, while the flusher is behind: a body taken now
    would be parsed a second time at its flush, with CPU the flusher needs itself. Ray's
    aggregator sends its next batch once this one is answered."""
    if not collector.flusher_behind():
        return
    started = time.monotonic()
    deadline = started + ROOM_WAIT_SECONDS
    while collector.flusher_behind() and time.monotonic() < deadline:
        await asyncio.sleep(ROOM_POLL_SECONDS)
    collector.metrics.intake_wait.observe(time.monotonic() - started)


def _declared_length(scope: Message) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def create_app(collector: Collector) -> ASGIApp:
    limit = collector.config.max_body_bytes

    async def events(scope: Message, receive: Receive, send: Send) -> None:
        declared = _declared_length(scope)
        too_large = declared is not None and declared > limit
        body = None if too_large else await _read_body(receive, limit)
        if body is None:
            error = f"the body is larger than {limit:,} bytes (--max-body-mb)"
            await _answer(send, 413, {"error": error})
            return
        await _room(collector)
        try:
            count = collector.accept(body)
        except BodyError as exc:
            await _answer(send, 400, exc.as_json())
            return
        except CollectorUnavailable as exc:
            retry = [(b"retry-after", str(exc.retry_after).encode())]
            await _answer(send, 503, {"error": str(exc)}, headers=retry)
            return
        await _answer(send, 200, {"accepted": count})

    async def readyz(send: Send) -> None:
        size = collector.spool.size
        ready = not collector.draining and size < collector.config.spool_max_bytes
        state = {"ready": ready, "draining": collector.draining, "spool_bytes": size}
        await _answer(send, 200 if ready else 503, state)

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        reads = method == "GET"
        if path == "/v1/events" and method == "POST":
            await events(scope, receive, send)
        elif path == "/healthz" and reads:
            await _answer(send, 200, {"status": "ok"})
        elif path == "/readyz" and reads:
            await readyz(send)
        elif path == "/metrics" and reads:
            data = generate_latest(collector.metrics.registry)
            await _answer(send, 200, data, CONTENT_TYPE_LATEST.encode())
        elif path in ("/v1/events", "/healthz", "/readyz", "/metrics"):
            allow = [(b"allow", b"POST" if path == "/v1/events" else b"GET")]
            await _answer(send, 405, {"error": f"{method} is not allowed here"}, headers=allow)
        else:
            await _answer(send, 404, {"error": f"no such path: {path}"})

    return app
