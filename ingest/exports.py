"""Ray's export-event files: submission jobs, which Ray 2.60 tells no RayEvent about.

With `RAY_enable_export_api_write_config=EXPORT_SUBMISSION_JOB` on the head, Ray's job
manager appends one JSON object per state change to
`<session>/logs/export_events/event_EXPORT_SUBMISSION_JOB.log`:

    {"event_id": "<18 hex digits>", "timestamp": <seconds>,
     "source_type": "EXPORT_SUBMISSION_JOB", "event_data": {"submission_job_id": ...,
     "status": ..., "message": ..., "start_time": "<ms>", "end_time": "<ms>", ...}}

Each line becomes the two RayEvents Ray's own protos define for it (a submission-job
definition and a lifecycle transition), with ids derived from the line's event id, and
goes through the collector's intake like any POST: validated, spooled, written once.
The files themselves are shipped as logs, so every line is kept verbatim too.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.node import node_id, session_dirs
from ingest.parse import BodyError

log = logging.getLogger("raylake.exports")

SUBMISSION_JOB_FILES = "event_EXPORT_SUBMISSION_JOB*.log"
_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _id(export_id: str, kind: str) -> str:
    return base64.b64encode(hashlib.sha256(f"{export_id}:{kind}".encode()).digest()[:16]).decode()


def _rfc3339_ms(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _hex_to_base64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode() if hex_id else ""


def submission_job_events(line: dict[str, Any], session: str, node: str) -> list[dict[str, Any]]:
    """The RayEvents of one EXPORT_SUBMISSION_JOB line (ValueError when it is not one)."""
    if line.get("source_type") != "EXPORT_SUBMISSION_JOB":
        raise ValueError(f"not a submission-job export event: {line.get('source_type')!r}")
    export_id, data = str(line["event_id"]), line["event_data"]
    status = str(data.get("status", ""))
    # The state's own time: the job's start for PENDING, its end for a final state,
    # else the line's (whole-second) time.
    ms = 0
    if status == "PENDING":
        ms = int(data.get("start_time") or 0)
    elif status in _TERMINAL:
        ms = int(data.get("end_time") or 0)
    when = _rfc3339_ms(ms or int(line["timestamp"]) * 1000)
    base = {
        "sourceType": "JOBS",
        "timestamp": _rfc3339_ms(int(line["timestamp"]) * 1000),
        "severity": "INFO",
        "sessionName": session,
        "nodeId": _hex_to_base64(node),
        "message": "",
    }
    transition: dict[str, Any] = {
        "state": status,
        "timestamp": when,
        "message": data.get("message", ""),
        "errorType": data.get("error_type", ""),
        "driverNodeId": _hex_to_base64(str(data.get("driver_node_id") or "")),
        "driverAgentHttpAddress": data.get("driver_agent_http_address", ""),
    }
    if data.get("driver_exit_code") is not None:
        transition["driverExitCode"] = data["driver_exit_code"]
    submission_id = data["submission_job_id"]
    return [
        {
            **base,
            "eventId": _id(export_id, "definition"),
            "eventType": "SUBMISSION_JOB_DEFINITION_EVENT",
            "submissionJobDefinitionEvent": {
                "submissionId": submission_id,
                "entrypoint": data.get("entrypoint", ""),
                "config": {
                    "serializedRuntimeEnv": data.get("runtime_env_json", ""),
                    "metadata": data.get("metadata") or {},
                },
            },
        },
        {
            **base,
            "eventId": _id(export_id, "lifecycle"),
            "eventType": "SUBMISSION_JOB_LIFECYCLE_EVENT",
            "submissionJobLifecycleEvent": {
                "submissionId": submission_id,
                "stateTransitions": [transition],
            },
        },
    ]


class ExportTailer:
    """Reads the export files' new complete lines and hands them to the intake."""

    def __init__(self, ray_root: Path, state_file: Path, accept: Callable[[bytes], int]):
        self.ray_root = ray_root
        self.state_file = state_file
        self.accept = accept
        try:
            self.offsets: dict[str, int] = json.loads(state_file.read_text())
        except (FileNotFoundError, ValueError):
            self.offsets = {}

    def tail(self) -> int:
        """Hand over every new line; return how many events went in. The intake's
        refusal (spool full) leaves the line for the next call."""
        sent = 0
        try:
            for session_dir in session_dirs(self.ray_root):
                node = node_id(session_dir)
                exports = session_dir / "logs" / "export_events"
                if node is None or not exports.is_dir():
                    continue
                for path in sorted(exports.glob(SUBMISSION_JOB_FILES)):
                    sent += self._tail_file(path, session_dir.name, node)
        finally:
            self.state_file.write_text(json.dumps(self.offsets))
        return sent

    def _tail_file(self, path: Path, session: str, node: str) -> int:
        key = str(path)
        offset = self.offsets.get(key, 0)
        data = path.read_bytes()[offset:]
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
        sent = 0
        for raw in complete.splitlines(keepends=True):
            text = raw.strip()
            if text:
                try:
                    events = submission_job_events(json.loads(text), session, node)
                    sent += self.accept(json.dumps(events).encode())
                except (BodyError, ValueError, KeyError, TypeError) as exc:
                    # The file goes to the lake as a log, so the line is kept verbatim.
                    log.warning("%s: a line that is not a submission-job event: %s", path, exc)
            offset += len(raw)
            self.offsets[key] = offset
        return sent
