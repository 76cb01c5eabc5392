"""Log shipping: what changed goes up as parts; rotation and restarts ship nothing twice."""

from __future__ import annotations

import time
from pathlib import Path

from ingest.shipper import LogShipper
from lake.catalog import CatalogEntry, update_entry
from lake.compact import compact
from lake.store import Lake
from query.engine import connect

from conftest import CLUSTER, HEAD_NODE

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
