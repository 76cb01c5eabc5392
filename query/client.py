"""A Python client of a lake: the same views as the SQL console, as polars DataFrames
(or Arrow tables), from a notebook or a script.

    lake = open_lake("s3://ray-history")            # or a local path, or a server URL
    lake.sessions()                                  # the catalog, newest first
    lake.tasks(session="session_...", cluster="demo")
    lake.sql("SELECT func_or_class_name, count(*) FROM tasks GROUP BY ALL")
    lake.log("session_...", node_id, "worker-...-20593.err")

A local directory or an object store URL is read in process: DuckDB over the lake's
views (`query.engine.connect`), each query checked read-only (`query.console`). An
`http(s)://` URL is a running `raylake serve`: queries go to its `POST /api/lake/sql`
(answered as an Arrow IPC stream), the catalog to `GET /clusters`, logs to Ray's
`GET /api/v0/logs/file`; `token=` is sent as `Authorization: Bearer`. Both give the
same frames for the same query.

Exceptions:

    QueryError      (query.console) the query was refused or failed
    LookupError     no such session or log file
    PermissionError the server wants a token (`token=`), or another one

Warnings:

    TruncatedResult a query had more rows than ROW_CAP and only those came back
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from typing import Any, Literal, Protocol, overload

import httpx
import polars as pl
import pyarrow as pa
from sqlglot import exp

from lake.layout import ClusterKey
from lake.store import Lake
from query.console import ROW_CAP, QueryError, execute
from query.engine import connect
from query.logs import open_log
from query.sessions import list_sessions

#: The views the convenience methods read: the time column `since` filters on,
#: and the key the rows are sorted by (so that every backend gives the same order).
ENTITIES: dict[str, tuple[str, str]] = {
    "tasks": ("creation_time", "task_id, attempt_number"),
    "actors": ("start_time", "actor_id"),
    "jobs": ("start_time", "job_id"),
    "nodes": ("start_time", "node_id"),
    "workers": ("start_time", "worker_id"),
    "log_files": ("modified_time", "node_id, path"),
}

_SESSION_COLUMNS: dict[str, pa.DataType] = {
    "namespace": pa.string(),
    "cluster": pa.string(),
    "session": pa.string(),
    "start_time": pa.timestamp("ms", "UTC"),  # the precision GET /clusters gives
    "last_event_time": pa.timestamp("us", "UTC"),
    "ray_version": pa.string(),
    "nodes": pa.int64(),
    "ended": pa.bool_(),
}
SESSIONS_SCHEMA = pa.schema(_SESSION_COLUMNS)


class TruncatedResult(UserWarning):
    pass


class _Backend(Protocol):
    def sql(self, query: str, dialect: str, limit: int) -> tuple[pa.Table, bool]:
        """At most `limit` rows, and whether the query had more."""
        ...

    def sessions(self) -> list[dict[str, Any]]:
        """One dict per session, newest first, with SESSIONS_SCHEMA's fields."""
        ...

    def log(self, cluster: ClusterKey, session: str, node_id: str, path: str) -> bytes: ...

    def close(self) -> None: ...


class _InProcess:
    """A local or object-store lake, read by DuckDB in this process."""

    def __init__(self, url: str, endpoint_url: str | None, timeout: float) -> None:
        self.lake = Lake(url, endpoint_url=endpoint_url)
        self.con = connect(self.lake)
        self.timeout = timeout

    def sql(self, query: str, dialect: str, limit: int) -> tuple[pa.Table, bool]:
        result = execute(self.con, query, dialect=dialect, limit=limit, timeout=self.timeout)
        return result.table, result.truncated

    def sessions(self) -> list[dict[str, Any]]:
        return [
            {
                "namespace": s.ref.cluster.namespace,
                "cluster": s.ref.cluster.name,
                "session": s.ref.session,
                "start_time": s.start_time,
                "last_event_time": _time(s.last_event_time),
                "ray_version": s.ray_version,
                "nodes": len(s.entries),
                "ended": s.ended,
            }
            for s in list_sessions(self.lake)
        ]

    def log(self, cluster: ClusterKey, session: str, node_id: str, path: str) -> bytes:
        found = (
            self.con.cursor()
            .execute(
                "SELECT inode FROM log_files WHERE namespace = ? AND cluster = ? "
                "AND session = ? AND node_id = ? AND path = ?",
                [cluster.namespace, cluster.name, session, node_id, path],
            )
            .fetchall()
        )
        if not found:
            raise LookupError(f"no log file {path!r} of node {node_id} in {session}")
        log = open_log(self.lake, cluster, session, node_id, path, found[0][0])
        return log.read(0, log.size)

    def close(self) -> None:
        self.con.close()


class _Server:
    """A running `raylake serve`, over HTTP."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # The server stops a query at `timeout`; its answer may take a little longer.
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout + 10)
        self.timeout = timeout

    def sql(self, query: str, dialect: str, limit: int) -> tuple[pa.Table, bool]:
        body = {
            "sql": query,
            "dialect": dialect,
            "limit": limit,
            "timeout_ms": int(self.timeout * 1000),
            "format": "arrow",
        }
        reply = _checked(self.http.post("/api/lake/sql", json=body))
        truncated = reply.headers.get("X-Raylake-Truncated") == "true"
        return pa.ipc.open_stream(reply.content).read_all(), truncated

    def sessions(self) -> list[dict[str, Any]]:
        reply = _checked(self.http.get("/clusters"))
        return [
            {
                "namespace": c["namespace"],
                "cluster": c["name"],
                "session": c["sessionName"],
                "start_time": dt.datetime.fromtimestamp(c["createTimeStamp"] / 1000, dt.UTC),
                "last_event_time": _time(c["lastEventTime"]),
                "ray_version": c["rayVersion"],
                "nodes": c["nodes"],
                "ended": c["ended"],
            }
            for c in reply.json()
        ]

    def log(self, cluster: ClusterKey, session: str, node_id: str, path: str) -> bytes:
        params = {
            "session": f"{cluster.namespace}/{cluster.name}/{session}",
            "node_id": node_id,
            "filename": path,
            "lines": "-1",  # the whole file (Ray's default is the last 1000 lines)
        }
        return _checked(self.http.get("/api/v0/logs/file", params=params)).content

    def close(self) -> None:
        self.http.close()


#: The server's refusals, as the errors this module raises in process.
_REFUSALS: dict[int, type[Exception]] = {
    401: PermissionError,
    403: PermissionError,
    404: LookupError,
}


def _checked(reply: httpx.Response) -> httpx.Response:
    """The reply, if it succeeded; a refusal raises with the server's message; anything
    else (a server fault) raises `httpx.HTTPStatusError` with it."""
    if reply.is_success:
        return reply
    try:
        body = reply.json()
    except ValueError:
        body = None  # Ray's log routes answer errors as plain text
    if not isinstance(body, dict):
        body = {"msg": reply.text}
    message = str(body.get("msg") or reply.text)
    if reply.status_code == 400:
        raise QueryError(message, str((body.get("data") or {}).get("error", "bad_request")))
    if reply.status_code in _REFUSALS:
        raise _REFUSALS[reply.status_code](message)
    raise httpx.HTTPStatusError(
        f"HTTP {reply.status_code} from {reply.url}: {message}",
        request=reply.request,
        response=reply,
    )


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _utc_type(kind: pa.DataType) -> pa.DataType:
    """`kind` with every zoned timestamp in it (also inside lists, structs and maps) in
    UTC: DuckDB labels them with its process's time zone."""
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        return pa.timestamp(kind.unit, "UTC")
    if pa.types.is_map(kind):
        return pa.map_(kind.key_type, _utc_type(kind.item_type))
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_utc_type(kind.value_type)))
    if pa.types.is_large_list(kind):
        return pa.large_list(kind.value_field.with_type(_utc_type(kind.value_type)))
    if pa.types.is_struct(kind):
        return pa.struct([field.with_type(_utc_type(field.type)) for field in kind])
    return kind


def _utc(table: pa.Table) -> pa.Table:
    fields = [field.with_type(_utc_type(field.type)) for field in table.schema]
    return table.cast(pa.schema(fields))


def _literal(value: str) -> str:
    return exp.Literal.string(value).sql("duckdb")


def _moment(since: dt.datetime | str) -> dt.datetime:
    moment = since if isinstance(since, dt.datetime) else dt.datetime.fromisoformat(since)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def entity_sql(
    view: str,
    *,
    session: str | None = None,
    namespace: str | None = None,
    cluster: str | None = None,
    since: dt.datetime | str | None = None,
) -> str:
    """The query behind `lake.<view>(...)`: the view's rows, filtered, in key order."""
    if view not in ENTITIES:
        raise ValueError(f"unknown entity view {view!r}; one of {', '.join(ENTITIES)}")
    time_column, key = ENTITIES[view]
    where = [
        f"{column} = {_literal(value)}"
        for column, value in (("namespace", namespace), ("cluster", cluster), ("session", session))
        if value is not None
    ]
    if since is not None:
        where.append(f"{time_column} >= {_literal(_moment(since).isoformat())}::TIMESTAMPTZ")
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT * FROM {view}{condition} ORDER BY namespace, cluster, session, {key}"


class EntityView:
    """One entity view of the lake, filtered: `lake.tasks(session=..., cluster=...)`.
    `since` keeps the rows whose time (tasks: creation, log files: modification,
    others: start) is at or after it; `arrow=True` gives an Arrow table instead of a
    polars DataFrame."""

    def __init__(self, client: LakeClient, view: str) -> None:
        self.client = client
        self.view = view

    @overload
    def __call__(
        self,
        session: str | None = None,
        *,
        namespace: str | None = None,
        cluster: str | None = None,
        since: dt.datetime | str | None = None,
        arrow: Literal[False] = False,
    ) -> pl.DataFrame: ...

    @overload
    def __call__(
        self,
        session: str | None = None,
        *,
        namespace: str | None = None,
        cluster: str | None = None,
        since: dt.datetime | str | None = None,
        arrow: Literal[True],
    ) -> pa.Table: ...

    def __call__(
        self,
        session: str | None = None,
        *,
        namespace: str | None = None,
        cluster: str | None = None,
        since: dt.datetime | str | None = None,
        arrow: bool = False,
    ) -> pl.DataFrame | pa.Table:
        query = entity_sql(
            self.view, session=session, namespace=namespace, cluster=cluster, since=since
        )
        table = self.client.sql_arrow(query)
        return table if arrow else _frame(table)


def _duration(interval: pa.ChunkedArray[Any], name: str) -> pa.Array[Any]:
    """DuckDB's INTERVAL (months, days, nanoseconds), which polars cannot read, as a
    duration: exact for the days and nanoseconds a difference of times has."""
    values = interval.to_pylist()
    if any(v is not None and v.months for v in values):
        raise ValueError(
            f"column {name!r} holds calendar months, which a duration cannot: compute a "
            "number in SQL (e.g. date_diff('ms', a, b)), or use sql_arrow"
        )
    nanoseconds = [None if v is None else v.days * 86_400 * 10**9 + v.nanoseconds for v in values]
    return pa.array(nanoseconds, pa.duration("ns"))


def _frame(table: pa.Table) -> pl.DataFrame:
    for i, field in enumerate(table.schema):
        if pa.types.is_interval(field.type):
            table = table.set_column(i, field.name, _duration(table.column(i), field.name))
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # a Table always converts to a DataFrame
    return frame


class LakeClient:
    """The lake's views as DataFrames, whatever holds the lake (see `open_lake`). Use it
    in a `with` block, or `close()` it, to let go of its connection."""

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend
        self.tasks = EntityView(self, "tasks")
        self.actors = EntityView(self, "actors")
        self.jobs = EntityView(self, "jobs")
        self.nodes = EntityView(self, "nodes")
        self.workers = EntityView(self, "workers")
        self.log_files = EntityView(self, "log_files")

    def __enter__(self) -> LakeClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._backend.close()

    def sql_arrow(
        self, query: str, *, dialect: str = "duckdb", limit: int | None = None
    ) -> pa.Table:
        """A read-only query over the lake's views, in DuckDB's SQL or another dialect
        sqlglot reads (`trino`, `spark`, `postgres`, ...), as Arrow: its first `limit`
        rows, or all of them up to ROW_CAP (warning with TruncatedResult beyond)."""
        table, truncated = self._backend.sql(query, dialect, limit or ROW_CAP)
        if truncated and limit is None:
            warnings.warn(
                f"the query has more than {ROW_CAP:,} rows and only the first {ROW_CAP:,} "
                "came back: aggregate in SQL, or read the Parquet files directly "
                "(notebooks/03_beyond_one_machine.ipynb)",
                TruncatedResult,
                stacklevel=2,
            )
        return _utc(table)

    def sql(self, query: str, *, dialect: str = "duckdb", limit: int | None = None) -> pl.DataFrame:
        """`sql_arrow` as a polars DataFrame (an INTERVAL column becomes a duration)."""
        return _frame(self.sql_arrow(query, dialect=dialect, limit=limit))

    def sessions(self) -> pl.DataFrame:
        """The catalog: one row per session, newest first."""
        rows = self._backend.sessions()
        return _frame(pa.Table.from_pylist(rows, schema=SESSIONS_SCHEMA))

    def session_key(
        self, session: str, *, namespace: str | None = None, cluster: str | None = None
    ) -> ClusterKey:
        """The cluster holding `session` (a session name can repeat across clusters:
        then name the cluster)."""
        found = self.sessions().filter(pl.col("session") == session)
        if namespace is not None:
            found = found.filter(pl.col("namespace") == namespace)
        if cluster is not None:
            found = found.filter(pl.col("cluster") == cluster)
        keys: Sequence[tuple[str, str]] = found.select("namespace", "cluster").rows()
        if len(keys) != 1:
            where = ", ".join(f"{ns}.{name}" for ns, name in keys)
            problem = f"is in several clusters ({where}): give cluster=" if keys else "not found"
            raise LookupError(f"session {session!r} {problem}")
        return ClusterKey(*keys[0])

    def log(
        self,
        session: str,
        node_id: str,
        path: str,
        *,
        namespace: str | None = None,
        cluster: str | None = None,
    ) -> str:
        """A stored log file, whole: `path` relative to the node's session `logs/` (as
        the `log_files` view names it), or a path on the node as tasks report it."""
        _, marker, relative = path.partition(f"/{session}/logs/")
        key = self.session_key(session, namespace=namespace, cluster=cluster)
        data = self._backend.log(key, session, node_id, relative if marker else path)
        return data.decode(errors="replace")


def open_lake(
    url: str,
    *,
    token: str | None = None,
    s3_endpoint_url: str | None = None,
    timeout: float = 60.0,
) -> LakeClient:
    """A client of the lake at `url`: a local directory, an object store URL
    (`s3://bucket/prefix`, with AWS's usual settings or `s3_endpoint_url`), or a running
    `raylake serve` (`http(s)://host:port`, with its `token` if it needs one). A query
    is stopped after `timeout` seconds (a server allows at most 600)."""
    if url.startswith(("http://", "https://")):
        return LakeClient(_Server(url, token, timeout))
    if token is not None:
        raise ValueError("token= is for a server URL (http:// or https://)")
    return LakeClient(_InProcess(url, s3_endpoint_url, timeout))
