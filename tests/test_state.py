"""A session's materialized state: built once, kept in the lake, rebuilt when the
session's inputs change, and never older than the lake."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ingest.load import ingest_paths
from lake.layout import state_meta_path, state_path
from lake.store import Lake
from query import state as state_module
from query.engine import SessionRef, connect
from query.state import STATE_TABLES, SessionNotFound, StateCache, read_meta

from conftest import CLUSTER, SESSION, ingest_sample

REF = SessionRef(CLUSTER, SESSION)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return ingest_sample(str(tmp_path / "lake"))


def _cache(lake: Lake, tmp_path: Path, recheck: float = 0.0) -> StateCache:
    return StateCache(lake, cache_dir=tmp_path / "cache", recheck_seconds=recheck)


def _count(cache: StateCache, table: str) -> int:
    (row,) = cache.get(REF).query(f"SELECT count(*) AS n FROM {table}").to_pylist()
    return int(row["n"])


def test_state_holds_what_the_views_hold_for_the_session(lake: Lake, tmp_path: Path) -> None:
    cache = _cache(lake, tmp_path)
    con = connect(lake)
    for table, view in (("tasks", "tasks"), ("actors", "actors"), ("jobs", "jobs"),
                        ("nodes", "nodes"), ("workers", "workers"),
                        ("task_profile", "task_profile_events"),
                        ("placement_groups", "placement_group_snapshots"),
                        ("log_files", "log_files")):  # fmt: skip
        (want,) = con.execute(
            f"SELECT count(*) FROM {view} WHERE session = ?", [SESSION]
        ).fetchone() or (None,)
        assert _count(cache, table) == want, table
    meta = read_meta(lake, REF)
    assert meta is not None and sorted(meta["tables"]) == sorted(STATE_TABLES)


def test_state_is_built_once_and_kept(lake: Lake, tmp_path: Path) -> None:
    first = _cache(lake, tmp_path / "a").get(REF)
    built = lake.read_bytes(state_meta_path(CLUSTER, SESSION))
    # Another server (or a restart) finds the state in the lake and does not rebuild it.
    second = _cache(lake, tmp_path / "b").get(REF)
    assert second.version == first.version
    assert lake.read_bytes(state_meta_path(CLUSTER, SESSION)) == built


def _new_task_body(tmp_path: Path, name: str = "late_task") -> Path:
    """A definition of one more task in the same session (a new task and event id)."""
    task_id = hashlib.sha256(name.encode()).digest()[:16] + bytes.fromhex("01000000")
    event = {
        "eventId": base64.b64encode(os.urandom(28)).decode(),
        "sourceType": "CORE_WORKER",
        "eventType": "TASK_DEFINITION_EVENT",
        "timestamp": "2026-11-21T20:43:40.000000000Z",
        "severity": "INFO",
        "sessionName": SESSION,
        "taskDefinitionEvent": {
            "taskId": base64.b64encode(task_id).decode(),
            "taskFunc": {
                "pythonFunctionDescriptor": {
                    "moduleName": "late",
                    "functionName": name,
                    "functionHash": "00",
                    "className": "",
                }
            },
            "taskName": name,
            "requiredResources": {"CPU": 1.0},
            "jobId": "AQAAAA==",
            "parentTaskId": "//////////////////////////8BAAAA",
            "placementGroupId": "////////////////////////",
            "serializedRuntimeEnv": "{}",
            "taskAttempt": 0,
            "taskType": "NORMAL_TASK",
            "language": "PYTHON",
        },
        "nodeId": "p63H2NMwFW87g6OLDETe1T+Xgcw9q5U+hpS7Ng==",
        "message": "",
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps([event]))
    return path


def test_an_answer_is_never_older_than_the_lake(lake: Lake, tmp_path: Path) -> None:
    cache = _cache(lake, tmp_path)
    before = cache.get(REF)
    tasks = _count(cache, "tasks")
    report = ingest_paths(lake, CLUSTER, [_new_task_body(tmp_path)])
    assert not report.rejected
    after = cache.get(REF)
    assert after.version != before.version
    assert _count(cache, "tasks") == tasks + 1
    (row,) = after.query("SELECT name FROM tasks WHERE name = 'late_task'").to_pylist()
    assert row == {"name": "late_task"}
    # Only the newest version's files stay in the lake.
    for table in STATE_TABLES:
        files = list(lake.list_files(f"state/{table}", ".parquet"))
        assert [f.rsplit("/", 1)[-1] for f in files] == [f"{after.version}.parquet"], table


def test_recheck_interval_reuses_the_state_meanwhile(lake: Lake, tmp_path: Path) -> None:
    cache = _cache(lake, tmp_path, recheck=3600)
    before = cache.get(REF)
    ingest_paths(lake, CLUSTER, [_new_task_body(tmp_path)])
    assert cache.get(REF) is before  # within the interval: no catalog read at all


def test_unknown_session_is_not_found(lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(SessionNotFound, match="session_nope"):
        _cache(lake, tmp_path).get(SessionRef(CLUSTER, "session_nope"))


def test_a_local_lake_state_is_linked_not_copied(tmp_path: Path) -> None:
    """Covered against a real S3 API server in tests/test_server.py; here a local
    lake's state files are hard links of the lake's (no copies)."""
    lake = ingest_sample(str(tmp_path / "lake"))
    cache = _cache(lake, tmp_path)
    version = cache.get(REF).version
    for table in STATE_TABLES:
        path = state_path(table, CLUSTER, SESSION, version)
        assert (tmp_path / "cache" / path).stat().st_ino == Path(lake.full(path)).stat().st_ino


def test_a_state_replaced_meanwhile_still_answers(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request holds a session's state while another request finds the session
    moved on (a live one, every flush) and replaces it: the first still answers, from
    what it took, until the old version is long retired."""
    cache = _cache(lake, tmp_path)
    taken = cache.get(REF)
    tasks = _count(cache, "tasks")
    ingest_paths(lake, CLUSTER, [_new_task_body(tmp_path)])
    newer = cache.get(REF)  # the old version's files are gone from the lake
    assert newer.version != taken.version
    (row,) = taken.query("SELECT count(*) AS n FROM tasks").to_pylist()
    assert row["n"] == tasks
    monkeypatch.setattr(state_module, "RETIRED_SECONDS", 0.0)
    ingest_paths(lake, CLUSTER, [_new_task_body(tmp_path, "later_task")])
    newest = cache.get(REF)  # retires `newer`, and drops what retired before
    assert _count(cache, "tasks") == tasks + 2
    with pytest.raises(duckdb.CatalogException):
        taken.query("SELECT count(*) FROM tasks")
    for table in STATE_TABLES:
        assert not (
            tmp_path / "cache" / state_path(table, CLUSTER, SESSION, taken.version)
        ).exists()
        assert (tmp_path / "cache" / state_path(table, CLUSTER, SESSION, newest.version)).exists()


def test_raylake_materialize_builds_once(lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    from raylake import main

    key = f"{CLUSTER.namespace}/{CLUSTER.name}/{SESSION}"
    assert main(["materialize", "--lake", lake.url, "--session", key]) == 0
    assert "built in" in capsys.readouterr().out
    assert main(["materialize", "--lake", lake.url]) == 0
    assert "state is current" in capsys.readouterr().out
    # Batch-ingested sessions are never marked ended by a collector.
    assert main(["materialize", "--lake", lake.url, "--ended"]) == 0
    assert capsys.readouterr().out == ""


def test_slices_of_task_ids_build_the_same_tables(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import query.state

    whole = _cache(lake, tmp_path / "whole").get(REF)
    want = {t: whole.query(f"SELECT * FROM {t}") for t in ("tasks", "task_profile")}
    monkeypatch.setattr(query.state, "_EVENTS_PER_SLICE", 100)  # the sample: 16 slices
    monkeypatch.setattr(query.state, "_CODE", "sliced")  # a new version: built again
    sliced = _cache(lake, tmp_path / "sliced").get(REF)
    assert (read_meta(lake, REF) or {})["task_slices"] == 16
    for table, rows in want.items():
        assert sliced.query(f"SELECT * FROM {table}").equals(rows), table
    assert want["tasks"].num_rows == 284


def test_an_answer_is_remembered_for_its_version_only(lake: Lake, tmp_path: Path) -> None:
    cache = _cache(lake, tmp_path)
    calls = []

    def count_tasks(state: Any) -> int:
        calls.append(state.version)
        return int(state.query("SELECT count(*) AS n FROM tasks").to_pylist()[0]["n"])

    before = cache.get(REF)
    assert before.remember("tasks", lambda: count_tasks(before)) == 284
    assert before.remember("tasks", lambda: count_tasks(before)) == 284
    assert calls == [before.version]
    ingest_paths(lake, CLUSTER, [_new_task_body(tmp_path)])
    after = cache.get(REF)
    assert after.remember("tasks", lambda: count_tasks(after)) == 285
    assert calls == [before.version, after.version]
