"""The set of event ids intake keeps (`ingest/eventids.pyx`), against a model: a list
of the ids held, oldest first, each once."""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.eventids import EventIds, packed_count


def packed(ids: list[bytes]) -> bytes:
    return b"".join(len(i).to_bytes(4, sys.byteorder) + i for i in ids)


# Few distinct ids, so that adds often repeat one held; some longer than a record holds.
IDS = st.one_of(
    st.binary(min_size=0, max_size=3),
    st.sampled_from([bytes([n]) * 28 for n in range(8)]),
    st.binary(min_size=33, max_size=80),
)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(IDS, max_size=40)),
        st.tuples(st.just("rollback"), st.integers(0, 50)),
        st.tuples(st.just("keep_newest"), st.integers(0, 60)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_the_set_holds_what_a_list_of_the_ids_would(operations: list[tuple[str, object]]) -> None:
    ids, model, first = EventIds(), [], 0  # `first`: the number of model[0]
    for name, argument in operations:
        if name == "add":
            assert isinstance(argument, list)
            mark = ids.added
            new = [i for i in dict.fromkeys(argument) if i not in model]
            assert [ids.add(i) for i in argument] == [
                i in new and i not in argument[:n] for n, i in enumerate(argument)
            ]
            model += new
            assert ids.since(mark) == packed(new)
            other = EventIds()
            other.add_packed(ids.since(mark))
            assert list(other) == new
            assert packed_count(ids.since(mark)) == len(new)
        elif name == "rollback":
            assert isinstance(argument, int)
            mark = max(first, ids.added - argument)
            ids.rollback(mark)
            del model[mark - first :]
        else:
            assert name == "keep_newest" and isinstance(argument, int)
            ids.keep_newest(argument)
            dropped = max(0, len(model) - argument)
            model, first = model[dropped:], first + dropped
        assert (ids.first, ids.added) == (first, first + len(model))
        assert list(ids) == model and len(ids) == len(model)
        assert all(i in ids for i in model)
        assert all(i not in ids for i in (b"x" * 28, b"", b"y" * 40) if i not in model)


def test_a_hundred_thousand_ids_come_and_go_as_intake_keeps_them() -> None:
    """Ray's ids (28 random bytes) at the collector's bound, through many growths of
    the ring and many removals from both ends."""
    ids, model = EventIds(), []
    for body in range(400):
        mark = ids.added
        fresh = [os.urandom(28) for _ in range(1000)]
        repeats = model[-300:] if body % 3 == 0 else []
        added = [ids.add(i) for i in fresh + repeats]
        assert added == [True] * len(fresh) + [False] * len(repeats)
        if body % 7 == 0:  # refused after all: taken back
            ids.rollback(mark)
        else:
            model += fresh
        ids.keep_newest(100_000)
        model = model[-100_000:]
    assert len(ids) == len(model) == 100_000
    assert list(ids) == model
    assert all(i in ids for i in model[::97])
    assert not any(os.urandom(28) in ids for _ in range(1000))


def test_marks_outside_the_ids_held_are_refused() -> None:
    ids = EventIds([b"a", b"b", b"c"])
    ids.keep_newest(1)
    with pytest.raises(ValueError, match="not within the ids held"):
        ids.since(1)
    with pytest.raises(ValueError, match="past the ids added"):
        ids.rollback(4)
    assert ids.since(3) == b"" and list(ids) == [b"c"]


@pytest.mark.parametrize("cut", [b"\x01", packed([b"abc"])[:-1]])
def test_packed_ids_cut_short_are_refused(cut: bytes) -> None:
    with pytest.raises(ValueError, match="packed ids cut short at byte 0"):
        EventIds().add_packed(cut)
    with pytest.raises(ValueError, match="cut short"):
        packed_count(cut)
