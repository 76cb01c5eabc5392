"""raw/ is the source of truth: `rebuild` recreates every event table from it."""

from __future__ import annotations

import shutil
from pathlib import Path

from ingest.load import ingest_paths, rebuild
from lake.catalog import read_entries
from lake.store import Lake
from query.engine import connect

from conftest import CLUSTER, POSTS

QUERIES = [
    "SELECT * EXCLUDE (events) FROM tasks ORDER BY task_id, attempt_number",
    "SELECT * FROM jobs ORDER BY job_id",
    "SELECT * FROM nodes ORDER BY node_id",
    "SELECT count(*), count(DISTINCT event_id) FROM task_profile_events",
]


def answers(lake: Lake) -> list[object]:
    con = connect(lake)
    return [con.sql(query).to_arrow_table() for query in QUERIES]


def catalog(lake: Lake) -> list[tuple[str, dict[str, int]]]:
    return sorted((e.node_id, e.event_counts) for e in read_entries(lake))


def test_rebuild_recreates_lost_and_damaged_tables(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    lake = Lake(str(lake_dir), create=True)
    ingest_paths(lake, CLUSTER, [POSTS], batch_events=400)
    before, counts = answers(lake), catalog(lake)

    shutil.rmtree(lake_dir / "events")
    reports = rebuild(lake)
    assert list(reports) == [CLUSTER]
    assert not reports[CLUSTER].rejected
    assert answers(lake) == before
    assert catalog(lake) == counts

    damaged = next((lake_dir / "events" / "task_lifecycle").rglob("*.parquet"))
    damaged.write_bytes(b"not parquet")
    stray = damaged.with_name("part-ingest-stray.parquet")
    shutil.copy(next((lake_dir / "events" / "actor_lifecycle").rglob("*.parquet")), stray)
    rebuild(lake)
    assert answers(lake) == before
    assert not stray.exists()
