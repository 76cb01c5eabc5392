"""Ray's log API over the session's shipped log files: `/api/v0/logs` (a node's files,
grouped as Ray groups them), `/api/v0/logs/{file,stream}` (one file's bytes, found by
file name, task, actor, worker pid or job submission), and `/events` (Ray's event log,
read from every node's `events/event_*.log`).

Ray's answers are mirrored (`ray/dashboard/modules/state/state_head.py`,
`modules/log/log_manager.py`, `modules/log/log_agent.py`, `modules/event/`): the file
endpoint sends the raw bytes as `text/plain` with `Content-Disposition`, and the
last `lines` lines (1000 by default, -1 for all). Where Ray answers a bad request or a
missing file with HTTP 500 and the message as text, raylake sends the same text with
400 or 404. Only files in the session's log index can be read: a path is refused
unless it is a plain relative path, and is then looked up in the index, never in a
directory.

A live cluster's running session streams from its head instead (`web/live.py`), where
`/api/v0/logs/stream` follows the file as Ray writes it.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, get
from litestar.di import Provide
from litestar.response import Stream

from query.logs import BadGlob, StoredLog, glob_paths, open_log
from query.state import SessionState
from web.reply import json_response
from web.sessions import session_state
from web.tasks import LOG_FIELDS

DEFAULT_LINES = 1000  # Ray's DEFAULT_LOG_LIMIT
DEFAULT_DOWNLOAD_FILENAME = "file.txt"
# Ray's ANSI_ESC_PATTERN (state_head.py): colour codes like ESC[1;31m.
ANSI_ESCAPE = re.compile(b"\x1b\\x5b[(\x30-\x39)\x3b]+\x6d")
WORKER_LOG = re.compile(r".*worker-([0-9a-f]+)-([0-9a-f]+)-(\d+).(out|err)")  # Ray's pattern
_NODE_ID = re.compile(r"[0-9a-f]{56}")
_ACTOR_ID = re.compile(r"[0-9a-f]{32}")
# Ray's event source types (event_pb2.Event.SourceType); its event head reads the
# files of `<logs>/events/` named `*<source type>*.log`.
EVENT_SOURCES = (
    "COMMON",
    "CORE_WORKER",
    "GCS",
    "RAYLET",
    "CLUSTER_LIFECYCLE",
    "AUTOSCALER",
    "JOBS",
)
EVENT_LINE_MAX_BYTES = (
    2 * 1024 * 1024
)  # Ray's EVENT_READ_LINE_LENGTH_LIMIT: longer lines are skipped


class LogRequestError(ValueError):
    """Options Ray refuses (HTTP 400)."""


class LogNotFound(LookupError):
    """Nothing stored answers the request (HTTP 404)."""


def categorize(files: list[str]) -> dict[str, list[str]]:
    """Ray's `LogsManager._categorize_log_files`: file names by component."""
    result: dict[str, list[str]] = defaultdict(list)
    for name in files:
        if "worker" in name and name.endswith(".out"):
            result["worker_out"].append(name)
        elif "worker" in name and name.endswith(".err"):
            result["worker_err"].append(name)
        elif "core-worker" in name and name.endswith(".log"):
            result["core_worker"].append(name)
        elif "core-driver" in name and name.endswith(".log"):
            result["driver"].append(name)
        elif "raylet." in name:
            result["raylet"].append(name)
        elif "gcs_server." in name:
            result["gcs_server"].append(name)
        elif "log_monitor" in name:
            result["internal"].append(name)
        elif "monitor" in name:
            result["autoscaler"].append(name)
        elif "agent." in name:
            result["agent"].append(name)
        elif "dashboard." in name:
            result["dashboard"].append(name)
        else:
            result["internal"].append(name)
    return dict(result)


def check_log_path(path: str) -> str:
    """A file name must be a plain path below the session's `logs/`: no absolute path,
    no `..`, `.` or empty part, no control character (Ray resolves `..` inside its log
    directory; raylake refuses every such name outright)."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 or c == "\x7f" for c in path)
    ):
        raise LogRequestError(
            f"filename {path!r}: expected a relative path inside the session's logs "
            "directory (no absolute path, '..', '.' or empty part)"
        )
    return path


# --- which node, which file ---------------------------------------------------------


def _node_index(state: SessionState, node_id: str) -> dict[str, int | None]:
    """A node's stored files (path -> inode of its parts, if any)."""
    rows = state.query(
        "SELECT path, inode FROM log_files WHERE node_id = ? ORDER BY path", [node_id]
    ).to_pylist()
    return {row["path"]: row["inode"] for row in rows}


def _known_node(state: SessionState, node_id: str) -> bool:
    found = state.query(
        "SELECT 1 FROM log_files WHERE node_id = $n UNION ALL SELECT 1 FROM nodes "
        "WHERE node_id = $n LIMIT 1",
        {"n": node_id},
    )
    return found.num_rows > 0


def _check_node_id(node_id: str) -> str:
    lowered = node_id.lower()
    if not _NODE_ID.fullmatch(lowered):
        raise LogRequestError(f"node_id {node_id!r}: expected a node id (56 hex digits)")
    return lowered


def ip_to_node_id(state: SessionState, node_ip: str) -> str | None:
    """The node at an IP; when several nodes had it, the newest (Ray keeps the last
    agent registered at an IP)."""
    rows = state.query(
        "SELECT node_id FROM nodes WHERE node_ip = ? "
        "ORDER BY start_time DESC NULLS LAST, node_id LIMIT 1",
        [node_ip],
    ).to_pylist()
    return str(rows[0]["node_id"]) if rows else None


def _request_node(state: SessionState, node_id: str | None, node_ip: str | None) -> str | None:
    if node_id:
        return _check_node_id(node_id)
    if node_ip:
        found = ip_to_node_id(state, node_ip)
        if found is None:
            raise LogNotFound(f"Cannot find matching node_id for a given node ip {node_ip}")
        return found
    return None


@dataclass(frozen=True)
class LogOptions:
    """Ray's GetLogOptions, read from the query string as Ray's state head reads it."""

    media_type: str
    node_id: str | None
    node_ip: str | None
    filename: str | None
    download_filename: str
    actor_id: str | None
    task_id: str | None
    attempt_number: int
    pid: int | None
    lines: int
    suffix: str
    submission_id: str | None
    filter_ansi_code: bool


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise LogRequestError(f"{name}={value!r}: expected an integer") from None


def log_options(media_type: str, query: dict[str, str]) -> LogOptions:
    """The options, checked in the order and with the messages of GetLogOptions."""
    pid = _int("pid", query["pid"]) if query.get("pid") else None
    options = LogOptions(
        media_type=media_type,
        node_id=query.get("node_id") or None,
        node_ip=query.get("node_ip") or None,
        filename=query.get("filename") or None,
        download_filename=query.get("download_filename", DEFAULT_DOWNLOAD_FILENAME),
        actor_id=query.get("actor_id") or None,
        task_id=query.get("task_id") or None,
        # Ray 2.60 compares the query's text with the attempt's number, so only the
        # default attempt 0 is ever found over HTTP; raylake reads the number.
        attempt_number=_int("attempt_number", query.get("attempt_number", "0")),
        pid=pid or None,
        lines=_int("lines", query.get("lines", str(DEFAULT_LINES))),
        suffix=query.get("suffix", "out"),
        submission_id=query.get("submission_id") or None,
        filter_ansi_code=query.get("filter_ansi_code", "false").lower() == "true",
    )
    if media_type not in ("file", "stream"):
        raise LogRequestError(f"Invalid media type: {media_type}")
    # Ray also asks a node for a submission id, though it finds the job's node itself
    # (so `ray logs job --id` fails on Ray 2.60); raylake does not.
    if not (options.node_id or options.node_ip) and not (
        options.actor_id or options.task_id or options.submission_id
    ):
        raise LogRequestError(
            "node_id or node_ip must be provided as constructor arguments when no "
            "actor or task_id is supplied as arguments."
        )
    if options.node_id and options.node_ip:
        raise LogRequestError(
            "Both node_id and node_ip are given. Only one of them can be provided. "
            f"Given node id: {options.node_id}, given node ip: {options.node_ip}"
        )
    if not (
        options.actor_id
        or options.task_id
        or options.pid
        or options.filename
        or options.submission_id
    ):
        raise LogRequestError(
            "None of actor_id, task_id, pid, submission_id or filename "
            "is provided. At least one of them is required to fetch logs."
        )
    if options.suffix not in ("out", "err"):
        raise LogRequestError(f"Invalid suffix: {options.suffix}. Must be one of 'out' or 'err'.")
    return options


@dataclass(frozen=True)
class ResolvedLog:
    node_id: str
    path: str  # relative to the node's session logs/
    start: int | None = None
    end: int | None = None


def worker_file(
    state: SessionState, node_id: str, worker_id: str | None, pid: int | None, suffix: str
) -> str | None:
    """Ray's `_resolve_worker_file`: the worker's `worker-<id>-<job>-<pid>.<suffix>`."""
    index = _node_index(state, node_id)
    key = f"*{worker_id}*{suffix}" if worker_id is not None else f"*{pid}*{suffix}"
    groups = categorize(glob_paths(index, key))
    for name in [*groups.get("worker_out", []), *groups.get("worker_err", [])]:
        match = WORKER_LOG.match(name)
        if match is None:
            continue
        if worker_id is not None and match[1] == worker_id:
            return name
        if worker_id is None and int(match[3]) == pid:
            return name
    return None


def _session_relative(path: str, session: str) -> str | None:
    """A path Ray recorded (`<temp dir>/<session>/logs/<file>`) relative to `logs/`."""
    marker = f"/{session}/logs/"
    at = path.find(marker)
    return path[at + len(marker) :] if at >= 0 else None


def task_file(state: SessionState, task_id: str, attempt: int, suffix: str) -> ResolvedLog:
    """Ray's `_resolve_task_filename`: the task attempt's byte range of its worker's
    file, from the log offsets its worker reported."""
    rows = state.query(
        "SELECT attempt_number, node_id, worker_id, actor_id, stdout_file, stdout_start, "
        "stdout_end, stderr_file, stderr_start, stderr_end FROM tasks WHERE task_id = ?",
        [task_id],
    ).to_pylist()
    if not rows:
        raise LogNotFound(
            f"Could not find log file for task: {task_id} (attempt {attempt}) with suffix: {suffix}"
        )
    task = next((r for r in rows if r["attempt_number"] == attempt), None)
    if task is None:
        raise LogNotFound(f"Could not find log file for task attempt:{task_id}({attempt})")
    if task["node_id"] is None:
        raise LogNotFound(
            f"Could not find log file for task attempt.{task_id}({attempt}) "
            "due to missing node info."
        )
    has_log = task["stdout_file"] is not None or task["stderr_file"] is not None
    log_info = {k: task[k] for k in LOG_FIELDS} if has_log else None
    if log_info is None and task["actor_id"] is not None:
        actor = task["actor_id"]
        raise LogNotFound(
            f"For actor task, please query actor log for actor({actor}): e.g. ray logs "
            f"actor --id {actor} . Or set RAY_ENABLE_RECORD_ACTOR_TASK_LOGGING=1 in actor's "
            "runtime env or when starting the cluster. Recording actor task's log could be "
            "expensive, so Ray turns it off by default."
        )
    if log_info is None:
        raise LogNotFound(
            f"Could not find log file for task attempt:{task_id}({attempt})."
            f"Worker id = {task['worker_id']}, node id = {task['node_id']},log_info = None"
        )
    recorded = log_info["stdout_file" if suffix == "out" else "stderr_file"]
    if recorded is None:
        raise LogNotFound(
            f"Missing log filename info in {log_info} for task {task_id},attempt {attempt}"
        )
    path = _session_relative(str(recorded), state.ref.session)
    if path is None:
        raise LogNotFound(f"{recorded} not in the logs directory of session {state.ref.session}")
    return ResolvedLog(
        task["node_id"], path, log_info[f"std{suffix}_start"], log_info[f"std{suffix}_end"]
    )


def actor_file(state: SessionState, actor_id: str, suffix: str) -> ResolvedLog:
    """Ray's `_resolve_actor_filename`: the file of the actor's worker, else of an
    earlier incarnation's worker (known here from the actor's tasks), newest first."""
    actor_id = actor_id.lower()
    if not _ACTOR_ID.fullmatch(actor_id):
        raise LogRequestError(f"actor_id {actor_id!r}: expected an actor id (32 hex digits)")
    actor = state.query(
        "SELECT node_id, worker_id FROM actors WHERE actor_id = ?", [actor_id]
    ).to_pylist()
    if not actor:
        raise LogNotFound(f"Actor ID {actor_id} not found.")
    earlier = state.query(
        "SELECT node_id, worker_id FROM tasks WHERE actor_id = ? AND node_id IS NOT NULL "
        "AND worker_id IS NOT NULL GROUP BY ALL ORDER BY max(start_time) DESC NULLS LAST",
        [actor_id],
    ).to_pylist()
    candidates = list(
        dict.fromkeys(
            (r["node_id"], r["worker_id"])
            for r in [*actor, *earlier]
            if r["node_id"] and r["worker_id"]
        )
    )
    if not candidates:
        raise LogNotFound(
            f"Worker ID for Actor ID {actor_id} not found. Actor is not scheduled yet."
        )
    for node_id, worker_id in candidates:
        name = worker_file(state, node_id, worker_id, None, suffix)
        if name is not None:
            return ResolvedLog(node_id, name)
    raise _no_file(candidates[0][0], None, actor_id=actor_id, suffix=suffix)


def _no_file(node_id: str | None, filename: str | None, **given: Any) -> LogNotFound:
    """Ray's message when no option names a file."""
    shown = {
        "actor_id": None,
        "task_id": None,
        "pid": None,
        "suffix": "out",
        "submission_id": None,
        "attempt_number": 0,
    } | given
    lines = [f"\tnode_id: {node_id}\n", f"\tfilename: {filename}\n"]
    lines += [f"\t{key}: {value}\n" for key, value in shown.items()]
    return LogNotFound(
        "Could not find a log file. Please make sure the given option exists in the cluster.\n"
        + "".join(lines)
    )


def resolve(state: SessionState, options: LogOptions) -> ResolvedLog:
    """Ray's `resolve_filename`: actor, then task, then submission, then pid, else the
    file name, on the node asked for."""
    node_id = _request_node(state, options.node_id, options.node_ip)
    if options.actor_id:
        return actor_file(state, options.actor_id, options.suffix)
    if options.task_id:
        return task_file(state, options.task_id, options.attempt_number, options.suffix)
    given = {
        "suffix": options.suffix,
        "submission_id": options.submission_id,
        "pid": options.pid,
        "attempt_number": options.attempt_number,
    }
    if options.submission_id:
        path = check_log_path(f"job-driver-{options.submission_id}.log")
        rows = state.query(
            "SELECT node_id FROM log_files WHERE path = ? ORDER BY node_id LIMIT 1", [path]
        ).to_pylist()
        if not rows:
            raise _no_file(None, None, **given)
        return ResolvedLog(str(rows[0]["node_id"]), path)
    if options.pid:
        if node_id is None:
            raise LogRequestError(
                f"Node id needs to be specified for resolving filenames of pid {options.pid}"
            )
        name = worker_file(state, node_id, None, options.pid, options.suffix)
        if name is None:
            raise _no_file(node_id, None, **given)
        return ResolvedLog(node_id, name)
    assert options.filename is not None and node_id is not None  # log_options checked
    return ResolvedLog(node_id, check_log_path(options.filename))


def open_resolved(
    request: Request[Any, Any, Any], state: SessionState, found: ResolvedLog
) -> StoredLog:
    index = _node_index(state, found.node_id)
    if found.path not in index:
        if not _known_node(state, found.node_id):
            raise LogNotFound(f"Agent for node id: {found.node_id} doesn't exist.")
        raise LogNotFound(f"A file is not found at: {found.path}")
    ref = state.ref
    lake = request.app.state.lake
    return open_log(lake, ref.cluster, ref.session, found.node_id, found.path, index[found.path])


def byte_range(log: StoredLog, found: ResolvedLog, lines: int) -> tuple[int, int]:
    """Ray's log agent (StreamLog): the range asked for, cut to its last `lines` lines
    (0 means 1000; -1 means every line)."""
    lines = lines or DEFAULT_LINES
    start = found.start if found.start is not None else 0
    end = found.end if found.end is not None else log.size
    if lines != -1:
        start = max(log.start_of_last_lines(end, lines), start)
    return start, end


def _chunks(log: StoredLog, start: int, end: int, filter_ansi: bool) -> Iterator[bytes]:
    for block in log.blocks(start, end):
        yield ANSI_ESCAPE.sub(b"", block) if filter_ansi else block


def _attachment(name: str) -> str:
    # A header holds printable ASCII only; a quote or backslash would end the name.
    safe = "".join(c for c in name if 32 <= ord(c) < 127 and c not in '"\\')
    return f'attachment; filename="{safe}"'


def _text(message: str, status_code: int) -> Response[bytes]:
    return Response(message.encode(), status_code=status_code, media_type="text/plain")


def _ray_reply(status_code: int, message: str, result: Any) -> Response[bytes]:
    """Ray's `do_reply` envelope (the list-logs answer and its errors)."""
    return json_response(
        {"result": status_code == 200, "msg": message, "data": {"result": result}},
        status_code=status_code,
    )


# --- events -------------------------------------------------------------------------


def parse_event_lines(data: bytes) -> list[dict[str, Any]]:
    """Ray's event head reading an event file: complete lines only, too-long lines
    skipped, each a JSON object, its message's escaped newlines restored."""
    events = []
    for line in data.split(b"\n")[:-1]:
        if not line or len(line) > EVENT_LINE_MAX_BYTES:
            continue
        try:
            event = json.loads(line.decode("utf-8"))
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if isinstance(event.get("message"), str):
            event["message"] = event["message"].replace("\\n", "\n").replace("\\r", "\n")
        events.append(event)
    return events


def _timestamp(event: dict[str, Any]) -> float:
    try:
        return float(event.get("timestamp") or 0)
    except (TypeError, ValueError):
        return 0.0


def events_by_job(events: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Ray's `_update_events`: by job id (`global` without one), then by event id, the
    last copy of an event winning, in the order Ray received them (by time)."""
    jobs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for event in sorted(events, key=_timestamp):
        custom = event.get("custom_fields")
        job_id = (
            (custom.get("job_id", "global") or "global") if isinstance(custom, dict) else "global"
        )
        jobs[str(job_id)][str(event.get("event_id"))] = event
    return dict(jobs)


def camel_case(name: str) -> str:
    """Ray's `to_camel_case` (dashboard/utils.py)."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def google_style(value: dict[str, Any]) -> dict[str, Any]:
    """Ray's `to_google_style`: every key of dicts (and of dicts in lists) camel-cased."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            item = google_style(item)
        elif isinstance(item, list):
            item = [google_style(i) if isinstance(i, dict) else i for i in item]
        out[camel_case(key)] = item
    return out


def session_events(request: Request[Any, Any, Any], state: SessionState) -> list[dict[str, Any]]:
    """Every event in the session's `events/` files, node by node, file by file."""
    rows = state.query(
        "SELECT node_id, path, inode FROM log_files WHERE path LIKE 'events/%' "
        "AND path NOT LIKE 'events/%/%' ORDER BY node_id, path"
    ).to_pylist()
    ref, lake = state.ref, request.app.state.lake
    events: list[dict[str, Any]] = []
    for row in rows:
        name = row["path"].removeprefix("events/")
        if not any(fnmatch.fnmatchcase(name, f"*{source}*.log") for source in EVENT_SOURCES):
            continue
        log = open_log(lake, ref.cluster, ref.session, row["node_id"], row["path"], row["inode"])
        if log.size:
            events += parse_event_lines(log.read(0, log.size))
    return events


# --- routes -------------------------------------------------------------------------

_SESSION = {"session": Provide(session_state, sync_to_thread=True)}


@get("/api/v0/logs", dependencies=_SESSION, sync_to_thread=True)
def list_logs(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    """A node's files that `glob` names (`*` by default: the top of its logs/)."""
    query = request.query_params
    node_id, node_ip = query.get("node_id"), query.get("node_ip")
    if not node_id and not node_ip:
        return _ray_reply(
            400,
            "Both node id and node ip are not provided. Please provide at least one of them.",
            None,
        )
    try:
        node = _request_node(session, node_id, node_ip)
        assert node is not None
        if not _known_node(session, node):
            raise LogNotFound(f"Agent for node id: {node} doesn't exist.")
        files = glob_paths(_node_index(session, node), query.get("glob", "*"))
    except (LogRequestError, BadGlob) as exc:
        return _ray_reply(400, str(exc), None)
    except LogNotFound as exc:
        return _ray_reply(404, str(exc), None)
    return _ray_reply(200, "", categorize(files))


@get("/api/v0/logs/{media_type:str}", dependencies=_SESSION, sync_to_thread=True)
def get_log(
    request: Request[Any, Any, Any], session: SessionState, media_type: str
) -> Response[Any]:
    """One file's bytes (`file`; `stream` ends at the stored end instead of following)."""
    try:
        options = log_options(media_type, dict(request.query_params))
        found = resolve(session, options)
        log = open_resolved(request, session, found)
        start, end = byte_range(log, found, options.lines)
    except LogRequestError as exc:
        return _text(str(exc), 400)
    except LogNotFound as exc:
        return _text(str(exc), 404)
    return Stream(
        _chunks(log, start, end, options.filter_ansi_code),
        media_type="text/plain",
        headers={"Content-Disposition": _attachment(options.download_filename)},
    )


@get("/events", dependencies=_SESSION, sync_to_thread=True)
def events(request: Request[Any, Any, Any], session: SessionState) -> Response[bytes]:
    """Ray's event log, by job id; `job_id` picks one job (an unknown one has none)."""
    jobs = events_by_job(session_events(request, session))
    job_id = request.query_params.get("job_id")
    if job_id is None:
        data: dict[str, Any] = {
            "events": {job: list(found.values()) for job, found in jobs.items()}
        }
        message = "All events fetched."
    else:
        data = {"job_id": job_id, "events": list(jobs.get(job_id, {}).values())}
        message = "Job events fetched."
    return json_response({"result": True, "msg": message, "data": google_style(data)})


ROUTES = [list_logs, get_log, events]
