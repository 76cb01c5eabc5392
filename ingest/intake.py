"""The collector's HTTP face: `POST /v1/events` as Ray's aggregator agent calls it,
`/healthz`, `/readyz` and Prometheus `/metrics`.

Answers: 200 once a body is durable; 400 with the event index and field when it is
not valid (nothing of it kept); 413 past the size cap; 503 with Retry-After when the
spool is full or the collector is draining (Ray retries). While the flusher is behind
(the rows held for it at their bound), a POST waits up to a second before it is taken:
taken at once it would be parsed twice, and at a saturated intake that second parse
cost a third of the collector's CPU (bench/collector.py: 2.23 -> 1.46 CPU s per 100k).

Served by `ingest/httpd.py`: four fixed routes need no framework, and the sidecar's
256 MiB is better spent on events than on one (Litestar takes 19 MiB).
A body is taken on the event loop's own thread: the work is CPU-bound under the GIL, and
handing each body to a worker thread cost a fifth of the collector's CPU in thread
switches and GIL hand-offs (bench/collector.py: 2.99 -> 2.35 CPU s per 100k events).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.collector import Collector, CollectorUnavailable
from ingest.httpd import Request, Response, Server
from ingest.parse import BodyError

# Ray's aggregator gives a POST 3 s (RAY_DASHBOARD_AGGREGATOR_AGENT_PUBLISHER_TIMEOUT_SECONDS):
# waiting for the flusher takes a third of it at most.
ROOM_WAIT_SECONDS = 1.0
ROOM_POLL_SECONDS = 0.005


def _json(status: int, body: Any, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Response:
    return Response(status, msgspec.json.encode(body), headers=headers)


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


def create_server(collector: Collector) -> Server:
    limit = collector.config.max_body_bytes
    too_large = _json(413, {"error": f"the body is larger than {limit:,} bytes (--max-body-mb)"})

    async def events(body: bytes) -> Response:
        await _room(collector)
        try:
            count = collector.accept(body)
        except BodyError as exc:
            return _json(400, exc.as_json())
        except CollectorUnavailable as exc:
            return _json(503, {"error": str(exc)}, ((b"retry-after", b"%d" % exc.retry_after),))
        return _json(200, {"accepted": count})

    def readyz() -> Response:
        size = collector.spool.size
        ready = not collector.draining and size < collector.config.spool_max_bytes
        state = {"ready": ready, "draining": collector.draining, "spool_bytes": size}
        return _json(200 if ready else 503, state)

    async def handle(request: Request) -> Response:
        method, path = request.method, request.path
        reads = method == "GET"
        if path == "/v1/events" and method == "POST":
            return await events(request.body)
        if path == "/healthz" and reads:
            return _json(200, {"status": "ok"})
        if path == "/readyz" and reads:
            return readyz()
        if path == "/metrics" and reads:
            data = generate_latest(collector.metrics.registry)
            return Response(200, data, CONTENT_TYPE_LATEST.encode())
        if path in ("/v1/events", "/healthz", "/readyz", "/metrics"):
            allow = ((b"allow", b"POST" if path == "/v1/events" else b"GET"),)
            return _json(405, {"error": f"{method} is not allowed here"}, allow)
        return _json(404, {"error": f"no such path: {path}"})

    return Server(handle, limit, too_large)
