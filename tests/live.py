"""Comparing the lake's views with what a live Ray dashboard answered."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from lake.store import Lake
from query.engine import connect

from conftest import LIVE


def rows(lake: Lake, sql: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = connect(lake).sql(sql).to_arrow_table().to_pylist()
    return result


def as_dict(pairs: Any) -> Any:
    """DuckDB maps arrive from Arrow as lists of (key, value)."""
    return None if pairs is None else dict(pairs)


TASKS_SQL = """
    SELECT task_id, attempt_number, name, state, type, func_or_class_name, job_id,
           actor_id, parent_task_id, node_id, worker_id, worker_pid, error_type,
           error_message, language, required_resources, placement_group_id,
           label_selector, call_site, is_debugger_paused,
           epoch_us(creation_time) // 1000 AS creation_time_ms,
           epoch_us(start_time) // 1000 AS start_time_ms,
           epoch_us(end_time) // 1000 AS end_time_ms,
           list_transform(
               events, lambda e: {'state': e.state, 'created_ms': epoch_us(e.time) // 1000}
           ) AS events,
           stdout_file, stderr_file, stdout_start, stdout_end, stderr_start, stderr_end
    FROM tasks
    -- Ray lists the attempts it has a definition for, drivers excluded by default.
    WHERE type IS NOT NULL AND type <> 'DRIVER_TASK'
"""


def assert_tasks_match(lake: Lake, live_tasks: list[dict[str, Any]]) -> None:
    """Every task attempt the dashboard listed, field by field, as Ray's API prints it."""
    expected = {(t["task_id"], t["attempt_number"]): t for t in live_tasks}
    actual = {(t["task_id"], t["attempt_number"]): t for t in rows(lake, TASKS_SQL)}
    assert actual.keys() == expected.keys()
    for key, want in expected.items():
        got = actual[key]
        for field in (
            "name", "state", "type", "func_or_class_name", "job_id", "actor_id",
            "parent_task_id", "node_id", "worker_id", "worker_pid", "error_type",
            "error_message", "language", "placement_group_id", "call_site",
            "is_debugger_paused", "creation_time_ms", "start_time_ms", "end_time_ms",
        ):  # fmt: skip
            assert got[field] == want[field], (key, field, got[field], want[field])
        assert as_dict(got["required_resources"]) == want["required_resources"], key
        assert as_dict(got["label_selector"]) == want["label_selector"], key
        assert [
            {"state": e["state"], "created_ms": float(e["created_ms"])} for e in got["events"]
        ] == want["events"], key
        log = want["task_log_info"]
        if log is None:
            assert got["stdout_file"] is None and got["stderr_file"] is None, key
        else:
            assert {k: got[k] for k in log} == log, key


def golden(name: str) -> Any:
    """A whole golden answer of the live dashboard, by its file name."""
    return json.loads((LIVE / f"{name}.json").read_text())


def assert_same_json(
    got: Any, want: Any, where: str = "", maps: Collection[str] = frozenset()
) -> None:
    """The same JSON: equal values of equal types, dict keys in the same order, all the
    way down; a dict under a key in `maps` compares as a mapping (GCS prints proto maps
    in no fixed order)."""
    assert type(got) is type(want), (where, got, want)
    if isinstance(want, dict):
        if where.rsplit(".", 1)[-1] in maps:
            assert got == want, where
            return
        assert list(got) == list(want), (where, list(got), list(want))
        for key in want:
            assert_same_json(got[key], want[key], f"{where}.{key}", maps)
    elif isinstance(want, list):
        assert len(got) == len(want), (where, len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_json(g, w, f"{where}[{i}]", maps)
    else:
        assert got == want, (where, got, want)
