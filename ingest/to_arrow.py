"""Rows (from `normalize`) -> Arrow tables in the lake's schemas, column by column.

Time columns arrive as RFC 3339 strings (Ray's Timestamp) or as integer nanoseconds
(profile entries, worker times) and are parsed here in one vectorized cast per column.
Each table gains two leading partition columns, `session` and `date` (the UTC day of the
event's own timestamp), which the lake writer turns into the partition path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lake.schemas import SCHEMAS, TIME

Row = tuple[Any, ...]

# Row layout: the session name, then the table's schema columns in order, less
# `ingest_id` (one value per batch, added by `to_table`).
_INGEST_ID = "ingest_id"


def _row_columns(table: str) -> list[pa.Field[Any]]:
    return [f for f in SCHEMAS[table] if f.name != _INGEST_ID]


@dataclass(frozen=True)
class BadTime:
    table: str
    column: str
    row: Row
    value: object


_TIME_COLUMNS = {
    table: [(1 + i, f.name) for i, f in enumerate(_row_columns(table)) if f.type == TIME]
    for table in SCHEMAS
}


def _parse_times(values: Sequence[Any]) -> pa.Array[Any]:
    strings = [v for v in values if v is not None]
    if strings and isinstance(strings[0], str):
        return pa.array(values, pa.string()).cast(TIME)
    return pa.array(values, pa.int64()).cast(TIME)


def find_bad_time(rows: dict[str, list[Row]]) -> BadTime | None:
    """The first time value Arrow cannot parse, if any.

    One cast over every time string of the rows (a body's worth) keeps the check cheap;
    only a failure looks further, column by column.
    """
    strings = [
        value
        for table, table_rows in rows.items()
        for i, _ in _TIME_COLUMNS[table]
        for row in table_rows
        if (value := row[i]).__class__ is str
    ]
    try:
        pa.array(strings, pa.string()).cast(TIME)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    else:
        return None
    for table, table_rows in rows.items():
        for i, name in _TIME_COLUMNS[table]:
            for row in table_rows:
                try:
                    _parse_times([row[i]])
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    return BadTime(table, name, row, row[i])
    return None


def to_table(table: str, rows: Sequence[Row], ingest_id: str) -> pa.Table:
    """One Arrow table, with `session` and `date` columns before the schema's."""
    schema = SCHEMAS[table]
    if not rows:
        return _with_partition_columns(schema.empty_table(), pa.array([], pa.string()))
    columns = iter(zip(*rows, strict=True))
    sessions = pa.array(next(columns), pa.string())
    arrays: list[pa.Array[Any]] = []
    for field in schema:
        if field.name == _INGEST_ID:
            arrays.append(pa.array([ingest_id] * len(rows), pa.string()))
            continue
        values = next(columns)
        arrays.append(
            _parse_times(values) if field.type == TIME else pa.array(values, type=field.type)
        )
    data = pa.Table.from_arrays(arrays, schema=schema)
    return _with_partition_columns(data, sessions)


def _with_partition_columns(data: pa.Table, sessions: pa.Array[Any]) -> pa.Table:
    # The UTC day; a date32 cast prints as YYYY-MM-DD, far cheaper than strftime.
    dates = pc.cast(pc.cast(data["event_time"], pa.date32()), pa.string())
    return data.add_column(0, "date", dates).add_column(0, "session", sessions)
