"""Actors, nodes, jobs, workers and placement groups as Ray's state API lists them
(`/api/v0/{actors,nodes,jobs,workers,placement_groups}`, `/api/v0/actors/summarize`),
and the job API's `/api/jobs/` and `/api/jobs/{id}`.

Ray builds these rows from GCS protobufs (`ray/dashboard/state_aggregator.py`); a field
GCS leaves at its proto default is printed as that default (`""`, `0`, `{}`), a field
with presence is `null` when unset, and 64-bit integers of some messages are strings.
The SELECTs below give each field Ray's name and default, the format functions give
it Ray's JSON type and key order.
Times are milliseconds truncated as GCS truncates them (`epoch_us // 1000`: DuckDB's
`epoch_ms` rounds).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, get
from litestar.di import Provide

from query.state import SessionState
from web.listing import (
    Column,
    ListRequestError,
    filter_sql,
    list_options,
    list_page,
    list_reply,
    ray_bad_request,
)
from web.reply import json_response, rest_response
from web.sessions import remembered, session_state

Row = dict[str, Any]

# Ray stores "never launched" (a driver) as -1 in a uint64 and prints it as such.
UNSET_UINT64 = 2**64 - 1


@dataclass(frozen=True)
class Entity:
    """How one state table is listed: Ray's order, fields, filters and columns."""

    # Ray's fields (named as Ray names them, with Ray's defaults) of the rows, in the
    # order Ray sorts them; Ray's filters apply to them.
    source: str
    filters: Mapping[str, Column]  # Ray's filterable fields
    base_columns: tuple[str, ...]  # what `detail=false` keeps, in Ray's order
    format: Callable[[Row], Row]  # a row as Ray's detail JSON
    select: str = "*"  # what `format` reads of the source


def _filterable(**kinds: type) -> dict[str, Column]:
    """Ray's filterable fields of an entity's source, by their Ray type (Ray leaves
    these entities' unset fields out of the row, so they match no filter)."""
    return {name: Column(kind, name, null_differs=False) for name, kind in kinds.items()}


def _map(pairs: Any) -> dict[str, Any]:
    """A DuckDB map (a list of key/value pairs in Arrow), `{}` when unset as in proto."""
    return dict(pairs or [])


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


# The id fields Ray turns from base64 bytes into hex, at any depth
# (`list_actors`: `fields_to_decode`).
_ACTOR_HEX_FIELDS = {"actor_id", "owner_id", "job_id", "node_id", "placement_group_id"}


def _proto_dict(value: Any) -> Any:
    """Proto JSON (camelCase, ids in base64) as Ray's dashboard prints it: proto field
    names, ids in hex."""
    if isinstance(value, list):
        return [_proto_dict(v) for v in value]
    if not isinstance(value, dict):
        return value
    result = {}
    for key, item in value.items():
        name = _snake(key)
        if name in _ACTOR_HEX_FIELDS and isinstance(item, str):
            result[name] = base64.b64decode(item).hex()
        else:
            result[name] = _proto_dict(item)
    return result


# --- runtime envs for browsers ----------------------------------------------------
# Ray 2.60 masks `env_vars` values, which may hold secrets, in what it answers a browser
# (`ray/dashboard/runtime_env_redaction.py`); the CLI and SDK get them as they are.

REDACTED = "<redacted>"
_BROWSER_HEADERS = (
    "Referer", "Origin", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-Site",
    "Sec-Fetch-User", "Access-Control-Request-Method", "Access-Control-Request-Headers",
)  # fmt: skip


def is_browser_request(request: Request[Any, Any, Any]) -> bool:
    """Ray's `is_browser_request`: a browser's user agent or a header only browsers send."""
    headers = request.headers
    return headers.get("User-Agent", "").startswith("Mozilla") or any(
        h in headers for h in _BROWSER_HEADERS
    )


def redact_runtime_env(env: Any) -> Any:
    if not isinstance(env, dict) or not isinstance(env.get("env_vars"), dict):
        return env
    return env | {"env_vars": dict.fromkeys(env["env_vars"], REDACTED)}


def redact_serialized_runtime_env(text: Any) -> Any:
    """Ray's `redact_serialized_runtime_env`: what does not parse is masked whole."""
    if not isinstance(text, str) or not text:
        return text
    try:
        env = json.loads(text)
    except json.JSONDecodeError:
        return REDACTED
    if not isinstance(env, dict):
        return REDACTED
    return json.dumps(redact_runtime_env(env), sort_keys=True)


def redact_row(row: Row) -> Row:
    """Ray's `redact_state_rows` for one row."""
    redacted = dict(row)
    if "runtime_env" in row:
        redacted["runtime_env"] = redact_runtime_env(row["runtime_env"])
    if "serialized_runtime_env" in row:
        redacted["serialized_runtime_env"] = redact_serialized_runtime_env(
            row["serialized_runtime_env"]
        )
    return redacted


# --- actors -----------------------------------------------------------------------

ACTOR_FIELDS = """
    actor_id,
    coalesce(class_name, '') AS class_name,
    coalesce(state, 'DEPENDENCIES_UNREADY') AS state,
    coalesce(job_id, '') AS job_id,
    coalesce(name, '') AS name,
    node_id,
    coalesce(pid, 0) AS pid,
    coalesce(ray_namespace, '') AS ray_namespace,
    coalesce(serialized_runtime_env, '') AS serialized_runtime_env,
    required_resources,
    death_cause,
    coalesce(is_detached, false) AS is_detached,
    placement_group_id,
    coalesce(repr_name, '') AS repr_name,
    coalesce(num_restarts, 0) AS num_restarts,
    coalesce(num_restarts_due_to_lineage_reconstruction, 0)
        AS num_restarts_due_to_lineage_reconstruction,
    coalesce(num_restarts_due_to_node_preemption, 0) AS num_restarts_due_to_node_preemption,
    call_site,
    label_selector
"""


def actor_state(row: Row) -> Row:
    """An `actors` row as Ray's ActorState (detail)."""
    death_cause = row["death_cause"]
    return {
        "actor_id": row["actor_id"],
        "class_name": row["class_name"],
        "state": row["state"],
        "job_id": row["job_id"],
        "name": row["name"],
        "node_id": row["node_id"],
        "pid": row["pid"],
        "ray_namespace": row["ray_namespace"],
        "serialized_runtime_env": row["serialized_runtime_env"],
        "required_resources": _map(row["required_resources"]),
        "death_cause": None if death_cause is None else _proto_dict(json.loads(death_cause)),
        "is_detached": row["is_detached"],
        "placement_group_id": row["placement_group_id"],
        "repr_name": row["repr_name"],
        # int64 and uint64 proto fields: strings in proto JSON.
        "num_restarts": str(row["num_restarts"]),
        "num_restarts_due_to_lineage_reconstruction": str(
            row["num_restarts_due_to_lineage_reconstruction"]
        ),
        "num_restarts_due_to_node_preemption": str(row["num_restarts_due_to_node_preemption"]),
        "call_site": row["call_site"],
        "label_selector": _map(row["label_selector"]),
        # Ray 2.60's actor events do not carry a label-selector fallback.
        "fallback_strategy": None,
    }


ACTORS = Entity(
    source=f"(SELECT {ACTOR_FIELDS} FROM actors ORDER BY actor_id)",
    filters=_filterable(
        actor_id=str,
        class_name=str,
        state=str,
        job_id=str,
        name=str,
        node_id=str,
        pid=int,
        ray_namespace=str,
        placement_group_id=str,
        repr_name=str,
    ),
    base_columns=(
        "actor_id",
        "class_name",
        "state",
        "job_id",
        "name",
        "node_id",
        "pid",
        "ray_namespace",
    ),
    format=actor_state,
)


# --- nodes ------------------------------------------------------------------------

NODE_FIELDS = """
    node_id,
    coalesce(node_ip, '') AS node_ip,
    coalesce(is_head_node, false) AS is_head_node,
    coalesce(state, 'ALIVE') AS state,
    state_message,
    coalesce(node_name, '') AS node_name,
    resources_total,
    labels,
    epoch_us(start_time) // 1000 AS start_time_ms,
    epoch_us(end_time) // 1000 AS end_time_ms
"""


def node_state(row: Row) -> Row:
    """A `nodes` row as Ray's NodeState (detail)."""
    return {
        "node_id": row["node_id"],
        "node_ip": row["node_ip"],
        "is_head_node": row["is_head_node"],
        "state": row["state"],
        "state_message": row["state_message"],
        "node_name": row["node_name"],
        "resources_total": _map(row["resources_total"]),
        "labels": _map(row["labels"]),
        # GCS's uint64 milliseconds: 0 while unknown (an alive node has no end).
        "start_time_ms": row["start_time_ms"] or 0,
        "end_time_ms": row["end_time_ms"] or 0,
    }


NODES = Entity(
    source=f"(SELECT {NODE_FIELDS} FROM nodes ORDER BY node_id)",
    filters=_filterable(node_id=str, node_ip=str, is_head_node=bool, state=str, node_name=str),
    base_columns=(
        "node_id",
        "node_ip",
        "is_head_node",
        "state",
        "state_message",
        "node_name",
        "resources_total",
        "labels",
    ),
    format=node_state,
)


# --- workers ----------------------------------------------------------------------

WORKER_FIELDS = """
    worker_id,
    coalesce(is_alive, false) AS is_alive,
    coalesce(worker_type, 'WORKER') AS worker_type,
    exit_type,
    coalesce(node_id, '') AS node_id,
    coalesce(ip, '') AS ip,
    coalesce(pid, 0) AS pid,
    exit_detail,
    epoch_us(worker_launch_time) // 1000 AS worker_launch_time_ms,
    epoch_us(worker_launched_time) // 1000 AS worker_launched_time_ms,
    epoch_us(start_time) // 1000 AS start_time_ms,
    epoch_us(end_time) // 1000 AS end_time_ms,
    -- Live debugger state: no event records it.
    NULL::BIGINT AS debugger_port,
    NULL::BIGINT AS num_paused_threads
"""


def worker_state(row: Row) -> Row:
    """A `workers` row as Ray's WorkerState (detail)."""

    def launch(ms: int | None) -> int:
        return UNSET_UINT64 if ms is None else ms

    return {
        "worker_id": row["worker_id"],
        "is_alive": row["is_alive"],
        "worker_type": row["worker_type"],
        "exit_type": row["exit_type"],
        "node_id": row["node_id"],
        "ip": row["ip"],
        "pid": row["pid"],
        "exit_detail": row["exit_detail"],
        "worker_launch_time_ms": launch(row["worker_launch_time_ms"]),
        "worker_launched_time_ms": launch(row["worker_launched_time_ms"]),
        "start_time_ms": row["start_time_ms"] or 0,
        "end_time_ms": row["end_time_ms"] or 0,
        "debugger_port": row["debugger_port"],
        "num_paused_threads": row["num_paused_threads"],
    }


WORKERS = Entity(
    source=f"(SELECT {WORKER_FIELDS} FROM workers ORDER BY worker_id)",
    filters=_filterable(
        worker_id=str,
        is_alive=bool,
        worker_type=str,
        exit_type=str,
        node_id=str,
        ip=str,
        pid=int,
        debugger_port=int,
        num_paused_threads=int,
    ),
    base_columns=("worker_id", "is_alive", "worker_type", "exit_type", "node_id", "ip", "pid"),
    format=worker_state,
)


# --- placement groups -------------------------------------------------------------

_PLACEMENT_GROUP_FIELDS = (
    "placement_group_id", "name", "creator_job_id", "state", "bundles", "is_detached",
    "stats", "topology_strategy", "topology_assignments",
)  # fmt: skip


def placement_group_state(row: Row) -> Row:
    """A placement group as Ray's PlacementGroupState (detail): the head's snapshot
    holds the row Ray answered."""
    answered = json.loads(row["body"])
    return {field: answered.get(field) for field in _PLACEMENT_GROUP_FIELDS}


PLACEMENT_GROUPS = Entity(
    source="(SELECT * FROM placement_groups ORDER BY placement_group_id)",
    select="body",
    filters=_filterable(
        placement_group_id=str, name=str, creator_job_id=str, state=str, is_detached=bool
    ),
    base_columns=("placement_group_id", "name", "creator_job_id", "state"),
    format=placement_group_state,
)


# --- jobs -------------------------------------------------------------------------

#: The `jobs` state table's fields that `job_details` formats.
JOB_FIELDS = """
    type, job_id, submission_id, driver_pid, driver_node_ip, status, entrypoint, message,
    error_type, epoch_us(start_time) // 1000 AS start_time,
    epoch_us(end_time) // 1000 AS end_time, metadata, serialized_runtime_env,
    driver_agent_http_address, driver_node_id, driver_exit_code
"""

# RuntimeEnv's named arguments, in the order its constructor stores them after any
# other key (`ray/runtime_env/runtime_env.py`).
_RUNTIME_ENV_ORDER = (
    "py_modules", "py_executable", "working_dir", "pip", "uv", "conda", "container",
    "env_vars", "config", "worker_process_setup_hook", "image_uri",
)  # fmt: skip


def driver_runtime_env(serialized: str | None) -> dict[str, Any]:
    """`RuntimeEnv.deserialize(serialized).to_dict()`, key order included."""
    env: dict[str, Any] = json.loads(serialized or "{}")
    others = {k: v for k, v in env.items() if k not in _RUNTIME_ENV_ORDER}
    return others | {k: env[k] for k in _RUNTIME_ENV_ORDER if k in env}


def job_details(row: Row) -> Row:
    """A `jobs` row (the fields of `JOB_FIELDS`) as Ray's JobDetails.

    A plain driver's details come from the GCS job table (`get_driver_jobs`): no
    message, no agent, node or exit code, and an end time of 0 while it runs. A
    submission job's come from its JobInfo, with its last driver if it has one."""
    has_driver = row["job_id"] is not None
    driver_info = (
        {
            "id": row["job_id"],
            "node_ip_address": row["driver_node_ip"] or "",
            "pid": str(row["driver_pid"] or 0),
        }
        if has_driver
        else None
    )
    if row["type"] == "DRIVER":
        return {
            "type": "DRIVER",
            "job_id": row["job_id"],
            "submission_id": None,
            "driver_info": driver_info,
            "status": row["status"],
            "entrypoint": row["entrypoint"] or "",
            "message": None,
            "error_type": None,
            "start_time": row["start_time"] or 0,
            "end_time": row["end_time"] or 0,
            "metadata": _map(row["metadata"]),
            "runtime_env": driver_runtime_env(row["serialized_runtime_env"]),
            "driver_agent_http_address": None,
            "driver_node_id": None,
            "driver_exit_code": None,
        }
    runtime_env = row["serialized_runtime_env"]
    return {
        "type": "SUBMISSION",
        "job_id": row["job_id"],
        "submission_id": row["submission_id"],
        "driver_info": driver_info,
        "status": row["status"],
        "entrypoint": row["entrypoint"],
        "message": row["message"],
        "error_type": row["error_type"],
        "start_time": row["start_time"],
        "end_time": row["end_time"],
        "metadata": _map(row["metadata"]),
        "runtime_env": None if runtime_env is None else json.loads(runtime_env),
        "driver_agent_http_address": row["driver_agent_http_address"],
        "driver_node_id": row["driver_node_id"],
        "driver_exit_code": row["driver_exit_code"],
    }


JOBS = Entity(
    # Ray sorts by job id, a submission job without a driver ("") first.
    source=f"""(SELECT {JOB_FIELDS} FROM jobs
                ORDER BY coalesce(job_id, ''), start_time, submission_id)""",
    filters=_filterable(job_id=str, type=str, status=str, submission_id=str),
    base_columns=(
        "job_id",
        "submission_id",
        "entrypoint",
        "type",
        "status",
        "message",
        "error_type",
        "driver_info",
    ),
    format=job_details,
)


# --- routes -----------------------------------------------------------------------


def _list(request: Request[Any, Any, Any], state: SessionState, entity: Entity) -> Response[bytes]:
    browser = is_browser_request(request)
    return remembered(request, state, lambda: _page(request, state, entity), browser=browser)


def _page(request: Request[Any, Any, Any], state: SessionState, entity: Entity) -> Response[bytes]:
    try:
        options = list_options(request)
        page = list_page(state, entity.source, entity.select, options, entity.filters)
    except ListRequestError as exc:
        return ray_bad_request(str(exc))
    rows = [entity.format(row) for row in page.rows.to_pylist()]
    if not options.detail:
        rows = [{key: row[key] for key in entity.base_columns} for row in rows]
    if is_browser_request(request):
        rows = [redact_row(row) for row in rows]
    return list_reply(page, rows)


_SESSION = {"session": Provide(session_state, sync_to_thread=True)}


@get("/api/v0/actors", dependencies=_SESSION, sync_to_thread=True)
def list_actors(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    return _list(request, session, ACTORS)


@get("/api/v0/nodes", dependencies=_SESSION, sync_to_thread=True)
def list_nodes(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    return _list(request, session, NODES)


@get("/api/v0/jobs", dependencies=_SESSION, sync_to_thread=True)
def list_jobs(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    return _list(request, session, JOBS)


@get("/api/v0/workers", dependencies=_SESSION, sync_to_thread=True)
def list_workers(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    return _list(request, session, WORKERS)


@get("/api/v0/placement_groups", dependencies=_SESSION, sync_to_thread=True)
def list_placement_groups(
    request: Request[Any, Any, Any], session: SessionState
) -> Response[bytes]:
    return _list(request, session, PLACEMENT_GROUPS)


def actor_summaries(counts: list[Row]) -> Row:
    """Ray's ActorSummaries from (class_name, state, count, first actor id) rows: classes
    and states in the order Ray meets them, walking the actors by id."""
    summary: dict[str, Row] = {}
    for row in sorted(counts, key=lambda r: r["first_actor_id"]):
        per_class = summary.setdefault(
            row["class_name"], {"class_name": row["class_name"], "state_counts": {}}
        )
        per_class["state_counts"][row["state"]] = row["count"]
    return {
        "summary": summary,
        "total_actors": sum(r["count"] for r in counts),
        "summary_by": "class",
    }


@get("/api/v0/actors/summarize", dependencies=_SESSION, sync_to_thread=True)
def summarize_actors(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    """Every actor the filters keep (Ray caps at 10,000; raylake does not), counted by
    class and state."""
    try:
        conditions, params = filter_sql(list_options(request).filters, ACTORS.filters)
    except ListRequestError as exc:
        return ray_bad_request(str(exc))
    where = " AND ".join(conditions) or "true"
    counts = session.query(
        f"""
        SELECT class_name, state, count(*) AS count, min(actor_id) AS first_actor_id
        FROM {ACTORS.source} WHERE {where} GROUP BY class_name, state
        """,
        params,
    ).to_pylist()
    total = session.query("SELECT count(*) AS n FROM actors").to_pylist()[0]["n"]
    summaries = actor_summaries(counts)
    return rest_response(
        {
            "result": {
                "total": total,
                "num_after_truncation": total,
                "num_filtered": summaries["total_actors"],
                "result": {"node_id_to_summary": {"cluster": summaries}},
                "partial_failure_warning": "",
                "warnings": None,
            }
        }
    )


@get("/api/jobs/", dependencies=_SESSION, sync_to_thread=True)
def list_job_details(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    """The job API's list: submission jobs (Ray lists them in its key-value store's
    order, which is none in particular; raylake by start time), then plain drivers by
    job id."""
    browser = is_browser_request(request)
    return remembered(request, session, lambda: _job_details(session, browser), browser=browser)


def _job_details(session: SessionState, browser: bool) -> Response[bytes]:
    rows = session.query(
        f"""
        SELECT {JOB_FIELDS} FROM jobs
        ORDER BY type = 'DRIVER', if(type = 'DRIVER', job_id, NULL),
                 start_time NULLS LAST, submission_id
        """
    ).to_pylist()
    jobs = [job_details(row) for row in rows]
    if browser:
        jobs = [redact_row(job) for job in jobs]
    return json_response(jobs)


@get("/api/jobs/{job_or_submission_id:str}", dependencies=_SESSION, sync_to_thread=True)
def get_job_details(
    request: Request[Any, Any, Any], job_or_submission_id: str, session: SessionState
) -> Response[Any]:
    """One job, looked up as Ray's `find_job_by_ids` does: a plain driver's job id, then
    a submission job's driver job id, then a submission id."""
    found = session.query(
        f"""
        SELECT {JOB_FIELDS} FROM jobs
        WHERE job_id = $id OR (type = 'SUBMISSION' AND submission_id = $id)
        ORDER BY CASE WHEN type = 'DRIVER' THEN 0 WHEN job_id = $id THEN 1 ELSE 2 END
        LIMIT 1
        """,
        {"id": job_or_submission_id},
    ).to_pylist()
    if not found:
        return Response(
            f"Job {job_or_submission_id} does not exist",
            status_code=404,
            media_type="text/plain",
        )
    job = job_details(found[0])
    return json_response(redact_row(job) if is_browser_request(request) else job)


ROUTES = [
    list_actors,
    summarize_actors,
    list_nodes,
    list_jobs,
    list_workers,
    list_placement_groups,
    list_job_details,
    get_job_details,
]
