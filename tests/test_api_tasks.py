"""`/api/v0/tasks`, its summaries and the timeline, over real HTTP against `raylake
serve`, compared with what the live Ray 2.60 dashboard answered for the same session.

Every golden answer is compared key by key (same keys, same order, same types, same
values). The differences that are legitimate are named here, with their reason:

- The attempts of one task: Ray sorts by task id only, so the attempts of a task
  follow GCS's in-memory storage order (the capture lists `flaky`'s attempts 1, 2, 0),
  which no event records; raylake lists them by attempt number. The golden answers
  are put in that order (a stable sort, nothing else moves) before comparing.
- `required_resources` key order: protobuf maps print in GCS's hash-map order; raylake
  keeps the order the submitter reported. The keys and values must still be equal.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from ray.dashboard.state_api_utils import do_filter
from ray.util.state.common import TaskState

from live import assert_same_json as assert_same
from live import golden
from server import Server

TASKS = "/api/v0/tasks"
BEFORE_AND_AFTER = ["", "after_worker_death_"]


def by_attempt(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ray's list order with the attempts of one task by number (see the module doc)."""
    return sorted(tasks, key=lambda t: (t["task_id"], t["attempt_number"]))


def tasks_body(api: httpx.Client, **params: Any) -> dict[str, Any]:
    reply = api.get(TASKS, params=params)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


@pytest.mark.parametrize("prefix", BEFORE_AND_AFTER)
@pytest.mark.parametrize("detail", [False, True])
def test_list_matches_the_live_dashboard(api: httpx.Client, prefix: str, detail: bool) -> None:
    name = f"{prefix}api_v0_tasks_limit_10000" + ("_detail_1" if detail else "")
    want = golden(name)
    want["data"]["result"]["result"] = by_attempt(want["data"]["result"]["result"])
    got = tasks_body(api, limit=10000, **({"detail": 1} if detail else {}))
    if detail:
        for g, w in zip(
            got["data"]["result"]["result"], want["data"]["result"]["result"], strict=True
        ):
            assert g["required_resources"] == w["required_resources"], g["task_id"]
            g["required_resources"] = w["required_resources"]  # key order only (module doc)
    assert_same(got, want)


@pytest.mark.parametrize("prefix", BEFORE_AND_AFTER)
@pytest.mark.parametrize("query", ["", "_summary_by_lineage"])
def test_summaries_match_the_live_dashboard(api: httpx.Client, prefix: str, query: str) -> None:
    params = {"summary_by": "lineage"} if query else {}
    reply = api.get(f"{TASKS}/summarize", params=params)
    assert reply.status_code == 200, reply.text
    assert_same(reply.json(), golden(f"{prefix}api_v0_tasks_summarize{query}"))


def timeline_in_attempt_order(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The golden timeline with each task's attempts by number (module doc)."""
    spans = [e for e in events if e["ph"] == "X"]
    first_seen: dict[str, int] = {}
    for i, e in enumerate(spans):
        first_seen.setdefault(e["args"]["task_id"], i)
    spans.sort(key=lambda e: (first_seen[e["args"]["task_id"]], e["args"]["attempt_number"]))
    return spans + [e for e in events if e["ph"] == "M"]


@pytest.mark.parametrize("prefix", BEFORE_AND_AFTER)
def test_timeline_matches_the_live_dashboard(api: httpx.Client, prefix: str) -> None:
    reply = api.get(f"{TASKS}/timeline", params={"download": 1})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["content-disposition"].startswith('attachment; filename="timeline-None-')
    want = timeline_in_attempt_order(golden(f"{prefix}api_v0_tasks_timeline_download_1"))
    assert_same(reply.json(), want)


def test_timeline_of_one_job(api: httpx.Client) -> None:
    everything = golden("api_v0_tasks_timeline_download_1")
    job = "03000000"  # job-ok-1: 30 `word` tasks
    want = {
        (e["args"]["task_id"], e["args"]["attempt_number"], e["cat"], e["ts"])
        for e in everything
        if e["ph"] == "X" and e["args"]["job_id"] == job
    }
    assert want
    reply = api.get(f"{TASKS}/timeline", params={"job_id": job})
    assert reply.status_code == 200, reply.text
    assert "content-disposition" not in reply.headers
    events = reply.json()
    spans = [e for e in events if e["ph"] == "X"]
    assert {
        (e["args"]["task_id"], e["args"]["attempt_number"], e["cat"], e["ts"]) for e in spans
    } == want
    assert len(spans) == len(want)
    # Nodes and workers are numbered from 0 again, in the order this job's tasks use them.
    threads = [e for e in events if e["name"] == "thread_name"]
    assert sorted(e["tid"] for e in threads) == list(range(len(threads)))
    assert {e["tid"] for e in spans} == {e["tid"] for e in threads}


# Filters: the expected rows are Ray's own `do_filter` applied to the live list.
LIVE_TASKS = golden("api_v0_tasks_limit_10000_detail_1")["data"]["result"]["result"]
FAILED_TASK = next(t for t in LIVE_TASKS if t["state"] == "FAILED" and t["actor_id"] is None)
FILTERS = [
    [("state", "=", "FAILED")],
    [("state", "=", "failed")],  # string values compare case-insensitively
    [("state", "!=", "Finished")],
    [("name", "=", "SQUARE")],
    [("type", "=", "actor_task"), ("state", "!=", "finished")],
    [("attempt_number", "=", "2")],  # an int column
    [("attempt_number", "!=", "0")],
    [("worker_pid", "=", str(FAILED_TASK["worker_pid"]))],
    [("job_id", "=", "03000000")],
    [("actor_id", "!=", "eec625790f578bd468f3e00101000000")],
    [("node_id", "=", FAILED_TASK["node_id"].upper())],
    [("func_or_class_name", "=", "Counter.inc"), ("language", "=", "python")],
    [("error_type", "=", "task_execution_exception")],
]
# The filters GCS applies itself narrow `total` too (ray/util/state/state_manager.py).
GCS_KEYS = {"task_id", "job_id", "actor_id", "name", "state"}


def filter_params(filters: list[tuple[str, str, str]]) -> dict[str, list[str]]:
    return {
        "filter_keys": [f[0] for f in filters],
        "filter_predicates": [f[1] for f in filters],
        "filter_values": [f[2] for f in filters],
    }


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: " ".join("".join(x) for x in f))
def test_filters_as_ray(api: httpx.Client, filters: list[tuple[str, str, str]]) -> None:
    expected = do_filter(LIVE_TASKS, filters, TaskState, detail=False)
    gcs = [f for f in filters if f[0] in GCS_KEYS]
    total = len(do_filter(LIVE_TASKS, gcs, TaskState, detail=False))
    body = tasks_body(api, limit=10000, **filter_params(filters))["data"]["result"]
    assert body["num_filtered"] == len(expected)
    assert body["total"] == body["num_after_truncation"] == total
    key = [(t["task_id"], t["attempt_number"]) for t in by_attempt(expected)]
    assert [(t["task_id"], t["attempt_number"]) for t in body["result"]] == key
    assert key  # every filter here selects rows


def bad_request(api: httpx.Client, path: str, params: dict[str, Any]) -> str:
    reply = api.get(path, params=params)
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["result"] is False and body["data"] == {"result": None}
    message: str = body["msg"]
    return message


@pytest.mark.parametrize("path", [TASKS, f"{TASKS}/summarize"])
def test_bad_filters_get_rays_400(api: httpx.Client, path: str) -> None:
    unknown = bad_request(api, path, filter_params([("colour", "=", "red")]))
    assert unknown.startswith(
        "The given filter column colour is not supported. Enter filters with "
        "–-filter key=value or –-filter key!=value Supported filter columns: "  # noqa: RUF001 (Ray's text)
    )
    assert "'attempt_number'" in unknown
    assert bad_request(api, path, filter_params([("attempt_number", "=", "two")])) == (
        "Invalid filter `--filter attempt_number two` for a int type column. "
        "Please provide an integer filter `--filter attempt_number [int]`"
    )
    assert bad_request(api, path, filter_params([("state", "~", "FAILED")])) == (
        "Unsupported filter predicate ~ is given. Available predicates: =, !=."
    )


def test_bad_options_get_a_400(api: httpx.Client) -> None:
    assert "limit" in bad_request(api, TASKS, {"limit": "many"})
    assert bad_request(api, TASKS, {"detail": "maybe"}) == (
        "Failed to convert a value maybe of type <class 'str'> to <class 'bool'>"
    )
    assert bad_request(api, f"{TASKS}/summarize", {"summary_by": "colour"}) == (
        'summary_by must be one of "func_name", "task_name", or "lineage".'
    )


@pytest.mark.parametrize("detail", [False, True])
def test_pages_read_every_row_once(api: httpx.Client, detail: bool) -> None:
    whole = tasks_body(api, limit=10000, detail=int(detail))["data"]["result"]["result"]
    pages: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = tasks_body(api, limit=37, offset=offset, detail=int(detail))["data"]["result"]
        assert body["total"] == body["num_filtered"] == len(whole)
        pages += body["result"]
        if len(body["result"]) < 37:
            break
        offset += 37
    assert pages == whole  # each row once, in order, formatted the same way
    assert len({(t["task_id"], t["attempt_number"]) for t in pages}) == len(whole) == 279


def test_no_cap_at_rays_limit(api: httpx.Client) -> None:
    # Ray refuses limit > 10,000; raylake pages without a maximum.
    body = tasks_body(api, limit=1_000_000)["data"]["result"]
    assert len(body["result"]) == body["total"] == 279


def test_exclude_driver_false_lists_drivers(api: httpx.Client) -> None:
    body = tasks_body(api, limit=10000, detail=1, exclude_driver="false")["data"]["result"]
    drivers = [t for t in body["result"] if t["type"] == "DRIVER_TASK"]
    assert drivers and all(t["task_id"].startswith("f" * 40) for t in drivers)
    assert body["total"] == body["num_filtered"] == 279 + len(drivers)
    assert {t["job_id"] for t in drivers} >= {"01000000", "02000000", "03000000"}
    # The first job's driver reported its ray.get/submit spans as profile events.
    first = next(t for t in drivers if t["job_id"] == "01000000")
    assert first["profiling_data"]["component_type"] == "driver"
    # By default drivers are left out, as in Ray.
    assert tasks_body(api, limit=10000)["data"]["result"]["total"] == 279


def test_summary_of_filtered_tasks(api: httpx.Client) -> None:
    reply = api.get(f"{TASKS}/summarize", params=filter_params([("state", "=", "failed")]))
    assert reply.status_code == 200, reply.text
    result = reply.json()["data"]["result"]
    assert (result["total"], result["num_filtered"]) == (5, 5)
    summary = result["result"]["node_id_to_summary"]["cluster"]
    assert summary["summary"] == {
        "flaky": {
            "func_or_class_name": "flaky",
            "type": "NORMAL_TASK",
            "state_counts": {"FAILED": 3},
        },
        "Counter.crash": {
            "func_or_class_name": "Counter.crash",
            "type": "ACTOR_TASK",
            "state_counts": {"FAILED": 2},
        },
    }
    assert (summary["total_tasks"], summary["total_actor_tasks"]) == (3, 2)


@pytest.mark.parametrize("path", [TASKS, f"{TASKS}/summarize", f"{TASKS}/timeline"])
def test_no_session_chosen_is_a_400(server: Server, path: str) -> None:
    reply = httpx.get(f"{server.url}{path}", timeout=60)
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["result"] is False and body["data"] == {"error": "no_session"}
    assert "/enter_cluster/" in body["msg"]
