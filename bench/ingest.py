"""Ingest benchmark: JSON -> Arrow conversion speed, end-to-end ingest, peak memory.

    .venv/bin/python bench/ingest.py                 # 1,000,000 synthetic events
    .venv/bin/python bench/ingest.py --quick         # 100,000 events, a smoke run
    .venv/bin/python bench/ingest.py --events 3000000 --repeat 7 --keep /tmp/raylake-bench
    .venv/bin/python bench/ingest.py --compare /tmp/raylake-collector/input/posts

1. Generates the input (`bench/synthetic.py`): clones of the bundled Ray 2.60 capture
   with fresh ids and shifted times, as POST bodies of 30-1000 events in `.json` files
   (and some `.jsonl.gz`), streamed to a temporary directory.
2. Conversion: `take` + `to_table` over a fixed sample of those bodies (one batch, as
   `ingest_paths` converts it, with the cyclic GC paused as `ingest_sources` pauses
   it), in this process, `--repeat` times after one warm-up run; with how many bodies
   `take`'s fast path left to the exact path (`parse_body` + `normalize`). Speed is
   events per CPU second (`time.process_time`, i.e. per core) and per wall second;
   the medians are compared with the target of 150,000 events/s per core.
3. End-to-end: `ingest_paths` over the whole input into a fresh local lake, in a child
   process (`sys.executable`), so that its peak RSS excludes the generator and the
   conversion runs. The peak compared with the target of < 500 MB is the child's own
   VmHWM (the kernel's high-water mark of the ingest's address space): `ru_maxrss`
   is printed too, but Linux carries into it the RSS the child had before `exec`,
   when it was still a fork of this (large) process.

`--compare DIR` instead times `take` against the exact path (`parse_body` + `normalize`)
on the `.json` bodies of DIR, all taken into one set of columns: CPU microseconds per
event, best of `--repeat`.

It only prints; nothing is asserted. With `--keep DIR` the input (`DIR/input`, reused
when generated with the same settings) and the lake (`DIR/lake`, rebuilt every run)
stay on disk; otherwise both live in a temporary directory that is removed.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `python bench/ingest.py` puts bench/ first on sys.path, where this very file would
# shadow the `ingest` package: resolve imports from the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from contextlib import AbstractContextManager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import msgspec  # noqa: E402
import pyarrow as pa  # noqa: E402

import ingest.load  # noqa: E402
from bench import synthetic  # noqa: E402
from bench.report import count, load_average  # noqa: E402
from ingest.eventids import EventIds  # noqa: E402
from ingest.load import BATCH_EVENTS, read_bodies  # noqa: E402
from ingest.normalize import EventColumns, normalize, take  # noqa: E402
from ingest.parse import parse_body  # noqa: E402

TARGET_EVENTS_PER_CORE = 150_000
TARGET_RSS_BYTES = 500 * 1000 * 1000  # 500 MB
QUICK_EVENTS = 100_000
CLUSTER = ("bench", "synthetic")
RESULT = "RESULT "


# ---------------------------------------------------------------------------------------
# Conversion: JSON bodies -> Arrow tables, in this process.


@dataclass
class Run:
    events: int
    rows: int
    wall: float
    cpu: float
    take: float
    to_table: float
    fallbacks: int

    @property
    def cpu_rate(self) -> float:
        return self.events / self.cpu

    @property
    def wall_rate(self) -> float:
        return self.events / self.wall


def load_sample(files: Sequence[Path], events: int) -> tuple[list[bytes], int]:
    """The first bodies of the input, in ingest order, holding at least `events` events."""
    decoder = msgspec.json.Decoder(list[msgspec.Raw])
    bodies: list[bytes] = []
    count = 0
    for path in files:
        for body in read_bodies(path):
            bodies.append(body)
            count += len(decoder.decode(body))
        if count >= events:
            break
    return bodies, count


def gc_during_ingest() -> Callable[[], AbstractContextManager[Any]]:
    """How `ingest_sources` treats the cyclic GC around a batch (its `paused_gc`, when it
    has one), so the conversion is measured the way ingest runs it."""
    paused = getattr(ingest.load, "paused_gc", None)
    return paused if callable(paused) else contextlib.nullcontext


def convert(bodies: Sequence[bytes]) -> Run:
    """One batch through take + to_table, timed stage by stage."""
    gc.collect()
    with gc_during_ingest()():
        return _convert(bodies)


def _convert(bodies: Sequence[bytes]) -> Run:
    clock = time.process_time
    seen = EventIds()
    columns = EventColumns()
    events = 0
    wall0, cpu0 = time.perf_counter(), clock()
    for body in bodies:
        events += take(body, seen, columns).events
    take_cpu = clock() - cpu0
    a = clock()
    tables = [data for _, data in columns.tables("bench")]
    to_table_cpu = clock() - a
    cpu, wall = clock() - cpu0, time.perf_counter() - wall0
    return Run(
        events,
        sum(t.num_rows for t in tables),
        wall,
        cpu,
        take_cpu,
        to_table_cpu,
        columns.fallbacks,
    )


def compare(directory: Path, repeat: int) -> None:
    """`take` against the exact path on recorded bodies: CPU us/event, best of `repeat`."""
    bodies = [path.read_bytes() for path in sorted(directory.glob("*.json"))]

    def exact() -> tuple[int, int]:
        columns, seen, events = EventColumns(), EventIds(), 0
        for body in bodies:
            parsed = parse_body(body)
            normalize(parsed, seen, columns)
            events += len(parsed.events)
        return events, 0

    def fast() -> tuple[int, int]:
        columns, seen, events = EventColumns(), EventIds(), 0
        for body in bodies:
            events += take(body, seen, columns).events
        return events, columns.fallbacks

    best: dict[str, float] = {}
    for name, run in (("parse_body + normalize", exact), ("take", fast)):
        for _ in range(repeat):
            gc.collect()
            with gc_during_ingest()():
                start = time.process_time()
                events, fallbacks = run()
                seconds = time.process_time() - start
            best[name] = min(best.get(name, seconds), seconds)
        note = f"; {fallbacks} of {len(bodies)} bodies left to the exact path" if fallbacks else ""
        print(f"  {name:>22}: {1e6 * best[name] / events:.2f} us/event (CPU){note}")
    print(f"  take is {best['parse_body + normalize'] / best['take']:.2f}x as fast")


def profile_conversion(bodies: Sequence[bytes], top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    convert(bodies)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# ---------------------------------------------------------------------------------------
# End-to-end: ingest_paths in a child process.


def _rss_now() -> int:
    """Current resident set size in bytes (Linux), else 0."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _vm_hwm() -> int | None:
    """Peak RSS of this process image (Linux `VmHWM`), in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def child(input_dir: Path, lake_dir: Path, batch_events: int) -> int:
    """Run by the parent through `sys.executable`: ingest, then print one RESULT line."""
    from ingest.load import ingest_paths, input_files
    from lake.layout import ClusterKey
    from lake.store import Lake

    files = input_files([input_dir])
    marks = {max(1, round(len(files) * q / 4)): q * 25 for q in (1, 2, 3, 4)}
    rss: list[tuple[int, int]] = []
    done = 0

    def on_file(path: Path) -> None:
        nonlocal done
        done += 1
        if done in marks:
            rss.append((marks[done], _rss_now()))
            print(f"  .. {marks[done]}% of files ingested", file=sys.stderr, flush=True)

    lake = Lake(str(lake_dir), create=True)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    report = ingest_paths(
        lake, ClusterKey(*CLUSTER), [input_dir], on_file=on_file, batch_events=batch_events
    )
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    result = {
        "wall": wall,
        "cpu": cpu,
        "files": report.files,
        "bodies": report.bodies,
        "events": sum(report.events_by_type.values()),
        "parts": report.parts if isinstance(report.parts, int) else len(report.parts),
        "raw_bytes": report.raw_bytes,
        "rejected": report.rejected[:5],
        "rejected_count": len(report.rejected),
        "sessions": len(report.sessions),
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "vm_hwm": _vm_hwm(),
        "rss_by_progress": rss,
    }
    print(RESULT + json.dumps(result), flush=True)
    return 0


def end_to_end(input_dir: Path, lake_dir: Path, batch_events: int) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(input_dir),
        str(lake_dir),
        "--batch-events",
        str(batch_events),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    process_wall = time.perf_counter() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        sys.stdout.write(done.stdout)
        raise SystemExit(f"end-to-end child failed (exit status {done.returncode})")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT) :])
    result["process_wall"] = process_wall
    result["process_cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    result["children_maxrss"] = after.ru_maxrss * 1024
    result["events_bytes"] = _tree_bytes(lake_dir / "events")
    result["lake_bytes"] = _tree_bytes(lake_dir)
    return result


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------
# Work directories.


def fresh_lake(directory: Path) -> Path:
    if directory.exists():
        if any(directory.iterdir()) and not (directory / "_lake.json").is_file():
            raise SystemExit(f"{directory} exists and is not a lake; not touching it")
        shutil.rmtree(directory)
    return directory


# ---------------------------------------------------------------------------------------
# Output.


def _mb(value: float) -> str:
    return f"{value / 1e6:,.1f} MB"


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def versions() -> str:
    return (
        f"Python {platform.python_version()}, pyarrow {pa.__version__}, "
        f"msgspec {msgspec.__version__}, {os.cpu_count()} cores ({platform.machine()})"
    )


def print_input(manifest: synthetic.Manifest, reused: bool, where: Path) -> None:
    m = manifest
    how = "reused" if reused else f"generated in {m.seconds:.1f} s"
    print(
        f"input: {count(m.events)} events in {count(m.bodies)} bodies "
        f"(mean {m.events / m.bodies:.0f} events/body), {count(m.files)} files "
        f"({count(m.json_files)} .json, {count(m.jsonl_gz_files)} .jsonl.gz), "
        f"{_mb(m.body_bytes)} of JSON, {_mb(m.bytes_on_disk)} on disk; "
        f"{m.replicas} replicas of the capture; {how}"
    )
    print(f"  at {where}")
    capture = synthetic.capture_mix()
    total = sum(capture.values())
    mix = ", ".join(
        f"{name.removesuffix('_EVENT').lower()} {_pct(count, m.events)} "
        f"({_pct(capture.get(name, 0), total)})"
        for name, count in m.events_by_type.items()
    )
    print(f"  type mix (capture's in parentheses): {mix}")


def gc_note() -> str:
    if gc_during_ingest() is contextlib.nullcontext:
        return "enabled (as in ingest)"
    return "paused (as ingest_sources pauses it)"


def print_conversion(runs: list[Run], bodies: int) -> float:
    first = runs[0]
    print(
        f"JSON -> Arrow (take + to_table), one process, sample of "
        f"{count(first.events)} events in {bodies} bodies -> {count(first.rows)} rows, "
        f"{len(runs)} runs after a warm-up, cyclic GC {gc_note()}:"
    )
    for i, run in enumerate(runs, 1):
        print(
            f"  run {i}: CPU {run.cpu:6.3f} s = {count(run.cpu_rate):>9} events/s per core; "
            f"wall {run.wall:6.3f} s = {count(run.wall_rate):>9} events/s"
        )
    cpu_rate = statistics.median(r.cpu_rate for r in runs)
    wall_rate = statistics.median(r.wall_rate for r in runs)
    stages = {
        name: statistics.median(getattr(r, name) for r in runs) for name in ("take", "to_table")
    }
    total = sum(stages.values())
    print(
        f"  median: {count(cpu_rate)} events/s per core (CPU time), "
        f"{count(wall_rate)} events/s wall"
    )
    print(
        "  median CPU by stage: "
        + ", ".join(
            f"{name} {seconds:.3f} s ({_pct(seconds, total)}, "
            f"{count(first.events / seconds)} events/s alone)"
            for name, seconds in stages.items()
        )
    )
    take_us = 1e6 * stages["take"] / first.events
    print(
        f"  take: {take_us:.2f} us/event (parse, check, fill); "
        f"{first.fallbacks} of {bodies} bodies left to the exact path"
    )
    return cpu_rate


def print_end_to_end(e: dict[str, Any], manifest: synthetic.Manifest, batch_events: int) -> int:
    print(
        f"end-to-end ingest_paths (child process, fresh local lake, "
        f"batch_events={count(batch_events)}):"
    )
    print(
        f"  {count(e['events'])} events, {count(e['bodies'])} bodies, {count(e['files'])} files "
        f"in {e['wall']:.1f} s wall = {count(e['events'] / e['wall'])} events/s "
        f"(CPU {e['cpu']:.1f} s = {count(e['events'] / e['cpu'])} events/s per core; "
        f"child process {e['process_wall']:.1f} s wall with start-up)"
    )
    print(
        f"  wrote {e['parts']} Parquet parts, {_mb(e['events_bytes'])} under events/, "
        f"{_mb(e['raw_bytes'])} of zstd bodies under raw/, {_mb(e['lake_bytes'])} lake total"
    )
    if e["rejected_count"] or e["events"] != manifest.events:
        print(
            f"  WARNING: {e['rejected_count']} files rejected, "
            f"{count(e['events'])} of {count(manifest.events)} events ingested: {e['rejected']}"
        )
    peak = int(e["vm_hwm"] or e["ru_maxrss"])
    by_progress = ", ".join(f"{pct}%: {_mb(rss)}" for pct, rss in e["rss_by_progress"])
    print(
        f"  peak RSS of the child: VmHWM {_mb(peak)} "
        f"(ru_maxrss {_mb(int(e['ru_maxrss']))} counts the fork before exec)"
    )
    print(f"  RSS after each quarter of the files: {by_progress}")
    return peak


def print_summary(cpu_rate: float, e: dict[str, Any], peak: int) -> None:
    print("summary (medians; ratio = measured / target):")
    ratio = cpu_rate / TARGET_EVENTS_PER_CORE
    verdict = "meets" if ratio >= 1 else "BELOW"
    print(
        f"  JSON -> Arrow    {count(cpu_rate):>10} events/s per core   target >= "
        f"{count(TARGET_EVENTS_PER_CORE)}   ratio {ratio:.2f}x  {verdict}"
    )
    print(
        f"  end-to-end       {count(e['events'] / e['wall']):>10} events/s (wall)     "
        f"{count(e['events'] / e['cpu'])} events/s per core (CPU)"
    )
    ratio = peak / TARGET_RSS_BYTES
    verdict = "meets" if ratio < 1 else "OVER"
    print(
        f"  peak RSS         {_mb(peak):>13}             target <  "
        f"{_mb(TARGET_RSS_BYTES)}    ratio {ratio:.2f}x  {verdict}"
    )


# ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, help="synthetic events (default 1,000,000)")
    parser.add_argument("--repeat", type=int, help="conversion runs (default 5)")
    parser.add_argument(
        "--sample", type=int, help="events in the conversion sample (default 100,000)"
    )
    parser.add_argument("--quick", action="store_true", help="100,000 events, 3 runs")
    parser.add_argument("--keep", type=Path, help="keep input and lake in this directory")
    parser.add_argument("--seed", type=int, default=synthetic.Spec.seed)
    parser.add_argument("--batch-events", type=int, default=BATCH_EVENTS)
    parser.add_argument(
        "--profile", type=int, metavar="N", default=0, help="cProfile one conversion run"
    )
    parser.add_argument(
        "--compare", type=Path, metavar="DIR", help="take vs the exact path on DIR/*.json"
    )
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    if args.events is None:
        args.events = QUICK_EVENTS if quick else 1_000_000
    if args.repeat is None:
        args.repeat = 3 if quick else 5
    if args.sample is None:
        args.sample = 50_000 if quick else 100_000
    args.sample = min(args.sample, args.events)
    if args.events <= 0 or args.repeat <= 0 or args.sample <= 0:
        parser.error("--events, --repeat and --sample must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        input_dir, lake_dir = args.child
        return child(input_dir, lake_dir, args.batch_events)
    if args.compare:
        print(f"take vs the exact path on {args.compare}: {versions()}; {load_average()}")
        compare(args.compare, args.repeat)
        return 0
    # The child's progress goes to stderr: keep this process's lines in order with it.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"raylake ingest benchmark: {versions()}; {load_average()}")
    spec = synthetic.Spec(events=args.events, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="raylake-bench-") as temporary:
        work = args.keep.resolve() if args.keep else Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        manifest, reused = synthetic.prepare(work / "input", spec)
        posts = synthetic.posts_dir(work / "input")
        print_input(manifest, reused, posts)

        bodies, _ = load_sample(synthetic.input_files(work / "input"), args.sample)
        convert(bodies)  # warm-up
        runs = [convert(bodies) for _ in range(args.repeat)]
        cpu_rate = print_conversion(runs, len(bodies))
        if args.profile:
            print(profile_conversion(bodies, args.profile))
        del bodies, runs
        gc.collect()

        lake = fresh_lake(work / "lake")
        print(f"end-to-end ingest starting; {load_average()}")
        e = end_to_end(posts, lake, args.batch_events)
        peak = print_end_to_end(e, manifest, args.batch_events)
        print_summary(cpu_rate, e, peak)
        if args.keep:
            print(f"kept input and lake in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
