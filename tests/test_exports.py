"""Ray's export-event files bring submission jobs in when Ray sends no event for them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ingest.collector import Collector
from ingest.exports import submission_job_events
from ingest.parse import parse_body
from ingest.settings import add_arguments, config_from
from lake.store import Lake

from conftest import HEAD_NODE
from live import rows

SESSION = "session_2026-11-21_20-42-42_066305_20083"


def export_line(event_id: str, seconds: int, **data: Any) -> bytes:
    line = {
        "event_id": event_id,
        "timestamp": seconds,
        "source_type": "EXPORT_SUBMISSION_JOB",
        "event_data": {
            "submission_job_id": "job-fail-1",
            "entrypoint": "python job_fail.py",
            "metadata": {},
            "runtime_env_json": '{"working_dir": "gcs://_ray_pkg_a004115db4519abf.zip"}',
            "driver_agent_http_address": "",
            "driver_node_id": "",
            "message": "",
            "error_type": "",
            "start_time": "1795293789530",
            "end_time": "0",
            **data,
        },
    }
    return json.dumps(line).encode() + b"\n"


LINES = [
    export_line("aaaaaaaaaaaaaaaaa1", 1795293789, status="PENDING"),
    export_line(
        "aaaaaaaaaaaaaaaaa2",
        1795293791,
        status="RUNNING",
        driver_node_id=HEAD_NODE,
        driver_agent_http_address="http://192.0.2.2:52400",
    ),
    export_line(
        "aaaaaaaaaaaaaaaaa3",
        1795293793,
        status="FAILED",
        message="Job entrypoint command failed with exit code 3",
        error_type="JOB_ENTRYPOINT_COMMAND_ERROR",
        end_time="1795293793197",
        driver_exit_code=3,
        driver_node_id=HEAD_NODE,
    ),
]


def test_a_line_becomes_valid_ray_events() -> None:
    events = submission_job_events(json.loads(LINES[2]), SESSION, HEAD_NODE)
    parsed = parse_body(json.dumps(events).encode())
    assert [e.event_type for e in parsed.events] == [
        "SUBMISSION_JOB_DEFINITION_EVENT",
        "SUBMISSION_JOB_LIFECYCLE_EVENT",
    ]
    again = submission_job_events(json.loads(LINES[2]), SESSION, HEAD_NODE)
    assert [e["eventId"] for e in again] == [e["eventId"] for e in events]  # re-reads dedup


def collector(tmp_path: Path) -> Collector:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--lake", str(tmp_path / "lake"), "--cluster", "demo", "--role", "head",
         "--spool", str(tmp_path / "spool"), "--ray-root", str(tmp_path / "ray")]
    )  # fmt: skip
    return Collector(config_from(args))


def test_export_lines_become_the_submission_jobs_status(tmp_path: Path) -> None:
    session_dir = tmp_path / "ray" / SESSION
    exports = session_dir / "logs" / "export_events"
    exports.mkdir(parents=True)
    (session_dir / f"gcs_server_port_{HEAD_NODE}").write_text("6379")
    (tmp_path / "ray" / "session_latest").symlink_to(SESSION)
    path = exports / "event_EXPORT_SUBMISSION_JOB.log"
    path.write_bytes(LINES[0] + LINES[1] + LINES[2][:40])  # the last line half written

    first = collector(tmp_path)
    first.tail_exports()
    first.flush()
    lake = Lake(str(tmp_path / "lake"))
    query = "SELECT submission_id, status, driver_exit_code FROM jobs"
    assert rows(lake, query) == [
        {"submission_id": "job-fail-1", "status": "RUNNING", "driver_exit_code": None}
    ]

    with path.open("ab") as f:
        f.write(LINES[2][40:])
    first.tail_exports()
    first.flush()
    (job,) = rows(
        lake,
        """
        SELECT type, status, message, error_type, driver_exit_code, entrypoint,
               driver_agent_http_address, epoch_us(start_time) // 1000 AS start_ms,
               epoch_us(end_time) // 1000 AS end_ms
        FROM jobs
        """,
    )
    assert job == {
        "type": "SUBMISSION",
        "status": "FAILED",
        "message": "Job entrypoint command failed with exit code 3",
        "error_type": "JOB_ENTRYPOINT_COMMAND_ERROR",
        "driver_exit_code": 3,
        "entrypoint": "python job_fail.py",
        "driver_agent_http_address": "http://192.0.2.2:52400",
        "start_ms": 1795293789530,
        "end_ms": 1795293793197,
    }

    # A restarted collector goes on from where the last one stopped.
    second = collector(tmp_path)
    second.tail_exports()
    second.flush()
    counts = rows(lake, "SELECT count(*) AS n FROM submission_job_lifecycle_events")
    assert counts == [{"n": 3}]
