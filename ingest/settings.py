"""Every setting of `raylake collect`, in one table: flag, environment variable,
default and help. Flags KubeRay's collector users know keep working where they mean
the same thing. The README's settings table is checked against this one by a test.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    flags: tuple[str, ...]
    env: str
    default: str | None
    help: str
    required: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("lake", ("--lake",), "RAYLAKE_LAKE", None,
            "lake URL: a local directory or s3://bucket/prefix", required=True),
    Setting("s3_endpoint_url", ("--s3-endpoint-url",), "RAYLAKE_S3_ENDPOINT_URL", None,
            "S3 API endpoint, e.g. http://minio:9000 (else AWS_ENDPOINT_URL)"),
    Setting("namespace", ("--namespace",), "RAYLAKE_NAMESPACE", "default",
            "Kubernetes namespace of the Ray cluster"),
    Setting("cluster", ("--cluster", "--ray-cluster-name"), "RAYLAKE_CLUSTER", None,
            "RayCluster name", required=True),
    Setting("role", ("--role",), "RAYLAKE_ROLE", "worker",
            "head or worker (Head/Worker as KubeRay spells them)"),
    Setting("host", ("--host",), "RAYLAKE_HOST", "0.0.0.0",  # noqa: S104 (a sidecar)
            "address the event endpoint listens on"),
    Setting("port", ("--port", "--events-port"), "RAYLAKE_PORT", "8084",
            "port of POST /v1/events, /healthz, /readyz, /metrics"),
    Setting("spool", ("--spool",), "RAYLAKE_SPOOL", "/tmp/raylake/spool",  # noqa: S108
            "directory of the write-ahead spool (an emptyDir in Kubernetes)"),
    Setting("ray_root", ("--ray-root", "--ray-root-dir"), "RAYLAKE_RAY_ROOT", "/tmp/ray",  # noqa: S108
            "Ray's temp directory, shared with the Ray container"),
    Setting("dashboard_url", ("--dashboard-url",), "RAYLAKE_DASHBOARD_URL",
            "http://127.0.0.1:8265", "head only: the Ray dashboard to snapshot"),
    Setting("flush_interval", ("--flush-interval", "--push-interval"),
            "RAYLAKE_FLUSH_INTERVAL", "10s", "how often the spool is written to the lake"),
    # A segment costs about 30 ms of CPU whatever its size (twelve Parquet parts, their
    # files, the catalog): at 40,000 events a segment, 0.2 CPU takes 8-10% more events
    # than at 20,000 (bench/collector.py), and the collector peaks at 195-225 MiB.
    Setting("flush_events", ("--flush-events",), "RAYLAKE_FLUSH_EVENTS", "40000",
            "write to the lake sooner once the spool holds this many events"),
    Setting("log_interval", ("--log-interval",), "RAYLAKE_LOG_INTERVAL", "30s",
            "how often changed log files are shipped"),
    Setting("poll_interval", ("--poll-interval",), "RAYLAKE_POLL_INTERVAL", "30s",
            "head only: how often the dashboard is snapshotted"),
    Setting("spool_max_mb", ("--spool-max-mb",), "RAYLAKE_SPOOL_MAX_MB", "512",
            "spool cap (compressed; fractions allowed); past it POSTs get 503 with Retry-After"),
    Setting("max_body_mb", ("--max-body-mb",), "RAYLAKE_MAX_BODY_MB", "64",
            "largest POST body accepted; larger ones get 413"),
)  # fmt: skip


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def seconds(text: str) -> float:
    """`10s`, `500ms`, `2m`, `1h` or a plain number of seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r}: expected a duration such as 10s, 500ms, 2m")
    return float(match[1]) * _UNITS[match[2]]


@dataclass(frozen=True)
class CollectorConfig:
    lake: str
    s3_endpoint_url: str | None
    namespace: str
    cluster: str
    role: str
    host: str
    port: int
    spool: Path
    ray_root: Path
    dashboard_url: str
    flush_interval: float
    flush_events: int
    log_interval: float
    poll_interval: float
    spool_max_bytes: int
    max_body_bytes: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for s in SETTINGS:
        default = os.environ.get(s.env, s.default)
        help_text = f"{s.help} (env {s.env}; default {s.default})"
        parser.add_argument(*s.flags, dest=s.name, default=default, help=help_text)


def config_from(args: argparse.Namespace) -> CollectorConfig:
    values: dict[str, Any] = vars(args)
    missing = [s.flags[0] for s in SETTINGS if s.required and not values.get(s.name)]
    if missing:
        raise ValueError(f"required: {', '.join(missing)} (or their environment variables)")
    role = str(values["role"]).lower()
    if role not in ("head", "worker"):
        raise ValueError(f"--role {values['role']!r}: expected head or worker")
    return CollectorConfig(
        lake=values["lake"],
        s3_endpoint_url=values["s3_endpoint_url"] or None,
        namespace=values["namespace"],
        cluster=values["cluster"],
        role=role,
        host=values["host"],
        port=int(values["port"]),
        spool=Path(values["spool"]),
        ray_root=Path(values["ray_root"]),
        dashboard_url=values["dashboard_url"],
        flush_interval=seconds(values["flush_interval"]),
        flush_events=int(values["flush_events"]),
        log_interval=seconds(values["log_interval"]),
        poll_interval=seconds(values["poll_interval"]),
        spool_max_bytes=int(float(values["spool_max_mb"]) * 1024 * 1024),
        max_body_bytes=int(values["max_body_mb"]) * 1024 * 1024,
    )
