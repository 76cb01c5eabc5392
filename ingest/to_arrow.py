"""Rows (from `normalize`) -> Arrow tables in the lake's schemas, column by column.

A table's rows arrive as `TableRows`: per event, the common event columns and the
payload columns the event has once (`columns.event_columns`); per row, the columns that
vary within an event (`columns.row_columns`: a lifecycle event has a row per state
transition, a profile event one per entry). Event values are converted once per event
and expanded with one Arrow `take`; `seq` (a row's position in its event) is computed.

Time columns arrive as RFC 3339 strings (Ray's Timestamp) or as integer nanoseconds
(profile entries, worker times) and are parsed in one vectorized cast per column. Each
table gains two leading partition columns, `session` and `date` (the UTC day of the
event's own timestamp), which the lake writer turns into the partition path.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.columns import event_columns, row_columns
from lake.schemas import SCHEMAS, TIME

Row = tuple[Any, ...]

#: What an event's tuple in `TableRows.events` starts with, before its event columns.
EVENT_FIELDS = (
    "session",
    "event_id",
    "event_time",
    "emitter_node_id",
    "source_type",
    "severity",
    "message",
)
_EVENT_TIME = EVENT_FIELDS.index("event_time")


@dataclass(frozen=True)
class _Source:
    """Where a schema column's values are: in the event tuples or the row tuples."""

    per_row: bool
    index: int


def _sources(table: str) -> dict[str, _Source]:
    sources = {name: _Source(False, i) for i, name in enumerate(EVENT_FIELDS)}
    for i, name in enumerate(event_columns(table)):
        sources[name] = _Source(False, len(EVENT_FIELDS) + i)
    for i, name in enumerate(row_columns(table)):
        sources[name] = _Source(True, i)
    return sources


_SOURCES = {table: _sources(table) for table in SCHEMAS}


@dataclass
class TableRows:
    """One table's rows: shared columns once per event, payload columns per row."""

    events: list[Row] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    def add(self, event: Row, rows: list[Row]) -> None:
        self.events.append(event)
        self.counts.append(len(rows))
        self.rows.extend(rows)

    def extend(self, other: TableRows) -> None:
        self.events.extend(other.events)
        self.counts.extend(other.counts)
        self.rows.extend(other.rows)

    def locate(self, row: int) -> tuple[int, int]:
        """(event index, seq) of a payload row."""
        ends = list(itertools.accumulate(self.counts))
        event = bisect.bisect_right(ends, row)
        return event, row - (ends[event] - self.counts[event])


@dataclass(frozen=True)
class BadTime:
    table: str
    column: str
    event_id: str
    seq: int
    value: object


# Time columns: (per row?, index in the tuple, name), the event's own time aside.
_TIMES = {
    table: [
        (source.per_row, source.index, f.name)
        for f in SCHEMAS[table]
        if f.type == TIME and f.name != "event_time"
        for source in [_SOURCES[table][f.name]]
    ]
    for table in SCHEMAS
}


def _parse_times(values: Sequence[Any]) -> pa.Array[Any]:
    strings = [v for v in values if v is not None]
    if strings and isinstance(strings[0], str):
        return pa.array(values, pa.string()).cast(TIME)
    return pa.array(values, pa.int64()).cast(TIME)


def _unparsable(value: object) -> bool:
    try:
        _parse_times([value])
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return True
    return False


def find_bad_time(rows: dict[str, TableRows]) -> BadTime | None:
    """The first time value Arrow cannot parse, if any.

    One cast over every time string of the rows (a body's worth) keeps the check cheap;
    only a failure looks further.
    """
    strings = [event[_EVENT_TIME] for table_rows in rows.values() for event in table_rows.events]
    strings += [
        value
        for table, table_rows in rows.items()
        for per_row, i, _ in _TIMES[table]
        for values in (table_rows.rows if per_row else table_rows.events)
        if (value := values[i]).__class__ is str
    ]
    try:
        pa.array(strings, pa.string()).cast(TIME)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    else:
        return None
    for table, table_rows in rows.items():
        for event in table_rows.events:
            if _unparsable(event[_EVENT_TIME]):
                return BadTime(table, "event_time", event[1], 0, event[_EVENT_TIME])
        for per_row, i, name in _TIMES[table]:
            for r, values in enumerate(table_rows.rows if per_row else table_rows.events):
                if _unparsable(values[i]):
                    owner, seq = table_rows.locate(r) if per_row else (r, 0)
                    return BadTime(table, name, table_rows.events[owner][1], seq, values[i])
    return None


def to_table(table: str, rows: TableRows, ingest_id: str) -> pa.Table:
    """One Arrow table, with `session` and `date` columns before the schema's."""
    schema = SCHEMAS[table]
    if not rows.rows:
        return _with_partition_columns(schema.empty_table(), pa.array([], pa.string()))
    counts = np.asarray(rows.counts, dtype=np.int64)
    # The event of each row; None when every event has one row and nothing needs expanding.
    expand = None if (counts == 1).all() else np.repeat(np.arange(len(counts)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    seq = pa.array(np.arange(len(rows.rows)) - starts, pa.int32())
    per_event = list(zip(*rows.events, strict=True))
    per_row = list(zip(*rows.rows, strict=True))
    sources = _SOURCES[table]

    def convert(values: Sequence[Any], field: pa.Field[Any]) -> pa.Array[Any]:
        return _parse_times(values) if field.type == TIME else pa.array(values, field.type)

    def column(field: pa.Field[Any]) -> pa.Array[Any]:
        if field.name == "ingest_id":
            return pa.array([ingest_id] * len(rows.rows), pa.string())
        if field.name == "seq":
            return seq
        source = sources[field.name]
        if source.per_row:
            return convert(per_row[source.index], field)
        array = convert(per_event[source.index], field)
        return array if expand is None else array.take(expand)

    data = pa.Table.from_arrays([column(f) for f in schema], schema=schema)
    sessions = pa.array(per_event[0], pa.string())
    return _with_partition_columns(data, sessions if expand is None else sessions.take(expand))


def with_ingest_id(data: pa.Table, ingest_id: str) -> pa.Table:
    """The same rows, stamped with another ingest id."""
    index = data.schema.get_field_index("ingest_id")
    return data.set_column(index, "ingest_id", pa.array([ingest_id] * data.num_rows, pa.string()))


def _with_partition_columns(data: pa.Table, sessions: pa.Array[Any]) -> pa.Table:
    # The UTC day; a date32 cast prints as YYYY-MM-DD, far cheaper than strftime.
    dates = pc.cast(pc.cast(data["event_time"], pa.date32()), pa.string())
    return data.add_column(0, "date", dates).add_column(0, "session", sessions)
