"""Turn validated RayEvents into rows of the lake's typed tables.

Pure functions over the decoded structs. Each event gives its shared columns once and
one payload tuple per row, in the order of the table's schema (`lake.schemas.SCHEMAS`)
after the common event columns. Times are still the RFC 3339 strings Ray sent; they
are checked here, once per body, and parsed by `to_arrow`. Events repeated inside one
body are kept once (Ray delivers at least once).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import msgspec

from ingest.parse import BodyError, ParsedBody
from ingest.to_arrow import BadTime, Row, TableRows, find_bad_time
from ingest.wire import PAYLOAD_FIELDS
from lake.schemas import OTHER_TABLE, TASK_STATUS

Rows = dict[str, TableRows]

_NS_PER_MS = 1_000_000
_MAX_MS = (2**63 - 1) // _NS_PER_MS  # Ray marks "unset" with uint64 max


@functools.lru_cache(maxsize=1 << 16)  # job, node, worker and parent ids recur
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


_NO_TRANSITION: list[Any] = [_NoTransition()]


def _transitions(payload: Any) -> list[Any]:
    return payload.state_transitions or _NO_TRANSITION


_UINT64_MAX = 2**64 - 1


def _ms_to_ns(ms: int, field: str) -> int | None:
    """Milliseconds (uint64) as nanoseconds; null for 0 and for Ray's "unset" marks."""
    if ms > _UINT64_MAX:
        raise ValueError(f"{field}: expected an unsigned 64-bit integer, got {ms}")
    return ms * _NS_PER_MS if 0 < ms <= _MAX_MS else None


def _function(descriptor: Any) -> tuple[str, str, str, str]:
    """(module, class, function, hash) of a FunctionDescriptor, whatever its language."""
    if descriptor is None:
        return ("", "", "", "")
    if (py := descriptor.python_function_descriptor) is not None:
        return (py.module_name, py.class_name, py.function_name, py.function_hash)
    if (java := descriptor.java_function_descriptor) is not None:
        return ("", java.class_name, java.function_name, java.signature)
    if (cpp := descriptor.cpp_function_descriptor) is not None:
        return ("", cpp.class_name, cpp.function_name, cpp.caller)
    return ("", "", "", "")


def _task_spec(p: Any, descriptor: Any) -> Row:
    return (
        p.language,
        *_function(descriptor),
        p.required_resources,
        p.serialized_runtime_env,
        hex_id(p.job_id),
        hex_id(p.parent_task_id),
        hex_id(p.placement_group_id),
        p.label_selector,
        p.is_detached_actor,
        p.call_site,
    )


def _task_run(p: Any) -> Row:
    error = p.ray_error_info
    log = p.task_log_info
    return (
        error.error_type if error else None,
        error.error_message if error else None,
        log.stdout_file if log else None,
        log.stderr_file if log else None,
        log.stdout_start if log else None,
        log.stdout_end if log else None,
        log.stderr_start if log else None,
        log.stderr_end if log else None,
        hex_id(p.node_id),
        hex_id(p.worker_id),
        p.worker_pid or None,
        hex_id(p.job_id),
    )


# A builder gives what one event contributes to its table: the payload values the
# event has once (`columns.event_columns`) and a tuple of the per-row values
# (`columns.row_columns`) for each of its rows.
Built = tuple[Row, list[Row]]
Builder = Callable[[Any], Built]
_ONE_ROW: list[Row] = [()]


def _task_definition(p: Any) -> Built:
    task = (hex_id(p.task_id), p.task_attempt, p.task_type, p.task_name)
    return (*task, *_task_spec(p, p.task_func)), _ONE_ROW


def _actor_task_definition(p: Any) -> Built:
    task = (hex_id(p.task_id), p.task_attempt, hex_id(p.actor_id), p.actor_task_name)
    return (*task, *_task_spec(p, p.actor_func)), _ONE_ROW


def _task_lifecycle(p: Any) -> Built:
    event = (
        hex_id(p.task_id),
        p.task_attempt,
        *_task_run(p),
        p.is_debugger_paused,
        p.actor_repr_name,
    )
    return event, [(t.state, t.timestamp) for t in _transitions(p)]


def _task_execution(p: Any) -> Built:
    event = (hex_id(p.task_id), p.task_attempt, *_task_run(p), None, "")
    rows: list[Row] = []
    for status, timestamp in sorted(p.task_state.items()):
        if not 0 <= status < len(TASK_STATUS):
            raise ValueError(f"taskState: unknown TaskStatus number {status}")
        rows.append((TASK_STATUS[status], timestamp))
    return event, rows or [(None, None)]


def _task_profile(p: Any) -> Built:
    profile = p.profile_events
    task = (hex_id(p.task_id), p.attempt_number, hex_id(p.job_id))
    if profile is None:
        return (*task, None, None, None), []
    event = (*task, profile.component_type, hex_id(profile.component_id), profile.node_ip_address)
    rows = [
        (e.event_name, e.start_time or None, e.end_time or None, e.extra_data)
        for e in profile.events
    ]
    return event, rows


def _actor_definition(p: Any) -> Built:
    event = (
        hex_id(p.actor_id),
        hex_id(p.job_id),
        p.is_detached,
        p.name,
        p.ray_namespace,
        p.serialized_runtime_env,
        p.class_name,
        p.required_resources,
        hex_id(p.placement_group_id),
        p.label_selector,
        p.call_site,
        hex_id(p.parent_id),
    )
    return event, _ONE_ROW


def _actor_lifecycle(p: Any) -> Built:
    rows = [
        (
            t.state,
            t.timestamp,
            hex_id(t.node_id),
            hex_id(t.worker_id),
            t.repr_name,
            t.pid or None,
            t.port or None,
            t.restart_reason,
            _camel_json(bytes(t.death_cause)),
        )
        for t in _transitions(p)
    ]
    return (hex_id(p.actor_id),), rows


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel_key(k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_json(raw: bytes) -> str | None:
    """Ray's death cause as camelCase JSON, whichever naming the sender used (the
    message holds no maps, so every key is a field name)."""
    if not raw:
        return None
    return msgspec.json.encode(_camel(msgspec.json.decode(raw))).decode()


def _driver_job_definition(p: Any) -> Built:
    config = p.config
    event = (
        hex_id(p.job_id),
        p.driver_pid or None,
        hex_id(p.driver_node_id),
        p.entrypoint,
        config.serialized_runtime_env if config else "",
        config.metadata if config else {},
    )
    return event, _ONE_ROW


def _driver_job_lifecycle(p: Any) -> Built:
    return (hex_id(p.job_id),), [(t.state, t.timestamp) for t in _transitions(p)]


def _node_definition(p: Any) -> Built:
    event = (
        hex_id(p.node_id),
        p.node_ip_address,
        p.labels,
        p.start_timestamp or None,
        p.hostname,
        p.node_name,
        p.instance_id,
        p.instance_type_name,
    )
    return event, _ONE_ROW


def _node_lifecycle(p: Any) -> Built:
    rows = [
        (
            t.state,
            t.timestamp,
            t.resources,
            t.alive_sub_state,
            t.death_info.reason if t.death_info else None,
            t.death_info.reason_message if t.death_info else None,
        )
        for t in _transitions(p)
    ]
    return (hex_id(p.node_id),), rows


def _worker_definition(p: Any) -> Built:
    event = (hex_id(p.worker_id), hex_id(p.node_id), p.pid or None, p.worker_type, hex_id(p.job_id))
    return event, _ONE_ROW


def _worker_lifecycle(p: Any) -> Built:
    rows = [
        (
            t.state,
            t.timestamp,
            _ms_to_ns(t.worker_launch_time_ms, "worker_launch_time_ms"),
            _ms_to_ns(t.worker_launched_time_ms, "worker_launched_time_ms"),
            _ms_to_ns(t.start_time_ms, "start_time_ms"),
            _ms_to_ns(t.end_time_ms, "end_time_ms"),
            t.death_info.exit_type if t.death_info else None,
            t.death_info.exit_detail if t.death_info else None,
        )
        for t in _transitions(p)
    ]
    return (hex_id(p.worker_id), hex_id(p.job_id)), rows


def _placement_group_definition(p: Any) -> Built:
    bundles = [
        {
            "bundle_index": b.bundle_index,
            "unit_resources": b.unit_resources,
            "label_selector": b.label_selector,
        }
        for b in p.bundles
    ]
    event = (
        hex_id(p.placement_group_id),
        p.name,
        p.ray_namespace,
        p.strategy,
        p.is_detached,
        hex_id(p.creator_job_id),
        hex_id(p.creator_actor_id),
        bundles,
        hex_id(p.soft_target_node_id),
        p.creation_request_received_ns or None,
    )
    return event, _ONE_ROW


def _placement_group_lifecycle(p: Any) -> Built:
    rows = [
        (
            t.state,
            t.timestamp,
            t.scheduling_state,
            t.scheduling_attempt,
            t.highest_retry_delay_ms,
            [
                {"bundle_index": b.bundle_index, "node_id": hex_id(b.node_id)}
                for b in t.bundle_placements
            ],
        )
        for t in _transitions(p)
    ]
    return (hex_id(p.placement_group_id),), rows


def _submission_job_definition(p: Any) -> Built:
    config, resources = p.config, p.entrypoint_resources
    event = (
        p.submission_id,
        p.entrypoint,
        config.serialized_runtime_env if config else "",
        config.metadata if config else {},
        resources.num_cpus if resources else None,
        resources.num_gpus if resources else None,
        resources.memory if resources else None,
        resources.custom_resources if resources else {},
    )
    return event, _ONE_ROW


def _submission_job_lifecycle(p: Any) -> Built:
    rows = [
        (
            t.state,
            t.timestamp,
            t.message,
            t.error_type,
            hex_id(t.driver_node_id),
            t.driver_agent_http_address,
            t.driver_exit_code,
        )
        for t in _transitions(p)
    ]
    return (p.submission_id,), rows


def _platform_event(p: Any) -> Built:
    source = p.source
    event = (
        source.platform if source else "",
        source.component if source else "",
        source.metadata if source else {},
        p.object_kind,
        p.object_name,
        p.message,
        p.reason,
        p.custom_fields,
    )
    return event, _ONE_ROW


BUILDERS: dict[str, tuple[str, Builder]] = {
    "task_definition_event": ("task_definition", _task_definition),
    "actor_task_definition_event": ("actor_task_definition", _actor_task_definition),
    "task_lifecycle_event": ("task_lifecycle", _task_lifecycle),
    "task_execution_event": ("task_lifecycle", _task_execution),
    "task_profile_events": ("task_profile", _task_profile),
    "actor_definition_event": ("actor_definition", _actor_definition),
    "actor_lifecycle_event": ("actor_lifecycle", _actor_lifecycle),
    "driver_job_definition_event": ("driver_job_definition", _driver_job_definition),
    "driver_job_lifecycle_event": ("driver_job_lifecycle", _driver_job_lifecycle),
    "node_definition_event": ("node_definition", _node_definition),
    "node_lifecycle_event": ("node_lifecycle", _node_lifecycle),
    "worker_definition_event": ("worker_definition", _worker_definition),
    "worker_lifecycle_event": ("worker_lifecycle", _worker_lifecycle),
    "placement_group_definition_event": (
        "placement_group_definition",
        _placement_group_definition,
    ),
    "placement_group_lifecycle_event": ("placement_group_lifecycle", _placement_group_lifecycle),
    "submission_job_definition_event": ("submission_job_definition", _submission_job_definition),
    "submission_job_lifecycle_event": ("submission_job_lifecycle", _submission_job_lifecycle),
    "platform_event": ("platform", _platform_event),
}


_DISPATCH: dict[str, tuple[str, str, Builder]] = {
    event_type: (field, *BUILDERS[field])
    for event_type, field in PAYLOAD_FIELDS.items()
    if field in BUILDERS
}


def normalize(parsed: ParsedBody, seen: set[bytes] | None = None) -> Rows:
    """Rows per table for one parsed body (without `ingest_id`, which `to_arrow` adds).

    `seen` holds event ids already taken (by earlier bodies of the same ingest); it is
    updated, so a batch of bodies keeps each event once.
    """
    seen = set() if seen is None else seen
    rows: Rows = defaultdict(TableRows)
    raw_events: list[msgspec.Raw] | None = None
    for index, event in enumerate(parsed.events):
        event_id = event.event_id
        duplicate = event_id in seen
        seen.add(event_id)
        dispatch = _DISPATCH.get(event.event_type)
        if dispatch is None:
            if raw_events is None:
                raw_events = parsed.wire.raw_events.decode(parsed.body)
            table = OTHER_TABLE
            values, payload_rows = (event.event_type, bytes(raw_events[index]).decode()), _ONE_ROW
        else:
            field, table, build = dispatch
            try:
                values, payload_rows = build(getattr(event, field))
            except ValueError as exc:
                raise BodyError(str(exc), index, parsed.wire.spell(field)) from None
        shared = (
            event.session_name,
            event_id.hex(),
            event.timestamp,
            hex_id(event.node_id),
            event.source_type,
            event.severity,
            event.message,
            *values,
        )
        if duplicate:
            # Kept once, but still checked: a body is accepted or rejected whole.
            alone = TableRows()
            alone.add(shared, payload_rows)
            if (bad := find_bad_time({table: alone})) is not None:
                raise _time_error(parsed, bad, index)
            continue
        rows[table].add(shared, payload_rows)
    if (bad := find_bad_time(rows)) is not None:
        raise _time_error(parsed, bad)
    return dict(rows)


def _time_error(parsed: ParsedBody, bad: BadTime, index: int | None = None) -> BodyError:
    """Point at the event and field that carried an unparsable time."""
    seq = bad.seq
    if index is None:  # the first event with the id: duplicates are checked on their own
        index = next(i for i, e in enumerate(parsed.events) if e.event_id.hex() == bad.event_id)
    spell = parsed.wire.spell
    payload = spell(PAYLOAD_FIELDS[parsed.events[index].event_type])
    if bad.column == "event_time":
        field = spell("timestamp")
    elif bad.column == "state_time":
        field = f"{payload}.{spell('state_transitions')}[{seq}].{spell('timestamp')}"
    else:
        field = f"{payload}.{spell('start_timestamp')}"
    return BodyError(f"expected an RFC 3339 timestamp, got {bad.value!r}", index, field)
