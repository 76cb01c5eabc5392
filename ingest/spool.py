"""The collector's write-ahead spool: POST bodies made durable before Ray is answered.

Bodies are appended to numbered segment files as framed records (length, CRC-32,
bytes) and synced (fdatasync) before `append` returns, so an acknowledged body survives
a crash. A record holds what the caller gives: the collector gives a body's zstd frame
(`ingest.rawfiles.line_frame`), a tenth of its bytes.

The open segment is written ahead with zeros, a megabyte at a time: syncing a record
into bytes the file already has writes the record alone, where an append also wrote
the file's new size (its inode), twice the CPU and twice the wait of every acknowledged
POST (ext4). A zero length ends a segment's records; sealing cuts the zeros off.

The open segment is sealed when the flusher takes it; a sealed segment is removed only
after its contents are in the lake. On start, every segment left on disk is sealed and
flushed again; a torn record at a segment's end (a crash mid-write, never
acknowledged) and the zeros after the last record are ignored.

    <spool>/seg-<run epoch, 20 digits>-<n, 12 digits>.log   records: <u32 length><u32 crc32><record>

A segment written to the lake is kept a while as `<name>.log.done` (the last
`KEEP_DONE`): its events may come again, when Ray retries a body whose answer a crash
lost after the flush, and a restarted collector must still know them.

The run epoch (the time the spool was opened, in ns) makes every segment's name new,
even when the spool directory itself is new (a pod's emptyDir after a restart), so a
segment never takes the name of one an earlier run already wrote to the lake.

Exceptions:

    SpoolError
     +-- SpoolFull       the spool holds its cap; answer 503 until the flusher drains it
"""

from __future__ import annotations

import os
import re
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from zlib_ng import zlib_ng  # CRC-32 as zlib computes it, at 13x zlib's speed

_HEADER = struct.Struct("<II")
KEEP_DONE = 8
_DONE = ".done"
_NAME = re.compile(r"seg-(\d{20})-(\d{12})\.log")
PREALLOCATE = 1 << 20  # zeros written ahead of the open segment's last record
_ZEROS = bytes(PREALLOCATE)


class SpoolError(Exception):
    pass


class SpoolFull(SpoolError):
    pass


@dataclass(frozen=True, order=True)
class Segment:
    epoch: int
    seq: int
    path: Path

    @property
    def name(self) -> str:
        """Unique across runs, and ordered: a later segment has a larger name."""
        return f"{self.epoch:020d}-{self.seq:012d}"


def _segment_path(directory: Path, epoch: int, seq: int) -> Path:
    return directory / f"seg-{epoch:020d}-{seq:012d}.log"


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_segment(path: Path) -> list[bytes]:
    """The bodies of a segment, up to its first torn or corrupt record, or the zeros
    written ahead of its records."""
    data = path.read_bytes()
    view = memoryview(data)  # checked without a copy
    bodies, offset = [], 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        if length == 0:
            break
        start, end = offset + _HEADER.size, offset + _HEADER.size + length
        if end > len(data) or zlib_ng.crc32(view[start:end]) != crc:
            break
        bodies.append(data[start:end])
        offset = end
    return bodies


class Spool:
    """Append-only segments in one directory; safe to use from several threads."""

    def __init__(self, directory: Path, max_bytes: int):
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        found = sorted(self._on_disk())
        self._sealed: list[Segment] = found  # left by an earlier run: flush them first
        self._bytes = sum(s.path.stat().st_size for s in found)
        self._epoch = max(time.time_ns(), found[-1].epoch + 1 if found else 0)
        self._seq = 0
        self._file: int | None = None  # the open segment's descriptor
        self._written = 0  # its records' bytes
        self._allocated = 0  # its bytes on disk: the records, then zeros
        self._open_records = 0

    def _on_disk(self) -> list[Segment]:
        segments = []
        for path in self.directory.iterdir():
            match = _NAME.fullmatch(path.name)
            if match:
                segments.append(Segment(int(match[1]), int(match[2]), path))
        return segments

    @property
    def size(self) -> int:
        """Bytes the spool holds on disk."""
        return self._bytes

    @property
    def open_name(self) -> str:
        """The name of the segment the next body goes to."""
        with self._lock:
            return f"{self._epoch:020d}-{self._seq:012d}"

    def append(self, body: bytes) -> str:
        """Write a body durably; return the name of its segment. Raises SpoolFull."""
        if not body:
            raise ValueError("an empty record would read as the end of its segment")
        header = _HEADER.pack(len(body), zlib_ng.crc32(body))
        size = len(header) + len(body)
        with self._lock:
            if self._bytes + size > self.max_bytes:
                raise SpoolFull(f"the spool holds {self._bytes:,} bytes, its cap")
            if self._file is None:
                path = _segment_path(self.directory, self._epoch, self._seq)
                self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                self._written = self._allocated = 0
                _fsync_directory(self.directory)  # the new file's name is durable too
            # At the end of the records: a write that failed half way is written over.
            end = self._written + size
            if os.pwritev(self._file, [header, body], self._written) != size:
                raise OSError(f"a short write to the spool's segment {self._seq}")
            if end > self._allocated:  # zeros ahead, within the cap
                ahead = min(PREALLOCATE, max(0, self.max_bytes - self._bytes - size))
                os.pwrite(self._file, memoryview(_ZEROS)[:ahead], end)
                self._allocated = end + ahead
            os.fdatasync(self._file)
            self._written = end
            self._bytes += size
            self._open_records += 1
            return f"{self._epoch:020d}-{self._seq:012d}"

    def seal(self) -> Segment | None:
        """Close the open segment (if it holds anything) and hand it to the flusher."""
        with self._lock:
            if self._file is None or self._open_records == 0:
                return None
            self._close_file()
            path = _segment_path(self.directory, self._epoch, self._seq)
            segment = Segment(self._epoch, self._seq, path)
            self._sealed.append(segment)
            self._file, self._open_records = None, 0
            self._seq += 1
            return segment

    def sealed(self) -> list[Segment]:
        with self._lock:
            return list(self._sealed)

    def remove(self, segment: Segment) -> None:
        """Retire a segment whose contents are safely in the lake (kept as done)."""
        with self._lock:
            size = segment.path.stat().st_size
            segment.path.rename(segment.path.with_name(segment.path.name + _DONE))
            self._sealed.remove(segment)
            self._bytes -= size
            for old in self.done()[:-KEEP_DONE]:
                old.unlink()

    def done(self) -> list[Path]:
        """Segments already in the lake, kept a while, oldest first."""
        return sorted(self.directory.glob(f"seg-*.log{_DONE}"))

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._close_file()
                self._file = None

    def _close_file(self) -> None:
        """Close the open segment, the zeros after its records cut off (they need no
        sync: they read as its end too). Under `_lock`."""
        assert self._file is not None
        os.ftruncate(self._file, self._written)
        os.close(self._file)
