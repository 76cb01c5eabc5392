"""Compaction merges small parts without changing any answer."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ingest.eventids import EventIds
from ingest.load import ingest_paths
from ingest.normalize import EventColumns, take
from lake.compact import compact
from lake.parts import SMALL_PART_ROWS, write_parts
from lake.store import Lake
from query.engine import connect

from conftest import CLUSTER, POSTS

ANSWERS = [
    "SELECT * EXCLUDE (events) FROM tasks ORDER BY task_id, attempt_number",
    "SELECT * FROM actors ORDER BY actor_id",
    "SELECT * FROM workers ORDER BY worker_id",
    "SELECT count(*) FROM task_lifecycle_events",
]


def answers(lake: Lake) -> list[object]:
    con = connect(lake)
    return [con.sql(query).to_arrow_table() for query in ANSWERS]


def parts(lake_dir: Path) -> list[Path]:
    return sorted((lake_dir / "events").rglob("*.parquet"))


def test_compaction_merges_parts_drops_duplicates_and_keeps_answers(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    lake = Lake(str(lake_dir), create=True)
    # Small batches make many parts; a second ingest with other batches repeats every
    # event under other part names (as a Ray retry re-batched would).
    ingest_paths(lake, CLUSTER, [POSTS], batch_events=100)
    before = answers(lake)
    ingest_paths(lake, CLUSTER, [POSTS], batch_events=333)
    assert answers(lake) == before
    many = parts(lake_dir)

    report = compact(lake)
    few = parts(lake_dir)
    assert report.parts_written < report.parts_read <= len(many)
    assert len(few) < len(many)
    assert report.rows_dropped > 0
    assert answers(lake) == before
    tables = {p.relative_to(lake_dir / "events").parts[0] for p in few}
    assert len(few) == len(tables)  # one session and one day: one part per table

    again = compact(lake)
    assert again.parts_read == 0 and parts(lake_dir) == few


def test_compaction_respects_the_target_size(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest_paths(lake, CLUSTER, [POSTS], batch_events=50)
    before = answers(lake)
    compact(lake, target_bytes=20_000)
    lifecycle = list((tmp_path / "lake" / "events" / "task_lifecycle").rglob("*.parquet"))
    assert len(lifecycle) > 1
    assert answers(lake) == before


def codecs(files: list[Path]) -> set[str]:
    return {pq.ParquetFile(f).metadata.row_group(0).column(0).compression for f in files}


def test_small_parts_are_lz4_and_large_ones_zstd(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    lake = Lake(str(lake_dir), create=True)
    ingest_paths(lake, CLUSTER, [POSTS], batch_events=100)
    lifecycle = lake_dir / "events" / "task_lifecycle"
    assert codecs(list(lifecycle.rglob("*.parquet"))) == {"LZ4"}
    compact(lake)
    (merged,) = lifecycle.rglob("*.parquet")
    assert pq.ParquetFile(merged).metadata.num_rows >= SMALL_PART_ROWS
    assert codecs([merged]) == {"ZSTD"}


def has_statistics(path: Path, column: str) -> bool:
    metadata = pq.ParquetFile(path).metadata
    names = metadata.schema.names
    return metadata.row_group(0).column(names.index(column)).is_stats_set


def test_unsorted_parts_keep_no_range_of_their_texts_and_compaction_gives_one(
    tmp_path: Path,
) -> None:
    """A collector's part is unsorted: the min and max of its ids and other texts would
    span nearly everything; those of its times prune. Compaction sorts, and then the
    range of task ids prunes."""
    lake_dir = tmp_path / "lake"
    lake = Lake(str(lake_dir), create=True)
    bodies = sorted(POSTS.rglob("*.json"))
    for segment, paths in enumerate([bodies[::2], bodies[1::2]]):  # two parts to merge
        columns = EventColumns()
        for path in paths:
            take(path.read_bytes(), EventIds(), columns)
        for table, data in columns.tables(str(segment)):
            write_parts(lake, CLUSTER, table, data, writer="n", ingest_id=str(segment), sort=False)
    for part in (lake_dir / "events" / "task_lifecycle").rglob("*.parquet"):
        assert not any(has_statistics(part, c) for c in ("task_id", "event_id", "job_id"))
        assert has_statistics(part, "event_time") and has_statistics(part, "attempt_number")
    compact(lake)
    (merged,) = (lake_dir / "events" / "task_lifecycle").rglob("*.parquet")
    assert all(has_statistics(merged, c) for c in ("task_id", "event_id", "job_id"))
