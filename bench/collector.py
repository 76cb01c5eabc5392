"""Collector benchmark: sustained intake of `raylake collect`, posted to as Ray posts.

    .venv/bin/python bench/collector.py                # 1,200,000 events, 3 runs of each kind
    .venv/bin/python bench/collector.py --quick        # 60,000 events, 1 run of each kind
    .venv/bin/python bench/collector.py --keep /tmp/raylake-collector --profile 30
    .venv/bin/python bench/collector.py --min-body 100 --clients 4   # smaller bodies, 4 at once

1. Generates the input (`bench/synthetic.py`): clones of the bundled Ray 2.60 capture
   with fresh ids and shifted times, cut into POST bodies the way Ray's aggregator cuts
   them at the target's rate, one `.json` file per body, exactly the bytes Ray POSTs.
   Ray 2.60's aggregator agent sends a batch once it holds 1000 events
   (`RAY_DASHBOARD_AGGREGATOR_AGENT_MAX_EVENT_SEND_BATCH_SIZE`) or 0.1 s after its
   first event (`..._PUBLISHER_MAX_BUFFER_SEND_INTERVAL_SECONDS`): above 10,000 events/s
   every batch is full, so bodies are of 1000 events, but each node's last one, which
   holds the rest (`--min-body`, `--max-body`: sizes drawn log-uniformly between them).
2. Per run: starts `python -m raylake collect --role head` as a child process on a free
   loopback port, with a fresh lake, spool and (empty) Ray root in the work directory,
   and waits for `/readyz`. `--clients` threads of this process then POST every body to
   `/v1/events` (httpx, keep-alive; a 503 is retried after its Retry-After). One by
   default: Ray's publisher awaits each POST's answer before it sends the next. When the
   last body is acknowledged the collector gets SIGTERM, drains its spool into the lake
   and exits; it is reaped with `os.wait4`.
3. Measures the collector process only (the clients' CPU is this process's, printed
   apart): CPU from `/proc/<pid>/stat` (utime + stime of all its threads) when it is
   ready, when the last body is acknowledged, and from `wait4`'s rusage at exit, so the
   CPU splits into start-up (excluded), intake (with the flushes that happen during it)
   and drain (the final flush after SIGTERM); peak RSS as `VmHWM` sampled from
   `/proc/<pid>/status` until exit and `ru_maxrss` from `wait4`. The lake's catalog is
   read afterwards to check that every accepted event was written.
4. Runs with the collector held to 0.2 CPU (`--held-repeat`, default 3: a host's speed
   drifts by a fifth or more from minute to minute, so one run decides nothing), like
   the sidecar limit KubeRay sets, from the moment it is ready: in a CPU cgroup of its
   own with a CFS quota of 20 ms per 100 ms period, exactly as Kubernetes limits a
   container (cgroup v1's `cpu` hierarchy or cgroup v2; it takes root or a delegated
   tree). Where no cgroup can be made, the limit is emulated the way `cpulimit` does
   it: a thread of this process reads the collector's CPU time
   (`/proc/<pid>/task/*/schedstat`, nanoseconds) and stops it with SIGSTOP once it has
   used its quota of a period, resuming it with SIGCONT at the next. The header of the
   runs says which.
5. Paced runs (`--rate`, default the target's 20,000 events/s; 0 skips them), as many
   of each kind as held runs: the clients send each body when the events before it
   have had their time at that rate, to an unlimited collector (its CPU per event when
   no backlog builds: every body's rows are held for the flush, none is parsed twice),
   and to one held to `--cpu-limit` as above: the target itself. A run kept up when the
   last body was taken within 5% of the run's length (at most a second) of its due
   time, no 503 came, and the drain at SIGTERM took under 5 s.
6. With `--profile N`: one more run in which the collector runs in-process in a child
   of this script, the way `raylake collect` runs it, with a cProfile profiler in
   every thread (timer: the thread's CPU time, so waiting on fsync or on the network
   does not count), and prints the top N functions and the CPU by component.

Targets (the issue): >= 20,000 events/s within 0.2 CPU and 256 MiB, i.e. >= 100,000
events/s per core. The summary gives the median of each kind of run (the held and
paced ones: the run of median rate, with the others' range). It only prints; nothing
is asserted. With `--keep DIR` the input (`DIR/input`, reused when generated with the
same settings) and each run's lake, spool and collector log (`DIR/run-*`) stay on
disk; otherwise everything lives in a temporary directory that is removed.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `python bench/collector.py` puts bench/ first on sys.path, where bench/ingest.py would
# shadow the `ingest` package: resolve imports from the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import msgspec  # noqa: E402

from bench import synthetic  # noqa: E402
from bench.report import count, load_average  # noqa: E402

TARGET_EVENTS_PER_CORE = 100_000
TARGET_EVENTS_PER_S = 20_000
TARGET_CPU = 0.2
TARGET_RSS_BYTES = 256 * 1024 * 1024  # 256 MiB
# A minute at the target's rate: long enough for a paced run that loses ground to show it
# (a fifth of a second lost every ten seconds), not just the latency of its last body.
EVENTS = 1_200_000
QUICK_EVENTS = 60_000
RAY_BATCH_EVENTS = 1000  # Ray 2.60's aggregator: MAX_EVENT_SEND_BATCH_SIZE
CLUSTER = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PERIOD_S = 0.1  # the CFS bandwidth period Kubernetes uses
READY_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 300.0  # a throttled collector answers late, never drop a body


# ---------------------------------------------------------------------------------------
# The collector's process, seen from outside through /proc.


def _stat_cpu(pid: int) -> tuple[float, float]:
    """(utime, stime) of a live process (all its threads, dead ones too), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3, utime and stime are fields 14 and 15.
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def _status_kib(pid: int, key: str) -> int | None:
    """A `kB` line of /proc/<pid>/status in bytes; None once the process is a zombie."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class TaskClock:
    """CPU nanoseconds of all threads of a process, threads that have ended included
    (their last reading is kept), from /proc/<pid>/task/*/schedstat."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.last: dict[str, int] = {}
        self.ended = 0

    def ns(self) -> int:
        now: dict[str, int] = {}
        with contextlib.suppress(FileNotFoundError):
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                try:
                    now[task.name] = int((task / "schedstat").read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
        for tid, ns in self.last.items():
            if tid not in now:
                self.ended += ns
        self.last = now
        return self.ended + sum(now.values())


class CpuCgroup:
    """A CPU cgroup of its own holding its processes to `cpus` CPUs, as Kubernetes limits
    a container: the CFS bandwidth controller gives it `cpus * PERIOD_S` of CPU per
    period. Made under cgroup v1's `cpu` hierarchy or cgroup v2's root, where this
    process may write (root, or a delegated tree); `make` gives None elsewhere."""

    V1 = Path("/sys/fs/cgroup/cpu")
    V2 = Path("/sys/fs/cgroup")

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def make(cls, cpus: float, name: str) -> CpuCgroup | None:
        period_us = int(PERIOD_S * 1e6)
        quota_us = int(cpus * period_us)
        made = None  # the directory, once made: removed again if the rest fails
        try:
            if (cls.V1 / "cpu.cfs_quota_us").exists():
                path = cls.V1 / name
                path.mkdir()
                made = path
                (path / "cpu.cfs_period_us").write_text(str(period_us))
                (path / "cpu.cfs_quota_us").write_text(str(quota_us))
            elif "cpu" in (cls.V2 / "cgroup.subtree_control").read_text().split():
                path = cls.V2 / name
                path.mkdir()
                made = path
                (path / "cpu.max").write_text(f"{quota_us} {period_us}")
            else:
                return None
        except OSError:
            if made is not None:
                with contextlib.suppress(OSError):
                    made.rmdir()
            return None
        return cls(path)

    @classmethod
    def available(cls) -> bool:
        """Whether `make` succeeds here (it makes one and removes it)."""
        cgroup = cls.make(TARGET_CPU, f"raylake-bench-{os.getpid()}-probe")
        if cgroup is None:
            return False
        cgroup.remove()
        return True

    def add(self, pid: int) -> None:
        """Move a process, every thread of it, into the cgroup."""
        (self.path / "cgroup.procs").write_text(str(pid))

    @property
    def stops(self) -> int:
        """Periods in which the cgroup used its quota and was held until the next."""
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, value = line.split()
            if key == "nr_throttled":  # v1 and v2 alike
                return int(value)
        return 0

    def remove(self) -> None:
        """Remove the cgroup, once its processes are gone (an exit takes a moment)."""
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.05)
        print(f"  WARNING: could not remove the cgroup {self.path}")


class Throttle(threading.Thread):
    """Holds a process to `cpus` CPUs the way the CFS bandwidth controller does, where no
    cgroup can be made (`CpuCgroup`): at most `cpus * PERIOD_S` of CPU per period,
    stopped (SIGSTOP) for the rest of a period once that is used, overdraft carried to
    the next period."""

    def __init__(self, pid: int, cpus: float) -> None:
        super().__init__(name="throttle", daemon=True)
        self.pid = pid
        self.quota_ns = int(cpus * PERIOD_S * 1e9)
        self.clock = TaskClock(pid)
        self.done = threading.Event()
        self.stops = 0

    def run(self) -> None:
        pid, quota = self.pid, self.quota_ns
        try:
            period_end = time.monotonic() + PERIOD_S
            base = self.clock.ns()
            budget = quota
            while not self.done.is_set():
                used = self.clock.ns() - base
                if used >= budget:
                    os.kill(pid, signal.SIGSTOP)
                    self.stops += 1
                    time.sleep(max(0.0, period_end - time.monotonic()))
                    os.kill(pid, signal.SIGCONT)
                else:
                    time.sleep(0.001)
                now = time.monotonic()
                if now >= period_end:
                    periods = int((now - period_end) / PERIOD_S) + 1
                    period_end += periods * PERIOD_S
                    base += used
                    budget = min(quota, budget - used + periods * quota)
        except ProcessLookupError:
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        self.done.set()
        self.join()


class Sampler(threading.Thread):
    """Polls VmHWM and VmRSS until the process is gone (a zombie has neither)."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="sampler", daemon=True)
        self.pid = pid
        self.hwm = 0
        self.rss = 0

    def run(self) -> None:
        while True:
            hwm = _status_kib(self.pid, "VmHWM:")
            rss = _status_kib(self.pid, "VmRSS:")
            if hwm is None or rss is None:
                return
            self.hwm, self.rss = max(self.hwm, hwm), max(self.rss, rss)
            time.sleep(0.02)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Exit:
    status: int
    user: float
    system: float
    maxrss: int
    wall: float
    """From SIGTERM to exit."""


class Collector:
    """`raylake collect` in a child process."""

    def __init__(
        self, run_dir: Path, flush_interval: str, flush_events: int, profile_out: Path | None
    ) -> None:
        self.run_dir = run_dir
        self.lake = run_dir / "lake"
        self.port = free_port()
        spool, ray_root = run_dir / "spool", run_dir / "ray-root"
        ray_root.mkdir(parents=True)
        collect = [
            "collect",
            *("--lake", str(self.lake), "--cluster", CLUSTER, "--role", "head"),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--spool", str(spool), "--ray-root", str(ray_root)),
            *("--flush-interval", flush_interval),
            *(("--flush-events", str(flush_events)) if flush_events else ()),
        ]
        if profile_out is None:
            command = [sys.executable, "-m", "raylake", *collect]
        else:
            here = str(Path(__file__).resolve())
            command = [sys.executable, here, "--profile-child", str(profile_out), *collect]
        self.log_path = run_dir / "collector.log"
        self.base_url = f"http://127.0.0.1:{self.port}"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        self.sampler = Sampler(self.pid)
        self.sampler.start()

    def wait_ready(self) -> float:
        """Seconds until /readyz answers 200."""
        started = time.perf_counter()
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.perf_counter() - started < READY_TIMEOUT_S:
                if self.process.poll() is not None:
                    self.fail(f"exited with status {self.process.returncode} before ready")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/readyz").status_code == 200:
                        return time.perf_counter() - started
                time.sleep(0.05)
        self.fail(f"not ready after {READY_TIMEOUT_S:.0f} s")
        raise AssertionError  # unreachable

    def cpu(self) -> tuple[float, float]:
        """(user, system) CPU seconds so far."""
        return _stat_cpu(self.pid)

    def terminate(self) -> Exit:
        """SIGTERM, wait for the drain, reap; the sampler reads until the very end."""
        started = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        # Wait for the exit without reaping, so the sampler's last read is of this
        # process and not of a reused pid; then reap for the rusage.
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        wall = time.perf_counter() - started
        self.sampler.join()
        _, status, usage = os.wait4(self.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        return Exit(
            self.process.returncode,
            usage.ru_utime,
            usage.ru_stime,
            usage.ru_maxrss * 1024,
            wall,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def fail(self, why: str) -> None:
        self.kill()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"collector {why}; its log ({self.log_path}) ends:\n{tail}")


# ---------------------------------------------------------------------------------------
# The clients: threads of this process posting the bodies.


@dataclass
class Posted:
    bodies: int = 0
    events: int = 0
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def post_all(
    base_url: str, files: Sequence[Path], clients: int, release: Sequence[float] = ()
) -> Posted:
    """POST every file once, `clients` requests in flight; each body until it is taken.
    With `release` (seconds from the start, per file), no body is sent before its time."""
    queue: Iterator[tuple[int, Path]] = iter(enumerate(files))
    lock = threading.Lock()
    total = Posted()
    start = time.perf_counter()

    def client() -> None:
        mine = Posted()
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as http:
            while True:
                with lock:
                    index, path = next(queue, (0, None))
                if path is None:
                    break
                body = path.read_bytes()
                if release:
                    time.sleep(max(0.0, start + release[index] - time.perf_counter()))
                while True:
                    try:
                        response = http.post("/v1/events", content=body, headers=headers)
                    except httpx.HTTPError as exc:
                        mine.errors[type(exc).__name__] += 1
                        break
                    if response.status_code == 503:
                        mine.retries += 1
                        time.sleep(min(1.0, float(response.headers.get("retry-after", 1))))
                        continue
                    if response.status_code != 200:
                        mine.errors[f"HTTP {response.status_code}"] += 1
                    else:
                        mine.bodies += 1
                        mine.events += int(response.json()["accepted"])
                    break
        with lock:
            total.bodies += mine.bodies
            total.events += mine.events
            total.retries += mine.retries
            total.errors.update(mine.errors)

    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return total


def release_times(files: Sequence[Path], rate: float) -> list[float]:
    """When each body is due (seconds from the start) for `rate` events/s overall: a
    body goes once the events before it have had their time."""
    times, before = [], 0
    for path in files:
        times.append(before / rate)
        before += len(msgspec.json.decode(path.read_bytes(), type=list[msgspec.Raw]))
    return times


# ---------------------------------------------------------------------------------------
# One run.


@dataclass
class Run:
    label: str
    events: int
    bodies: int
    ready_s: float
    startup_cpu: float
    intake_wall: float
    intake_cpu: float
    intake_sys: float
    drain_wall: float
    drain_cpu: float
    drain_sys: float
    ready_rss: int
    hwm: int
    rss_sampled: int
    maxrss: int
    client_cpu: float
    exit_status: int
    lake_events: int
    retries: int
    errors: dict[str, int]
    throttle_stops: int = 0
    cpu_limit: float = 0.0
    cgroup: bool = False  # the limit was a cgroup's (else emulated)
    offered: float = 0.0  # events/s the clients were paced to (0: as fast as taken)

    @property
    def cpu(self) -> float:
        """Intake and drain: everything after start-up."""
        return self.intake_cpu + self.drain_cpu

    @property
    def rate(self) -> float:
        return self.events / self.intake_wall

    @property
    def rate_with_drain(self) -> float:
        return self.events / (self.intake_wall + self.drain_wall)

    @property
    def per_core(self) -> float:
        return self.events / self.cpu if self.cpu else float("inf")

    @property
    def intake_per_core(self) -> float:
        return self.events / self.intake_cpu if self.intake_cpu else float("inf")

    @property
    def cpu_per_100k(self) -> float:
        return self.cpu / self.events * 100_000

    @property
    def peak(self) -> int:
        return max(self.hwm, self.maxrss)


def lake_events(lake_dir: Path) -> int:
    """Events the collector's catalog entries count (-1 when the lake cannot be read)."""
    from lake.catalog import read_entries
    from lake.store import Lake

    try:
        lake = Lake(str(lake_dir))
        return sum(sum(e.event_counts.values()) for e in read_entries(lake))
    except Exception:  # a benchmark reports, it does not stop
        return -1


def run_once(
    label: str,
    work: Path,
    files: Sequence[Path],
    args: argparse.Namespace,
    *,
    cpu_limit: float = 0.0,
    offered: float = 0.0,
    release: Sequence[float] = (),
    profile_out: Path | None = None,
) -> Run:
    run_dir = work / f"run-{label}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    collector = Collector(run_dir, args.flush_interval, args.flush_events, profile_out)
    throttle = cgroup = None
    try:
        ready_s = collector.wait_ready()
        startup_cpu = sum(collector.cpu())
        ready_rss = _status_kib(collector.pid, "VmRSS:") or 0
        if cpu_limit:
            cgroup = CpuCgroup.make(cpu_limit, f"raylake-bench-{os.getpid()}-{label}")
            if cgroup is not None:
                cgroup.add(collector.pid)
            else:
                throttle = Throttle(collector.pid, cpu_limit)
                throttle.start()
        wall0, client0 = time.perf_counter(), time.process_time()
        cpu0 = collector.cpu()
        posted = post_all(collector.base_url, files, args.clients, release)
        cpu1 = collector.cpu()
        intake_wall = time.perf_counter() - wall0
        client_cpu = time.process_time() - client0
        done = collector.terminate()
    except BaseException:
        collector.kill()
        raise
    finally:
        if throttle is not None:
            throttle.stop()
        stops = throttle.stops if throttle is not None else 0
        if cgroup is not None:
            stops = cgroup.stops
            cgroup.remove()
    if done.status != 0:
        print(f"  WARNING: collector exit status {done.status}; see {collector.log_path}")
    return Run(
        label=label,
        events=posted.events,
        bodies=posted.bodies,
        ready_s=ready_s,
        startup_cpu=startup_cpu,
        intake_wall=intake_wall,
        intake_cpu=sum(cpu1) - sum(cpu0),
        intake_sys=cpu1[1] - cpu0[1],
        drain_wall=done.wall,
        drain_cpu=done.user + done.system - sum(cpu1),
        drain_sys=done.system - cpu1[1],
        ready_rss=ready_rss,
        hwm=collector.sampler.hwm,
        rss_sampled=collector.sampler.rss,
        maxrss=done.maxrss,
        client_cpu=client_cpu,
        exit_status=done.status,
        lake_events=lake_events(collector.lake),
        retries=posted.retries,
        errors=dict(posted.errors),
        throttle_stops=stops,
        cgroup=cgroup is not None,
        cpu_limit=cpu_limit,
        offered=offered,
    )


# ---------------------------------------------------------------------------------------
# Profile: the collector in a child of this script, a profiler in each of its threads.


class _Snapshot:
    """A profiler's completed calls, read from another thread. `pstats.Stats(profiler)`
    would disable it first, closing the calls its thread is blocked in (a queue.get)
    with this thread's CPU clock: nonsense times."""

    def __init__(self, profiler: cProfile.Profile) -> None:
        profiler.snapshot_stats()  # type: ignore[attr-defined]
        self.stats = profiler.stats  # type: ignore[attr-defined]

    def create_stats(self) -> None:
        pass


def profile_child(out: Path, collect_argv: Sequence[str]) -> int:
    """Run `raylake collect` in this process with a CPU-time cProfile in every thread;
    write the merged stats to `out` when it exits."""
    import raylake
    from ingest.settings import config_from
    from ingest.sidecar import run

    config = config_from(raylake.parser().parse_args(list(collect_argv)))
    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_profiler(*_: Any) -> None:
        # Called as the new thread's first profile event: swap in a real profiler.
        profiler = cProfile.Profile(time.thread_time_ns, 1e-9)
        with lock:
            profilers.append(profiler)
        profiler.enable()

    threading.setprofile(start_profiler)
    main = cProfile.Profile(time.thread_time_ns, 1e-9)
    main.enable()
    try:
        status = run(config)
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        stats = pstats.Stats(main)
        with lock:
            for profiler in profilers:
                stats.add(_Snapshot(profiler))
        stats.dump_stats(str(out))
    return status


COMPONENTS: tuple[tuple[str, str, str], ...] = (
    # (label, file suffix, function): cumulative CPU of each; they nest, see the notes.
    ("Collector.accept (whole intake call)", "ingest/collector.py", "accept"),
    ("  take (parse, check, fill the columns)", "ingest/normalize.py", "take"),
    ("    parse_body (the exact path, when take declines)", "ingest/parse.py", "parse_body"),
    ("  Spool.append (write + fsync)", "ingest/spool.py", "append"),
    ("    os.fsync", "~", "<built-in method posix.fsync>"),
    ("  line_frame (the body's zstd frame)", "ingest/rawfiles.py", "line_frame"),
    ("  prometheus Counter.labels", "prometheus_client/metrics.py", "labels"),
    ("  prometheus Counter.inc", "prometheus_client/metrics.py", "inc"),
    ("Collector.flush (seal + write to the lake)", "ingest/collector.py", "flush"),
    ("  to_table", "ingest/to_arrow.py", "to_table"),
    ("  write_parts", "lake/parts.py", "write_parts"),
    ("  rows_from_disk (segments not held: parsed again)", "ingest/flush.py", "rows_from_disk"),
    ("  Flusher._count (catalog)", "ingest/flush.py", "_count"),
    ("HTTP: bytes read and parsed (main thread)", "ingest/httpd.py", "data_received"),
    ("events handler (main thread, a coroutine)", "ingest/intake.py", "events"),
)


def print_profile(path: Path, top: int, events: int) -> None:
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in raw.values())
    print(
        f"profile: CPU time of all collector threads {total:.2f} s for {events:,} events "
        f"({total / events * 1e6:.1f} us/event, profiler overhead included)"
    )
    print("  cumulative CPU by component (nested ones are part of the line above):")
    for label, suffix, name in COMPONENTS:
        cum = sum(
            ct
            for (file, _, func), (_, _, _, ct, _) in raw.items()
            if func == name and (file.endswith(suffix) or (suffix == "~" and file == "~"))
        )
        print(f"    {label:<52} {cum:7.2f} s  {100 * cum / total:5.1f}%")
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    start = text.find("   ncalls")
    print(f"  top {top} functions by own CPU time (tottime):")
    print("\n".join("  " + line for line in text[start:].rstrip().splitlines()))


# ---------------------------------------------------------------------------------------
# Input and output.


def filesystem(path: Path) -> str:
    """The type of the filesystem holding `path` (fsync costs depend on it)."""
    best, kind = "", "unknown"
    with contextlib.suppress(OSError), open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], f"{parts[2]} ({parts[0]})"
    return kind


def _mib(value: float) -> str:
    return f"{value / 2**20:,.1f} MiB"


def versions() -> str:
    import httptools
    import uvloop

    return (
        f"Python {platform.python_version()}, httptools {httptools.__version__}, "
        f"uvloop {uvloop.__version__}, "
        f"httpx {httpx.__version__}, "
        f"{os.cpu_count()} cores ({platform.machine()})"
    )


def print_run(run: Run, expected: int) -> None:
    print(
        f"  run {run.label}: {count(run.events)} events in {count(run.bodies)} bodies; "
        f"intake {run.intake_wall:.2f} s wall = {count(run.rate)} events/s, "
        f"CPU {run.intake_cpu:.2f} s ({run.intake_sys:.2f} system); "
        f"drain {run.drain_wall:.2f} s wall, CPU {run.drain_cpu:.2f} s "
        f"({run.drain_sys:.2f} system); {count(run.per_core)} events/s per core "
        f"({run.cpu_per_100k:.2f} CPU s per 100k); "
        f"peak RSS VmHWM {_mib(run.hwm)}, ru_maxrss {_mib(run.maxrss)}"
    )
    print(
        f"    ready in {run.ready_s:.1f} s (start-up CPU {run.startup_cpu:.2f} s, excluded; "
        f"RSS then {_mib(run.ready_rss)}); "
        f"clients' CPU {run.client_cpu:.2f} s (this process); "
        f"lake counts {count(run.lake_events)} events"
        + (f"; throttled {run.throttle_stops:,} times" if run.throttle_stops else "")
        + (f"; {run.retries} retried after 503" if run.retries else "")
    )
    problems = []
    if run.errors:
        problems.append(f"errors {run.errors}")
    if run.events != expected:
        problems.append(f"{count(run.events)} of {count(expected)} events accepted")
    if run.lake_events != run.events:
        problems.append(f"the lake counts {count(run.lake_events)}, not {count(run.events)}")
    if run.exit_status != 0:
        problems.append(f"exit status {run.exit_status}")
    if problems:
        print("    WARNING: " + "; ".join(problems))


def seconds_behind(run: Run) -> float:
    """How long after its due time, at the offered rate, a paced run's last body was
    taken."""
    return run.intake_wall - run.events / run.offered


def kept_up(run: Run) -> bool:
    """The last body taken within 5% of the run's length (a second at most) of its due
    time, no 503, and the spool drained at SIGTERM in a few seconds (no backlog was
    building)."""
    due = run.events / run.offered
    return seconds_behind(run) < min(1.0, 0.05 * due) and run.drain_wall < 5.0 and not run.retries


def median_run(runs: list[Run]) -> tuple[Run, str]:
    """The run of median rate (the lower middle of an even count), and how the runs'
    rates range."""
    ranked = sorted(runs, key=lambda r: r.rate)
    spread = f"median of {len(runs)}: {' '.join(count(r.rate) for r in ranked)}"
    return ranked[(len(ranked) - 1) // 2], spread


def print_summary(runs: list[Run], limited: list[Run], paced: list[list[Run]]) -> None:
    def med(key: str) -> float:
        return statistics.median(getattr(r, key) for r in runs)

    per_core, peak = med("per_core"), max(r.peak for r in runs)
    print(f"summary (median of {len(runs)} run(s); ratio = measured / target):")
    rows = [
        ("events/s accepted (wall)", f"{count(med('rate'))}", ""),
        ("  with the drain", f"{count(med('rate_with_drain'))}", ""),
        (
            "CPU s per 100k events",
            f"{med('cpu_per_100k'):.3f}",
            f"intake {statistics.median(r.intake_cpu / r.events * 1e5 for r in runs):.3f}"
            f" + drain {statistics.median(r.drain_cpu / r.events * 1e5 for r in runs):.3f}"
            " (each a median)",
        ),
        (
            "events/s per core",
            count(per_core),
            f"target >= {count(TARGET_EVENTS_PER_CORE)}  "
            f"ratio {per_core / TARGET_EVENTS_PER_CORE:.2f}x  "
            + ("meets" if per_core >= TARGET_EVENTS_PER_CORE else "BELOW"),
        ),
        ("  intake alone", count(med("intake_per_core")), "(without the final flush)"),
        (
            "  so at 0.2 CPU",
            count(per_core * TARGET_CPU),
            f"target >= {count(TARGET_EVENTS_PER_S)} events/s  "
            f"ratio {per_core * TARGET_CPU / TARGET_EVENTS_PER_S:.2f}x",
        ),
        (
            "peak RSS (max of runs)",
            _mib(peak),
            f"target <= {_mib(TARGET_RSS_BYTES)}  ratio {peak / TARGET_RSS_BYTES:.2f}x  "
            + ("meets" if peak <= TARGET_RSS_BYTES else "OVER"),
        ),
    ]
    if limited:
        run, spread = median_run(limited)
        rate, drained = run.rate, run.rate_with_drain
        used = run.intake_cpu / run.intake_wall
        rows.append(
            (
                f"at {run.cpu_limit} CPU",
                count(rate),
                f"target >= {count(TARGET_EVENTS_PER_S)} events/s  "
                f"ratio {rate / TARGET_EVENTS_PER_S:.2f}x  "
                + ("meets" if rate >= TARGET_EVENTS_PER_S else "BELOW")
                + f"  ({'cgroup' if run.cgroup else 'emulated'}; CPU used {used:.2f}; "
                f"peak RSS {_mib(max(r.peak for r in limited))}; {spread})",
            )
        )
        ratio = drained / TARGET_EVENTS_PER_S
        rows.append(("  with the drain", count(drained), f"ratio {ratio:.2f}x"))
    for kind in paced:
        run, spread = median_run(kind)
        held = f"at {run.cpu_limit} CPU" if run.cpu_limit else "unlimited"
        how = ("cgroup; " if run.cgroup else "emulated; ") if run.cpu_limit else ""
        late = seconds_behind(run)
        kept = sum(kept_up(r) for r in kind)
        rows.append(
            (
                f"paced {count(run.offered)}/s, {held}",
                count(run.rate),
                f"accepted/s ({how}{late:+.1f} s behind the offer at the end), drain "
                f"{run.drain_wall:.1f} s; CPU {run.cpu_per_100k:.3f} s per 100k "
                f"(= {count(run.per_core)} per core); {spread}; kept up in {kept} of "
                f"{len(kind)}" + ("" if kept == len(kind) else "  FELL BEHIND"),
            )
        )
    for name, value, note in rows:
        print(f"  {name:<26} {value:>12}   {note}")


# ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, help=f"synthetic events (default {EVENTS:,})")
    parser.add_argument("--repeat", type=int, help="unlimited runs (default 3)")
    parser.add_argument(
        "--held-repeat", type=int, help="runs held to --cpu-limit, and paced of each kind (3)"
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events, 1 run")
    parser.add_argument("--keep", type=Path, help="keep input and the runs in this directory")
    parser.add_argument(
        "--clients", type=int, default=1, help="POSTs in flight (default 1, as Ray's publisher)"
    )
    parser.add_argument(
        "--min-body",
        type=int,
        default=RAY_BATCH_EVENTS,
        help=f"fewest events in a body (default {RAY_BATCH_EVENTS}, Ray's full batch)",
    )
    parser.add_argument(
        "--max-body",
        type=int,
        default=RAY_BATCH_EVENTS,
        help=f"most events in a body (default {RAY_BATCH_EVENTS})",
    )
    parser.add_argument("--seed", type=int, default=synthetic.Spec.seed)
    parser.add_argument(
        "--flush-interval", default="10s", help="the collector's --flush-interval (10s)"
    )
    parser.add_argument(
        "--flush-events",
        type=int,
        default=0,
        help="the collector's --flush-events (default: its own default)",
    )
    parser.add_argument(
        "--cpu-limit",
        type=float,
        default=TARGET_CPU,
        help=f"CPUs of the throttled run (default {TARGET_CPU}; 0 skips it)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=TARGET_EVENTS_PER_S,
        help=f"events/s offered in the paced runs (default {TARGET_EVENTS_PER_S:,}; 0 skips "
        "them): one unlimited, one held to --cpu-limit",
    )
    parser.add_argument(
        "--profile", type=int, metavar="N", default=0, help="profile one run, print top N"
    )
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = QUICK_EVENTS if args.quick else EVENTS
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.held_repeat is None:
        args.held_repeat = 1 if args.quick else 3
    if min(args.events, args.repeat, args.held_repeat, args.clients, args.min_body) <= 0:
        parser.error("--events, --repeat, --held-repeat, --clients and --min-body must be positive")
    if args.max_body < args.min_body:
        parser.error("--max-body must be at least --min-body")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--profile-child"]:
        return profile_child(Path(argv[1]), argv[2:])
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"raylake collector benchmark: {versions()}; {load_average()}")
    spec = synthetic.Spec(
        events=args.events,
        seed=args.seed,
        min_body=args.min_body,
        max_body=args.max_body,
        jsonl_share=0,
    )
    with tempfile.TemporaryDirectory(prefix="raylake-bench-collector-") as temporary:
        work = args.keep.resolve() if args.keep else Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        manifest, reused = synthetic.prepare(work / "input", spec)
        files = synthetic.input_files(work / "input")
        m = manifest
        how = "reused" if reused else f"generated in {m.seconds:.1f} s"
        sizes = (
            f"up to {args.max_body}"
            if args.min_body == args.max_body
            else f"{args.min_body}-{args.max_body}"
        )
        print(
            f"input: {count(m.events)} events in {count(m.bodies)} bodies of {sizes} "
            f"(mean {m.events / m.bodies:.0f} events, {m.body_bytes / m.bodies / 1e3:.0f} kB), "
            f"{m.body_bytes / 1e6:,.0f} MB of JSON; {how}; at {work / 'input'}"
        )
        print(
            f"collector: python -m raylake collect --role head, --flush-interval "
            f"{args.flush_interval}"
            + (f", --flush-events {args.flush_events}" if args.flush_events else "")
            + f"; POSTs in flight: {args.clients}; work directory on "
            f"{filesystem(work)}"
        )

        runs = []
        for i in range(1, args.repeat + 1):
            run = run_once(str(i), work, files, args)
            print_run(run, m.events)
            runs.append(run)
        limited: list[Run] = []
        period = f"{PERIOD_S * 1000:.0f} ms"
        how = (
            f"a CPU cgroup's quota per {period} period, as Kubernetes sets it"
            if args.cpu_limit > 0 and CpuCgroup.available()
            else f"emulated, SIGSTOP/SIGCONT per {period} period: no cgroup can be made"
        )
        if args.cpu_limit > 0:
            print(
                f"throttled runs: the collector held to {args.cpu_limit} CPU ({how}; from ready on)"
            )
            for i in range(1, args.held_repeat + 1):
                limited.append(
                    run_once(f"limited-{i}", work, files, args, cpu_limit=args.cpu_limit)
                )
                print_run(limited[-1], m.events)
        paced: list[list[Run]] = []
        if args.rate > 0:
            release = release_times(files, args.rate)
            limits = [0.0, *([args.cpu_limit] if args.cpu_limit > 0 else [])]
            for cpu_limit in limits:
                held = f"held to {cpu_limit} CPU ({how})" if cpu_limit else "unlimited"
                print(f"paced runs: {count(args.rate)} events/s offered, the collector {held}")
                label = f"paced-{cpu_limit}" if cpu_limit else "paced"
                paced.append([])
                for i in range(1, args.held_repeat + 1):
                    run = run_once(
                        f"{label}-{i}",
                        work,
                        files,
                        args,
                        cpu_limit=cpu_limit,
                        offered=args.rate,
                        release=release,
                    )
                    print_run(run, m.events)
                    paced[-1].append(run)
        if args.profile:
            out = work / "collector.prof"
            print(f"profiled run (cProfile in every collector thread; {load_average()}):")
            profiled = run_once("profile", work, files, args, profile_out=out)
            print_run(profiled, m.events)
            print_profile(out, args.profile, profiled.events)
        print_summary(runs, limited, paced)
        if args.keep:
            print(f"kept input and runs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
