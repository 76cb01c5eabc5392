"""The ingest core: bytes of a POST body -> validated events -> Arrow rows."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.eventids import EventIds
from ingest.normalize import EventColumns, hex_id, normalize, take
from ingest.parse import BodyError, parse_body
from lake.parts import write_parts
from lake.store import Lake

from conftest import CLUSTER, POSTS, SESSION


def body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


def sample_events() -> list[dict[str, Any]]:
    return [e for path in sorted(POSTS.rglob("*.json")) for e in json.loads(path.read_bytes())]


def first(event_type: str) -> dict[str, Any]:
    return json.loads(json.dumps(next(e for e in sample_events() if e["eventType"] == event_type)))


def tables(raw: bytes) -> dict[str, pa.Table]:
    """The rows of a body, by `take` (checked against the exact path's)."""
    columns, exact = EventColumns(), EventColumns()
    take(raw, EventIds(), columns)
    normalize(parse_body(raw), EventIds(), exact)
    found = dict(columns.tables("test"))
    assert found == dict(exact.tables("test"))
    return found


def test_ids_are_lowercase_hex_and_nil_ids_are_null() -> None:
    assert hex_id(b"\x01\x00\x00\x00") == "01000000"
    assert hex_id(b"\xff" * 4) is None
    assert hex_id(b"") is None
    event = first("TASK_DEFINITION_EVENT")
    table = tables(body([event]))["task_definition"]
    row = table.select(["job_id", "placement_group_id", "task_id"]).to_pylist()[0]
    assert row["job_id"] == "01000000"
    assert row["placement_group_id"] is None  # all 0xff
    assert row["task_id"] == row["task_id"].lower()


def test_int64_strings_become_integers_and_times_keep_nanoseconds() -> None:
    event = first("DRIVER_JOB_DEFINITION_EVENT")
    assert isinstance(event["driverJobDefinitionEvent"]["driverPid"], str)
    row = tables(body([event]))["driver_job_definition"]
    assert row["driver_pid"].to_pylist() == [int(event["driverJobDefinitionEvent"]["driverPid"])]
    lifecycle = first("TASK_LIFECYCLE_EVENT")
    table = tables(body([lifecycle]))["task_lifecycle"]
    assert table.schema.field("state_time").type == pa.timestamp("ns", tz="UTC")
    stamp = lifecycle["taskLifecycleEvent"]["stateTransitions"][0]["timestamp"]
    nanos = table["state_time"].cast(pa.int64()).to_pylist()[0]
    fraction = stamp.rstrip("Z").split(".")[1]
    assert len(fraction) == 9 and nanos % 1_000_000_000 == int(fraction)


def test_lifecycle_has_one_row_per_transition() -> None:
    event = first("ACTOR_LIFECYCLE_EVENT")
    count = len(event["actorLifecycleEvent"]["stateTransitions"])
    table = tables(body([event]))["actor_lifecycle"]
    assert table.num_rows == count
    assert table["seq"].to_pylist() == list(range(count))
    assert set(table["event_id"].to_pylist()) == {table["event_id"][0].as_py()}


def test_events_repeated_in_a_body_are_kept_once() -> None:
    event = first("TASK_DEFINITION_EVENT")
    assert tables(body([event, event, event]))["task_definition"].num_rows == 1


def to_snake(value: Any, maps: bool = False) -> Any:
    if isinstance(value, dict):
        if maps:
            return value
        out = {}
        for key, item in value.items():
            snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
            is_map = key in {
                "requiredResources",
                "labels",
                "labelSelector",
                "resources",
                "metadata",
                "refIds",
            }
            out[snake] = to_snake(item, is_map)
        return out
    if isinstance(value, list):
        return [to_snake(v) for v in value]
    return value


def test_snake_case_bodies_give_the_same_rows() -> None:
    events = sample_events()[:200]
    camel = tables(body(events))
    snake = tables(body([to_snake(e) for e in events]))
    assert camel.keys() == snake.keys()
    for name in camel:
        assert camel[name].equals(snake[name]), name


def test_times_in_another_form_are_read_as_arrow_reads_them() -> None:
    """Ray writes `...Z`; an offset, or a space for the `T`, is read by Arrow, and lands
    as the same instant."""
    lifecycle = first("TASK_LIFECYCLE_EVENT")
    lifecycle["timestamp"] = "2026-11-21T21:42:49.5+01:00"
    lifecycle["taskLifecycleEvent"]["stateTransitions"][0]["timestamp"] = "2026-11-21 20:42:49Z"
    table = tables(body([lifecycle]))["task_lifecycle"]
    assert (
        table["event_time"][0].value
        == pa.scalar("2026-11-21T20:42:49.5Z").cast(pa.timestamp("ns", tz="UTC")).value
    )
    assert str(table["state_time"][0].as_py()) == "2026-11-21 20:42:49+00:00"


def future_event() -> dict[str, Any]:
    """An event of a type this raylake has no table for."""
    return {
        "eventId": "AAECAw==",
        "eventType": "AUTOSCALER_SCALING_DECISION_EVENT",
        "timestamp": "2026-11-21T20:42:45.589427234Z",
        "sessionName": SESSION,
        "autoscalerScalingDecisionEvent": {"nodes": 3},
    }


def test_a_bad_time_of_an_unknown_event_type_is_rejected() -> None:
    future = future_event() | {"timestamp": "soon"}
    error = rejected([first("TASK_DEFINITION_EVENT"), future])
    assert (error.index, error.field) == (1, "timestamp")
    assert "RFC 3339" in str(error)


def test_unknown_event_types_are_kept_whole() -> None:
    future = future_event()
    table = tables(body([future]))["other_events"]
    row = table.select(["event_type", "event_json"]).to_pylist()[0]
    assert row["event_type"] == "AUTOSCALER_SCALING_DECISION_EVENT"
    assert json.loads(row["event_json"]) == future


def test_ray_2_49_task_execution_events_map_onto_the_lifecycle_table() -> None:
    old = {
        "eventId": "AQID",
        "sourceType": "CORE_WORKER",
        "eventType": "TASK_EXECUTION_EVENT",
        "timestamp": "2025-09-01T10:00:03Z",
        "sessionName": SESSION,
        "taskExecutionEvent": {
            "taskId": "Aek2m7DAVS7///////////////8BAAAA",
            "taskAttempt": 0,
            "taskState": {
                "11": "2025-09-01T10:00:03Z",
                "1": "2025-09-01T10:00:01Z",
                "8": "2025-09-01T10:00:02Z",
            },
            "nodeId": "",
            "workerId": "",
            "workerPid": 321,
        },
    }
    table = tables(body([old]))["task_lifecycle"]
    assert table["state"].to_pylist() == ["PENDING_ARGS_AVAIL", "RUNNING", "FINISHED"]
    assert table["worker_pid"].to_pylist() == [321, 321, 321]


def rejected(events: list[dict[str, Any]] | bytes) -> BodyError:
    """The error of a body, by `take` (the same as the exact path's)."""
    raw = events if isinstance(events, bytes) else body(events)
    with pytest.raises(BodyError) as exact:
        normalize(parse_body(raw), EventIds(), EventColumns())
    with pytest.raises(BodyError) as caught:
        take(raw, EventIds(), EventColumns())
    assert str(caught.value) == str(exact.value)
    return caught.value


def test_errors_name_the_event_index_the_field_and_what_was_expected() -> None:
    good = first("TASK_DEFINITION_EVENT")
    bad = json.loads(json.dumps(good))
    bad["taskDefinitionEvent"]["taskAttempt"] = "three"
    error = rejected([good, bad])
    assert error.index == 1
    assert error.field == "taskDefinitionEvent.taskAttempt"
    assert "expected `int`" in str(error)
    assert str(error).startswith("event 1: field `taskDefinitionEvent.taskAttempt`")


@pytest.mark.parametrize(
    ("mutate", "field", "expected"),
    [
        (lambda e: e.pop("eventId"), "", "eventId"),
        (lambda e: e.update(timestamp="yesterday"), "timestamp", "RFC 3339"),
        (lambda e: e.update(sessionName="../../etc"), "sessionName", "session"),
        (lambda e: e.update(eventId="not base64!"), "eventId", "base64"),
        (lambda e: e.pop("taskLifecycleEvent"), "taskLifecycleEvent", "expected an object"),
        (
            lambda e: e["taskLifecycleEvent"]["stateTransitions"][0].update(timestamp="12:00"),
            "taskLifecycleEvent.stateTransitions[0].timestamp",
            "RFC 3339",
        ),
        (
            lambda e: e["taskLifecycleEvent"].update(workerPid=2**70),
            "taskLifecycleEvent.workerPid",
            "<=",
        ),
    ],
)
def test_corrupt_events_are_rejected_with_a_clear_error(
    mutate: Any, field: str, expected: str
) -> None:
    event = first("TASK_LIFECYCLE_EVENT")
    mutate(event)
    error = rejected([first("TASK_DEFINITION_EVENT"), event])
    assert error.index == 1
    if field:
        assert error.field == field
    assert expected in str(error)


def test_a_body_that_is_not_a_json_array_is_rejected() -> None:
    assert "not a JSON array" in str(rejected(b'{"eventId": "AQ=="}'))
    assert "not a JSON array" in str(rejected(b"[{"))


def test_rows_of_two_days_and_two_sessions_land_in_their_own_partitions(tmp_path: Path) -> None:
    """A segment's rows usually share one session and one UTC day (a partition read off
    its columns' dictionaries); these cross midnight and a Ray restart."""
    events = []
    for n, (stamp, session) in enumerate(
        [
            ("2026-11-21T23:59:59.5Z", SESSION),
            ("2026-11-22T00:00:00.5Z", SESSION),
            ("2026-11-22T00:00:01Z", "session_2026-11-22_00-00-00_000000_1"),
        ]
    ):
        event = first("DRIVER_JOB_DEFINITION_EVENT")
        event["eventId"] = base64.b64encode(bytes([n]) * 28).decode()
        event["timestamp"], event["sessionName"] = stamp, session
        events.append(event)
    columns = EventColumns()
    take(body(events), EventIds(), columns)
    lake = Lake(str(tmp_path / "lake"), create=True)
    ((name, data),) = columns.tables("1")
    written = write_parts(lake, CLUSTER, name, data, writer="n", ingest_id="1", sort=False)
    partitions = {
        tuple(part.split("/")[-4:-1]): pq.read_table(tmp_path / "lake" / part).num_rows
        for part in written
    }
    cluster = f"cluster={CLUSTER.namespace}.{CLUSTER.name}"
    assert partitions == {
        (cluster, f"session={SESSION}", "date=2026-11-21"): 1,
        (cluster, f"session={SESSION}", "date=2026-11-22"): 1,
        (cluster, "session=session_2026-11-22_00-00-00_000000_1", "date=2026-11-22"): 1,
    }
