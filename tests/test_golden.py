"""The lake's views against what the live Ray 2.60 dashboard answered for the same session.

`live/` holds the dashboard's answers just before the worker node was stopped, and
`live/after_worker_death_*` just after. The capture's events go on past both answers
(the head was stopped last), so fields that change after them are named and checked
against the later truth instead of being skipped.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.load import ingest_paths
from lake.store import Lake

from conftest import CLUSTER, HEAD_NODE, SESSION, WORKER_NODE, live
from live import TASKS_SQL, as_dict, assert_tasks_match, rows


def test_tasks_match_the_live_dashboard(sample_lake: Lake) -> None:
    tasks = live("api_v0_tasks_limit_10000_detail_1")
    assert len(tasks) == 279
    assert_tasks_match(sample_lake, tasks)


def test_task_state_follows_declaration_order_not_time(sample_lake: Lake) -> None:
    # The executor's RUNNING can arrive after the submitter's FINISHED; Ray still says
    # FINISHED because FINISHED comes later in TaskStatus.
    late = rows(
        sample_lake,
        """
        SELECT t.task_id, t.state FROM tasks t
        WHERE t.type = 'NORMAL_TASK' AND t.start_time > t.end_time
        """,
    )
    assert all(r["state"] in ("FINISHED", "FAILED") for r in late)


def rfc3339(ns: int) -> str:
    seconds = datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{seconds}.{ns % 10**9:09d}Z"


# Nanoseconds near a millisecond's end: Ray's `int(ns) // 1e6` goes through a double,
# which rounds some of them up into the next millisecond (a tie rounds to even).
NEAR_A_MILLISECOND = [
    1_795_326_487_683_999_900,  # Ray: ...684, the true floor: ...683 (seen in CI)
    1_795_326_487_683_999_872,  # a tie, rounded down
    1_795_326_487_683_999_873,
    1_795_326_487_684_000_127,
]


def one_task_body(ns: list[int]) -> list[dict[str, object]]:
    """A task's definition and its PENDING_ARGS_AVAIL, RUNNING and FINISHED at `ns`."""
    task_id = base64.b64encode(bytes.fromhex("bb" * 24)).decode()
    common = {
        "sourceType": "CORE_WORKER",
        "severity": "INFO",
        "sessionName": SESSION,
        "timestamp": rfc3339(ns[0]),
        "nodeId": base64.b64encode(b"n" * 28).decode(),
    }
    definition = {
        "taskId": task_id,
        "taskAttempt": 0,
        "taskType": "NORMAL_TASK",
        "taskName": "f",
        "taskFunc": {"pythonFunctionDescriptor": {"moduleName": "m", "functionName": "f"}},
        "jobId": "AQAAAA==",
        "language": "PYTHON",
    }
    states = ["PENDING_ARGS_AVAIL", "RUNNING", "FINISHED"]
    lifecycle = {
        "taskId": task_id,
        "taskAttempt": 0,
        "jobId": "AQAAAA==",
        "stateTransitions": [
            {"state": s, "timestamp": rfc3339(t)} for s, t in zip(states, ns, strict=True)
        ],
    }
    return [
        common
        | {"eventId": "ZGVm", "eventType": "TASK_DEFINITION_EVENT"}
        | {"taskDefinitionEvent": definition},
        common
        | {"eventId": "bGlm", "eventType": "TASK_LIFECYCLE_EVENT"}
        | {"taskLifecycleEvent": lifecycle},
    ]


@pytest.mark.parametrize("ns", NEAR_A_MILLISECOND)
def test_task_times_are_the_milliseconds_ray_prints(tmp_path: Path, ns: int) -> None:
    times = [ns, ns + 1, ns + 2]
    (tmp_path / "body.json").write_text(json.dumps(one_task_body(times)))
    lake = Lake(str(tmp_path / "lake"), create=True)
    assert not ingest_paths(lake, CLUSTER, [tmp_path / "body.json"]).rejected

    (task,) = rows(lake, TASKS_SQL)
    ray = [t // 1e6 for t in times]  # protobuf_to_task_state_dict's formula
    assert [task["creation_time_ms"], task["start_time_ms"], task["end_time_ms"]] == ray
    assert [e["created_ms"] for e in task["events"]] == ray


ACTORS_SQL = """
    SELECT actor_id, class_name, state, job_id, name, node_id, pid, ray_namespace,
           serialized_runtime_env, required_resources, is_detached, placement_group_id,
           repr_name, num_restarts, num_restarts_due_to_lineage_reconstruction,
           num_restarts_due_to_node_preemption, call_site, label_selector, death_cause
    FROM actors
"""


def test_actors_match_the_live_dashboard(sample_lake: Lake) -> None:
    expected = {a["actor_id"]: a for a in live("api_v0_actors_limit_10000_detail_1")}
    actual = {a["actor_id"]: a for a in rows(sample_lake, ACTORS_SQL)}
    assert actual.keys() == expected.keys()
    for actor_id, want in expected.items():
        got = actual[actor_id]
        for field in (
            "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace",
            "serialized_runtime_env", "is_detached", "placement_group_id", "repr_name",
        ):  # fmt: skip
            assert got[field] == want[field], (actor_id, field)
        for field in (
            "num_restarts",
            "num_restarts_due_to_lineage_reconstruction",
            "num_restarts_due_to_node_preemption",
        ):
            assert str(got[field]) == want[field], (actor_id, field)
        assert as_dict(got["required_resources"]) == want["required_resources"], actor_id
        assert got["death_cause"] is not None, actor_id


def test_nodes_match_the_live_dashboard(sample_lake: Lake) -> None:
    before = {n["node_id"]: n for n in live("api_v0_nodes_detail_1")}
    after = {n["node_id"]: n for n in live("after_worker_death_api_v0_nodes_detail_1")}
    actual = {
        n["node_id"]: n
        for n in rows(
            sample_lake,
            """
            SELECT node_id, node_ip, is_head_node, state, state_message, node_name,
                   resources_total, labels, epoch_us(start_time) // 1000 AS start_time_ms,
                   epoch_us(end_time) // 1000 AS end_time_ms
            FROM nodes
            """,
        )
    }
    assert actual.keys() == before.keys() == {HEAD_NODE, WORKER_NODE}
    for node_id, want in before.items():
        got = actual[node_id]
        for field in ("node_ip", "is_head_node", "node_name", "start_time_ms"):
            assert got[field] == want[field], (node_id, field)
        assert as_dict(got["labels"]) == want["labels"]
        assert as_dict(got["resources_total"]) == want["resources_total"]
    # The worker node died first: its end matches the dashboard's answer after its death.
    worker = after[WORKER_NODE]
    assert actual[WORKER_NODE]["state"] == worker["state"] == "DEAD"
    assert actual[WORKER_NODE]["state_message"] == worker["state_message"]
    # GCS stamps its node table's end time just before it emits the DEAD event; the
    # lake knows the event's time, which trails it by under 2 ms.
    assert 0 <= actual[WORKER_NODE]["end_time_ms"] - worker["end_time_ms"] <= 2
    # The head was stopped after the last live answer; the events record that too.
    assert after[HEAD_NODE]["state"] == "ALIVE"
    assert actual[HEAD_NODE]["state"] == "DEAD"
    assert actual[HEAD_NODE]["end_time_ms"] > worker["end_time_ms"]


def test_jobs_match_the_live_dashboard(sample_lake: Lake) -> None:
    expected = {j["job_id"]: j for j in live("api_v0_jobs_detail_1")}
    actual = {
        j["job_id"]: j
        for j in rows(
            sample_lake,
            """
            SELECT job_id, type, submission_id, status, entrypoint, message, error_type,
                   driver_pid, driver_node_ip, driver_node_id, driver_exit_code,
                   driver_agent_http_address, metadata, serialized_runtime_env,
                   epoch_us(start_time) // 1000 AS start_time,
                   epoch_us(end_time) // 1000 AS end_time
            FROM jobs
            """,
        )
    }
    assert actual.keys() == expected.keys()
    for job_id, want in expected.items():
        got = actual[job_id]
        for field in ("type", "submission_id", "entrypoint", "status", "message", "error_type"):
            assert got[field] == want[field], (job_id, field)
        for field in ("start_time", "end_time", "driver_exit_code", "driver_agent_http_address"):
            assert got[field] == want[field], (job_id, field)
        assert str(got["driver_pid"]) == want["driver_info"]["pid"]
        assert got["driver_node_ip"] == want["driver_info"]["node_ip_address"]
        assert as_dict(got["metadata"]) == want["metadata"]
        assert json.loads(got["serialized_runtime_env"]) == want["runtime_env"]
        if want["type"] == "SUBMISSION":
            assert got["driver_node_id"] == want["driver_node_id"]


def test_submission_jobs_come_from_the_head_snapshot(sample_lake: Lake) -> None:
    # Ray 2.60 exports no submission-job events: the status is only in /api/jobs/.
    (row,) = rows(
        sample_lake,
        "SELECT status, driver_exit_code FROM jobs WHERE submission_id = 'job-fail-1'",
    )
    assert row == {"status": "FAILED", "driver_exit_code": 3}
    groups = rows(sample_lake, "SELECT placement_group_id, state FROM placement_group_snapshots")
    assert groups == [
        {"placement_group_id": "321ccc55cd921b616672cab5d0e801000000", "state": "REMOVED"}
    ]


WORKERS_SQL = """
    SELECT worker_id, is_alive, worker_type, exit_type, node_id, ip, pid, exit_detail,
           epoch_us(worker_launch_time) // 1000 AS worker_launch_time_ms,
           epoch_us(worker_launched_time) // 1000 AS worker_launched_time_ms,
           epoch_us(start_time) // 1000 AS start_time_ms, epoch_us(end_time) // 1000 AS end_time_ms
    FROM workers
"""


def test_workers_match_the_live_dashboard(sample_lake: Lake) -> None:
    expected = {w["worker_id"]: w for w in live("api_v0_workers_limit_10000_detail_1")}
    actual = {w["worker_id"]: w for w in rows(sample_lake, WORKERS_SQL)}
    processes = {k: w for k, w in expected.items() if w["worker_type"] != "DRIVER"}
    assert len(processes) == 19
    for worker_id, want in processes.items():
        got = actual[worker_id]
        for field in (
            "is_alive", "worker_type", "exit_type", "node_id", "ip", "pid", "exit_detail",
            "worker_launch_time_ms", "worker_launched_time_ms", "start_time_ms", "end_time_ms",
        ):  # fmt: skip
            assert got[field] == want[field], (worker_id, field)
    # Drivers: Ray 2.60 sends no worker events for them; each job's driver stands in,
    # without the process times only the GCS worker table knows.
    drivers = {k: w for k, w in actual.items() if w["worker_type"] == "DRIVER"}
    assert len(drivers) == 3 and set(drivers) <= set(expected)
    for worker_id, got in drivers.items():
        want = expected[worker_id]
        for field in ("node_id", "ip", "pid", "is_alive"):
            assert got[field] == want[field], (worker_id, field)


@pytest.mark.parametrize("view", ["tasks", "actors", "jobs", "nodes", "workers"])
def test_views_span_sessions_with_partition_columns(sample_lake: Lake, view: str) -> None:
    (row,) = rows(sample_lake, f"SELECT DISTINCT namespace, cluster, session FROM {view}")
    assert row == {
        "namespace": "default",
        "cluster": "demo",
        "session": "session_2026-11-21_20-42-42_066305_20083",
    }
