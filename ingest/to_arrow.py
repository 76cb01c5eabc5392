"""Rows (from `normalize`) -> Arrow tables in the lake's schemas, column by column.

A table's rows arrive as `TableRows`: the columns every row of an event shares, once
per event, and the payload columns, once per row (a lifecycle event has a row per
transition, a profile event one per entry). The shared columns are expanded with one
Arrow `take`, and `seq` (a row's position in its event) is computed, not stored.

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

from lake.schemas import EVENT_COLUMNS, SCHEMAS, TIME

Row = tuple[Any, ...]

#: What an event's row tuple in `TableRows.events` holds, in order.
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
_SHARED = {name: i for i, name in enumerate(EVENT_FIELDS)}
_PAYLOAD_START = len(EVENT_COLUMNS)


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


_PAYLOAD_TIMES = {
    table: [
        (i - _PAYLOAD_START, f.name)
        for i, f in enumerate(SCHEMAS[table])
        if i >= _PAYLOAD_START and f.type == TIME
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
        for i, _ in _PAYLOAD_TIMES[table]
        for row in table_rows.rows
        if (value := row[i]).__class__ is str
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
        for i, name in _PAYLOAD_TIMES[table]:
            for r, row in enumerate(table_rows.rows):
                if _unparsable(row[i]):
                    owner, seq = table_rows.locate(r)
                    return BadTime(table, name, table_rows.events[owner][1], seq, row[i])
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
    shared = list(zip(*rows.events, strict=True))
    payload = list(zip(*rows.rows, strict=True))

    def column(index: int, field: pa.Field[Any]) -> pa.Array[Any]:
        if field.name == "ingest_id":
            return pa.array([ingest_id] * len(rows.rows), pa.string())
        if field.name == "seq":
            return seq
        if index < _PAYLOAD_START:
            values = shared[_SHARED[field.name]]
            array = _parse_times(values) if field.type == TIME else pa.array(values, field.type)
            return array if expand is None else array.take(expand)
        values = payload[index - _PAYLOAD_START]
        return _parse_times(values) if field.type == TIME else pa.array(values, field.type)

    data = pa.Table.from_arrays([column(i, f) for i, f in enumerate(schema)], schema=schema)
    sessions = pa.array(shared[_SHARED["session"]], pa.string())
    return _with_partition_columns(data, sessions if expand is None else sessions.take(expand))


def with_ingest_id(data: pa.Table, ingest_id: str) -> pa.Table:
    """The same rows, stamped with another ingest id."""
    index = data.schema.get_field_index("ingest_id")
    return data.set_column(index, "ingest_id", pa.array([ingest_id] * data.num_rows, pa.string()))


def _with_partition_columns(data: pa.Table, sessions: pa.Array[Any]) -> pa.Table:
    # The UTC day; a date32 cast prints as YYYY-MM-DD, far cheaper than strftime.
    dates = pc.cast(pc.cast(data["event_time"], pa.date32()), pa.string())
    return data.add_column(0, "date", dates).add_column(0, "session", sessions)
