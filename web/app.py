"""The history server: a Litestar app answering the Ray Dashboard's API for any stored
session, plus raylake's own routes."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litestar import Litestar, get
from litestar.config.cors import CORSConfig
from litestar.exceptions import HTTPException
from litestar.logging.config import LoggingConfig

from lake.store import Lake
from query.state import StateCache
from web import (
    auth,
    console_page,
    dashboard,
    entities,
    lake_api,
    live,
    logs,
    reports,
    sessions,
    tasks,
    ui,
)
from web.reply import ApiError, api_error_handler, http_error_handler


@dataclass(frozen=True)
class ServerConfig:
    lake: str
    s3_endpoint_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    auth_token: str | None = None
    dashboard_dirs: tuple[Path, ...] = ()
    cache_dir: Path | None = None
    recheck_seconds: float = 2.0
    cors_origins: tuple[str, ...] = field(default=())
    memory_limit: str = "1GB"
    # Clusters running now: RayClusters listed through this kubeconfig (else, in a pod,
    # the pod's service account), in these namespaces (none: every namespace).
    kubeconfig: str | None = None
    live_namespaces: tuple[str, ...] = ()
    live_dashboard_url_template: str = live.KUBERAY_DASHBOARD


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}


def create_app(config: ServerConfig) -> Litestar:
    lake = Lake(config.lake, endpoint_url=config.s3_endpoint_url)
    cache_dir = config.cache_dir or Path(tempfile.mkdtemp(prefix="raylake-serve-"))
    cache = StateCache(
        lake,
        cache_dir=cache_dir,
        recheck_seconds=config.recheck_seconds,
        memory_limit=config.memory_limit,
    )
    middleware: list[Any] = []
    if config.auth_token:
        middleware.append(auth.TokenAuth(config.auth_token))
    running = live.LiveClusters(
        live.kubernetes_lister(config.kubeconfig, config.live_namespaces),
        config.live_dashboard_url_template,
    )

    app = Litestar(
        route_handlers=[
            healthz,
            readyz,
            *auth.ROUTES,
            *sessions.ROUTES,
            *tasks.ROUTES,
            *entities.ROUTES,
            *dashboard.ROUTES,
            *logs.ROUTES,
            *ui.ROUTES,
            *lake_api.ROUTES,
            *console_page.ROUTES,
            *reports.ROUTES,
        ],
        middleware=middleware,
        before_request=live.proxy_live_only,
        lifespan=[live.head_client],
        cors_config=CORSConfig(allow_origins=list(config.cors_origins))
        if config.cors_origins
        else None,
        exception_handlers={ApiError: api_error_handler, HTTPException: http_error_handler},
        # A 500 is a bug: its traceback goes to the log outside debug mode too.
        logging_config=LoggingConfig(log_exceptions="always"),
    )
    app.state.config = config
    app.state.lake = lake
    app.state.sessions = sessions.Sessions(lake, cache, recheck_seconds=config.recheck_seconds)
    app.state.live = running
    return app


def run(config: ServerConfig) -> int:
    import uvicorn

    # One line per proxied request of a live session (the UI polls) is noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="warning")
    return 0
