"""Batch ingest of recorded POST bodies into a lake (`raylake ingest`).

Input files: `.json` (one JSON array of RayEvents, as Ray POSTs it), `.jsonl` (one
array or one event object per line), each optionally `.gz` or `.zst`; directories are
walked in name order. A file is the unit of acceptance: any error in it rejects the
whole file, and nothing of it is written.

Each accepted body is kept verbatim (zstd) under `raw/`, named by its SHA-256, and its
rows are batched into Parquet parts whose names derive from the bodies they hold, so
running the same ingest twice writes the same objects again and changes no answer.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ingest import rawfiles
from ingest.eventids import EventIds
from ingest.normalize import EventColumns, Taken, take
from ingest.parse import BodyError
from lake.catalog import refresh_session
from lake.layout import EVENTS, RAW, ClusterKey, check_node, parse_partition, raw_path
from lake.parts import write_parts
from lake.store import Lake

BATCH_EVENTS = 50_000  # about 40 MB of Parquet, and the memory bound of an ingest
WRITER = "ingest"
SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz", ".json.zst", ".jsonl.zst")
RAW_SUFFIXES = SUFFIXES[2:]  # lakes before zstd hold gzip


@dataclass
class Report:
    files: int = 0
    bodies: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    sessions: set[str] = field(default_factory=set)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    raw_bytes: int = 0


def input_files(paths: Iterable[Path]) -> list[Path]:
    """Every ingestible file named or found below the given paths, in name order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p for p in sorted(path.rglob("*")) if p.is_file() and p.name.endswith(SUFFIXES)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return found


def read_bodies(path: Path) -> list[bytes]:
    """The POST bodies a file holds."""
    return bodies_of(path.name, path.read_bytes())


def bodies_of(name: str, data: bytes) -> list[bytes]:
    """The POST bodies in a file's bytes: `.json` holds one, `.jsonl` one per line (an
    array) or one event per line; either may be compressed (`.gz`, `.zst`)."""
    data = rawfiles.decompress(name, data)
    if not rawfiles.strip(name).endswith(".jsonl"):
        return [data]
    bodies, events = [], []
    for line in data.splitlines():
        line = line.strip()
        if line.startswith(b"["):
            bodies.append(line)
        elif line:
            events.append(line)
    if events:
        bodies.append(b"[" + b",".join(events) + b"]")
    return bodies


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass
class _Batch:
    """Accepted bodies waiting to be written together as Parquet parts; the ingest id,
    derived from every body of the batch, is stamped when the batch is written."""

    columns: EventColumns = field(default_factory=EventColumns)
    digests: list[str] = field(default_factory=list)
    seen: EventIds = field(default_factory=EventIds)
    events: int = 0

    def write(self, lake: Lake, cluster: ClusterKey) -> list[str]:
        """Write the batch; the ingest id derives from the bodies it holds."""
        ingest_id = hashlib.sha256("".join(self.digests).encode()).hexdigest()[:20]
        parts = []
        for table, data in self.columns.tables(ingest_id):
            parts += write_parts(lake, cluster, table, data, writer=WRITER, ingest_id=ingest_id)
        pa.default_memory_pool().release_unused()  # give the batch's memory back
        return parts


Source = tuple[str, Callable[[], list[bytes]]]
"""A name for reports and a loader of the bodies it holds."""


def ingest_paths(
    lake: Lake,
    cluster: ClusterKey,
    paths: Iterable[Path],
    *,
    on_file: Callable[[Path], None] | None = None,
    batch_events: int = BATCH_EVENTS,
) -> Report:
    """Ingest every file below `paths`; return what happened."""
    files = input_files(paths)

    def loader(path: Path) -> Callable[[], list[bytes]]:
        def load() -> list[bytes]:
            bodies = read_bodies(path)
            if on_file:
                on_file(path)
            return bodies

        return load

    return ingest_sources(lake, cluster, [(str(p), loader(p)) for p in files], batch_events)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Conversion makes no reference cycles, so refcounting frees all it allocates;
    the cyclic collector would only rescan every live row of a batch, again and again
    (it halves throughput)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def ingest_sources(
    lake: Lake, cluster: ClusterKey, sources: Iterable[Source], batch_events: int = BATCH_EVENTS
) -> Report:
    """Ingest sources of bodies; a source is accepted or rejected whole."""
    with paused_gc():
        return _ingest_sources(lake, cluster, sources, batch_events)


def _ingest_sources(
    lake: Lake, cluster: ClusterKey, sources: Iterable[Source], batch_events: int
) -> Report:
    report = Report()
    batch = _Batch()
    for name, load in sources:
        mark, ids_mark = batch.columns.mark(), batch.seen.added
        taken: list[tuple[bytes, Taken]] = []
        try:
            for body in load():
                found = take(body, batch.seen, batch.columns)
                taken.append((body, found))
        except (BodyError, OSError, EOFError, zlib.error) as exc:
            batch.columns.rollback(mark)  # nothing of a rejected source stays
            batch.seen.rollback(ids_mark)
            report.rejected.append((name, str(exc) or type(exc).__name__))
            continue
        for body, found in taken:
            _accept(lake, cluster, body, found, batch, report)
        report.files += 1
        if batch.events >= batch_events:
            report.parts.extend(batch.write(lake, cluster))
            batch = _Batch()
    if batch.digests:
        report.parts.extend(batch.write(lake, cluster))
    for session in sorted(report.sessions):
        refresh_session(lake, cluster, session)
    return report


def rebuild(lake: Lake) -> dict[ClusterKey, Report]:
    """Rewrite every event table from the raw bodies, then drop parts they do not hold."""
    old_parts = set(lake.list_files(EVENTS, ".parquet"))
    reports: dict[ClusterKey, Report] = {}
    for directory in lake.list_dirs(RAW):
        cluster = ClusterKey.parse(parse_partition(directory)["cluster"])

        def loader(path: str) -> Callable[[], list[bytes]]:
            return lambda: bodies_of(path, lake.read_bytes(path))

        raw_files = [p for p in lake.list_files(directory) if p.endswith(RAW_SUFFIXES)]
        reports[cluster] = ingest_sources(lake, cluster, [(p, loader(p)) for p in raw_files])
    kept = {path for report in reports.values() for path in report.parts}
    for path in sorted(old_parts - kept):
        lake.delete(path)
    return reports


def _accept(
    lake: Lake,
    cluster: ClusterKey,
    body: bytes,
    taken: Taken,
    batch: _Batch,
    report: Report,
) -> None:
    digest = _digest(body)
    batch.digests.append(digest)
    report.bodies += 1
    if not taken.events:
        return
    node = check_node(taken.emitter) if taken.emitter else "unknown"
    path = raw_path(cluster, taken.session, node, digest)
    if not lake.exists(path):
        data = rawfiles.compress(body)
        lake.write_bytes(path, data)
        report.raw_bytes += len(data)
    batch.events += taken.events
    report.events_by_type.update(taken.types)
    report.sessions.update(taken.sessions)
