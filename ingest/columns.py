"""Which columns of an event table vary from row to row within one event.

A lifecycle event makes a row per state transition and a profile event one per entry,
but most of their columns (the task, its error, its log offsets...) belong to the event
and are the same on every row. `normalize` gives those once per event and only the
columns named here per row; `to_arrow` expands the rest with one Arrow `take`.
"""

from __future__ import annotations

from lake.schemas import EVENT_COLUMNS, SCHEMAS

ROW_COLUMNS: dict[str, tuple[str, ...]] = {
    "task_lifecycle": ("state", "state_time"),
    "task_profile": ("event_name", "start_time", "end_time", "extra_data"),
    "actor_lifecycle": (
        "state",
        "state_time",
        "node_id",
        "worker_id",
        "repr_name",
        "pid",
        "port",
        "restart_reason",
        "death_cause",
    ),
    "driver_job_lifecycle": ("state", "state_time"),
    "node_lifecycle": (
        "state",
        "state_time",
        "resources",
        "alive_sub_state",
        "death_reason",
        "death_reason_message",
    ),
    "worker_lifecycle": (
        "state",
        "state_time",
        "worker_launch_time",
        "worker_launched_time",
        "start_time",
        "end_time",
        "exit_type",
        "exit_detail",
    ),
    "placement_group_lifecycle": (
        "state",
        "state_time",
        "scheduling_state",
        "scheduling_attempt",
        "highest_retry_delay_ms",
        "bundle_placements",
    ),
    "submission_job_lifecycle": (
        "state",
        "state_time",
        "state_message",
        "error_type",
        "driver_node_id",
        "driver_agent_http_address",
        "driver_exit_code",
    ),
}


def event_columns(table: str) -> tuple[str, ...]:
    """The payload columns an event gives once, in schema order."""
    common = {field.name for field in EVENT_COLUMNS}
    per_row = set(ROW_COLUMNS.get(table, ()))
    return tuple(n for n in SCHEMAS[table].names if n not in common and n not in per_row)


def row_columns(table: str) -> tuple[str, ...]:
    return ROW_COLUMNS.get(table, ())
