"""The collector beside a Ray node: accept, spool, flush, and drain on SIGTERM.

Intake validates a POST body whole (it is parsed and normalized, so a bad time or
field is refused before anything is kept), appends it to the spool (fsync) and keeps
its rows for the next flush; only then is Ray answered 200. The flusher seals the open
segment every flush interval, or sooner once it holds enough events, and writes sealed
segments to the lake; while the lake is unreachable it retries with backoff, and the
spool keeps accepting up to its cap.

Exceptions (mapped to HTTP by `intake`):

    CollectorUnavailable      503 with Retry-After
     +-- Draining             SIGTERM received: flushing, accepting nothing new
    ingest.parse.BodyError    400
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as MetricCounter

from ingest import rawfiles
from ingest.eventids import EventIds
from ingest.exports import ExportTailer
from ingest.flush import RECENT_EVENT_IDS, Flusher, SegmentRows, WrittenIds
from ingest.node import current_session_dir, node_id, session_dirs
from ingest.normalize import EventColumns, take
from ingest.parse import BodyError, parse_body
from ingest.settings import CollectorConfig
from ingest.shipper import LogShipper
from ingest.snapshots import Snapshotter
from ingest.spool import Spool, SpoolFull, read_segment
from lake.catalog import CatalogEntry, read_entry, update_entry
from lake.layout import ClusterKey
from lake.store import Lake

log = logging.getLogger("raylake.collector")

MAX_BACKOFF = 60.0
# A segment is sealed at --flush-events or at this many bytes of bodies, whichever comes
# first: the rows held for the flush (about 1.6 times their JSON) stay bounded however
# large the events are.
SEGMENT_BYTES = 40 * 1024 * 1024


class CollectorUnavailable(Exception):
    retry_after = 5


class Draining(CollectorUnavailable):
    pass


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.accepted = MetricCounter(
            "raylake_events_accepted", "Events accepted, by type", ["event_type"], registry=r
        )
        self.rejected = MetricCounter(
            "raylake_bodies_rejected", "POST bodies refused, by reason", ["reason"], registry=r
        )
        self.spool_bytes = Gauge("raylake_spool_bytes", "Bytes in the spool", registry=r)
        self.flush_seconds = Histogram(
            "raylake_flush_seconds", "Time to write sealed segments to the lake", registry=r
        )
        self.flushed = MetricCounter(
            "raylake_events_flushed", "Events written to the lake", registry=r
        )
        self.upload_errors = MetricCounter(
            "raylake_upload_errors", "Failed attempts to write to the lake", registry=r
        )
        self.intake_wait = Histogram(
            "raylake_intake_wait_seconds",
            "Time a POST waited for the flusher to catch up before it was taken",
            registry=r,
        )
        self.reparsed = MetricCounter(
            "raylake_segments_reparsed",
            "Segments parsed again from the spool at their flush (their rows not held)",
            registry=r,
        )
        self.log_bytes = MetricCounter(
            "raylake_log_bytes_shipped", "Log bytes shipped to the lake", registry=r
        )
        self._accepted_by_type: dict[str, MetricCounter] = {}

    def count_accepted(self, types: dict[str, int]) -> None:
        """Count a body's events by type. Each type's counter is looked up once:
        `labels()` takes a lock and checks its labels on every call."""
        for event_type, count in types.items():
            counter = self._accepted_by_type.get(event_type)
            if counter is None:
                counter = self._accepted_by_type[event_type] = self.accepted.labels(event_type)
            counter.inc(count)


class Collector:
    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.cluster = ClusterKey(config.namespace, config.cluster)
        self.spool = Spool(config.spool, config.spool_max_bytes)
        self.metrics = Metrics()
        self.draining = False
        self.flush_wanted = threading.Event()
        self._lock = threading.Lock()  # intake and sealing: a segment's rows stay whole
        # Rows kept in memory for segments not yet written, by segment name: one
        # segment's worth at most (the sidecar's 256 MiB); past it, the flusher reads
        # the segments from disk.
        self._pending: dict[str, SegmentRows] = {}
        self._checked = EventColumns()  # where a body not kept is checked
        self._recent = EventIds()  # taken lately: a retry of them is not kept twice
        self._written = WrittenIds()  # in the lake lately: a segment read again leaves them out
        self._flusher: Flusher | None = None
        self._snapshotter: Snapshotter | None = None
        self._lake: Lake | None = None
        self._shipper: LogShipper | None = None
        self._exports: ExportTailer | None = None
        self._backoff = 0.0
        self._next_attempt = 0.0
        self.metrics.spool_bytes.set(self.spool.size)
        self._remember_spooled()

    def _remember_spooled(self) -> None:
        """Bodies an earlier run spooled, or lately wrote, may be retried by Ray (their
        answer was lost in the crash): count their events as seen, so a retry is not
        kept twice; and those it wrote as written."""
        for path in self.spool.done():
            mark = self._recent.added
            for event_id in self._ids_in(path):
                self._recent.add(event_id)
            self._written.hold(self._recent.since(mark))
        for segment in self.spool.sealed():
            for event_id in self._ids_in(segment.path):
                self._recent.add(event_id)
        self._recent.keep_newest(RECENT_EVENT_IDS)

    @staticmethod
    def _ids_in(path: Path) -> Iterator[bytes]:
        for record in read_segment(path):
            for event in parse_body(rawfiles.body_of(record)).events:
                yield event.event_id

    # -- intake ---------------------------------------------------------------------

    def accept(self, body: bytes, internal: bool = False) -> int:
        """Make a valid body durable; return how many events it held. `internal`
        bodies (from the node's own export files) are taken while draining too."""
        with self._lock:
            if self.draining and not internal:
                self.metrics.rejected.labels("draining").inc()
                raise Draining("the collector is shutting down")
            name = self.spool.open_name
            if name not in self._pending:
                self._pending[name] = SegmentRows()
            segment = self._pending[name]
            # Rows are kept for the flush up to a bound; past it (the lake is behind) the
            # body is only checked, and the flusher parses the segment from disk.
            keep = segment.complete and not self._holding_a_segment()
            columns = segment.columns if keep else self._checked
            mark, ids_mark = columns.mark(), self._recent.added
            try:
                taken = take(body, self._recent, columns)
            except BodyError:
                self.metrics.rejected.labels("invalid").inc()
                raise
            frame = rawfiles.line_frame(body)  # what the spool keeps and the lake gets
            try:
                self.spool.append(frame)
            except BaseException as exc:  # not durable: nothing of the body is kept
                columns.rollback(mark)
                self._recent.rollback(ids_mark)
                if not isinstance(exc, SpoolFull):
                    raise
                self.metrics.rejected.labels("spool_full").inc()
                raise CollectorUnavailable(str(exc)) from None
            finally:
                if not keep:
                    self._checked.rollback(mark)
            if keep:
                segment.add(taken, frame, len(body))
            else:
                segment.complete = False
            segment.spooled += taken.events
            segment.spooled_bytes += len(body)
            self._recent.keep_newest(RECENT_EVENT_IDS)
            if (
                segment.spooled >= self.config.flush_events
                or segment.spooled_bytes >= SEGMENT_BYTES
            ):
                self.spool.seal()  # a segment of a good size for the lake
                self.flush_wanted.set()
        self.metrics.count_accepted(taken.types)
        self.metrics.spool_bytes.set(self.spool.size)
        return taken.events

    def flusher_behind(self) -> bool:
        """The rows held for the flush are at their bound while the flusher writes: a
        body taken now would only be checked, and parsed again from disk at its flush.
        Intake may wait a moment instead. Not while the lake fails: then the spool
        takes what comes, up to its cap."""
        if self._backoff or self.draining:
            return False
        with self._lock:  # the flusher takes segments out of `_pending`
            return self._holding_a_segment()

    def _holding_a_segment(self) -> bool:
        """The rows held are a segment's worth: no more are kept. Under `_lock`."""
        held = self._pending.values()
        full = sum(rows.events for rows in held) >= self.config.flush_events
        return full or sum(rows.body_bytes for rows in held) >= SEGMENT_BYTES

    # -- flushing -------------------------------------------------------------------

    def _running_node(self) -> str | None:
        """The node running now, from Ray's directory (`ingest.node`)."""
        session = current_session_dir(self.config.ray_root)
        return node_id(session) if session else None

    def _emitting_node(self, taken: list[SegmentRows]) -> str:
        """Before Ray's directory names the node: the node the events name."""
        for rows in [*taken, *self._pending.values()]:
            if rows.emitter:
                return rows.emitter
        return "unknown"

    def lake(self) -> Lake:
        """The lake, opened (and created) on first use: it may be unreachable at start."""
        if self._lake is None:
            config = self.config
            self._lake = Lake(config.lake, endpoint_url=config.s3_endpoint_url, create=True)
        return self._lake

    def snapshot(self) -> None:
        """Head only: one poll of the dashboard (a failure waits for the next poll)."""
        if self._snapshotter is None:

            def session() -> str | None:  # Ray may start, or restart, after the collector
                found = current_session_dir(self.config.ray_root)
                return found.name if found else None

            self._snapshotter = Snapshotter(
                self.lake, self.cluster, self.config.dashboard_url, session
            )
        try:
            self._snapshotter.poll()
        except Exception as exc:  # the lake may be down: the next poll tries again
            log.warning("keeping a dashboard snapshot failed: %s", exc)
        if self._flusher is not None and self._snapshotter.ray_version:
            self._flusher.ray_version = self._snapshotter.ray_version

    def ship_logs(self, everything: bool = False) -> None:
        """Ship the log bytes that changed (a failure waits for the next interval)."""
        if self._shipper is None:
            state = self.config.spool / "shipped-logs.json"
            self._shipper = LogShipper(self.lake, self.cluster, self.config.ray_root, state)
        try:
            report = self._shipper.ship(everything)
        except Exception as exc:  # the lake may be down: the next interval tries again
            self.metrics.upload_errors.inc()
            log.warning("shipping logs failed: %s", exc)
            return
        self.metrics.log_bytes.inc(report.bytes)

    def _end_entries(self) -> None:
        """Mark ended the catalog entries this collector kept (no scan of the catalog),
        and those its node wrote before a restart for the sessions in the Ray root: a
        run that had nothing left to write ends them too."""
        entries = set()
        for keeper in (self._flusher, self._shipper):
            if keeper is not None:
                entries |= keeper.entries
        node = self._flusher.node_id if self._flusher is not None else self._running_node()
        if node is not None:
            for session in session_dirs(self.config.ray_root):
                if read_entry(self.lake(), self.cluster, session.name, node) is not None:
                    entries.add((session.name, node))
        self._end(entries)

    def _end(self, entries: set[tuple[str, str]]) -> None:
        def end(entry: CatalogEntry) -> bool:
            entry.ended = True
            return True

        for session, node in sorted(entries):
            update_entry(self.lake(), self.cluster, session, node, end)

    def tail_exports(self) -> None:
        """Take the new lines of Ray's export-event files (a refusal waits a round)."""
        if self._exports is None:
            offsets = self.config.spool / "export-offsets.json"
            self._exports = ExportTailer(
                self.config.ray_root, offsets, lambda body: self.accept(body, internal=True)
            )
        try:
            self._exports.tail()
        except CollectorUnavailable:
            pass  # the spool is full: the lines wait for the next round
        except OSError as exc:
            log.warning("reading export events failed: %s", exc)

    def _get_flusher(self, taken: list[SegmentRows]) -> Flusher:
        """The flusher of the node running now. A Ray container restarted in the pod is
        a new node in the same Ray root (`ingest.node`): from the next flush on, events
        go under its id, and the old node's catalog entries end, as the node has.
        `taken`: the rows about to be written, whose events may name the node."""
        old = self._flusher
        running = self._running_node()
        if old is not None and running in (None, old.node_id):
            return old
        node = running or self._emitting_node(taken)
        flusher = Flusher(
            self.lake(), self.cluster, node, self.config.role, self.spool, self._written
        )
        if old is not None:
            flusher.ray_version = old.ray_version
            self._end(old.entries)  # raises while the lake is down: the switch is retried
        if node != "unknown":  # else ask again next time: Ray may not have started yet
            self._flusher = flusher
        return flusher

    def flush(self) -> int:
        """Seal the open segment and write every sealed segment; return events written.
        Raises when the lake cannot be written (the segments stay in the spool)."""
        with self._lock:
            self.spool.seal()
            # These segments only: one sealed while they are written keeps its rows
            # for the next flush.
            segments = self.spool.sealed()
            sealed = {segment.name for segment in segments}
            taken = {name: self._pending.pop(name) for name in sealed & self._pending.keys()}
        started = time.monotonic()
        try:
            flusher = self._get_flusher(list(taken.values()))
            for name, rows in taken.items():
                if rows.complete:  # else the flusher parses the segment from disk
                    flusher.pending[name] = rows
            report = flusher.write_sealed(segments)
        except Exception as exc:  # whatever the store raised: retry later
            self.metrics.upload_errors.inc()
            if self._flusher is not None:
                self._flusher.pending.clear()  # re-read from disk on the next attempt
            log.warning("writing to the lake failed, will retry: %s", exc)
            raise
        finally:
            self.metrics.spool_bytes.set(self.spool.size)
        self.metrics.flush_seconds.observe(time.monotonic() - started)
        self.metrics.flushed.inc(report.events)
        self.metrics.reparsed.inc(report.reparsed)
        return report.events

    def flush_due(self, now: float) -> bool:
        """Flush if it is time (or wanted) and the backoff allows; False after a failure."""
        try:
            self.flush()
        except Exception:
            self._backoff = min(MAX_BACKOFF, max(1.0, self._backoff * 2))
            self._next_attempt = now + self._backoff
            return False
        self._backoff = 0.0
        return True

    def ready_for_attempt(self, now: float) -> bool:
        return now >= self._next_attempt

    def drain(self, deadline: float) -> bool:
        """Stop accepting, write everything, ship the remaining logs, mark the node's
        sessions ended. True when everything acknowledged is in the lake."""
        self.draining = True
        self.tail_exports()
        self.ship_logs(everything=True)
        if self._shipper is not None:
            self._shipper.stop()
        while True:
            try:
                self.flush()
                break
            except Exception:
                if time.monotonic() + 1.0 > deadline:
                    return False
                time.sleep(1.0)
        self._end_entries()
        self.spool.close()
        if self._snapshotter is not None:
            self._snapshotter.close()
        return True
