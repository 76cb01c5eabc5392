"""Synthetic Ray event input, cloned from the bundled Ray 2.60 capture.

The capture (`tests/fixtures/ray-2.60-scenario-a/posts`, 1,469 events of 12 types in 49
POST bodies) is replayed as many times as needed ("replicas"). Each replica is the same
workload run again on the same long-lived cluster and session:

- every event gets a fresh, unique `eventId`;
- task, actor, worker and placement-group ids get fresh unique parts, consistently
  within the replica (a task's definition, lifecycle and profile events still agree,
  and so do ids spelled in hex inside strings: log file names, profile `extraData`,
  resource names, node labels);
- job ids are renumbered (replica r runs jobs r*J+1 ..), so the job part embedded in
  task, actor and driver ids follows;
- the capture's head node stays the head; its worker node becomes one of
  `worker_nodes` synthetic worker nodes, round robin. Node definition / lifecycle
  events are emitted only by the first replica that uses a node;
- every time (RFC 3339 strings, nanosecond and millisecond integers) is shifted by
  `r * stride_s` seconds, so replicas overlap like concurrent jobs.

Events are cut into POST bodies per emitting node, in the capture's arrival order, with
log-uniform sizes between `min_body` and `max_body` events (Ray's aggregator sends a few
dozen to about a thousand events per POST). Most bodies are written one per `.json`
file, exactly as Ray POSTs them; a share goes into `.jsonl.gz` files holding several
bodies, one per line (the archived form `raylake ingest` also reads).

Generation streams: each replica is rendered from pre-compiled string templates and
written body by body, so memory stays flat whatever the number of events.

    from bench.synthetic import generate
    manifest = generate(Path("/tmp/input"), events=1_000_000)
"""

from __future__ import annotations

import base64
import binascii
import calendar
import gzip
import json
import math
import random
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "tests" / "fixtures" / "ray-2.60-scenario-a" / "posts"
MANIFEST = "manifest.json"
POSTS = "posts"
GENERATOR_VERSION = 1

# Fields whose value is a Ray id (protobuf `bytes`, base64 on the wire).
_ID_KEYS = frozenset(
    {
        "eventId",
        "nodeId",
        "taskId",
        "jobId",
        "parentTaskId",
        "placementGroupId",
        "actorId",
        "workerId",
        "componentId",
        "driverNodeId",
        "parentId",
        "ownerId",
        "creatorJobId",
        "creatorActorId",
        "softTargetNodeId",
    }
)
_RFC3339_KEYS = frozenset({"timestamp", "startTimestamp"})
_NS_KEYS = frozenset({"startTime", "endTime", "creationRequestReceivedNs"})
_MS_KEYS = frozenset({"workerLaunchTimeMs", "workerLaunchedTimeMs", "startTimeMs", "endTimeMs"})
_NODE_EVENTS = frozenset({"NODE_DEFINITION_EVENT", "NODE_LIFECYCLE_EVENT"})

_HEX = re.compile(r"[0-9a-f]{32,56}")
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")
_JOB_BYTES = 4
_NS = 1_000_000_000


@dataclass(frozen=True)
class Spec:
    """What to generate. Same spec, same bytes."""

    events: int = 1_000_000
    seed: int = 2060
    min_body: int = 30
    max_body: int = 1000
    jsonl_share: float = 0.1
    """Share of bodies written into `.jsonl.gz` files (several bodies per file)."""
    stride_s: float = 6.0
    """Time shift between consecutive replicas (the capture spans about 48 s)."""
    worker_nodes: int = 4
    version: int = GENERATOR_VERSION


@dataclass
class Manifest:
    spec: Spec
    events: int = 0
    bodies: int = 0
    files: int = 0
    json_files: int = 0
    jsonl_gz_files: int = 0
    bytes_on_disk: int = 0
    body_bytes: int = 0
    replicas: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["spec"] = Spec(**data["spec"])
        return cls(**data)


# ---------------------------------------------------------------------------------------
# Templates: each captured event becomes a format string whose fields index one list of
# per-replica values ("{0[17]}"), so rendering an event is one C-level str.format call.


@dataclass(frozen=True)
class _Template:
    fmt: str
    event_type: str
    emitter: bytes
    """The capture's node that sent the event (top-level `nodeId`)."""
    node_event_of: bytes | None
    """For NODE_* events: the node they describe (emitted once per synthetic node)."""


@dataclass
class _Compiled:
    templates: list[_Template]
    slots: list[tuple[str, Any]]
    """(kind, payload) of every field the templates reference, by index."""
    head: bytes
    nodes: frozenset[bytes]
    jobs_per_replica: int
    span_ns: int


class _Compiler:
    def __init__(self, known_ids: dict[str, bytes]):
        self.known_ids = known_ids  # hex -> raw id, for ids spelled in hex inside strings
        self.slots: list[tuple[str, Any]] = []
        self.index: dict[tuple[str, Any], int] = {}

    def slot(self, kind: str, payload: Any) -> str:
        key = (kind, payload)
        i = self.index.get(key)
        if i is None:
            i = self.index[key] = len(self.slots)
            self.slots.append(key)
        return f"\x00{i}\x00"

    def text(self, value: str) -> str:
        def swap(match: re.Match[str]) -> str:
            raw = self.known_ids.get(match[0])
            return self.slot("hex", raw) if raw is not None else match[0]

        return _HEX.sub(swap, value)

    def value(self, key: str | None, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.text(k): self.value(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(key, v) for v in value]
        if not isinstance(value, str) or not value:
            return value
        if key in _ID_KEYS:
            raw = _b64(value)
            return self.slot("b64", raw) if raw is not None else value
        if key in _RFC3339_KEYS and (parsed := _parse_rfc3339(value)) is not None:
            return self.slot("rfc3339", parsed)
        if key in _NS_KEYS and value.isdigit() and int(value):
            return self.slot("ns", int(value))
        if key in _MS_KEYS and value.isdigit() and int(value):
            return self.slot("ms", int(value))
        return self.text(value)

    def compile(self, event: dict[str, Any]) -> str:
        text = json.dumps(self.value(None, event))
        # Escape the format syntax, then turn the markers (escaped by json) into fields.
        text = text.replace("{", "{{").replace("}", "}}")
        return re.sub(r"\\u0000(\d+)\\u0000", r"{0[\1]}", text)


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _parse_rfc3339(value: str) -> tuple[int, int] | None:
    """(nanoseconds since the epoch, digits of fraction) of an RFC 3339 UTC time."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return None
    seconds = calendar.timegm(time.strptime(match[1], "%Y-%m-%dT%H:%M:%S"))
    fraction = match[2] or ""
    return seconds * _NS + int(fraction.ljust(9, "0") or 0), len(fraction)


def load_capture(posts: Path = CAPTURE) -> list[dict[str, Any]]:
    """The captured events in arrival order (files are numbered across nodes)."""
    files = sorted(posts.glob("*/post_*.json"), key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(f"{posts}: no post_*.json bodies")
    events: list[dict[str, Any]] = []
    for path in files:
        events.extend(json.loads(path.read_bytes()))
    return events


def compile_capture(posts: Path = CAPTURE) -> _Compiled:
    events = load_capture(posts)
    ids: dict[str, bytes] = {}
    nodes: set[bytes] = set()
    jobs: set[int] = set()
    times: list[int] = []

    def collect(value: Any, key: str | None = None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                collect(v, k)
        elif isinstance(value, list):
            for v in value:
                collect(v, key)
        elif isinstance(value, str) and value and key in _ID_KEYS:
            raw = _b64(value)
            if raw is not None and len(raw) >= 16 and not _nil(raw):
                ids[raw.hex()] = raw
            if raw is not None and len(raw) == _JOB_BYTES and not _nil(raw):
                jobs.add(int.from_bytes(raw, "little"))

    for event in events:
        collect(event)
        times.append(_parse_rfc3339(event["timestamp"])[0])  # type: ignore[index]
        if (definition := event.get("nodeDefinitionEvent")) is not None:
            nodes.add(_b64(definition["nodeId"]) or b"")
    # Only the head node runs the GCS.
    head = next(_b64(e["nodeId"]) or b"" for e in events if e.get("sourceType") == "GCS")
    compiler = _Compiler(ids)
    templates = []
    for event in events:
        node_event_of = None
        if event["eventType"] in _NODE_EVENTS:
            payload = event.get("nodeDefinitionEvent") or event.get("nodeLifecycleEvent") or {}
            node_event_of = _b64(payload.get("nodeId", "")) or b""
        templates.append(
            _Template(
                compiler.compile(event),
                event["eventType"],
                _b64(event.get("nodeId", "")) or b"",
                node_event_of,
            )
        )
    return _Compiled(
        templates,
        compiler.slots,
        head,
        frozenset(nodes),
        max(jobs, default=1),
        max(times) - min(times),
    )


def _nil(raw: bytes) -> bool:
    return not raw.strip(b"\xff")


# ---------------------------------------------------------------------------------------
# Replicas: fresh ids and shifted times for one more run of the captured workload.


class _Replica:
    def __init__(self, compiled: _Compiled, r: int, rng: random.Random, spec: Spec):
        self.c = compiled
        self.r = r
        self.rng = rng
        self.shift_ns = round(r * spec.stride_s * _NS)
        self.unique: dict[bytes, bytes] = {}
        self.worker_node = _synthetic_node(spec.seed, r % spec.worker_nodes)
        self.introduces_worker_node = r < spec.worker_nodes
        self.seconds: dict[int, str] = {}

    def job(self, raw: bytes) -> bytes:
        if _nil(raw):
            return raw
        number = self.r * self.c.jobs_per_replica + int.from_bytes(raw, "little")
        return number.to_bytes(_JOB_BYTES, "little")

    def fresh(self, raw: bytes) -> bytes:
        if _nil(raw) or not raw.strip(b"\x00"):
            return raw
        new = self.unique.get(raw)
        if new is None:
            new = self.unique[raw] = self.rng.randbytes(len(raw))
        return new

    def node(self, raw: bytes) -> bytes:
        return raw if raw == self.c.head else self.worker_node

    def id(self, raw: bytes) -> bytes:
        """Ray id layouts: JobID 4, ActorID 12+job, TaskID 8+ActorID, PG 14+job, 28 unique."""
        n = len(raw)
        if n == 4:
            return self.job(raw)
        if n == 16:
            return self.fresh(raw[:12]) + self.job(raw[12:])
        if n == 18:
            return self.fresh(raw[:14]) + self.job(raw[14:])
        if n == 24:
            return self.fresh(raw[:8]) + self.id(raw[8:])
        if n == 28 and raw in self.c.nodes:
            return self.node(raw)
        if n == 28 and _nil(raw[4:]):  # a driver's worker id: job id, then nil
            return self.job(raw[:4]) + raw[4:]
        return self.fresh(raw)

    def rfc3339(self, ns: int, digits: int) -> str:
        seconds, fraction = divmod(ns + self.shift_ns, _NS)
        prefix = self.seconds.get(seconds)
        if prefix is None:
            prefix = self.seconds[seconds] = time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)
            )
        if not digits:
            return prefix + "Z"
        return f"{prefix}.{fraction:09d}"[: len(prefix) + 1 + digits] + "Z"

    def values(self) -> list[str]:
        out = []
        for kind, payload in self.c.slots:
            if kind == "b64":
                out.append(base64.b64encode(self.id(payload)).decode())
            elif kind == "hex":
                out.append(self.id(payload).hex())
            elif kind == "rfc3339":
                out.append(self.rfc3339(*payload))
            elif kind == "ns":
                out.append(str(payload + self.shift_ns))
            else:  # ms
                out.append(str(payload + self.shift_ns // 1_000_000))
        return out

    def events(self) -> Iterator[tuple[_Template, bytes, str]]:
        """(template, emitting synthetic node, event JSON) in the capture's order."""
        values = self.values()
        for t in self.c.templates:
            if t.node_event_of is not None and not (
                self.r == 0 if t.node_event_of == self.c.head else self.introduces_worker_node
            ):
                continue
            yield t, self.node(t.emitter), t.fmt.format(values)


def _synthetic_node(seed: int, k: int) -> bytes:
    return random.Random(f"{seed}-worker-node-{k}").randbytes(28)


# ---------------------------------------------------------------------------------------
# Bodies and files.


class _Writer:
    def __init__(self, out: Path, spec: Spec, rng: random.Random, manifest: Manifest):
        self.out = out
        self.spec = spec
        self.rng = rng
        self.m = manifest
        self.seq = 0
        self.buffers: dict[bytes, list[str]] = {}
        self.targets: dict[bytes, int] = {}
        self.groups: dict[bytes, tuple[int, list[bytes]]] = {}

    def size(self) -> int:
        lo, hi = math.log(self.spec.min_body), math.log(self.spec.max_body + 1)
        return min(self.spec.max_body, int(math.exp(self.rng.uniform(lo, hi))))

    def add(self, node: bytes, event: str) -> None:
        buffer = self.buffers.setdefault(node, [])
        buffer.append(event)
        target = self.targets.get(node)
        if target is None:
            target = self.targets[node] = self.size()
        if len(buffer) >= target:
            self.flush(node)

    def flush(self, node: bytes) -> None:
        buffer = self.buffers.pop(node, None)
        self.targets.pop(node, None)
        if not buffer:
            return
        body = ("[" + ", ".join(buffer) + "]").encode()
        self.m.bodies += 1
        self.m.body_bytes += len(body)
        group = self.groups.get(node)
        if group is None and self.rng.random() < self.spec.jsonl_share:
            group = self.groups[node] = (self.rng.randint(2, 6), [])
        if group is None:
            self.write(node, ".json", body)
            return
        group[1].append(body)
        if len(group[1]) >= group[0]:
            self.close_group(node)

    def close_group(self, node: bytes) -> None:
        _, bodies = self.groups.pop(node)
        if bodies:
            data = gzip.compress(b"\n".join(bodies) + b"\n", compresslevel=6, mtime=0)
            self.write(node, ".jsonl.gz", data)

    def write(self, node: bytes, suffix: str, data: bytes) -> None:
        path = self.out / f"post_{self.seq:07d}-{node.hex()[:8]}{suffix}"
        self.seq += 1
        path.write_bytes(data)
        self.m.files += 1
        self.m.bytes_on_disk += len(data)
        if suffix == ".json":
            self.m.json_files += 1
        else:
            self.m.jsonl_gz_files += 1

    def close(self) -> None:
        for node in list(self.buffers):
            self.flush(node)
        for node in list(self.groups):
            self.close_group(node)


def generate(
    out: Path, spec: Spec | None = None, *, posts: Path = CAPTURE, **kwargs: Any
) -> Manifest:
    """Write `spec.events` synthetic events as POST bodies into `out/posts/` (ingest that
    directory), then `out/manifest.json`. `out` is created and must be empty. Keyword
    arguments override `Spec` fields."""
    spec = spec or Spec(**kwargs)
    if spec.events <= 0:
        raise ValueError("events must be positive")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise FileExistsError(f"{out}: not empty")
    bodies = posts_dir(out)
    bodies.mkdir()
    started = time.perf_counter()
    compiled = compile_capture(posts)
    rng = random.Random(spec.seed)
    manifest = Manifest(spec)
    writer = _Writer(bodies, spec, rng, manifest)
    by_type: Counter[str] = Counter()
    r = 0
    while manifest.events < spec.events:
        replica = _Replica(compiled, r, rng, spec)
        for template, node, event in replica.events():
            writer.add(node, event)
            by_type[template.event_type] += 1
            manifest.events += 1
            if manifest.events >= spec.events:
                break
        r += 1
    writer.close()
    manifest.replicas = r
    manifest.events_by_type = dict(by_type.most_common())
    manifest.seconds = round(time.perf_counter() - started, 3)
    (out / MANIFEST).write_text(manifest.to_json())
    return manifest


def posts_dir(out: Path) -> Path:
    """Where `generate(out)` puts the bodies: the directory to ingest."""
    return out / POSTS


def read_manifest(out: Path) -> Manifest | None:
    """The manifest of a complete generation in `out`, if any (written last)."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.from_json(path.read_text())
    except (ValueError, TypeError, KeyError):
        return None


def input_files(out: Path) -> list[Path]:
    """The generated body files, in the order `raylake ingest` reads them."""
    return sorted(posts_dir(out).iterdir())


def capture_mix(posts: Path = CAPTURE) -> dict[str, int]:
    return dict(Counter(e["eventType"] for e in load_capture(posts)).most_common())


def prepare(directory: Path, spec: Spec) -> tuple[Manifest, bool]:
    """Generate the input into `directory`, or reuse one generated with the same spec."""
    manifest = read_manifest(directory)
    if manifest is not None and manifest.spec == spec:
        return manifest, True
    if directory.exists():
        if not {p.name for p in directory.iterdir()} <= {POSTS, MANIFEST}:
            raise SystemExit(f"{directory} exists and is not a generated input; not touching it")
        shutil.rmtree(directory)
    return generate(directory, spec), False
