"""The log API and the event log against the captured session: what Ray's own code makes
of the captured log directories (its glob, its grouping, its tail) is what raylake must
answer from the lake, where the collectors shipped the files in parts."""

from __future__ import annotations

import io
import itertools
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from ray.dashboard.modules.log.log_agent import find_start_offset_last_n_lines_from_offset
from ray.dashboard.modules.log.log_manager import LogsManager

from lake.layout import ClusterKey, log_part_path
from lake.logfiles import LogFile, assemble, write_index
from lake.store import Lake
from query.logs import BLOCK_SIZE, glob_paths, open_log

from conftest import HEAD_NODE, LIVE, SAMPLE, SESSION, WORKER_NODE, live

LOGS = {HEAD_NODE: SAMPLE / "logs" / "head", WORKER_NODE: SAMPLE / "logs" / "worker"}


def ray_listing(root: Path, glob: str) -> dict[str, list[str]]:
    """What Ray's log agent and log manager answer for a node's log directory."""
    files = [str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.glob(glob)]
    grouped: dict[str, list[str]] = LogsManager._categorize_log_files(None, files)  # type: ignore[arg-type]
    return {group: sorted(names) for group, names in grouped.items()}


def ray_tail(data: bytes, start: int, end: int, lines: int) -> bytes:
    """The bytes Ray's log agent sends for [start, end) and `lines`."""
    lines = lines or 1000
    if lines != -1:
        start = max(find_start_offset_last_n_lines_from_offset(io.BytesIO(data), end, lines), start)
    return data[start:end]


def get_log(api: httpx.Client, **params: Any) -> httpx.Response:
    return api.get("/api/v0/logs/file", params=params)


@pytest.mark.parametrize("node_id", [HEAD_NODE, WORKER_NODE])
@pytest.mark.parametrize("glob", [None, "*", "**/*", "events/*", "*worker*", "jobs/", "*/", "**"])
def test_listing_matches_the_captured_directory(
    api: httpx.Client, node_id: str, glob: str | None
) -> None:
    params = {"node_id": node_id} | ({"glob": glob} if glob else {})
    answer = api.get("/api/v0/logs", params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["result"], body["msg"]) == (True, "")
    got = {group: sorted(names) for group, names in body["data"]["result"].items()}
    assert got == ray_listing(LOGS[node_id], glob or "*")


def test_listing_by_node_ip_takes_the_newest_node_there(api: httpx.Client) -> None:
    # Both nodes ran at 192.0.2.2; Ray keeps the agent that registered last (the worker).
    by_ip = api.get("/api/v0/logs", params={"node_ip": "192.0.2.2"}).json()
    by_id = api.get("/api/v0/logs", params={"node_id": WORKER_NODE}).json()
    assert by_ip == by_id


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({}, 400, "Both node id and node ip are not provided."),
        ({"node_ip": "10.9.9.9"}, 404, "Cannot find matching node_id for a given node ip"),
        ({"node_id": "ab" * 28}, 404, f"Agent for node id: {'ab' * 28} doesn't exist."),
        ({"node_id": "../etc"}, 400, "expected a node id"),
        ({"node_id": HEAD_NODE, "glob": "../*"}, 400, "cannot contain '..'"),
        ({"node_id": HEAD_NODE, "glob": "/etc/*"}, 400, "must be a relative path"),
        ({"node_id": HEAD_NODE, "glob": "**/../../*"}, 400, "cannot contain '..'"),
        ({"node_id": HEAD_NODE, "glob": ""}, 400, "Unacceptable pattern"),
    ],
)
def test_listing_errors_are_rays(
    api: httpx.Client, params: dict[str, str], status: int, message: str
) -> None:
    answer = api.get("/api/v0/logs", params=params)
    assert answer.status_code == status
    body = answer.json()
    assert body["result"] is False and body["data"] == {"result": None}
    assert message in body["msg"]


def _task_logs() -> list[dict[str, Any]]:
    tasks = live("api_v0_tasks_limit_10000_detail_1")
    return [t for t in tasks if t["task_log_info"] is not None]


def _captured(node_id: str, recorded: str) -> bytes:
    return (LOGS[node_id] / recorded.split(f"/{SESSION}/logs/", 1)[1]).read_bytes()


def test_a_tasks_log_is_its_byte_range_of_the_worker_file(api: httpx.Client) -> None:
    printed = {"out": 0, "err": 0}
    for task in _task_logs():
        info = task["task_log_info"]
        for suffix in ("out", "err"):
            data = _captured(task["node_id"], info[f"std{suffix}_file"])
            start, end = info[f"std{suffix}_start"], info[f"std{suffix}_end"]
            answer = get_log(
                api,
                task_id=task["task_id"],
                attempt_number=task["attempt_number"],
                suffix=suffix,
                lines=-1,
            )
            assert answer.status_code == 200, answer.text
            assert answer.content == data[start:end], (task["task_id"], suffix)
            printed[suffix] += end > start
    assert printed["out"] > 5 and printed["err"] > 5, printed  # tasks printed to both


def test_a_tasks_log_is_cut_to_its_last_lines(api: httpx.Client) -> None:
    task = max(
        _task_logs(),
        key=lambda t: t["task_log_info"]["stdout_end"] - t["task_log_info"]["stdout_start"],
    )
    info = task["task_log_info"]
    data = _captured(task["node_id"], info["stdout_file"])
    start, end = info["stdout_start"], info["stdout_end"]
    assert data[start:end].count(b"\n") >= 1
    for lines in (None, 0, 1, -1):
        params = {"task_id": task["task_id"]} | ({} if lines is None else {"lines": lines})
        answer = get_log(api, **params)
        assert answer.content == ray_tail(data, start, end, lines or 0), lines


def test_a_task_without_output_answers_empty(api: httpx.Client) -> None:
    task = next(
        t
        for t in _task_logs()
        if t["task_log_info"]["stdout_start"] == t["task_log_info"]["stdout_end"]
    )
    answer = get_log(api, task_id=task["task_id"])
    assert (answer.status_code, answer.content) == (200, b"")


def test_task_errors_are_rays(api: httpx.Client) -> None:
    actor_task = next(
        t for t in live("api_v0_tasks_limit_10000_detail_1") if t["type"] == "ACTOR_TASK"
    )
    answer = get_log(api, task_id=actor_task["task_id"])
    assert answer.status_code == 404
    assert answer.text.startswith(
        f"For actor task, please query actor log for actor({actor_task['actor_id']})"
    )
    answer = get_log(api, task_id="00" * 24)
    assert answer.status_code == 404
    assert (
        answer.text == f"Could not find log file for task: {'00' * 24} (attempt 0) with suffix: out"
    )
    task = _task_logs()[0]
    answer = get_log(api, task_id=task["task_id"], attempt_number=7)
    assert answer.text == f"Could not find log file for task attempt:{task['task_id']}(7)"
    answer = get_log(api, task_id=task["task_id"], suffix="log")
    assert (answer.status_code, answer.text) == (
        400,
        "Invalid suffix: log. Must be one of 'out' or 'err'.",
    )


@pytest.mark.parametrize(
    ("node_id", "filename"),
    [
        (HEAD_NODE, "gcs_server.out"),  # 5 blocks: the tail crosses block boundaries
        (HEAD_NODE, "debug_state.txt"),  # no newline at its end
        (WORKER_NODE, "raylet.out"),
        (HEAD_NODE, "jobs/supervisor-job-ok-1.log"),
        (HEAD_NODE, "events/event_RAYLET.log"),
    ],
)
def test_a_file_by_name_and_lines(api: httpx.Client, node_id: str, filename: str) -> None:
    data = (LOGS[node_id] / filename).read_bytes()
    for lines in (None, 0, 1, 2, 7, 1000, 5000, -1, -3):
        params = {"node_id": node_id, "filename": filename}
        answer = get_log(api, **params | ({} if lines is None else {"lines": lines}))
        assert answer.status_code == 200, answer.text
        assert answer.content == ray_tail(data, 0, len(data), lines or 0), lines
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.headers["content-disposition"] == 'attachment; filename="file.txt"'


def test_an_empty_file_answers_empty(api: httpx.Client) -> None:
    # The collector indexes an empty file without shipping a part for it.
    assert (LOGS[WORKER_NODE] / "raylet.err").stat().st_size == 0
    answer = get_log(api, node_id=WORKER_NODE, filename="raylet.err")
    assert (answer.status_code, answer.content) == (200, b"")


def test_the_ui_download_link(api: httpx.Client) -> None:
    # What Ray's UI asks for: the whole file, ANSI colours removed, under a given name.
    data = (LOGS[HEAD_NODE] / "job-driver-job-ok-1.log").read_bytes()
    assert b"\x1b[" in data
    answer = get_log(
        api,
        node_id=HEAD_NODE,
        filename="job-driver-job-ok-1.log",
        lines=-1,
        filter_ansi_code="true",
        download_filename='job "ok".log',
    )
    assert b"\x1b[" not in answer.content
    assert answer.content == b"".join(
        re.sub(rb"\x1b\[[0-9;]+m", b"", data[i : i + BLOCK_SIZE])
        for i in range(0, len(data), BLOCK_SIZE)
    )
    assert answer.headers["content-disposition"] == 'attachment; filename="job ok.log"'
    streamed = api.get(
        "/api/v0/logs/stream",
        params={"node_id": HEAD_NODE, "filename": "job-driver-job-ok-1.log", "lines": -1},
    )
    assert streamed.content == data


def test_an_actors_log_is_its_workers_file(api: httpx.Client) -> None:
    actors = {a["actor_id"]: a for a in live("api_v0_actors_limit_10000_detail_1")}
    counter = next(
        a for a in actors.values() if a["class_name"] == "Counter" and a["node_id"] == WORKER_NODE
    )
    root = LOGS[WORKER_NODE]
    for suffix in ("out", "err"):
        (path,) = root.glob(f"worker-*-{counter['pid']}.{suffix}")
        answer = get_log(api, actor_id=counter["actor_id"], suffix=suffix, lines=-1)
        assert answer.status_code == 200, answer.text
        assert answer.content == path.read_bytes()
    answer = get_log(api, actor_id="ab" * 16)
    assert (answer.status_code, answer.text) == (404, f"Actor ID {'ab' * 16} not found.")


def test_a_workers_log_by_pid_and_a_jobs_driver_log(api: httpx.Client) -> None:
    (path,) = LOGS[WORKER_NODE].glob("worker-*-20663.err")
    answer = get_log(api, node_id=WORKER_NODE, pid=20663, suffix="err", lines=-1)
    assert answer.content == path.read_bytes()
    answer = get_log(api, node_id=HEAD_NODE, pid=20663)
    assert answer.status_code == 404
    assert answer.text.startswith("Could not find a log file.")
    for submission in ("job-ok-1", "job-fail-1"):
        answer = get_log(api, submission_id=submission, lines=-1)
        assert answer.content == (LOGS[HEAD_NODE] / f"job-driver-{submission}.log").read_bytes()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filename": "raylet.out"}, "node_id or node_ip must be provided"),
        ({"node_id": HEAD_NODE}, "None of actor_id, task_id, pid, submission_id or filename"),
        ({"node_id": HEAD_NODE, "node_ip": "192.0.2.2", "filename": "raylet.out"}, "Both node_id"),
        ({"node_id": HEAD_NODE, "filename": "raylet.out", "lines": "ten"}, "lines='ten'"),
    ],
)
def test_bad_options_are_refused(api: httpx.Client, params: dict[str, str], message: str) -> None:
    answer = get_log(api, **params)
    assert answer.status_code == 400
    assert message in answer.text


OTHER_NODE_FILE = f"../node={WORKER_NODE}/raylet.out"
TRAVERSALS = [
    "../../../../etc/passwd",
    "/etc/passwd",
    "//etc/passwd",
    "..",
    ".",
    "./raylet.out",
    "events/../raylet.out",
    "events//event_RAYLET.log",
    "raylet.out/",
    "a/../../raylet.out",
    OTHER_NODE_FILE,
    f"../../session={SESSION}/node={WORKER_NODE}/raylet.out",
    "../../../../_lake.json",
    "_parts",
    "raylet.out\x00.txt",
    "raylet.out\n",
    "..\\..\\etc\\passwd",
    "%2e%2e/%2e%2e/etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "....//....//etc/passwd",
    "~/.ssh/id_rsa",
    "file:///etc/passwd",
    "\u2025/etc/passwd",
    "session_latest/logs/raylet.out",
]


@pytest.mark.parametrize("filename", TRAVERSALS)
def test_paths_outside_the_sessions_log_files_are_refused(api: httpx.Client, filename: str) -> None:
    answer = get_log(api, node_id=HEAD_NODE, filename=filename, lines=-1)
    assert answer.status_code in (400, 404), (filename, answer.status_code)
    assert answer.headers["content-type"].startswith("text/plain")
    assert b"root:" not in answer.content and b"raylake" not in answer.content
    assert answer.text  # says why


@pytest.mark.parametrize(
    "query",
    [
        "filename=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "filename=%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "filename=%2Fetc%2Fpasswd",
        "filename=..%5C..%5Cetc%5Cpasswd",
        "filename=%252e%252e%252f_lake.json",
        "filename=raylet.out%00",
        "submission_id=..%2F..%2F_lake",
        "pid=1%2F..",
    ],
)
def test_encoded_traversals_are_refused(api: httpx.Client, query: str) -> None:
    answer = api.get(f"/api/v0/logs/file?node_id={HEAD_NODE}&lines=-1&{query}")
    assert answer.status_code in (400, 404), (query, answer.status_code)
    assert b"root:" not in answer.content


def test_a_download_name_cannot_inject_headers(api: httpx.Client) -> None:
    name = 'x"; y.log\r\nSet-Cookie: raylake_session=stolen \u65e5'
    answer = get_log(api, node_id=HEAD_NODE, filename="raylet.out", download_filename=name)
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers
    assert answer.headers["content-disposition"] == (
        'attachment; filename="x; y.logSet-Cookie: raylake_session=stolen "'
    )


def test_files_of_one_node_are_not_read_through_another(api: httpx.Client) -> None:
    assert not (LOGS[WORKER_NODE] / "gcs_server.out").exists()
    answer = get_log(api, node_id=WORKER_NODE, filename="gcs_server.out")
    assert (answer.status_code, answer.text) == (404, "A file is not found at: gcs_server.out")
    answer = get_log(api, node_id="ab" * 28, filename="raylet.out")
    assert (answer.status_code, answer.text) == (
        404,
        f"Agent for node id: {'ab' * 28} doesn't exist.",
    )


@pytest.mark.parametrize("name", ["events", "after_worker_death_events"])
def test_event_log_matches_the_live_dashboard(api: httpx.Client, name: str) -> None:
    # The capture's event files end where both live answers were taken: the event log
    # gained nothing after them, so every key must match.
    want = json.loads((LIVE / f"{name}.json").read_text())
    got = api.get("/events").json()
    assert json.dumps(got) == json.dumps(want)


def test_event_log_of_one_job(api: httpx.Client) -> None:
    every = api.get("/events").json()["data"]["events"]
    body = api.get("/events", params={"job_id": "01000000"}).json()
    assert body == {
        "result": True,
        "msg": "Job events fetched.",
        "data": {"jobId": "01000000", "events": every["01000000"]},
    }
    assert api.get("/events", params={"job_id": "ffffffff"}).json()["data"]["events"] == []


def test_a_file_reads_the_same_in_parts_and_whole(tmp_path: Path) -> None:
    """A file shipped in several parts, then joined by `raylake compact`."""
    lake = Lake(str(tmp_path / "lake"), create=True)
    cluster = ClusterKey("default", "parts")
    data = (LOGS[HEAD_NODE] / "gcs_server.out").read_bytes()
    cuts = [0, 1, 70_000, 70_001, 200_000, len(data)]
    for start, end in itertools.pairwise(cuts):
        lake.write_bytes(log_part_path(cluster, SESSION, HEAD_NODE, 42, start), data[start:end])
    write_index(
        lake, cluster, SESSION, HEAD_NODE, [LogFile("gcs_server.out", len(data), 42, "parts", None)]
    )
    ranges = [
        (0, len(data)),
        (0, 1),
        (1, 2),
        (69_999, 70_003),
        (150_000, 250_000),
        (len(data) - 5, len(data) + 9),
    ]
    for form in ("parts", "whole"):
        log = open_log(lake, cluster, SESSION, HEAD_NODE, "gcs_server.out", 42)
        assert log.size == len(data), form
        assert len(log.pieces) == (5 if form == "parts" else 1)
        for start, end in ranges:
            assert log.read(start, end) == data[start:end], (form, start, end)
        assert b"".join(log.blocks(0, len(data))) == data
        for lines in (1, 3, 500, 4000, 10**6):
            want = find_start_offset_last_n_lines_from_offset(io.BytesIO(data), len(data), lines)
            assert log.start_of_last_lines(len(data), lines) == want, (form, lines)
        assert assemble(lake, cluster, SESSION, HEAD_NODE) == (1 if form == "parts" else 0)
    assert open_log(lake, cluster, SESSION, HEAD_NODE, "raylet.out", 7).size == 0  # nothing shipped


def test_glob_follows_pathlib_on_the_captured_directory() -> None:
    root = LOGS[HEAD_NODE]
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    for glob in (
        "*",
        "**",
        "**/*",
        "*/*.log",
        "jobs",
        "jobs/",
        "events/./*",
        "a//b",
        "*[0-9].out",
        "x*",
    ):
        want = sorted(
            str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.glob(glob)
        )
        assert sorted(glob_paths(files, glob)) == want, glob
