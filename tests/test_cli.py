"""`raylake` as a user runs it: a real process over a real lake directory."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from conftest import HEAD_NODE, POSTS, SAMPLE, SESSION


def raylake(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raylake", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def cli_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("cli") / "lake"
    done = raylake(
        "ingest", "--lake", lake, "--namespace", "default", "--cluster", "demo", POSTS,
        "--node-id", HEAD_NODE, "--logs", SAMPLE / "logs" / "head",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "TASK_LIFECYCLE_EVENT" in done.stdout and "1,469" in done.stdout
    assert SESSION in done.stdout
    return lake


def sql(lake: Path, query: str, *options: str) -> subprocess.CompletedProcess[str]:
    return raylake("sql", "--lake", lake, *options, query)


def test_ingest_stores_events_logs_and_catalog(cli_lake: Path) -> None:
    assert (cli_lake / "_lake.json").exists()
    assert list((cli_lake / "raw").rglob("*.json.zst"))
    logs = cli_lake / f"logs/cluster=default.demo/session={SESSION}/node={HEAD_NODE}"
    assert (logs / "raylet.out").exists()
    catalog = raylake("catalog", "--lake", cli_lake)
    assert catalog.returncode == 0 and "head" in catalog.stdout and "worker" in catalog.stdout


def test_every_output_format_round_trips(cli_lake: Path, tmp_path: Path) -> None:
    query = "SELECT task_id, attempt_number, state FROM tasks ORDER BY task_id, attempt_number"
    as_csv = sql(cli_lake, query, "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    from_csv = pl.read_csv(io.StringIO(as_csv.stdout))
    as_json = sql(cli_lake, query, "--format", "json")
    from_json = pl.DataFrame(json.loads(as_json.stdout))
    out = tmp_path / "tasks.parquet"
    assert sql(cli_lake, query, "--format", "parquet", "--output", str(out)).returncode == 0
    from_parquet = pl.from_arrow(pq.read_table(out))
    assert from_csv.height == from_json.height == from_parquet.height == 284
    assert from_csv["state"].to_list() == from_json["state"].to_list()
    assert from_csv["task_id"].to_list() == from_parquet["task_id"].to_list()  # type: ignore[index]
    table = sql(cli_lake, "SELECT count(*) AS n FROM tasks WHERE state = 'FAILED'")
    assert "5" in table.stdout and "1 rows" in table.stdout


@pytest.mark.parametrize(
    "query",
    [
        "DROP VIEW tasks",
        "CREATE TABLE x AS SELECT 1",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM secrets",
        "SELECT 1; SELECT 2",
        "COPY tasks TO '/tmp/x.csv'",
        "ATTACH '/tmp/x.db'",
    ],
)
def test_sql_is_read_only(cli_lake: Path, query: str) -> None:
    done = sql(cli_lake, query)
    assert done.returncode == 2
    assert done.stderr.startswith("raylake: ")


def test_sql_accepts_other_dialects(cli_lake: Path) -> None:
    done = sql(
        cli_lake,
        "SELECT state, COUNT(*) AS n FROM tasks GROUP BY state ORDER BY n DESC LIMIT 1",
        "--dialect", "trino", "--format", "csv",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith('"FINISHED"')


def test_ingest_twice_changes_no_answer(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    query = "SELECT * EXCLUDE (events) FROM tasks ORDER BY task_id, attempt_number"
    answers = []
    for _ in range(2):
        done = raylake("ingest", "--lake", lake, "--namespace", "ns", "--cluster", "c", POSTS)
        assert done.returncode == 0, done.stderr
        answers.append(sql(lake, query, "--format", "csv").stdout)
    assert answers[0] == answers[1]
    assert pl.read_csv(io.StringIO(answers[0])).height == 284


def test_bad_files_are_rejected_whole_with_a_reason(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = json.loads((POSTS / "head" / "post_00000.json").read_text())
    bad = json.loads((POSTS / "head" / "post_00003.json").read_text())
    bad[2]["timestamp"] = "not a time"
    (inputs / "a_good.json").write_text(json.dumps(good))
    (inputs / "b_bad.json").write_text(json.dumps(bad))
    lake = tmp_path / "lake"
    done = raylake("ingest", "--lake", lake, "--namespace", "ns", "--cluster", "c", inputs)
    assert done.returncode == 1
    assert "b_bad.json" in done.stdout
    assert "event 2: field `timestamp`: expected an RFC 3339 timestamp" in done.stdout
    counted = sql(
        lake,
        "SELECT count(DISTINCT event_id) AS n FROM task_definition_events "
        "UNION ALL SELECT count(*) FROM node_definition_events",
        "--format",
        "csv",
    )
    assert counted.stdout.split()[1:] == ["0", "1"]  # nothing of the bad file


def test_a_newer_lake_format_is_refused(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "_lake.json").write_text(json.dumps({"format": "raylake", "version": "2.0"}))
    done = sql(lake, "SELECT 1")
    assert done.returncode == 2
    assert "format 2.0" in done.stderr and "Upgrade raylake" in done.stderr


def test_a_directory_that_is_not_a_lake_is_refused(tmp_path: Path) -> None:
    done = sql(tmp_path, "SELECT 1")
    assert done.returncode == 2 and "_lake.json" in done.stderr


def test_collect_on_a_port_in_use_says_so_and_exits(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = raylake(
            "collect", "--lake", tmp_path / "lake", "--cluster", "demo", "--role", "worker",
            "--host", "127.0.0.1", "--port", port, "--spool", tmp_path / "spool",
            "--ray-root", tmp_path / "ray",
        )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Address already in use" in done.stderr
