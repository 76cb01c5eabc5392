"""The fast path of `take` (`ingest/jsonfill.pyx`) against the exact path.

`take` fills the column builders straight from a body's JSON, or declines and leaves
the body to `parse_body` + `normalize`. Whatever it does, the outcome must be the
exact path's: the same tables, the same ids seen, the same `Taken`, or the same
BodyError with the columns and the ids seen as they were. The fast path must not
decline the bodies Ray sends (the capture, the synthetic input).
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.eventids import EventIds
from ingest.jsonfill import Declined
from ingest.load import read_bodies
from ingest.normalize import FAST, EventColumns, Taken, normalize, take, taken_of
from ingest.parse import BodyError, parse_body
from ingest.wire import wire_for

from conftest import POSTS, SESSION
from test_properties import (
    EVENT_INDEX,
    EVENTS,
    INT_KEYS,
    Corrupted,
    corrupted_bodies,
    encode,
    encode_body,
)

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Outcome:
    """What a run of bodies left: each body's Taken or error, the tables, the ids seen."""

    results: list[Taken | str]
    tables: dict[str, pa.Table]
    seen: set[bytes]
    fallbacks: int = 0


def packed(ids: Iterable[bytes]) -> bytes:
    """Ids as `EventIds.since` packs them: each as its size (4 bytes) then itself."""
    return b"".join(len(i).to_bytes(4, sys.byteorder) + i for i in ids)


def exact_path(bodies: Iterable[bytes], seen: Iterable[bytes] = ()) -> Outcome:
    columns, known, results = EventColumns(), set(seen), []
    result: Taken | str
    for body in bodies:
        try:
            parsed = parse_body(body)
            new_ids = dict.fromkeys(e.event_id for e in parsed.events if e.event_id not in known)
            normalize(parsed, EventIds(known), columns)
            result = taken_of(parsed, packed(new_ids))
            known.update(new_ids)
        except BodyError as exc:
            result = str(exc)
        results.append(result)
    return Outcome(results, dict(columns.tables("test")), known)


def taken(bodies: Iterable[bytes], seen: Iterable[bytes] = ()) -> Outcome:
    columns, known, results = EventColumns(), EventIds(seen), []
    result: Taken | str
    for body in bodies:
        try:
            result = take(body, known, columns)
        except BodyError as exc:
            result = str(exc)
        results.append(result)
    fallbacks = columns.fallbacks
    return Outcome(results, dict(columns.tables("test")), set(known), fallbacks)


def assert_same(bodies: list[bytes], seen: Iterable[bytes] = (), *, fast: bool = False) -> Outcome:
    """Both paths give the same outcome; `fast`: without falling back once."""
    exact, found = exact_path(bodies, seen), taken(bodies, seen)
    assert found.results == exact.results
    assert found.seen == exact.seen
    assert found.tables.keys() == exact.tables.keys()
    for name, table in exact.tables.items():
        assert same_table(found.tables[name], table), name
    if fast:
        assert found.fallbacks == 0, declined(bodies)
    return found


def same_table(found: pa.Table, expected: pa.Table) -> bool:
    """Equal tables (a NaN, which msgspec reads from "NaN", equal to itself too)."""
    if found.equals(expected):
        return True
    return found.schema == expected.schema and values(found) == values(expected)


def values(table: pa.Table) -> str:
    columns = [
        (c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c).to_pylist()
        for c in table.columns
    ]
    return json.dumps(columns, default=str)


def declined(bodies: list[bytes]) -> list[str]:
    """Why the fast path leaves each of these bodies to the exact path."""
    reasons = []
    for body in bodies:
        columns = EventColumns()
        try:
            FAST[wire_for(body).naming].take(body, EventIds(), columns.builders)
        except Declined as exc:
            reasons.append(str(exc))
    return reasons


def declines(body: bytes) -> bool:
    return bool(declined([body]))


def load_synthetic() -> ModuleType:
    """bench/synthetic.py (bench/ is no package on the tests' path)."""
    spec = importlib.util.spec_from_file_location("synthetic", ROOT / "bench" / "synthetic.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- what Ray sends is taken by the fast path, exactly ---------------------------------


CAPTURE_BODIES = [path.read_bytes() for path in sorted(POSTS.glob("*/*.json"))]


def test_the_capture_is_taken_by_the_fast_path_exactly() -> None:
    assert len(CAPTURE_BODIES) == 49
    # Twice: the second time every event is a repeat (checked, no row added).
    found = assert_same(CAPTURE_BODIES * 2, fast=True)
    assert sum(t.num_rows for t in found.tables.values()) > 1469
    assert all(isinstance(r, Taken) and not r.new_ids for r in found.results[49:])


def test_the_synthetic_input_is_taken_by_the_fast_path_exactly(tmp_path: Path) -> None:
    synthetic = load_synthetic()
    synthetic.generate(tmp_path / "input", events=20_000, seed=11)
    files = synthetic.input_files(tmp_path / "input")
    bodies = [body for path in files for body in read_bodies(path)]
    assert len(bodies) > 50
    assert_same(bodies, fast=True)


def test_the_benchmark_input_is_taken_by_the_fast_path() -> None:
    """bench/collector.py's input, where a run left it (it is synthetic.py's output)."""
    posts = Path("/tmp/raylake-collector/input/posts")
    bodies = [path.read_bytes() for path in sorted(posts.glob("*.json"))[:100]]
    if not bodies:
        pytest.skip("no benchmark input at /tmp/raylake-collector")
    assert_same(bodies, fast=True)


@settings(max_examples=150, deadline=None)
@given(
    indices=st.lists(EVENT_INDEX, min_size=0, max_size=30),
    repeats=st.lists(st.integers(0, 29), max_size=5),
    seen=st.lists(st.integers(0, 29), max_size=5),
    snake=st.booleans(),
    flip=st.frozensets(st.sampled_from(INT_KEYS)),
)
def test_any_valid_body_is_taken_by_the_fast_path_exactly(
    indices: list[int], repeats: list[int], seen: list[int], snake: bool, flip: frozenset[str]
) -> None:
    events = [EVENTS[i] for i in indices]
    events += [events[i] for i in repeats if i < len(events)]  # repeated in the body
    known = {base64.b64decode(events[i]["eventId"]) for i in seen if i < len(events)}
    assert_same([encode_body(events, snake=snake, flip=flip)], known, fast=True)


@settings(max_examples=300, deadline=None)
@given(corrupted=corrupted_bodies(), first=st.lists(EVENT_INDEX, min_size=1, max_size=5))
def test_any_corruption_is_refused_alike_and_leaves_nothing(
    corrupted: Corrupted, first: list[int]
) -> None:
    """After a valid body, a corrupted one: the same error, and only the valid body's
    rows and ids remain."""
    assert_same([encode_body(EVENTS[i] for i in first), corrupted.body])


#: Bytes that make or break JSON, numbers, base64, times and UTF-8.
EDIT_BYTES = b'0123456789aefAZ+/=-_"{}[],:.eET \\nul\x00\x01\xc3\xff'


def outcome(run: Callable[[list[bytes]], Outcome], body: bytes) -> Outcome | str:
    """A run's outcome, or the kind of error that is no BodyError (msgspec raises a
    UnicodeDecodeError for some invalid UTF-8, for one)."""
    try:
        return run([body])
    except Exception as exc:
        return type(exc).__name__


@settings(max_examples=300, deadline=None)
@given(
    indices=st.lists(EVENT_INDEX, min_size=1, max_size=3),
    snake=st.booleans(),
    edits=st.lists(
        st.tuples(
            st.floats(0, 1, exclude_max=True),
            st.sampled_from(["set", "delete", "insert"]),
            st.sampled_from(list(EDIT_BYTES)),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_any_text_edit_gives_the_exact_paths_outcome(
    indices: list[int], snake: bool, edits: list[tuple[float, str, int]]
) -> None:
    """A few bytes of a valid body changed anywhere (quotes, digits, padding, UTF-8):
    whatever it does to the body, the fast path does not change the outcome."""
    body = bytearray(encode_body([EVENTS[i] for i in indices], snake=snake))
    for where, how, byte in edits:
        at = int(where * len(body))
        if how == "set":
            body[at] = byte
        elif how == "delete":
            del body[at]
        else:
            body.insert(at, byte)
    exact, found = outcome(exact_path, bytes(body)), outcome(taken, bytes(body))
    if isinstance(exact, str) or isinstance(found, str):
        assert found == exact
        return
    assert found.results == exact.results
    assert found.seen == exact.seen
    assert found.tables.keys() == exact.tables.keys()
    assert all(same_table(found.tables[name], exact.tables[name]) for name in exact.tables)


# --- every event type, and the values only a converter or a map holds -----------------


NODE = base64.b64encode(bytes.fromhex("a7adc7d8d330156f3b83a38b0c44ded53f9781cc")).decode()
NIL = base64.b64encode(b"\xff" * 16).decode()


def event(event_type: str, payload_key: str, payload: dict[str, Any], n: int = 1) -> dict[str, Any]:
    return {
        "eventId": base64.b64encode(bytes([n, 7, 7])).decode(),
        "sourceType": "GCS",
        "eventType": event_type,
        "timestamp": f"2026-11-21T20:42:{n % 60:02d}.5Z",
        "severity": "INFO",
        "sessionName": SESSION,
        "nodeId": NODE,
        payload_key: payload,
        "message": "",
    }


def every_type() -> list[dict[str, Any]]:
    """An event of each type, most fields set (types the capture lacks too)."""
    bundle = {"bundleIndex": "1", "unitResources": {"CPU": 1, "GPU": 0.5}, "labelSelector": {}}
    return [
        event(
            "PLACEMENT_GROUP_DEFINITION_EVENT",
            "placementGroupDefinitionEvent",
            {
                "placementGroupId": "AAECAwQFBgcICQoL",
                "name": "pg",
                "rayNamespace": "demo",
                "strategy": "SPREAD",
                "isDetached": True,
                "creatorJobId": "AQAAAA==",
                "creatorActorId": NIL,
                "bundles": [bundle, {"bundleIndex": 0}],
                "softTargetNodeId": "",
                "creationRequestReceivedNs": "1795293768000000000",
            },
            1,
        ),
        event(
            "PLACEMENT_GROUP_LIFECYCLE_EVENT",
            "placementGroupLifecycleEvent",
            {
                "placementGroupId": "AAECAwQFBgcICQoL",
                "stateTransitions": [
                    {"state": "PENDING", "timestamp": "2026-11-21T20:42:49Z"},
                    {
                        "state": "CREATED",
                        "timestamp": "2026-11-21T20:42:50.000000001Z",
                        "schedulingState": "FINISHED",
                        "schedulingAttempt": "2",
                        "highestRetryDelayMs": 12.5,
                        "bundlePlacements": [{"bundleIndex": 1, "nodeId": NODE}, {}],
                    },
                ],
            },
            2,
        ),
        event(
            "SUBMISSION_JOB_DEFINITION_EVENT",
            "submissionJobDefinitionEvent",
            {
                "submissionId": "job-ok-1",
                "entrypoint": "python job.py",
                "config": {"serializedRuntimeEnv": "{}", "metadata": {"owner": "é\u0000x"}},
                "entrypointResources": {
                    "numCpus": 1,
                    "numGpus": 0.25,
                    "memory": "1024",
                    "customResources": {"TPU": 2},
                },
            },
            3,
        ),
        event(
            "SUBMISSION_JOB_LIFECYCLE_EVENT",
            "submissionJobLifecycleEvent",
            {
                "submissionId": "job-ok-1",
                "stateTransitions": [
                    {"state": "RUNNING", "timestamp": "2026-11-21T20:42:51Z"},
                    {
                        "state": "FAILED",
                        "timestamp": "2026-11-21T20:42:52.25Z",
                        "message": "exit 3",
                        "errorType": "JOB_ENTRYPOINT_COMMAND_ERROR",
                        "driverNodeId": NODE,
                        "driverAgentHttpAddress": "http://x",
                        "driverExitCode": 3,
                    },
                ],
            },
            4,
        ),
        event(
            "PLATFORM_EVENT",
            "platformEvent",
            {
                "source": {"platform": "k8s", "component": "kuberay", "metadata": {"a": "b"}},
                "objectKind": "RayCluster",
                "objectName": "demo",
                "message": "scaled",
                "reason": "Scale",
                "customFields": {"replicas": "3"},
            },
            5,
        ),
        event(
            "ACTOR_LIFECYCLE_EVENT",
            "actorLifecycleEvent",
            {
                "actorId": "7sYleQ9Xi9Ro8+ABAQAAAA==",
                "stateTransitions": [
                    {
                        "state": "DEAD",
                        "timestamp": "2026-11-21T20:42:53Z",
                        "pid": 7,
                        "deathCause": {
                            "actorDiedErrorContext": {
                                "errorMessage": "killed",
                                "pid": 20780,
                                "neverStarted": False,
                                "ownerId": "AQ==",
                                "score": 1.5e300,
                                "list": [1, -2, "x", None, {"deep": [True]}],
                            }
                        },
                    },
                    {
                        "state": "RESTARTING",
                        "timestamp": "2026-11-21T20:42:54Z",
                        "deathCause": None,
                    },
                ],
            },
            6,
        ),
        event("ACTOR_LIFECYCLE_EVENT", "actorLifecycleEvent", {"actorId": "AQ=="}, 7),
        event(
            "TASK_PROFILE_EVENT",
            "taskProfileEvents",
            {"taskId": "AQID", "profileEvents": {"componentType": "worker", "events": []}},
            8,
        ),
        event(
            "WORKER_LIFECYCLE_EVENT",
            "workerLifecycleEvent",
            {
                "workerId": "AQID",
                "stateTransitions": [
                    {
                        "state": "DEAD",
                        "timestamp": "2026-11-21T20:42:55Z",
                        "workerLaunchTimeMs": "18446744073709551615",  # Ray's "unset"
                        "startTimeMs": 1795293768687,
                        "endTimeMs": "9223372036854775807",
                        "deathInfo": {"exitType": "INTENDED_USER_EXIT", "exitDetail": "bye"},
                    }
                ],
            },
            9,
        ),
        event(
            "NODE_DEFINITION_EVENT",
            "nodeDefinitionEvent",
            {"nodeId": NODE, "labels": {}, "startTimestamp": ""},
            10,
        ),
        event(
            "TASK_LIFECYCLE_EVENT",
            "taskLifecycleEvent",
            {
                "taskId": "AQID",
                "taskAttempt": "-5",
                "isDebuggerPaused": None,
                "taskLogInfo": {"stdoutFile": None, "stdoutStart": None, "stderrEnd": "0"},
                "rayErrorInfo": {"errorType": "TASK_EXECUTION_EXCEPTION", "errorMessage": "😀"},
                "workerPid": -0,
            },
            11,
        ),
    ]


@pytest.mark.parametrize("snake", [False, True])
def test_every_event_type_is_taken_by_the_fast_path_exactly(snake: bool) -> None:
    events = every_type()
    assert_same([encode_body(events, snake=snake)], fast=True)
    assert_same([encode_body([e], snake=snake) for e in events], fast=True)


# --- targeted cases: what the fast path declines, and what it must not accept ----------


def first_of(event_type: str) -> dict[str, Any]:
    return copy.deepcopy(next(e for e in EVENTS if e["eventType"] == event_type))


Mutation = Callable[[dict[str, Any]], Any]


def changed(event_type: str) -> Callable[[Mutation], Callable[[], dict[str, Any]]]:
    """Makers of the first event of a type, with a change applied to it."""

    def with_change(change: Mutation) -> Callable[[], dict[str, Any]]:
        def make() -> dict[str, Any]:
            found = first_of(event_type)
            change(found)
            return found

        return make

    return with_change


lifecycle = changed("TASK_LIFECYCLE_EVENT")
definition = changed("TASK_DEFINITION_EVENT")


def worker(change: Mutation) -> Callable[[], dict[str, Any]]:
    def make() -> dict[str, Any]:
        found = first_of("WORKER_LIFECYCLE_EVENT")
        change(found["workerLifecycleEvent"]["stateTransitions"][0])
        return found

    return make


def payload(name: str, value: Any) -> Mutation:
    return lambda e: e["taskLifecycleEvent"].__setitem__(name, value)


def task(name: str, value: Any) -> Mutation:
    return lambda e: e["taskDefinitionEvent"].__setitem__(name, value)


def top(name: str, value: Any) -> Mutation:
    return lambda e: e.__setitem__(name, value)


def drop(name: str) -> Mutation:
    return lambda e: e.pop(name)


#: Events the fast path must decline: each is refused, or taken by the exact path only.
DECLINED: dict[str, Callable[[], dict[str, Any]]] = {
    # int64 and uint64 other than a JSON integer or plain decimal digits
    "int '+1'": lifecycle(payload("workerPid", "+1")),
    "int ' 1'": lifecycle(payload("workerPid", " 1")),
    "int '01'": lifecycle(payload("workerPid", "01")),
    "int '-0'": lifecycle(payload("workerPid", "-0")),
    "int '1e3'": lifecycle(payload("workerPid", "1e3")),
    "int 1.0": lifecycle(payload("workerPid", 1.0)),
    "int 1.5": lifecycle(payload("workerPid", 1.5)),
    "int true": lifecycle(payload("workerPid", True)),
    "int ''": lifecycle(payload("workerPid", "")),
    "int 2**63": lifecycle(payload("workerPid", 2**63)),
    "int '2**63'": lifecycle(payload("workerPid", str(2**63))),
    "int -2**63-1": lifecycle(payload("workerPid", -(2**63) - 1)),
    "int 2**64": lifecycle(payload("workerPid", 2**64)),
    "int null": lifecycle(payload("workerPid", None)),
    "uint -1": worker(lambda t: t.__setitem__("startTimeMs", -1)),
    "uint '-1'": worker(lambda t: t.__setitem__("startTimeMs", "-1")),
    "uint 2**64": worker(lambda t: t.__setitem__("startTimeMs", 2**64)),
    "uint '2**64'": worker(lambda t: t.__setitem__("startTimeMs", str(2**64))),
    # floats and bools other than JSON numbers and literals
    "float 'NaN'": definition(task("requiredResources", {"CPU": "NaN"})),
    "float '1.5'": definition(task("requiredResources", {"CPU": "1.5"})),
    "float true": definition(task("requiredResources", {"CPU": True})),
    "float 2**60": definition(task("requiredResources", {"CPU": 2**60})),
    "float 1e400": definition(task("requiredResources", {"CPU": 10**400})),
    "bool 1": definition(task("isDetachedActor", 1)),
    "bool 'true'": definition(task("isDetachedActor", "true")),
    "bool null": definition(task("isDetachedActor", None)),
    # bytes other than canonical standard padded base64
    "bytes 'AQ'": lifecycle(payload("jobId", "AQ")),
    "bytes 'AR=='": lifecycle(payload("jobId", "AR==")),
    "bytes 'AQI='": lifecycle(payload("jobId", "AQJ=")),
    "bytes 'A==='": lifecycle(payload("jobId", "A===")),
    "bytes '===='": lifecycle(payload("jobId", "====")),
    "bytes '-_8='": lifecycle(payload("jobId", "-_8=")),
    "bytes newline": lifecycle(payload("jobId", "AQ==\n")),
    "bytes 5": lifecycle(payload("jobId", 5)),
    "bytes null": lifecycle(payload("jobId", None)),
    "event id not base64": lifecycle(top("eventId", "not base64!")),
    "event id empty": lifecycle(top("eventId", "")),
    # strings, nulls, shapes
    "str 5": lifecycle(top("severity", 5)),
    "str null": lifecycle(top("severity", None)),
    "session null": lifecycle(top("sessionName", None)),
    "session empty": lifecycle(top("sessionName", "")),
    "session missing": lifecycle(drop("sessionName")),
    "session refused": lifecycle(top("sessionName", "../etc")),
    "event type missing": lifecycle(drop("eventType")),
    "event type 5": lifecycle(top("eventType", 5)),
    "event type unknown": lifecycle(top("eventType", "AUTOSCALER_EVENT")),
    "event type with rows made in Python": lambda: event(
        "TASK_EXECUTION_EVENT",
        "taskExecutionEvent",
        {"taskId": "AQID", "taskState": {"1": "2025-09-01T10:00:01Z"}},
    ),
    "timestamp missing": lifecycle(drop("timestamp")),
    "timestamp 5": lifecycle(top("timestamp", 5)),
    "timestamp not RFC 3339": lifecycle(top("timestamp", "yesterday")),
    "timestamp with an offset": lifecycle(top("timestamp", "2026-11-21T20:42:49.1+00:00")),
    "timestamp out of range": lifecycle(top("timestamp", "2262-06-01T00:00:00Z")),
    "transition time bad": lifecycle(
        lambda e: e["taskLifecycleEvent"]["stateTransitions"][0].__setitem__("timestamp", "12:00")
    ),
    "transition state missing": lifecycle(
        lambda e: e["taskLifecycleEvent"]["stateTransitions"][0].pop("state")
    ),
    "transitions null": lifecycle(payload("stateTransitions", None)),
    "transitions an object": lifecycle(payload("stateTransitions", {})),
    "transition null": lifecycle(payload("stateTransitions", [None])),
    "payload missing": lifecycle(drop("taskLifecycleEvent")),
    "payload null": lifecycle(top("taskLifecycleEvent", None)),
    "payload a list": lifecycle(top("taskLifecycleEvent", [])),
    "payload id missing": lifecycle(lambda e: e["taskLifecycleEvent"].pop("taskId")),
    "payload id null": lifecycle(payload("taskId", None)),
    "map null": definition(task("requiredResources", None)),
    "map a list": definition(task("labelSelector", [])),
    "map value 5": definition(task("labelSelector", {"a": 5})),
    "map key twice": lambda: json.loads(
        '{"eventId":"AQ==","eventType":"TASK_DEFINITION_EVENT","timestamp":'
        f'"2026-11-21T20:42:49Z","sessionName":"{SESSION}","taskDefinitionEvent":'
        '{"taskId":"AQ==","labelSelector":{"a":"1","a":"2"}}}',
        object_pairs_hook=list,
    ),
    "unknown field nested too deep": lifecycle(top("future", json.loads("[" * 100 + "]" * 100))),
    "unknown field with a huge number": lifecycle(top("future", {"n": 10**30})),
    # fields no column reads, and payloads of other types beside the event's own
    "other payload's id not base64": lifecycle(top("taskDefinitionEvent", {"taskId": 5})),
    "other payload's int '01'": lifecycle(
        top("taskDefinitionEvent", {"taskId": "AQ==", "taskAttempt": "01"})
    ),
    "other payload's transition without time": lifecycle(
        top("actorLifecycleEvent", {"actorId": "AQ==", "stateTransitions": [{"state": "A"}]})
    ),
    "other payload's bundle label 5": lifecycle(
        top(
            "placementGroupDefinitionEvent",
            {"placementGroupId": "AQ==", "bundles": [{"labelSelector": {"a": 5}}]},
        )
    ),
    "other payload's status key 'x'": lifecycle(
        top("taskExecutionEvent", {"taskId": "AQ==", "taskState": {"x": "t"}})
    ),
    "other payload's status key '01'": lifecycle(
        top("taskExecutionEvent", {"taskId": "AQ==", "taskState": {"01": "t"}})
    ),
    "a descriptor not an object": definition(task("taskFunc", {"pythonFunctionDescriptor": 5})),
    "death cause nested too deep": lambda: event(
        "ACTOR_LIFECYCLE_EVENT",
        "actorLifecycleEvent",
        {
            "actorId": "AQ==",
            "stateTransitions": [
                {
                    "state": "DEAD",
                    "timestamp": "2026-11-21T20:42:53Z",
                    "deathCause": json.loads("[" * 80 + "]" * 80),
                }
            ],
        },
    ),
}


def render(found: Any, snake: bool) -> bytes:
    """A body of one valid event and the case's event (whose pairs may repeat a key)."""
    valid = first_of("TASK_DEFINITION_EVENT")
    valid["eventId"] = "AAAAAAAA"
    valid = encode(valid, snake=snake, flip=frozenset())
    if isinstance(found, list):  # key-value pairs, kept as they are
        return b"[" + json.dumps(valid).encode() + b"," + pairs(found).encode() + b"]"
    return json.dumps([valid, encode(found, snake=snake, flip=frozenset())]).encode()


def pairs(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(p, tuple) for p in value):
        return "{" + ",".join(f"{json.dumps(k)}:{pairs(v)}" for k, v in value) + "}"
    return json.dumps(value)


@pytest.mark.parametrize("snake", [False, True])
@pytest.mark.parametrize("case", sorted(DECLINED))
def test_the_fast_path_declines(case: str, snake: bool) -> None:
    body = render(DECLINED[case](), snake)
    assert declines(body)
    seen_before = {b"\x00" * 6}
    assert_same([encode_body([first_of("TASK_PROFILE_EVENT")]), body], seen_before)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[",
        b"{}",
        b'{"eventId": "AQ=="}',
        b"[1]",
        b"[{}]",
        b"[] x",
        b"\xef\xbb\xbf[]",
        b'[{"eventId": "\\ud800"}]',
        b'[{"eventId": "\xff"}]',
        b'[{"eventId": "a\x01"}]',
        b"[1,]",
        b'[{"eventId":"AQ==","eventId":"AQ=="}]',
    ],
)
def test_bodies_that_are_no_array_of_events_are_declined_and_refused_alike(body: bytes) -> None:
    assert declines(body)
    with pytest.raises(BodyError) as fast:
        take(body, EventIds(), EventColumns())
    with pytest.raises(BodyError) as exact:
        normalize(parse_body(body), EventIds(), EventColumns())
    assert str(fast.value) == str(exact.value)


def test_json_nested_too_deep_for_msgspec_is_declined() -> None:
    """msgspec gives up (RecursionError) on JSON nested this deep, even in a field it
    skips; the fast path must not take such a body."""
    found = first_of("TASK_LIFECYCLE_EVENT")
    found["future"] = 0
    body = encode_body([found]).replace(b'"future": 0', b'"future": ' + b"[" * 3000 + b"]" * 3000)
    assert declines(body)
    with pytest.raises(RecursionError):
        parse_body(body)
    columns, seen = EventColumns(), EventIds()
    with pytest.raises(RecursionError):
        take(body, seen, columns)
    assert not seen and not dict(columns.tables("test"))


ACCEPTED: dict[str, Callable[[], dict[str, Any]]] = {
    "int as a JSON number": lifecycle(payload("workerPid", 20593)),
    "int '-5'": lifecycle(payload("workerPid", "-5")),
    "int -2**63": lifecycle(payload("workerPid", -(2**63))),
    "int '2**63-1'": lifecycle(payload("workerPid", str(2**63 - 1))),
    "uint max": worker(lambda t: t.__setitem__("endTimeMs", str(2**64 - 1))),
    "float from an int": definition(task("requiredResources", {"CPU": 2, "mem": -3})),
    "optional null": lifecycle(payload("isDebuggerPaused", None)),
    "optional str null": definition(task("callSite", None)),
    "nil ids": lifecycle(payload("jobId", NIL)),
    "unknown fields": lifecycle(top("future", {"a": [1, {"b": None}], "c": "d"})),
    "text with NUL and astral characters": lifecycle(top("message", "a\x00b😀é")),
    "no transitions": lifecycle(payload("stateTransitions", [])),
    "time without fraction": lifecycle(top("timestamp", "2026-11-21T20:42:49Z")),
}


@pytest.mark.parametrize("snake", [False, True])
@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_the_fast_path_takes(case: str, snake: bool) -> None:
    body = render(ACCEPTED[case](), snake)
    assert_same([body, body], fast=True)


@pytest.mark.parametrize(
    ("text", "spelled", "fast"),
    [
        ('"hostname"', '"host\\u006eame"', True),  # an escaped key
        ('"CPU": 2.0', '"CPU": 2e0', True),
        ('"CPU": 2.0', '"CPU": 2E-400', True),  # 0.0
        ('"CPU": 2.0', '"CPU": -0.0', True),
        ('"CPU": 2.0', '"CPU": -0', False),  # an integer 0 that msgspec may make -0.0
        ('"nodeName": "192.0.2.2"', '"nodeName": "\\u00e9\\ud83d\\ude00\\u0000"', True),
        ('"nodeName": "192.0.2.2"', '"nodeName": "192.0.2.2", "nodeName": "x"', False),
        ('"labels": {', '"labels": {"k": "1", "k": "2", ', False),
        ('"labels": {', '"labels": {"k": "1", "k\\u0000": "2", ', True),
    ],
)
def test_json_spellings(text: str, spelled: str, fast: bool) -> None:
    """The same values spelled otherwise in the JSON text."""
    events = [first_of("NODE_DEFINITION_EVENT"), first_of("NODE_LIFECYCLE_EVENT")]
    body = json.dumps(events).encode().decode()
    assert text in body
    body = body.replace(text, spelled, 1)
    assert declines(body.encode()) != fast
    assert_same([body.encode()], fast=fast)


def test_the_first_session_the_emitter_and_the_types_are_told() -> None:
    events = [first_of("TASK_DEFINITION_EVENT"), first_of("TASK_PROFILE_EVENT")]
    events[0]["nodeId"] = ""
    other = "session_2026-11-22_00-00-00_000000_1"
    events[1]["sessionName"] = other
    found = take(json.dumps(events).encode(), EventIds(), EventColumns())
    assert found.session == SESSION
    assert found.sessions == {SESSION, other}
    assert found.emitter == base64.b64decode(events[1]["nodeId"]).hex()
    assert found.types == {"TASK_DEFINITION_EVENT": 1, "TASK_PROFILE_EVENT": 1}
    assert take(b"[]", EventIds(), EventColumns()) == Taken(0, b"", {}, "", "", set())


def test_a_refused_body_leaves_the_columns_and_the_ids_as_they_were() -> None:
    columns, seen = EventColumns(), EventIds()
    good = encode_body(EVENTS[:20])
    take(good, seen, columns)
    before = list(seen)
    # Valid events first, new and repeated, then one the fast path cannot vouch for.
    bad = first_of("TASK_LIFECYCLE_EVENT")
    bad["timestamp"] = "yesterday"
    body = encode_body([*EVENTS[10:40], bad])
    with pytest.raises(BodyError):
        take(body, seen, columns)
    assert list(seen) == before
    assert columns.fallbacks == 1
    expected = EventColumns()
    take(good, EventIds(), expected)
    found, wanted = dict(columns.tables("t")), dict(expected.tables("t"))
    assert found.keys() == wanted.keys()
    assert all(found[name].equals(wanted[name]) for name in wanted)
