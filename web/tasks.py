"""Tasks: `/api/v0/tasks`, its summaries and the timeline, as Ray 2.60's dashboard
answers them (`ray/dashboard/state_aggregator.py`, `ray/util/state/common.py`,
`ray/_private/profiling.py`).

Ray lists the task attempts GCS holds a definition for, sorted by task id, each
formatted by `protobuf_to_task_state_dict`. raylake filters, counts and pages in SQL
over the session's `tasks` table, formats only the page's rows, and summarizes with
SQL aggregates, so a session of a million attempts answers as fast as a small one.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from litestar import Request, Response, get
from litestar.di import Provide

from query.state import SessionState
from web.listing import (
    Column,
    ListOptions,
    ListRequestError,
    Page,
    filter_sql,
    list_options,
    list_reply,
    ray_bad_request,
)
from web.reply import json_response
from web.sessions import remembered, session_state

#: TaskState's filterable fields (`ray/util/state/common.py`), as the tasks table holds them.
TASK_COLUMNS: dict[str, Column] = {
    "task_id": Column(str, "task_id"),
    "attempt_number": Column(int, "attempt_number"),
    "name": Column(str, "name"),
    "state": Column(str, "state"),
    "job_id": Column(str, "job_id"),
    "actor_id": Column(str, "actor_id"),
    "type": Column(str, "type"),
    "func_or_class_name": Column(str, "func_or_class_name"),
    "parent_task_id": Column(str, "parent_task_id"),
    "node_id": Column(str, "node_id"),
    "worker_id": Column(str, "worker_id"),
    "worker_pid": Column(int, "worker_pid"),
    "error_type": Column(str, "error_type"),
    "language": Column(str, "language"),
    "placement_group_id": Column(str, "placement_group_id"),
    "is_debugger_paused": Column(bool, "is_debugger_paused"),
}

#: The filters GCS applies before Ray counts `total` (state_manager.py builds them from
#: these exact keys); the others only narrow `num_filtered`.
GCS_FILTER_KEYS = frozenset({"task_id", "job_id", "actor_id", "name", "state"})

#: Ray sorts the attempts it lists by task id; the attempts of one task follow GCS's
#: storage order, which the events do not record, so raylake lists them by number.
ORDER = "task_id, attempt_number"

BASE_SQL = """
    task_id, attempt_number, name, state, job_id, actor_id, type, func_or_class_name,
    parent_task_id, node_id, worker_id, worker_pid, error_type
"""

DETAIL_SQL = f"""{BASE_SQL},
    language, required_resources, serialized_runtime_env, placement_group_id,
    list_transform(events, lambda e: {{'state': e.state, 'created_ms': epoch_us(e.time) // 1000}})
        AS events,
    epoch_us(creation_time) // 1000 AS creation_time_ms,
    epoch_us(start_time) // 1000 AS start_time_ms,
    epoch_us(end_time) // 1000 AS end_time_ms,
    stdout_file, stderr_file, stdout_start, stdout_end, stderr_start, stderr_end,
    error_message, is_debugger_paused, call_site, label_selector
"""

PROFILE_SQL = """
    task_id, attempt_number, component_type, component_id, node_ip_address, event_name,
    start_ns, end_ns, extra_data
"""

#: TaskLogInfo's fields in proto order; MessageToDict prints only those that are set.
LOG_FIELDS = (
    "stdout_file",
    "stderr_file",
    "stdout_start",
    "stdout_end",
    "stderr_start",
    "stderr_end",
)

#: RuntimeEnvConfig's defaults (`ray/runtime_env/runtime_env.py`); the core worker
#: fills them in when the runtime env has no `config` of its own.
RUNTIME_ENV_CONFIG_DEFAULTS: dict[str, Any] = {
    "setup_timeout_seconds": 600,
    "eager_install": True,
    "log_files": [],
}

DRIVER_TASK_ID_PREFIX = "ffffffffffffffffffffffffffffffffffffffff"


# --- rows -> Ray's JSON ---------------------------------------------------------


def runtime_env_info(serialized: str | None) -> dict[str, Any]:
    """RuntimeEnvInfo as MessageToDict prints it. The events carry only the serialized
    runtime env; the rest is derived from it as `get_runtime_env_info` does."""
    text = serialized or "{}"
    env = json.loads(text)
    info: dict[str, Any] = {"serialized_runtime_env": text}
    working_dir = env.get("working_dir") or ""
    py_modules = [m for m in env.get("py_modules") or [] if "://" in m]
    if "://" in working_dir or py_modules:
        info["uris"] = {
            "working_dir_uri": working_dir if "://" in working_dir else "",
            "py_modules_uris": py_modules,
        }
    config = {**RUNTIME_ENV_CONFIG_DEFAULTS, **(env.get("config") or {})}
    info["runtime_env_config"] = {k: config[k] for k in RUNTIME_ENV_CONFIG_DEFAULTS}
    return info


def profiling_data(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """ProfileEvents of one attempt, `{}` without any. The events must come in the
    order their spans ended: a worker records a span when it ends and GCS appends
    them as they arrive."""
    if not events:
        return {}
    last = events[-1]
    return {
        "component_type": last["component_type"],
        "component_id": last["component_id"],
        "node_ip_address": last["node_ip_address"],
        "events": [
            {
                "start_time": e["start_ns"] / 1e6,
                "end_time": e["end_ns"] / 1e6,
                "extra_data": json.loads(e["extra_data"]) if e["extra_data"] else {},
                "event_name": e["event_name"],
            }
            for e in events
        ],
    }


def _ms(value: int | None) -> float | None:
    # Ray computes `int(ns) // 1e6`: whole milliseconds, as a float.
    return None if value is None else float(value)


def task_state(
    row: dict[str, Any], profile: Sequence[dict[str, Any]], detail: bool
) -> dict[str, Any]:
    """One attempt as Ray's TaskState dict, in its field order."""
    task = {
        "task_id": row["task_id"],
        "attempt_number": row["attempt_number"],
        "name": row["name"],
        "state": row["state"],
        "job_id": row["job_id"],
        "actor_id": row["actor_id"],
        "type": row["type"],
        "func_or_class_name": row["func_or_class_name"],
        "parent_task_id": row["parent_task_id"],
        "node_id": row["node_id"],
        "worker_id": row["worker_id"],
        "worker_pid": row["worker_pid"],
        "error_type": row["error_type"],
    }
    if not detail:
        return task
    log = {k: row[k] for k in LOG_FIELDS if row[k] is not None}
    task.update(
        {
            "language": row["language"],
            "required_resources": dict(row["required_resources"] or []),
            "runtime_env_info": runtime_env_info(row["serialized_runtime_env"]),
            "placement_group_id": row["placement_group_id"],
            "events": [
                {"state": e["state"], "created_ms": _ms(e["created_ms"])}
                for e in row["events"] or []
            ],
            "profiling_data": profiling_data(profile),
            "creation_time_ms": _ms(row["creation_time_ms"]),
            "start_time_ms": _ms(row["start_time_ms"]),
            "end_time_ms": _ms(row["end_time_ms"]),
            "task_log_info": log or None,
            "error_message": row["error_message"],
            "is_debugger_paused": row["is_debugger_paused"],
            "call_site": row["call_site"],
            "label_selector": dict(row["label_selector"] or []),
            # Ray 2.60's core worker gives every task an empty fallback strategy unless
            # one was set; the lake does not keep the events' field yet.
            "fallback_strategy": {"options": []},
        }
    )
    return task


# --- summaries ------------------------------------------------------------------


def summary_by_func_name(groups: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """TaskSummaries.to_summary_by_func_name from (key, type, state) counts, in the
    list order of their first attempts."""
    summary: dict[str, dict[str, Any]] = {}
    totals = {"NORMAL_TASK": 0, "ACTOR_TASK": 0, "ACTOR_CREATION_TASK": 0}
    for group in groups:
        key = group["key"]
        entry = summary.setdefault(
            key, {"func_or_class_name": key, "type": group["type"], "state_counts": {}}
        )
        counts = entry["state_counts"]
        counts[group["state"]] = counts.get(group["state"], 0) + group["n"]
        if group["type"] in totals:
            totals[group["type"]] += group["n"]
    return {
        "summary": summary,
        "total_tasks": totals["NORMAL_TASK"],
        "total_actor_tasks": totals["ACTOR_TASK"],
        "total_actor_scheduled": totals["ACTOR_CREATION_TASK"],
        "summary_by": "func_name",
    }


@dataclass(slots=True)
class Group:
    """Ray's NestedTaskSummary."""

    name: str
    key: str
    type: str
    timestamp: int | None = None
    state_counts: dict[str, int] = field(default_factory=dict)
    children: list[Group] = field(default_factory=list)
    link: tuple[str, str] | None = None

    def to_ray(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "type": self.type,
            "timestamp": self.timestamp,
            "state_counts": self.state_counts,
            "children": [c.to_ray() for c in self.children],
            "link": None if self.link is None else {"type": self.link[0], "id": self.link[1]},
        }


def _int_ms(value: float | None) -> int | None:
    return None if value is None else int(value)


class LineageTree:
    """Steps 1 and 2 of TaskSummaries.to_summary_by_lineage: each task under the task
    that submitted it, actor tasks under their actor, the actor under the task that
    created it. `tasks` are one row per task (its first attempt's fields and every
    attempt's state), in task id order; `actors` maps actor ids to their rows."""

    def __init__(self, tasks: Sequence[dict[str, Any]], actors: dict[str, dict[str, Any]]) -> None:
        self.by_id = {t["task_id"]: t for t in tasks}
        self.creation_task_of_actor = {
            t["actor_id"]: t["task_id"] for t in tasks if t["type"] == "ACTOR_CREATION_TASK"
        }
        self.actors = actors
        self.groups: dict[str, Group] = {}
        self.roots: list[Group] = []
        self.counting: dict[str, Any] = {}
        self.totals = {"NORMAL_TASK": 0, "ACTOR_TASK": 0, "ACTOR_CREATION_TASK": 0}
        for task in tasks:
            # Ray stamps a new actor group with the creation time of the task it is
            # counting when the group is made.
            self.counting = task
            group = self.task_group(task["task_id"])
            if group is None:
                continue  # a parent is missing: Ray drops the subtree
            for state in task["states"]:
                group.state_counts[state] = group.state_counts.get(state, 0) + 1
            if task["type"] in self.totals:
                self.totals[task["type"]] += len(task["states"])

    def _attach(self, group: Group, parent_task_id: str | None) -> None:
        if not parent_task_id or parent_task_id.startswith(DRIVER_TASK_ID_PREFIX):
            self.roots.append(group)
            return
        parent = self.task_group(parent_task_id)
        if parent is not None:
            parent.children.append(group)

    def task_group(self, task_id: str) -> Group | None:
        if task_id in self.groups:
            return self.groups[task_id]
        task = self.by_id.get(task_id)
        if task is None:
            return None
        group = Group(
            name=task["name"] or task["func_or_class_name"],
            key=task_id,
            type=task["type"],
            timestamp=_int_ms(task["creation_time_ms"]),
            link=("task", task_id),
        )
        self.groups[task_id] = group
        if task["type"] in ("ACTOR_TASK", "ACTOR_CREATION_TASK"):
            actor = self.actor_group(task["actor_id"])
            if actor is not None:
                actor.children.append(group)
        else:
            self._attach(group, task["parent_task_id"])
        return group

    def actor_group(self, actor_id: str) -> Group | None:
        key = f"actor:{actor_id}"
        if key not in self.groups:
            creation = self.by_id.get(self.creation_task_of_actor.get(actor_id, ""))
            if creation is None:
                return None
            actor = self.actors.get(actor_id)
            if actor is None:
                name = creation["func_or_class_name"].split(".")[0]
            else:
                name = actor["repr_name"] or actor["class_name"]
            self.groups[key] = Group(
                name=name,
                key=key,
                type="ACTOR",
                timestamp=_int_ms(self.counting["creation_time_ms"]),
                link=("actor", actor_id),
            )
            self._attach(self.groups[key], creation["parent_task_id"])
        return self.groups[key]


def merge_siblings(siblings: list[Group]) -> tuple[list[Group], int | None]:
    """Step 3: siblings of one name under a GROUP (when more than one), each group
    stamped with its earliest child; also returns the earliest timestamp."""
    if not siblings:
        return siblings, None
    groups: dict[str, Group] = {}
    earliest: int | None = None
    for child in siblings:
        child.children, child_earliest = merge_siblings(child.children)
        if child_earliest and child_earliest < (child.timestamp or sys.maxsize):
            child.timestamp = child_earliest
        group = groups.setdefault(child.name, Group(name=child.name, key=child.name, type="GROUP"))
        group.children.append(child)
        if child.timestamp and child.timestamp < (group.timestamp or sys.maxsize):
            group.timestamp = child.timestamp
            if child.timestamp < (earliest or sys.maxsize):
                earliest = child.timestamp
    return [g if len(g.children) > 1 else g.children[0] for g in groups.values()], earliest


RUNNING = ("RUNNING", "RUNNING_IN_RAY_GET", "RUNNING_IN_RAY_WAIT")
PENDING = (
    "PENDING_ARGS_AVAIL",
    "PENDING_NODE_ASSIGNMENT",
    "PENDING_OBJ_STORE_MEM_AVAIL",
    "PENDING_ARGS_FETCH",
)


def _order(group: Group) -> tuple[int, int, int, int, int]:
    counts = group.state_counts
    return (
        -sum(counts.get(s, 0) for s in RUNNING),
        -sum(counts.get(s, 0) for s in PENDING),
        -counts.get("FAILED", 0),
        group.timestamp or sys.maxsize,
        0 if group.type == "ACTOR_CREATION_TASK" else 1,
    )


def sort_groups(groups: list[Group]) -> None:
    """Step 4's order: most running, then most pending, then most failed first, then
    by time, actor creation tasks first. Ray sorts five times, stably, by one key each
    (the last is the primary); one stable sort by the keys together is the same."""
    groups.sort(key=_order)


def add_totals(group: Group) -> Group:
    """Step 5: a group counts its children's states too; children sorted."""
    for child in group.children:
        for state, count in add_totals(child).state_counts.items():
            group.state_counts[state] = group.state_counts.get(state, 0) + count
    if group.children:
        sort_groups(group.children)
    return group


def summary_by_lineage(
    tasks: Sequence[dict[str, Any]], actors: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """TaskSummaries.to_summary_by_lineage over one row per task."""
    tree = LineageTree(tasks, actors)
    roots, _ = merge_siblings(tree.roots)
    roots = [add_totals(g) for g in roots]
    sort_groups(roots)
    return {
        "summary": [g.to_ray() for g in roots],
        "total_tasks": tree.totals["NORMAL_TASK"],
        "total_actor_tasks": tree.totals["ACTOR_TASK"],
        "total_actor_scheduled": tree.totals["ACTOR_CREATION_TASK"],
        "summary_by": "lineage",
    }


# --- timeline -------------------------------------------------------------------

#: `ray/_private/profiling.py: _default_color_mapping`.
COLORS = {
    "worker_idle": "cq_build_abandoned",
    "task": "rail_response",
    "task:deserialize_arguments": "rail_load",
    "task:execute": "rail_animation",
    "task:store_outputs": "rail_idle",
    "wait_for_function": "detailed_memory_dump",
    "ray.get": "good",
    "ray.put": "terrible",
    "ray.wait": "vsync_highlight_color",
    "submit_task": "background_memory_dump",
    "fetch_and_run_function": "detailed_memory_dump",
    "register_remote_function": "detailed_memory_dump",
}


def chrome_tracing(tasks: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
    """`chrome_tracing_dump` over (task, its profiling_data) pairs in list order: one
    complete event per profile event, nodes as pids and workers as tids, named by
    metadata events."""
    events: list[dict[str, Any]] = []
    nodes: dict[str, int] = {}
    workers: dict[tuple[int, str], int] = {}
    for task, profile in tasks:
        if not profile or profile["component_type"] not in ("worker", "driver"):
            continue
        node = nodes.setdefault(profile["node_ip_address"], len(nodes))
        component = f"{profile['component_type']}:{profile['component_id']}"
        worker = workers.setdefault((node, component), len(workers))
        for event in profile["events"]:
            args = event["extra_data"]
            args.update(
                task_id=task["task_id"],
                job_id=task["job_id"],
                attempt_number=task["attempt_number"],
                func_or_class_name=task["func_or_class_name"],
                actor_id=task["actor_id"],
            )
            start = event["start_time"] * 1e3
            events.append(
                {
                    "cat": event["event_name"],
                    "name": args.get("name", event["event_name"]),
                    "pid": node,
                    "tid": worker,
                    "ts": start,
                    "dur": event["end_time"] * 1e3 - start,
                    "cname": COLORS.get(args.get("cname", event["event_name"]), "generic_work"),
                    "args": args,
                    "ph": "X",
                }
            )
    events += [
        {"name": "process_name", "args": {"name": f"Node {ip}"}, "pid": i, "tid": None, "ph": "M"}
        for ip, i in nodes.items()
    ]
    events += [
        {"name": "thread_name", "args": {"name": component}, "pid": node, "tid": i, "ph": "M"}
        for (node, component), i in workers.items()
    ]
    return events


# --- SQL ------------------------------------------------------------------------


def task_filter(
    filters: Sequence[tuple[str, str, str]], *, exclude_driver: bool
) -> tuple[str, list[Any]]:
    """The condition for the attempts Ray lists: those GCS has a definition for,
    drivers left out unless asked, then the request's filters."""
    conditions, params = filter_sql(filters, TASK_COLUMNS)
    base = ["type IS NOT NULL"]
    if exclude_driver:
        base.append("type <> 'DRIVER_TASK'")
    return " AND ".join([*base, *conditions]), params


@dataclass(frozen=True)
class Counts:
    total: int  # after GCS's own filters (Ray's total and num_after_truncation)
    num_filtered: int  # after all filters


def task_counts(state: SessionState, options: ListOptions) -> tuple[Counts, str, list[Any]]:
    """Ray's counts, and the full filter's SQL for the rows themselves."""
    gcs = [f for f in options.filters if f[0] in GCS_FILTER_KEYS]
    gcs_where, gcs_params = task_filter(gcs, exclude_driver=options.exclude_driver)
    where, params = task_filter(options.filters, exclude_driver=options.exclude_driver)
    row = state.query(
        f"SELECT count(*) FILTER ({gcs_where}) AS total, count(*) FILTER ({where}) AS filtered "
        "FROM tasks",
        [*gcs_params, *params],
    ).to_pylist()[0]
    return Counts(int(row["total"]), int(row["filtered"])), where, params


def page_profiles(
    state: SessionState, rows: Sequence[dict[str, Any]]
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """The profile events of the page's attempts only, in the order their spans ended."""
    if not rows:
        return {}
    ids = sorted({r["task_id"] for r in rows})
    found: dict[tuple[str, int], list[dict[str, Any]]] = {}
    profile = state.query(
        f"SELECT {PROFILE_SQL} FROM task_profile "
        "WHERE task_id BETWEEN ? AND ? AND list_contains(?, task_id) "
        "ORDER BY task_id, attempt_number, end_ns",
        [ids[0], ids[-1], ids],
    )
    for event in profile.to_pylist():
        found.setdefault((event["task_id"], event["attempt_number"]), []).append(event)
    return found


def list_tasks_page(state: SessionState, options: ListOptions) -> tuple[Page, list[dict[str, Any]]]:
    """One page of attempts as Ray lists them, formatted. The page's keys are sorted
    first over two narrow columns; only their rows are then read in full."""
    counts, where, params = task_counts(state, options)
    select = DETAIL_SQL if options.detail else BASE_SQL
    page = Page(
        counts.total,
        counts.num_filtered,
        state.query(
            f"""
            WITH page AS (
                SELECT task_id, attempt_number FROM tasks WHERE {where}
                ORDER BY {ORDER} LIMIT ? OFFSET ?
            )
            SELECT {select} FROM page JOIN tasks USING (task_id, attempt_number)
            ORDER BY {ORDER}
            """,
            [*params, options.limit, options.offset],
        ),
    )
    rows = page.rows.to_pylist()
    profiles = page_profiles(state, rows) if options.detail else {}
    result = [
        task_state(r, profiles.get((r["task_id"], r["attempt_number"]), []), options.detail)
        for r in rows
    ]
    return page, result


def func_name_groups(state: SessionState, where: str, params: list[Any]) -> list[dict[str, Any]]:
    return state.query(
        f"""
        SELECT coalesce(nullif(name, ''), func_or_class_name) AS key, type, state,
               count(*) AS n
        FROM tasks WHERE {where}
        GROUP BY ALL ORDER BY min(({ORDER}))
        """,
        params,
    ).to_pylist()


def lineage_tasks(state: SessionState, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """One row per task: its first attempt's fields and every attempt's state."""
    return state.query(
        f"""
        SELECT task_id,
               first(name ORDER BY attempt_number) AS name,
               first(func_or_class_name ORDER BY attempt_number) AS func_or_class_name,
               first(type ORDER BY attempt_number) AS type,
               first(epoch_us(creation_time) // 1000 ORDER BY attempt_number) AS creation_time_ms,
               first(parent_task_id ORDER BY attempt_number) AS parent_task_id,
               first(actor_id ORDER BY attempt_number) AS actor_id,
               list(state ORDER BY attempt_number) AS states
        FROM tasks WHERE {where}
        GROUP BY task_id ORDER BY task_id
        """,
        params,
    ).to_pylist()


def timeline_tasks(
    state: SessionState, where: str, params: list[Any]
) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
    """(task, profiling_data) of every listed attempt that has profile events."""
    rows = state.query(
        f"""
        SELECT t.task_id, t.attempt_number, t.job_id, t.func_or_class_name, t.actor_id,
               p.component_type, p.component_id, p.node_ip_address, p.event_name,
               p.start_ns, p.end_ns, p.extra_data
        FROM (SELECT * FROM tasks WHERE {where}) t
        JOIN task_profile p USING (task_id, attempt_number)
        ORDER BY t.task_id, t.attempt_number, p.end_ns
        """,
        params,
    ).to_pylist()
    attempt: list[dict[str, Any]] = []
    for row in rows:
        if attempt and (row["task_id"], row["attempt_number"]) != (
            attempt[0]["task_id"],
            attempt[0]["attempt_number"],
        ):
            yield attempt[0], profiling_data(attempt)
            attempt = []
        attempt.append(row)
    if attempt:
        yield attempt[0], profiling_data(attempt)


# --- routes ---------------------------------------------------------------------

# Litestar reserves the `state` parameter name (the app's state).
SESSION = {"session": Provide(session_state, sync_to_thread=True)}


@get("/api/v0/tasks", dependencies=SESSION, sync_to_thread=True)
def list_tasks(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    def build() -> Response[bytes]:
        try:
            options = list_options(request)
            page, result = list_tasks_page(session, options)
        except ListRequestError as exc:
            return ray_bad_request(str(exc))
        return list_reply(page, result)

    return remembered(request, session, build)


def summary_reply(counts: Counts, summary: dict[str, Any]) -> Response[bytes]:
    """Ray's SummaryApiResponse in its envelope."""
    warnings = None
    listed = (
        summary["total_tasks"] + summary["total_actor_tasks"] + summary["total_actor_scheduled"]
    )
    if listed < counts.num_filtered:
        warnings = [
            "There is missing data in this aggregation. "
            "Possibly due to task data being evicted to preserve memory."
        ]
    return json_response(
        {
            "result": True,
            "msg": "",
            "data": {
                "result": {
                    "total": counts.total,
                    "num_after_truncation": counts.total,
                    "num_filtered": counts.num_filtered,
                    "result": {"node_id_to_summary": {"cluster": summary}},
                    "partial_failure_warning": "",
                    "warnings": warnings,
                }
            },
        }
    )


@get("/api/v0/tasks/summarize", dependencies=SESSION, sync_to_thread=True)
def summarize_tasks(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    return remembered(request, session, lambda: summarize(request, session))


def summarize(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    summary_by = request.query_params.get("summary_by") or "func_name"
    if summary_by not in ("func_name", "task_name", "lineage"):
        return ray_bad_request('summary_by must be one of "func_name", "task_name", or "lineage".')
    try:
        # A summary reads every attempt the list would, drivers left out.
        options = ListOptions(filters=list_options(request).filters)
        counts, where, params = task_counts(session, options)
    except ListRequestError as exc:
        return ray_bad_request(str(exc))
    if summary_by == "lineage":
        actors = {
            a["actor_id"]: a
            for a in session.query("SELECT actor_id, repr_name, class_name FROM actors").to_pylist()
        }
        summary = summary_by_lineage(lineage_tasks(session, where, params), actors)
    else:
        summary = summary_by_func_name(func_name_groups(session, where, params))
    return summary_reply(counts, summary)


@get("/api/v0/tasks/timeline", dependencies=SESSION, sync_to_thread=True)
def tasks_timeline(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    job_id = request.query_params.get("job_id")
    filters = (("job_id", "=", job_id),) if job_id else ()
    where, params = task_filter(filters, exclude_driver=True)
    events = chrome_tracing(timeline_tasks(session, where, params))
    headers = None
    if request.query_params.get("download") == "1":
        now = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        headers = {"Content-Disposition": f'attachment; filename="timeline-{job_id}-{now}.json"'}
    return json_response(events, headers=headers)


ROUTES = [list_tasks, summarize_tasks, tasks_timeline]
