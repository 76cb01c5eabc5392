"""The dashboard's own endpoints (not the state API) against the live Ray 2.60 answers.

Answers are compared key by key (same keys, same order, same types, same values). The
fields that cannot match are named here with the reason: what only a live node reports,
what no event Ray 2.60 exports records, and what changed after the live answers (the
capture runs on: the worker node died, then the head, so both nodes are DEAD in the lake).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.load import ingest_paths
from lake.catalog import read_session_entries
from lake.store import Lake

from conftest import CLUSTER, HEAD_NODE, POSTS, SESSION, WORKER_NODE, live
from live import assert_same_json, golden

# Both live answers hold the same actors, node summaries, version, timezone, metadata.
BOTH = ["", "after_worker_death_"]


# -- /logical/actors ----------------------------------------------------------------------

# The memory of the actor's node, which its live agent reports; Ray gives a node that no
# longer reports `[]` (datacenter.py: node_physical_stats.get("mem", [])).
ACTOR_LIVE_ONLY = {"mem"}
# GCS stamps these by its own clock just before it emits the event the lake records, so
# the lake's times trail Ray's by a few milliseconds.
ACTOR_GCS_CLOCK = {"timestamp", "endTime"}


@pytest.mark.parametrize("prefix", BOTH)
def test_logical_actors_match_the_live_dashboard(api: httpx.Client, prefix: str) -> None:
    want = golden(f"{prefix}logical_actors")
    got = api.get("/logical/actors").json()
    assert (got["result"], got["msg"]) == (want["result"], want["msg"])
    assert list(got["data"]) == ["actors"]
    actors, expected = got["data"]["actors"], want["data"]["actors"]
    assert list(actors) == list(expected)
    for actor_id, want_actor in expected.items():
        actor = actors[actor_id]
        assert list(actor) == list(want_actor), actor_id
        for key, value in want_actor.items():
            if key in ACTOR_LIVE_ONLY:
                assert actor[key] == [], (actor_id, key)
            elif key in ACTOR_GCS_CLOCK:
                assert type(actor[key]) is type(value), (actor_id, key)
                assert 0 <= actor[key] - value <= 5, (actor_id, key, actor[key], value)
            else:
                assert_same_json(actor[key], value, f"{actor_id}.{key}")


def test_one_actor_and_a_chosen_few(api: httpx.Client) -> None:
    listed = api.get("/logical/actors").json()["data"]["actors"]
    actor_id = "f5a4ea0d9e5edeb34ba1321301000000"
    one = api.get(f"/logical/actors/{actor_id}").json()
    assert (one["result"], one["msg"]) == (True, "Actor details fetched.")
    assert_same_json(one["data"]["detail"], listed[actor_id], actor_id)
    chosen = api.get("/logical/actors", params={"ids": f"{actor_id},ffff"}).json()
    assert chosen["data"]["actors"] == {actor_id: listed[actor_id], "ffff": None}
    missing = api.get("/logical/actors/ffff")
    assert missing.status_code == 404
    assert missing.json()["data"] == {"error": "unknown_actor"}


# -- /nodes -------------------------------------------------------------------------------

# What a node's reporter agent sends while it lives (host, CPU, memory, disks, network,
# processes); Ray's summary of a node that does not report has none of them.
NODE_LIVE_ONLY = {
    "now", "hostname", "ip", "cpu", "cpus", "mem", "hostMem", "cgroupMem", "shm", "agent",
    "bootTime", "loadAvg", "disk", "diskIo", "diskIoSpeed", "gpus", "network",
    "networkSpeed", "cmdline", "gcs",
}  # fmt: skip
# The raylet's GetNodeStats answer (core workers, object store), only while it lives.
RAYLET_LIVE_ONLY = {"coreWorkersStats", "numWorkers", "storeStats"}
# Derived from the live storeStats: 0 without them, as Ray computes it.
RAYLET_FROM_STORE_STATS = {"objectStoreAvailableMemory"}
# GcsNodeInfo fields no event Ray 2.60 exports records: printed as GCS prints an unset
# field (the autoscaler's snapshot is a message, so it is not printed at all).
RAYLET_NOT_IN_EVENTS = {
    "rayletSocketName": "", "objectStoreSocketName": "", "nodeManagerPort": 0,
    "objectManagerPort": 0, "metricsExportPort": 0, "runtimeEnvAgentPort": 0,
    "metricsAgentPort": 0, "dashboardAgentListenPort": 0, "tempDir": "", "sessionDir": "",
}  # fmt: skip
# Changed after the live answers: both nodes died later in the capture.
RAYLET_LATER = {"state", "endTimeMs", "stateMessage", "deathInfo"}
# Protobuf maps: their order is GCS's hash table's, which no event records; the entries
# are compared.
RAYLET_MAPS = {"resourcesTotal", "labels"}


def live_nodes() -> dict[str, Any]:
    """The state API's node records after the worker's death (its end, its message)."""
    return {n["node_id"]: n for n in live("after_worker_death_api_v0_nodes_detail_1")}


@pytest.mark.parametrize("prefix", BOTH)
def test_node_summary_matches_the_live_dashboard(api: httpx.Client, prefix: str) -> None:
    want = golden(f"{prefix}nodes_view_summary")
    got = api.get("/nodes", params={"view": "summary"}).json()
    assert (got["result"], got["msg"]) == (want["result"], want["msg"])
    assert list(got["data"]) == list(want["data"]) == ["summary", "nodeLogicalResources"]
    summary = got["data"]["summary"]
    assert [n["raylet"]["nodeId"] for n in summary] == [
        n["raylet"]["nodeId"] for n in want["data"]["summary"]
    ]
    for node, want_node in zip(summary, want["data"]["summary"], strict=True):
        node_id = want_node["raylet"]["nodeId"]
        assert set(want_node) - set(node) == NODE_LIVE_ONLY
        assert list(node) == ["raylet", "tpus"]
        assert node["tpus"] == want_node["tpus"] == []
        raylet, want_raylet = node["raylet"], want_node["raylet"]
        # (numWorkers is printed only when not 0.)
        live_only = RAYLET_LIVE_ONLY & set(want_raylet)
        assert set(want_raylet) - set(raylet) == live_only | {"stateSnapshot"}
        assert raylet["objectStoreUsedMemory"] == want_raylet["objectStoreUsedMemory"] == 0
        assert raylet["objectStoreAvailableMemory"] == 0
        for key, value in RAYLET_NOT_IN_EVENTS.items():
            assert raylet[key] == value, (node_id, key)
            assert type(want_raylet[key]) is type(value), (node_id, key)
        compared = set(want_raylet) - RAYLET_LIVE_ONLY - RAYLET_FROM_STORE_STATS
        compared -= set(RAYLET_NOT_IN_EVENTS) | RAYLET_LATER | RAYLET_MAPS | {"stateSnapshot"}
        for key in RAYLET_MAPS:
            assert raylet[key] == want_raylet[key], (node_id, key)
        for key in compared:
            assert_same_json(raylet[key], want_raylet[key], f"{node_id}.{key}")
        # The later truth: the state API after the worker's death, and the head's end.
        assert want_raylet["state"] == "ALIVE" and raylet["state"] == "DEAD"
        assert raylet["stateMessage"] == "Expected termination: received SIGTERM"
        assert raylet["deathInfo"] == {
            "reason": "EXPECTED_TERMINATION",
            "reasonMessage": "received SIGTERM",
        }
    worker = next(n["raylet"] for n in summary if n["raylet"]["nodeId"] == WORKER_NODE)
    head = next(n["raylet"] for n in summary if n["raylet"]["nodeId"] == HEAD_NODE)
    worker_death = live_nodes()[WORKER_NODE]
    assert worker["stateMessage"] == worker_death["state_message"]
    assert 0 <= int(worker["endTimeMs"]) - worker_death["end_time_ms"] <= 2
    assert int(head["endTimeMs"]) > int(worker["endTimeMs"])


def test_node_info_keys_follow_gcs_printing() -> None:
    """The node's GcsNodeInfo in the order Ray's own protobuf printing gives."""
    from ray.core.generated import gcs_pb2
    from ray.dashboard.utils import message_to_dict, to_google_style

    from web.dashboard import gcs_node_info

    row = {
        "node_id": WORKER_NODE, "node_ip": "192.0.2.2", "state": "DEAD",
        "hostname": "vm", "resources_total": [("CPU", 2.0), ("object_store_memory", 7.0)],
        "node_name": "192.0.2.2", "instance_id": "", "instance_type_name": "",
        "start_ms": 1795293767580, "end_ms": 1795293804658, "is_head_node": False,
        "labels": [("ray.io/node-id", WORKER_NODE)], "death_reason": "EXPECTED_TERMINATION",
        "death_reason_message": "received SIGTERM",
    }  # fmt: skip
    death = gcs_pb2.GcsNodeInfo().death_info
    death.reason = type(death).EXPECTED_TERMINATION
    death.reason_message = "received SIGTERM"
    message = gcs_pb2.GcsNodeInfo(
        node_id=bytes.fromhex(WORKER_NODE),
        node_manager_address="192.0.2.2",
        state=gcs_pb2.GcsNodeInfo.DEAD,
        node_manager_hostname="vm",
        resources_total={"CPU": 2.0, "object_store_memory": 7.0},
        node_name="192.0.2.2",
        start_time_ms=1795293767580,
        end_time_ms=1795293804658,
        labels={"ray.io/node-id": WORKER_NODE},
        death_info=death,
    )
    rays = message_to_dict(message, {"nodeId"}, always_print_fields_with_no_presence=True)
    # protobuf prints map entries in hash order: they compare as mappings.
    assert_same_json(gcs_node_info(row), rays, "GcsNodeInfo", {"resourcesTotal", "labels"})
    assert sorted(to_google_style(rays)["resourcesTotal"]) == ["CPU", "objectStoreMemory"]


@pytest.mark.parametrize("prefix", BOTH)
def test_logical_resources_of_the_nodes_up_at_the_end(api: httpx.Client, prefix: str) -> None:
    want = golden(f"{prefix}nodes_view_summary")["data"]["nodeLogicalResources"]
    got = api.get("/nodes", params={"view": "summary"}).json()["data"]["nodeLogicalResources"]
    # The autoscaler's view at the cluster's last moment: the worker had died by then.
    assert list(got) == [HEAD_NODE]
    assert got[HEAD_NODE] == want[HEAD_NODE]


def test_node_detail(api: httpx.Client) -> None:
    summary = api.get("/nodes", params={"view": "summary"}).json()["data"]["summary"]
    actors = api.get("/logical/actors").json()["data"]["actors"]
    for node in summary:
        node_id = node["raylet"]["nodeId"]
        detail = api.get(f"/nodes/{node_id}").json()
        assert (detail["result"], detail["msg"]) == (True, "Node details fetched.")
        got = detail["data"]["detail"]
        assert list(got) == ["raylet", "tpus", "actors", "workers"]
        assert_same_json(got["raylet"], node["raylet"], node_id)
        on_node = {k: a for k, a in actors.items() if a["address"]["nodeId"] == node_id}
        assert got["actors"] == on_node and on_node
        assert got["workers"] == []  # the node's live worker processes
    missing = api.get("/nodes/ffff")
    assert missing.status_code == 404
    assert missing.json()["data"] == {"error": "unknown_node"}
    unknown = api.get("/nodes", params={"view": "nothing"})
    assert unknown.status_code == 500
    assert unknown.json()["msg"] == "Unknown view nothing"


# -- /api/cluster_status ------------------------------------------------------------------

HEADER = re.compile(r"======== Autoscaler status: (\S+ \S+) ========")


def test_cluster_status_text_matches_the_last_live_answer(api: httpx.Client) -> None:
    """The cluster as it was at its end (the head's death): the live answer after the
    worker's death is the closest one, and matches but for the time it was made."""
    want = golden("after_worker_death_api_cluster_status_format_1")
    got = api.get("/api/cluster_status", params={"format": "1"}).json()
    assert (got["result"], got["msg"]) == (want["result"], want["msg"])
    assert list(got["data"]) == ["clusterStatus"]
    text, want_text = got["data"]["clusterStatus"], want["data"]["clusterStatus"]
    header, *lines = text.split("\n")
    want_header, *want_lines = want_text.split("\n")
    assert lines == want_lines
    # The head stopped after that answer; the time is its death, in the head's zone.
    ours, theirs = HEADER.fullmatch(header), HEADER.fullmatch(want_header)
    assert ours and theirs and ours[1] > theirs[1]
    assert ours[1] == "2026-11-21 20:43:33.547000"
    # Before the worker died, the autoscaler also listed it and its resources.
    before = golden("api_cluster_status_format_1")["data"]["clusterStatus"].split("\n")
    assert before[4:6] == [f" 1 node_{WORKER_NODE}", f" 1 node_{HEAD_NODE}"]
    assert lines[3:4] == [f" 1 node_{HEAD_NODE}"]


def test_cluster_status_record(api: httpx.Client) -> None:
    from ray.autoscaler._private.autoscaler import AutoscalerSummary
    from ray.autoscaler._private.util import LoadMetricsSummary
    from ray.dashboard.utils import to_camel_case

    got = api.get("/api/cluster_status").json()
    assert (got["result"], got["msg"]) == (True, "Got cluster status.")
    data = got["data"]
    assert list(data) == ["autoscalingStatus", "autoscalingError", "clusterStatus"]
    # Only the legacy text's and the error's keys: a recorded cluster has neither.
    assert data["autoscalingStatus"] is None and data["autoscalingError"] is None
    status = data["clusterStatus"]
    # monitor.py also records its pid and live timings (gcs_request_time,
    # autoscaler_update_time, non_terminated_nodes_time): not in a recorded session.
    assert list(status) == ["time", "autoscalerReport", "loadMetricsReport"]
    assert list(status["autoscalerReport"]) == [
        to_camel_case(f.name) for f in dataclasses.fields(AutoscalerSummary)
    ]
    assert list(status["loadMetricsReport"]) == [
        to_camel_case(f.name) for f in dataclasses.fields(LoadMetricsSummary)
    ]
    # Ray's to_google_style camel-cases these keys too.
    assert status["autoscalerReport"]["activeNodes"] == {to_camel_case(f"node_{HEAD_NODE}"): 1}
    usage = status["loadMetricsReport"]["usage"]
    assert usage["CPU"] == [0.0, 2.0] and usage["objectStoreMemory"] == [0.0, 7396897996.0]
    assert status["time"] == 1795293813.547


# -- version, timezone, cluster metadata, Serve -------------------------------------------


@pytest.mark.parametrize("prefix", BOTH)
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/version", "api_version"),
        ("/timezone", "timezone"),
        ("/api/v0/cluster_metadata", "api_v0_cluster_metadata"),
    ],
)
def test_head_snapshots_match_the_live_dashboard(
    api: httpx.Client, prefix: str, path: str, name: str
) -> None:
    answer = api.get(path)
    assert answer.status_code == 200
    assert_same_json(answer.json(), golden(f"{prefix}{name}"), path)


def test_serve_without_serve(api: httpx.Client) -> None:
    answer = api.get("/api/serve/applications/")
    assert answer.status_code == 200
    # serve/schema.py: ServeInstanceDetails.get_empty_schema_dict (ray.serve itself
    # needs Serve's extra dependencies to import).
    empty = {"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": None}
    assert_same_json(answer.json(), empty, "serve")
    bad = api.get("/api/serve/applications/", params={"api_type": "unknown"})
    assert bad.status_code == 400
    assert bad.text.startswith("Invalid 'api_type' value: 'unknown'.")


@pytest.fixture(scope="module")
def bare_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The capture's events alone: no head snapshots."""
    lake = Lake(str(tmp_path_factory.mktemp("bare") / "lake"), create=True)
    assert not ingest_paths(lake, CLUSTER, [POSTS]).rejected
    return lake


@pytest.fixture(scope="module")
def bare_api(bare_lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from server import running_server

    work = Path(tmp_path_factory.mktemp("bare-serve"))
    with running_server(bare_lake.url, work) as server:
        session = f"{CLUSTER.namespace}/{CLUSTER.name}/{SESSION}"
        with httpx.Client(base_url=server.url, params={"session": session}) as client:
            yield client


def test_without_snapshots_what_the_events_tell(bare_api: httpx.Client, bare_lake: Lake) -> None:
    entries = read_session_entries(bare_lake, CLUSTER, SESSION)
    ray_version = next((e.ray_version for e in entries if e.ray_version), "")
    version = bare_api.get("/api/version").json()
    want = golden("api_version")
    # The commit is only in the head's answer; the Ray version is the catalog's.
    assert version == {**want, "ray_version": ray_version, "ray_commit": None}
    assert bare_api.get("/timezone").json() == {"offset": None, "value": None}
    metadata = bare_api.get("/api/v0/cluster_metadata").json()
    assert metadata == {
        "result": True,
        "msg": "",
        "data": {"rayVersion": ray_version, "pythonVersion": None, "rayInitCluster": None},
    }
    # Without the head's zone the autoscaler's time is printed in UTC.
    text = bare_api.get("/api/cluster_status", params={"format": "1"}).json()
    assert text["data"]["clusterStatus"].startswith(
        "======== Autoscaler status: 2026-11-21 20:43:33.547000 ========"
    )


# -- probes of services a recorded session does not run -----------------------------------


def test_probes_answer_as_a_cluster_without_the_services(api: httpx.Client) -> None:
    grafana = api.get("/api/grafana_health")
    assert grafana.status_code == 500
    assert (grafana.json()["result"], grafana.json()["msg"]) == (
        False,
        "Grafana healthcheck failed",
    )
    prometheus = api.get("/api/prometheus_health")
    assert prometheus.status_code == 500
    assert prometheus.json()["msg"] == "prometheus healthcheck failed."
    assert api.get("/api/authentication_mode").json() == {"authentication_mode": "disabled"}
    assert api.get("/usage_stats_enabled").json() == {
        "result": True,
        "msg": "Fetched usage stats enabled",
        "data": {"usageStatsEnabled": False, "usageStatsPromptEnabled": False},
    }
    profiling = api.get("/api/profiling_enabled").json()
    assert profiling["data"]["profilingEnabled"] is False
    assert api.get("/api/v0/runtime_env_redaction").json()["data"] == {"redactionEnabled": True}
    assert api.get("/api/v0/platform_events").json() == {
        "result": True,
        "msg": "Retrieved platform events",
        "data": {"events": []},
    }
    assert api.get("/api/data/datasets/01000000").json() == {"datasets": []}


def test_every_probe_of_the_ui_is_answered(api: httpx.Client) -> None:
    """Each dashboard path the Ray UI build fetches (outside the state API, jobs and
    events, which other modules answer) gets an answer, not a 404."""
    import ray.dashboard

    build = Path(ray.dashboard.__file__).parent / "client" / "build" / "static" / "js"
    code = "".join(p.read_text() for p in build.glob("*.js"))
    probes = {
        "/api/grafana_health", "/api/prometheus_health", "/api/authentication_mode",
        "/api/profiling_enabled", "/api/v0/runtime_env_redaction", "/api/v0/cluster_metadata",
        "api/v0/platform_events", "api/serve/applications/", "api/cluster_status?format=1",
        "logical/actors", "nodes?view=summary", "api/data/datasets/", "/timezone",
    }  # fmt: skip
    for probe in probes:
        assert f'"{probe}"' in code, probe
        path = "/" + probe.lstrip("/") + ("01000000" if probe.endswith("datasets/") else "")
        assert api.get(path).status_code in (200, 500), probe
