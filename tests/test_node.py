"""The node a session directory belongs to, when Ray restarted in the same directory.

Port files and the `session_latest` link are made on disk with the times a restart
leaves (Ray 2.60, observed: the restarted node points the link at the session, opens
`raylet.1.out` and the like, then writes its port files up to a second later).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.node import NodeStart, current_session_dir, node_at, node_id, node_starts

SESSION = "session_2026-11-21_20-42-42_066305_20083"
T = 1_795_000_000_000_000_000  # ns
SECOND = 1_000_000_000
LOW, HIGH = "00" * 28, "ff" * 28
PORTS = ("metrics_agent_port", "runtime_env_agent_port", "dashboard_agent_listen_port")


def touch(path: Path, time_ns: int, text: str = "") -> None:
    path.write_text(text)
    os.utime(path, ns=(time_ns, time_ns))


def start_node(session_dir: Path, node: str, time_ns: int) -> None:
    """A node's port files, written over its first second."""
    for i, component in enumerate(PORTS):
        touch(session_dir / f"{component}_{node}", time_ns + i * SECOND // 3, "1234")


def link_latest(root: Path, session: str, time_ns: int) -> None:
    link = root / "session_latest"
    link.unlink(missing_ok=True)
    link.symlink_to(session)
    os.utime(link, ns=(time_ns, time_ns), follow_symlinks=False)


@pytest.fixture
def session_dir(tmp_path: Path) -> Path:
    directory = tmp_path / SESSION
    directory.mkdir()
    return directory


@pytest.mark.parametrize(("old", "new"), [(LOW, HIGH), (HIGH, LOW)])
def test_the_node_that_started_last_is_the_current_one(
    session_dir: Path, old: str, new: str
) -> None:
    """Whichever id sorts first: the listing's order says nothing."""
    start_node(session_dir, old, T)
    assert node_id(session_dir) == old
    start_node(session_dir, new, T + 60 * SECOND)
    assert node_id(session_dir) == new
    assert [s.node_id for s in node_starts(session_dir)] == [old, new]
    assert node_starts(session_dir)[0] == NodeStart(T, old)


def test_a_port_file_written_late_does_not_make_an_old_node_current(session_dir: Path) -> None:
    """A node's start is its first port file, however late its last one came."""
    start_node(session_dir, LOW, T)
    start_node(session_dir, HIGH, T + 60 * SECOND)
    touch(session_dir / f"metrics_export_port_{LOW}", T + 90 * SECOND, "1234")
    assert node_id(session_dir) == HIGH


def test_nodes_that_started_at_the_same_time_sort_by_id(session_dir: Path) -> None:
    start_node(session_dir, HIGH, T)
    start_node(session_dir, LOW, T)
    assert node_starts(session_dir) == [NodeStart(T, LOW), NodeStart(T, HIGH)]
    assert node_id(session_dir) == HIGH


def test_the_latest_link_dates_the_newest_node_of_the_current_session(tmp_path: Path) -> None:
    session_dir = tmp_path / SESSION
    session_dir.mkdir()
    start_node(session_dir, LOW, T)
    start_node(session_dir, HIGH, T + 60 * SECOND)
    # No link: the port files date both nodes.
    assert node_starts(session_dir)[-1] == NodeStart(T + 60 * SECOND, HIGH)

    link_latest(tmp_path, SESSION, T + 59 * SECOND)
    assert current_session_dir(tmp_path) == session_dir.resolve()
    assert node_starts(session_dir) == [NodeStart(T, LOW), NodeStart(T + 59 * SECOND, HIGH)]
    # A file the new node opened before its port files is the new node's.
    starts = node_starts(session_dir)
    assert node_at(starts, T + 59 * SECOND + SECOND // 2) == HIGH

    # A link older than the node before it is not this node's start (not Ray's doing).
    link_latest(tmp_path, SESSION, T - SECOND)
    assert node_starts(session_dir)[-1] == NodeStart(T + 60 * SECOND, HIGH)

    # A link to another session dates nothing here.
    (tmp_path / "session_2026-11-22_08-00-00_000001_7").mkdir()
    link_latest(tmp_path, "session_2026-11-22_08-00-00_000001_7", T + 59 * SECOND)
    assert node_starts(session_dir)[-1] == NodeStart(T + 60 * SECOND, HIGH)


def test_a_directory_without_port_files_has_no_node(tmp_path: Path) -> None:
    assert node_id(tmp_path / "missing") is None
    (tmp_path / SESSION / "logs").mkdir(parents=True)
    touch(tmp_path / SESSION / "metrics_agent_port_nothex", T)
    assert node_starts(tmp_path / SESSION) == []
    assert node_id(tmp_path / SESSION) is None


def test_a_file_belongs_to_the_node_that_had_started_last_when_it_was_written() -> None:
    starts = [NodeStart(T, LOW), NodeStart(T + 60 * SECOND, HIGH)]
    assert node_at(starts, T - SECOND) == LOW  # opened before the first port file
    assert node_at(starts, T) == LOW
    assert node_at(starts, T + 59 * SECOND) == LOW
    assert node_at(starts, T + 60 * SECOND) == HIGH
    assert node_at(starts, T + 600 * SECOND) == HIGH
