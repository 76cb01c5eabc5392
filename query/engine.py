"""DuckDB over a lake: one view per event table, and the entity views built from them.

Event views are named `<table>_events` (e.g. `task_lifecycle_events`) and span every
session; each has `namespace`, `cluster`, `session` and `date` columns from the hive
partition path. Rows repeated by Ray's at-least-once delivery are kept once (by event
id and row position). The entity views (`tasks`, `actors`, `jobs`, `nodes`, `workers`)
live in `views/*.sql`, one view per file, and read only the event views.

Object stores are read through the lake's own fsspec filesystem, registered with
DuckDB, so S3 needs no DuckDB extension download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from lake.layout import (
    ClusterKey,
    events_session_dir,
    events_table_dir,
    log_index_dir,
    snapshot_table_dir,
)
from lake.logfiles import INDEX_SCHEMA
from lake.schemas import OTHER_TABLE, SCHEMAS, SNAPSHOT_SCHEMAS, TASK_STATUS
from lake.store import Lake

VIEWS_DIR = Path(__file__).parent / "views"

#: Entity views in dependency order (a view may read the ones before it).
ENTITY_VIEWS = ("tasks", "actors", "nodes", "jobs", "workers")


def event_view_name(table: str) -> str:
    return table if table == OTHER_TABLE else f"{table}_events"


def snapshot_view_name(table: str) -> str:
    return f"{table.removesuffix('s')}_snapshots"


LOG_FILES_VIEW = "log_files"


@dataclass(frozen=True, order=True)
class SessionRef:
    """One Ray session of one cluster: what a dashboard request is about."""

    cluster: ClusterKey
    session: str

    @property
    def partition(self) -> str:
        return f"cluster={self.cluster.key}/session={self.session}"


@dataclass(frozen=True)
class _SessionFiles:
    """Parquet files partitioned by cluster and session, one view over all of them."""

    view: str
    directory: str
    pattern: str
    schema: pa.Schema


_SESSION_FILES = [
    *(
        _SessionFiles(snapshot_view_name(t), snapshot_table_dir(t), "*/*/latest.parquet", schema)
        for t, schema in SNAPSHOT_SCHEMAS.items()
    ),
    _SessionFiles(LOG_FILES_VIEW, log_index_dir(), "*/*/*.parquet", INDEX_SCHEMA),
]


def view_names() -> list[str]:
    return [
        *(event_view_name(t) for t in SCHEMAS),
        *(snapshot_view_name(t) for t in SNAPSHOT_SCHEMAS),
        LOG_FILES_VIEW,
        *ENTITY_VIEWS,
    ]


def _literal(value: str) -> str:
    return exp.Literal.string(value).sql("duckdb")


def _event_view_sql(table: str, source: str) -> str:
    view = exp.to_identifier(event_view_name(table)).sql("duckdb")
    return f"""
        CREATE OR REPLACE VIEW {view} AS
        SELECT split_part(cluster, '.', 1) AS namespace,
               substr(cluster, strpos(cluster, '.') + 1) AS cluster,
               session,
               date,
               * EXCLUDE (cluster, session, date)
        FROM {source}
        QUALIFY row_number() OVER (
            PARTITION BY cluster, session, event_id, seq ORDER BY ingest_id) = 1
    """


def _partitioned_view_sql(name: str, source: str) -> str:
    view = exp.to_identifier(name).sql("duckdb")
    return f"""
        CREATE OR REPLACE VIEW {view} AS
        SELECT split_part(cluster, '.', 1) AS namespace,
               substr(cluster, strpos(cluster, '.') + 1) AS cluster,
               session,
               * EXCLUDE (cluster, session)
        FROM {source}
    """


def _events_dir(table: str, only: SessionRef | None) -> tuple[str, str]:
    """The directory of a table's parts, and the glob below it."""
    if only is None:
        return events_table_dir(table), "*/*/*/*.parquet"
    return events_session_dir(table, only.cluster, only.session), "*/*.parquet"


def _session_files_dir(files: _SessionFiles, only: SessionRef | None) -> tuple[str, str]:
    if only is None:
        return files.directory, files.pattern
    return f"{files.directory}/{only.partition}", files.pattern.removeprefix("*/*/")


def _parquet_source(lake: Lake, directory: str, pattern: str) -> str:
    pattern = lake.uri(f"{directory}/{pattern}")
    return (
        f"read_parquet({_literal(pattern)}, hive_partitioning = true, union_by_name = true, "
        "hive_types = {'cluster': VARCHAR, 'session': VARCHAR, 'date': DATE})"
    )


def _hive_source(pattern: str, partitions: tuple[str, ...]) -> str:
    types = ", ".join(f"'{name}': VARCHAR" for name in partitions)
    return (
        f"read_parquet({_literal(pattern)}, hive_partitioning = true, union_by_name = true, "
        f"hive_types = {{{types}}})"
    )


def _empty(schema: pa.Schema, partition_columns: tuple[str, ...]) -> pa.Table:
    types = {"cluster": pa.string(), "session": pa.string(), "date": pa.date32()}
    partition = [pa.field(name, types[name]) for name in partition_columns]
    return pa.schema([*partition, *schema]).empty_table()


def _define_source(
    con: duckdb.DuckDBPyConnection, name: str, present: bool, source: str, empty: pa.Table
) -> str:
    """The parquet files, or a real empty table when there are none yet (so that every
    cursor of the connection sees it)."""
    if present:
        return source
    con.register("_empty", empty)
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _empty")
    con.unregister("_empty")
    return name


def connect(
    lake: Lake,
    database: str = ":memory:",
    *,
    only: SessionRef | None = None,
    config: dict[str, Any] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with every lake view defined; `only` restricts them to one
    session's own paths, so its cost does not grow with the lake."""
    con = duckdb.connect(database, config=config or {})
    if not lake.is_local:
        con.register_filesystem(lake.fs)
    define_views(con, lake, only)
    return con


def define_views(
    con: duckdb.DuckDBPyConnection, lake: Lake, only: SessionRef | None = None
) -> None:
    statuses = exp.Array(expressions=[exp.Literal.string(s) for s in TASK_STATUS])
    con.execute(
        f"CREATE OR REPLACE MACRO task_status_rank(s) AS list_position({statuses.sql('duckdb')}, s)"
    )
    # Entity views show microsecond TIMESTAMPTZ (DuckDB's functions all take it),
    # truncated rather than rounded so that milliseconds floor exactly as Ray's do.
    con.execute(
        "CREATE OR REPLACE MACRO to_us(t) AS to_timestamp(0) + to_microseconds(epoch_ns(t) // 1000)"
    )
    # Ray's state API reads a task's times as a double of nanoseconds (`int(ns) // 1e6`
    # in protobuf_to_task_state_dict), which rounds them to 256 ns today; the tasks view
    # rounds them the same way, so that its milliseconds are the ones Ray prints.
    con.execute(
        "CREATE OR REPLACE MACRO ray_task_us(t) AS "
        "to_timestamp(0) + to_microseconds(CAST(epoch_ns(t)::DOUBLE AS BIGINT) // 1000)"
    )
    for table, schema in SCHEMAS.items():
        directory, pattern = _events_dir(table, only)
        source = _define_source(
            con,
            f"_empty_{table}",
            lake.exists(directory),
            _parquet_source(lake, directory, pattern),
            _empty(schema, ("cluster", "session", "date")),
        )
        con.execute(_event_view_sql(table, source))
    for files in _SESSION_FILES:
        directory, pattern = _session_files_dir(files, only)
        source = _define_source(
            con,
            f"_empty_{files.view}",
            lake.exists(directory),
            _hive_source(lake.uri(f"{directory}/{pattern}"), ("cluster", "session")),
            _empty(files.schema, ("cluster", "session")),
        )
        con.execute(_partitioned_view_sql(files.view, source))
    for view in ENTITY_VIEWS:
        con.execute((VIEWS_DIR / f"{view}.sql").read_text())
