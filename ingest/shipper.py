"""Ship a node's Ray log files to the lake while they grow.

Every log interval, the bytes each file gained since the last interval go up as one
part (`lake.layout.log_part_path`: keyed by the file's inode and first offset), so an
interval costs what changed, not the logs' total size, and a file Ray renames when it
rotates is not shipped again. watchdog tells which files changed; a full scan at start
and at the end catches anything it missed. Every session directory under the Ray root
is shipped, so an old session's remaining logs still arrive after a restart.

What was shipped (inode -> bytes) is kept in a small state file beside the spool, so
a restarted collector goes on where it stopped; a part written again after a crash
has the same name and at least the same bytes.
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

from ingest.node import node_id, session_dirs
from lake.catalog import CatalogEntry, update_entry
from lake.layout import ClusterKey, log_part_path
from lake.logfiles import LogFile, write_index
from lake.store import Lake

log = logging.getLogger("raylake.logs")

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
        self.shipped: dict[str, int] = self._load()  # "<dev>:<inode>" -> bytes
        self.files: dict[Path, dict[str, LogFile]] = {}  # session dir -> path -> file
        self.entries: set[tuple[str, str]] = set()  # (session, node) catalog entries kept
        self._dirty = _Dirty()
        self._observer: BaseObserver | None = None

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
        """Start noting changed files (the Ray root may not exist yet: then scans do)."""
        if self._observer is None and self.ray_root.is_dir():
            observer = Observer()
            observer.schedule(self._dirty, str(self.ray_root), recursive=True)
            observer.daemon = True
            observer.start()
            self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)

    def ship(self, everything: bool = False) -> ShipReport:
        """Ship what changed (every file when `everything`, or before watching)."""
        self.watch()
        dirty = self._dirty.take()
        scan = everything or self._observer is None
        report = ShipReport()
        for session_dir in session_dirs(self.ray_root):
            node = node_id(session_dir)
            logs = session_dir / "logs"
            if node is None or not logs.is_dir():
                continue
            known = self.files.setdefault(session_dir, {})
            first_time = not known
            changed = False
            for path in self._candidates(logs, scan or first_time, dirty):
                shipped = self._ship_file(session_dir.name, node, logs, path, known)
                if shipped is not None:
                    changed = True
                    report.files += 1
                    report.bytes += shipped
            if changed or first_time:
                files = list(known.values())
                write_index(self.lake(), self.cluster, session_dir.name, node, files)
                self._count(session_dir.name, node, files)
        self._save()
        return report

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

    def _ship_file(
        self, session: str, node: str, logs: Path, path: Path, known: dict[str, LogFile]
    ) -> int | None:
        """Ship a file's new bytes; None when nothing changed."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        relative = path.relative_to(logs).as_posix()
        key = f"{stat.st_dev}:{stat.st_ino}"
        start = self.shipped.get(key, 0)
        if stat.st_size < start:  # truncated (or the inode reused): start again
            start = 0
        known[relative] = LogFile(relative, stat.st_size, stat.st_ino, "parts", stat.st_mtime_ns)
        if stat.st_size == start:
            if key in self.shipped:
                return None
            self.shipped[key] = start  # a new empty file: indexed, nothing to send
            return 0
        sent = 0
        with path.open("rb") as f:
            f.seek(start)
            while start < stat.st_size:
                data = f.read(min(PART_MAX_BYTES, stat.st_size - start))
                if not data:
                    break
                target = log_part_path(self.cluster, session, node, stat.st_ino, start)
                self.lake().write_bytes(target, data)
                start += len(data)
                sent += len(data)
                self.shipped[key] = start
        return sent
