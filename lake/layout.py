"""Where everything lives in a lake (format v1): pure functions from names to paths.

    _lake.json
    _catalog/cluster=<ns>.<name>/session=<session>/node=<node_id>.json
    raw/cluster=<ns>.<name>/session=<session>/node=<node_id>/<body sha256>.json.zst
    raw/cluster=<ns>.<name>/session=<session>/node=<node_id>/seg-<node_id>-<n>.jsonl.zst
    events/<table>/cluster=<ns>.<name>/session=<session>/date=<YYYY-MM-DD>/part-<writer>-<ingest>.parquet
    state/<entity>/cluster=<ns>.<name>/session=<session>/<version>.parquet
    state/_meta/cluster=<ns>.<name>/session=<session>.json
    logs/cluster=<ns>.<name>/session=<session>/node=<node_id>/<path under the session's logs/>
    logs/cluster=<ns>.<name>/session=<session>/node=<node_id>/_parts/<inode>/<start>.part
    logs/_index/cluster=<ns>.<name>/session=<session>/node=<node_id>.parquet
    snapshots/raw/cluster=<ns>.<name>/session=<session>/<endpoint>/<time ns>.json
    snapshots/<table>/cluster=<ns>.<name>/session=<session>/latest.parquet

Kubernetes namespaces cannot contain a dot, so the first dot of the cluster key splits
namespace from name. Every name that reaches a path is checked here, so no input can
escape its partition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

LAKE_FILE = "_lake.json"
FORMAT_VERSION = (1, 0)

CATALOG = "_catalog"
RAW = "raw"
EVENTS = "events"
LOGS = "logs"
SNAPSHOTS = "snapshots"
STATE = "state"

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_SESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_NODE = re.compile(r"[0-9a-f]+|unknown")
_WRITER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class LayoutError(ValueError):
    """A name that cannot be part of a lake path."""


@dataclass(frozen=True, order=True)
class ClusterKey:
    namespace: str
    name: str

    def __post_init__(self) -> None:
        if not _NAMESPACE.fullmatch(self.namespace) or len(self.namespace) > 63:
            raise LayoutError(
                f"namespace {self.namespace!r}: expected a Kubernetes namespace "
                "(lowercase letters, digits and '-', no dot)"
            )
        if not _NAME.fullmatch(self.name) or len(self.name) > 253:
            raise LayoutError(
                f"cluster name {self.name!r}: expected letters, digits, '-', '_', '.'"
            )

    @property
    def key(self) -> str:
        return f"{self.namespace}.{self.name}"

    @classmethod
    def parse(cls, key: str) -> ClusterKey:
        namespace, dot, name = key.partition(".")
        if not dot:
            raise LayoutError(f"cluster key {key!r}: expected <namespace>.<name>")
        return cls(namespace, name)


def check_session(session: str) -> str:
    if not _SESSION.fullmatch(session) or len(session) > 200:
        raise LayoutError(
            f"session {session!r}: expected a Ray session name like session_<time>_<pid>"
        )
    return session


def check_node(node_id: str) -> str:
    if not _NODE.fullmatch(node_id):
        raise LayoutError(f"node id {node_id!r}: expected lowercase hex")
    return node_id


def check_writer(writer: str) -> str:
    if not _WRITER.fullmatch(writer):
        raise LayoutError(f"writer id {writer!r}: expected letters, digits, '-', '_', '.'")
    return writer


def _partition(cluster: ClusterKey, session: str) -> str:
    return f"cluster={cluster.key}/session={check_session(session)}"


def catalog_path(cluster: ClusterKey, session: str, node_id: str) -> str:
    return f"{catalog_session_dir(cluster, session)}/node={check_node(node_id)}.json"


def raw_path(
    cluster: ClusterKey, session: str, node_id: str, name: str, suffix: str = ".json.zst"
) -> str:
    """A raw object: one body (`.json.zst`) or a collector's bodies, one per line
    (`.jsonl.zst`); lakes written before zstd hold `.json.gz` and `.jsonl.gz`."""
    node = check_node(node_id)
    return f"{RAW}/{_partition(cluster, session)}/node={node}/{check_writer(name)}{suffix}"


def events_table_dir(table: str) -> str:
    return f"{EVENTS}/{table}"


def events_session_dir(table: str, cluster: ClusterKey, session: str) -> str:
    return f"{EVENTS}/{table}/{_partition(cluster, session)}"


def events_part_path(
    table: str, cluster: ClusterKey, session: str, date: str, writer: str, ingest_id: str
) -> str:
    return (
        f"{events_session_dir(table, cluster, session)}/date={date}/"
        f"part-{check_writer(writer)}-{check_writer(ingest_id)}.parquet"
    )


def logs_dir(cluster: ClusterKey, session: str, node_id: str) -> str:
    return f"{LOGS}/{_partition(cluster, session)}/node={check_node(node_id)}"


def log_file_path(cluster: ClusterKey, session: str, node_id: str, relative: str) -> str:
    """A shipped log file's path; `relative` must stay inside the node's log directory."""
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or any(p in ("..", ".", "") for p in parts):
        raise LayoutError(f"log path {relative!r}: expected a relative path inside logs/")
    return f"{logs_dir(cluster, session, node_id)}/{'/'.join(parts)}"


def log_index_path(cluster: ClusterKey, session: str, node_id: str) -> str:
    """The index of one node's log files in a session."""
    return f"{LOGS}/_index/{_partition(cluster, session)}/node={check_node(node_id)}.parquet"


def log_index_dir() -> str:
    return f"{LOGS}/_index"


def log_part_path(cluster: ClusterKey, session: str, node_id: str, inode: int, start: int) -> str:
    """Bytes of a log file shipped while it grew, keyed by its inode and first offset."""
    return f"{logs_dir(cluster, session, node_id)}/_parts/{inode}/{start:020d}.part"


def snapshot_body_path(cluster: ClusterKey, session: str, endpoint: str, time_ns: int) -> str:
    """A polled endpoint's body, as the dashboard answered it."""
    return f"{snapshot_session_dir(cluster, session)}/{check_writer(endpoint)}/{time_ns}.json"


def snapshot_session_dir(cluster: ClusterKey, session: str) -> str:
    """Every polled body of one session, under `<endpoint>/<time ns>.json`."""
    return f"{SNAPSHOTS}/raw/{_partition(cluster, session)}"


def catalog_session_dir(cluster: ClusterKey, session: str) -> str:
    return f"{CATALOG}/{_partition(cluster, session)}"


def state_path(entity: str, cluster: ClusterKey, session: str, version: str) -> str:
    """One materialized entity table of a session, as of one version of its inputs."""
    return f"{state_dir(entity, cluster, session)}/{check_writer(version)}.parquet"


def state_dir(entity: str, cluster: ClusterKey, session: str) -> str:
    return f"{STATE}/{check_writer(entity)}/{_partition(cluster, session)}"


def state_meta_path(cluster: ClusterKey, session: str) -> str:
    """Which version of a session's state is complete (written after its tables)."""
    return f"{STATE}/_meta/cluster={cluster.key}/session={check_session(session)}.json"


def snapshot_table_dir(table: str) -> str:
    return f"{SNAPSHOTS}/{check_writer(table)}"


def snapshot_table_path(table: str, cluster: ClusterKey, session: str) -> str:
    """The latest parsed snapshot of one session (each poll replaces it)."""
    return f"{snapshot_table_dir(table)}/{_partition(cluster, session)}/latest.parquet"


def parse_partition(path: str) -> dict[str, str]:
    """The `key=value` parts of a path, e.g. {'cluster': 'ns.name', 'session': ...}."""
    out = {}
    for part in path.split("/"):
        key, eq, value = part.partition("=")
        if eq:
            out[key] = value
    return out
