"""raylake's own SQL API over every session: `/api/lake/sql` and `/api/lake/tables`.

`POST /api/lake/sql` takes `{"sql", "limit", "timeout_ms", "format", "dialect"}`;
`GET /api/lake/sql?sql=...` takes the same as query parameters, so a query is a link.
The query is checked read-only before it runs (query/console.py) and runs on a cursor of
the server's one locked-down DuckDB over the lake-wide views. `format=json` answers
Ray's envelope around `{columns, rows, row_count, truncated, limit, elapsed_ms, sql}`;
`arrow` (an IPC stream), `csv` and `parquet` answer the rows as a download, with the row
count and the truncation in `X-Raylake-*` headers. Errors are Ray's envelope with a code
(`bad_request` or one of query.console.CODES): 400, or 500 if the lake cannot be read.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import duckdb
import msgspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlglot
from litestar import Litestar, Request, Response, get, post

from query.console import ROW_CAP, QueryError, Result, connect_console, execute
from query.engine import ENTITY_VIEWS, view_names
from query.view_docs import describe_column, describe_view
from web.reply import ApiError, rest_response

DEFAULT_LIMIT = 1000  # rows shown; the download formats default to ROW_CAP
DEFAULT_TIMEOUT_MS = 10_000
MAX_TIMEOUT_MS = 600_000
FORMATS = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}
OPTIONS = ("sql", "limit", "timeout_ms", "format", "dialect")
# Sums are HUGEINT and DECIMAL (Python's Decimal): numbers in JSON, as users expect.
_JSON = msgspec.json.Encoder(decimal_format="number")


@dataclass(frozen=True)
class SqlRequest:
    sql: str
    limit: int
    timeout_ms: int
    format: str
    dialect: str


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def _integer(options: Mapping[str, Any], name: str, default: int, high: int) -> int:
    value = options.get(name, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise _bad(f"{name}={value!r}: expected a whole number from 1 to {high}")
    return value


def sql_request(options: Mapping[str, Any]) -> SqlRequest:
    """The request's options (JSON body or query parameters), checked."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise _bad(f"unknown option {', '.join(unknown)}; the options are {', '.join(OPTIONS)}")
    sql = options.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise _bad("`sql` is required: the query to run")
    fmt = options.get("format", "json")
    if fmt not in FORMATS:
        raise _bad(f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
    dialect = options.get("dialect", "duckdb")
    try:
        sqlglot.Dialect.get_or_raise(dialect)
    except (ValueError, TypeError, AttributeError):
        raise _bad(f"dialect={dialect!r} is not a SQL dialect sqlglot reads") from None
    default_limit = DEFAULT_LIMIT if fmt == "json" else ROW_CAP
    return SqlRequest(
        sql=sql,
        limit=_integer(options, "limit", default_limit, ROW_CAP),
        timeout_ms=_integer(options, "timeout_ms", DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS),
        format=fmt,
        dialect=dialect,
    )


# The answer: pure functions of the result.


def json_answer(result: Result, limit: int) -> dict[str, Any]:
    table = result.table
    columns = [column.to_pylist() for column in table.columns]
    return {
        "columns": [
            {"name": name, "type": kind}
            for name, kind in zip(table.column_names, result.types, strict=True)
        ],
        "rows": [list(row) for row in zip(*columns, strict=True)],
        "row_count": table.num_rows,
        "truncated": result.truncated,
        "limit": limit,
        "elapsed_ms": round(result.elapsed * 1000, 3),
        "sql": result.sql,
    }


def _flat(table: pa.Table) -> pa.Table:
    """CSV holds no lists, maps or structs: those cells become JSON text."""
    for i, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            text = [
                None if v is None else msgspec.json.encode(v).decode()
                for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, field.name, pa.array(text, pa.string()))
    return table


def file_bytes(table: pa.Table, fmt: str) -> bytes:
    sink = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(_flat(table), sink)
    elif fmt == "arrow":
        with pa.ipc.new_stream(sink, table.schema) as stream:
            stream.write_table(table)
    else:
        pq.write_table(table, sink)
    return sink.getvalue()


# The server's one DuckDB over the lake.


class _Console:
    """The locked-down connection, built on first use and again when the catalog lists
    other sessions (a view over an event table no session had written is an empty
    table, so a new session may bring tables the old connection lacks)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._sessions: tuple[Any, ...] = ()

    def connection(self, app: Litestar) -> duckdb.DuckDBPyConnection:
        listed = tuple(info.ref for info in app.state.sessions.all())
        with self._guard:
            if self._connection is None or listed != self._sessions:
                config = app.state.config
                self._connection = connect_console(app.state.lake, memory_limit=config.memory_limit)
                self._sessions = listed
            return self._connection


_CONSOLES_GUARD = threading.Lock()


def _console(app: Litestar) -> duckdb.DuckDBPyConnection:
    with _CONSOLES_GUARD:
        if "lake_console" not in app.state:
            app.state.lake_console = _Console()
        console: _Console = app.state.lake_console
    try:
        return console.connection(app)
    except (duckdb.Error, OSError) as exc:
        message = f"the lake's views could not be built: {exc}"
        raise ApiError(500, "lake_unreadable", message) from None


def _run(app: Litestar, request: SqlRequest) -> Result:
    try:
        return execute(
            _console(app),
            request.sql,
            dialect=request.dialect,
            limit=request.limit,
            timeout=request.timeout_ms / 1000,
        )
    except QueryError as exc:
        raise ApiError(400, exc.code, str(exc)) from None


def run_sql(
    app: Litestar,
    sql: str,
    *,
    limit: int = DEFAULT_LIMIT,
    dialect: str = "duckdb",
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
) -> dict[str, Any]:
    """The JSON answer of a query (the console page renders it); ApiError if refused."""
    request = sql_request(
        {"sql": sql, "limit": limit, "dialect": dialect, "timeout_ms": timeout_ms}
    )
    return json_answer(_run(app, request), request.limit)


def describe_tables(app: Litestar) -> list[dict[str, Any]]:
    """Every view (entity views first) with its columns, their DuckDB types and what
    each holds."""
    rows = (
        _console(app)
        .cursor()
        .execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = 'main' ORDER BY table_name, column_index"
        )
        .fetchall()
    )
    columns: dict[str, list[dict[str, str]]] = {}
    for view, column, kind in rows:
        columns.setdefault(view, []).append(
            {"name": column, "type": kind, "description": describe_column(view, column)}
        )
    order = [*ENTITY_VIEWS, *(v for v in view_names() if v not in ENTITY_VIEWS)]
    return [
        {"name": view, "description": describe_view(view), "columns": columns[view]}
        for view in order
    ]


def _answer(app: Litestar, request: SqlRequest) -> Response[bytes]:
    result = _run(app, request)
    if request.format == "json":
        envelope = {"result": True, "msg": "", "data": json_answer(result, request.limit)}
        return Response(_JSON.encode(envelope), media_type="application/json")
    headers = {
        "Content-Disposition": f'attachment; filename="raylake-query.{request.format}"',
        "X-Raylake-Row-Count": str(result.table.num_rows),
        "X-Raylake-Truncated": "true" if result.truncated else "false",
        "X-Raylake-Elapsed-Ms": f"{result.elapsed * 1000:.3f}",
    }
    return Response(
        file_bytes(result.table, request.format),
        media_type=FORMATS[request.format],
        headers=headers,
    )


@post("/api/lake/sql", status_code=200)
async def sql_post(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Run a read-only query: `{"sql", "limit", "timeout_ms", "format", "dialect"}`."""
    try:
        options = msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise _bad(f"the body is not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise _bad('the body must be a JSON object: {"sql": "SELECT ...", ...}')
    return await anyio.to_thread.run_sync(_answer, request.app, sql_request(options))


@get("/api/lake/sql", sync_to_thread=True)
def sql_get(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The same as POST, with the options as query parameters (a shareable link)."""
    return _answer(request.app, sql_request(dict(request.query_params.items())))


@get("/api/lake/tables", sync_to_thread=True)
def tables(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The views the SQL console reads, their columns and what each column holds."""
    return rest_response({"tables": describe_tables(request.app)})


ROUTES: list[Any] = [sql_post, sql_get, tables]
