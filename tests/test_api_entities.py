"""The state API's actors, nodes, jobs, workers and placement groups, and the job API,
against what the live Ray 2.60 dashboard answered for the captured session.

Answers are compared key by key (same keys in the same order, same JSON types, same
values). The capture goes on after the live answers (the worker node, then the head,
were stopped), so a few fields legitimately differ; each is named below with its
reason and checked against the later truth.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from ray.dashboard.runtime_env_redaction import redact_runtime_env, redact_state_rows
from ray.util.state.common import ActorState, JobState, NodeState, PlacementGroupState, WorkerState

from web.entities import ACTORS, JOBS, NODES, PLACEMENT_GROUPS, WORKERS, Entity

from conftest import HEAD_NODE, WORKER_NODE
from live import assert_same_json, golden

# Proto maps: GCS prints them in no fixed order (the live answers themselves reorder
# resources_total between two requests), so they compare as mappings.
PROTO_MAPS = {"resources_total", "required_resources", "labels", "label_selector", "metadata"}

DRIVER_EXIT_TYPE = "INTENDED_USER_EXIT"
DASHBOARD_DRIVER = "02000000" + "f" * 48
# The workload's drivers, by their job id.
DRIVERS = {"01000000", "03000000", "04000000"}


def assert_same(got: Any, want: Any, where: str = "") -> None:
    assert_same_json(got, want, where, PROTO_MAPS)


def answer(api: httpx.Client, path: str, **params: Any) -> Any:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def items(body: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = body["data"]["result"]["result"]
    return rows


COUNTS = {"total", "num_after_truncation", "num_filtered"}


def envelope(body: Any) -> dict[str, Any]:
    """A list answer without its rows: the counts and warnings."""
    return {k: v for k, v in body["data"]["result"].items() if k != "result"}


def without(rows: list[dict[str, Any]], fields: set[str]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in fields} for row in rows]


# --- exactly as the live dashboard ------------------------------------------------


@pytest.mark.parametrize("moment", ["", "after_worker_death_"])
@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/api/v0/actors", {"limit": 10000, "detail": 1}, "api_v0_actors_limit_10000_detail_1"),
        ("/api/v0/actors/summarize", {}, "api_v0_actors_summarize"),
        ("/api/v0/jobs", {"detail": 1}, "api_v0_jobs_detail_1"),
        ("/api/jobs/", {}, "api_jobs_"),
        (
            "/api/v0/placement_groups",
            {"detail": 1, "limit": 10000},
            "api_v0_placement_groups_detail_1_limit_10000",
        ),
    ],
)
def test_answers_match_the_live_dashboard(
    api: httpx.Client, path: str, params: dict[str, Any], name: str, moment: str
) -> None:
    # Every actor, job and placement group had reached its final state at both answers.
    assert_same(answer(api, path, **params), golden(moment + name))


def test_a_job_is_the_same_in_both_apis(api: httpx.Client) -> None:
    listed = {j["job_id"]: j for j in items(answer(api, "/api/v0/jobs", detail=1))}
    for job in answer(api, "/api/jobs/"):
        assert_same(listed[job["job_id"]], job)


@pytest.mark.parametrize(
    ("key", "submission_id"),
    [
        ("job-ok-1", "job-ok-1"),  # a submission id
        ("04000000", "job-fail-1"),  # a submission job's driver job id
        ("01000000", None),  # a plain driver's job id
    ],
)
def test_one_job_by_job_or_submission_id(
    api: httpx.Client, key: str, submission_id: str | None
) -> None:
    (want,) = [j for j in golden("api_jobs_") if j["submission_id"] == submission_id]
    assert_same(answer(api, f"/api/jobs/{key}"), want)


def test_an_unknown_job_is_rays_404(api: httpx.Client) -> None:
    response = api.get("/api/jobs/raysubmit_nothere")
    assert response.status_code == 404
    assert response.text == "Job raysubmit_nothere does not exist"


@pytest.mark.parametrize("header", [("User-Agent", "Mozilla/5.0"), ("Sec-Fetch-Mode", "cors")])
def test_a_browser_gets_runtime_envs_redacted_as_ray_redacts_them(
    api: httpx.Client, header: tuple[str, str]
) -> None:
    browser = dict([header])
    actors = api.get("/api/v0/actors", params={"detail": 1}, headers=browser).json()
    want = golden("api_v0_actors_limit_10000_detail_1")
    want["data"]["result"]["result"] = redact_state_rows(items(want))
    assert_same(actors, want)
    assert "<redacted>" in actors["data"]["result"]["result"][0]["serialized_runtime_env"]
    jobs = api.get("/api/jobs/", headers=browser).json()
    assert_same(
        jobs,
        [j | {"runtime_env": redact_runtime_env(j["runtime_env"])} for j in golden("api_jobs_")],
    )
    job = api.get("/api/jobs/job-ok-1", headers=browser).json()
    assert_same(job, jobs[0])
    listed_jobs = api.get("/api/v0/jobs", params={"detail": 1}, headers=browser).json()
    want = golden("api_v0_jobs_detail_1")
    want["data"]["result"]["result"] = redact_state_rows(items(want))
    assert_same(listed_jobs, want)


# --- what moved on after the live answers -----------------------------------------


def test_nodes_match_the_live_dashboard_until_they_stopped(api: httpx.Client) -> None:
    body = answer(api, "/api/v0/nodes", detail=1)
    got = items(body)
    before = items(golden("api_v0_nodes_detail_1"))
    after = items(golden("after_worker_death_api_v0_nodes_detail_1"))
    assert_same(envelope(body), envelope(golden("api_v0_nodes_detail_1")))
    assert [n["node_id"] for n in got] == [HEAD_NODE, WORKER_NODE]
    # Both nodes were stopped after the first answer, the head after the second.
    moved_on = {"state", "state_message", "end_time_ms"}
    assert_same(without(got, moved_on), without(before, moved_on))
    assert_same(without(got, moved_on), without(after, moved_on))
    head, worker = got
    _, worker_after = after
    assert worker["state"] == worker_after["state"] == "DEAD"
    assert worker["state_message"] == worker_after["state_message"]
    # GCS stamps its node table's end time just before it emits the DEAD event; the
    # lake knows the event's time, which trails it by under 2 ms.
    assert 0 <= worker["end_time_ms"] - worker_after["end_time_ms"] <= 2
    assert head["state"] == "DEAD"
    assert head["state_message"] == "Expected termination: received SIGTERM"
    assert head["end_time_ms"] > worker["end_time_ms"]


@pytest.mark.parametrize("moment", ["", "after_worker_death_"])
def test_workers_match_the_live_dashboard(api: httpx.Client, moment: str) -> None:
    body = answer(api, "/api/v0/workers", limit=10000, detail=1)
    want_body = golden(f"{moment}api_v0_workers_limit_10000_detail_1")
    got = {w["worker_id"]: w for w in items(body)}
    want = {w["worker_id"]: w for w in items(want_body)}
    # The dashboard's own job (02000000, namespace _ray_internal_...) gets no driver
    # job event in Ray 2.60, so the lake never learns of its driver.
    assert set(want) - set(got) == {DASHBOARD_DRIVER}
    one_less = {k: v - 1 if k in COUNTS else v for k, v in envelope(want_body).items()}
    assert_same(envelope(body), one_less)
    assert list(got) == sorted(got)  # Ray sorts by worker id
    # A driver's exit and process times are only in GCS's worker table, which Ray 2.60
    # exports no event of: its exit is unknown, its job's driver start and end (GCS
    # stamps them within a few ms of the process's) stand in for its times.
    driver_only = {"exit_type", "exit_detail", "start_time_ms", "end_time_ms"}
    for worker_id, worker in got.items():
        expected = want[worker_id]
        if worker["worker_type"] != "DRIVER":
            assert_same(worker, expected, worker_id)
            continue
        assert_same(without([worker], driver_only), without([expected], driver_only))
        assert (worker["exit_type"], worker["exit_detail"]) == (None, None)
        assert expected["exit_type"] == DRIVER_EXIT_TYPE
        for field in ("start_time_ms", "end_time_ms"):
            assert abs(worker[field] - expected[field]) <= 10, (worker_id, field)
    assert {w[:8] for w, v in got.items() if v["worker_type"] == "DRIVER"} == DRIVERS


# --- detail, filters, paging -------------------------------------------------------

SCHEMAS = [
    (ACTORS, ActorState, "/api/v0/actors"),
    (NODES, NodeState, "/api/v0/nodes"),
    (JOBS, JobState, "/api/v0/jobs"),
    (WORKERS, WorkerState, "/api/v0/workers"),
    (PLACEMENT_GROUPS, PlacementGroupState, "/api/v0/placement_groups"),
]


@pytest.mark.parametrize(("entity", "schema", "path"), SCHEMAS)
def test_columns_and_filters_are_rays(
    api: httpx.Client, entity: Entity, schema: Any, path: str
) -> None:
    assert set(entity.filters) == schema.filterable_columns()
    detailed = items(answer(api, path, detail=1, limit=1000))
    brief = items(answer(api, path, limit=1000))
    assert detailed and len(brief) == len(detailed)
    for full, short in zip(detailed, brief, strict=True):
        assert list(full) == schema.list_columns(detail=True)
        assert list(short) == schema.list_columns(detail=False)
        assert_same(short, {k: full[k] for k in short})


def filter_params(filters: tuple[tuple[str, str, str], ...]) -> list[tuple[str, str]]:
    """Ray's repeated `filter_keys`/`filter_predicates`/`filter_values` parameters."""
    return [
        (f"filter_{part}", text)
        for one in filters
        for part, text in zip(("keys", "predicates", "values"), one, strict=True)
    ]


def listed(api: httpx.Client, path: str, *filters: tuple[str, str, str], **params: Any) -> Any:
    response = api.get(path, params=[*params.items(), *filter_params(filters)])
    assert response.status_code == 200, response.text
    return response.json()["data"]["result"]


@pytest.mark.parametrize(
    ("path", "filters", "expected"),
    [
        # Strings compare case-insensitively, as in Ray.
        ("/api/v0/actors", [("class_name", "=", "counter")], 2),
        ("/api/v0/actors", [("state", "=", "dead"), ("name", "!=", "counter")], 3),
        ("/api/v0/actors", [("pid", "=", "20780")], 1),
        ("/api/v0/actors", [("ray_namespace", "=", "demo"), ("job_id", "=", "01000000")], 1),
        ("/api/v0/nodes", [("is_head_node", "=", "true")], 1),
        ("/api/v0/nodes", [("is_head_node", "=", "0"), ("node_id", "=", WORKER_NODE)], 1),
        ("/api/v0/nodes", [("node_id", "=", WORKER_NODE.upper())], 1),
        ("/api/v0/jobs", [("type", "=", "submission")], 2),
        ("/api/v0/jobs", [("submission_id", "=", "job-fail-1")], 1),
        ("/api/v0/jobs", [("status", "!=", "FAILED")], 2),
        ("/api/v0/workers", [("worker_type", "=", "DRIVER")], 3),
        ("/api/v0/workers", [("is_alive", "=", "True")], 0),
        ("/api/v0/workers", [("pid", "!=", "20573"), ("ip", "=", "192.0.2.2")], 21),
        ("/api/v0/placement_groups", [("state", "=", "removed")], 1),
        ("/api/v0/placement_groups", [("is_detached", "=", "true")], 0),
    ],
)
def test_filters_apply_before_the_limit(
    api: httpx.Client, path: str, filters: list[tuple[str, str, str]], expected: int
) -> None:
    everything = listed(api, path, limit=1000)
    result = listed(api, path, *filters, limit=1000)
    assert result["num_filtered"] == len(result["result"]) == expected
    assert result["total"] == result["num_after_truncation"] == everything["total"]
    for row in result["result"]:
        for key, predicate, value in filters:
            kept = str(row[key]).lower() == value.lower() or (
                isinstance(row[key], bool) and row[key] == (value.lower() in ("true", "1"))
            )
            assert kept == (predicate == "="), (row, key)
    first = listed(api, path, *filters, limit=1)
    assert first["num_filtered"] == expected
    assert first["result"] == result["result"][:1]


def test_filters_keep_what_they_keep_in_the_live_answer(api: httpx.Client) -> None:
    live = items(golden("api_v0_workers_limit_10000_detail_1"))
    on_worker_node = [w["worker_id"] for w in live if w["node_id"] == WORKER_NODE]
    result = listed(api, "/api/v0/workers", ("node_id", "=", WORKER_NODE), limit=1000)
    assert [w["worker_id"] for w in result["result"]] == on_worker_node


@pytest.mark.parametrize(
    ("path", "filters", "message"),
    [
        (
            "/api/v0/actors",
            [("pid", "=", "abc")],
            "Invalid filter `--filter pid abc` for a int type column. "
            "Please provide an integer filter `--filter pid [int]`",
        ),
        (
            "/api/v0/nodes",
            [("is_head_node", "=", "maybe")],
            "Invalid filter `--filter is_head_node maybe` for a boolean type column. "
            "Please provide `--filter is_head_node [True|true|1]` for True or "
            "`--filter is_head_node [False|false|0]` for False.",
        ),
        (
            "/api/v0/actors",
            [("is_detached", "=", "true")],
            "The given filter column is_detached is not supported.",
        ),
        (
            "/api/v0/actors/summarize",
            [("state", "~", "DEAD")],
            "Unsupported filter predicate ~ is given. Available predicates: =, !=.",
        ),
    ],
)
def test_bad_filters_get_rays_400(
    api: httpx.Client, path: str, filters: list[tuple[str, str, str]], message: str
) -> None:
    response = api.get(path, params=filter_params(tuple(filters)))
    assert response.status_code == 400
    body = response.json()
    assert body["result"] is False and body["data"] == {"result": None}
    assert body["msg"].startswith(message), body["msg"]


def test_summary_counts_only_what_the_filters_keep(api: httpx.Client) -> None:
    result = listed(api, "/api/v0/actors/summarize", ("class_name", "=", "Counter"))
    assert (result["total"], result["num_after_truncation"], result["num_filtered"]) == (4, 4, 2)
    assert result["result"] == {
        "node_id_to_summary": {
            "cluster": {
                "summary": {"Counter": {"class_name": "Counter", "state_counts": {"DEAD": 2}}},
                "total_actors": 2,
                "summary_by": "class",
            }
        }
    }


def test_offset_pages_through_every_row_in_rays_order(api: httpx.Client) -> None:
    everything = listed(api, "/api/v0/workers", limit=20000)  # Ray would refuse > 10,000
    ids = [w["worker_id"] for w in everything["result"]]
    assert len(ids) == everything["total"] == 22 and ids == sorted(ids)
    paged = []
    for offset in range(0, 25, 5):
        page = listed(api, "/api/v0/workers", limit=5, offset=offset)
        assert page["total"] == page["num_filtered"] == 22
        paged += [w["worker_id"] for w in page["result"]]
    assert paged == ids
    filtered = listed(api, "/api/v0/workers", ("worker_type", "!=", "DRIVER"), limit=4, offset=16)
    assert [w["worker_id"] for w in filtered["result"]] == [
        i for i in ids if not i.endswith("f" * 48)
    ][16:]
    assert listed(api, "/api/v0/actors", limit=2, offset=10)["result"] == []


def test_default_limit_is_rays_100(api: httpx.Client) -> None:
    assert len(listed(api, "/api/v0/workers")["result"]) == 22
    assert len(listed(api, "/api/v0/actors", limit=0)["result"]) == 0
    response = api.get("/api/v0/nodes", params={"limit": "ten"})
    assert response.status_code == 400
    assert response.json()["data"] == {"result": None}
