"""What a collector learns from its node's Ray directory, without asking Ray.

`<ray-root>/session_latest` points at the current session's directory, which holds
files named `<component>_port_<node_id_hex>` written at node start.

A restarted Ray container in the same pod (the Ray root is the pod's volume) may start a
new node in the same session directory: a worker rejoins its cluster's session, and a
head keeps it under GCS fault tolerance. The new node has a new id and writes its own
port files beside the old node's, and its own log files beside the old node's (Ray adds
an index to names already taken: `raylet.1.out`). Nodes of one pod run one after the
other, so the node a file belongs to is the one that had started last when the file
was last written. Two nodes living at once in one directory (`ray start` twice on one
machine with one temp dir) cannot be told apart this way.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_PORT_FILE = re.compile(r"[a-z_]+_port_([0-9a-f]{56})")
_SESSION = re.compile(r"session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_\d+")
LATEST = "session_latest"


@dataclass(frozen=True, order=True)
class NodeStart:
    """When a node started in a session directory (ns since the epoch)."""

    time_ns: int
    node_id: str


def current_session_dir(ray_root: Path) -> Path | None:
    latest = ray_root / LATEST
    try:
        target = latest.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        return None
    return target if _SESSION.fullmatch(target.name) else None


def session_dirs(ray_root: Path) -> list[Path]:
    """Every session directory under the root, oldest first (names sort by time)."""
    if not ray_root.is_dir():
        return []
    return sorted(p for p in ray_root.iterdir() if p.is_dir() and _SESSION.fullmatch(p.name))


def node_starts(session_dir: Path) -> list[NodeStart]:
    """The nodes that have run in a session directory, oldest first.

    A node's start is the time of its first port file; equal times sort by node id, so
    the order never depends on the directory listing. Ray points `session_latest` at
    the session as a node starts, before it opens its log files, while the port files
    come up to a second later, once its processes listen: for the newest node of the
    current session the link's time is the truer start.
    """
    first: dict[str, int] = {}
    try:
        entries = list(os.scandir(session_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        match = _PORT_FILE.fullmatch(entry.name)
        if not match:
            continue
        try:
            written = entry.stat(follow_symlinks=False).st_mtime_ns
        except FileNotFoundError:
            continue
        first[match[1]] = min(written, first.get(match[1], written))
    starts = sorted(NodeStart(time, node) for node, time in first.items())
    linked = _latest_link_time(session_dir)
    if starts and linked is not None:
        previous = starts[-2].time_ns if len(starts) > 1 else -1
        if previous < linked < starts[-1].time_ns:
            starts[-1] = NodeStart(linked, starts[-1].node_id)
    return starts


def _latest_link_time(session_dir: Path) -> int | None:
    """When `session_latest` beside the session was last pointed at it, if it is."""
    current = current_session_dir(session_dir.parent)
    if current is None or current.name != session_dir.name:
        return None
    try:
        return (session_dir.parent / LATEST).lstat().st_mtime_ns
    except FileNotFoundError:
        return None


def node_id(session_dir: Path) -> str | None:
    """The id of the node running now: the one that started last in the directory."""
    starts = node_starts(session_dir)
    return starts[-1].node_id if starts else None


def node_at(starts: list[NodeStart], time_ns: int) -> str:
    """The node that had started last at `time_ns` (the first node, for anything older:
    Ray opens a few files before it writes its port files). `starts` is not empty."""
    found = starts[0].node_id
    for start in starts:
        if start.time_ns > time_ns:
            break
        found = start.node_id
    return found
