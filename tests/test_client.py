"""The Python client gives the same frames for the same lake, wherever the lake is read:
a local directory (DuckDB in process), the same files in S3 (moto's server, through
s3fs), and a running `raylake serve` over it (its SQL API, in Arrow IPC)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import s3fs
from polars.testing import assert_frame_equal

from lake.store import Lake
from query.client import LakeClient, TruncatedResult, open_lake
from query.console import ROW_CAP, QueryError

from conftest import CLUSTER, HEAD_NODE, SAMPLE, SESSION
from s3_server import create_bucket, fake_aws_env, moto_server
from server import Server, running_server

BUCKET = "raylake-client"
FLAKY_TASK = "76385d6aec5a2d68ffffffffffffffffffffffff01000000"


@pytest.fixture(scope="module")
def s3_copy(collected_lake: Lake) -> Iterator[tuple[str, str]]:
    """The collected lake's files, copied as they are into a bucket: (URL, endpoint)."""
    with fake_aws_env(), moto_server() as endpoint:
        create_bucket(endpoint, BUCKET)
        fs = s3fs.S3FileSystem(endpoint_url=endpoint)
        fs.put(f"{collected_lake.url}/", f"{BUCKET}/lake", recursive=True)
        yield f"s3://{BUCKET}/lake", endpoint


@pytest.fixture(scope="module")
def clients(
    collected_lake: Lake, s3_copy: tuple[str, str], server: Server
) -> Iterator[dict[str, LakeClient]]:
    url, endpoint = s3_copy
    with (
        open_lake(collected_lake.url) as local,
        open_lake(url, s3_endpoint_url=endpoint) as s3,
        open_lake(server.url) as served,
    ):
        yield {"local": local, "s3": s3, "server": served}


def same_everywhere(
    clients: dict[str, LakeClient], ask: Callable[[LakeClient], pl.DataFrame]
) -> pl.DataFrame:
    """The local answer, after checking that S3 and the server give an equal frame."""
    local = ask(clients["local"])
    for where in ("s3", "server"):
        assert_frame_equal(ask(clients[where]), local, check_exact=True)
    return local


QUERIES: dict[str, Callable[[LakeClient], pl.DataFrame]] = {
    "tasks": lambda lake: lake.tasks(),
    "tasks of the session": lambda lake: lake.tasks(SESSION, cluster=CLUSTER.name),
    "actors": lambda lake: lake.actors(namespace=CLUSTER.namespace),
    "jobs": lambda lake: lake.jobs(SESSION),
    "nodes": lambda lake: lake.nodes(),
    "workers": lambda lake: lake.workers(since="2026-11-21T20:42:50Z"),
    "log files": lambda lake: lake.log_files(SESSION),
    "sessions": lambda lake: lake.sessions(),
    "aggregate": lambda lake: lake.sql(
        "SELECT func_or_class_name, state, count(*) AS attempts, "
        "max(end_time - start_time) AS longest FROM tasks GROUP BY ALL ORDER BY ALL"
    ),
    "mysql dialect": lambda lake: lake.sql(
        "SELECT `name`, `error_type` FROM `tasks` WHERE `state` = 'FAILED' ORDER BY 1, 2",
        dialect="mysql",
    ),
    "limit": lambda lake: lake.sql(
        "SELECT * FROM task_lifecycle_events ORDER BY event_id, seq", limit=3
    ),
}


@pytest.mark.parametrize("ask", QUERIES.values(), ids=QUERIES.keys())
def test_same_frames_everywhere(
    clients: dict[str, LakeClient], ask: Callable[..., pl.DataFrame]
) -> None:
    assert not ask(clients["local"]).is_empty()
    same_everywhere(clients, ask)


def test_tasks_filters(clients: dict[str, LakeClient]) -> None:
    everything = same_everywhere(clients, lambda lake: lake.tasks())
    failed = everything.filter(pl.col("state") == "FAILED").sort("name", "attempt_number")
    # The capture's failures (its README): flaky fails all 3 attempts, Counter.crash twice.
    assert failed["name"].to_list() == ["Counter.crash"] * 2 + ["flaky"] * 3
    assert failed.filter(pl.col("name") == "flaky")["task_id"].unique().to_list() == [FLAKY_TASK]
    assert "ValueError: flaky failure for 7" in failed["error_message"][-1]

    moment = dt.datetime(2026, 11, 21, 20, 42, 50, tzinfo=dt.UTC)
    later = same_everywhere(clients, lambda lake: lake.tasks(since=moment))
    expected = everything.filter(pl.col("creation_time") >= moment)
    assert 0 < len(later) < len(everything)
    assert_frame_equal(later, expected)
    # A naive time is UTC; an ISO string is the same moment.
    naive = clients["local"].tasks(since="2026-11-21T20:42:50")
    assert_frame_equal(naive, expected)

    for unknown in ({"session": "session_nope"}, {"cluster": "nope"}, {"namespace": "nope"}):
        none = same_everywhere(clients, lambda lake, f=unknown: lake.tasks(**f))
        assert none.is_empty() and none.schema == everything.schema


def test_arrow(clients: dict[str, LakeClient]) -> None:
    for lake in clients.values():
        table = lake.tasks(SESSION, arrow=True)
        assert isinstance(table, pa.Table)
        assert pl.from_arrow(table).equals(lake.tasks(SESSION))
        raw = lake.sql_arrow("SELECT creation_time, events FROM tasks LIMIT 1")
        # Zoned times are UTC however the engine's process is set, nested ones too.
        assert raw.schema.field("creation_time").type == pa.timestamp("us", "UTC")
        assert raw.schema.field("events").type.value_type.field("time").type.tz == "UTC"


def test_intervals(clients: dict[str, LakeClient]) -> None:
    """A difference of times (DuckDB's INTERVAL, which polars cannot read) comes back
    as a duration; an interval of calendar months cannot, and says so."""
    longest = same_everywhere(
        clients, lambda lake: lake.sql("SELECT max(end_time - start_time) AS d FROM tasks")
    )
    micros = clients["local"].sql(
        "SELECT max(date_diff('microsecond', start_time, end_time)) AS us FROM tasks"
    )
    assert longest["d"].dtype == pl.Duration("ns")
    assert longest["d"][0] == dt.timedelta(microseconds=micros["us"][0])
    for lake in clients.values():
        with pytest.raises(ValueError, match="calendar months"):
            lake.sql("SELECT INTERVAL 1 MONTH AS m")
        assert lake.sql_arrow("SELECT INTERVAL 1 MONTH AS m").num_rows == 1


def test_sessions(clients: dict[str, LakeClient]) -> None:
    sessions = same_everywhere(clients, lambda lake: lake.sessions())
    row = sessions.row(0, named=True)
    assert (row["namespace"], row["cluster"], row["session"]) == (
        CLUSTER.namespace,
        CLUSTER.name,
        SESSION,
    )
    assert row["nodes"] == 2 and row["ended"] and row["ray_version"] == "2.60.0"
    assert row["start_time"] == dt.datetime(2026, 11, 21, 20, 42, 42, 66000, tzinfo=dt.UTC)


def test_logs(clients: dict[str, LakeClient]) -> None:
    name = "worker-b4f3f7012762425b18b8b2168a3111310e3d998f593145abe804661a-ffffffff-20593.err"
    stored = (SAMPLE / "logs" / "head" / name).read_text()
    flaky = (
        clients["local"].tasks(SESSION).filter(pl.col("task_id") == FLAKY_TASK).row(0, named=True)
    )
    assert flaky["stderr_file"].endswith(f"/{SESSION}/logs/{name}")
    for where, lake in clients.items():
        assert lake.log(SESSION, HEAD_NODE, name) == stored, where
        # A path as the task reports it, on the node, names the same file.
        assert lake.log(SESSION, HEAD_NODE, flaky["stderr_file"]) == stored, where
        with pytest.raises(LookupError):
            lake.log(SESSION, HEAD_NODE, "no-such-file.log")
        with pytest.raises(LookupError, match="not found"):
            lake.log("session_nope", HEAD_NODE, name)


def test_refused_queries(clients: dict[str, LakeClient]) -> None:
    """The server refuses what the in-process client refuses, with the same code."""
    refused = {
        "DELETE FROM tasks": "not_read_only",
        "SELECT * FROM read_csv_auto('/etc/passwd')": "forbidden_function",
        "SELECT * FROM secrets": "unknown_table",
        "SELECT no_such_column FROM tasks": "query_failed",
        "SELECT FROM WHERE": "syntax_error",
    }
    for query, code in refused.items():
        messages = set()
        for lake in clients.values():
            with pytest.raises(QueryError) as refusal:
                lake.sql(query)
            assert refusal.value.code == code, (query, refusal.value)
            messages.add(str(refusal.value))
        assert len(messages) == 1, messages


def test_row_cap(clients: dict[str, LakeClient]) -> None:
    """All rows up to ROW_CAP; a query with more warns that it was cut; a limit asked
    for cuts without a warning."""
    for lake in clients.values():
        frame = lake.sql(f"SELECT range AS n FROM range({ROW_CAP})")
        assert len(frame) == ROW_CAP
        with pytest.warns(TruncatedResult, match="more than 1,000,000 rows"):
            frame = lake.sql(f"SELECT range AS n FROM range({ROW_CAP + 1})")
        assert len(frame) == ROW_CAP and frame["n"][-1] == ROW_CAP - 1
        assert len(lake.sql("SELECT * FROM range(10)", limit=3)) == 3


def test_token(collected_lake: Lake, tmp_path: Path) -> None:
    with running_server(collected_lake.url, tmp_path, "--auth-token", "s3cret") as guarded:
        with open_lake(guarded.url, token="s3cret") as lake:
            assert lake.sessions()["session"].to_list() == [SESSION]
            assert lake.sql("SELECT count(*) AS n FROM nodes")["n"].to_list() == [2]
        for token in (None, "wrong"):
            with open_lake(guarded.url, token=token) as stranger:
                with pytest.raises(PermissionError):
                    stranger.sessions()
                with pytest.raises(PermissionError):
                    stranger.sql("SELECT 1")
    with pytest.raises(ValueError, match="server URL"):
        open_lake(collected_lake.url, token="s3cret")
