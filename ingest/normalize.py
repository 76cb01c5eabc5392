"""Turn validated RayEvents into the columns of the lake's typed tables.

Each event type's table is described once, below, as column specs: the common event
columns, the payload columns an event has once, and the columns of each of its rows (a
lifecycle event has a row per state transition, a profile event one per entry). The
compiled `ingest.columnar` walks the decoded structs along those specs and fills the
columns. Times are read into nanoseconds as they are added (Ray's RFC 3339 form in C,
any other through Arrow); a time neither reads is refused with its event and field.
Events repeated (Ray delivers at least once) are kept once.

`take` adds a POST body: the compiled `ingest.jsonfill` fills the same columns along
the same specs straight from the body's JSON, without decoding it into structs, or
declines; then `parse_body` + `normalize` (the exact path) take it, and raise the
precise error.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import pyarrow as pa

from ingest.columnar import (
    BOOL,
    EVENT,
    FLOAT,
    HEX,
    HEX_RAW,
    INT,
    OBJ,
    PAYLOAD,
    ROW,
    STR,
    TIME,
    Column,
    RowError,
    TableBuilder,
    fill,
    time_of,
)
from ingest.eventids import EventIds
from ingest.jsonfill import Declined, JsonFill
from ingest.parse import BodyError, ParsedBody, parse_body
from ingest.to_arrow import to_table
from ingest.wire import CAMEL, PAYLOAD_FIELDS, SNAKE, wire_for
from lake.schemas import OTHER_TABLE, TASK_STATUS

_NS_PER_MS = 1_000_000
_MAX_MS = (2**63 - 1) // _NS_PER_MS  # Ray marks "unset" with uint64 max
_UINT64_MAX = 2**64 - 1


def hex_id(raw: bytes) -> str | None:
    """Ray ids as lowercase hex; empty or all-0xff ("nil") ids are null."""
    if not raw or not raw.strip(b"\xff"):
        return None
    return raw.hex()


class _NoTransition:
    """Stands in for the transition of a lifecycle event that reports none.

    Ray sends such events to carry other fields (a task's log end offsets, its
    error); they still make a row, with a null state and time.
    """

    state = timestamp = death_info = driver_exit_code = None
    node_id = worker_id = driver_node_id = b""
    repr_name = restart_reason = alive_sub_state = scheduling_state = ""
    message = error_type = driver_agent_http_address = ""
    pid = port = scheduling_attempt = 0
    worker_launch_time_ms = worker_launched_time_ms = start_time_ms = end_time_ms = 0
    highest_retry_delay_ms = None
    death_cause = msgspec.Raw(b"")
    resources: dict[str, float] = {}
    bundle_placements: list[Any] = []


_NO_TRANSITION = _NoTransition()


# ---------------------------------------------------------------------------------------
# Converters of the few values that are not stored as Ray sent them.


def _ms_to_ns(field: str) -> Callable[[int], int | None]:
    """Milliseconds (uint64) as nanoseconds; null for 0 and for Ray's "unset" marks."""

    def convert(ms: int) -> int | None:
        if ms > _UINT64_MAX:
            raise ValueError(f"{field}: expected an unsigned 64-bit integer, got {ms}")
        return ms * _NS_PER_MS if 0 < ms <= _MAX_MS else None

    return convert


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel_key(k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    if "_" not in key:  # camelCase already, as Ray sends it
        return key
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _death_cause(raw: msgspec.Raw) -> str | None:
    """Ray's death cause as camelCase JSON, whichever naming the sender used (the
    message holds no maps, so every key is a field name)."""
    if not raw:
        return None
    return msgspec.json.encode(_camel(msgspec.json.decode(raw))).decode()


def _bundles(bundles: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "bundle_index": b.bundle_index,
            "unit_resources": b.unit_resources,
            "label_selector": b.label_selector,
        }
        for b in bundles
    ]


def _placements(placements: list[Any]) -> list[dict[str, Any]]:
    return [{"bundle_index": b.bundle_index, "node_id": hex_id(b.node_id)} for b in placements]


class _StatusTime:
    """One (TaskStatus, time) entry of a TASK_EXECUTION_EVENT, as a row."""

    __slots__ = ("state", "timestamp")

    def __init__(self, state: str, timestamp: str) -> None:
        self.state = state
        self.timestamp = timestamp


def _execution_rows(payload: Any) -> list[_StatusTime]:
    rows = []
    for status, timestamp in sorted(payload.task_state.items()):
        if not 0 <= status < len(TASK_STATUS):
            raise ValueError(f"taskState: unknown TaskStatus number {status}")
        rows.append(_StatusTime(TASK_STATUS[status], timestamp))
    return rows


# ---------------------------------------------------------------------------------------
# The specs. A path is dotted attribute names; several paths are alternatives, the first
# that reaches its last step (no None before it) gives the value, else `default`.


def _column(
    name: str,
    *paths: str,
    kind: int = STR,
    root: int = PAYLOAD,
    default: Any = None,
    falsy_null: bool = False,
    convert: Callable[[Any], Any] | None = None,
) -> Column:
    steps = [tuple(path.split(".")) for path in paths]
    return Column(name, kind, root, steps, default, falsy_null, convert)


def _id(name: str, path: str | None = None, root: int = PAYLOAD) -> Column:
    return _column(name, path or name, kind=HEX, root=root)


def _text(name: str, path: str | None = None, default: Any = None, root: int = PAYLOAD) -> Column:
    return _column(name, path or name, default=default, root=root)


def _obj(name: str, path: str | None = None, default: Any = None, root: int = PAYLOAD) -> Column:
    return _column(name, path or name, kind=OBJ, default=default, root=root)


def _pid(name: str, path: str | None = None, root: int = PAYLOAD) -> Column:
    """An int64 where Ray's 0 means "none"."""
    return _column(name, path or name, kind=INT, falsy_null=True, root=root)


def _constant(name: str, value: Any, kind: int = STR) -> Column:
    return _column(name, kind=kind, default=value)


def _common() -> list[Column]:
    """The columns every table has, from the RayEvent itself."""
    return [
        _text("session", "session_name", root=EVENT),
        _column("event_id", "event_id", kind=HEX_RAW, root=EVENT),
        _column("event_time", "timestamp", kind=TIME, root=EVENT),
        _id("emitter_node_id", "node_id", root=EVENT),
        _text("source_type", root=EVENT),
        _text("severity", root=EVENT),
        _text("message", root=EVENT),
    ]


def _function(descriptor: str) -> list[Column]:
    """(module, class, function, hash) of a FunctionDescriptor, whatever its language."""
    py, java, cpp = (
        f"{descriptor}.{language}_function_descriptor" for language in ("python", "java", "cpp")
    )
    return [
        _column("func_module", f"{py}.module_name", default=""),
        _column("func_class", *(f"{d}.class_name" for d in (py, java, cpp)), default=""),
        _column("func_name", *(f"{d}.function_name" for d in (py, java, cpp)), default=""),
        _column(
            "func_hash", f"{py}.function_hash", f"{java}.signature", f"{cpp}.caller", default=""
        ),
    ]


def _task_spec(descriptor: str) -> list[Column]:
    return [
        _text("language"),
        *_function(descriptor),
        _obj("required_resources"),
        _text("serialized_runtime_env"),
        _id("job_id"),
        _id("parent_task_id"),
        _id("placement_group_id"),
        _obj("label_selector"),
        _column("is_detached_actor", "is_detached_actor", kind=BOOL),
        _text("call_site"),
    ]


def _task_run() -> list[Column]:
    return [
        _text("error_type", "ray_error_info.error_type"),
        _text("error_message", "ray_error_info.error_message"),
        _text("stdout_file", "task_log_info.stdout_file"),
        _text("stderr_file", "task_log_info.stderr_file"),
        *(
            _column(name, f"task_log_info.{name}", kind=INT)
            for name in ("stdout_start", "stdout_end", "stderr_start", "stderr_end")
        ),
        _id("node_id"),
        _id("worker_id"),
        _pid("worker_pid"),
        _id("job_id"),
    ]


def _state_rows() -> list[Column]:
    """A state transition's own columns."""
    return [_text("state", root=ROW), _column("state_time", "timestamp", kind=TIME, root=ROW)]


def _death_info(**fields: str) -> list[Column]:
    """Columns of a transition's death info, by column name."""
    return [_text(name, f"death_info.{field}", root=ROW) for name, field in fields.items()]


def _specs() -> dict[str, TableBuilder]:
    """An empty builder per known event type (its payload field, table and columns)."""

    def table(
        event_type: str,
        name: str,
        columns: list[Column],
        rows: list[Column] = [],  # noqa: B006 - read only
        rows_path: str | None = None,
        rows_of: Callable[[Any], list[Any]] | None = None,
        placeholder: Any = None,
    ) -> tuple[str, TableBuilder]:
        builder = TableBuilder(
            name,
            PAYLOAD_FIELDS[event_type],
            [*_common(), *columns],
            rows,
            tuple(rows_path.split(".")) if rows_path else None,
            rows_of,
            placeholder,
        )
        return event_type, builder

    def lifecycle(
        event_type: str, name: str, columns: list[Column], rows: list[Column]
    ) -> tuple[str, TableBuilder]:
        """A table of state transitions: a row each (one with a null state if none)."""
        return table(
            event_type, name, columns, rows, "state_transitions", placeholder=_NO_TRANSITION
        )

    task_lifecycle = [_id("task_id"), _column("attempt_number", "task_attempt", kind=INT)]
    return dict(
        [
            table(
                "TASK_DEFINITION_EVENT",
                "task_definition",
                [
                    _id("task_id"),
                    _column("attempt_number", "task_attempt", kind=INT),
                    _text("task_type"),
                    _text("task_name"),
                    *_task_spec("task_func"),
                ],
            ),
            table(
                "ACTOR_TASK_DEFINITION_EVENT",
                "actor_task_definition",
                [
                    _id("task_id"),
                    _column("attempt_number", "task_attempt", kind=INT),
                    _id("actor_id"),
                    _text("task_name", "actor_task_name"),
                    *_task_spec("actor_func"),
                ],
            ),
            lifecycle(
                "TASK_LIFECYCLE_EVENT",
                "task_lifecycle",
                [
                    *task_lifecycle,
                    *_task_run(),
                    _column("is_debugger_paused", "is_debugger_paused", kind=BOOL),
                    _text("actor_repr_name"),
                ],
                _state_rows(),
            ),
            table(
                "TASK_EXECUTION_EVENT",
                "task_lifecycle",
                [
                    *task_lifecycle,
                    *_task_run(),
                    _constant("is_debugger_paused", None, BOOL),
                    _constant("actor_repr_name", ""),
                ],
                _state_rows(),
                "task_state",
                rows_of=_execution_rows,
                placeholder=_NO_TRANSITION,
            ),
            table(
                "TASK_PROFILE_EVENT",
                "task_profile",
                [
                    _id("task_id"),
                    _column("attempt_number", "attempt_number", kind=INT),
                    _id("job_id"),
                    _text("component_type", "profile_events.component_type"),
                    _id("component_id", "profile_events.component_id"),
                    _text("node_ip_address", "profile_events.node_ip_address"),
                ],
                [
                    _text("event_name", root=ROW),
                    _pid("start_time", root=ROW),
                    _pid("end_time", root=ROW),
                    _text("extra_data", root=ROW),
                ],
                "profile_events.events",
            ),
            table(
                "ACTOR_DEFINITION_EVENT",
                "actor_definition",
                [
                    _id("actor_id"),
                    _id("job_id"),
                    _column("is_detached", "is_detached", kind=BOOL),
                    _text("name"),
                    _text("ray_namespace"),
                    _text("serialized_runtime_env"),
                    _text("class_name"),
                    _obj("required_resources"),
                    _id("placement_group_id"),
                    _obj("label_selector"),
                    _text("call_site"),
                    _id("parent_id"),
                ],
            ),
            lifecycle(
                "ACTOR_LIFECYCLE_EVENT",
                "actor_lifecycle",
                [_id("actor_id")],
                [
                    *_state_rows(),
                    _id("node_id", root=ROW),
                    _id("worker_id", root=ROW),
                    _text("repr_name", root=ROW),
                    _pid("pid", root=ROW),
                    _pid("port", root=ROW),
                    _text("restart_reason", root=ROW),
                    _column("death_cause", "death_cause", root=ROW, convert=_death_cause),
                ],
            ),
            table(
                "DRIVER_JOB_DEFINITION_EVENT",
                "driver_job_definition",
                [
                    _id("job_id"),
                    _pid("driver_pid"),
                    _id("driver_node_id"),
                    _text("entrypoint"),
                    _text("serialized_runtime_env", "config.serialized_runtime_env", ""),
                    _obj("metadata", "config.metadata", {}),
                ],
            ),
            lifecycle(
                "DRIVER_JOB_LIFECYCLE_EVENT",
                "driver_job_lifecycle",
                [_id("job_id")],
                _state_rows(),
            ),
            table(
                "NODE_DEFINITION_EVENT",
                "node_definition",
                [
                    _id("node_id"),
                    _text("node_ip_address"),
                    _obj("labels"),
                    _column("start_time", "start_timestamp", kind=TIME, falsy_null=True),
                    _text("hostname"),
                    _text("node_name"),
                    _text("instance_id"),
                    _text("instance_type_name"),
                ],
            ),
            lifecycle(
                "NODE_LIFECYCLE_EVENT",
                "node_lifecycle",
                [_id("node_id")],
                [
                    *_state_rows(),
                    _obj("resources", root=ROW),
                    _text("alive_sub_state", root=ROW),
                    *_death_info(death_reason="reason", death_reason_message="reason_message"),
                ],
            ),
            table(
                "WORKER_DEFINITION_EVENT",
                "worker_definition",
                [
                    _id("worker_id"),
                    _id("node_id"),
                    _pid("pid"),
                    _text("worker_type"),
                    _id("job_id"),
                ],
            ),
            lifecycle(
                "WORKER_LIFECYCLE_EVENT",
                "worker_lifecycle",
                [_id("worker_id"), _id("job_id")],
                [
                    *_state_rows(),
                    *(
                        _column(
                            name, f"{name}_ms", kind=INT, root=ROW, convert=_ms_to_ns(f"{name}_ms")
                        )
                        for name in (
                            "worker_launch_time",
                            "worker_launched_time",
                            "start_time",
                            "end_time",
                        )
                    ),
                    *_death_info(exit_type="exit_type", exit_detail="exit_detail"),
                ],
            ),
            table(
                "PLACEMENT_GROUP_DEFINITION_EVENT",
                "placement_group_definition",
                [
                    _id("placement_group_id"),
                    _text("name"),
                    _text("ray_namespace"),
                    _text("strategy"),
                    _column("is_detached", "is_detached", kind=BOOL),
                    _id("creator_job_id"),
                    _id("creator_actor_id"),
                    _column("bundles", "bundles", kind=OBJ, convert=_bundles),
                    _id("soft_target_node_id"),
                    _pid("creation_request_received_time", "creation_request_received_ns"),
                ],
            ),
            lifecycle(
                "PLACEMENT_GROUP_LIFECYCLE_EVENT",
                "placement_group_lifecycle",
                [_id("placement_group_id")],
                [
                    *_state_rows(),
                    _text("scheduling_state", root=ROW),
                    _column("scheduling_attempt", "scheduling_attempt", kind=INT, root=ROW),
                    _column(
                        "highest_retry_delay_ms", "highest_retry_delay_ms", kind=FLOAT, root=ROW
                    ),
                    _column(
                        "bundle_placements",
                        "bundle_placements",
                        kind=OBJ,
                        root=ROW,
                        convert=_placements,
                    ),
                ],
            ),
            table(
                "SUBMISSION_JOB_DEFINITION_EVENT",
                "submission_job_definition",
                [
                    _text("submission_id"),
                    _text("entrypoint"),
                    _text("serialized_runtime_env", "config.serialized_runtime_env", ""),
                    _obj("metadata", "config.metadata", {}),
                    _column("entrypoint_num_cpus", "entrypoint_resources.num_cpus", kind=FLOAT),
                    _column("entrypoint_num_gpus", "entrypoint_resources.num_gpus", kind=FLOAT),
                    _column("entrypoint_memory", "entrypoint_resources.memory", kind=INT),
                    _obj("entrypoint_resources", "entrypoint_resources.custom_resources", {}),
                ],
            ),
            lifecycle(
                "SUBMISSION_JOB_LIFECYCLE_EVENT",
                "submission_job_lifecycle",
                [_text("submission_id")],
                [
                    *_state_rows(),
                    _text("state_message", "message", root=ROW),
                    _text("error_type", root=ROW),
                    _id("driver_node_id", root=ROW),
                    _text("driver_agent_http_address", root=ROW),
                    _column("driver_exit_code", "driver_exit_code", kind=INT, root=ROW),
                ],
            ),
            table(
                "PLATFORM_EVENT",
                "platform",
                [
                    _text("platform", "source.platform", ""),
                    _text("component", "source.component", ""),
                    _obj("source_metadata", "source.metadata", {}),
                    _text("object_kind"),
                    _text("object_name"),
                    _text("platform_message", "message"),
                    _text("reason"),
                    _obj("custom_fields"),
                ],
            ),
        ]
    )


_BUILDERS = _specs()
_OTHER = TableBuilder(
    OTHER_TABLE,
    None,
    [*_common(), _text("event_type", root=EVENT), _text("event_json", root=EVENT)],
)


Mark = dict[str, tuple[int, int]]
"""Events and rows per builder, at a point in time."""


class _Unknown:
    """An event of a type raylake does not know, with its JSON, for the generic table."""

    def __init__(self, event: Any, event_json: str) -> None:
        self.session_name = event.session_name
        self.event_id = event.event_id
        self.timestamp = event.timestamp
        self.node_id = event.node_id
        self.source_type = event.source_type
        self.severity = event.severity
        self.message = event.message
        self.event_type = event.event_type
        self.event_json = event_json


class EventColumns:
    """The typed columns of the bodies taken so far; `take` (or `normalize`) adds a body
    whole. `fallbacks` counts the bodies `take` left to the exact path."""

    def __init__(self) -> None:
        self.builders: dict[str, TableBuilder] = {t: b.fresh() for t, b in _BUILDERS.items()}
        self.builders[OTHER_TABLE] = _OTHER.fresh()
        # The exact path checks repeated events here, then forgets them.
        self.checks: dict[str, TableBuilder] = {
            t: b.fresh(sized=False) for t, b in self.builders.items()
        }
        self.fallbacks = 0

    def mark(self) -> Mark:
        return {table: builder.mark() for table, builder in self.builders.items()}

    def rollback(self, mark: Mark) -> None:
        """Forget every body added since `mark()` gave `mark`."""
        for table, builder in self.builders.items():
            builder.rollback(mark[table])

    def tables(self, ingest_id: str) -> Iterator[tuple[str, pa.Table]]:
        """One Arrow table per table that has rows (see `to_arrow.to_table`), one at a
        time, each table's columns given back once it is made: memory holds the columns
        or the table, not both. The columns are empty afterwards."""
        by_table: dict[str, list[TableBuilder]] = defaultdict(list)
        for builder in self.builders.values():
            if builder.rows:
                by_table[builder.table].append(builder)
        for table, found in by_table.items():
            data = to_table(table, found, ingest_id)
            for builder in found:
                builder.release()
            yield table, data


@dataclass(frozen=True)
class Taken:
    """What a caller needs to know of a body `take` added."""

    events: int  # events in the body
    new_ids: bytes  # ids (decoded eventId bytes) not in `seen` before, packed (EventIds.since)
    types: dict[str, int]  # events per eventType
    session: str  # the first event's sessionName ("" for an empty body)
    emitter: str  # lowercase hex of the first non-empty nodeId among the events, or ""
    sessions: set[str]  # every sessionName among the events


#: The fast path, per field naming.
FAST = {wire.naming: JsonFill(wire.event, _BUILDERS) for wire in (CAMEL, SNAKE)}


def take(body: bytes, seen: EventIds, into: EventColumns) -> Taken:
    """Validate a POST body (a JSON array of RayEvents) and add its rows to `into`, each
    event once (`seen` holds the ids taken before, and is updated). Raises BodyError
    exactly as `parse_body` + `normalize` do, and then `into` and `seen` are as they were."""
    try:
        found = FAST[wire_for(body).naming].take(body, seen, into.builders)
    except Declined:
        into.fallbacks += 1
    else:
        return Taken(*found)
    parsed = parse_body(body)
    mark = seen.added
    try:
        normalize(parsed, seen, into)
    except BodyError:
        seen.rollback(mark)
        raise
    return taken_of(parsed, seen.since(mark))


def taken_of(parsed: ParsedBody, new_ids: bytes) -> Taken:
    """What `take` tells of a body the exact path added."""
    events = parsed.events
    return Taken(
        len(events),
        new_ids,
        dict(Counter(event.event_type for event in events)),
        events[0].session_name if events else "",
        next((event.node_id.hex() for event in events if event.node_id), ""),
        {event.session_name for event in events},
    )


def normalize(parsed: ParsedBody, seen: EventIds, into: EventColumns) -> None:
    """Add a body's events to `into`, each event once: `seen` holds the ids taken before
    (it is updated). Raises BodyError, and then `into` is as it was."""
    marks = into.mark()
    unknown: list[tuple[int, bool]] = []
    try:
        refused = fill(parsed.events, into.builders, seen, into.checks, unknown)
        if unknown:
            refused += _add_unknown(parsed, unknown, into)
        if refused:
            raise _bad_time(parsed)
    except RowError as exc:
        into.rollback(marks)
        field = PAYLOAD_FIELDS[parsed.events[exc.index].event_type]
        raise BodyError(str(exc), exc.index, parsed.wire.spell(field)) from None
    except BodyError:
        into.rollback(marks)
        raise
    finally:
        for builder in into.checks.values():
            if builder.events:
                builder.rollback((0, 0))


def _add_unknown(parsed: ParsedBody, unknown: list[tuple[int, bool]], into: EventColumns) -> int:
    """Add the events of types without a table of their own; return how many of their
    times were refused (`fill` counted from zero)."""
    raw_events = parsed.wire.raw_events.decode(parsed.body)
    for index, repeated in unknown:
        event = _Unknown(parsed.events[index], bytes(raw_events[index]).decode())
        (into.checks if repeated else into.builders)[OTHER_TABLE].add(event)
    return into.builders[OTHER_TABLE].refused + into.checks[OTHER_TABLE].refused


def _time_columns(builder: TableBuilder) -> list[Column]:
    """The columns of times Ray writes as RFC 3339 strings."""
    return [c for c in [*builder.event_columns, *builder.row_columns] if c.kind == TIME]


def _reads(value: str | None) -> bool:
    """Whether a time column takes `value` (an absent time is a null)."""
    return value is None or time_of(value) is not None


def _step(root: Any, path: Sequence[str]) -> Any:
    for name in path[:-1]:
        root = getattr(root, name)
        if root is None:
            return None
    return getattr(root, path[-1])


def _times(event: Any) -> Iterator[tuple[str | None, list[str]]]:
    """Every time string of an event, with its field's path (snake_case)."""
    yield event.timestamp, ["timestamp"]
    builder = _BUILDERS.get(event.event_type)
    if builder is None or builder.payload is None:
        return
    payload = getattr(event, builder.payload)
    for column in _time_columns(builder):
        path = list(column.paths[0])
        if column.root == EVENT:
            continue  # the event's own time, above
        if column.root == PAYLOAD:
            yield _step(payload, path) or None, [builder.payload, *path]
        elif builder.rows_of is not None:  # a map of times: no field of its own
            for row in builder.rows_of(payload):
                yield _step(row, path), [builder.payload, *(builder.rows_path or ())]
        elif builder.rows_path is not None:
            *head, last = builder.rows_path
            for seq, row in enumerate(_step(payload, builder.rows_path) or ()):
                yield _step(row, path), [builder.payload, *head, f"{last}[{seq}]", *path]


def _bad_time(parsed: ParsedBody) -> BodyError:
    """The first event and field of the body whose time a time column refuses."""
    for index, event in enumerate(parsed.events):
        for value, field in _times(event):
            if not _reads(value):
                where = ".".join(map(parsed.wire.spell, field))
                return BodyError(f"expected an RFC 3339 timestamp, got {value!r}", index, where)
    raise AssertionError("a time was refused, yet every time of the body reads")
