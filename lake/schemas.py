"""The typed event tables of lake format v1, one per RayEvent family.

Every row carries the columns of `EVENT_COLUMNS`: the event's id, the row's position in
the event (lifecycle tables hold one row per state transition, the profile table one
row per profile entry), the event's own time, the emitting node (the RayEvent's
top-level `nodeId`), the base fields, and the ingest that wrote it. Ids are lowercase
hex strings, null for nil; times are `timestamp[ns, UTC]`. The hive partition columns
(`cluster`, `session`, `date`) live in the path, not in the files.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

TIME = pa.timestamp("ns", tz="UTC")
ID = pa.string()
STR = pa.string()
INT = pa.int64()
RESOURCES = pa.map_(pa.string(), pa.float64())
LABELS = pa.map_(pa.string(), pa.string())

EVENT_COLUMNS: list[pa.Field[Any]] = [
    pa.field("event_id", ID, nullable=False),
    pa.field("seq", pa.int32(), nullable=False),
    pa.field("event_time", TIME, nullable=False),
    pa.field("emitter_node_id", ID),
    pa.field("source_type", STR),
    pa.field("severity", STR),
    pa.field("message", STR),
    pa.field("ingest_id", STR, nullable=False),
]

Columns = list[tuple[str, pa.DataType]]

_FUNCTION: Columns = [
    ("func_module", STR),
    ("func_class", STR),
    ("func_name", STR),
    ("func_hash", STR),
]

_TASK_SPEC: Columns = [
    ("language", STR),
    *_FUNCTION,
    ("required_resources", RESOURCES),
    ("serialized_runtime_env", STR),
    ("job_id", ID),
    ("parent_task_id", ID),
    ("placement_group_id", ID),
    ("label_selector", LABELS),
    ("is_detached_actor", pa.bool_()),
    ("call_site", STR),
]

_TASK_RUN: Columns = [
    ("error_type", STR),
    ("error_message", STR),
    ("stdout_file", STR),
    ("stderr_file", STR),
    ("stdout_start", INT),
    ("stdout_end", INT),
    ("stderr_start", INT),
    ("stderr_end", INT),
    ("node_id", ID),
    ("worker_id", ID),
    ("worker_pid", INT),
    ("job_id", ID),
]

# Columns after the common ones, per table.
_PAYLOADS: dict[str, Columns] = {
    "task_definition": [
        ("task_id", ID),
        ("attempt_number", INT),
        ("task_type", STR),
        ("task_name", STR),
        *_TASK_SPEC,
    ],
    "actor_task_definition": [
        ("task_id", ID),
        ("attempt_number", INT),
        ("actor_id", ID),
        ("task_name", STR),
        *_TASK_SPEC,
    ],
    "task_lifecycle": [
        ("task_id", ID),
        ("attempt_number", INT),
        ("state", STR),
        ("state_time", TIME),
        *_TASK_RUN,
        ("is_debugger_paused", pa.bool_()),
        ("actor_repr_name", STR),
    ],
    "task_profile": [
        ("task_id", ID),
        ("attempt_number", INT),
        ("job_id", ID),
        ("component_type", STR),
        ("component_id", ID),
        ("node_ip_address", STR),
        ("event_name", STR),
        ("start_time", TIME),
        ("end_time", TIME),
        ("extra_data", STR),
    ],
    "actor_definition": [
        ("actor_id", ID),
        ("job_id", ID),
        ("is_detached", pa.bool_()),
        ("name", STR),
        ("ray_namespace", STR),
        ("serialized_runtime_env", STR),
        ("class_name", STR),
        ("required_resources", RESOURCES),
        ("placement_group_id", ID),
        ("label_selector", LABELS),
        ("call_site", STR),
        ("parent_id", ID),
    ],
    "actor_lifecycle": [
        ("actor_id", ID),
        ("state", STR),
        ("state_time", TIME),
        ("node_id", ID),
        ("worker_id", ID),
        ("repr_name", STR),
        ("pid", INT),
        ("port", INT),
        ("restart_reason", STR),
        ("death_cause", STR),
    ],
    "driver_job_definition": [
        ("job_id", ID),
        ("driver_pid", INT),
        ("driver_node_id", ID),
        ("entrypoint", STR),
        ("serialized_runtime_env", STR),
        ("metadata", LABELS),
    ],
    "driver_job_lifecycle": [
        ("job_id", ID),
        ("state", STR),
        ("state_time", TIME),
    ],
    "node_definition": [
        ("node_id", ID),
        ("node_ip_address", STR),
        ("labels", LABELS),
        ("start_time", TIME),
        ("hostname", STR),
        ("node_name", STR),
        ("instance_id", STR),
        ("instance_type_name", STR),
    ],
    "node_lifecycle": [
        ("node_id", ID),
        ("state", STR),
        ("state_time", TIME),
        ("resources", RESOURCES),
        ("alive_sub_state", STR),
        ("death_reason", STR),
        ("death_reason_message", STR),
    ],
    "worker_definition": [
        ("worker_id", ID),
        ("node_id", ID),
        ("pid", INT),
        ("worker_type", STR),
        ("job_id", ID),
    ],
    "worker_lifecycle": [
        ("worker_id", ID),
        ("job_id", ID),
        ("state", STR),
        ("state_time", TIME),
        ("worker_launch_time", TIME),
        ("worker_launched_time", TIME),
        ("start_time", TIME),
        ("end_time", TIME),
        ("exit_type", STR),
        ("exit_detail", STR),
    ],
    "placement_group_definition": [
        ("placement_group_id", ID),
        ("name", STR),
        ("ray_namespace", STR),
        ("strategy", STR),
        ("is_detached", pa.bool_()),
        ("creator_job_id", ID),
        ("creator_actor_id", ID),
        (
            "bundles",
            pa.list_(
                pa.struct(
                    [
                        ("bundle_index", INT),
                        ("unit_resources", RESOURCES),
                        ("label_selector", LABELS),
                    ]
                )
            ),
        ),
        ("soft_target_node_id", ID),
        ("creation_request_received_time", TIME),
    ],
    "placement_group_lifecycle": [
        ("placement_group_id", ID),
        ("state", STR),
        ("state_time", TIME),
        ("scheduling_state", STR),
        ("scheduling_attempt", INT),
        ("highest_retry_delay_ms", pa.float64()),
        ("bundle_placements", pa.list_(pa.struct([("bundle_index", INT), ("node_id", ID)]))),
    ],
    "submission_job_definition": [
        ("submission_id", STR),
        ("entrypoint", STR),
        ("serialized_runtime_env", STR),
        ("metadata", LABELS),
        ("entrypoint_num_cpus", pa.float64()),
        ("entrypoint_num_gpus", pa.float64()),
        ("entrypoint_memory", INT),
        ("entrypoint_resources", RESOURCES),
    ],
    "submission_job_lifecycle": [
        ("submission_id", STR),
        ("state", STR),
        ("state_time", TIME),
        ("state_message", STR),
        ("error_type", STR),
        ("driver_node_id", ID),
        ("driver_agent_http_address", STR),
        ("driver_exit_code", INT),
    ],
    "platform": [
        ("platform", STR),
        ("component", STR),
        ("source_metadata", LABELS),
        ("object_kind", STR),
        ("object_name", STR),
        ("platform_message", STR),
        ("reason", STR),
        ("custom_fields", LABELS),
    ],
    # Any event type raylake does not know (newer Ray): kept whole, as JSON.
    "other_events": [
        ("event_type", STR),
        ("event_json", STR),
    ],
}

SCHEMAS: dict[str, pa.Schema] = {
    table: pa.schema([*EVENT_COLUMNS, *(pa.field(n, t) for n, t in payload)])
    for table, payload in _PAYLOADS.items()
}

OTHER_TABLE = "other_events"

#: Tables parsed from snapshots of the head's dashboard API (Ray 2.60 emits no events
#: for submission jobs or placement groups); each row carries the snapshot's time.
_SUBMISSION_JOB_SNAPSHOT: Columns = [
    ("snapshot_time", TIME),
    ("submission_id", STR),
    ("job_id", ID),
    ("type", STR),
    ("status", STR),
    ("message", STR),
    ("error_type", STR),
    ("entrypoint", STR),
    ("start_time", TIME),
    ("end_time", TIME),
    ("metadata", LABELS),
    ("runtime_env", STR),
    ("driver_agent_http_address", STR),
    ("driver_node_id", ID),
    ("driver_exit_code", INT),
    ("driver_pid", INT),
    ("driver_node_ip", STR),
]

_PLACEMENT_GROUP_SNAPSHOT: Columns = [
    ("snapshot_time", TIME),
    ("placement_group_id", ID),
    ("name", STR),
    ("creator_job_id", ID),
    ("state", STR),
    ("is_detached", pa.bool_()),
    ("strategy", STR),
    (
        "bundles",
        pa.list_(
            pa.struct(
                [
                    ("bundle_index", INT),
                    ("unit_resources", RESOURCES),
                    ("node_id", ID),
                    ("label_selector", LABELS),
                ]
            )
        ),
    ),
    ("creation_request_received_time", TIME),
    ("scheduling_state", STR),
    ("scheduling_attempt", INT),
    ("body", STR),
]

SNAPSHOT_SCHEMAS: dict[str, pa.Schema] = {
    "submission_jobs": pa.schema(_SUBMISSION_JOB_SNAPSHOT),
    "placement_groups": pa.schema(_PLACEMENT_GROUP_SNAPSHOT),
}

#: Ray's TaskStatus in declaration order; a task's state is its last transition here.
TASK_STATUS: tuple[str, ...] = (
    "NIL",
    "PENDING_ARGS_AVAIL",
    "PENDING_NODE_ASSIGNMENT",
    "PENDING_OBJ_STORE_MEM_AVAIL",
    "PENDING_ARGS_FETCH",
    "SUBMITTED_TO_WORKER",
    "PENDING_ACTOR_TASK_ARGS_FETCH",
    "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY",
    "RUNNING",
    "RUNNING_IN_RAY_GET",
    "RUNNING_IN_RAY_WAIT",
    "FINISHED",
    "FAILED",
    "GETTING_AND_PINNING_ARGS",
)
