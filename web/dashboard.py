"""The Ray dashboard's own endpoints the UI calls, outside the state API: the node head's
logical actors and node summaries, the autoscaler's cluster status, version, timezone,
cluster metadata, Serve, and the probes of services a stopped cluster no longer runs.

Each answer is Ray 2.60's JSON for the session. What only a live node reports (its
physical stats, its raylet's core-worker stats) gets the value Ray gives a node that is
not reporting; the head collector's snapshots give what no event records (version,
timezone, cluster metadata, Serve).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any

from litestar import HttpMethod, Request, Response, get, route
from litestar.di import Provide

from lake.layout import snapshot_session_dir
from lake.store import Lake
from query.state import SessionState
from web.reply import ApiError, json_response, rest_response
from web.sessions import remembered, session_state

# ray/dashboard/modules/version.py: CURRENT_VERSION, the same for every Ray 2.x.
DASHBOARD_API_VERSION = "4"
# ray/dashboard/utils.py: HTTPStatusCode.INTERNAL_ERROR, how Ray answers a failed probe.
INTERNAL_ERROR = 500
NO_SERVICE = "raylake serves a recorded session; the cluster's services are not running"
SESSION = {"session": Provide(session_state, sync_to_thread=True)}


# -- Ray's JSON conventions --------------------------------------------------------------


def camel_case(name: str) -> str:
    """ray/dashboard/utils.py: to_camel_case."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def google_style(value: Any) -> Any:
    """ray/dashboard/utils.py: to_google_style, which `rest_response` applies to every
    key of its data (resource names and labels too)."""
    if isinstance(value, dict):
        return {camel_case(k): google_style(v) for k, v in value.items()}
    if isinstance(value, list):
        return [google_style(v) if isinstance(v, dict) else v for v in value]
    return value


def message_dict(fields: Sequence[tuple[str, int, Any, Any]]) -> dict[str, Any]:
    """A protobuf message as Ray prints it (`MessageToDict` with
    `always_print_fields_with_no_presence`): the fields that differ from their default
    in field-number order, then those at their default in declaration order. `fields`
    are (json name, field number, value, default) in declaration order; a value of None
    is a message-typed field that is not set, which is not printed."""
    present = [f for f in fields if f[2] is not None]
    changed = sorted((f for f in present if f[2] != f[3]), key=lambda f: f[1])
    unchanged = [f for f in present if f[2] == f[3]]
    return {name: value for name, _, value, _ in [*changed, *unchanged]}


def pairs(value: Any) -> dict[str, Any]:
    """DuckDB maps arrive from Arrow as lists of (key, value)."""
    return dict(value or [])


# -- logical actors (ray/dashboard/modules/node/node_head.py, datacenter.py) -------------

_INDEXED_PG_RESOURCE = re.compile(r"(.+)_group_(\d+)_([0-9a-zA-Z]+)")
_WILDCARD_PG_RESOURCE = re.compile(r"(.+)_group_([0-9a-zA-Z]+)")


def original_resources(resources: dict[str, float]) -> dict[str, float]:
    """ray/_private/utils.py: parse_pg_formatted_resources_to_original."""
    original = {}
    for key, value in resources.items():
        found = _INDEXED_PG_RESOURCE.match(key) or _WILDCARD_PG_RESOURCE.match(key)
        if found:
            if found.group(1) != "bundle":
                original[found.group(1)] = value
            continue
        original[key] = value
    return original


#: node_head.py: an actor's exit detail is the message of its death cause's context
#: (the first it has of these), `-` without one. In SQL: a JSON parse per actor in
#: Python would cost more than the rest of the actor's formatting.
EXIT_DETAIL_SQL = """
    CASE WHEN a.death_cause IS NULL THEN '-'
         WHEN json_exists(a.death_cause, '$.actorDiedErrorContext')
              THEN coalesce(a.death_cause ->> '$.actorDiedErrorContext.errorMessage', '')
         WHEN json_exists(a.death_cause, '$.runtimeEnvFailedContext')
              THEN coalesce(a.death_cause ->> '$.runtimeEnvFailedContext.errorMessage', '')
         WHEN json_exists(a.death_cause, '$.actorUnschedulableContext')
              THEN coalesce(a.death_cause ->> '$.actorUnschedulableContext.errorMessage', '')
         WHEN json_exists(a.death_cause, '$.creationTaskFailureContext')
              THEN coalesce(
                  a.death_cause ->> '$.creationTaskFailureContext.formattedExceptionString', '')
         ELSE '-' END
"""


def actor_info(row: dict[str, Any]) -> dict[str, Any]:
    """One actor as `/logical/actors` lists it, from its `ACTORS_SQL` row.

    The node head keeps the dict GCS published when the actor registered and later only
    updates its state fields, so the fields set at registration come first (by field
    number), then those still at their default then (declaration order)."""
    name, class_name = row["name"] or "", row["class_name"] or ""
    labels = pairs(row["label_selector"])
    address = {
        "nodeId": row["node_id"] or "",
        "ipAddress": row["node_ip"] or "",
        "port": row["port"] or 0,
        "workerId": row["worker_id"] or "",
    }
    fields: list[tuple[str, Any, bool]] = [  # (name, value, set at registration)
        ("actorId", row["actor_id"], True),
        ("jobId", row["job_id"] or "", True),
        ("state", row["state"], False),
        ("numRestarts", str(row["num_restarts"] or 0), False),
        ("address", address, True),
        ("name", name, bool(name)),
        ("timestamp", float(row["changed_ms"] or 0), False),
        ("pid", row["pid"] or 0, False),
        ("startTime", row["start_ms"] or 0, False),
        ("endTime", row["end_ms"] or 0, False),
        ("className", class_name, bool(class_name)),
        ("placementGroupId", row["placement_group_id"], True),
        ("reprName", row["repr_name"] or "", False),
        ("callSite", row["call_site"], True),
        ("labelSelector", labels, bool(labels)),
    ]
    ordered = [f for f in fields if f[2]] + [f for f in fields if not f[2]]
    actor = {key: value for key, value, _ in ordered if value is not None}
    actor["actorClass"] = class_name
    actor["exitDetail"] = row["exit_detail"]
    actor["requiredResources"] = original_resources(pairs(row["required_resources"]))
    # What the actor's node reports while it lives (its process, GPU and memory stats).
    actor["gpus"] = []
    actor["processStats"] = None
    actor["mem"] = []
    actor["tpus"] = []
    return actor


ACTORS_SQL = """
    SELECT a.actor_id, a.job_id, a.state, a.name, a.class_name, a.node_id, a.worker_id,
           a.pid, a.port, a.num_restarts, a.repr_name, a.placement_group_id, a.call_site,
           a.label_selector, a.required_resources, {exit_detail} AS exit_detail,
           epoch_ms(a.start_time) AS start_ms, epoch_ms(a.end_time) AS end_ms,
           epoch_ms(a.last_transition_time) AS changed_ms, n.node_ip
    FROM actors a LEFT JOIN nodes n USING (node_id)
    WHERE {condition}
    ORDER BY a.start_time NULLS LAST, a.actor_id
"""


def actor_infos(
    state: SessionState, condition: str = "true", params: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The session's actors by id, those meeting `condition` (SQL over `a`, the actor)."""
    sql = ACTORS_SQL.format(condition=condition, exit_detail=EXIT_DETAIL_SQL)
    rows = state.query(sql, params).to_pylist()
    return {row["actor_id"]: actor_info(row) for row in rows}


@get("/logical/actors", sync_to_thread=True, dependencies=SESSION)
def logical_actors(
    request: Request[Any, Any, Any], session: SessionState, ids: str | None = None
) -> Response[bytes]:
    return remembered(request, session, lambda: _logical_actors(session, ids))


def _logical_actors(session: SessionState, ids: str | None) -> Response[bytes]:
    wanted = ids.split(",") if ids is not None else None
    found = (
        actor_infos(session)
        if wanted is None
        else actor_infos(session, "list_contains($ids, a.actor_id)", {"ids": wanted})
    )
    actors = found if wanted is None else {i: found.get(i) for i in wanted}
    # Ray leaves these keys as GCS printed them (convert_google_style=False).
    return rest_response({"actors": actors}, "All actors fetched.")


@get("/logical/actors/{actor_id:str}", sync_to_thread=True, dependencies=SESSION)
def logical_actor(session: SessionState, actor_id: str) -> Response[bytes]:
    found = actor_infos(session, "a.actor_id = $id", {"id": actor_id})
    if actor_id not in found:
        raise ApiError(404, "unknown_actor", f"no actor {actor_id!r} in this session")
    return rest_response(google_style({"detail": found[actor_id]}), "Actor details fetched.")


# -- nodes (node_head.py, datacenter.py: get_node_info) ---------------------------------

NODES_SQL = """
    SELECT node_id, node_ip, is_head_node, state, state_message, death_reason,
           death_reason_message, node_name, resources_total, labels, hostname,
           instance_id, instance_type_name,
           epoch_ms(start_time) AS start_ms, epoch_ms(end_time) AS end_ms
    FROM nodes
    ORDER BY start_time NULLS LAST, node_id
"""


def node_rows(state: SessionState) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = state.query(NODES_SQL).to_pylist()
    return rows


def gcs_node_info(row: dict[str, Any]) -> dict[str, Any]:
    """GCS's GcsNodeInfo of the node as the node head prints it. Sockets, ports, temp
    and session directories, the node type and the autoscaler's snapshot are in no
    event Ray 2.60 exports: they are left unset, as GCS prints an unset field."""
    dead = row["state"] == "DEAD"
    death = (
        message_dict(
            [
                ("reason", 1, row["death_reason"] or "UNSPECIFIED", "UNSPECIFIED"),
                ("reasonMessage", 2, row["death_reason_message"] or "", ""),
            ]
        )
        if dead
        else None
    )
    return message_dict(
        [
            ("nodeId", 1, row["node_id"], ""),
            ("nodeManagerAddress", 2, row["node_ip"] or "", ""),
            ("rayletSocketName", 3, "", ""),
            ("objectStoreSocketName", 4, "", ""),
            ("nodeManagerPort", 5, 0, 0),
            ("objectManagerPort", 6, 0, 0),
            ("state", 7, row["state"] or "ALIVE", "ALIVE"),
            ("nodeManagerHostname", 8, row["hostname"] or "", ""),
            ("metricsExportPort", 9, 0, 0),
            ("runtimeEnvAgentPort", 27, 0, 0),
            ("metricsAgentPort", 30, 0, 0),
            ("dashboardAgentListenPort", 31, 0, 0),
            ("resourcesTotal", 11, pairs(row["resources_total"]), {}),
            ("nodeName", 12, row["node_name"] or "", ""),
            ("instanceId", 13, row["instance_id"] or "", ""),
            ("nodeTypeName", 14, "", ""),
            ("instanceTypeName", 15, row["instance_type_name"] or "", ""),
            ("startTimeMs", 23, str(row["start_ms"] or 0), "0"),
            ("endTimeMs", 24, str(row["end_ms"] or 0), "0"),
            ("isHeadNode", 25, bool(row["is_head_node"]), False),
            ("labels", 26, pairs(row["labels"]), {}),
            ("stateSnapshot", 28, None, None),
            ("deathInfo", 29, death, None),
            ("tempDir", 32, "", ""),
            ("sessionDir", 33, "", ""),
        ]
    )


def node_info(row: dict[str, Any]) -> dict[str, Any]:
    """A node as `get_node_info` builds it for a node that reports no stats: no physical
    stats, no raylet stats (so an empty object store), GCS's node info, no TPUs."""
    raylet = {"object_store_used_memory": 0, "object_store_available_memory": 0}
    raylet.update(gcs_node_info(row))
    raylet["stateMessage"] = row["state_message"]
    return {"raylet": raylet, "tpus": []}


@get("/nodes", sync_to_thread=True, dependencies=SESSION)
def nodes(session: SessionState, view: str | None = None) -> Response[bytes]:
    rows = node_rows(session)
    if view == "summary":
        data = {
            "summary": [node_info(row) for row in rows],
            "node_logical_resources": logical_resources(active_nodes(rows, session)),
        }
        return rest_response(google_style(data), "Node summary fetched.")
    if view is not None and view.lower() == "hostnamelist":
        alive = {row["hostname"] for row in rows if row["state"] == "ALIVE"}
        return rest_response(
            google_style({"host_name_list": sorted(alive)}), "Node hostname list fetched."
        )
    return json_response(
        {"result": False, "msg": f"Unknown view {view}", "data": {}}, status_code=INTERNAL_ERROR
    )


@get("/nodes/{node_id:str}", sync_to_thread=True, dependencies=SESSION)
def node(session: SessionState, node_id: str) -> Response[bytes]:
    row = next((r for r in node_rows(session) if r["node_id"] == node_id), None)
    if row is None:
        raise ApiError(404, "unknown_node", f"no node {node_id!r} in this session")
    detail = node_info(row)
    detail["actors"] = actor_infos(session, "a.node_id = $id", {"id": node_id})
    detail["workers"] = []  # the node's live worker processes
    return rest_response(google_style({"detail": detail}), "Node details fetched.")


# -- cluster status (ray/autoscaler/_private/util.py: format_info_string) ----------------

_MEMORY_UNITS = [("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)]
_MEMORY = ("memory", "object_store_memory")

Usage = dict[str, tuple[float, float]]


def format_memory(size: float) -> str:
    """util.py: format_memory."""
    for suffix, unit in _MEMORY_UNITS:
        if size >= unit:
            return f"{size / unit:.2f}{suffix}"
    return f"{int(size)}B"


def usage_lines(usage: Usage) -> list[str]:
    """util.py: parse_usage, verbose (a recorded node has no placement-group usage)."""
    lines = []
    for resource, (used, total) in sorted(usage.items()):
        if "node:" in resource:
            continue
        if resource in _MEMORY:
            lines.append(f"{format_memory(used)}/{format_memory(total)} {resource}")
        else:
            lines.append(f"{used}/{total} {resource}")
    return lines


def idle_usage(resources: dict[str, float]) -> Usage:
    """A node's resources with nothing in use: a recorded session has no live load."""
    return {name: (0.0, float(total)) for name, total in resources.items()}


def cluster_time_ms(rows: list[dict[str, Any]], state: SessionState) -> int:
    """The cluster's last moment: when its head stopped, else its latest event."""
    head_end = [r["end_ms"] for r in rows if r["is_head_node"] and r["end_ms"]]
    if head_end:
        return int(max(head_end))
    lasts = [e.last_event_time for e in state.entries if e.last_event_time]
    moment = dt.datetime.fromisoformat(max(lasts)) if lasts else dt.datetime.now(dt.UTC)
    return int(moment.timestamp() * 1000)


def active_nodes(rows: list[dict[str, Any]], state: SessionState) -> list[dict[str, Any]]:
    """The nodes still up at the cluster's last moment (nodes that died earlier are
    gone from the autoscaler's view, as they were from the live one)."""
    moment = cluster_time_ms(rows, state)
    return [r for r in rows if r["end_ms"] is None or r["end_ms"] >= moment]


def logical_resources(active: list[dict[str, Any]]) -> dict[str, str]:
    """node_head.py: get_nodes_logical_resources, per node id."""
    return {
        r["node_id"]: "\n".join(usage_lines(idle_usage(pairs(r["resources_total"]))))
        for r in active
    }


def total_usage(active: list[dict[str, Any]]) -> Usage:
    totals: dict[str, float] = {}
    for row in active:
        for name, amount in pairs(row["resources_total"]).items():
            totals[name] = totals.get(name, 0.0) + amount
    return idle_usage(totals)


def node_type(node_id: str) -> str:
    """util.py: format_readonly_node_type, the type of a node no autoscaler launched."""
    return f"node_{node_id}"


def status_text(active: list[dict[str, Any]], moment: dt.datetime) -> str:
    """util.py: format_info_string for the legacy (v1) autoscaler's summary, which Ray
    2.60 shows for a cluster it did not launch: no idle section, no demands."""
    header = "=" * 8 + f" Autoscaler status: {moment} " + "=" * 8
    separator = "-" * len(header)
    nodes_report = "\n".join(f" 1 {node_type(r['node_id'])}" for r in active)
    usage_report = "".join(f" {line}\n" for line in usage_lines(total_usage(active)))
    text = f"""{header}
Node status
{separator}
Active:
{nodes_report or " (no active nodes)"}
Pending:
 (no pending nodes)
Recent failures:
 (no failures)

Resources
{separator}
Total Usage:
{usage_report}
From request_resources:
 (none)
Pending Demands:
 (no resource demands)"""
    return text.strip()


def status_report(active: list[dict[str, Any]], moment_s: float) -> dict[str, Any]:
    """The autoscaler's status record (monitor.py), without its live timings."""
    usage = total_usage(active)
    return {
        "time": moment_s,
        "autoscaler_report": {
            "active_nodes": {node_type(r["node_id"]): 1 for r in active},
            "idle_nodes": None,
            "pending_nodes": [],
            "pending_launches": {},
            "failed_nodes": [],
            "node_availability_summary": {"node_availabilities": {}},
            "node_activities": None,
            "pending_resources": {},
            "node_type_mapping": {r["node_id"]: node_type(r["node_id"]) for r in active},
            "legacy": True,
        },
        "load_metrics_report": {
            "usage": {name: list(pair) for name, pair in usage.items()},
            "resource_demand": [],
            "pg_demand": [],
            "request_demand": [],
            "node_types": node_types(active),
            "head_ip": None,
            "usage_by_node": {
                r["node_id"]: {
                    name: list(pair)
                    for name, pair in idle_usage(pairs(r["resources_total"])).items()
                }
                for r in active
            },
            "node_type_mapping": None,
            "idle_time_map": None,
        },
    }


def node_types(active: list[dict[str, Any]]) -> list[list[Any]]:
    """util.py: freq_of_dicts over the nodes' resources, as (resources, count) pairs."""
    counted: list[list[Any]] = []
    for row in active:
        resources = pairs(row["resources_total"])
        same = next((entry for entry in counted if entry[0] == resources), None)
        if same is None:
            counted.append([resources, 1])
        else:
            same[1] += 1
    return counted


def cluster_zone(lake: Lake, state: SessionState) -> dt.tzinfo:
    """The head's timezone (the autoscaler prints its local time), UTC when unknown."""
    snapshot = newest_snapshot(lake, state, "timezone")
    offset = snapshot.get("offset") if isinstance(snapshot, dict) else None
    if not offset:
        return dt.UTC
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset.lstrip("+-").split(":")
    return dt.timezone(sign * dt.timedelta(hours=int(hours), minutes=int(minutes)))


@get("/api/cluster_status", sync_to_thread=True, dependencies=SESSION)
def cluster_status(
    request: Request[Any, Any, Any], session: SessionState, format: str = "0"
) -> Response[bytes]:
    rows = node_rows(session)
    active = active_nodes(rows, session)
    moment_ms = cluster_time_ms(rows, session)
    if format == "1":
        zone = cluster_zone(_lake(request), session)
        local = dt.datetime.fromtimestamp(moment_ms / 1000, zone).replace(tzinfo=None)
        text = {"cluster_status": status_text(active, local)}
        return rest_response(google_style(text), "Got formatted cluster status.")
    data: dict[str, Any] = {
        "autoscaling_status": None,
        "autoscaling_error": None,
        "cluster_status": status_report(active, moment_ms / 1000),
    }
    return rest_response(google_style(data), "Got cluster status.")


# -- the head's snapshots: version, timezone, cluster metadata, Serve --------------------


def newest_snapshot(lake: Lake, state: SessionState, endpoint: str) -> Any:
    """The newest body the head collector kept of one endpoint, None without one."""
    directory = f"{snapshot_session_dir(state.ref.cluster, state.ref.session)}/{endpoint}"
    bodies = list(lake.list_files(directory, ".json"))
    if not bodies:
        return None
    newest = max(bodies, key=lambda path: int(path.rsplit("/", 1)[-1].removesuffix(".json")))
    return json.loads(lake.read_bytes(newest))


def _lake(request: Request[Any, Any, Any]) -> Lake:
    lake: Lake = request.app.state.lake
    return lake


@get("/api/version", sync_to_thread=True, dependencies=SESSION)
def version(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    snapshot = newest_snapshot(_lake(request), session, "version")
    if snapshot is not None:
        return json_response(snapshot)
    return json_response(
        {
            "version": DASHBOARD_API_VERSION,
            "ray_version": session.ray_version,
            "ray_commit": None,
            "session_name": session.ref.session,
        }
    )


@get("/timezone", sync_to_thread=True, dependencies=SESSION)
def timezone(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    snapshot = newest_snapshot(_lake(request), session, "timezone")
    # Ray's answer when it cannot name the zone; the UI then uses the browser's.
    return json_response(snapshot if snapshot is not None else {"offset": None, "value": None})


@get("/api/v0/cluster_metadata", sync_to_thread=True, dependencies=SESSION)
def cluster_metadata(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    snapshot = newest_snapshot(_lake(request), session, "cluster_metadata")
    if snapshot is not None:
        return json_response(snapshot)
    # usage_lib.py: the keys Ray always records; only the version is known without it.
    data = {"ray_version": session.ray_version, "python_version": None, "ray_init_cluster": None}
    return rest_response(google_style(data))


@get("/api/serve/applications/", sync_to_thread=True, dependencies=SESSION)
def serve_applications(
    request: Request[Any, Any, Any], session: SessionState, api_type: str | None = None
) -> Response[bytes]:
    valid = ("imperative", "declarative")  # serve/schema.py: APIType's user values
    if api_type and api_type.lower() not in valid:
        return Response(
            f"Invalid 'api_type' value: '{api_type}'. Must be one of: {', '.join(valid)}".encode(),
            status_code=400,
            media_type="text/plain",
        )
    snapshot = newest_snapshot(_lake(request), session, "serve_applications")
    if snapshot is not None:
        return json_response(snapshot)
    # serve/schema.py: ServeInstanceDetails.get_empty_schema_dict, a cluster without Serve.
    return json_response(
        {"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": None}
    )


# -- probes of services a recorded session does not run ----------------------------------


@get("/api/grafana_health")
async def grafana_health() -> Response[bytes]:
    """metrics_head.py: a Grafana that does not answer."""
    return json_response(
        {"result": False, "msg": "Grafana healthcheck failed", "data": {"exception": NO_SERVICE}},
        status_code=INTERNAL_ERROR,
    )


@get("/api/prometheus_health")
async def prometheus_health() -> Response[bytes]:
    """metrics_head.py: a Prometheus that does not answer."""
    return json_response(
        {"result": False, "msg": "prometheus healthcheck failed.", "data": {"reason": NO_SERVICE}},
        status_code=INTERNAL_ERROR,
    )


@get("/api/authentication_mode")
async def authentication_mode() -> Response[bytes]:
    """Ray's token mode is not used: raylake's own `--auth-token` guards every route
    before the UI gets here."""
    return json_response({"authentication_mode": "disabled"})


@get("/usage_stats_enabled")
async def usage_stats_enabled() -> Response[bytes]:
    data = {"usage_stats_enabled": False, "usage_stats_prompt_enabled": False}
    return rest_response(google_style(data), "Fetched usage stats enabled")


@get("/api/profiling_enabled")
async def profiling_enabled() -> Response[bytes]:
    """No process of a recorded session can be profiled; the UI keeps its defaults."""
    data = {"profiling_enabled": False, "profiling_defaults": {}}
    return rest_response(google_style(data))


@get("/api/v0/runtime_env_redaction")
async def runtime_env_redaction() -> Response[bytes]:
    """Like Ray's default (RAY_DASHBOARD_REDACT_RUNTIME_ENV): the state API masks
    runtime-env secrets for browsers (web/entities.py)."""
    return rest_response(google_style({"redaction_enabled": True}))


@route("/api/v0/platform_events", http_method=[HttpMethod.GET, HttpMethod.HEAD])
async def platform_events() -> Response[bytes]:
    """platform_event_head.py with no platform event provider. The UI probes it with
    HEAD first (aiohttp answers HEAD on every GET route)."""
    return rest_response({"events": []}, "Retrieved platform events")


@get("/api/data/datasets/{job_id:str}")
async def datasets(job_id: str) -> Response[bytes]:
    """data_head.py: Ray Data's stats actor of a recorded session holds no datasets."""
    return json_response({"datasets": []})


ROUTES: list[Any] = [
    logical_actors,
    logical_actor,
    nodes,
    node,
    cluster_status,
    version,
    timezone,
    cluster_metadata,
    serve_applications,
    grafana_health,
    prometheus_health,
    authentication_mode,
    usage_stats_enabled,
    profiling_enabled,
    runtime_env_redaction,
    platform_events,
    datasets,
]
