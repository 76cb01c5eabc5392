"""Log shipping: what changed goes up as parts; rotation and restarts ship nothing twice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ingest.node import current_session_dir, node_id
from ingest.shipper import SCAN_EVERY, LogShipper
from lake.catalog import CatalogEntry, update_entry
from lake.compact import compact
from lake.store import Lake
from query.engine import connect

from conftest import CLUSTER, HEAD_NODE
from ray_cluster import HOST, REPO, Ports, RayNode, node_ports, ray_temp_root, wait_for

SESSION = "session_2026-11-21_20-42-42_066305_20083"
OLD_SESSION = "session_2026-11-20_08-00-00_000001_11"
OLD_NODE = "ab" * 28


def make_session(root: Path, session: str, node: str) -> Path:
    directory = root / session
    (directory / "logs").mkdir(parents=True)
    (directory / f"metrics_agent_port_{node}").write_text("1234")
    return directory / "logs"


def file_from_lake(lake_dir: Path, session: str, node: str, inode: int) -> bytes:
    """A shipped file rebuilt as a reader would: its parts in offset order."""
    parts = lake_dir / f"logs/cluster={CLUSTER.key}/session={session}/node={node}/_parts/{inode}"
    return b"".join(p.read_bytes() for p in sorted(parts.iterdir()))


def part_count(lake_dir: Path) -> int:
    return len(list((lake_dir / "logs").rglob("*.part")))


def test_growing_rotated_and_restarted(tmp_path: Path) -> None:
    root = tmp_path / "ray"
    logs = make_session(root, SESSION, HEAD_NODE)
    lake_dir = tmp_path / "lake"
    lake = Lake(str(lake_dir), create=True)
    state = tmp_path / "state.json"
    worker_log = logs / f"worker-{'c' * 56}-01000000-4242.out"
    raylet = logs / "raylet.out"
    worker_log.write_bytes(b"hello\n")
    raylet.write_bytes(b"raylet started\n")

    shipper = LogShipper(lambda: lake, CLUSTER, root, state)
    first = shipper.ship()
    assert first.files == 2 and first.bytes == len(b"hello\n") + len(b"raylet started\n")

    # Growth: only the new bytes go up.
    with worker_log.open("ab") as f:
        f.write(b"world\n" * 1000)
    grown = shipper.ship(everything=True)
    assert grown.files == 1 and grown.bytes == 6000
    inode = worker_log.stat().st_ino
    assert file_from_lake(lake_dir, SESSION, HEAD_NODE, inode) == worker_log.read_bytes()

    # Nothing changed: nothing shipped.
    assert shipper.ship(everything=True).bytes == 0

    # Rotation: Ray renames raylet.out to raylet.out.1 and starts a new raylet.out.
    raylet.rename(logs / "raylet.out.1")
    raylet.write_bytes(b"new generation\n")
    rotated = shipper.ship(everything=True)
    assert rotated.bytes == len(b"new generation\n")

    # A restarted collector (same state file) ships nothing again.
    parts = part_count(lake_dir)
    again = LogShipper(lambda: lake, CLUSTER, root, state).ship(everything=True)
    assert again.bytes == 0 and part_count(lake_dir) == parts

    index = (
        connect(lake)
        .sql("SELECT path, size, worker_id, pid, job_id, stored_as FROM log_files ORDER BY path")
        .fetchall()
    )
    assert index == [
        ("raylet.out", len(b"new generation\n"), None, None, None, "parts"),
        ("raylet.out.1", len(b"raylet started\n"), None, None, None, "parts"),
        (worker_log.name, 6006, "c" * 56, 4242, "01000000", "parts"),
    ]


def test_old_sessions_are_shipped_under_their_own_node(tmp_path: Path) -> None:
    root = tmp_path / "ray"
    make_session(root, OLD_SESSION, OLD_NODE).joinpath("raylet.out").write_bytes(b"old\n")
    make_session(root, SESSION, HEAD_NODE).joinpath("raylet.out").write_bytes(b"new\n")
    (root / "session_latest").symlink_to(SESSION)
    lake = Lake(str(tmp_path / "lake"), create=True)
    LogShipper(lambda: lake, CLUSTER, root, tmp_path / "state.json").ship()
    rows = (
        connect(lake)
        .sql("SELECT session, node_id, path FROM log_files ORDER BY session")
        .fetchall()
    )
    assert rows == [(OLD_SESSION, OLD_NODE, "raylet.out"), (SESSION, HEAD_NODE, "raylet.out")]


def test_watched_changes_ship_without_a_full_scan(tmp_path: Path) -> None:
    root = tmp_path / "ray"
    logs = make_session(root, SESSION, HEAD_NODE)
    (logs / "raylet.out").write_bytes(b"a\n")
    lake_dir = tmp_path / "lake"
    lake = Lake(str(lake_dir), create=True)
    shipper = LogShipper(lambda: lake, CLUSTER, root, tmp_path / "state.json")
    shipper.ship()  # the first pass scans and starts watching
    with (logs / "raylet.out").open("ab") as f:
        f.write(b"b\n")
    (logs / "gcs_server.out").write_bytes(b"gcs\n")
    deadline = time.monotonic() + 10
    shipped = 0
    while shipped < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
        shipped += shipper.ship().bytes
    shipper.stop()
    assert shipped == len(b"b\n") + len(b"gcs\n")


def test_a_change_the_watch_never_reported_ships_at_the_next_full_scan(tmp_path: Path) -> None:
    """Past the watch limit, inotify drops a new directory without a word: what the
    watch does not report still ships, at the full scan of every SCAN_EVERY rounds."""
    root = tmp_path / "ray"
    logs = make_session(root, SESSION, HEAD_NODE)
    (logs / "raylet.out").write_bytes(b"a\n")
    lake = Lake(str(tmp_path / "lake"), create=True)
    shipper = LogShipper(lambda: lake, CLUSTER, root, tmp_path / "state.json")
    shipper.ship()  # the first pass scans and starts watching
    (logs / "unwatched").mkdir()
    (logs / "unwatched" / "worker.out").write_bytes(b"lost?\n")
    time.sleep(0.5)
    rounds = []
    for _ in range(SCAN_EVERY):
        shipper._dirty.take()  # what the watch saw is forgotten, as if never reported
        rounds.append(shipper.ship().bytes)
    shipper.stop()
    assert rounds == [0] * (SCAN_EVERY - 2) + [len(b"lost?\n"), 0]


def test_compaction_joins_the_parts_of_an_ended_session(tmp_path: Path) -> None:
    root = tmp_path / "ray"
    logs = make_session(root, SESSION, HEAD_NODE)
    lake_dir = tmp_path / "lake"
    lake = Lake(str(lake_dir), create=True)
    worker_log = logs / f"worker-{'c' * 56}-01000000-4242.out"
    shipper = LogShipper(lambda: lake, CLUSTER, root, tmp_path / "state.json")
    for n in range(3):  # three intervals: three parts
        with worker_log.open("ab") as f:
            f.write(f"line {n}\n".encode() * 100)
        shipper.ship(everything=True)
    assert part_count(lake_dir) == 3

    assert compact(lake).log_files_joined == 0  # the session still runs: parts stay

    def end(entry: CatalogEntry) -> bool:
        entry.ended = True
        return True

    update_entry(lake, CLUSTER, SESSION, HEAD_NODE, end)
    assert compact(lake).log_files_joined == 1
    whole = lake_dir / f"logs/cluster={CLUSTER.key}/session={SESSION}/node={HEAD_NODE}"
    assert (whole / worker_log.name).read_bytes() == worker_log.read_bytes()
    assert part_count(lake_dir) == 0
    query = "SELECT path, size, stored_as FROM log_files"
    assert connect(lake).sql(query).fetchall() == [
        (worker_log.name, worker_log.stat().st_size, "whole")
    ]
    assert compact(lake).log_files_joined == 0  # nothing left to join


# --- a node restarted in the same session directory --------------------------------------

NEW_NODE = "cd" * 28
SECOND = 1_000_000_000


def write(path: Path, data: bytes, time_ns: int, append: bool = False) -> None:
    """Bytes written at a given time (the file's mtime says when)."""
    with path.open("ab" if append else "wb") as f:
        f.write(data)
    os.utime(path, ns=(time_ns, time_ns))


def start_node(root: Path, session: str, node: str, time_ns: int) -> None:
    """As Ray starts a node: `session_latest` pointed at the session, then, a second
    later, the node's port files."""
    link = root / "session_latest"
    link.unlink(missing_ok=True)
    link.symlink_to(session)
    os.utime(link, ns=(time_ns, time_ns), follow_symlinks=False)
    for component in ("metrics_agent_port", "runtime_env_agent_port"):
        write(root / session / f"{component}_{node}", b"1234", time_ns + SECOND)


def index_rows(lake: Lake) -> list[tuple[str, str, int]]:
    query = "SELECT node_id, path, size FROM log_files ORDER BY node_id, path"
    return [tuple(row) for row in connect(lake).sql(query).fetchall()]


@pytest.mark.parametrize(("old", "new"), [(HEAD_NODE, NEW_NODE), (NEW_NODE, HEAD_NODE)])
def test_a_node_restarted_in_the_same_session_dir(tmp_path: Path, old: str, new: str) -> None:
    """A Ray container restarted in its pod: a new node (whichever id sorts first) in the
    same session directory, its own files beside the old node's, and one file both write."""
    root = tmp_path / "ray"
    logs = root / SESSION / "logs"
    logs.mkdir(parents=True)
    t0 = time.time_ns() - 1000 * SECOND
    start_node(root, SESSION, old, t0)
    write(logs / "raylet.out", b"old raylet\n", t0 + 2 * SECOND)
    monitor = logs / "log_monitor.log"  # Ray's log monitor appends here at every start
    write(monitor, b"old monitor\n", t0 + 2 * SECOND)
    lake_dir = tmp_path / "lake"
    lake = Lake(str(lake_dir), create=True)
    state = tmp_path / "state.json"
    shipper = LogShipper(lambda: lake, CLUSTER, root, state)
    assert shipper.ship(everything=True).bytes == len(b"old raylet\n" + b"old monitor\n")
    # The old node's last words, not shipped before it died.
    write(logs / "raylet.out", b"old raylet, last\n", t0 + 50 * SECOND, append=True)
    old_parts = part_count(lake_dir)

    t1 = t0 + 100 * SECOND
    start_node(root, SESSION, new, t1)
    # Opened before the new node's port files, and never written: still the new node's.
    write(logs / "raylet.1.err", b"", t1 + SECOND // 2)
    write(logs / "raylet.1.out", b"new raylet\n", t1 + 2 * SECOND)
    write(monitor, b"new monitor\n", t1 + 2 * SECOND, append=True)
    shipper.ship(everything=True)

    full_raylet = b"old raylet\nold raylet, last\n"
    expected = sorted(
        [
            (old, "log_monitor.log", len(b"old monitor\n")),
            (old, "raylet.out", len(full_raylet)),
            (new, "log_monitor.log", len(b"old monitor\nnew monitor\n")),
            (new, "raylet.1.err", 0),
            (new, "raylet.1.out", len(b"new raylet\n")),
        ]
    )
    assert index_rows(lake) == expected
    inode = monitor.stat().st_ino
    # What the old node shipped stays; the new node has the whole file its logs/ holds.
    assert file_from_lake(lake_dir, SESSION, old, inode) == b"old monitor\n"
    assert file_from_lake(lake_dir, SESSION, new, inode) == monitor.read_bytes()
    raylet = (logs / "raylet.out").stat().st_ino
    assert file_from_lake(lake_dir, SESSION, old, raylet) == full_raylet
    assert part_count(lake_dir) == old_parts + 3  # raylet.out's end, raylet.1.out, the monitor

    # The new node's writes go on under its id; a restarted collector ships nothing twice
    # and forgets no file.
    write(monitor, b"more\n", t1 + 10 * SECOND, append=True)
    assert shipper.ship(everything=True).bytes == len(b"more\n")
    again = LogShipper(lambda: lake, CLUSTER, root, state)
    assert again.ship(everything=True).bytes == 0
    assert index_rows(lake) == [
        (node, path, size + len(b"more\n") if (node, path) == (new, "log_monitor.log") else size)
        for node, path, size in expected
    ]


def live_node_ids(dashboard: str) -> set[str]:
    with httpx.Client(base_url=dashboard, timeout=30) as client:
        answer = client.get("/api/v0/nodes", params={"detail": "1"})
        answer.raise_for_status()
        return {n["node_id"] for n in answer.json()["data"]["result"]["result"]}


def test_a_real_ray_worker_restarted_in_its_directory(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Ray 2.60 itself: a worker node killed and started again with the same temp dir
    rejoins its session in the same directory under a new id, which GCS knows it by."""
    preferred = tmp_path_factory.mktemp("r")  # short: Ray's socket paths are bounded
    ray_root = ray_temp_root(preferred)
    ports = Ports()
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    head = RayNode("head", ray_root / "h", node_ports(ports, head=True), env, tmp_path / "h.log")
    worker_dir = ray_root / "w"
    worker = RayNode("worker", worker_dir, node_ports(ports, head=False), env, tmp_path / "w.log")
    dashboard = f"http://{HOST}:{head.ports['dashboard_port']}"
    lake_dir = tmp_path / "lake"
    lake = Lake(str(lake_dir), create=True)
    shipper = LogShipper(lambda: lake, CLUSTER, worker_dir, tmp_path / "state.json")
    try:
        head.start()
        worker.start(head_gcs=head.gcs_address)
        session_dir = current_session_dir(worker_dir)
        assert session_dir is not None
        old = node_id(session_dir)
        wait_for("the worker to join", lambda: old in live_node_ids(dashboard), 60)
        shipper.ship(everything=True)

        assert worker.crash(exclude=set()) > 0
        worker.start(head_gcs=head.gcs_address)
        assert current_session_dir(worker_dir) == session_dir
        new = node_id(session_dir)
        assert new is not None and new != old
        wait_for("GCS to know the new node", lambda: new in live_node_ids(dashboard), 60)
        shipper.ship(everything=True)
    finally:
        worker.stop(set(), grace=5.0)
        head.stop(set(), grace=5.0)
        shipper.stop()
        if ray_root != preferred:
            shutil.rmtree(ray_root, ignore_errors=True)

    paths: dict[str, set[str]] = {old: set(), new: set()}
    for node, path, _ in index_rows(lake):
        paths[node].add(path)
    # Ray names the restarted node's files with an index: `raylet.1.out` is the new one's.
    assert "raylet.out" in paths[old] and "raylet.1.out" not in paths[old]
    assert "raylet.1.out" in paths[new] and "raylet.out" not in paths[new]
    raylet = session_dir / "logs" / "raylet.1.out"
    shipped = file_from_lake(lake_dir, session_dir.name, new, raylet.stat().st_ino)
    assert shipped and raylet.read_bytes().startswith(shipped)


# --- past the node's inotify limits ------------------------------------------------------

# Run in a user namespace of its own, whose inotify limits (`/proc/sys/user/`, counted per
# namespace) it sets to nothing: only it meets them, and the machine's stay as they are.
AT_THE_LIMIT = """
import json, logging, sys
from pathlib import Path
from ingest.shipper import LogShipper
from lake.layout import ClusterKey
from lake.store import Lake

work, session, limit = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
Path(f"/proc/sys/user/{limit}").write_text("0")
said = []
handler = logging.Handler()
handler.emit = lambda record: said.append(record.getMessage())
logging.getLogger("raylake.logs").addHandler(handler)
lake = Lake(str(work / "lake"), create=True)
shipper = LogShipper(lambda: lake, ClusterKey("default", "demo"), work / "ray", work / "state")
first = shipper.ship()
with (work / "ray" / session / "logs" / "raylet.out").open("ab") as f:
    f.write(b"more\\n")
second = shipper.ship()
print(json.dumps({"bytes": [first.bytes, second.bytes], "said": said}))
"""


@pytest.mark.parametrize(
    ("limit", "error"),
    [
        ("max_inotify_instances", "inotify instance limit reached"),
        ("max_inotify_watches", "inotify watch limit reached"),
    ],
)
def test_past_an_inotify_limit_every_interval_scans(tmp_path: Path, limit: str, error: str) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("util-linux's unshare is missing")
    make_session(tmp_path / "ray", SESSION, HEAD_NODE).joinpath("raylet.out").write_bytes(b"a\n")
    child = subprocess.run(
        [
            *("unshare", "--user", "--map-root-user"),
            *(sys.executable, "-c", AT_THE_LIMIT, str(tmp_path), SESSION, limit),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    outcome = json.loads(child.stdout.splitlines()[-1])
    # Watching failed: the first interval said so once, and every interval scans (else
    # the second would ship nothing).
    assert outcome["bytes"] == [len(b"a\n"), len(b"more\n")]
    [said] = outcome["said"]
    assert error in said and "scans all log files" in said
