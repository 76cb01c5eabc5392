"""The spool: durable records, torn tails and zeros ahead ignored, names never reused,
done kept a while."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.spool import KEEP_DONE, PREALLOCATE, Spool, SpoolFull, read_segment


def test_records_survive_a_torn_tail(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(b'[{"a": 1}]')
    spool.append(b'[{"b": 2}]')
    segment = spool.seal()
    assert segment is not None
    with segment.path.open("ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")  # a crash in the middle of a record
    assert read_segment(segment.path) == [b'[{"a": 1}]', b'[{"b": 2}]']


def test_a_crash_leaves_zeros_after_the_records_which_end_them(tmp_path: Path) -> None:
    crashed = Spool(tmp_path, max_bytes=1 << 30)
    records = [b"[%d]" % n * 1000 for n in range(5)]
    for record in records:
        crashed.append(record)
    # No seal, no close: the zeros written ahead are still there.
    (path,) = tmp_path.glob("seg-*.log")
    assert path.stat().st_size == 8 + len(records[0]) + PREALLOCATE
    restarted = Spool(tmp_path, max_bytes=1 << 30)
    (left,) = restarted.sealed()
    assert read_segment(left.path) == records


def test_a_sealed_segment_holds_its_records_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 30)
    spool.append(b"[1]")
    spool.append(b"[22]")
    segment = spool.seal()
    assert segment is not None
    assert segment.path.stat().st_size == spool.size == 8 + 3 + 8 + 4
    assert read_segment(segment.path) == [b"[1]", b"[22]"]


def test_zeros_ahead_stay_within_the_cap(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    spool.append(b"[1]")
    (path,) = tmp_path.glob("seg-*.log")
    assert path.stat().st_size == 100


def test_an_empty_record_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    with pytest.raises(ValueError, match="empty record"):
        spool.append(b"")
    assert spool.size == 0 and spool.seal() is None


def test_a_restart_replays_and_never_reuses_a_name(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=1 << 20)
    first.append(b"[1]")
    first.close()  # a crash: the open segment was never sealed
    second = Spool(tmp_path, max_bytes=1 << 20)
    (left,) = second.sealed()
    assert read_segment(left.path) == [b"[1]"]
    second.append(b"[2]")
    new = second.seal()
    assert new is not None and new.name > left.name


def test_written_segments_are_kept_a_while(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for n in range(KEEP_DONE + 3):
        spool.append(f"[{n}]".encode())
        segment = spool.seal()
        assert segment is not None
        spool.remove(segment)
    done = spool.done()
    assert len(done) == KEEP_DONE
    assert read_segment(done[-1]) == [f"[{KEEP_DONE + 2}]".encode()]
    assert spool.size == 0 and spool.sealed() == []


def test_the_cap_refuses_without_writing(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=32)
    spool.append(b"[" + b"1" * 10 + b"]")
    with pytest.raises(SpoolFull):
        spool.append(b"[" + b"2" * 20 + b"]")
    segment = spool.seal()
    assert segment is not None and read_segment(segment.path) == [b"[" + b"1" * 10 + b"]"]
