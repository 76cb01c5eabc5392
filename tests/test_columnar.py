"""The compiled column builders (`ingest/columnar.pyx`) on their own."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.columnar import (
    HEX,
    INT,
    PAYLOAD,
    STR,
    Column,
    TableBuilder,
    pooled_memory,
    ray_time_ns,
)
from lake.schemas import TIME


def arrow_ns(text: str) -> int | None:
    """The nanoseconds Arrow reads in a time, or None when it refuses it."""
    try:
        value: int = pa.array([text], pa.string()).cast(TIME).cast(pa.int64())[0].as_py()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return value


def ray_time(moment: dt.datetime, fraction: str) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


MOMENTS = st.datetimes(min_value=dt.datetime(1678, 1, 1), max_value=dt.datetime(2261, 12, 31))
FRACTIONS = st.text("0123456789", max_size=9)


@settings(max_examples=500)
@given(moment=MOMENTS, fraction=FRACTIONS)
def test_times_as_ray_prints_them_are_read_as_arrow_reads_them(
    moment: dt.datetime, fraction: str
) -> None:
    text = ray_time(moment, fraction)
    assert ray_time_ns(text) is not None
    assert ray_time_ns(text) == arrow_ns(text)


@settings(max_examples=3000)
@given(
    moment=MOMENTS,
    fraction=FRACTIONS,
    edits=st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from("0123456789-:TZ .+x9")), max_size=3
    ),
    cut=st.integers(0, 40),
)
def test_a_time_read_without_arrow_is_always_read_as_arrow_reads_it(
    moment: dt.datetime, fraction: str, edits: list[tuple[int, str]], cut: int
) -> None:
    """Near misses of Ray's form (digits swapped, separators changed, cut short, out of
    range: 2026-02-30, 25:00, the year 9999) are never read without Arrow unless Arrow
    reads them the same."""
    text = list(ray_time(moment, fraction))
    for position, char in edits:
        if position < len(text):
            text[position] = char
    mutated = "".join(text)[: max(cut, 1)] if cut < 30 else "".join(text)
    if ray_time_ns(mutated) is not None:
        assert ray_time_ns(mutated) == arrow_ns(mutated), mutated


def test_out_of_range_days_and_years_are_left_to_arrow() -> None:
    for text in [
        "2026-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "1677-01-01T00:00:00Z",
        "2262-06-01T00:00:00Z",
        "2026-11-21T20:42:48.1234567890Z",
        "2026-11-21T20:42:48.Z",
        "2026-11-21T20:42:60Z",
        "2026-11-21 20:42:48Z",
        "2026-11-21T20:42:48+00:00",
    ]:
        assert ray_time_ns(text) is None, text
    assert ray_time_ns("2024-02-29T23:59:59.999999999Z") == 1709251199999999999


class Struct(msgspec.Struct):
    task_id: bytes
    attempt: int
    name: str


class Slotted:
    __slots__ = ("attempt", "name", "task_id")

    def __init__(self, task_id: bytes, attempt: int, name: str) -> None:
        self.task_id, self.attempt, self.name = task_id, attempt, name


class Plain:
    def __init__(self, task_id: bytes, attempt: int, name: str) -> None:
        self.task_id, self.attempt, self.name = task_id, attempt, name


class Computed:
    """Attributes that are no slot at all: read through getattr."""

    def __getattr__(self, name: str) -> Any:
        return {"task_id": b"\x0a\xff", "attempt": 7, "name": "computed"}[name]


class Event:
    def __init__(self, payload: Any) -> None:
        self.payload = payload


def builder() -> TableBuilder:
    return TableBuilder(
        "test",
        "payload",
        [
            Column("task_id", HEX, PAYLOAD, [("task_id",)]),
            Column("attempt", INT, PAYLOAD, [("attempt",)]),
            Column("name", STR, PAYLOAD, [("name",)]),
        ],
    )


def test_values_are_read_alike_from_objects_of_any_kind_in_any_order() -> None:
    """Each path step remembers the slot of the type it met last: objects of other
    types in between (another slot layout, a __dict__, __getattr__) must not confuse it."""
    kinds = [Struct, Slotted, Plain]
    table = builder()
    expected = []
    for i in range(30):
        kind = kinds[(i * 7) % 3]
        task_id = bytes([i, 0xFF, 0]) if i % 5 else b"\xff\xff"
        table.add(Event(kind(task_id, i, f"task-{i}")))
        expected.append((None if i % 5 == 0 else task_id.hex(), i, f"task-{i}"))
        if i % 10 == 9:
            table.add(Event(Computed()))
            expected.append(("0aff", 7, "computed"))
    columns = table.event_columns
    found = list(
        zip(
            columns[0].array(pa.string()).to_pylist(),
            columns[1].array(pa.int64()).to_pylist(),
            columns[2].array(pa.string()).to_pylist(),
            strict=True,
        )
    )
    assert found == expected


def test_rollback_forgets_exactly_what_came_after_the_mark() -> None:
    table = builder()
    for i in range(5):
        table.add(Event(Struct(bytes([i + 1]), i, "é" * i)))
    mark = table.mark()
    for i in range(5, 9):
        table.add(Event(Struct(b"", i, "x" * i)))
    table.rollback(mark)
    table.add(Event(Struct(b"\x09", 9, "last")))
    names = table.event_columns[2].array(pa.string()).to_pylist()
    assert names == ["", "é", "éé", "ééé", "éééé", "last"]
    assert table.event_columns[1].array(pa.int64(), 4).to_pylist() == [4, 9]
    assert table.event_columns[0].array(pa.string()).to_pylist()[-1] == "09"
    assert table.counts_array().tolist() == [1] * 6


def test_a_given_array_owns_the_values_and_leaves_the_column_empty() -> None:
    table = builder()
    for i in range(50):
        table.add(Event(Struct(bytes([i]) if i % 3 else b"", i, f"task-{i}" * (i % 4))))
    types = [pa.string(), pa.int64(), pa.string()]
    copied = [c.array(t) for c, t in zip(table.event_columns, types, strict=True)]
    given = [c.give_array(t) for c, t in zip(table.event_columns, types, strict=True)]
    assert [c.length for c in table.event_columns] == [0, 0, 0]
    table.add(Event(Struct(b"\x01", 1, "again")))  # the column is usable again
    del table  # the arrays keep the memory they were given
    for array in given:
        array.validate(full=True)
    assert [a.to_pylist() for a in given] == [a.to_pylist() for a in copied]
    assert given[0].null_count == 17


def test_nulls_rolled_back_are_not_counted_in_the_given_array() -> None:
    table = builder()
    table.add(Event(Struct(b"\x01", 1, "kept")))
    mark = table.mark()
    table.add(Event(Struct(b"", 2, "gone")))  # a null id
    table.rollback(mark)
    ids = table.event_columns[0].give_array(pa.string())
    ids.validate(full=True)
    assert (ids.to_pylist(), ids.null_count, ids.buffers()[0]) == (["01"], 0, None)
    table.add(Event(Struct(b"", 3, "null again")))
    assert table.event_columns[0].give_array(pa.string()).to_pylist() == [None]


def test_columns_past_a_mebibyte_grow_and_are_given_whole() -> None:
    """Past 1 MiB a buffer is mapped pages of its own, grown by mremap."""
    table = builder()
    names = [f"task-{i:07d}-" + "x" * (i % 17) for i in range(200_000)]
    for i, name in enumerate(names):
        table.add(Event(Struct(i.to_bytes(4, "big"), i, name)))
    mark = table.mark()
    table.add(Event(Struct(b"\x00", -1, "rolled back")))
    table.rollback(mark)
    types = [pa.string(), pa.int64(), pa.string()]
    given = [c.give_array(t) for c, t in zip(table.event_columns, types, strict=True)]
    del table
    for array in given:
        array.validate(full=True)
    assert given[2].to_pylist() == names
    assert given[1].to_pylist() == list(range(200_000))
    assert given[0][123_456].as_py() == (123_456).to_bytes(4, "big").hex()


def test_a_written_segments_mapped_buffers_are_kept_for_the_next() -> None:
    """Freed mapped buffers go to a bounded pool; the next columns of their size reuse
    them (no page faulted in afresh) and read back exactly what was written."""
    types = [pa.string(), pa.int64(), pa.string()]

    def segment(first: int) -> list[pa.Array]:
        table = builder()
        for i in range(first, first + 200_000):
            table.add(Event(Struct(i.to_bytes(4, "big"), i, f"task-{i:07d}")))
        return [c.give_array(t) for c, t in zip(table.event_columns, types, strict=True)]

    written = segment(0)
    addresses = {buffer.address for array in written for buffer in array.buffers() if buffer}
    before, _ = pooled_memory()
    del written  # the arrays go: their mapped buffers stay for the next segment
    held, regions = pooled_memory()
    assert held > before and regions >= 3
    again = segment(1_000_000)
    reused = {buffer.address for array in again for buffer in array.buffers() if buffer}
    assert addresses & reused
    assert pooled_memory()[0] < held
    for array in again:
        array.validate(full=True)
    assert again[1].to_pylist() == list(range(1_000_000, 1_200_000))
    assert again[2][5].as_py() == "task-1000005"
    assert again[0][7].as_py() == (1_000_007).to_bytes(4, "big").hex()


def test_the_pool_of_mapped_buffers_is_bounded() -> None:
    kept = []
    for _ in range(12):  # 12 segments' columns alive at once, then all let go
        table = builder()
        for i in range(300_000):
            table.add(Event(Struct(i.to_bytes(8, "big"), i, "a name of some length")))
        kept.append([c.give_array(pa.string()) for c in table.event_columns[::2]])
    del kept
    held, regions = pooled_memory()
    assert held <= 32 << 20 and regions <= 512
