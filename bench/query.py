"""History-server benchmark: `raylake serve` latency, cold start and memory over a lake of
1,000 sessions, one of them with 1,000,000 task attempts; then the same requests on a
live Ray dashboard and on raylake for one real Ray session.

    .venv/bin/python bench/query.py           # 1,000 sessions, 1M attempts, 10k Ray tasks
    .venv/bin/python bench/query.py --quick   # 20 sessions, 50k attempts, 2k Ray tasks
    .venv/bin/python bench/query.py --keep /tmp/raylake-query --no-ray

1. The lake (`DIR/lake`, reused under `--keep` when built with the same settings):
   - the bundled Ray 2.60 capture, stored with its snapshots and logs as the test
     fixtures store it (`tests/conftest.py: ingest_sample`): one small session of 279
     task attempts;
   - copies of that session under new names, in 40 clusters, up to `--sessions`: every
     directory of the session partition (`events/<table>/`, `logs/`, `logs/_index/`,
     `snapshots/...`, `raw/`) is hard-linked under the new `session=` name (Parquet
     parts carry no session column: it is in the path), and the catalog entries are
     written again with the new name;
   - the big session: `bench/synthetic.py` replicas of the capture (fresh ids, shifted
     times, ~279 attempts and 1,469 events each; the input is cached in `DIR/input`),
     ingested with `ingest_paths` into one session of cluster `bench.big`.
2. A first `raylake serve` process opens the big session (`/enter_cluster/...`), which
   builds its state in the lake: printed, the one-time materialization (unless a kept
   lake has it already) and that server's peak RSS. It is stopped.
3. A second `raylake serve` process (fresh cache directory, state already in the lake):
   cold start = from just before it is spawned until its first answer to
   `/api/v0/tasks?limit=100` for the big session (the wait for `/healthz` polls every
   50 ms, so this over-counts by up to 50 ms). Then, over one keep-alive httpx client,
   `--requests` sequential requests (after `WARMUP` unmeasured ones, the first of which
   builds the answer and is printed as `first`) of every measured
   endpoint for the big and for a small session (chosen by `?session=ns/name/session`;
   the small session's state is built first, timed apart), and of `/clusters` (every
   session; its first request, which reads the catalog, timed apart). Its peak RSS is
   VmHWM from /proc/<pid>/status at the end.
4. A real Ray cluster (head and worker on loopback, `tests/ray_cluster.py`, each node
   with a `raylake collect` beside it) runs a driver of `--ray-tasks` tasks. Once the
   collectors receive nothing more, the live dashboard answers `--live-requests`
   requests; then the nodes are stopped (only the processes started here; never
   `ray stop`), the collectors drain, and a `raylake serve` over that fresh lake answers
   the same requests for that session. Printed: both p50s and live / raylake.

Targets (the issue): p50 <= 50 ms and p95 <= 200 ms per request, cold start <= 2 s, peak
RSS <= 1 GB (both servers' peaks are compared with it). It only prints; nothing is
asserted. An endpoint that answers other than 200 is reported with the start of its
answer and left out of the comparisons. A kept lake's state is built again when the
views' SQL changed (its version covers it). Without `--keep` everything lives in a
temporary directory that is removed.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `python bench/query.py` puts bench/ first on sys.path, where bench/ingest.py would
# shadow the `ingest` package: resolve imports from the project root instead. tests/
# holds the helpers that start servers, collectors and Ray nodes.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import msgspec  # noqa: E402

from bench import synthetic  # noqa: E402
from bench.report import count, load_average, ms, percentile  # noqa: E402
from ingest.load import ingest_paths  # noqa: E402
from lake.catalog import read_entries, read_session_entries, write_entry  # noqa: E402
from lake.layout import CATALOG, STATE, ClusterKey  # noqa: E402
from lake.store import Lake  # noqa: E402
from query.engine import SessionRef  # noqa: E402
from query.state import inputs_version, materialize, read_meta  # noqa: E402

TARGET_P50_S = 0.050
TARGET_P95_S = 0.200
TARGET_COLD_START_S = 2.0
TARGET_RSS_BYTES = 1000**3  # 1 GB
ENDPOINTS = ["/api/v0/tasks?limit=100", "/api/v0/tasks/summarize", "/api/jobs/", "/logical/actors"]
LIVE_ENDPOINTS = ENDPOINTS[:2]
COLD_ENDPOINT = ENDPOINTS[0]
WARMUP = 3
ATTEMPTS_PER_REPLICA = 279  # task attempts of the capture the API lists (drivers aside)
BIG = ClusterKey("bench", "big")
SMALL_NAMESPACE = "bench"
SMALL_CLUSTERS = 40
RAY_CLUSTER = "bench-ray"
LAKE_SPEC = "lake-spec.json"
BENCH_VERSION = 1
QUIET_LIMIT_S = 600.0
FALLBACK_MEMORY = "4GB"


@dataclass(frozen=True)
class LakeSpec:
    """What the synthetic lake holds. Same spec, same lake."""

    sessions: int
    attempts: int
    seed: int
    generator: int = synthetic.GENERATOR_VERSION
    version: int = BENCH_VERSION

    @property
    def synthetic(self) -> synthetic.Spec:
        replicas = math.ceil(self.attempts / ATTEMPTS_PER_REPLICA)
        per_replica = sum(synthetic.capture_mix().values())
        return synthetic.Spec(events=replicas * per_replica, seed=self.seed)


@dataclass
class Timings:
    sample: float = 0.0
    copies: float = 0.0
    generate: float = 0.0
    ingest: float = 0.0


# ---------------------------------------------------------------------------------------
# The lake: one small session copied many times, and one big session.


def small_refs(spec: LakeSpec) -> list[SessionRef]:
    """The copies' names: `sessions - 2` of them (the sample and the big one make the
    rest), spread over clusters, a start time 37 minutes apart."""
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    refs = []
    for i in range(spec.sessions - 2):
        moment = start + dt.timedelta(minutes=37 * i)
        session = f"session_{moment:%Y-%m-%d_%H-%M-%S_%f}_{10000 + i}"
        refs.append(
            SessionRef(ClusterKey(SMALL_NAMESPACE, f"small-{i % SMALL_CLUSTERS:02d}"), session)
        )
    return refs


def session_dirs(root: Path, ref: SessionRef) -> list[Path]:
    """Every directory of the session's partition, state and catalog aside (the state is
    built for each session, the catalog is written again)."""
    cluster, session = f"cluster={ref.cluster.key}", f"session={ref.session}"
    found = []
    for top in root.iterdir():
        if not top.is_dir() or top.name in (CATALOG, STATE):
            continue
        for directory, subdirs, _ in os.walk(top):
            here = Path(directory)
            if here.name == session and here.parent.name == cluster:
                found.append(here)
                subdirs.clear()
    return found


def copy_session(lake: Lake, source: SessionRef, targets: Sequence[SessionRef]) -> None:
    """The source session again under each target's name: its files hard-linked (nothing
    in a lake is rewritten in place), its catalog entries written with the new name."""
    root = Path(lake.full(""))
    directories = session_dirs(root, source)
    entries = read_session_entries(lake, source.cluster, source.session)
    old = f"cluster={source.cluster.key}/session={source.session}"
    for i, target in enumerate(targets, 1):
        new = f"cluster={target.cluster.key}/session={target.session}"
        for directory in directories:
            relative = directory.relative_to(root).as_posix().replace(old, new)
            shutil.copytree(directory, root / relative, copy_function=os.link)
        for entry in entries:
            write_entry(
                lake,
                msgspec.structs.replace(
                    entry,
                    namespace=target.cluster.namespace,
                    cluster=target.cluster.name,
                    session=target.session,
                ),
            )
        if i % 200 == 0:
            print(f"  .. {i} of {len(targets)} session copies", flush=True)


def build_lake(work: Path, spec: LakeSpec) -> tuple[Lake, Timings]:
    from conftest import CLUSTER, SESSION, ingest_sample

    directory = work / "lake"
    if directory.exists():
        if any(directory.iterdir()) and not (directory / "_lake.json").is_file():
            raise SystemExit(f"{directory} exists and is not a lake; not touching it")
        shutil.rmtree(directory)
    timings = Timings()
    started = time.perf_counter()
    lake = ingest_sample(str(directory))
    timings.sample = time.perf_counter() - started

    started = time.perf_counter()
    sample = SessionRef(CLUSTER, SESSION)
    copy_session(lake, sample, small_refs(spec))
    timings.copies = time.perf_counter() - started

    started = time.perf_counter()
    manifest, reused = synthetic.prepare(work / "input", spec.synthetic)
    timings.generate = 0.0 if reused else time.perf_counter() - started
    print(
        f"  big session input: {count(manifest.events)} events, {manifest.replicas} replicas "
        f"of the capture, {'reused' if reused else f'generated in {timings.generate:.0f} s'}",
        flush=True,
    )
    started = time.perf_counter()
    report = ingest_paths(lake, BIG, [synthetic.posts_dir(work / "input")])
    timings.ingest = time.perf_counter() - started
    if report.rejected:
        raise SystemExit(f"the big session's input was rejected: {report.rejected[:3]}")
    return lake, timings


def prepared_lake(work: Path, spec: LakeSpec) -> tuple[Lake, Timings | None]:
    """The kept lake if it was built with `spec`, else a new one (timings then)."""
    marker = work / LAKE_SPEC
    if marker.is_file() and json.loads(marker.read_text()) == asdict(spec):
        return Lake(str(work / "lake")), None
    marker.unlink(missing_ok=True)
    lake, timings = build_lake(work, spec)
    marker.write_text(json.dumps(asdict(spec)))
    return lake, timings


def big_session(lake: Lake) -> SessionRef:
    sessions = {e.session for e in read_entries(lake) if e.cluster_key == BIG}
    if len(sessions) != 1:
        raise SystemExit(f"expected one session of {BIG.key}, found {sorted(sessions)}")
    return SessionRef(BIG, sessions.pop())


def lake_sessions(lake: Lake) -> int:
    return len({(e.cluster_key, e.session) for e in read_entries(lake)})


# ---------------------------------------------------------------------------------------
# Requests.


@dataclass
class Latency:
    path: str
    status: int
    seconds: list[float] = field(default_factory=list)
    total: int | None = None
    """For list answers: the rows Ray's envelope says match (`data.result.total`)."""
    error: str = ""
    """The start of an answer other than 200."""
    first: float | None = None
    """The first request's time: the server builds the answer (later ones reuse it for
    the same version of the session's state)."""

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.seconds)

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        return percentile(self.seconds, 95)


def with_session(path: str, ref: SessionRef | None) -> str:
    if ref is None:
        return path
    key = f"{ref.cluster.namespace}/{ref.cluster.name}/{ref.session}"
    return f"{path}{'&' if '?' in path else '?'}session={key}"


def list_total(answer: httpx.Response) -> int | None:
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        total = answer.json()["data"]["result"]["total"]
        return int(total)
    return None


def timed_get(client: httpx.Client, url: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = client.get(url)  # reads the whole body
    return answer, time.perf_counter() - started


def measure(
    client: httpx.Client, path: str, ref: SessionRef | None, requests: int, warmup: int = WARMUP
) -> Latency:
    """`requests` sequential GETs after `warmup` unmeasured ones; stops at a non-200."""
    url = with_session(path, ref)
    latency = Latency(path, 0)
    for i in range(warmup + requests):
        answer, seconds = timed_get(client, url)
        latency.status = answer.status_code
        if answer.status_code != 200:
            latency.seconds.clear()
            latency.error = " ".join(answer.text.split())[:160]
            return latency
        if i == 0:
            latency.total = list_total(answer)
            latency.first = seconds
        if i >= warmup:
            latency.seconds.append(seconds)
    return latency


def first_answer(client: httpx.Client, path: str, ref: SessionRef | None) -> tuple[int, float]:
    answer, seconds = timed_get(client, with_session(path, ref))
    return answer.status_code, seconds


def enter(client: httpx.Client, ref: SessionRef) -> tuple[httpx.Response, float]:
    """`/enter_cluster/...` opens the session's state (building it when the lake lacks
    it) and answers nothing else: the time of a state build, or of attaching one."""
    return timed_get(
        client, f"/enter_cluster/{ref.cluster.namespace}/{ref.cluster.name}/{ref.session}"
    )


def vm_hwm(pid: int) -> int | None:
    """Peak RSS of a live process (Linux `VmHWM`), in bytes."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


@contextlib.contextmanager
def serving(lake: Lake, work: Path) -> Iterator[Any]:
    from server import running_server

    with running_server(lake.url, work) as server:
        yield server


def client_of(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=1800)


# ---------------------------------------------------------------------------------------
# Output.


def verdict(value: float, target: float) -> str:
    ratio = value / target
    return f"ratio {ratio:5.2f}x  {'meets' if ratio <= 1 else 'OVER'}"


def print_latency(label: str, latency: Latency, targets: bool = True) -> None:
    if not latency.ok:
        print(f"  {label:<44} HTTP {latency.status}: not measured; {latency.error}")
        return
    total = f" ({count(latency.total)} rows)" if latency.total is not None else ""
    first = f"  first {ms(latency.first):>10}" if latency.first is not None else ""
    line = (
        f"  {label:<44} p50 {ms(latency.p50):>10}  p95 {ms(latency.p95):>10}  "
        f"max {ms(max(latency.seconds)):>10}{first}"
    )
    if targets:
        line += (
            f"   p50 {verdict(latency.p50, TARGET_P50_S)}, p95 {verdict(latency.p95, TARGET_P95_S)}"
        )
    print(line + total)


def versions() -> str:
    import duckdb

    return (
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"httpx {httpx.__version__}, {os.cpu_count()} cores ({platform.machine()})"
    )


# ---------------------------------------------------------------------------------------
# The synthetic lake under raylake serve.


@dataclass
class ServeResults:
    latencies: list[tuple[str, Latency]] = field(default_factory=list)
    cold_start: float | None = None
    peak_rss: int | None = None
    materializing_rss: int | None = None
    """Peak RSS of the server that built the big session's state."""
    materialized: bool = True
    """Whether that server managed to."""


def has_state(lake: Lake, ref: SessionRef) -> bool:
    meta = read_meta(lake, ref)
    return meta is not None and meta["version"] == inputs_version(lake, ref)[0]


def materialize_big(lake: Lake, big: SessionRef, work: Path) -> tuple[int | None, bool]:
    """A first server builds the big session's state (when the lake lacks it); returns
    that server's peak RSS and whether it succeeded. Should the server fail, the state
    is built in this process with more memory (said so), so that serving can still be
    measured."""
    if has_state(lake, big):
        meta = read_meta(lake, big) or {}
        print(
            "state of the big session: already in the lake (built in "
            f"{meta['build_seconds']:.1f} s when the lake was made)"
        )
        return None, True
    print(f"state of the big session: built by a first server; {load_average()}")
    with serving(lake, work) as server, client_of(server.url) as client:
        answer, seconds = enter(client, big)
        peak = vm_hwm(server.process.pid)
    if answer.status_code != 200:
        print(
            f"  FAILED: /enter_cluster answered HTTP {answer.status_code} after {seconds:.1f} s "
            f"({' '.join(answer.text.split())[:160]}); that server's peak RSS {_mb(peak)}"
        )
        print(
            f"  building it in this process instead, with memory_limit={FALLBACK_MEMORY} "
            f"(the server's materialize() uses its default); {load_average()}"
        )
        materialize(lake, big, memory_limit=FALLBACK_MEMORY)
    meta = read_meta(lake, big) or {}
    rows = ", ".join(f"{table} {count(n)}" for table, n in sorted(meta.get("rows", {}).items()))
    print(
        f"  {'/enter_cluster' if answer.status_code == 200 else 'fallback'}: "
        f"materialize() {meta.get('build_seconds', float('nan')):.1f} s; rows: {rows}"
    )
    if answer.status_code == 200:
        print(f"  /enter_cluster answered in {seconds:.1f} s; that server's peak RSS {_mb(peak)}")
    return peak, answer.status_code == 200


def _mb(value: float | None) -> str:
    return "unknown" if value is None else f"{value / 1e6:,.0f} MB"


def serve_synthetic(
    lake: Lake, big: SessionRef, small: SessionRef, work: Path, requests: int
) -> ServeResults:
    results = ServeResults()
    print(f"cold start and latencies (a second server, fresh cache); {load_average()}")
    started = time.perf_counter()
    with serving(lake, work) as server, client_of(server.url) as client:
        healthy = time.perf_counter() - started
        status, _ = first_answer(client, COLD_ENDPOINT, big)
        cold_start = time.perf_counter() - started
        print(
            f"  cold start to the first {COLD_ENDPOINT} of the big session (HTTP {status}): "
            f"{cold_start:.2f} s ({healthy:.2f} s until /healthz answered)"
        )
        if status == 200:
            results.cold_start = cold_start
        how = "opened (its state already in the lake)" if has_state(lake, small) else "built"
        answer, seconds = enter(client, small)
        print(
            f"  a small session's state {how} on its first request "
            f"(HTTP {answer.status_code}): {ms(seconds)}"
        )
        for label, ref in (("big", big), ("small", small)):
            print(f"  {label} session {ref.cluster.key}/{ref.session}, {requests} requests each:")
            for path in ENDPOINTS:
                latency = measure(client, path, ref, requests)
                results.latencies.append((f"{label} {path}", latency))
                print_latency(path, latency)
        status, seconds = first_answer(client, "/clusters", None)
        print(
            f"  /clusters over {count(lake_sessions(lake))} sessions: first request, which "
            f"reads the catalog (HTTP {status}), {ms(seconds)}; then {requests} requests "
            "(the server lists the catalog again every 2 s):"
        )
        latency = measure(client, "/clusters", None, requests)
        print_latency("/clusters", latency, targets=False)
        results.latencies.append(("/clusters (no target)", latency))
        results.peak_rss = vm_hwm(server.process.pid)
    print(f"  peak RSS of the server (VmHWM): {_mb(results.peak_rss)}")
    return results


# ---------------------------------------------------------------------------------------
# A real Ray cluster: the live dashboard against raylake.


def ray_driver(address: str, tasks: int) -> int:
    """Run by the benchmark as a driver outside Ray: `tasks` small tasks, 1,000 at a time."""
    import ray

    ray.init(address=address, log_to_driver=False)

    @ray.remote
    def square(x: int) -> int:
        return x * x

    total = 0
    for start in range(0, tasks, 1000):
        total += sum(ray.get([square.remote(i) for i in range(start, min(tasks, start + 1000))]))
    print("done", total, flush=True)
    ray.shutdown()
    return 0


@dataclass
class RayResults:
    live: dict[str, Latency] = field(default_factory=dict)
    lake: dict[str, Latency] = field(default_factory=dict)


def run_ray_cluster(root: Path, ray_root: Path, tasks: int, requests: int) -> dict[str, Latency]:
    """Start the nodes and collectors, run the driver, measure the live dashboard, stop
    it all (only what was started here). The lake is left in `root/lake`."""
    from test_ray_e2e import state_api, wait_until_quiet

    from ray_cluster import (
        HOST,
        Collector,
        Ports,
        Process,
        RayNode,
        clean_env,
        event_export_env,
        node_ports,
        start,
        start_collector,
        wait_for,
    )

    ports = Ports()
    node_port = {role: node_ports(ports, head=role == "head") for role in ("head", "worker")}
    dashboard = f"http://{HOST}:{node_port['head']['dashboard_port']}"
    collectors: dict[str, Collector] = {}
    nodes: dict[str, RayNode] = {}
    driver: Process | None = None
    started = time.monotonic()

    def note(what: str) -> None:
        print(f"  {time.monotonic() - started:6.1f} s  {what}", flush=True)

    try:
        for role in ("head", "worker"):
            temp_dir = ray_root / role[0]
            temp_dir.mkdir()
            port = ports.one()
            nodes[role] = RayNode(
                role, temp_dir, node_port[role], event_export_env(port), root / f"ray-{role}.log"
            )
            collectors[role] = start_collector(
                role, port, root / "lake", root / f"spool-{role}", temp_dir,
                node_port["head"]["dashboard_port"], root / f"collector-{role}.log", RAY_CLUSTER,
            )  # fmt: skip
        nodes["head"].start()
        nodes["worker"].start(head_gcs=nodes["head"].gcs_address)
        with client_of(dashboard) as client:
            wait_for(
                "two live nodes",
                lambda: len(state_api(client, "/api/v0/nodes?detail=1")) == 2,
                timeout=120,
            )
            note("head and worker nodes up")
            driver = start(
                "driver",
                [sys.executable, str(Path(__file__).resolve()), "--ray-driver",
                 nodes["head"].gcs_address, str(tasks)],
                root / "driver.log",
                clean_env(event_export_env(collectors["head"].port)),
            )  # fmt: skip
            code = driver.popen.wait(timeout=3600)
            if code != 0:
                raise SystemExit(f"the Ray driver exited {code}:\n{driver.output()}")
            note(f"driver done: {count(tasks)} tasks")
            wait_until_quiet(list(collectors.values()), limit=QUIET_LIMIT_S)
            note(f"collectors quiet: {[count(c.accepted()) for c in collectors.values()]} events")
            live = {path: measure(client, path, None, requests) for path in LIVE_ENDPOINTS}
        exclude = {c.process.popen.pid for c in collectors.values()}
        for node in (nodes["worker"], nodes["head"]):
            node.stop(exclude, grace=10.0)
            wait_until_quiet(list(collectors.values()), limit=QUIET_LIMIT_S)
        for collector in collectors.values():
            collector.signal_exit()
        exits = {role: c.wait_exit(60.0) for role, c in collectors.items()}
        note(f"Ray stopped, collectors drained (exit codes {exits})")
        return live
    finally:
        if driver is not None:
            driver.kill()
        exclude = {c.process.popen.pid for c in collectors.values()}
        for node in reversed(nodes.values()):
            node.stop(exclude, grace=5.0)
        for collector in collectors.values():
            collector.process.kill()
            collector.client.close()


def ray_comparison(work: Path, tasks: int, requests: int, live_requests: int) -> RayResults:
    from ray_cluster import ray_temp_root

    root = work / "ray"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    preferred = root / "r"
    ray_root = ray_temp_root(preferred)  # short: Ray's socket paths are bounded
    ray_root.mkdir(exist_ok=True)
    print(
        f"a real Ray cluster (head + worker, 2 CPUs each), {count(tasks)} tasks; {load_average()}"
    )
    results = RayResults()
    try:
        results.live = run_ray_cluster(root, ray_root, tasks, live_requests)
    finally:
        if ray_root != preferred:
            shutil.rmtree(ray_root, ignore_errors=True)
    lake = Lake(str(root / "lake"))
    sessions = {(e.cluster_key, e.session) for e in read_entries(lake)}
    if len(sessions) != 1:
        raise SystemExit(f"expected one session in the Ray run's lake, found {sorted(sessions)}")
    ref = SessionRef(*sessions.pop())
    print(f"  live dashboard, {live_requests} requests each:")
    for path, latency in results.live.items():
        print_latency(path, latency, targets=False)
    with serving(lake, root) as server, client_of(server.url) as client:
        answer, seconds = enter(client, ref)
        print(
            f"  raylake over that session ({ref.cluster.key}/{ref.session}); first request "
            f"builds its state (HTTP {answer.status_code}): {ms(seconds)}; "
            f"{requests} requests each:"
        )
        for path in LIVE_ENDPOINTS:
            results.lake[path] = measure(client, path, ref, requests)
            print_latency(path, results.lake[path])
    return results


# ---------------------------------------------------------------------------------------


def print_summary(serve: ServeResults, ray: RayResults | None, attempts: int | None) -> None:
    print("summary (ratio = measured / target; p50 = median):")
    if attempts is not None:
        print(f"  big session: {count(attempts)} task attempts")
    for label, latency in serve.latencies:
        if latency.ok:
            print_latency(label, latency, targets="no target" not in label)
        else:
            print(f"  {label:<44} HTTP {latency.status}: not measured")
    if serve.cold_start is not None:
        print(
            f"  {'cold start (big session, state in the lake)':<44} {serve.cold_start:8.2f} s"
            f"       target <= {TARGET_COLD_START_S:.0f} s   "
            f"{verdict(serve.cold_start, TARGET_COLD_START_S)}"
        )
    build = "state build" if serve.materialized else "state build FAILED"
    if not serve.materialized:
        print(f"  {'the server building the big session state':<44} FAILED (see above)")
    for label, peak in (
        ("peak RSS of the serving server (VmHWM)", serve.peak_rss),
        (f"peak RSS of the first server ({build})", serve.materializing_rss),
    ):
        if peak is not None:
            print(
                f"  {label:<44} {_mb(peak):>10}     "
                f"target <= {_mb(TARGET_RSS_BYTES)}   {verdict(peak, TARGET_RSS_BYTES)}"
            )
    if ray is None:
        return
    for path in LIVE_ENDPOINTS:
        live, ours = ray.live.get(path), ray.lake.get(path)
        if live is None or ours is None or not (live.ok and ours.ok):
            statuses = (live and live.status, ours and ours.status)
            print(f"  Ray session {path}: not compared (HTTP live, raylake: {statuses})")
            continue
        print(
            f"  Ray session {path:<32} live p50 {ms(live.p50):>10}, raylake p50 "
            f"{ms(ours.p50):>10}: live / raylake = {live.p50 / ours.p50:.1f}x"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sessions", type=int, help="sessions in the lake (default 1,000)")
    parser.add_argument(
        "--attempts", type=int, help="task attempts of the big session (default 1,000,000)"
    )
    parser.add_argument("--requests", type=int, help="measured requests per endpoint (50)")
    parser.add_argument(
        "--live-requests", type=int, help="measured requests on the live dashboard (20)"
    )
    parser.add_argument("--ray-tasks", type=int, help="tasks the Ray driver runs (10,000)")
    parser.add_argument("--no-ray", action="store_true", help="skip the real Ray cluster")
    parser.add_argument("--quick", action="store_true", help="20 sessions, 50k attempts, 2k tasks")
    parser.add_argument("--keep", type=Path, help="keep input, lakes and logs in this directory")
    parser.add_argument("--seed", type=int, default=synthetic.Spec.seed)
    parser.add_argument("--ray-driver", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "sessions": 20 if quick else 1000,
        "attempts": 50_000 if quick else 1_000_000,
        "requests": 20 if quick else 50,
        "live_requests": 10 if quick else 20,
        "ray_tasks": 2000 if quick else 10_000,
    }
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.sessions < 3:
        parser.error("--sessions must be at least 3 (the sample, a copy and the big one)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # A stopped benchmark still stops the servers, collectors and Ray nodes it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.ray_driver:
        address, tasks = args.ray_driver
        return ray_driver(address, int(tasks))
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"raylake history-server benchmark: {versions()}; {load_average()}")
    spec = LakeSpec(sessions=args.sessions, attempts=args.attempts, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="raylake-bench-query-") as temporary:
        work = args.keep.resolve() if args.keep else Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        print(
            f"lake: {count(spec.sessions)} sessions, a big one of ~{count(spec.attempts)} "
            f"task attempts; {load_average()}"
        )
        lake, timings = prepared_lake(work, spec)
        if timings is None:
            print(f"  reused {work / 'lake'} (built earlier with the same settings)")
        else:
            total = timings.sample + timings.copies + timings.generate + timings.ingest
            print(
                f"  built in {total:.0f} s: "
                f"sample {timings.sample:.1f} s, {count(spec.sessions - 2)} copies "
                f"{timings.copies:.1f} s, big input generated {timings.generate:.0f} s, "
                f"ingested {timings.ingest:.0f} s"
            )
        big = big_session(lake)
        small = small_refs(spec)[(spec.sessions - 2) // 2]
        materializing_rss, materialized = materialize_big(lake, big, work)
        meta = read_meta(lake, big)
        attempts = meta["rows"]["tasks"] if meta else None
        serve = serve_synthetic(lake, big, small, work, args.requests)
        serve.materializing_rss = materializing_rss
        serve.materialized = materialized
        ray = None
        if not args.no_ray:
            ray = ray_comparison(work, args.ray_tasks, args.requests, args.live_requests)
        print_summary(serve, ray, attempts)
        print(load_average())
        if args.keep:
            print(f"kept input, lakes and logs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
