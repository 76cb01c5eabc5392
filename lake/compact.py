"""Compaction: merge a partition's small Parquet parts into few large ones.

Within each `events/<table>/cluster=/session=/date=` partition, parts are packed in name
order into groups of at most the target size; each group of two or more is rewritten
as one part, with every (event_id, seq) row once, and only then are its inputs
deleted. A reader in between sees the rows twice, which the views already collapse; a
crash in between leaves both, and the next compaction finishes the job. The output's
name derives from its inputs, so compacting again is a no-op.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from lake.catalog import read_entries
from lake.layout import EVENTS, check_writer
from lake.logfiles import assemble
from lake.parts import parquet_bytes, sort_order
from lake.schemas import SCHEMAS
from lake.store import Lake

TARGET_BYTES = 512 * 1024 * 1024
WRITER = "compact"


@dataclass
class CompactReport:
    partitions: int = 0
    parts_read: int = 0
    parts_written: int = 0
    rows_dropped: int = 0
    log_files_joined: int = 0


def _partitions(lake: Lake, table: str) -> dict[str, list[str]]:
    parts: dict[str, list[str]] = defaultdict(list)
    for path in lake.list_files(f"{EVENTS}/{table}", ".parquet"):
        directory, _, _ = path.rpartition("/")
        parts[directory].append(path)
    return parts


def _groups(lake: Lake, parts: list[str], target_bytes: int) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    size = 0
    for path in sorted(parts):
        part_size = lake.size(path)
        if groups[-1] and size + part_size > target_bytes:
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += part_size
    return [group for group in groups if len(group) > 1]


def _deduplicated(table: pa.Table) -> pa.Table:
    """Each (event_id, seq) once, keeping the first ingest's row."""
    indexed = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    first = indexed.group_by(["event_id", "seq"], use_threads=False).aggregate([("_row", "min")])
    keep = pc.is_in(indexed["_row"], value_set=first["_row_min"])
    return indexed.filter(keep).drop_columns(["_row"])


def compact(lake: Lake, *, target_bytes: int = TARGET_BYTES) -> CompactReport:
    report = CompactReport()
    # Log files shipped in parts become whole once their node's session has ended.
    for entry in read_entries(lake):
        if entry.ended:
            report.log_files_joined += assemble(
                lake, entry.cluster_key, entry.session, entry.node_id
            )
    for table, schema in SCHEMAS.items():
        for directory, parts in sorted(_partitions(lake, table).items()):
            groups = _groups(lake, parts, target_bytes)
            if groups:
                report.partitions += 1
            for group in groups:
                data = ds.dataset(
                    [lake.full(p) for p in group], format="parquet", filesystem=lake.fs
                ).to_table()
                merged = _deduplicated(data.cast(schema))
                merged = merged.sort_by(sort_order(table))
                digest = hashlib.sha256("\n".join(group).encode()).hexdigest()[:20]
                name = f"part-{WRITER}-{check_writer(digest)}.parquet"
                lake.write_bytes(f"{directory}/{name}", parquet_bytes(merged))
                for path in group:
                    lake.delete(path)
                report.parts_read += len(group)
                report.parts_written += 1
                report.rows_dropped += data.num_rows - merged.num_rows
    return report
