"""Intake beside the flusher: a POST that arrives while the flusher is behind waits for
it, a moment at most; a segment sealed while others are written keeps its rows; the
raw object compressed at intake is the one a segment read back from disk makes; a
segment is sealed at its bytes as well as at its events.

In-process: the collector and its HTTP server on a loopback port of the test's own event
loop, so the test decides when the flusher runs. Bodies are the Ray 2.60 capture's.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from ingest import collector as collector_module
from ingest import intake, rawfiles
from ingest.collector import Collector
from ingest.eventids import EventIds
from ingest.flush import rows_from_disk
from ingest.httpd import listening_socket
from ingest.intake import create_server
from ingest.parse import parse_body
from ingest.settings import add_arguments, config_from
from ingest.spool import Segment, Spool
from lake.store import Lake

from conftest import POSTS

T = TypeVar("T")
BODIES = [path.read_bytes() for path in sorted(POSTS.glob("*/post_*.json"))]
FLUSH_EVENTS = 100


def events(bodies: list[bytes]) -> int:
    return sum(len(parse_body(body).events) for body in bodies)


@contextlib.contextmanager
def collector(lake: Path, spool: Path, flush_events: int = FLUSH_EVENTS) -> Iterator[Collector]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--lake", str(lake), "--cluster", "demo", "--role", "worker", "--spool", str(spool),
         "--ray-root", str(spool / "no-ray"), "--flush-events", str(flush_events)]
    )  # fmt: skip
    made = Collector(config_from(args))
    try:
        yield made
    finally:
        made.spool.close()


@contextlib.contextmanager
def flusher(c: Collector) -> Iterator[None]:
    """A flusher thread as `raylake collect` runs one: it flushes when asked."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            if c.flush_wanted.wait(0.05):
                c.flush_wanted.clear()
                c.flush()

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.asynccontextmanager
async def client_of(c: Collector) -> AsyncIterator[httpx.AsyncClient]:
    server = create_server(c)
    sock = listening_socket("127.0.0.1", 0)
    serving = asyncio.create_task(server.serve(sock))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
            yield client
    finally:
        server.stop()
        await serving


async def post(client: httpx.AsyncClient, body: bytes) -> float:
    """POST a body; the seconds it took to be answered 200."""
    started = time.monotonic()
    answer = await client.post("/v1/events", content=body)
    assert answer.status_code == 200, answer.text
    return time.monotonic() - started


async def fill(c: Collector, client: httpx.AsyncClient) -> int:
    """POST bodies until the flusher is behind; how many were sent."""
    sent = 0
    while not c.flusher_behind():
        await post(client, BODIES[sent])
        sent += 1
    return sent


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Run a scenario on an event loop of its own thread: the session's Playwright (its
    sync API) keeps a loop running in the main thread, where `asyncio.run` refuses."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, scenario).result()


def sample(c: Collector, name: str) -> float:
    return c.metrics.registry.get_sample_value(name) or 0.0


def test_a_post_waits_for_the_flusher_and_its_rows_are_held(tmp_path: Path) -> None:
    async def scenario(c: Collector) -> None:
        async with client_of(c) as client:
            sent = await fill(c, client)
            waiting = asyncio.create_task(post(client, BODIES[sent]))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # held back while the flusher is behind
            with flusher(c):
                assert await asyncio.wait_for(waiting, intake.ROOM_WAIT_SECONDS) < 1.0
                for body in BODIES[sent + 1 :]:
                    await post(client, body)

    with collector(tmp_path / "lake", tmp_path / "spool") as c:
        run(scenario(c))
        c.flush()
        assert sample(c, "raylake_events_flushed_total") == events(BODIES)
        assert sample(c, "raylake_segments_reparsed_total") == 0  # every body parsed once
        assert sample(c, "raylake_intake_wait_seconds_count") >= 1


def test_a_flusher_that_does_not_come_delays_a_post_a_moment_only(tmp_path: Path) -> None:
    async def scenario(c: Collector) -> tuple[int, float]:
        async with client_of(c) as client:
            sent = await fill(c, client)
            return sent + 1, await post(client, BODIES[sent])

    with collector(tmp_path / "lake", tmp_path / "spool") as c:
        sent, waited = run(scenario(c))
        assert intake.ROOM_WAIT_SECONDS <= waited < intake.ROOM_WAIT_SECONDS + 1.0
        c.flush()  # the body taken after the wait is read back from the spool
        assert sample(c, "raylake_segments_reparsed_total") == 1
        assert sample(c, "raylake_events_flushed_total") == events(BODIES[:sent])


def test_while_the_lake_fails_nothing_waits(tmp_path: Path) -> None:
    async def scenario(c: Collector) -> list[float]:
        async with client_of(c) as client:
            await fill(c, client)
            assert not c.flush_due(time.monotonic())  # the lake cannot be written
            return [await post(client, body) for body in BODIES[-5:]]

    not_a_directory = tmp_path / "lake"
    not_a_directory.write_text("a file where the lake should be")
    with collector(not_a_directory, tmp_path / "spool") as c:
        assert max(run(scenario(c))) < intake.ROOM_WAIT_SECONDS / 2
        assert sample(c, "raylake_intake_wait_seconds_count") == 0


def test_a_segment_sealed_during_a_flush_keeps_its_rows_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing, go_on = threading.Event(), threading.Event()
    write_bytes = Lake.write_bytes

    def slow_write(lake: Lake, path: str, data: bytes) -> None:
        writing.set()
        go_on.wait()
        write_bytes(lake, path, data)

    async def scenario(c: Collector) -> None:
        async with client_of(c) as client:
            sent = await fill(c, client)
            flushing = threading.Thread(target=c.flush)
            flushing.start()
            assert await asyncio.to_thread(writing.wait, 10)
            # The flush holds the first segment; a second is sealed meanwhile.
            while not c.flusher_behind():
                await post(client, BODIES[sent])
                sent += 1
            go_on.set()
            await asyncio.to_thread(flushing.join)
            assert c.flusher_behind()  # the second segment's rows still wait for a flush

    monkeypatch.setattr(Lake, "write_bytes", slow_write)
    with collector(tmp_path / "lake", tmp_path / "spool") as c:
        run(scenario(c))
        c.flush()
        assert not c.flusher_behind()
        assert sample(c, "raylake_segments_reparsed_total") == 0


def test_a_segment_read_back_from_disk_makes_the_same_raw_object(tmp_path: Path) -> None:
    with collector(tmp_path / "lake", tmp_path / "spool") as c:
        for body in BODIES[:3]:  # compressed as they are taken
            c.accept(body)
        c.flush()
        (done,) = c.spool.done()
    lake = Lake(str(tmp_path / "lake"))
    (raw,) = lake.list_files("raw", ".jsonl.zst")
    again = rows_from_disk(Segment(0, 0, done), EventIds())
    (frames,) = again.raw.values()
    stored = lake.read_bytes(raw)
    assert rawfiles.lines(frames) == stored
    lines = rawfiles.decompress(raw, stored).split(b"\n")
    assert [parse_body(line) for line in lines[:-1]] == [parse_body(b) for b in BODIES[:3]]


def test_a_spool_of_plain_bodies_is_read_as_one_of_frames(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 30)  # as collectors before frames
    for body in BODIES[:3]:
        spool.append(body)
    segment = spool.seal()
    assert segment is not None
    from_plain = rows_from_disk(segment, EventIds())
    (frames,) = from_plain.raw.values()
    assert frames == [rawfiles.line_frame(body) for body in BODIES[:3]]
    assert from_plain.events == events(BODIES[:3])


def test_a_segment_is_sealed_at_its_bytes_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = max(BODIES, key=len)
    monkeypatch.setattr(collector_module, "SEGMENT_BYTES", len(big))
    # Events alone would not seal it.
    with collector(tmp_path / "lake", tmp_path / "spool", flush_events=1_000_000) as c:
        c.accept(BODIES[0])
        assert not c.spool.sealed()
        c.accept(big)
        assert len(c.spool.sealed()) == 1
        assert c.flusher_behind()  # its rows are one segment's worth: bodies wait
        c.flush()
        assert not c.flusher_behind()
