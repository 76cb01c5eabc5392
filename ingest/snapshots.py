"""Snapshots of the head's Ray dashboard: what Ray 2.60 tells no event about.

Submission jobs (status, message, exit code, times) and placement groups are only in
the dashboard's API. The head's collector polls a few endpoints; each body is kept as
the dashboard answered it (only when it changed), and jobs and placement groups are
parsed into tables that replace the session's previous snapshot. A dashboard that does
not answer is tried again at the next poll, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pyarrow as pa

from ingest.endpoints import ENDPOINTS
from lake.layout import ClusterKey, snapshot_body_path, snapshot_table_path
from lake.parts import parquet_bytes
from lake.schemas import SNAPSHOT_SCHEMAS, TIME
from lake.store import Lake

log = logging.getLogger("raylake.snapshots")

_NS_PER_MS = 1_000_000


class SnapshotError(ValueError):
    """A body that is not what the endpoint answers."""


def _ms(value: Any) -> int | None:
    return int(value) * _NS_PER_MS if value else None


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def parse_jobs(body: bytes, snapshot_ns: int) -> pa.Table:
    """`GET /api/jobs/`: a JSON list of jobs (drivers and submission jobs)."""
    jobs = json.loads(body)
    if not isinstance(jobs, list):
        raise SnapshotError("/api/jobs/: expected a JSON list of jobs")
    rows = []
    for job in jobs:
        driver = job.get("driver_info") or {}
        rows.append(
            {
                "snapshot_time": snapshot_ns,
                "submission_id": job.get("submission_id"),
                "job_id": job.get("job_id"),
                "type": job.get("type"),
                "status": job.get("status"),
                "message": job.get("message"),
                "error_type": job.get("error_type"),
                "entrypoint": job.get("entrypoint"),
                "start_time": _ms(job.get("start_time")),
                "end_time": _ms(job.get("end_time")),
                "metadata": job.get("metadata") or {},
                "runtime_env": json.dumps(job.get("runtime_env") or {}),
                "driver_agent_http_address": job.get("driver_agent_http_address"),
                "driver_node_id": job.get("driver_node_id"),
                "driver_exit_code": _int(job.get("driver_exit_code")),
                "driver_pid": _int(driver.get("pid")),
                "driver_node_ip": driver.get("node_ip_address"),
            }
        )
    return _table("submission_jobs", rows)


def parse_placement_groups(body: bytes, snapshot_ns: int) -> pa.Table:
    """`GET /api/v0/placement_groups?detail=1`: Ray's state API envelope."""
    answer = json.loads(body)
    try:
        groups = answer["data"]["result"]["result"]
    except (KeyError, TypeError):
        raise SnapshotError("placement groups: expected Ray's data.result.result") from None
    rows = []
    for group in groups:
        stats = group.get("stats") or {}
        bundles = [
            {
                "bundle_index": (b.get("bundle_id") or {}).get("bundle_index"),
                "unit_resources": b.get("unit_resources") or {},
                "node_id": b.get("node_id"),
                "label_selector": b.get("label_selector") or {},
            }
            for b in group.get("bundles") or []
        ]
        rows.append(
            {
                "snapshot_time": snapshot_ns,
                "placement_group_id": group.get("placement_group_id"),
                "name": group.get("name"),
                "creator_job_id": group.get("creator_job_id"),
                "state": group.get("state"),
                "is_detached": group.get("is_detached"),
                "strategy": group.get("strategy"),
                "bundles": bundles,
                "creation_request_received_time": _int(stats.get("creation_request_received_ns")),
                "scheduling_state": stats.get("scheduling_state"),
                "scheduling_attempt": _int(stats.get("scheduling_attempt")),
                "body": json.dumps(group),
            }
        )
    return _table("placement_groups", rows)


def _table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = SNAPSHOT_SCHEMAS[name]
    columns = {}
    for field in schema:
        values = [row[field.name] for row in rows]
        if field.type == TIME:
            columns[field.name] = pa.array(values, pa.int64()).cast(TIME)
        else:
            columns[field.name] = pa.array(values, field.type)
    return pa.table(columns, schema=schema)


PARSERS: dict[str, Callable[[bytes, int], pa.Table]] = {
    "jobs": parse_jobs,
    "placement_groups": parse_placement_groups,
}
TABLE_OF_ENDPOINT = {"jobs": "submission_jobs", "placement_groups": "placement_groups"}


def store_snapshot(
    lake: Lake, cluster: ClusterKey, session: str, endpoint: str, body: bytes, snapshot_ns: int
) -> None:
    """Keep a body, and the table parsed from it (raises SnapshotError when it is not
    what the endpoint answers; then nothing is kept)."""
    parser = PARSERS.get(endpoint)
    table = parser(body, snapshot_ns) if parser else None
    lake.write_bytes(snapshot_body_path(cluster, session, endpoint, snapshot_ns), body)
    if table is not None:
        path = snapshot_table_path(TABLE_OF_ENDPOINT[endpoint], cluster, session)
        lake.write_bytes(path, parquet_bytes(table))


class Snapshotter:
    """Polls the head's dashboard and keeps what changed."""

    def __init__(
        self,
        lake: Callable[[], Lake],
        cluster: ClusterKey,
        dashboard_url: str,
        session: Callable[[], str | None],
    ) -> None:
        self.lake = lake
        self.cluster = cluster
        self.session = session
        self.client = httpx.Client(base_url=dashboard_url, timeout=10.0)
        self._last: dict[tuple[str, str], str] = {}  # (session, endpoint) -> digest
        self.ray_version = ""
        self.session_name: str | None = None  # as the dashboard names it
        self._silent: list[str] = []

    def poll(self) -> int:
        """One round over the endpoints; return how many bodies were new."""
        new = 0
        silent: dict[str, str] = {}  # path -> why
        for endpoint, path in ENDPOINTS.items():
            try:
                answer = self.client.get(path)
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                silent[path] = str(exc)
                continue
            body = answer.content
            if endpoint == "version":
                version = json.loads(body)
                self.ray_version = str(version.get("ray_version", ""))
                self.session_name = version.get("session_name") or self.session()
            digest = hashlib.sha256(body).hexdigest()
            session = self.session_name or self.session()
            if session is None or self._last.get((session, endpoint)) == digest:
                continue
            try:
                store_snapshot(self.lake(), self.cluster, session, endpoint, body, time.time_ns())
            except SnapshotError as exc:
                log.warning("dashboard %s answered something unexpected: %s", path, exc)
                continue
            self._last[session, endpoint] = digest
            new += 1
        if silent and list(silent) != self._silent:  # said once, not at every poll
            why = ", ".join(f"{path} ({reason})" for path, reason in silent.items())
            log.info("the dashboard did not answer %s; the next poll tries again", why)
        self._silent = list(silent)
        return new

    def close(self) -> None:
        self.client.close()
