"""Ship a node's Ray log files to the lake while they grow.

Every log interval, the bytes each file gained since the last interval go up as one
part (`lake.layout.log_part_path`: keyed by the file's inode and first offset), so an
interval costs what changed, not the logs' total size, and a file Ray renames when it
rotates is not shipped again. watchdog tells which files changed; a full scan at start
and at the end catches anything it missed. Every session directory under the Ray root
is shipped, so an old session's remaining logs still arrive after a restart.

A Ray container restarted in the same pod may start a new node in the same session
directory (`ingest.node`). A file goes under the node that had started last when it
was last written, and stays with the node it was first shipped under, unless it is
written again after a newer node started: then the newer node, whose `logs/` holds it
too, gets the whole file (a few of Ray's files, such as `log_monitor.log` and
`events/*.log`, are appended to by every node of the directory). So a new node's files
go under its id, and what was shipped under the old node stays there.

What was shipped (node, inode -> bytes) is kept in a small state file beside the spool,
so a restarted collector goes on where it stopped; a part written again after a crash
has the same name and at least the same bytes. A node's index starts from the one in
the lake, so files shipped before a restart stay listed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from ingest.node import NodeStart, node_at, node_starts, session_dirs
from lake.catalog import CatalogEntry, update_entry
from lake.layout import ClusterKey, log_part_path
from lake.logfiles import LogFile, read_index, write_index
from lake.store import Lake

log = logging.getLogger("raylake.logs")

SCAN_EVERY = 10  # rounds between full scans while watching

PART_MAX_BYTES = 64 * 1024 * 1024


@dataclass
class ShipReport:
    files: int = 0
    bytes: int = 0


class _Dirty(FileSystemEventHandler):
    def __init__(self) -> None:
        self.paths: set[str] = set()
        self.lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        with self.lock:
            self.paths.add(os.fsdecode(event.src_path))
            if dest := getattr(event, "dest_path", ""):
                self.paths.add(os.fsdecode(dest))

    def take(self) -> set[str]:
        with self.lock:
            paths, self.paths = self.paths, set()
            return paths


class LogShipper:
    def __init__(
        self,
        lake: Callable[[], Lake],
        cluster: ClusterKey,
        ray_root: Path,
        state_file: Path,
    ) -> None:
        self.lake = lake
        self.cluster = cluster
        self.ray_root = ray_root
        self.state_file = state_file
        self.shipped: dict[str, int] = self._load()  # "<node>:<dev>:<inode>" -> bytes
        # (session dir, node) -> path under logs/ -> file: each node's index
        self.files: dict[tuple[Path, str], dict[str, LogFile]] = {}
        self.entries: set[tuple[str, str]] = set()  # (session, node) catalog entries kept
        self._dirty = _Dirty()
        self._observer: BaseObserver | None = None
        self.unwatchable = False  # inotify refused: every interval scans
        self._rounds = 0

    def _load(self) -> dict[str, int]:
        try:
            return {str(k): int(v) for k, v in json.loads(self.state_file.read_text()).items()}
        except (FileNotFoundError, ValueError):
            return {}

    def _save(self) -> None:
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.shipped))
        temporary.replace(self.state_file)

    def watch(self) -> None:
        """Start noting changed files (the Ray root may not exist yet: then scans do).
        Past the node's inotify limits, every interval scans instead, which costs a stat
        of every log file per interval: said once, loudly."""
        if self._observer is not None or self.unwatchable or not self.ray_root.is_dir():
            return
        try:
            observer = Observer()
            observer.daemon = True
            observer.schedule(self._dirty, str(self.ray_root), recursive=True)
            observer.start()
        except OSError as exc:  # "inotify instance limit reached", "... watch limit ..."
            self.unwatchable = True
            log.warning(
                "cannot watch %s for changes (%s): every log interval scans all log files "
                "instead; raise the node's fs.inotify.max_user_instances and "
                "fs.inotify.max_user_watches (docs/deploy.md, Troubleshooting)",
                self.ray_root,
                exc,
            )
            return
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)

    def ship(self, everything: bool = False) -> ShipReport:
        """Ship what changed (every file when `everything`, before watching, and every
        `SCAN_EVERY` rounds: past the watch limit, a directory made later goes unwatched
        without a word)."""
        self.watch()
        dirty = self._dirty.take()
        self._rounds += 1
        scan = everything or self._observer is None or self._rounds % SCAN_EVERY == 0
        report = ShipReport()
        for session_dir in session_dirs(self.ray_root):
            starts = node_starts(session_dir)
            logs = session_dir / "logs"
            if not starts or not logs.is_dir():
                continue
            first_time = {s.node_id for s in starts if (session_dir, s.node_id) not in self.files}
            changed = set()
            for path in self._candidates(logs, scan or bool(first_time), dirty):
                shipped = self._ship_file(session_dir, starts, path)
                if shipped is not None:
                    changed.add(shipped[0])
                    report.files += 1
                    report.bytes += shipped[1]
            for node in sorted(changed | first_time):
                files = list(self._known(session_dir, node).values())
                write_index(self.lake(), self.cluster, session_dir.name, node, files)
                self._count(session_dir.name, node, files)
        self._save()
        return report

    def _known(self, session_dir: Path, node: str) -> dict[str, LogFile]:
        """A node's index: what the lake lists, the first time, then what was shipped."""
        key = (session_dir, node)
        if key not in self.files:
            indexed = read_index(self.lake(), self.cluster, session_dir.name, node)
            self.files[key] = {f.path: f for f in indexed}
        return self.files[key]

    def _count(self, session: str, node: str, files: list[LogFile]) -> None:
        def count(entry: CatalogEntry) -> bool:
            entry.log_files = len(files)
            entry.log_bytes = sum(f.size for f in files)
            return True

        update_entry(self.lake(), self.cluster, session, node, count)
        self.entries.add((session, node))

    @staticmethod
    def _candidates(logs: Path, scan: bool, dirty: set[str]) -> list[Path]:
        if scan:
            return sorted(p for p in logs.rglob("*") if p.is_file() and not p.is_symlink())
        prefix = str(logs) + os.sep
        return sorted(Path(p) for p in dirty if p.startswith(prefix) and Path(p).is_file())

    def _owner(self, starts: list[NodeStart], key: str, modified_ns: int) -> str:
        """The node a file's bytes go under: the one it was shipped under before, unless
        it was written after a newer node started (`ingest.node` says why)."""
        now = node_at(starts, modified_ns)
        order = [s.node_id for s in starts]
        before = [node for node in order if f"{node}:{key}" in self.shipped]
        if before and order.index(before[-1]) >= order.index(now):
            return before[-1]
        return now

    def _ship_file(
        self, session_dir: Path, starts: list[NodeStart], path: Path
    ) -> tuple[str, int] | None:
        """Ship a file's new bytes: (its node, bytes sent), or None when nothing changed."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        logs = session_dir / "logs"
        relative = path.relative_to(logs).as_posix()
        node = self._owner(starts, f"{stat.st_dev}:{stat.st_ino}", stat.st_mtime_ns)
        key = f"{node}:{stat.st_dev}:{stat.st_ino}"
        start = self.shipped.get(key, 0)
        if stat.st_size < start:  # truncated (or the inode reused): start again
            start = 0
        known = self._known(session_dir, node)
        known[relative] = LogFile(relative, stat.st_size, stat.st_ino, "parts", stat.st_mtime_ns)
        if stat.st_size == start:
            if key in self.shipped:
                return None
            self.shipped[key] = start  # a new empty file: indexed, nothing to send
            return node, 0
        sent = 0
        with path.open("rb") as f:
            f.seek(start)
            while start < stat.st_size:
                data = f.read(min(PART_MAX_BYTES, stat.st_size - start))
                if not data:
                    break
                target = log_part_path(self.cluster, session_dir.name, node, stat.st_ino, start)
                self.lake().write_bytes(target, data)
                start += len(data)
                sent += len(data)
                self.shipped[key] = start
        return node, sent
