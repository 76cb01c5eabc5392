"""`raylake collect` as a process: the HTTP intake, a flusher thread, and a drain on
SIGTERM/SIGINT (new bodies get 503 at once; everything spooled is written to the lake;
then the server stops and the process exits 0, or 1 if the lake could not take it all
before the deadline; the spool keeps it for the next start). A second signal stops
at once.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import signal
import threading
import time

import uvloop

from ingest.collector import Collector
from ingest.httpd import listening_socket
from ingest.intake import create_server
from ingest.settings import CollectorConfig

log = logging.getLogger("raylake.collector")

DRAIN_SECONDS = 20.0  # Kubernetes waits 30 s by default before SIGKILL
FULL_COLLECTION_SECONDS = 600.0
_M_ARENA_MAX = -8  # glibc's malloc.h


def _two_malloc_arenas() -> None:
    """The sidecar runs under a 256 MiB limit, and glibc gives each thread that allocates
    an arena of its own, where freed memory stays resident: two arenas do (the flusher,
    log and snapshot threads start after this)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc: its own allocator's defaults
        pass


def run(config: CollectorConfig) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _two_malloc_arenas()
    # The rows held between flushes form no cycles: refcounting frees them. Automatic
    # cyclic collection would only rescan them all, again and again; one collection
    # of what is new after each flush catches whatever cycles the libraries make.
    gc.disable()
    try:
        sock = listening_socket(config.host, config.port)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", config.host, config.port, exc)
        return 1
    collector = Collector(config)
    exit_signal = threading.Event()
    server = create_server(collector)
    # What exists now (modules, the app) lives as long as the process: the collections
    # after each flush need not scan it again.
    gc.freeze()
    drained = threading.Event()
    outcome = {"complete": True}

    next_full_collection = time.monotonic() + FULL_COLLECTION_SECONDS

    def collect_cycles(now: float) -> None:
        # The young generations only: the old one holds the sets of recent event ids
        # (hundreds of thousands of entries), which a full collection walks for nothing:
        # at a steady 20,000 events/s, 7% of the collector's CPU, 1% now (perf).
        nonlocal next_full_collection
        if now < next_full_collection:
            gc.collect(1)
            return
        gc.collect()  # the rare cycle that lived through a flush, then died
        next_full_collection = now + FULL_COLLECTION_SECONDS

    def flush_loop() -> None:
        # Segments left by an earlier run go first.
        collector.flush_due(time.monotonic())
        while not exit_signal.is_set():
            collector.flush_wanted.wait(config.flush_interval)
            collector.flush_wanted.clear()
            now = time.monotonic()
            if not exit_signal.is_set() and collector.ready_for_attempt(now):
                collector.flush_due(now)
                collect_cycles(now)
        collector.draining = True  # 503 from here on
        if config.role == "head":
            collector.snapshot()  # the jobs' final status
        outcome["complete"] = collector.drain(time.monotonic() + DRAIN_SECONDS)
        log.info("drained: %s", "complete" if outcome["complete"] else "spool kept")
        drained.set()
        server.stop()

    def begin_drain() -> None:
        exit_signal.set()
        collector.draining = True  # 503 from here on
        collector.flush_wanted.set()  # the flusher drains now, not at its next interval

    def poll_loop() -> None:
        while not exit_signal.is_set():
            collector.snapshot()
            exit_signal.wait(config.poll_interval)

    def log_loop() -> None:
        while not exit_signal.wait(config.log_interval):
            collector.tail_exports()
            collector.ship_logs()

    threading.Thread(target=flush_loop, name="flusher", daemon=True).start()
    threading.Thread(target=log_loop, name="logs", daemon=True).start()
    if config.role == "head":
        threading.Thread(target=poll_loop, name="snapshots", daemon=True).start()

    async def serve() -> None:
        def on_signal() -> None:
            if exit_signal.is_set():
                server.stop()  # asked twice: stop now
            begin_drain()

        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, on_signal)
        await server.serve(sock)

    log.info("collecting on %s:%s into %s", config.host, config.port, config.lake)
    uvloop.run(serve())  # libuv's loop: less CPU per request than asyncio's own
    begin_drain()
    drained.wait(DRAIN_SECONDS + 5)
    return 0 if outcome["complete"] else 1
