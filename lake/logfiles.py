"""The log-file index: what each of a node's shipped log files is.

One Parquet file per (cluster, session, node) lists its log files: path under the
session's `logs/`, size, and what Ray's file name says (worker id, pid, job id,
submission id). A file is stored whole at its path (`raylake ingest --logs`), or, while
a collector ships it, as parts keyed by the file's inode and start offset: renaming a
rotated file ships nothing again, and each interval costs only the bytes that changed.

(`lake.layout` has the paths.)
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.layout import ClusterKey, log_file_path, log_index_path, logs_dir
from lake.parts import parquet_bytes
from lake.store import Lake

INDEX_SCHEMA = pa.schema(
    [
        pa.field(name, kind)
        for name, kind in [
            ("node_id", pa.string()),
            ("path", pa.string()),
            ("size", pa.int64()),
            ("inode", pa.int64()),
            ("stored_as", pa.string()),
            ("worker_id", pa.string()),
            ("pid", pa.int64()),
            ("job_id", pa.string()),
            ("submission_id", pa.string()),
            ("modified_time", pa.timestamp("ns", tz="UTC")),
        ]
    ]
)

_WORKER_OUT = re.compile(r"worker-([0-9a-f]{56})-([0-9a-f]{8})-(\d+)\.(?:out|err)")
_CORE_WORKER = re.compile(r"python-core-(?:worker|driver)-([0-9a-f]{56})_(\d+)\.log")
_JOB_FILE = re.compile(
    r"(?:runtime_env_setup|runtime_env_setup-ray_client_server)-([0-9a-f]{8})\.log"
)
_SUBMISSION = re.compile(r"job-driver-(.+)\.log")


@dataclass(frozen=True)
class LogFile:
    path: str
    size: int
    inode: int | None
    stored_as: str  # "whole" or "parts"
    modified_ns: int | None


def describe(path: str) -> dict[str, str | int | None]:
    """What Ray's file name says about a log file."""
    name = path.rsplit("/", 1)[-1]
    found: dict[str, str | int | None] = {
        "worker_id": None,
        "pid": None,
        "job_id": None,
        "submission_id": None,
    }
    if match := _WORKER_OUT.fullmatch(name):
        job = match[2]
        found |= {
            "worker_id": match[1],
            "job_id": None if job == "ffffffff" else job,
            "pid": int(match[3]),
        }
    elif match := _CORE_WORKER.fullmatch(name):
        worker = match[1]
        found |= {"worker_id": worker, "pid": int(match[2])}
        if worker.endswith("f" * 48):  # a driver: its id is the job id, then 0xff
            found["job_id"] = worker[:8]
    elif match := _JOB_FILE.fullmatch(name):
        found["job_id"] = match[1]
    elif match := _SUBMISSION.fullmatch(name):
        found["submission_id"] = match[1]
    return found


def read_index(lake: Lake, cluster: ClusterKey, session: str, node_id: str) -> list[LogFile]:
    path = log_index_path(cluster, session, node_id)
    if not lake.exists(path):
        return []
    table = pq.read_table(io.BytesIO(lake.read_bytes(path)))
    times = pc.cast(table["modified_time"], pa.int64()).to_pylist()
    return [
        LogFile(row["path"], row["size"], row["inode"], row["stored_as"], modified)
        for row, modified in zip(
            table.select(["path", "size", "inode", "stored_as"]).to_pylist(), times, strict=True
        )
    ]


def assemble(lake: Lake, cluster: ClusterKey, session: str, node_id: str) -> int:
    """Join the parts of a node's shipped files into whole files at their paths, once
    the node's session has ended; return how many files were joined."""
    files = read_index(lake, cluster, session, node_id)
    joined = 0
    for i, f in enumerate(files):
        if f.stored_as != "parts" or f.inode is None:
            continue
        parts_dir = f"{logs_dir(cluster, session, node_id)}/_parts/{f.inode}"
        parts = list(lake.list_files(parts_dir, ".part"))
        target = log_file_path(cluster, session, node_id, f.path)
        lake.write_chunks(target, (lake.read_bytes(p) for p in parts))
        files[i] = LogFile(f.path, lake.size(target), None, "whole", f.modified_ns)
        write_index(lake, cluster, session, node_id, files)  # before the parts go
        for part in parts:
            lake.delete(part)
        joined += 1
    return joined


def write_index(
    lake: Lake, cluster: ClusterKey, session: str, node_id: str, files: list[LogFile]
) -> None:
    rows = [
        {
            "node_id": node_id,
            "path": f.path,
            "size": f.size,
            "inode": f.inode,
            "stored_as": f.stored_as,
            **describe(f.path),
            "modified_time": f.modified_ns,
        }
        for f in sorted(files, key=lambda f: f.path)
    ]
    arrays = []
    for field in INDEX_SCHEMA:
        values = [row[field.name] for row in rows]
        raw_type = pa.int64() if field.name == "modified_time" else field.type
        arrays.append(pa.array(values, raw_type).cast(field.type))
    table = pa.Table.from_arrays(arrays, schema=INDEX_SCHEMA)
    lake.write_bytes(log_index_path(cluster, session, node_id), parquet_bytes(table))
