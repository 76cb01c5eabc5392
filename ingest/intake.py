"""The collector's HTTP face: `POST /v1/events` as Ray's aggregator agent calls it,
`/healthz`, `/readyz` and Prometheus `/metrics`.

Answers: 200 once a body is durable; 400 with the event index and field when it is
not valid (nothing of it kept); 413 past the size cap; 503 with Retry-After when the
spool is full or the collector is draining (Ray retries).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.exceptions import HTTPException
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.collector import Collector, CollectorUnavailable
from ingest.parse import BodyError


def create_app(collector: Collector) -> Litestar:
    @post("/v1/events", status_code=200)
    async def events(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        body = await request.body()
        try:
            count = await anyio.to_thread.run_sync(collector.accept, body)
        except BodyError as exc:
            return Response(exc.as_json(), status_code=400)
        except CollectorUnavailable as exc:
            headers = {"Retry-After": str(exc.retry_after)}
            return Response({"error": str(exc)}, status_code=503, headers=headers)
        return Response({"accepted": count})

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz")
    async def readyz() -> Response[dict[str, Any]]:
        size = collector.spool.size
        ready = not collector.draining and size < collector.config.spool_max_bytes
        state = {"ready": ready, "draining": collector.draining, "spool_bytes": size}
        return Response(state, status_code=200 if ready else 503)

    @get("/metrics", media_type=MediaType.TEXT)
    async def metrics() -> Response[bytes]:
        data = generate_latest(collector.metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    def too_large(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
        return Response({"error": exc.detail}, status_code=exc.status_code)

    return Litestar(
        route_handlers=[events, healthz, readyz, metrics],
        request_max_body_size=collector.config.max_body_bytes,
        exception_handlers={413: too_large},
    )
