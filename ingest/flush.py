"""From the spool to the lake: each sealed segment, written whole, then forgotten.

A segment becomes, per session, one raw object (its bodies, one per line, zstd) and
one Parquet part per table and day, all named after the node and the segment number.
Writing a segment again (after a crash, or an upload that failed half way) rewrites
the same objects with the same bytes, so every acknowledged event lands exactly once.
The node's catalog entry records the last segment it counted, so counts never double.

Rows come from the intake, which already parsed them; a segment left by an earlier
run, or whose rows were dropped after a failed upload, is parsed again from disk.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ingest import rawfiles
from ingest.normalize import EventColumns, Taken, take
from ingest.spool import Segment, Spool, read_segment
from lake.catalog import CatalogEntry, time_text, update_entry
from lake.layout import ClusterKey, raw_path
from lake.parts import write_parts
from lake.store import Lake

RECENT_EVENT_IDS = 100_000


class RecentIds:
    """The ids of about the last RECENT_EVENT_IDS events, forgotten a batch (a body, a
    segment) at a time: Ray retries within minutes, and the views collapse older
    repeats. An id in two batches is forgotten with the older."""

    def __init__(self) -> None:
        self.ids: set[bytes] = set()
        self._batches: deque[set[bytes]] = deque()
        self._held = 0  # ids in the batches

    def remember(self, batch: set[bytes]) -> None:
        """Hold `batch` (the set is kept: do not change it afterwards)."""
        self.ids |= batch
        self.hold(batch)

    def hold(self, batch: set[bytes]) -> None:
        """Hold `batch`, whose ids are in `ids` already (`take` put them there)."""
        self._batches.append(batch)
        self._held += len(batch)
        while self._held - len(self._batches[0]) >= RECENT_EVENT_IDS:
            oldest = self._batches.popleft()
            self._held -= len(oldest)
            self.ids -= oldest


@dataclass
class SegmentRows:
    """The rows of one segment's bodies (`take` fills `columns`), and the session of
    each body."""

    columns: EventColumns = field(default_factory=EventColumns)
    sessions: list[str] = field(default_factory=list)
    events: int = 0
    batches: list[set[bytes]] = field(default_factory=list)  # the events, body by body
    spooled: int = 0  # events of the segment, held here or not
    complete: bool = True  # False: some bodies' rows were not kept; read the disk
    emitter: str = ""  # the first emitting node the events name (hex)

    def add(self, taken: Taken) -> None:
        """Count a body whose rows `take` added to `columns`."""
        self.sessions.append(taken.session)
        self.events += taken.events
        self.batches.append(taken.new_ids)
        self.emitter = self.emitter or taken.emitter


@dataclass
class FlushReport:
    segments: int = 0
    events: int = 0
    parts: int = 0
    reparsed: int = 0  # segments whose rows were not held: parsed again from disk


def rows_from_disk(segment: Segment, written: set[bytes]) -> SegmentRows:
    """A segment's rows, parsed again from its bodies (each was valid when spooled),
    less the events already written from earlier segments (as intake left them out).
    `written` serves as the ids seen, and is left as it was (no copy of it is made)."""
    found = SegmentRows()
    try:
        for body in read_segment(segment.path):
            found.add(take(body, written, found.columns))
    finally:
        for batch in found.batches:
            written -= batch
    return found


def _summary(data: pa.Table) -> list[dict[str, Any]]:
    """Per session of a table's rows: its events (their first rows), their first and
    last time (ns; an event's rows share its time). No row is copied to filter them."""
    times = pa.table(
        {
            "session": data["session"],
            "ns": pc.cast(data["event_time"], pa.int64()),
            "event": pc.cast(pc.equal(data["seq"], pa.scalar(0, pa.int32())), pa.int64()),
        }
    )
    # Without threads: a segment's rows are too few to share out (40% less CPU).
    by_session = times.group_by("session", use_threads=False)
    return by_session.aggregate([("event", "sum"), ("ns", "min"), ("ns", "max")]).to_pylist()


def _lines(bodies: list[bytes]) -> Iterator[bytes]:
    """The bodies one per line, for the compressor to take piece by piece."""
    for body in bodies:
        yield _one_line(body)
        yield b"\n"


def _one_line(body: bytes) -> bytes:
    """A body on one line: a newline between JSON tokens is whitespace, like a space.
    (`replace` returns the body itself when there is nothing to replace.)"""
    return body.replace(b"\r", b" ").replace(b"\n", b" ")


class Flusher:
    """Writes sealed segments of one node's spool into the lake, oldest first."""

    def __init__(
        self,
        lake: Lake,
        cluster: ClusterKey,
        node_id: str,
        role: str,
        spool: Spool,
        written: RecentIds,
    ) -> None:
        self.lake = lake
        self.cluster = cluster
        self.node_id = node_id
        self.role = role
        self.spool = spool
        self.ray_version = ""
        self.pending: dict[str, SegmentRows] = {}  # by segment name
        # Events written lately: a segment read back from disk leaves them out again.
        self.written = written
        self.entries: set[tuple[str, str]] = set()  # (session, node) catalog entries kept

    def write_sealed(self, segments: list[Segment]) -> FlushReport:
        """Write sealed `segments`, oldest first, removing each from the spool once it
        is in the lake. Stops at the first failure: the rest stay on disk."""
        report = FlushReport()
        for segment in segments:
            # The rows leave memory as they are written: after a failure, the segment is
            # read from disk again.
            rows = self.pending.pop(segment.name, None)
            if rows is None:
                rows = rows_from_disk(segment, self.written.ids)
                report.reparsed += 1
            report.parts += self._write(segment, rows)
            for batch in rows.batches:
                self.written.remember(batch)
            report.segments += 1
            report.events += rows.events
            self.spool.remove(segment)
        return report

    def _write(self, segment: Segment, rows: SegmentRows) -> int:
        self._write_raw(segment, rows.sessions)  # its bodies leave memory before the tables
        ingest_id = segment.name
        parts = 0
        summaries: dict[str, list[dict[str, Any]]] = {}
        for table, data in rows.columns.tables(ingest_id):
            written = write_parts(
                self.lake,
                self.cluster,
                table,
                data,
                writer=self.node_id,
                ingest_id=ingest_id,
                sort=False,  # compaction sorts
            )
            parts += len(written)
            summaries[table] = _summary(data)
        self._count(segment.name, summaries)
        return parts

    def _write_raw(self, segment: Segment, sessions: list[str]) -> None:
        """The segment's bodies, one raw object per session (`sessions`: each body's)."""
        by_session: dict[str, list[bytes]] = defaultdict(list)
        for session, body in zip(sessions, read_segment(segment.path), strict=True):
            if session:
                by_session[session].append(body)
        name = f"seg-{self.node_id}-{segment.name}"
        for session, bodies in by_session.items():
            path = raw_path(self.cluster, session, self.node_id, name, ".jsonl.zst")
            self.lake.write_bytes(path, rawfiles.compress(_lines(bodies)))

    def _count(self, segment: str, summaries: dict[str, list[dict[str, Any]]]) -> None:
        """Add a segment's events to the node's catalog entries, once per segment."""
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for table, summary in summaries.items():
            for row in summary:
                session = str(row["session"])
                counts[session][table] = row["event_sum"]
                first[session] = min(first.get(session, row["ns_min"]), row["ns_min"])
                last[session] = max(last.get(session, row["ns_max"]), row["ns_max"])
        for session, session_counts in counts.items():
            low, high = time_text(first[session]), time_text(last[session])

            def add(
                entry: CatalogEntry,
                session_counts: dict[str, int] = session_counts,
                low: str = low,
                high: str = high,
            ) -> bool:
                if segment <= entry.flushed_segment:
                    return False  # counted before a crash; this is a replay
                for table, count in session_counts.items():
                    entry.event_counts[table] = entry.event_counts.get(table, 0) + count
                entry.first_event_time = min(entry.first_event_time or low, low)
                entry.last_event_time = max(entry.last_event_time or high, high)
                entry.role = self.role
                entry.ray_version = self.ray_version or entry.ray_version
                entry.flushed_segment = segment
                return True

            update_entry(self.lake, self.cluster, session, self.node_id, add)
            self.entries.add((session, self.node_id))
