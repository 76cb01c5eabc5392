"""From the spool to the lake: each sealed segment, written whole, then forgotten.

A segment becomes, per session, one raw object (its bodies, one per line, zstd) and
one Parquet part per table and day, all named after the node and the segment number.
Writing a segment again (after a crash, or an upload that failed half way) rewrites
the same objects with the same bytes, so every acknowledged event lands exactly once.
The node's catalog entry records the last segment it counted, so counts never double.

Rows and raw frames come from the intake, which parsed and compressed each body as it
came; a segment left by an earlier run, or whose rows were dropped after a failed
upload, is parsed again from the frames its spool kept (the same bytes).
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ingest import rawfiles
from ingest.eventids import EventIds, packed_count
from ingest.normalize import EventColumns, Taken, take
from ingest.spool import Segment, Spool, read_segment
from lake.catalog import CatalogEntry, time_text, update_entry
from lake.layout import ClusterKey, raw_path
from lake.parts import distinct_values, write_parts
from lake.store import Lake

# The event ids remembered as taken, and as written: about the last this many. Ray
# retries within minutes, and the views collapse older repeats.
RECENT_EVENT_IDS = 100_000


class WrittenIds:
    """The ids written to the lake lately, packed (`EventIds.since`), a segment's at a
    time: about the last RECENT_EVENT_IDS, forgotten a segment at a time. Only a
    segment read back from disk asks for them, rarely: no set of them is kept up to
    date on every flush."""

    def __init__(self) -> None:
        self._segments: deque[tuple[int, bytes]] = deque()  # (ids, packed)
        self._held = 0

    def hold(self, packed: bytes) -> None:
        count = packed_count(packed)
        self._segments.append((count, packed))
        self._held += count
        while self._held - self._segments[0][0] >= RECENT_EVENT_IDS:
            self._held -= self._segments.popleft()[0]

    def ids(self) -> EventIds:
        """Every id held, as one new set."""
        found = EventIds()
        for _, packed in self._segments:
            found.add_packed(packed)
        return found


@dataclass
class SegmentRows:
    """The rows of one segment's bodies (`take` fills `columns`), and the bodies
    themselves as the spool keeps them (`rawfiles.line_frame`), by session."""

    columns: EventColumns = field(default_factory=EventColumns)
    raw: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    events: int = 0
    body_bytes: int = 0
    batches: list[bytes] = field(default_factory=list)  # new ids, body by body (packed)
    spooled: int = 0  # events of the segment, held here or not
    spooled_bytes: int = 0  # bytes of its bodies, held here or not
    complete: bool = True  # False: some bodies' rows were not kept; read the disk
    emitter: str = ""  # the first emitting node the events name (hex)

    def add(self, taken: Taken, frame: bytes, body_bytes: int) -> None:
        """Count a body whose rows `take` added to `columns`, and keep its frame for its
        session's raw object (a body without events has none)."""
        if taken.session:
            self.raw[taken.session].append(frame)
        self.events += taken.events
        self.body_bytes += body_bytes
        self.batches.append(taken.new_ids)
        self.emitter = self.emitter or taken.emitter


@dataclass
class FlushReport:
    segments: int = 0
    events: int = 0
    parts: int = 0
    reparsed: int = 0  # segments whose rows were not held: parsed again from disk


def rows_from_disk(segment: Segment, written: EventIds) -> SegmentRows:
    """A segment's rows, parsed again from its bodies (each was valid when spooled),
    less the events already written from earlier segments (as intake left them out).
    `written` serves as the ids seen: the segment's own are added to it."""
    found = SegmentRows()
    for record in read_segment(segment.path):
        body = rawfiles.body_of(record)
        # A spool written before frames kept the body itself.
        frame = rawfiles.line_frame(body) if body is record else record
        found.add(take(body, written, found.columns), frame, len(body))
    return found


@dataclass(frozen=True)
class Summary:
    """A table's events in one session, and their first and last time (ns; an event's
    rows share its time)."""

    events: int
    first: int
    last: int


def _summary(data: pa.Table) -> dict[str, Summary]:
    """Per session of a table's rows (usually one: no filter, no grouping)."""
    sessions = distinct_values(data["session"])
    summaries = {}
    for session in sessions:
        rows = data
        if len(sessions) > 1:
            rows = data.filter(pc.equal(data["session"], pa.scalar(session)))
        first_rows = pc.equal(rows["seq"], pa.scalar(0, pa.int32()))  # an event's first row
        span = pc.min_max(pc.cast(rows["event_time"], pa.int64()))
        summaries[session] = Summary(
            events=int(pc.sum(pc.cast(first_rows, pa.int64())).as_py()),
            first=int(span["min"].as_py()),
            last=int(span["max"].as_py()),
        )
    return summaries


class Flusher:
    """Writes sealed segments of one node's spool into the lake, oldest first."""

    def __init__(
        self,
        lake: Lake,
        cluster: ClusterKey,
        node_id: str,
        role: str,
        spool: Spool,
        written: WrittenIds,
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
                rows = rows_from_disk(segment, self.written.ids())
                report.reparsed += 1
            report.parts += self._write(segment, rows)
            self.written.hold(b"".join(rows.batches))
            report.segments += 1
            report.events += rows.events
            self.spool.remove(segment)
        return report

    def _write(self, segment: Segment, rows: SegmentRows) -> int:
        self._write_raw(segment, rows.raw)
        ingest_id = segment.name
        parts = 0
        summaries: dict[str, dict[str, Summary]] = {}
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

    def _write_raw(self, segment: Segment, raw: dict[str, list[bytes]]) -> None:
        """The segment's bodies, one raw object per session."""
        name = f"seg-{self.node_id}-{segment.name}"
        for session, frames in raw.items():
            path = raw_path(self.cluster, session, self.node_id, name, ".jsonl.zst")
            self.lake.write_bytes(path, rawfiles.lines(frames))

    def _count(self, segment: str, summaries: dict[str, dict[str, Summary]]) -> None:
        """Add a segment's events to the node's catalog entries, once per segment."""
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for table, by_session in summaries.items():
            for session, summary in by_session.items():
                counts[session][table] = summary.events
                first[session] = min(first.get(session, summary.first), summary.first)
                last[session] = max(last.get(session, summary.last), summary.last)
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
