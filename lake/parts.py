"""Write typed event tables into their hive partitions as Parquet parts.

A part's name carries its writer (a node id, or `ingest` for batch loads) and the ingest
id, so two writers never write the same file, and writing the same ingest again writes
the same bytes to the same name (idempotent).
"""

from __future__ import annotations

import io
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.layout import ClusterKey, events_part_path
from lake.schemas import SCHEMAS
from lake.store import Lake

# Sort keys put one entity's rows together, so readers can prune row groups. The
# collector leaves its small parts unsorted (its CPU is the sidecar's; sorting was a
# third of its Parquet cost) and compaction sorts them when it merges them.
SORT_KEYS: dict[str, list[str]] = {
    "task_definition": ["task_id", "attempt_number"],
    "actor_task_definition": ["task_id", "attempt_number"],
    "task_lifecycle": ["task_id", "attempt_number", "seq"],
    "task_profile": ["task_id", "attempt_number", "seq"],
    "actor_definition": ["actor_id"],
    "actor_lifecycle": ["actor_id", "event_time", "seq"],
    "worker_definition": ["worker_id"],
    "worker_lifecycle": ["worker_id", "event_time", "seq"],
}


# Ids that differ on every row: a dictionary there is only built to be given up.
_DISTINCT = frozenset({"event_id", "task_id"})


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns whose values repeat enough for dictionary encoding to pay: strings
    (states, names, node and job ids), not the numbers and times that rarely repeat."""
    return [f.name for f in schema if pa.types.is_string(f.type) and f.name not in _DISTINCT]


# Arrow makes a zstd context per column chunk: on a small part that costs more CPU than
# the bytes it saves (a collector segment's small tables: 16% of its Parquet CPU, for
# 5% more bytes as LZ4); compaction merges them into larger parts, zstd ones.
SMALL_PART_ROWS = 1000


def _statistics_columns(schema: pa.Schema, ordered: bool) -> list[str]:
    """The columns whose min and max a part records: all of a sorted part's; of an
    unsorted one (the collector's), its times and numbers only. There the range of a
    text column spans nearly everything (ids differ on every row, a segment mixes jobs,
    nodes and states), useless for pruning, and comparing every value was a quarter of
    a collector part's Parquet CPU for the ids and a tenth more for the rest; the
    compaction that sorts the part records them all."""
    return [f.name for f in schema if ordered or not _is_text(f.type)]


def _is_text(data_type: pa.DataType) -> bool:
    """Strings, or a nesting that holds them (maps, lists, structs)."""
    if pa.types.is_string(data_type) or pa.types.is_binary(data_type):
        return True
    return any(_is_text(data_type.field(i).type) for i in range(data_type.num_fields))


def parquet_bytes(table: pa.Table, ordered: bool = True) -> bytes:
    """A table as one Parquet file; `ordered`: its rows are sorted by their keys."""
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd" if table.num_rows >= SMALL_PART_ROWS else "lz4",
        row_group_size=256 * 1024,
        # pyarrow takes a list of columns here; its type stubs know only a bool
        use_dictionary=_dictionary_columns(table.schema),  # type: ignore[arg-type]
        write_statistics=_statistics_columns(table.schema, ordered),
    )
    return sink.getvalue()


def sort_order(table_name: str) -> list[tuple[str, Literal["ascending", "descending"]]]:
    keys = SORT_KEYS.get(table_name, ["event_time", "event_id", "seq"])
    return [(key, "ascending") for key in keys]


def write_parts(
    lake: Lake,
    cluster: ClusterKey,
    table_name: str,
    table: pa.Table,
    *,
    writer: str,
    ingest_id: str,
    sort: bool = True,
) -> list[str]:
    """Write `table` (with leading `session` and `date` columns) into its partitions,
    each part sorted by its table's keys unless `sort` is False."""
    schema = SCHEMAS[table_name]
    written = []
    partitions = _partitions(table)
    for session, date in partitions:
        if len(partitions) == 1:  # the usual case: no copy to filter out the rest
            part = table.select(schema.names)
        else:
            mask = pc.and_(
                pc.equal(table["session"], pa.scalar(session)),
                pc.equal(table["date"], pa.scalar(date)),
            )
            part = table.filter(mask).select(schema.names)
        if sort:
            part = part.sort_by(sort_order(table_name))
        if not part.schema.equals(schema):
            part = part.cast(schema)
        path = events_part_path(table_name, cluster, session, date, writer, ingest_id)
        lake.write_bytes(path, parquet_bytes(part, ordered=sort))
        written.append(path)
    return written


def distinct_values(column: pa.ChunkedArray[Any]) -> list[str]:
    """The values in a partition column (`session`, `date`). A chunk dictionary-encoded
    with a single value, as the collector makes them, is read off its dictionary."""
    found: set[str] = set()
    hashed = []
    for chunk in column.chunks:
        if isinstance(chunk, pa.DictionaryArray) and len(chunk.dictionary) == 1:
            if len(chunk):
                found.add(str(chunk.dictionary[0].as_py()))
        else:
            hashed.append(chunk)
    if hashed:
        found.update(map(str, pc.unique(pa.chunked_array(hashed, column.type)).to_pylist()))
    return sorted(found)


def _partitions(table: pa.Table) -> list[tuple[str, str]]:
    """The (session, date) pairs of a table's rows. Usually one: the distinct values
    of each column tell it, at a fifth of the CPU of grouping (a collector segment's
    twelve small tables)."""
    sessions, dates = distinct_values(table["session"]), distinct_values(table["date"])
    if len(sessions) == 1 and len(dates) == 1:
        return [(sessions[0], dates[0])]
    pairs = table.select(["session", "date"]).group_by(["session", "date"], use_threads=False)
    keys = pairs.aggregate([])  # without threads: a third of the CPU on a segment
    return list(
        zip(map(str, keys["session"].to_pylist()), map(str, keys["date"].to_pylist()), strict=True)
    )
