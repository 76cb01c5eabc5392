"""A real Ray cluster on loopback for end-to-end tests, with a collector beside each node.

Every port Ray listens on is given explicitly (bind-tested first, from a range above
Ray's default worker ports and below the kernel's ephemeral ports), and every node has
its own `--temp-dir`. Nothing is stopped by name, and never with `ray stop` (which would
stop every Ray on the machine): a node's processes are those of the session its
`ray start` began, those whose command line names a session directory under its temp dir
(as `tests/fixtures/ray-2.60-scenario-a/workload/capture.sh` finds them), and their
descendants.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
RAY = str(Path(sys.executable).with_name("ray"))
PORT_RANGE = (20000, 32000)  # Ray's worker ports default to 10002-19999; 32768- ephemeral
WORKER_PORTS = 100  # per node: one per worker process
# Ray's unix sockets live at <temp dir>/session_<date>_<time>_<pid>/sockets/<name> and
# such a path must fit in 107 bytes; the longest name is the dashboard's
# `dash_TaskEventsHead`, and a pid may have 7 digits.
TEMP_DIR_ROOM = 107 - len("/session_2026-11-21_20-42-42_066305_1234567/sockets/dash_TaskEventsHead")


def event_export_env(collector_port: int) -> dict[str, str]:
    """What makes Ray (a node, or a driver started outside Ray) export its events."""
    return {
        "RAY_enable_ray_event": "true",
        "RAY_enable_core_worker_ray_event_to_aggregator": "true",
        "RAY_DASHBOARD_AGGREGATOR_AGENT_EXPOSABLE_EVENT_TYPES": "ALL",
        "RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR": (
            f"http://{HOST}:{collector_port}/v1/events"
        ),
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any Ray or raylake setting, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAY_", "RAYLAKE_")) and k not in ("PYTEST_CURRENT_TEST",)
    }
    env.update(extra)
    return env


class Ports:
    """Free TCP ports, each handed out once."""

    def __init__(self, seed: int | None = None) -> None:
        self.random = random.Random(seed)
        self.taken: set[int] = set()

    @staticmethod
    def is_free(port: int) -> bool:
        # The wildcard address without SO_REUSEADDR: fails when anything holds the port
        # on any local address, even in TIME_WAIT.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("", port))
            except OSError:
                return False
        return True

    def one(self) -> int:
        return self.block(1)

    def block(self, count: int) -> int:
        """The first of `count` consecutive free ports."""
        low, high = PORT_RANGE
        for _ in range(1000):
            first = self.random.randrange(low, high - count)
            ports = range(first, first + count)
            if not self.taken.intersection(ports) and all(self.is_free(p) for p in ports):
                self.taken.update(ports)
                return first
        raise RuntimeError(f"no {count} consecutive free ports in {PORT_RANGE}")


@dataclass
class Process:
    """A process this test started, with its output in a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self, tail: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


def start(name: str, command: list[str], log: Path, env: dict[str, str]) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    return Process(name, popen, log)


@dataclass
class Collector:
    """`raylake collect` beside one node."""

    role: str
    port: int
    process: Process
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=f"http://{HOST}:{self.port}", timeout=10.0)

    def healthy(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return self.client.get("/healthz").status_code == 200
        return False

    def accepted(self) -> float:
        """Events accepted so far, every type together."""
        text = self.client.get("/metrics").text
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "raylake_events_accepted_total"
        )

    def signal_exit(self) -> None:
        """SIGTERM: drain and exit (a second one would stop it at once)."""
        self.process.popen.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once it has drained, or None when it has not within `timeout`."""
        try:
            return self.process.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.client.close()


def start_collector(
    role: str,
    port: int,
    lake: Path,
    spool: Path,
    ray_root: Path,
    dashboard_port: int,
    log: Path,
    cluster: str,
) -> Collector:
    command = [
        sys.executable,
        *("-m", "raylake", "collect"),
        *("--lake", str(lake), "--namespace", "default", "--cluster", cluster),
        *("--role", role, "--host", HOST, "--port", str(port)),
        *("--spool", str(spool), "--ray-root", str(ray_root)),
        *("--dashboard-url", f"http://{HOST}:{dashboard_port}"),
        *("--flush-interval", "2s", "--log-interval", "2s", "--poll-interval", "2s"),
    ]
    collector = Collector(role, port, start(f"collector-{role}", command, log, clean_env({})))
    deadline = time.monotonic() + 60
    while not collector.healthy():
        if collector.process.popen.poll() is not None or time.monotonic() > deadline:
            collector.process.kill()
            raise AssertionError(
                f"the {role} collector did not start:\n{collector.process.output()}"
            )
        time.sleep(0.1)
    return collector


@dataclass
class RayNode:
    """One node: `ray start` with every port explicit and its own temp dir."""

    role: str
    temp_dir: Path
    ports: dict[str, int]
    env: dict[str, str]
    log: Path
    sessions: set[int] = field(default_factory=set)  # session ids of its `ray start`s

    @property
    def gcs_address(self) -> str:
        return f"{HOST}:{self.ports['port']}"

    def start_command(self, head_gcs: str | None) -> list[str]:
        p = self.ports
        command = [RAY, "start"]
        if head_gcs is None:
            command += [
                "--head",
                f"--port={p['port']}",
                f"--dashboard-port={p['dashboard_port']}",
                f"--ray-client-server-port={p['ray_client_server_port']}",
                "--include-dashboard=true",
                f"--dashboard-host={HOST}",
            ]
        else:
            command.append(f"--address={head_gcs}")
        return [
            *command,
            f"--node-ip-address={HOST}",
            "--num-cpus=2",
            "--object-store-memory=100000000",
            f"--dashboard-agent-listen-port={p['dashboard_agent_listen_port']}",
            f"--dashboard-agent-grpc-port={p['dashboard_agent_grpc_port']}",
            f"--metrics-export-port={p['metrics_export_port']}",
            f"--node-manager-port={p['node_manager_port']}",
            f"--object-manager-port={p['object_manager_port']}",
            f"--runtime-env-agent-port={p['runtime_env_agent_port']}",
            f"--min-worker-port={p['min_worker_port']}",
            f"--max-worker-port={p['min_worker_port'] + WORKER_PORTS - 1}",
            f"--temp-dir={self.temp_dir}",
            "--disable-usage-stats",
        ]

    def start(self, head_gcs: str | None = None) -> None:
        """`ray start`, in a session of its own: the daemons it leaves keep that session
        id, so they can be found (and stopped) without touching any other Ray."""
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            starter = subprocess.Popen(
                self.start_command(head_gcs),
                cwd=self.temp_dir.parent,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean_env(self.env),
                start_new_session=True,
            )
        self.sessions.add(starter.pid)
        try:
            code = starter.wait(timeout=180)
        except subprocess.TimeoutExpired:
            starter.kill()
            code = starter.wait()
        if code != 0:
            raise AssertionError(
                f"`ray start` ({self.role}) exited {code}:\n"
                + self.log.read_text(errors="replace")[-6000:]
            )

    def processes(self, exclude: set[int]) -> set[int]:
        """This node's processes: those in the session `ray start` began, those whose
        command line names a session directory under its temp dir (the collector's
        `--ray-root` names only the root), and all of their descendants (workers make
        process groups of their own; a job's driver names no Ray directory)."""
        marker = f"{self.temp_dir}/session_".encode()
        table = _process_table()
        found = {
            pid
            for pid, (_, sid, cmdline) in table.items()
            if sid in self.sessions or marker in cmdline
        }
        children: dict[int, set[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, set()).add(pid)
        todo = list(found)
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found - exclude - {os.getpid()}

    def stop(self, exclude: set[int], grace: float = 20.0) -> list[str]:
        """SIGTERM this node's processes (and any it starts meanwhile); SIGKILL what is
        left after `grace`. Return what had to be killed, as `pid name`."""
        signalled: set[int] = set()
        deadline = time.monotonic() + grace
        while (alive := {pid for pid in self.processes(exclude) if _alive(pid)}) and (
            time.monotonic() < deadline
        ):
            signal_all(alive - signalled, signal.SIGTERM)
            signalled |= alive
            time.sleep(0.2)
        killed = [f"{pid} {_name(pid)}" for pid in sorted(alive)]
        signal_all(alive, signal.SIGKILL)
        return killed

    def crash(self, exclude: set[int]) -> int:
        """SIGKILL this node's processes at once, as a lost machine or pod would stop
        them: nothing is flushed or reported on the way out. Return how many."""
        pids = {pid for pid in self.processes(exclude) if _alive(pid)}
        # All stopped first: killed one by one, a raylet could see its agent die first
        # and tell GCS so before its own turn, which is not how a lost node ends.
        signal_all(pids, signal.SIGSTOP)
        signal_all(pids, signal.SIGKILL)
        return len(pids)


def start_redis(port: int, data_dir: Path, log: Path) -> Process:
    """Debian's `redis-server` on a loopback port, in a directory of its own, keeping
    nothing on disk: the external store of GCS fault tolerance (`RAY_REDIS_ADDRESS`)."""
    server = shutil.which("redis-server")
    if server is None:
        raise AssertionError("redis-server is missing: `make setup` installs Debian's")
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        server,
        *("--bind", HOST, "--port", str(port), "--dir", str(data_dir)),
        *("--save", "", "--appendonly", "no", "--protected-mode", "yes"),
    ]
    redis = start("redis", command, log, clean_env({}))
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(64).startswith(b"+PONG"):
                return redis
        if redis.popen.poll() is not None or time.monotonic() > deadline:
            redis.kill()
            raise AssertionError(f"redis-server did not start:\n{redis.output()}")
        time.sleep(0.1)


def _process_table() -> dict[int, tuple[int, int, bytes]]:
    """pid -> (parent pid, session id, command line) of every process (Linux /proc)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[3]), cmdline)
    return table


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"  # a zombie has exited


def _name(pid: int) -> str:
    """The start of a process's command line."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    return " ".join([Path(args[0]).name, *args[1:2]])[:60] if args else "?"


def signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def node_ports(ports: Ports, head: bool) -> dict[str, int]:
    names = [
        "dashboard_agent_listen_port",
        "dashboard_agent_grpc_port",
        "metrics_export_port",
        "node_manager_port",
        "object_manager_port",
        "runtime_env_agent_port",
    ]
    if head:
        names += ["port", "dashboard_port", "ray_client_server_port"]
    chosen = {name: ports.one() for name in names}
    chosen["min_worker_port"] = ports.block(WORKER_PORTS)
    return chosen


def ray_temp_root(preferred: Path) -> Path:
    """Where the nodes' temp dirs go (`<root>/h`, `<root>/w`): `preferred` unless Ray's
    socket paths under it would be too long, then a new directory in /tmp."""
    if len(str(preferred / "h")) <= TEMP_DIR_ROOM:
        return preferred
    return Path(tempfile.mkdtemp(prefix="rl-", dir="/tmp"))


def wait_for(what: str, check: Any, timeout: float, interval: float = 0.5) -> Any:
    """Call `check` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if result := check():
                return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
