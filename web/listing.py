"""Ray's list-API options (`limit`, `detail`, `exclude_driver`, filters) as SQL over a
session's state, with Ray's semantics but none of its caps.

Ray (`ray/dashboard/state_api_utils.py`) reads the options from the query string,
filters the rows it fetched (string values compare case-insensitively; int and bool
columns convert the value first) and then cuts at `limit`, at most 10,000. raylake
applies the same filters in SQL before the limit, has no maximum, and adds `offset`
to page through every row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from litestar import Request, Response

from query.state import SessionState
from web.reply import json_response

DEFAULT_LIMIT = 100  # Ray's DEFAULT_LIMIT


class ListRequestError(ValueError):
    """An option Ray would refuse; answered in Ray's 400 shape."""


@dataclass(frozen=True)
class Column:
    """A field of a Ray state schema that can be filtered on, as the state table holds it."""

    kind: type  # str, int, float or bool, as Ray's schema types the field
    sql: str  # the expression over the state table that gives the field's value
    null_differs: bool = True
    """Whether a row without a value matches `!=`: Ray keeps unset task fields as None
    (None != value), but leaves unset fields out of actors, workers, ... (no match)."""


@dataclass(frozen=True)
class ListOptions:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    detail: bool = False
    exclude_driver: bool = True
    filters: tuple[tuple[str, str, str], ...] = ()


def to_bool(value: str) -> bool:
    """Ray's convert_string_to_type(value, bool)."""
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ListRequestError(f"Failed to convert a value {value} of type {type(value)} to {bool}")


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ListRequestError(f"{name}={value!r}: expected an integer") from None


def list_options(request: Request[Any, Any, Any]) -> ListOptions:
    query = request.query_params
    keys = query.getall("filter_keys", [])
    predicates = query.getall("filter_predicates", [])
    values = query.getall("filter_values", [])
    if not len(keys) == len(predicates) == len(values):
        raise ListRequestError(
            "filter_keys, filter_predicates and filter_values must be given the same "
            f"number of times (got {len(keys)}, {len(predicates)}, {len(values)})"
        )
    for predicate in predicates:
        if predicate not in ("=", "!="):
            raise ListRequestError(
                f"Unsupported filter predicate {predicate} is given. Available predicates: =, !=."
            )
    limit = _int("limit", query.get("limit") or str(DEFAULT_LIMIT))
    offset = _int("offset", query.get("offset") or "0")
    if limit < 0 or offset < 0:
        raise ListRequestError("limit and offset must not be negative")
    return ListOptions(
        limit=limit,
        offset=offset,
        detail=to_bool(query.get("detail") or "false"),
        exclude_driver=to_bool(query.get("exclude_driver") or "true"),
        filters=tuple(zip(keys, predicates, values, strict=True)),
    )


def _typed(name: str, kind: type, value: str) -> Any:
    """The filter value converted as Ray converts it for the column's type."""
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise ListRequestError(
                f"Invalid filter `--filter {name} {value}` for a int type column. "
                f"Please provide an integer filter `--filter {name} [int]`"
            ) from None
    if kind is float:
        try:
            return float(value)
        except ValueError:
            raise ListRequestError(
                f"Invalid filter `--filter {name} {value}` for a float type column. "
                f"Please provide an integer filter `--filter {name} [float]`"
            ) from None
    if kind is bool:
        try:
            return to_bool(value)
        except ListRequestError:
            raise ListRequestError(
                f"Invalid filter `--filter {name} {value}` for a boolean type column. "
                f"Please provide `--filter {name} [True|true|1]` for True or "
                f"`--filter {name} [False|false|0]` for False."
            ) from None
    return value


def filter_sql(
    filters: Sequence[tuple[str, str, str]], columns: Mapping[str, Column]
) -> tuple[list[str], list[Any]]:
    """SQL conditions and their parameters for Ray's filters (all of them must hold)."""
    conditions: list[str] = []
    params: list[Any] = []
    for key, predicate, value in filters:
        name = key.lower()
        column = columns.get(name)
        if column is None:
            raise ListRequestError(
                f"The given filter column {name} is not supported. "
                "Enter filters with –-filter key=value or –-filter key!=value "  # noqa: RUF001 (Ray's text)
                f"Supported filter columns: {set(columns)}"
            )
        typed = _typed(name, column.kind, value)
        value_sql = f"lower({column.sql})" if column.kind is str else column.sql
        param_sql = "lower(?)" if column.kind is str else "?"
        if predicate == "=":
            conditions.append(f"{value_sql} = {param_sql}")
        elif column.null_differs:
            conditions.append(f"{value_sql} IS DISTINCT FROM {param_sql}")
        else:
            conditions.append(f"{value_sql} <> {param_sql}")
        params.append(typed)
    return conditions, params


@dataclass(frozen=True)
class Page:
    total: int  # rows of the entity in the session (Ray: total, num_after_truncation)
    num_filtered: int  # rows the filters keep
    rows: pa.Table  # the page: at most `limit` of them, from `offset`


def list_page(
    state: SessionState,
    table: str,
    select: str,
    options: ListOptions,
    columns: Mapping[str, Column],
    *,
    base: Sequence[str] = (),
) -> Page:
    """One page of `SELECT <select> FROM <table>`, after `base` conditions (what Ray's
    data source leaves out, e.g. driver tasks) and the request's filters."""
    conditions, params = filter_sql(options.filters, columns)
    base_where = " AND ".join(base) or "true"
    where = " AND ".join([*base, *conditions]) or "true"
    counts = state.query(
        f"SELECT count(*) FILTER ({base_where}) AS total, "
        f"count(*) FILTER ({where}) AS filtered FROM {table}",
        params,
    ).to_pylist()[0]
    rows = state.query(
        f"SELECT {select} FROM {table} WHERE {where} LIMIT ? OFFSET ?",
        [*params, options.limit, options.offset],
    )
    return Page(int(counts["total"]), int(counts["filtered"]), rows)


def list_reply(page: Page, result: list[dict[str, Any]]) -> Response[bytes]:
    """Ray's ListApiResponse in its envelope."""
    return json_response(
        {
            "result": True,
            "msg": "",
            "data": {
                "result": {
                    "total": page.total,
                    "num_after_truncation": page.total,
                    "num_filtered": page.num_filtered,
                    "result": result,
                    "partial_failure_warning": "",
                    "warnings": None,
                }
            },
        }
    )


def ray_bad_request(message: str) -> Response[bytes]:
    """Ray's answer to an option it refuses (HTTP 400, `data.result` null)."""
    return json_response(
        {"result": False, "msg": message, "data": {"result": None}}, status_code=400
    )
