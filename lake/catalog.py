"""The catalog: one small JSON object per (cluster, session, node).

Readers discover sessions by listing `_catalog/` only, never by globbing data
directories. An entry is recomputed from the session's events (distinct event ids),
so writing it again after a repeated ingest changes nothing.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from lake.layout import (
    CATALOG,
    ClusterKey,
    catalog_path,
    catalog_session_dir,
    events_session_dir,
)
from lake.schemas import SCHEMAS
from lake.store import Lake


class CatalogEntry(msgspec.Struct, kw_only=True, omit_defaults=False):
    namespace: str
    cluster: str
    session: str
    node_id: str
    role: str = "unknown"
    """`head` when the node emitted GCS events (only the head runs GCS), else `worker`."""
    ray_version: str = ""
    first_event_time: str | None = None
    last_event_time: str | None = None
    event_counts: dict[str, int] = {}
    log_files: int = 0
    log_bytes: int = 0
    ended: bool = False
    flushed_segment: str = ""
    """A collector's last spool segment counted here (a replay must not count again);
    segment names grow with time, so later is larger."""
    updated_at: str = ""

    @property
    def cluster_key(self) -> ClusterKey:
        return ClusterKey(self.namespace, self.cluster)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def read_entries(lake: Lake) -> list[CatalogEntry]:
    return [
        msgspec.json.decode(lake.read_bytes(path), type=CatalogEntry)
        for path in lake.list_files(CATALOG, ".json")
    ]


def read_session_entries(lake: Lake, cluster: ClusterKey, session: str) -> list[CatalogEntry]:
    """The entries of one session's nodes, listing only that session's directory."""
    return [
        msgspec.json.decode(lake.read_bytes(path), type=CatalogEntry)
        for path in lake.list_files(catalog_session_dir(cluster, session), ".json")
    ]


def read_entry(lake: Lake, cluster: ClusterKey, session: str, node_id: str) -> CatalogEntry | None:
    path = catalog_path(cluster, session, node_id)
    if not lake.exists(path):
        return None
    return msgspec.json.decode(lake.read_bytes(path), type=CatalogEntry)


_UPDATES = threading.Lock()  # one process's writers of an entry: flusher and log shipper


def update_entry(
    lake: Lake,
    cluster: ClusterKey,
    session: str,
    node_id: str,
    change: Callable[[CatalogEntry], bool],
) -> None:
    """Read, change and write one entry; `change` returns False to leave it as it was.
    Each entry has a single collector, so only this process's threads can race."""
    with _UPDATES:
        entry = read_entry(lake, cluster, session, node_id) or CatalogEntry(
            namespace=cluster.namespace, cluster=cluster.name, session=session, node_id=node_id
        )
        if change(entry):
            write_entry(lake, entry)


def write_entry(lake: Lake, entry: CatalogEntry) -> None:
    entry.updated_at = _now()
    path = catalog_path(entry.cluster_key, entry.session, entry.node_id)
    lake.write_bytes(path, msgspec.json.encode(entry))


@dataclass
class _NodeEvents:
    counts: dict[str, int] = field(default_factory=dict)
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    runs_gcs: bool = False


_PER_NODE = """
    SELECT coalesce(emitter_node_id, 'unknown') AS node,
           count(DISTINCT event_id) AS events,
           epoch_ns(min(event_time)) AS first_ns,
           epoch_ns(max(event_time)) AS last_ns,
           bool_or(source_type = 'GCS') AS runs_gcs
    FROM read_parquet($files)
    GROUP BY ALL
"""


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _from_ns(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def time_text(ns: int) -> str:
    """How the catalog writes a time: ISO 8601, UTC, microseconds."""
    return _from_ns(ns).isoformat()


def _session_events(lake: Lake, cluster: ClusterKey, session: str) -> dict[str, _NodeEvents]:
    """Per emitting node: distinct events per table, first and last event time.

    DuckDB streams the session's parts under a memory limit, so a large session costs
    time, not memory.
    """
    import duckdb  # only here: the collector imports this module without needing it

    nodes: dict[str, _NodeEvents] = defaultdict(_NodeEvents)
    spill = tempfile.mkdtemp(prefix="raylake-catalog-")
    con = duckdb.connect(config={"memory_limit": "128MB", "threads": 1, "temp_directory": spill})
    try:
        if not lake.is_local:
            con.register_filesystem(lake.fs)
        for table in SCHEMAS:
            files = list(lake.list_files(events_session_dir(table, cluster, session), ".parquet"))
            if not files:
                continue
            result = con.execute(_PER_NODE, {"files": [lake.uri(f) for f in files]})
            for node, events, first_ns, last_ns, runs_gcs in result.fetchall():
                found = nodes[node]
                found.counts[table] = events
                first, last = _from_ns(first_ns), _from_ns(last_ns)
                found.first = first if found.first is None else min(found.first, first)
                found.last = last if found.last is None else max(found.last, last)
                found.runs_gcs = found.runs_gcs or bool(runs_gcs)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    return nodes


def refresh_session(
    lake: Lake,
    cluster: ClusterKey,
    session: str,
    *,
    ray_versions: dict[str, str] | None = None,
    ended: bool | None = None,
) -> list[CatalogEntry]:
    """Recompute the catalog entries of one session from its events and write them."""
    nodes = _session_events(lake, cluster, session)
    entries = []
    for node, found in sorted(nodes.items()):
        previous = read_entry(lake, cluster, session, node)
        entry = previous or CatalogEntry(
            namespace=cluster.namespace, cluster=cluster.name, session=session, node_id=node
        )
        entry.event_counts = dict(sorted(found.counts.items()))
        entry.first_event_time = found.first.isoformat() if found.first else None
        entry.last_event_time = found.last.isoformat() if found.last else None
        if found.runs_gcs:
            entry.role = "head"
        elif entry.role == "unknown":
            entry.role = "worker"
        if ray_versions and node in ray_versions:
            entry.ray_version = ray_versions[node]
        if ended is not None:
            entry.ended = ended
        write_entry(lake, entry)
        entries.append(entry)
    return entries
