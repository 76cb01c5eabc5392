"""End to end: a real two-node Ray cluster exporting to `raylake collect`, against its
own live dashboard.

A head and a worker node start on loopback with every port explicit, each with its own
temp dir and its aggregator agent exporting events to its own collector (the head's
collector also polls the head's dashboard). A smaller scenario A runs as a driver
outside Ray (`workloads/scenario_e2e.py`, with the same RAY_* variables, pointing at the
head's collector), then two jobs go through `ray job submit`: one succeeds, one exits
with code 3. Once the collectors have stopped receiving, the live dashboard's answers are
recorded; then the worker node's Ray processes are stopped, then the head's, and only
then the collectors get SIGTERM: they keep serving while Ray's aggregators flush on the
way out, so the lake also learns what happens at shutdown (collectors answer 503 from
the moment they are signalled, so signalling them first would turn those POSTs away).

The lake's views must then agree with what the dashboard answered: every task attempt,
actor, node and job, with the jobs' final status (from the head collector's snapshots
of /api/jobs/), and both nodes' logs must be in it.

Only the processes started here are ever stopped (never `ray stop`): see `ray_cluster`.
"""

from __future__ import annotations

import json
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

from ingest.node import current_session_dir, node_id
from lake.catalog import read_entries
from lake.layout import ClusterKey, logs_dir
from lake.store import Lake

from live import as_dict, assert_tasks_match, rows

# tests/ is not a package: pytest's default import mode puts this directory on sys.path.
from ray_cluster import (
    HOST,
    RAY,
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
    wait_for,
)

WORKLOAD = Path(__file__).parent / "workloads" / "scenario_e2e.py"
JOBS = Path(__file__).parent / "fixtures" / "ray-2.60-scenario-a" / "workload"
CLUSTER = ClusterKey("default", "e2e")
SUBMISSIONS = {"e2e-ok": ("job_ok.py", "SUCCEEDED"), "e2e-fail": ("job_fail.py", "FAILED")}
TERMINAL = {"FINISHED", "FAILED"}
QUIET_SECONDS = 5.0  # the collectors counted no new event for this long: Ray has sent all
DRAIN_LIMIT = 40.0  # the collector promises 20 s after SIGTERM; leave room on 2 cores


@dataclass
class Run:
    """What the scenario left: the lake, and the dashboard's answers before shutdown."""

    lake: Lake
    session: str
    head_node: str
    worker_node: str
    temp_dirs: dict[str, Path]  # node id -> the node's --temp-dir
    live: dict[str, Any]
    collector_exits: dict[str, int | None]


def state_api(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    """The result list of a state API answer, which must be complete."""
    answer = client.get(path)
    answer.raise_for_status()
    body = answer.json()
    assert body["result"] is True, body
    data = body["data"]["result"]
    assert data["total"] == len(data["result"]), (path, data["total"], len(data["result"]))
    assert not data.get("partial_failure_warning"), data["partial_failure_warning"]
    result: list[dict[str, Any]] = data["result"]
    return result


def wait_until_quiet(collectors: list[Collector], limit: float = 120.0) -> None:
    """Until no collector has accepted a new event for QUIET_SECONDS."""
    deadline = time.monotonic() + limit
    last: tuple[float, ...] = ()
    since = time.monotonic()
    while True:
        counts = tuple(c.accepted() if c.process.popen.poll() is None else -1 for c in collectors)
        if counts != last:
            last, since = counts, time.monotonic()
        elif time.monotonic() - since >= QUIET_SECONDS:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the collectors still receive events after {limit} s: {counts}")
        time.sleep(0.5)


def everything_settled(client: httpx.Client) -> bool:
    """Every task attempt the dashboard lists has ended (drivers aside)."""
    tasks = state_api(client, "/api/v0/tasks?limit=10000&detail=1")
    return all(t["state"] in TERMINAL for t in tasks if t["type"] != "DRIVER_TASK")


def submit_jobs(dashboard: str, root: Path) -> dict[str, str]:
    """`ray job submit` both jobs (without waiting), then wait for their final status."""
    for submission_id, (script, _) in SUBMISSIONS.items():
        done = subprocess.run(
            [
                RAY,
                *("job", "submit", "--address", dashboard, "--no-wait"),
                *("--submission-id", submission_id, "--"),
                *(sys.executable, str(JOBS / script)),
            ],
            cwd=root,
            capture_output=True,
            text=True,
            env=clean_env({}),
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    statuses: dict[str, str] = {}
    with httpx.Client(base_url=dashboard, timeout=30) as client:

        def finished() -> bool:
            for submission_id in SUBMISSIONS:
                status = client.get(f"/api/jobs/{submission_id}").json()["status"]
                statuses[submission_id] = status
            return all(s in ("SUCCEEDED", "FAILED", "STOPPED") for s in statuses.values())

        try:
            wait_for("the submitted jobs to end", finished, timeout=180)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {statuses}") from None
    return statuses


class Scenario:
    """Starts and stops everything; `stop_all` kills whatever is still running."""

    def __init__(self, root: Path, ray_root: Path) -> None:
        self.root = root
        self.ray_root = ray_root
        self.ports = Ports()
        self.collectors: dict[str, Collector] = {}
        self.nodes: dict[str, RayNode] = {}
        self.processes: list[Process] = []
        self.started = time.monotonic()

    def note(self, what: str) -> None:
        """A line of the run's timeline (pytest shows it when a test fails)."""
        print(f"{time.monotonic() - self.started:6.1f} s  {what}", flush=True)

    def run(self) -> Run:
        root, ports = self.root, self.ports
        lake_path = root / "lake"
        node_port = {role: node_ports(ports, head=role == "head") for role in ("head", "worker")}
        dashboard_port = node_port["head"]["dashboard_port"]
        dashboard = f"http://{HOST}:{dashboard_port}"
        for role in ("head", "worker"):
            temp_dir = self.ray_root / role[0]
            temp_dir.mkdir()
            collector_port = ports.one()
            self.nodes[role] = RayNode(
                role,
                temp_dir,
                node_port[role],
                event_export_env(collector_port),
                root / f"ray-start-{role}.log",
            )
            # Each collector is up before its node starts: nothing Ray sends is refused.
            self.collectors[role] = start_collector(
                role,
                collector_port,
                lake_path,
                root / f"spool-{role}",
                temp_dir,
                dashboard_port,
                root / f"collector-{role}.log",
                CLUSTER.name,
            )
        self.note(f"collectors up; node ports {node_port}")
        head, worker = self.nodes["head"], self.nodes["worker"]
        head.start()
        self.note("head node started")
        worker.start(head_gcs=head.gcs_address)
        self.note("worker node started")
        client = httpx.Client(base_url=dashboard, timeout=30)
        try:
            wait_for(
                "two live nodes on the dashboard",
                lambda: (
                    [n["state"] for n in state_api(client, "/api/v0/nodes?detail=1")]
                    == ["ALIVE", "ALIVE"]
                ),
                timeout=120,
            )

            # The workload: a driver outside Ray, exporting to the head's collector.
            driver_env = event_export_env(self.collectors["head"].port)
            driver = start(
                "workload",
                [sys.executable, str(WORKLOAD), head.gcs_address],
                root / "workload.log",
                clean_env(driver_env),
            )
            self.processes.append(driver)
            try:
                code = driver.popen.wait(timeout=240)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"the workload hangs:\n{driver.output()}") from None
            assert code == 0, f"the workload exited {code}:\n{driver.output()}"
            assert "done" in driver.output().splitlines(), driver.output()
            self.note("workload done")

            statuses = submit_jobs(dashboard, root)
            assert statuses == {k: status for k, (_, status) in SUBMISSIONS.items()}
            self.note(f"jobs done: {statuses}")

            # Ray reports periodically: wait until every attempt has ended on the
            # dashboard and no collector has received anything for a while.
            wait_for("every task to end", lambda: everything_settled(client), timeout=60)
            collectors = list(self.collectors.values())
            wait_until_quiet(collectors)
            self.note(f"settled: {[c.accepted() for c in collectors]} events accepted")
            live = {
                "tasks": state_api(client, "/api/v0/tasks?limit=10000&detail=1"),
                "actors": state_api(client, "/api/v0/actors?limit=10000&detail=1"),
                "nodes": state_api(client, "/api/v0/nodes?detail=1"),
                "jobs": state_api(client, "/api/v0/jobs?detail=1"),
                "placement_groups": state_api(
                    client, "/api/v0/placement_groups?detail=1&limit=10000"
                ),
            }
            (root / "live.json").write_text(json.dumps(live, indent=1))
        finally:
            client.close()

        session_dirs = {role: current_session_dir(n.temp_dir) for role, n in self.nodes.items()}
        assert all(session_dirs.values()), session_dirs
        ids = {role: node_id(d) for role, d in session_dirs.items() if d}
        assert all(ids.values()), ids

        # Shutdown: the worker node, then the head (each collector keeps accepting what
        # its node's aggregator sends on the way out), then the collectors.
        exclude = {c.process.popen.pid for c in collectors}
        for node in (worker, head):
            killed = node.stop(exclude, grace=10.0)
            self.note(f"{node.role} node stopped; SIGKILL needed for {killed}")
            wait_until_quiet(collectors)
        self.note(f"quiet again: {[c.accepted() for c in collectors]} events accepted")
        for collector in collectors:
            collector.signal_exit()
        exits = {role: c.wait_exit(DRAIN_LIMIT) for role, c in self.collectors.items()}
        self.note(f"collectors exited: {exits}")

        head_session = session_dirs["head"]
        assert head_session is not None
        return Run(
            lake=Lake(str(lake_path)),
            session=head_session.name,
            head_node=str(ids["head"]),
            worker_node=str(ids["worker"]),
            temp_dirs={str(ids[role]): n.temp_dir for role, n in self.nodes.items()},
            live=live,
            collector_exits=exits,
        )

    def stop_all(self) -> None:
        """Whatever is left, however the run ended: the driver, Ray, the collectors."""
        for process in self.processes:
            process.kill()
        exclude = {c.process.popen.pid for c in self.collectors.values()}
        for node in reversed(self.nodes.values()):
            node.stop(exclude, grace=5.0)
        for collector in self.collectors.values():
            collector.process.kill()
            collector.client.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    preferred = tmp_path_factory.mktemp("r")  # short: Ray's socket paths are bounded
    ray_root = ray_temp_root(preferred)
    scenario = Scenario(tmp_path_factory.mktemp("e2e"), ray_root)
    try:
        yield scenario.run()
    finally:
        scenario.stop_all()
        if ray_root != preferred:
            shutil.rmtree(ray_root, ignore_errors=True)


def test_the_collectors_drain_cleanly(run: Run) -> None:
    assert run.collector_exits == {"head": 0, "worker": 0}
    entries = {e.node_id: e for e in read_entries(run.lake) if e.cluster_key == CLUSTER}
    assert entries.keys() == {run.head_node, run.worker_node}
    assert entries[run.head_node].role == "head"
    assert entries[run.worker_node].role == "worker"
    assert all(e.ended and e.session == run.session for e in entries.values())
    assert entries[run.head_node].ray_version == "2.60.0"


def test_the_workload_did_what_the_checks_assume(run: Run) -> None:
    """So that agreeing with the dashboard is not agreeing about nothing."""
    tasks = [t for t in run.live["tasks"] if t["type"] != "DRIVER_TASK"]
    normal = [t for t in tasks if t["type"] == "NORMAL_TASK"]
    assert sum(t["func_or_class_name"] == "square" for t in normal) >= 50
    flaky = [t for t in normal if t["func_or_class_name"] == "flaky"]
    assert sorted(t["attempt_number"] for t in flaky) == [0, 1, 2]
    assert {t["state"] for t in flaky} == {"FAILED"}
    assert {t["node_id"] for t in normal} == {run.head_node, run.worker_node}
    assert any(t["type"] == "ACTOR_TASK" and t["state"] == "FAILED" for t in tasks)
    actors = {a["name"]: a for a in run.live["actors"] if a["class_name"] == "Counter"}
    assert actors["counter"]["state"] == "DEAD" and actors["counter"]["is_detached"]
    assert actors[""]["num_restarts"] == "1" and actors[""]["state"] == "DEAD"
    jobs = {j["submission_id"]: j for j in run.live["jobs"]}
    assert jobs["e2e-fail"]["driver_exit_code"] == 3
    assert jobs[None]["type"] == "DRIVER"


# --- the views against the live dashboard ------------------------------------------------


def test_tasks_match_the_live_dashboard(run: Run) -> None:
    assert_tasks_match(run.lake, [t for t in run.live["tasks"] if t["type"] != "DRIVER_TASK"])


ACTORS_SQL = """
    SELECT actor_id, class_name, state, job_id, name, node_id, pid, ray_namespace,
           is_detached, num_restarts
    FROM actors
"""


def test_actors_match_the_live_dashboard(run: Run) -> None:
    expected = {a["actor_id"]: a for a in run.live["actors"]}
    actual = {a["actor_id"]: a for a in rows(run.lake, ACTORS_SQL)}
    assert actual.keys() == expected.keys()
    for actor_id, want in expected.items():
        got = actual[actor_id]
        for field in (
            "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace",
            "is_detached",
        ):  # fmt: skip
            assert got[field] == want[field], (actor_id, field, got[field], want[field])
        assert str(got["num_restarts"]) == want["num_restarts"], actor_id


def test_nodes_match_the_live_dashboard(run: Run) -> None:
    expected = {n["node_id"]: n for n in run.live["nodes"]}
    actual = {
        n["node_id"]: n
        for n in rows(
            run.lake,
            "SELECT node_id, node_ip, is_head_node, state, state_message, resources_total, "
            "labels FROM nodes",
        )
    }
    assert actual.keys() == expected.keys() == {run.head_node, run.worker_node}
    for node, want in expected.items():
        got = actual[node]
        for field in ("node_ip", "is_head_node"):
            assert got[field] == want[field], (node, field)
        assert as_dict(got["resources_total"]) == want["resources_total"], node
        assert as_dict(got["labels"]) == want["labels"], node
    assert actual[run.head_node]["is_head_node"] is True
    assert actual[run.worker_node]["is_head_node"] is False
    # Stopped first, while the head and both collectors still ran: its death is known
    # (as an expected termination, or as the raylet fate-sharing with its agent, which
    # got the same SIGTERM).
    assert actual[run.worker_node]["state"] == "DEAD"
    reason = actual[run.worker_node]["state_message"].split(":")[0]
    assert reason in ("Expected termination", "Unexpected termination")


def test_jobs_match_the_live_dashboard(run: Run) -> None:
    expected = {j["job_id"]: j for j in run.live["jobs"]}
    actual = {
        j["job_id"]: j
        for j in rows(
            run.lake,
            "SELECT job_id, type, submission_id, status, entrypoint, driver_exit_code, "
            "driver_pid FROM jobs",
        )
    }
    assert actual.keys() == expected.keys()
    for job_id, want in expected.items():
        got = actual[job_id]
        for field in ("type", "submission_id", "status", "entrypoint"):
            assert got[field] == want[field], (job_id, field, got[field], want[field])
        assert str(got["driver_pid"]) == want["driver_info"]["pid"], job_id
    # The submission jobs' final status is only in the head collector's snapshots.
    final = {j["submission_id"]: (j["status"], j["driver_exit_code"]) for j in actual.values()}
    assert final["e2e-ok"] == ("SUCCEEDED", 0)
    assert final["e2e-fail"] == ("FAILED", 3)
    assert final[None][0] == "SUCCEEDED"


def test_placement_groups_match_the_live_dashboard(run: Run) -> None:
    expected = {g["placement_group_id"]: g["state"] for g in run.live["placement_groups"]}
    actual = {
        g["placement_group_id"]: g["state"]
        for g in rows(run.lake, "SELECT placement_group_id, state FROM placement_group_snapshots")
    }
    assert actual == expected
    assert list(expected.values()) == ["REMOVED"]


# --- logs --------------------------------------------------------------------------------


def shipped_bytes(run: Run, node: str, inode: int) -> bytes:
    """A file as the lake holds it: its parts, in order of their first offset."""
    parts = sorted(
        run.lake.list_files(f"{logs_dir(CLUSTER, run.session, node)}/_parts/{inode}", ".part")
    )
    data = b""
    for part in parts:
        start = int(part.rsplit("/", 1)[-1].removesuffix(".part"))
        assert start == len(data), (part, len(data))
        data += run.lake.read_bytes(part)
    return data


def test_both_nodes_logs_are_in_the_lake(run: Run) -> None:
    files = rows(
        run.lake,
        "SELECT node_id, path, size, inode, stored_as, worker_id, pid FROM log_files "
        f"WHERE session = '{run.session}'",
    )
    by_node: dict[str, dict[str, dict[str, Any]]] = {}
    for f in files:
        by_node.setdefault(f["node_id"], {})[f["path"]] = f
    assert by_node.keys() == {run.head_node, run.worker_node}
    printed = b""
    for node, listed in by_node.items():
        logs = run.temp_dirs[node] / run.session / "logs"
        assert "raylet.out" in listed, (node, sorted(listed))
        workers = [p for p in listed if p.startswith("worker-") and p.endswith(".out")]
        assert workers, (node, sorted(listed))
        # The files as the lake holds them are the files Ray left, byte for byte.
        for path in ["raylet.out", *workers]:
            entry = listed[path]
            assert entry["stored_as"] == "parts", entry
            on_disk = (logs / path).read_bytes()
            assert entry["size"] == len(on_disk), entry
            assert shipped_bytes(run, node, entry["inode"]) == on_disk, (node, path)
            if path.startswith("worker-"):
                assert entry["worker_id"] and entry["pid"], entry
                printed += on_disk
    # `square` printed to stdout on both nodes' workers.
    assert b"square working on 0" in printed
    assert "gcs_server.out" in by_node[run.head_node]
    assert "gcs_server.out" not in by_node[run.worker_node]
