"""GCS fault tolerance: the head is lost and replaced while the cluster and its session
go on, and the lake tells one story of it.

A Redis (Debian's `redis-server`, on a loopback port with a directory of its own) is the
head's external GCS store (`RAY_REDIS_ADDRESS`, `RAY_external_storage_namespace`). A
head and a worker node start with a collector each; a driver runs tasks on both nodes
and leaves a named detached actor on the worker. Then the head is lost as a deleted pod
loses it: its Ray processes are SIGKILLed at once, and its collector gets SIGTERM and
drains. A new head starts as a new pod would: a new temp dir, a new collector with a new
spool, the same ports and the same Redis. Ray 2.60 then keeps the session: the new head
reads the session name from Redis (`ray/_private/node.py: check_persisted_session_name`),
so its session directory has the old name in the new temp dir, and every event keeps the
old `sessionName`. GCS recovers its tables: the worker node reconnects (its raylet waits
for GCS), the detached actor stays where it was, and the old head is declared dead when
its health checks fail. A second driver calls the actor again and runs more tasks.

While the cluster still lives, the lake (its views and `raylake serve`'s API) must show
one session (no second one invented) with a catalog entry per node, the old head's ended;
the old head DEAD, the new head and the worker ALIVE, the actor ALIVE and not
restarted; every task attempt once, including those the live dashboard no longer knows
(GCS keeps task events in memory only, so the new head's dashboard lists only the tasks
that ran after it started).

Only the processes started here are ever stopped (never `ray stop`): see `ray_cluster`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_ray_e2e import DRAIN_LIMIT, state_api, wait_until_quiet

from ingest.node import current_session_dir, node_id
from lake.catalog import CatalogEntry, read_entries
from lake.layout import ClusterKey
from lake.store import Lake

from live import rows

# tests/ is not a package: pytest's default import mode puts this directory on sys.path.
from ray_cluster import (
    HOST,
    Collector,
    Ports,
    Process,
    RayNode,
    clean_env,
    event_export_env,
    node_ports,
    ray_temp_root,
    start,
    start_collector,
    start_redis,
    wait_for,
)
from server import Server, running_server

WORKLOAD = Path(__file__).parent / "workloads" / "scenario_ha.py"
CLUSTER = ClusterKey("default", "ha")
STORAGE_NAMESPACE = "raylake-ha"  # the cluster's keys in Redis
SQUARES = 40  # 10 per node per driver, two drivers
LOST = "Unexpected termination: health check failed due to missing too many heartbeats"


@dataclass
class HaRun:
    """What the scenario left while the cluster still runs."""

    lake: Lake
    session: str
    session_dirs: dict[str, str]  # first / new head -> its session directory's name
    old_head: str
    new_head: str
    worker: str
    old_collector_exit: int | None
    before: dict[str, Any]  # the first head's dashboard, before it was lost
    after: dict[str, Any]  # the new head's dashboard, at the end
    server: Server

    def api(self, path: str, **params: Any) -> httpx.Response:
        """The history server's answer for this session."""
        session = f"{CLUSTER.namespace}/{CLUSTER.name}/{self.session}"
        return httpx.get(
            f"{self.server.url}{path}", params={**params, "session": session}, timeout=60
        )

    def api_list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        answer = self.api(path, **params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["result"] is True, body
        data = body["data"]["result"]
        assert data["total"] == len(data["result"]), data["total"]
        result: list[dict[str, Any]] = data["result"]
        return result


def metric(collector: Collector, name: str) -> float:
    text = collector.client.get("/metrics").text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


def all_flushed(collectors: list[Collector]) -> bool:
    """Every event each collector accepted is in the lake."""
    return all(
        metric(c, "raylake_events_flushed_total") >= metric(c, "raylake_events_accepted_total")
        for c in collectors
    )


def live_answers(dashboard: str) -> dict[str, Any]:
    with httpx.Client(base_url=dashboard, timeout=30) as client:
        return {
            "tasks": state_api(client, "/api/v0/tasks?limit=10000&detail=1"),
            "actors": state_api(client, "/api/v0/actors?limit=10000&detail=1"),
            "nodes": state_api(client, "/api/v0/nodes?detail=1"),
            "jobs": state_api(client, "/api/v0/jobs?detail=1"),
        }


def live_list(dashboard: str, path: str) -> list[dict[str, Any]] | None:
    """One list from the live dashboard, or None while it cannot answer it whole (it
    may be starting, or GCS recovering)."""
    with contextlib.suppress(AssertionError), httpx.Client(base_url=dashboard, timeout=30) as c:
        return state_api(c, path)
    return None


def states(nodes: list[dict[str, Any]] | None) -> dict[str, str]:
    return {n["node_id"]: n["state"] for n in nodes or []}


class Scenario:
    """Starts and stops everything; `stop_all` kills whatever is still running."""

    def __init__(self, root: Path, ray_root: Path) -> None:
        self.root = root
        self.ray_root = ray_root
        self.ports = Ports()
        self.collectors: list[Collector] = []
        self.nodes: list[RayNode] = []
        self.processes: list[Process] = []
        self.started = time.monotonic()
        self.stack = contextlib.ExitStack()  # the history server, stopped before the rest
        self.redis_port = 0

    def note(self, what: str) -> None:
        """A line of the run's timeline (pytest shows it when a test fails)."""
        print(f"{time.monotonic() - self.started:6.1f} s  {what}", flush=True)

    def collector(self, role: str, temp_dir: Path, dashboard_port: int, name: str) -> Collector:
        collector = start_collector(
            role,
            self.ports.one(),
            self.root / "lake",
            self.root / f"spool-{name}",
            temp_dir,
            dashboard_port,
            self.root / f"collector-{name}.log",
            CLUSTER.name,
        )
        self.collectors.append(collector)
        return collector

    def head(self, temp_dir: Path, ports: dict[str, int], collector: Collector) -> RayNode:
        env = {
            **event_export_env(collector.port),
            "RAY_REDIS_ADDRESS": f"{HOST}:{self.redis_port}",
            "RAY_external_storage_namespace": STORAGE_NAMESPACE,
        }
        node = RayNode("head", temp_dir, ports, env, self.root / f"ray-start-{temp_dir.name}.log")
        self.nodes.append(node)
        node.start()
        return node

    def drive(self, gcs: str, collector: Collector, phase: str) -> None:
        """The workload's phase, as a driver outside Ray exporting to `collector`."""
        driver = start(
            f"driver-{phase}",
            [sys.executable, str(WORKLOAD), gcs, phase],
            self.root / f"driver-{phase}.log",
            clean_env(event_export_env(collector.port)),
        )
        self.processes.append(driver)
        try:
            code = driver.popen.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the {phase} driver hangs:\n{driver.output()}") from None
        assert code == 0 and "done" in driver.output(), driver.output()

    def settle(self, dashboard: str, collectors: list[Collector]) -> dict[str, Any]:
        """Once every task has ended and Ray sent it all: the live dashboard's answers."""

        def ended() -> bool:
            tasks = live_list(dashboard, "/api/v0/tasks?limit=10000&detail=1")
            return tasks is not None and all(t["state"] in ("FINISHED", "FAILED") for t in tasks)

        wait_for("every task to end", ended, timeout=60)
        wait_until_quiet(collectors)
        return live_answers(dashboard)

    def run(self) -> HaRun:
        root, ports = self.root, self.ports
        self.redis_port = ports.one()
        self.processes.append(start_redis(self.redis_port, root / "redis", root / "redis.log"))
        head_ports = node_ports(ports, head=True)
        worker_ports = node_ports(ports, head=False)
        dashboard = f"http://{HOST}:{head_ports['dashboard_port']}"
        dashboard_port = head_ports["dashboard_port"]

        first_dir, worker_dir = self.ray_root / "h", self.ray_root / "w"
        head_collector = self.collector("head", first_dir, dashboard_port, "head-1")
        worker_collector = self.collector("worker", worker_dir, dashboard_port, "worker")
        first = self.head(first_dir, head_ports, head_collector)
        self.note("redis, collectors and the first head up")
        # The worker's raylet waits for a lost GCS this long before it gives up (60 s by
        # default): room for the new head to start on a busy machine.
        worker_env = {
            **event_export_env(worker_collector.port),
            "RAY_gcs_rpc_server_reconnect_timeout_s": "180",
        }
        worker = RayNode("worker", worker_dir, worker_ports, worker_env, root / "ray-start-w.log")
        self.nodes.append(worker)
        worker.start(head_gcs=first.gcs_address)
        self.note("worker node up")

        self.drive(first.gcs_address, head_collector, "before")
        before = self.settle(dashboard, [head_collector, worker_collector])
        self.note(f"first driver done; nodes {states(before['nodes'])}")
        wait_for("the lake to hold it all", lambda: all_flushed(self.collectors), timeout=30)
        first_session = current_session_dir(first_dir)
        worker_session = current_session_dir(worker_dir)
        assert first_session and worker_session, (first_session, worker_session)
        old_head, worker_id = node_id(first_session), node_id(worker_session)
        assert old_head and worker_id

        # The head pod is deleted: Ray dies at once, the collector drains on SIGTERM.
        killed = first.crash({c.process.popen.pid for c in self.collectors})
        head_collector.signal_exit()
        old_exit = head_collector.wait_exit(DRAIN_LIMIT)
        self.note(f"first head lost ({killed} processes killed); its collector exited {old_exit}")

        # Its replacement: a new temp dir and collector, the same ports and Redis.
        second_dir = self.ray_root / "n"
        new_collector = self.collector("head", second_dir, dashboard_port, "head-2")
        second = self.head(second_dir, head_ports, new_collector)
        self.note("the new head is up")
        second_session = current_session_dir(second_dir)
        assert second_session, second_dir
        new_head = node_id(second_session)
        assert new_head

        expected = {old_head: "DEAD", new_head: "ALIVE", worker_id: "ALIVE"}
        wait_for(
            "the old head DEAD, the new head and the worker ALIVE",
            lambda: states(live_list(dashboard, "/api/v0/nodes?detail=1")) == expected,
            timeout=90,
        )
        self.note("GCS has recovered: the old head is DEAD")
        self.drive(second.gcs_address, new_collector, "after")
        collectors = [worker_collector, new_collector]
        after = self.settle(dashboard, collectors)
        wait_for("the lake to hold it all", lambda: all_flushed(collectors), timeout=30)
        self.note(f"second driver done; nodes {states(after['nodes'])}")

        server = self.stack.enter_context(running_server(str(root / "lake"), root))
        return HaRun(
            lake=Lake(str(root / "lake")),
            session=first_session.name,
            session_dirs={"first": first_session.name, "new": second_session.name},
            old_head=old_head,
            new_head=new_head,
            worker=worker_id,
            old_collector_exit=old_exit,
            before=before,
            after=after,
            server=server,
        )

    def stop_all(self) -> None:
        """Whatever is left, however the run ended: drivers, Ray, collectors, Redis."""
        exclude = {c.process.popen.pid for c in self.collectors}
        for node in reversed(self.nodes):
            node.stop(exclude, grace=5.0)
        for collector in self.collectors:
            collector.process.kill()
            collector.client.close()
        for process in self.processes:
            process.kill()


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaRun]:
    preferred = tmp_path_factory.mktemp("r")  # short: Ray's socket paths are bounded
    ray_root = ray_temp_root(preferred)
    scenario = Scenario(tmp_path_factory.mktemp("ha"), ray_root)
    try:
        yield scenario.run()
    finally:
        scenario.stack.close()
        scenario.stop_all()
        if ray_root != preferred:
            shutil.rmtree(ray_root, ignore_errors=True)


# --- one session -------------------------------------------------------------------------


def test_ray_keeps_the_session_across_the_head_restart(ha: HaRun) -> None:
    assert ha.session_dirs["new"] == ha.session_dirs["first"] == ha.session
    assert ha.new_head != ha.old_head
    sessions = rows(
        ha.lake,
        f"SELECT DISTINCT session FROM node_lifecycle_events WHERE cluster = '{CLUSTER.name}'",
    )
    assert sessions == [{"session": ha.session}]


def entries(ha: HaRun) -> dict[str, CatalogEntry]:
    found = [e for e in read_entries(ha.lake) if e.cluster_key == CLUSTER]
    assert {e.session for e in found} == {ha.session}, "a second session was invented"
    return {e.node_id: e for e in found}


def test_the_catalog_has_one_entry_per_node_in_the_one_session(ha: HaRun) -> None:
    by_node = entries(ha)
    assert by_node.keys() == {ha.old_head, ha.new_head, ha.worker}
    assert {n: e.role for n, e in by_node.items()} == {
        ha.old_head: "head",
        ha.new_head: "head",
        ha.worker: "worker",
    }
    # The lost head's collector drained and ended its entry; the others still run.
    assert ha.old_collector_exit == 0
    assert {n: e.ended for n, e in by_node.items()} == {
        ha.old_head: True,
        ha.new_head: False,
        ha.worker: False,
    }
    assert all(e.ray_version == "2.60.0" for n, e in by_node.items() if n != ha.worker)
    # Each head's entry counts its own node's events: the old one's end before the new
    # one's begin.
    old, new = by_node[ha.old_head], by_node[ha.new_head]
    assert old.last_event_time and new.first_event_time
    assert old.last_event_time < new.first_event_time
    assert old.event_counts.get("node_definition") and new.event_counts.get("node_definition")


def test_the_history_server_lists_one_live_session(ha: HaRun) -> None:
    answer = httpx.get(f"{ha.server.url}/clusters", params={"name": CLUSTER.name}, timeout=30)
    assert answer.status_code == 200, answer.text
    clusters = answer.json()
    assert [(c["namespace"], c["name"], c["sessionName"]) for c in clusters] == [
        (CLUSTER.namespace, CLUSTER.name, ha.session)
    ]
    assert clusters[0]["nodes"] == 3
    assert clusters[0]["ended"] is False  # the new head and the worker still run
    assert clusters[0]["rayVersion"] == "2.60.0"


# --- nodes, actors, tasks ----------------------------------------------------------------


def test_the_old_head_is_dead_and_the_new_one_alive(ha: HaRun) -> None:
    expected = {ha.old_head: "DEAD", ha.new_head: "ALIVE", ha.worker: "ALIVE"}
    assert states(ha.before["nodes"]) == {ha.old_head: "ALIVE", ha.worker: "ALIVE"}
    assert states(ha.after["nodes"]) == expected
    live = {n["node_id"]: n for n in ha.after["nodes"]}
    assert live[ha.old_head]["state_message"] == LOST

    lake = {
        n["node_id"]: n
        for n in rows(
            ha.lake, "SELECT node_id, state, state_message, is_head_node, node_ip FROM nodes"
        )
    }
    served = {n["node_id"]: n for n in ha.api_list("/api/v0/nodes", detail="1")}
    assert states(list(lake.values())) == states(list(served.values())) == expected
    for node, want in live.items():
        for field_name in ("state_message", "is_head_node", "node_ip"):
            assert lake[node][field_name] == want[field_name], (node, field_name)
            assert served[node][field_name] == want[field_name], (node, field_name)
    assert {n for n, v in served.items() if v["is_head_node"]} == {ha.old_head, ha.new_head}


def test_the_detached_actor_stays_alive_where_it_was(ha: HaRun) -> None:
    live = [a for a in ha.after["actors"] if a["name"] == "keeper"]
    assert len(live) == 1 and live[0]["state"] == "ALIVE", live
    keeper = live[0]
    assert keeper["node_id"] == ha.worker and keeper["is_detached"] is True
    assert keeper["num_restarts"] == "0"
    before = [a for a in ha.before["actors"] if a["name"] == "keeper"]
    assert [(a["actor_id"], a["pid"]) for a in before] == [(keeper["actor_id"], keeper["pid"])]

    lake = rows(
        ha.lake,
        "SELECT actor_id, state, node_id, pid, is_detached, num_restarts FROM actors "
        "WHERE name = 'keeper'",
    )
    assert lake == [
        {
            "actor_id": keeper["actor_id"],
            "state": "ALIVE",
            "node_id": ha.worker,
            "pid": keeper["pid"],
            "is_detached": True,
            "num_restarts": 0,
        }
    ]
    served = ha.api_list("/api/v0/actors", detail="1")
    assert [(a["actor_id"], a["state"], a["node_id"], a["pid"], a["num_restarts"])
            for a in served] == [
        (keeper["actor_id"], "ALIVE", ha.worker, keeper["pid"], "0")
    ]  # fmt: skip


def task_keys(tasks: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return sorted((t["task_id"], t["attempt_number"]) for t in tasks)


def test_every_task_once(ha: HaRun) -> None:
    before, after = ha.before["tasks"], ha.after["tasks"]
    # The new head's GCS recovered nodes, actors and jobs from Redis, but not the task
    # events it kept in memory: its dashboard lists only what ran after it started.
    assert not set(task_keys(before)) & set(task_keys(after))
    expected = sorted(task_keys(before) + task_keys(after))
    squares = [t for t in before + after if t["func_or_class_name"] == "square"]
    assert len(squares) == SQUARES
    assert {t["node_id"] for t in squares} == {ha.old_head, ha.new_head, ha.worker}

    lake = rows(
        ha.lake,
        "SELECT task_id, attempt_number, state, node_id, len(events) AS transitions, "
        "len(list_distinct(list_transform(events, lambda e: e.state))) AS states "
        "FROM tasks WHERE type IS NOT NULL AND type <> 'DRIVER_TASK'",
    )
    assert task_keys(lake) == expected
    assert all(t["state"] == "FINISHED" for t in lake), lake
    assert all(t["transitions"] == t["states"] for t in lake), "a transition counted twice"
    live = {(t["task_id"], t["attempt_number"]): t for t in before + after}
    for task in lake:
        assert task["node_id"] == live[(task["task_id"], task["attempt_number"])]["node_id"]

    served = ha.api_list("/api/v0/tasks", limit="10000", detail="1")
    assert task_keys(served) == expected
    assert all(t["state"] == "FINISHED" for t in served)


def test_no_event_is_stored_twice(ha: HaRun) -> None:
    """Each event once, though the head's events came through two collectors."""
    for table in ("task_lifecycle_events", "actor_lifecycle_events", "node_lifecycle_events"):
        [counts] = rows(
            ha.lake,
            "SELECT count(*) AS n, count(DISTINCT (event_id, seq)) AS distinct_n "
            f"FROM {table} WHERE cluster = '{CLUSTER.name}'",
        )
        assert counts["n"] == counts["distinct_n"] > 0, (table, counts)


def test_every_job_once(ha: HaRun) -> None:
    """GCS recovered its job table (and job counter) from Redis: the second driver's job
    has a new id in the same session, and the first one's is still known."""
    live = {j["job_id"]: j["status"] for j in ha.after["jobs"]}
    assert {j["job_id"] for j in ha.before["jobs"]} < live.keys()
    assert len(live) == 2 and set(live.values()) == {"SUCCEEDED"}, live
    lake = rows(ha.lake, "SELECT job_id, status FROM jobs WHERE type = 'DRIVER'")
    assert {j["job_id"]: j["status"] for j in lake} == live
    served = ha.api_list("/api/v0/jobs", detail="1")
    assert {j["job_id"]: j["status"] for j in served} == live
