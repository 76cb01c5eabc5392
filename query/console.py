"""Read-only SQL over the lake's views.

A query is parsed by sqlglot before DuckDB sees it: exactly one SELECT-shaped
statement, reading only the lake's views (an allowlist) and the names it defines
itself in `WITH`, calling no table functions. Anything else is refused, never run.

Exceptions:

    QueryError      the query was refused or failed; the message says why
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from query.engine import view_names

ROW_CAP = 1_000_000


class QueryError(ValueError):
    pass


_READ_ONLY = (exp.Select, exp.Union, exp.Intersect, exp.Except)


def check_query(sql: str, dialect: str = "duckdb") -> str:
    """The query in DuckDB's dialect, if it only reads the lake's views."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"could not parse the query: {exc}") from None
    if len(statements) != 1:
        raise QueryError(f"expected exactly one statement, found {len(statements)}")
    (query,) = statements
    if not isinstance(query, _READ_ONLY):
        raise QueryError(f"only SELECT queries are allowed, not {query.key.upper()}")
    defined = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    allowed = {name.lower() for name in view_names()} | defined
    for table in query.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or table.args.get("db"):
            raise QueryError(f"only the lake's views can be read, not {table.sql(dialect)}")
        if table.name.lower() not in allowed:
            known = ", ".join(sorted(view_names()))
            raise QueryError(f"unknown table {table.name!r}; the lake's views are: {known}")
    return query.sql("duckdb")


def run_query(
    con: duckdb.DuckDBPyConnection, sql: str, *, dialect: str = "duckdb", limit: int = ROW_CAP
) -> pa.Table:
    """Run a checked query; at most `limit` rows."""
    checked = check_query(sql, dialect)
    try:
        reader = con.cursor().sql(checked).to_arrow_reader(65_536)
        batches, rows = [], 0
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows >= limit:
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    return table.slice(0, limit)
