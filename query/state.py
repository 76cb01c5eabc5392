"""A session's materialized state: its entity tables, built once from its events and
kept in the lake under `state/`, then read by the history server.

A state is tied to a *version*: a digest of what its inputs were when it was built
(the session's catalog entries, which every collector flush and log shipment rewrites,
and its snapshot bodies). When the inputs move on, the version no longer matches and
the state is built again, so an answer is never older than the lake. Several servers
may build the same version at once: they write the same files, and the meta object,
written last, names a version only once all its tables are complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lake.catalog import CatalogEntry, read_session_entries
from lake.layout import snapshot_session_dir, state_dir, state_meta_path, state_path
from lake.store import Lake
from query.engine import VIEWS_DIR, SessionRef, connect

#: What a session's state holds: one query per table, over the session-only views.
#: Rows are stored in the order the API lists them, so a page needs no sort.
STATE_TABLES: dict[str, str] = {
    "tasks": """
        SELECT * EXCLUDE (namespace, cluster, session) FROM tasks
        ORDER BY task_id, attempt_number
    """,
    "task_profile": """
        SELECT task_id, attempt_number, job_id, component_type, component_id,
               node_ip_address, event_name, epoch_ns(start_time) AS start_ns,
               epoch_ns(end_time) AS end_ns, extra_data
        FROM task_profile_events
        ORDER BY task_id, attempt_number, start_ns, event_name
    """,
    "actors": "SELECT * EXCLUDE (namespace, cluster, session) FROM actors ORDER BY actor_id",
    "jobs": "SELECT * EXCLUDE (namespace, cluster, session) FROM jobs ORDER BY job_id",
    "nodes": "SELECT * EXCLUDE (namespace, cluster, session) FROM nodes ORDER BY node_id",
    "workers": """
        SELECT * EXCLUDE (namespace, cluster, session) FROM workers
        ORDER BY start_time NULLS LAST, worker_id
    """,
    "placement_groups": """
        SELECT * EXCLUDE (namespace, cluster, session) FROM placement_group_snapshots
        ORDER BY placement_group_id
    """,
    "log_files": """
        SELECT * EXCLUDE (namespace, cluster, session) FROM log_files
        ORDER BY node_id, path
    """,
}

_CHUNK = 8 * 1024 * 1024
_ANSWERS_KEPT = 64
# A replaced or evicted version stays readable this long: a request that took it just
# before the newer one came (a live session's moves on every flush) still runs its
# queries on it, where a dropped schema answered 500. Not longer: a live session's
# versions replaced meanwhile keep their files on disk until then.
RETIRED_SECONDS = 15.0


class SessionNotFound(LookupError):
    """No catalog entry names the session."""


def _code_digest() -> str:
    """What the state's tables are computed by: a new raylake with other view SQL
    builds every state again."""
    sources = sorted(VIEWS_DIR.glob("*.sql"))
    text = json.dumps([STATE_TABLES, [p.read_text() for p in sources]])
    return hashlib.sha256(text.encode()).hexdigest()


_CODE = _code_digest()


def inputs_version(lake: Lake, ref: SessionRef) -> tuple[str, list[CatalogEntry]]:
    """A digest of the session's inputs (and of the code that builds its state), and
    its catalog entries."""
    entries = read_session_entries(lake, ref.cluster, ref.session)
    snapshots = list(lake.list_files(snapshot_session_dir(ref.cluster, ref.session), ".json"))
    marks = [(e.node_id, e.updated_at, e.ended, e.flushed_segment) for e in entries]
    text = json.dumps([_CODE, sorted(marks), snapshots])
    return hashlib.sha256(text.encode()).hexdigest()[:20], entries


def read_meta(lake: Lake, ref: SessionRef) -> dict[str, Any] | None:
    path = state_meta_path(ref.cluster, ref.session)
    if not lake.exists(path):
        return None
    meta: dict[str, Any] = json.loads(lake.read_bytes(path))
    return meta


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


#: Tables built one slice of task ids at a time, the slices split on the first hex
#: digits so they come in task-id order: merging a task's events holds a whole slice in
#: memory (DuckDB cannot spill those aggregates), and a session may hold millions of
#: task attempts. Each slice rescans the task events, so there are only as many slices
#: as the session's size needs.
_BY_TASK_SLICE = frozenset({"tasks", "task_profile"})
_TASK_EVENT_VIEWS = (
    "task_definition_events",
    "actor_task_definition_events",
    "task_lifecycle_events",
    "task_profile_events",
)
_TASK_TABLES = ("task_definition", "actor_task_definition", "task_lifecycle", "task_profile")
_EVENTS_PER_SLICE = 1_500_000  # at the 512 MB the build runs under
_HEX = "0123456789abcdef"
_ROW_GROUP = 122_880


def task_slices(task_events: int) -> list[tuple[str, str | None]]:
    """Task-id ranges [low, high) covering every id: 1, 2, 4, 8 or 16 of them."""
    count = 1
    while count < len(_HEX) and task_events > count * _EVENTS_PER_SLICE:
        count *= 2
    step = len(_HEX) // count
    bounds = [_HEX[i] for i in range(0, len(_HEX), step)]
    return [
        ("" if i == 0 else low, bounds[i + 1] if i + 1 < len(bounds) else None)
        for i, low in enumerate(bounds)
    ]


def _slice_task_events(con: duckdb.DuckDBPyConnection, low: str, high: str | None) -> None:
    """Point the task event views at the task ids in [low, high)."""
    bounds = [f"task_id >= '{low}'" if low else "true"]
    if high is not None:
        bounds.append(f"task_id < '{high}'")
    for view in _TASK_EVENT_VIEWS:
        con.execute(
            f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM _all_{view} "
            f"WHERE {' AND '.join(bounds)}"
        )


def _write_by_task_slice(
    con: duckdb.DuckDBPyConnection, sql: str, local: Path, slices: list[tuple[str, str | None]]
) -> int:
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for low, high in slices:
            _slice_task_events(con, low, high)
            reader = con.sql(sql).to_arrow_reader(_ROW_GROUP)
            if writer is None:
                writer = pq.ParquetWriter(local, reader.schema, compression="zstd")
            for batch in reader:
                writer.write_batch(batch, row_group_size=_ROW_GROUP)
                rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def materialize(lake: Lake, ref: SessionRef, *, memory_limit: str = "512MB") -> str:
    """Build the session's state from its events and snapshots; returns its version.

    DuckDB streams the session's parts under a memory limit and spills beyond it; the
    task tables are built a slice of task ids at a time."""
    version, entries = inputs_version(lake, ref)
    task_events = sum(e.event_counts.get(t, 0) for e in entries for t in _TASK_TABLES)
    slices = task_slices(task_events)
    work = Path(tempfile.mkdtemp(prefix="raylake-state-"))
    con = connect(
        lake,
        only=ref,
        config={
            "memory_limit": memory_limit,
            "temp_directory": str(work / "spill"),
            "preserve_insertion_order": True,
        },
    )
    started = time.monotonic()
    try:
        for view in _TASK_EVENT_VIEWS:
            con.execute(f"ALTER VIEW {view} RENAME TO _all_{view}")
        rows = {}
        for table, sql in STATE_TABLES.items():
            local = work / f"{table}.parquet"
            if table in _BY_TASK_SLICE:
                rows[table] = _write_by_task_slice(con, sql, local, slices)
            else:
                con.execute(
                    f"COPY ({sql}) TO '{local}' "
                    f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {_ROW_GROUP})"
                )
                rows[table] = con.execute(f"SELECT count(*) FROM '{local}'").fetchone()[0]  # type: ignore[index]
            lake.write_chunks(
                state_path(table, ref.cluster, ref.session, version), _file_chunks(local)
            )
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
    meta = {
        "version": version,
        "tables": sorted(STATE_TABLES),
        "rows": rows,
        "task_slices": len(slices),
        "built_at": time.time(),
        "build_seconds": round(time.monotonic() - started, 3),
    }
    lake.write_bytes(state_meta_path(ref.cluster, ref.session), json.dumps(meta).encode())
    _remove_other_versions(lake, ref, version)
    return version


def _remove_other_versions(lake: Lake, ref: SessionRef, keep: str) -> None:
    for table in STATE_TABLES:
        for path in lake.list_files(state_dir(table, ref.cluster, ref.session), ".parquet"):
            if not path.endswith(f"/{keep}.parquet"):
                lake.delete(path)


@dataclass
class SessionState:
    """One session's state, readable through the server's DuckDB connection: each
    table is a view in the session's own schema."""

    ref: SessionRef
    version: str
    schema: str
    entries: list[CatalogEntry]
    connection: duckdb.DuckDBPyConnection
    checked: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        # Not fields: Litestar inspects a dependency's fields, and a lock has no type.
        self._answers: OrderedDict[Hashable, Any] = OrderedDict()
        self._answers_lock = threading.Lock()

    @property
    def ray_version(self) -> str:
        return next((e.ray_version for e in self.entries if e.ray_version), "")

    def remember(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """`compute()`, once per key for this version of the state (a version never
        changes, so neither does an answer derived from it); the newest 64 are kept."""
        with self._answers_lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
        value = compute()
        with self._answers_lock:
            self._answers[key] = value
            while len(self._answers) > _ANSWERS_KEPT:
                self._answers.popitem(last=False)
        return value

    def query(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pa.Table:
        """Run `sql` with this session's tables as the unqualified names."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"SET search_path = '{self.schema},main'")
            table: pa.Table = cursor.sql(sql, params=params).to_arrow_table()
            return table
        finally:
            cursor.close()


class StateCache:
    """The sessions a server has open, each at its newest version.

    A session's inputs are checked again at most every `recheck_seconds`; a changed
    session is materialized again (once, however many requests wait for it). Each
    version's state files are the server's own, under `cache_dir`: a remote lake's are
    copied, so queries read local disk, and a local lake's are hard links, which stay
    when materializing the next version removes the lake's; a version replaced stays
    readable for RETIRED_SECONDS.
    """

    def __init__(
        self,
        lake: Lake,
        *,
        cache_dir: Path,
        recheck_seconds: float = 2.0,
        max_sessions: int = 64,
        memory_limit: str = "1GB",
    ) -> None:
        self.lake = lake
        self.cache_dir = cache_dir
        self.recheck_seconds = recheck_seconds
        self.max_sessions = max_sessions
        self.connection = duckdb.connect(
            config={"memory_limit": memory_limit, "temp_directory": str(cache_dir / "spill")}
        )
        self._open: OrderedDict[SessionRef, SessionState] = OrderedDict()
        self._locks: dict[SessionRef, threading.Lock] = {}
        self._guard = threading.Lock()
        self._retired: list[tuple[float, SessionState]] = []  # (since, state)

    def _lock(self, ref: SessionRef) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(ref, threading.Lock())

    def get(self, ref: SessionRef) -> SessionState:
        with self._guard:
            state = self._open.get(ref)
            if state and time.monotonic() - state.checked < self.recheck_seconds:
                self._open.move_to_end(ref)
                return state
        with self._lock(ref):
            version, entries = inputs_version(self.lake, ref)
            if not entries:
                raise SessionNotFound(
                    f"no session {ref.session!r} of cluster {ref.cluster.key!r} in the catalog"
                )
            state = self._open.get(ref)
            if state and state.version == version:
                state.checked = time.monotonic()
                state.entries = entries
                return state
            meta = read_meta(self.lake, ref)
            if meta is None or meta["version"] != version or not self._complete(ref, version):
                version = materialize(self.lake, ref)
            fresh = self._attach(ref, version, entries)
            with self._guard:
                previous = self._open.pop(ref, None)
                self._open[ref] = fresh
                evicted = [previous] if previous else []
                while len(self._open) > self.max_sessions:
                    evicted.append(self._open.popitem(last=False)[1])
            self._retire(evicted)
            return fresh

    def _retire(self, states: list[SessionState]) -> None:
        """Keep `states` readable a while; drop those retired long enough ago."""
        now = time.monotonic()
        with self._guard:
            self._retired.extend((now, state) for state in states)
            due = [state for since, state in self._retired if now - since >= RETIRED_SECONDS]
            self._retired = [(t, s) for t, s in self._retired if now - t < RETIRED_SECONDS]
        for state in due:
            self._detach(state)

    def _complete(self, ref: SessionRef, version: str) -> bool:
        return all(
            self.lake.exists(state_path(t, ref.cluster, ref.session, version)) for t in STATE_TABLES
        )

    def _attach(self, ref: SessionRef, version: str, entries: list[CatalogEntry]) -> SessionState:
        schema = f"s_{version}"
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for table in STATE_TABLES:
                path = state_path(table, ref.cluster, ref.session, version)
                location = self._local_copy(path)
                cursor.execute(
                    f"CREATE OR REPLACE VIEW {schema}.{table} AS "
                    f"SELECT * FROM read_parquet('{location}', hive_partitioning = false)"
                )
        finally:
            cursor.close()
        return SessionState(ref, version, schema, entries, self.connection)

    def _local_copy(self, path: str) -> str:
        local = self.cache_dir / path
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            partial = local.with_name(f".{local.name}.tmp")
            partial.unlink(missing_ok=True)
            if not self.lake.is_local:
                self.lake.fs.get_file(self.lake.full(path), str(partial))
            else:
                try:
                    os.link(self.lake.full(path), partial)
                except OSError:  # another file system than the lake's
                    shutil.copyfile(self.lake.full(path), partial)
            partial.replace(local)
        return str(local)

    def _detach(self, state: SessionState) -> None:
        """Drop a version retired long enough ago. A query still running on it keeps
        the files it opened (they are unlinked, not truncated)."""
        with self._guard:
            if any(s.schema == state.schema for s in self._open.values()):
                return  # opened again since
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"DROP SCHEMA IF EXISTS {state.schema} CASCADE")
        finally:
            cursor.close()
        for table in STATE_TABLES:
            path = state_path(table, state.ref.cluster, state.ref.session, state.version)
            (self.cache_dir / path).unlink(missing_ok=True)
