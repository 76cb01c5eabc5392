"""The catalog: one small JSON object per (cluster, session, node).

Readers discover sessions by listing `_catalog/` only, never by globbing data
directories. An entry is recomputed from the session's events (distinct event ids),
so writing it again after a repeated ingest changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from lake.layout import (
    CATALOG,
    ClusterKey,
    catalog_path,
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


def read_entry(lake: Lake, cluster: ClusterKey, session: str, node_id: str) -> CatalogEntry | None:
    path = catalog_path(cluster, session, node_id)
    if not lake.exists(path):
        return None
    return msgspec.json.decode(lake.read_bytes(path), type=CatalogEntry)


def write_entry(lake: Lake, entry: CatalogEntry) -> None:
    entry.updated_at = _now()
    path = catalog_path(entry.cluster_key, entry.session, entry.node_id)
    lake.write_bytes(path, msgspec.json.encode(entry))


def _session_events(
    lake: Lake, cluster: ClusterKey, session: str
) -> Iterable[tuple[str, pa.Table]]:
    columns = ["event_id", "emitter_node_id", "event_time", "source_type"]
    for table in SCHEMAS:
        files = list(lake.list_files(events_session_dir(table, cluster, session), ".parquet"))
        if files:
            data = ds.dataset(
                [lake.full(f) for f in files], format="parquet", filesystem=lake.fs
            ).to_table(columns=columns)
            yield table, data


def refresh_session(
    lake: Lake,
    cluster: ClusterKey,
    session: str,
    *,
    ray_versions: dict[str, str] | None = None,
    ended: bool | None = None,
) -> list[CatalogEntry]:
    """Recompute the catalog entries of one session from its events and write them."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    first: dict[str, dt.datetime] = {}
    last: dict[str, dt.datetime] = {}
    gcs_nodes: set[str] = set()
    for table, data in _session_events(lake, cluster, session):
        # Microseconds: the catalog holds Python datetimes.
        times = pc.cast(data["event_time"], pa.timestamp("us", tz="UTC"), safe=False)
        data = data.set_column(2, "event_time", times)
        grouped = data.group_by("emitter_node_id").aggregate(
            [
                ("event_id", "count_distinct"),
                ("event_time", "min"),
                ("event_time", "max"),
            ]
        )
        for row in grouped.to_pylist():
            node = row["emitter_node_id"] or "unknown"
            counts[node][table] = row["event_id_count_distinct"]
            low, high = row["event_time_min"], row["event_time_max"]
            first[node] = min(first.get(node, low), low)
            last[node] = max(last.get(node, high), high)
        gcs = data.filter(pc.equal(data["source_type"], pa.scalar("GCS")))["emitter_node_id"]
        gcs_nodes.update(str(node or "unknown") for node in pc.unique(gcs).to_pylist())
    entries = []
    for node, node_counts in sorted(counts.items()):
        previous = read_entry(lake, cluster, session, node)
        entry = previous or CatalogEntry(
            namespace=cluster.namespace, cluster=cluster.name, session=session, node_id=node
        )
        entry.event_counts = dict(sorted(node_counts.items()))
        entry.first_event_time = first[node].isoformat()
        entry.last_event_time = last[node].isoformat()
        if node in gcs_nodes:
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


def sessions(entries: Iterable[CatalogEntry]) -> list[tuple[ClusterKey, str]]:
    """Distinct (cluster, session) pairs, newest session first."""
    keys = {(e.cluster_key, e.session) for e in entries}
    return sorted(keys, key=lambda k: (k[1], k[0]), reverse=True)
