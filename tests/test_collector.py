"""`raylake collect` as Ray's aggregator sees it: a real process on a loopback port.

Every test starts its own collector processes (`python -m raylake collect ...`) on a
fake Ray root (a session directory holding a `<component>_port_<node id>` file, and
`session_latest` pointing at it), POSTs the 49 bodies a Ray 2.60 cluster sent, and
compares what lands in the lake with the reference: the same bodies loaded by the batch
ingest (`ingest_paths`). Views are compared whole (entity views) or by distinct event
content without `ingest_id` (event views); the storage itself is checked too: every
Parquet part is read with `pyarrow.dataset`, and no (event_id, seq) may appear twice in
a table.

Processes are stopped by the fixtures that started them (SIGKILL of each one's own pid
if a test left it running); nothing else is ever signalled.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest import rawfiles
from ingest.load import ingest_paths
from ingest.parse import parse_body
from lake.catalog import read_entries
from lake.layout import ClusterKey
from lake.schemas import SCHEMAS
from lake.store import Lake
from query.engine import ENTITY_VIEWS, connect, view_names

# tests/ is not a package: pytest's default import mode puts this directory on sys.path.
from s3_server import (
    _SERVER as MOTO_SERVER_SCRIPT,
)
from s3_server import (
    FAKE_AWS_ENV,
    UNSET_AWS_ENV,
    create_bucket,
    free_port,
    get_object,
    list_objects,
    put_object,
)

REPO = Path(__file__).resolve().parent.parent
SAMPLE = Path(__file__).parent / "fixtures" / "ray-2.60-scenario-a"
POSTS = SAMPLE / "posts"
HEAD_NODE = "a7adc7d8d330156f3b83a38b0c44ded53f9781cc3dab953e8694bb36"
SESSION = "session_2026-11-21_20-42-42_066305_20083"
CLUSTER = ClusterKey("default", "demo")
HOST = "127.0.0.1"

START_TIMEOUT = 30.0
DRAIN_LIMIT = 20.0  # what the collector promises after SIGTERM
RECORD_HEADER = 8  # the spool frames each body's zstd frame with <u32 length><u32 crc32>

#: Seed of the kill points of the crash test; set RAYLAKE_TEST_SEED to replay a run.
SEED = os.environ.get("RAYLAKE_TEST_SEED") or os.urandom(4).hex()


@dataclass(frozen=True)
class Body:
    path: Path
    data: bytes
    event_ids: frozenset[str]  # hex, as the lake stores them
    events: int


def _load_bodies() -> list[Body]:
    bodies = []
    for path in sorted(POSTS.glob("*/post_*.json")):
        data = path.read_bytes()
        events = parse_body(data).events
        bodies.append(Body(path, data, frozenset(e.event_id.hex() for e in events), len(events)))
    return bodies


BODIES = _load_bodies()
ALL = range(len(BODIES))


def test_the_capture_is_what_the_tests_assume() -> None:
    assert len(BODIES) == 49
    assert sum(b.events for b in BODIES) == 1469
    assert len(frozenset().union(*(b.event_ids for b in BODIES))) == 1469


# --- processes ------------------------------------------------------------------------


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without settings that would steer the collector."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RAYLAKE_") and k not in UNSET_AWS_ENV
    }
    env.update(extra or {})
    return env


@dataclass
class Collector:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30.0)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def post(self, data: bytes) -> httpx.Response:
        return self.client.post(
            "/v1/events", content=data, headers={"content-type": "application/json"}
        )

    def ready(self) -> dict[str, Any]:
        state: dict[str, Any] = self.client.get("/readyz").json()
        return state

    def metric(self, sample: str, **labels: str) -> float:
        """A sample of /metrics (0 when absent)."""
        text = self.client.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return 0.0

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float) -> float:
        """Poll `check` until it holds; return the seconds it took."""
        started = time.monotonic()
        while not check():
            assert self.process.poll() is None, f"collector exited:\n{self.output()}"
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{what}: not within {timeout} s\n{self.output()}")
            time.sleep(0.1)
        return time.monotonic() - started

    def wait_flushed(self, timeout: float = 30.0) -> float:
        return self.wait_until("spool empty", lambda: self.ready()["spool_bytes"] == 0, timeout)

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; return the exit code and the seconds the drain took."""
        self.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            code = self.process.wait(timeout=DRAIN_LIMIT + 10)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit after SIGTERM\n{self.output()}") from None
        self.client.close()
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL, at once: nothing is flushed, nothing answered."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.client.close()


class Launcher:
    """Starts collectors (and moto servers) and stops whatever is still running."""

    def __init__(self, tmp_path: Path, ray_root: Path) -> None:
        self.tmp_path = tmp_path
        self.ray_root = ray_root
        self.processes: list[subprocess.Popen[bytes]] = []
        self.count = 0
        self.no_dashboard = free_port(HOST)
        self.clients: list[httpx.Client] = []

    def collector(
        self, lake: str, spool: Path, *args: str, env: dict[str, str] | None = None
    ) -> Collector:
        for _ in range(3):  # the free port may be taken before the collector binds it
            self.count += 1
            log = self.tmp_path / f"collector-{self.count}.log"
            port = free_port(HOST)
            command = [
                sys.executable,
                "-m",
                "raylake",
                "collect",
                *("--lake", lake, "--namespace", CLUSTER.namespace, "--cluster", CLUSTER.name),
                *("--role", "head", "--host", HOST, "--port", str(port)),
                *("--spool", str(spool), "--ray-root", str(self.ray_root)),
                # A head collector polls the dashboard: here, a port nothing listens on.
                *("--dashboard-url", f"http://{HOST}:{self.no_dashboard}"),
                *("--poll-interval", "1h", "--log-interval", "1h"),
                *args,
            ]
            with log.open("wb") as out:
                process = subprocess.Popen(
                    command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=_clean_env(env)
                )
            self.processes.append(process)
            collector = Collector(process, port, log)
            self.clients.append(collector.client)
            if _wait_healthy(collector):
                return collector
            collector.kill()
        raise AssertionError(f"the collector did not start:\n{collector.output()}")

    def moto(self, port: int) -> subprocess.Popen[bytes]:
        """Moto's S3 server on a given loopback port (to restart it where it was)."""
        self.count += 1
        with (self.tmp_path / f"moto-{self.count}.log").open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", MOTO_SERVER_SCRIPT, "-H", HOST, "-p", str(port)],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_clean_env(FAKE_AWS_ENV),
            )
        self.processes.append(process)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://{HOST}:{port}/moto-api/", timeout=1).status_code == 200:
                    return process
            time.sleep(0.1)
        stop(process)
        raise AssertionError(f"moto did not start on port {port}")

    def stop_all(self) -> None:
        for process in self.processes:
            stop(process)
        for client in self.clients:
            client.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin:
        process.stdin.close()  # moto's watchdog exits on EOF
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def _wait_healthy(collector: Collector) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if collector.process.poll() is not None:
            return False
        with contextlib.suppress(httpx.TransportError):
            if collector.client.get("/healthz").status_code == 200:
                return True
        time.sleep(0.05)
    return False


@pytest.fixture
def ray_root(tmp_path: Path) -> Path:
    """What Ray leaves in its temp dir: session_latest -> the session, with port files."""
    root = tmp_path / "ray"
    session = root / SESSION
    session.mkdir(parents=True)
    for component in ("gcs_server", "dashboard_agent_listen", "metrics_export"):
        (session / f"{component}_port_{HEAD_NODE}").write_text("6379")
    (root / "session_latest").symlink_to(session, target_is_directory=True)
    return root


@pytest.fixture
def launcher(tmp_path: Path, ray_root: Path) -> Iterator[Launcher]:
    started = Launcher(tmp_path, ray_root)
    try:
        yield started
    finally:
        started.stop_all()


# --- what a lake holds ----------------------------------------------------------------


def answers(lake: Lake) -> dict[str, pa.Table]:
    """Every view: entity views whole, event views as distinct content (no ingest id)."""
    con = connect(lake)
    try:
        found = {}
        for view in view_names():
            columns = con.sql(f'SELECT * FROM "{view}" LIMIT 0').columns
            if view in ENTITY_VIEWS or "ingest_id" not in columns:
                query = f'SELECT * FROM "{view}" ORDER BY ALL'
            else:  # an event view: its distinct content, whoever stamped it
                query = f'SELECT DISTINCT * EXCLUDE (ingest_id) FROM "{view}" ORDER BY ALL'
            found[view] = con.sql(query).to_arrow_table()
        return found
    finally:
        con.close()


def assert_same_views(got: dict[str, pa.Table], want: dict[str, pa.Table]) -> None:
    assert sorted(got) == sorted(want)
    differ = {
        view: (got[view].num_rows, want[view].num_rows)
        for view in want
        if not got[view].equals(want[view])
    }
    assert not differ, f"views that differ (rows got, rows expected): {differ}"


_REFERENCES: dict[frozenset[int], dict[str, pa.Table]] = {}


def reference(
    tmp_path_factory: pytest.TempPathFactory, indices: Sequence[int]
) -> dict[str, pa.Table]:
    """The views of a batch ingest of the given bodies (cached per set of bodies)."""
    key = frozenset(indices)
    if key not in _REFERENCES:
        lake = Lake(str(tmp_path_factory.mktemp("reference") / "lake"), create=True)
        report = ingest_paths(lake, CLUSTER, [BODIES[i].path for i in sorted(key)])
        assert not report.rejected, report.rejected
        _REFERENCES[key] = answers(lake)
    return _REFERENCES[key]


def stored_keys(lake: Lake) -> dict[str, pa.Table]:
    """(event_id, seq) of every row of every Parquet part, per table."""
    lake.fs.invalidate_cache()
    keys = {}
    for table in SCHEMAS:
        base = lake.full(f"events/{table}")
        if not lake.fs.exists(base):
            continue
        files = sorted(p for p in lake.fs.find(base) if p.endswith(".parquet"))
        dataset = ds.dataset(files, format="parquet", filesystem=lake.fs)
        keys[table] = dataset.to_table(columns=["event_id", "seq"])
    return keys


def assert_stored_once(lake: Lake, indices: Sequence[int]) -> None:
    """Storage level: no row twice in a table, and exactly the events of these bodies."""
    keys = stored_keys(lake)
    twice, repeated_ids = {}, set()
    for table, data in keys.items():
        counts = data.group_by(["event_id", "seq"]).aggregate([("seq", "count")])
        repeated = counts.filter(pc.greater(counts["seq_count"], 1))
        if repeated.num_rows:
            twice[table] = repeated.num_rows
            repeated_ids.update(repeated["event_id"].to_pylist())
    stored = set()
    for data in keys.values():
        stored.update(data["event_id"].to_pylist())
    expected = set().union(*(BODIES[i].event_ids for i in indices))
    assert stored == expected, (
        f"{len(expected - stored)} acknowledged events missing, "
        f"{len(stored - expected)} events never acknowledged stored"
    )
    sources = [str(b.path.relative_to(POSTS)) for b in BODIES if b.event_ids & repeated_ids]
    assert not twice, (
        f"(event_id, seq) stored more than once, rows per table: {twice}; the events of {sources}"
    )


def catalog_totals(lake: Lake) -> dict[str, int]:
    totals: dict[str, int] = {}
    for entry in read_entries(lake):
        for table, count in entry.event_counts.items():
            totals[table] = totals.get(table, 0) + count
    return totals


# --- 1. intake ------------------------------------------------------------------------


def _with_bad_time(body: Body, index: int) -> bytes:
    events = json.loads(body.data)
    events[index]["timestamp"] = "2026-11-21T25:61:00Z"
    return json.dumps(events).encode()


def test_intake_answers_and_a_clean_drain(
    launcher: Launcher, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lake_dir = tmp_path / "lake"
    c = launcher.collector(
        str(lake_dir),
        tmp_path / "spool",
        *("--max-body-mb", "1", "--flush-interval", "2s", "--flush-events", "300"),
    )

    # Invalid bodies first: nothing of them may be kept, not even their event ids (the
    # good version of the same body, posted later, must land whole).
    bad = c.post(_with_bad_time(BODIES[3], 7))
    assert bad.status_code == 400
    problem = bad.json()
    assert set(problem) == {"error", "event_index", "field"}
    assert (problem["event_index"], problem["field"]) == (7, "timestamp")
    assert "2026-11-21T25:61:00Z" in problem["error"]
    for not_array in (b'{"events": []}', b"42", b"[{]"):
        answer = c.post(not_array)
        assert answer.status_code == 400, not_array
        assert set(answer.json()) == {"error", "event_index", "field"}
        assert answer.json()["field"] is None
    assert c.post(b'{"events": []}').json()["event_index"] is None

    big = json.dumps([event for b in BODIES for event in json.loads(b.data)]).encode()
    assert len(big) > 1024 * 1024
    assert c.post(big).status_code == 413

    for body in BODIES:
        answer = c.post(body.data)
        assert answer.status_code == 200, (body.path.name, answer.text)
        assert answer.json() == {"accepted": body.events}

    ready = c.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True and ready.json()["draining"] is False
    lifecycle = c.metric("raylake_events_accepted_total", event_type="TASK_LIFECYCLE_EVENT")
    assert lifecycle == 808
    assert c.metric("raylake_bodies_rejected_total", reason="invalid") == 5

    # SIGTERM while Ray keeps posting (a retry of a body it already sent), from before
    # the signal (a drain can end before a client that starts after it connects): once
    # the collector answers 503 it never answers 200 again, and 503 says when to retry.
    answered: list[httpx.Response] = []

    def ray_keeps_posting() -> None:
        with httpx.Client(base_url=c.url, timeout=5.0) as ray:
            while c.process.poll() is None:
                try:
                    answered.append(ray.post("/v1/events", content=BODIES[0].data))
                except httpx.TransportError:
                    return  # the collector has stopped

    posting = threading.Thread(target=ray_keeps_posting)
    posting.start()
    while not answered:
        time.sleep(0.01)
    c.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code = c.process.wait(timeout=DRAIN_LIMIT + 10)
    drained_in = time.monotonic() - sent
    posting.join(10)
    assert code == 0, c.output()
    assert drained_in < DRAIN_LIMIT
    statuses = [answer.status_code for answer in answered]
    assert set(statuses) <= {200, 503}, statuses
    assert 503 in statuses, "a draining collector answers 503"
    assert 200 not in statuses[statuses.index(503) :], statuses
    for answer in answered:
        if answer.status_code == 503:
            assert int(answer.headers["retry-after"]) > 0
            assert "error" in answer.json()

    lake = Lake(str(lake_dir))
    assert_same_views(answers(lake), reference(tmp_path_factory, ALL))
    assert_stored_once(lake, ALL)
    entries = read_entries(lake)
    assert {(e.session, e.node_id, e.role) for e in entries} == {(SESSION, HEAD_NODE, "head")}
    assert all(e.ended for e in entries)
    assert sum(catalog_totals(lake).values()) == 1469
    assert not list((tmp_path / "spool").glob("seg-*.log")), "a clean drain empties the spool"


# --- 2. kill -9 -----------------------------------------------------------------------


@dataclass
class PostLog:
    acked: list[int] = field(default_factory=list)
    unanswered: list[int] = field(default_factory=list)
    refused: list[tuple[int, int, str]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for_acks(self, count: int, timeout: float) -> None:
        """Until `count` POSTs were acknowledged, or the poster stopped."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.acked) >= count or self.done.is_set(), timeout)


def _post_in_order(url: str, indices: list[int], pauses: list[float], log: PostLog) -> None:
    """Ray's aggregator: POST each body in turn; stop at the first unanswered one."""
    try:
        with httpx.Client(base_url=url, timeout=30.0) as ray:
            for index, pause in zip(indices, pauses, strict=True):
                try:
                    answer = ray.post("/v1/events", content=BODIES[index].data)
                except httpx.TransportError:
                    log.unanswered.append(index)
                    return
                with log.changed:
                    if answer.status_code == 200:
                        log.acked.append(index)
                    else:
                        log.refused.append((index, answer.status_code, answer.text))
                    log.changed.notify_all()
                time.sleep(pause)
    finally:
        with log.changed:
            log.done.set()
            log.changed.notify_all()


@pytest.mark.parametrize("round_", range(3))
def test_kill_9_while_bodies_arrive_loses_and_repeats_nothing(
    round_: int,
    launcher: Launcher,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    rng = random.Random(f"{SEED}-{round_}")
    where = f"(RAYLAKE_TEST_SEED={SEED}, round {round_})"
    lake_dir, spool = tmp_path / "lake", tmp_path / "spool"
    flags = ("--flush-interval", "300ms", "--flush-events", "200")
    acked: set[int] = set()
    history = []
    for _kill in range(2):
        pending = [i for i in ALL if i not in acked]  # unanswered ones again, like Ray
        c = launcher.collector(str(lake_dir), spool, *flags)
        target = rng.randint(0, len(pending))  # acknowledged POSTs before the kill
        delay = rng.uniform(0.0, 0.03)
        pauses = [rng.uniform(0.0, 0.01) for _ in pending]
        log = PostLog()
        poster = threading.Thread(target=_post_in_order, args=(c.url, pending, pauses, log))
        poster.start()
        log.wait_for_acks(target, timeout=60)
        time.sleep(delay)
        c.kill()
        poster.join(30)
        assert not poster.is_alive()
        assert not log.refused, (where, log.refused)
        acked.update(log.acked)
        unanswered = [str(BODIES[i].path.relative_to(POSTS)) for i in log.unanswered]
        history.append((target, round(delay, 3), len(log.acked), unanswered))

    c = launcher.collector(str(lake_dir), spool, *flags)
    for index in ALL:
        if index not in acked:
            answer = c.post(BODIES[index].data)
            assert answer.status_code == 200, (where, answer.text)
    code, seconds = c.terminate()
    assert code == 0, c.output()
    assert seconds < DRAIN_LIMIT

    lake = Lake(str(lake_dir))
    note = f"{where}; kills (target acks, delay, acks, unanswered): {history}"
    try:
        assert_stored_once(lake, ALL)
        assert_same_views(answers(lake), reference(tmp_path_factory, ALL))
        assert sum(catalog_totals(lake).values()) == 1469, catalog_totals(lake)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{note}") from None
    assert all(e.ended for e in read_entries(lake))


def test_a_retry_after_a_crash_is_stored_once(
    launcher: Launcher, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The crash test's worst moment, made certain: the body was fsynced and the process
    died before Ray read the 200, so Ray posts it again to the restarted collector."""
    lake_dir, spool = tmp_path / "lake", tmp_path / "spool"
    c = launcher.collector(str(lake_dir), spool, "--flush-interval", "1h")
    for body in BODIES[:10]:
        assert c.post(body.data).status_code == 200
    c.kill()
    assert list(spool.glob("seg-*.log")), "the acknowledged bodies wait in the spool"

    c = launcher.collector(str(lake_dir), spool, "--flush-interval", "1h")
    for body in BODIES[9:]:  # body 9 again: its answer was lost with the process
        assert c.post(body.data).status_code == 200
    code, _ = c.terminate()
    assert code == 0, c.output()

    lake = Lake(str(lake_dir))
    assert_same_views(answers(lake), reference(tmp_path_factory, ALL))
    assert_stored_once(lake, ALL)


def test_a_restart_after_a_clean_drain_keeps_what_was_written(
    launcher: Launcher, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A collector restarted on an empty spool (after SIGTERM: a rolling update, a
    container restart) must not write over the objects its earlier run wrote."""
    lake_dir, spool = tmp_path / "lake", tmp_path / "spool"
    for part in (BODIES[:25], BODIES[25:]):
        c = launcher.collector(str(lake_dir), spool, "--flush-interval", "1h")
        for body in part:
            assert c.post(body.data).status_code == 200
        code, _ = c.terminate()
        assert code == 0, c.output()

    lake = Lake(str(lake_dir))
    assert_stored_once(lake, ALL)
    assert_same_views(answers(lake), reference(tmp_path_factory, ALL))
    assert sum(catalog_totals(lake).values()) == 1469


def test_a_ray_node_restarted_in_the_pod_is_written_as_the_new_node(
    launcher: Launcher, ray_root: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The Ray container restarts beside a collector that keeps running: the new node
    (new port files in the same session directory) writes from the next flush on, and
    the old node's catalog entry ends, as the node has."""
    new_node = "b" * 56
    lake_dir, spool = tmp_path / "lake", tmp_path / "spool"
    c = launcher.collector(str(lake_dir), spool, "--flush-interval", "200ms")
    for body in BODIES[:25]:
        assert c.post(body.data).status_code == 200
    c.wait_flushed()
    lake = Lake(str(lake_dir))
    (first,) = read_entries(lake)
    assert (first.node_id, first.ended) == (HEAD_NODE, False)

    time.sleep(0.05)  # the new node's port files are newer than the old node's
    session = ray_root / SESSION
    for component in ("gcs_server", "dashboard_agent_listen", "metrics_export"):
        (session / f"{component}_port_{new_node}").write_text("6379")
    (ray_root / "session_latest").unlink()
    (ray_root / "session_latest").symlink_to(session, target_is_directory=True)
    for body in BODIES[25:]:
        assert c.post(body.data).status_code == 200
    c.wait_flushed()
    entries = {e.node_id: e for e in read_entries(lake)}
    assert entries[HEAD_NODE].ended, "the old node's entry ends once the new node writes"
    assert not entries[new_node].ended
    code, _ = c.terminate()
    assert code == 0, c.output()

    entries = {e.node_id: e for e in read_entries(lake)}
    assert set(entries) == {HEAD_NODE, new_node}
    assert all(e.ended for e in entries.values())
    assert sum(entries[new_node].event_counts.values()) > 0
    writers = {path.split("/")[-1].split("-")[1] for path in lake.list_files("events")}
    assert writers == {HEAD_NODE, new_node}
    assert_stored_once(lake, ALL)
    assert_same_views(answers(lake), reference(tmp_path_factory, ALL))
    assert sum(catalog_totals(lake).values()) == 1469


def test_a_run_with_nothing_left_to_write_still_ends_its_node_entries(
    launcher: Launcher, tmp_path: Path
) -> None:
    """Everything was written before a restart; the next run gets nothing new and its
    SIGTERM still marks the node's entries ended."""
    lake_dir, spool = tmp_path / "lake", tmp_path / "spool"
    c = launcher.collector(str(lake_dir), spool, "--flush-interval", "200ms")
    for body in BODIES:
        assert c.post(body.data).status_code == 200
    c.wait_flushed()
    c.kill()
    c = launcher.collector(str(lake_dir), spool, "--flush-interval", "200ms")
    code, _ = c.terminate()
    assert code == 0, c.output()
    (entry,) = read_entries(Lake(str(lake_dir)))
    assert entry.ended


def test_before_ray_names_the_node_the_events_name_it(tmp_path: Path) -> None:
    """An empty Ray root (Ray not started yet, or its directory not shared): the parts
    and catalog entries go under the node the events name, never under "unknown"."""
    empty_root = tmp_path / "empty-ray-root"
    empty_root.mkdir()
    launcher = Launcher(tmp_path, empty_root)
    try:
        lake_dir = tmp_path / "lake"
        c = launcher.collector(str(lake_dir), tmp_path / "spool", "--flush-interval", "200ms")
        for body in BODIES:
            assert c.post(body.data).status_code == 200
        c.wait_flushed()  # nothing is pending in memory at the flushes that follow
        code, _ = c.terminate()
        assert code == 0, c.output()
    finally:
        launcher.stop_all()
    first = next(e["nodeId"] for e in json.loads(BODIES[0].data) if e.get("nodeId"))
    emitter = base64.b64decode(first).hex()
    lake = Lake(str(lake_dir))
    writers = {path.split("/")[-1].split("-")[1] for path in lake.list_files("events")}
    assert writers == {emitter}
    assert {entry.node_id for entry in read_entries(lake)} == {emitter}
    assert_stored_once(lake, ALL)


# --- 3. Ray's retries -----------------------------------------------------------------


@pytest.mark.parametrize("when", ["at-once", "after-a-flush"])
def test_every_body_posted_twice_is_stored_once(
    when: str, launcher: Launcher, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lake_dir = tmp_path / "lake"
    c = launcher.collector(
        str(lake_dir), tmp_path / "spool", "--flush-interval", "500ms", "--flush-events", "150"
    )
    if when == "at-once":
        for body in BODIES:
            for _ in range(2):
                answer = c.post(body.data)
                assert answer.status_code == 200, answer.text
                assert answer.json() == {"accepted": body.events}
    else:
        for body in BODIES:
            assert c.post(body.data).status_code == 200
        c.wait_flushed()
        assert (lake_dir / "events").is_dir()
        for body in BODIES:
            assert c.post(body.data).status_code == 200
    code, _ = c.terminate()
    assert code == 0, c.output()

    lake = Lake(str(lake_dir))
    assert_stored_once(lake, ALL)
    assert_same_views(answers(lake), reference(tmp_path_factory, ALL))
    assert sum(catalog_totals(lake).values()) == 1469


def test_a_retry_during_a_lake_outage_is_stored_once(
    launcher: Launcher, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A failed flush makes the collector read its segments again from the spool; a
    retried body in them must still add no second copy of its rows."""
    lake_dir = tmp_path / "lake"
    c = launcher.collector(str(lake_dir), tmp_path / "spool", "--flush-interval", "200ms")
    for body in BODIES[:10]:
        assert c.post(body.data).status_code == 200
    c.wait_flushed()

    # The lake's events/ cannot be written: a file stands where the directory was.
    events, away = lake_dir / "events", lake_dir / "events.away"
    events.rename(away)
    events.write_bytes(b"")
    try:
        for body in BODIES[9:20]:  # body 9 again: Ray never saw its answer
            assert c.post(body.data).status_code == 200
        c.wait_until("a failed flush", lambda: c.metric("raylake_upload_errors_total") > 0, 20)
    finally:
        events.unlink()
        away.rename(events)
    c.wait_flushed(timeout=60)
    for body in BODIES[20:]:
        assert c.post(body.data).status_code == 200
    code, _ = c.terminate()
    assert code == 0, c.output()

    lake = Lake(str(lake_dir))
    assert_same_views(answers(lake), reference(tmp_path_factory, ALL))
    assert_stored_once(lake, ALL)


# --- 4. S3 outage ---------------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in UNSET_AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    return dict(FAKE_AWS_ENV)


def test_s3_outage_fills_the_spool_then_recovers(
    launcher: Launcher,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    aws_env: dict[str, str],
) -> None:
    bucket, cap = "raylake-collector", int(0.1 * 1024 * 1024)
    port = free_port(HOST)
    endpoint = f"http://{HOST}:{port}"
    moto = launcher.moto(port)
    create_bucket(endpoint, bucket)
    url = f"s3://{bucket}/lake"
    c = launcher.collector(
        url,
        tmp_path / "spool",
        *("--s3-endpoint-url", endpoint, "--spool-max-mb", "0.1", "--flush-interval", "1s"),
        env=aws_env,
    )
    held_back = {46, 47, 48}  # never sent: the lake must not hold them
    acked = []
    for index in range(3):
        assert c.post(BODIES[index].data).status_code == 200
        acked.append(index)
    c.wait_flushed()
    assert any(key.startswith("lake/events/") for key in list_objects(endpoint, bucket))

    # The outage. Moto forgets everything when it stops; S3 would not, so what the
    # bucket held is put back when it returns.
    kept = {key: get_object(endpoint, bucket, key) for key in list_objects(endpoint, bucket)}
    stop(moto)
    spooled, refused = 0, []
    for index in ALL[3:]:
        if index in held_back:
            continue
        record = RECORD_HEADER + len(rawfiles.line_frame(BODIES[index].data))
        answer = c.post(BODIES[index].data)
        fits = spooled + record <= cap
        if answer.status_code == 200:
            assert fits, f"body {index} accepted past the cap ({spooled} + {record} bytes)"
            spooled += record
            acked.append(index)
        else:
            assert answer.status_code == 503, answer.text
            assert not fits, f"503 for body {index} below the cap ({spooled} + {record})"
            assert int(answer.headers["retry-after"]) > 0
            refused.append(index)
        assert c.ready()["spool_bytes"] == spooled
    assert refused, "the bodies exceed the 0.1 MB spool: some must be refused"
    assert spooled > cap // 2
    # The outage lasts: the collector keeps trying, backing off (1 s, 2 s, 4 s, ...).
    c.wait_until("3 failed uploads", lambda: c.metric("raylake_upload_errors_total") >= 3, 60)
    assert c.post(BODIES[refused[0]].data).status_code == 503
    assert c.ready()["spool_bytes"] == spooled

    moto = launcher.moto(port)
    create_bucket(endpoint, bucket)
    for key, data in kept.items():
        put_object(endpoint, bucket, key, data)
    recovered_in = c.wait_flushed(timeout=70)
    assert recovered_in < 62, recovered_in

    for index in refused:  # Ray retries what got 503
        deadline = time.monotonic() + 30
        while (answer := c.post(BODIES[index].data)).status_code == 503:
            assert time.monotonic() < deadline, f"body {index} still refused"
            c.wait_flushed()
        assert answer.status_code == 200, answer.text
        acked.append(index)
    code, seconds = c.terminate()
    assert code == 0, c.output()
    assert seconds < DRAIN_LIMIT

    lake = Lake(url, endpoint_url=endpoint)
    assert_same_views(answers(lake), reference(tmp_path_factory, acked))
    assert_stored_once(lake, acked)
    assert all(e.ended for e in read_entries(lake))
