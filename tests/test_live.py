"""Live sessions: a real Ray head whose collector writes to the lake, a Kubernetes API
answered by a small HTTP double, and `raylake serve` between them.

The lake also holds the bundled capture twice: as `default/demo`, and as an earlier
session of the running cluster (a session that is not the running one, so not live). The
Kubernetes double lists the running cluster (owned by a RayJob) and a RayCluster none of
whose sessions is in the lake yet. The server proxies live-only routes to the real Ray
dashboard (the URL template points at it) and answers everything else from the lake.

Only the processes started here are stopped (never `ray stop`): see `ray_cluster`.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.node import current_session_dir, node_id
from lake.layout import ClusterKey

from conftest import CLUSTER, SESSION, ingest_sample
from ray_cluster import (
    HOST,
    Collector,
    Ports,
    RayNode,
    clean_env,
    event_export_env,
    node_ports,
    ray_temp_root,
    start,
    start_collector,
    wait_for,
)
from s3_server import free_port
from server import Server, running_server

LIVE = ClusterKey("default", "nightly-raycluster-x7k2p")
FRESH = ClusterKey("team-x", "fresh")  # running, but no session of it in the lake yet
TOKEN = "kubernetes-double-token"
FLUSH_SECONDS = 2.0  # the collector's --flush-interval (ray_cluster.start_collector)
RECHECK_SECONDS = 1.0  # the server's
# After Ray lists new tasks, raylake answers them once the collector has flushed them
# (one flush interval), the server has rechecked the catalog and materialized the
# session again (about a second on two shared cores).
CATCH_UP_SECONDS = FLUSH_SECONDS + RECHECK_SECONDS + 7.0
LISTING_SECONDS = 5.0  # web/live.py: how long a Kubernetes listing is reused
DRIVER = """
import sys
import ray

ray.init(address=sys.argv[1])


@ray.remote
def shout(i):
    print(f"shout {i}")
    return i


print(sum(ray.get([shout.remote(i) for i in range(int(sys.argv[2]))])))
"""
TASK_FIELDS = (
    "task_id", "attempt_number", "name", "state", "type", "func_or_class_name", "job_id",
    "node_id", "worker_id", "worker_pid",
)  # fmt: skip


def ray_cluster_item(cluster: ClusterKey, created: str, owner: str | None) -> dict[str, Any]:
    """A RayCluster as the Kubernetes API lists it (KubeRay's ray.io/v1 shape)."""
    metadata: dict[str, Any] = {
        "name": cluster.name,
        "namespace": cluster.namespace,
        "uid": f"uid-{cluster.name}",
        "creationTimestamp": created,
        "generation": 1,
    }
    if owner:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "ray.io/v1",
                "kind": "RayJob",
                "name": owner,
                "uid": f"uid-{owner}",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": metadata,
        "spec": {"rayVersion": "2.60.0", "headGroupSpec": {"rayStartParams": {}}},
        "status": {
            "state": "ready",
            "head": {"serviceName": f"{cluster.name}-head-svc", "podName": f"{cluster.name}-head"},
        },
    }


@dataclass
class KubernetesDouble:
    """`GET /apis/ray.io/v1[/namespaces/<ns>]/rayclusters`, nothing else."""

    items: list[dict[str, Any]]
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # path, auth

    def serve(self) -> ThreadingHTTPServer:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                double.requests.append((self.path, self.headers.get("Authorization")))
                path = self.path.split("?")[0]
                namespaced = re.fullmatch(r"/apis/ray\.io/v1/namespaces/([^/]+)/rayclusters", path)
                if path == "/apis/ray.io/v1/rayclusters" or namespaced:
                    items = [
                        i
                        for i in double.items
                        if not namespaced or i["metadata"]["namespace"] == namespaced[1]
                    ]
                    body: dict[str, Any] = {
                        "apiVersion": "ray.io/v1",
                        "kind": "RayClusterList",
                        "metadata": {"resourceVersion": "4242"},
                        "items": items,
                    }
                    status = 200
                else:
                    body = {
                        "kind": "Status",
                        "status": "Failure",
                        "reason": "NotFound",
                        "code": 404,
                    }
                    status = 404
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def write_kubeconfig(path: Path, api_url: str) -> Path:
    """A kubeconfig (JSON is YAML) whose one context is the double, with a token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "double", "cluster": {"server": api_url}}],
        "users": [{"name": "reader", "user": {"token": TOKEN}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "reader"}}],
        "current-context": "double",
    }
    path.write_text(json.dumps(config))
    return path


# `raylake serve` with these settings (its flags are raylake.py's; this builds the same
# ServerConfig directly).
@contextlib.contextmanager
def serving(
    lake: str, work: Path, kubeconfig: Path, template: str, namespaces: str = ""
) -> Iterator[Server]:
    """`raylake serve` with the live-cluster settings, stopped (its pid only) on exit."""
    args = [
        "--recheck-seconds", str(RECHECK_SECONDS), "--kubeconfig", str(kubeconfig),
        "--live-dashboard-url-template", template,
    ]  # fmt: skip
    for namespace in filter(None, namespaces.split(",")):
        args += ["--live-namespace", namespace]
    with running_server(lake, work, *args) as server:
        yield server


@dataclass
class Live:
    lake: str
    work: Path
    server: Server
    dashboard: str  # the real Ray dashboard
    session: str  # the running session
    head_node: str
    logs: Path  # the running session's logs/ directory
    kubernetes: KubernetesDouble
    kubernetes_server: ThreadingHTTPServer
    kubeconfig: Path
    gcs: str
    collector: Collector


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("live")
    preferred = tmp_path_factory.mktemp("r")  # short: Ray's socket paths are bounded
    ray_root = ray_temp_root(preferred)
    lake = str(work / "lake")
    ingest_sample(lake)  # default/demo
    ingest_sample(lake, LIVE)  # an earlier session of the running cluster
    ports = Ports()
    node_port = node_ports(ports, head=True)
    dashboard = f"http://{HOST}:{node_port['dashboard_port']}"
    collector_port = ports.one()
    head = RayNode(
        "head", ray_root / "h", node_port, event_export_env(collector_port), work / "ray.log"
    )
    head.temp_dir.mkdir()
    collector = start_collector(
        "head", collector_port, Path(lake), work / "spool", head.temp_dir,
        node_port["dashboard_port"], work / "collector.log", LIVE.name,
    )  # fmt: skip
    double = KubernetesDouble(
        [
            ray_cluster_item(LIVE, "2026-11-01T08:00:00Z", owner="nightly"),
            ray_cluster_item(FRESH, "2026-11-02T09:30:00Z", owner=None),
        ]
    )
    kubernetes_server = double.serve()
    kubeconfig = write_kubeconfig(
        work / "kubeconfig", f"http://{HOST}:{kubernetes_server.server_address[1]}"
    )
    try:
        head.start()
        with httpx.Client(base_url=dashboard, timeout=30) as ray:
            wait_for("the head's dashboard", lambda: ray.get("/api/version").is_success, 120)
        session_dir = current_session_dir(head.temp_dir)
        assert session_dir is not None
        head_node = node_id(session_dir)
        assert head_node is not None
        with serving(lake, work, kubeconfig, dashboard) as server:
            yield Live(
                lake, work, server, dashboard, session_dir.name, head_node,
                session_dir / "logs", double, kubernetes_server, kubeconfig,
                head.gcs_address, collector,
            )  # fmt: skip
    finally:
        head.stop({collector.process.popen.pid}, grace=10.0)
        collector.signal_exit()
        if collector.wait_exit(40) is None:
            collector.process.kill()
        kubernetes_server.shutdown()
        kubernetes_server.server_close()
        if ray_root != preferred:
            shutil.rmtree(ray_root, ignore_errors=True)


def clusters(server: Server, **params: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/clusters", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()
    assert answer.headers["x-total-count"] == str(len(listed))
    return listed


def listed_session(live: Live) -> list[dict[str, Any]]:
    return [c for c in clusters(live.server) if c["sessionName"] == live.session]


def run_driver(live: Live, tasks: int) -> None:
    driver = start(
        "driver",
        [sys.executable, "-c", DRIVER, live.gcs, str(tasks)],
        live.work / f"driver-{time.monotonic_ns()}.log",
        clean_env(event_export_env(live.collector.port)),
    )
    try:
        code = driver.popen.wait(timeout=180)
    except subprocess.TimeoutExpired:
        driver.kill()
        raise AssertionError(f"the driver hangs:\n{driver.output()}") from None
    assert code == 0, driver.output()


def shout_tasks(client: httpx.Client) -> dict[tuple[str, int], dict[str, Any]]:
    answer = client.get("/api/v0/tasks", params={"limit": "10000", "detail": "1"})
    assert answer.status_code == 200, answer.text
    return {
        (t["task_id"], t["attempt_number"]): {k: t[k] for k in TASK_FIELDS}
        for t in answer.json()["data"]["result"]["result"]
        if t["func_or_class_name"] == "shout"
    }


def finished_tasks(client: httpx.Client, count: int) -> dict[tuple[str, int], dict[str, Any]]:
    """The `shout` tasks, once there are `count` and all finished (else none)."""
    tasks = shout_tasks(client)
    states = {t["state"] for t in tasks.values()}
    return tasks if len(tasks) == count and states == {"FINISHED"} else {}


def same_tasks(client: httpx.Client, expected: dict[tuple[str, int], dict[str, Any]]) -> bool:
    return shout_tasks(client) == expected


def usage_reported(ray: httpx.Client) -> bool:
    """Ray lists a node's usage once its agent has reported it (every few seconds)."""
    summary = ray.get("/nodes", params={"view": "summary"}).json()["data"]["summary"]
    return bool(summary) and all("cpu" in node for node in summary)


def read_stream(client: httpx.Client, path: str, params: dict[str, str], quiet: float) -> bytes:
    """What a following stream sends until it has been quiet for `quiet` seconds."""
    data = b""
    timeout = httpx.Timeout(30.0, read=quiet)
    with client.stream("GET", path, params=params, timeout=timeout) as answer:
        assert answer.status_code == 200, answer.read()
        with contextlib.suppress(httpx.ReadTimeout):
            for chunk in answer.iter_raw():
                data += chunk
    return data


# --- listing -----------------------------------------------------------------------------


def test_clusters_marks_the_running_session_live(live: Live) -> None:
    running = wait_for("the running session in the catalog", lambda: listed_session(live), 60)
    listed = clusters(live.server)
    by_key = {(c["namespace"], c["name"], c["sessionName"]): c for c in listed}
    assert by_key.keys() == {
        (LIVE.namespace, LIVE.name, live.session),
        (LIVE.namespace, LIVE.name, SESSION),
        (CLUSTER.namespace, CLUSTER.name, SESSION),
        (FRESH.namespace, FRESH.name, ""),
    }
    assert running[0]["live"] is True and running[0]["kind"] == "RayJob", listed
    assert running[0]["ended"] is False
    earlier = by_key[(LIVE.namespace, LIVE.name, SESSION)]
    assert (earlier["live"], earlier["kind"]) == (False, None)
    demo = by_key[(CLUSTER.namespace, CLUSTER.name, SESSION)]
    assert (demo["live"], demo["kind"]) == (False, None)
    fresh = by_key[(FRESH.namespace, FRESH.name, "")]
    assert fresh == {
        "name": FRESH.name,
        "namespace": FRESH.namespace,
        "sessionName": "",
        "createTime": "2026-11-02T09:30:00Z",
        "createTimeStamp": 1793611800000,
        "rayVersion": "",
        "ended": False,
        "lastEventTime": None,
        "nodes": 0,
        "live": True,
        "kind": "RayCluster",
    }
    # KubeRay's keys first, every entry the same keys, newest first.
    assert {tuple(c) for c in listed} == {tuple(fresh)}
    stamps = [c["createTimeStamp"] for c in listed]
    assert stamps == sorted(stamps, reverse=True)
    assert [c["name"] for c in clusters(live.server, namespace="team-x")] == [FRESH.name]
    # The server authenticated with the kubeconfig's token.
    assert {auth for _, auth in live.kubernetes.requests} == {f"Bearer {TOKEN}"}


def test_the_kubernetes_listing_is_reused(live: Live) -> None:
    before = len(live.kubernetes.requests)
    started = time.monotonic()
    for _ in range(10):
        clusters(live.server)
    elapsed = time.monotonic() - started
    asked = len(live.kubernetes.requests) - before
    assert asked <= 1 + int(elapsed / LISTING_SECONDS), (asked, elapsed)
    assert {path for path, _ in live.kubernetes.requests} == {"/apis/ray.io/v1/rayclusters"}


# --- the running session, from the lake ------------------------------------------------


def test_the_live_session_answers_from_the_lake_as_the_head_does(live: Live) -> None:
    wait_for("the running session in the catalog", lambda: listed_session(live), 60)
    with (
        httpx.Client(base_url=live.server.url, timeout=60) as lake_client,
        httpx.Client(base_url=live.dashboard, timeout=60) as ray,
    ):
        entered = lake_client.get(f"/enter_cluster/{LIVE.namespace}/{LIVE.name}/{live.session}")
        assert entered.status_code == 200, entered.text
        total = 0
        for new_tasks in (12, 7):  # new tasks arrive while the session is open
            run_driver(live, new_tasks)
            total += new_tasks
            expected = wait_for(
                "Ray to list the tasks finished", partial(finished_tasks, ray, total), 60
            )
            settled = time.monotonic()
            wait_for(
                "raylake to answer what Ray answers",
                partial(same_tasks, lake_client, expected),
                CATCH_UP_SECONDS,
            )
            print(f"{total} tasks: raylake caught up {time.monotonic() - settled:.1f} s after Ray")


def test_live_only_routes_come_from_the_head(live: Live) -> None:
    wait_for("the running session in the catalog", lambda: listed_session(live), 60)
    params = {"session": f"{LIVE.namespace}/{LIVE.name}/{live.session}"}
    with (
        httpx.Client(base_url=live.server.url, timeout=60) as lake_client,
        httpx.Client(base_url=live.dashboard, timeout=60) as ray,
    ):
        wait_for("the head's first usage report", partial(usage_reported, ray), 60)
        answer = lake_client.get("/nodes", params={"view": "summary", **params})
        assert answer.status_code == 200, answer.text
        summary = answer.json()
        nodes = summary["data"]["summary"]
        assert [n["raylet"]["nodeId"] for n in nodes] == [live.head_node]
        # Live usage only the head's reporter knows (the lake's answer has none).
        assert {"cpu", "mem", "now"} <= nodes[0].keys()
        own = ray.get("/nodes", params={"view": "summary"}).json()
        assert summary.keys() == own.keys() and summary["msg"] == own["msg"]
        answer = lake_client.get(f"/nodes/{live.head_node}", params=params)
        assert answer.status_code == 200, answer.text
        detail = answer.json()
        assert detail["data"]["detail"]["raylet"]["nodeId"] == live.head_node
        assert "cpu" in detail["data"]["detail"]
        status = lake_client.get("/api/cluster_status", params=params)
        assert status.status_code == 200
        assert status.json().keys() == ray.get("/api/cluster_status").json().keys()
        # An ended session's summary is the lake's.
        ended = lake_client.get(
            "/nodes",
            params={"view": "summary", "session": f"{CLUSTER.namespace}/{CLUSTER.name}/{SESSION}"},
        ).json()
        assert ended["data"]["summary"] and "cpu" not in ended["data"]["summary"][0]


def test_log_streaming_is_the_heads_byte_for_byte_and_follows(live: Live) -> None:
    wait_for("the running session in the catalog", lambda: listed_session(live), 60)
    log = live.logs / "live-test.log"
    log.write_bytes(b"".join(f"line {i} \x1b[1;31mred\x1b[0m\n".encode() for i in range(300)))
    query = {"node_id": live.head_node, "filename": "live-test.log", "lines": "50"}
    session = {"session": f"{LIVE.namespace}/{LIVE.name}/{live.session}"}
    with (
        httpx.Client(base_url=live.server.url, timeout=60) as lake_client,
        httpx.Client(base_url=live.dashboard, timeout=60) as ray,
    ):
        for extra in ({}, {"filter_ansi_code": "true"}):
            own = read_stream(ray, "/api/v0/logs/stream", query | extra, quiet=3)
            proxied = read_stream(
                lake_client, "/api/v0/logs/stream", query | extra | session, quiet=3
            )
            assert proxied == own and b"line 299" in own and b"line 249" not in own
        # Following: lines written after the stream began arrive through the proxy.
        params = query | session | {"lines": "1"}
        with lake_client.stream("GET", "/api/v0/logs/stream", params=params) as answer:
            chunks = answer.iter_raw()
            assert b"line 299" in next(chunks)
            with log.open("ab") as out:
                out.write(b"appended while streaming\n")
            received = b""
            deadline = time.monotonic() + 20
            while b"appended while streaming" not in received and time.monotonic() < deadline:
                received += next(chunks)
            assert b"appended while streaming" in received


def test_a_head_that_does_not_answer_is_a_clear_502(live: Live) -> None:
    wait_for("the running session in the catalog", lambda: listed_session(live), 60)
    closed = f"http://{HOST}:{free_port(HOST)}"  # nothing listens there
    with serving(live.lake, live.work, live.kubeconfig, closed, namespaces="default") as server:
        # Listed through the namespaced route: team-x is not watched.
        listed = {(c["namespace"], c["live"]) for c in clusters(server) if c["live"]}
        assert listed == {(LIVE.namespace, True)}
        assert "/apis/ray.io/v1/namespaces/default/rayclusters" in {
            path for path, _ in live.kubernetes.requests
        }
        params = {"session": f"{LIVE.namespace}/{LIVE.name}/{live.session}"}
        with httpx.Client(base_url=server.url, timeout=60) as client:
            failed = client.get("/api/cluster_status", params=params)
            assert failed.status_code == 502
            body = failed.json()
            assert body["result"] is False and body["data"] == {"error": "head_unreachable"}
            assert closed in body["msg"]
            # What the lake knows does not need the head.
            tasks = client.get("/api/v0/tasks", params=params)
            assert tasks.status_code == 200 and tasks.json()["result"] is True


def test_kubernetes_going_away_does_not_break_clusters(live: Live) -> None:
    wait_for("the running session in the catalog", lambda: listed_session(live), 60)
    live.kubernetes_server.shutdown()
    live.kubernetes_server.server_close()
    time.sleep(LISTING_SECONDS + 0.5)  # the last listing is no longer reused
    for attempt in range(2):
        started = time.monotonic()
        listed = clusters(live.server)
        assert time.monotonic() - started < 10
        assert {(c["name"], c["sessionName"], c["live"]) for c in listed} == {
            (LIVE.name, live.session, False),
            (LIVE.name, SESSION, False),
            (CLUSTER.name, SESSION, False),
        }
        if attempt == 0:
            time.sleep(LISTING_SECONDS + 0.5)  # a second failed listing: not logged again
    warnings = live.server.output().count("cannot list RayClusters")
    assert warnings == 1, live.server.output()
