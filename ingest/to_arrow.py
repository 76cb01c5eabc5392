"""Filled column builders (`ingest.columnar`) -> Arrow tables in the lake's schemas.

A builder holds a value per row in each column (a lifecycle event has a row per state
transition, a profile event one per entry); `seq` (a row's position in its event) is
computed from the rows per event.

Times are nanoseconds already: Ray's RFC 3339 strings are read as they are taken
(`columnar.time_ns`), and the integer ones (profile entries, worker times) are cast,
which copies nothing. Each table gains two leading partition columns, `session` and
`date` (the UTC day of the event's own timestamp), which the lake writer turns into the
partition path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.columnar import TableBuilder
from lake.schemas import SCHEMAS


def to_table(table: str, builders: Sequence[TableBuilder], ingest_id: str) -> pa.Table:
    """One Arrow table of the rows of `builders` (all of `table`, at least one), with
    `session` and `date` columns before the schema's."""
    parts = [_one(table, builder, ingest_id) for builder in builders]
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def _one(table: str, builder: TableBuilder, ingest_id: str) -> pa.Table:
    schema = SCHEMAS[table]
    counts = builder.counts_array()
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    seq = pa.array(np.arange(builder.rows) - starts, pa.int32())
    columns = {c.name: c for c in [*builder.event_columns, *builder.row_columns]}

    def column(field: pa.Field[Any]) -> pa.Array[Any]:
        if field.name == "ingest_id":
            return pa.repeat(ingest_id, builder.rows)
        if field.name == "seq":
            return seq
        array = columns[field.name].give_array(field.type)
        if array.type != field.type:
            array = array.cast(field.type)  # integer nanoseconds to times
        return array

    data = pa.Table.from_arrays([column(f) for f in schema], schema=schema)
    return _with_partition_columns(data, columns["session"].give_array(pa.string()))


def _with_partition_columns(data: pa.Table, sessions: pa.Array[Any]) -> pa.Table:
    """Both dictionary-encoded: a segment's rows nearly always share one session and one
    day, and then the lake writer reads the partition off the dictionaries
    (`lake.parts.distinct_values`) instead of hashing every row twice."""
    times = data["event_time"]
    span = pc.min_max(times)
    first, last = (pc.cast(span[end], pa.date32()) for end in ("min", "max"))
    dates: pa.Array[Any]
    if first.is_valid and first == last:
        dates = pa.DictionaryArray.from_arrays(np.zeros(data.num_rows, np.int32), [str(first)])
    else:
        # The UTC day; a date32 cast prints as YYYY-MM-DD, far cheaper than strftime.
        days = pc.cast(pc.cast(times, pa.date32()), pa.string())
        dates = days.combine_chunks().dictionary_encode()
    return data.add_column(0, "date", dates).add_column(0, "session", sessions.dictionary_encode())
