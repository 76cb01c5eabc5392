"""Store a Ray session's log directory for one node under the lake's `logs/`.

Files already stored with the same size are skipped, so storing a directory again
costs only what changed. The node's catalog entry records how many files and bytes
the lake holds for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lake.catalog import CatalogEntry, update_entry
from lake.layout import ClusterKey, check_node, log_file_path, logs_dir
from lake.logfiles import LogFile, write_index
from lake.store import Lake


@dataclass
class LogsReport:
    files: int = 0
    bytes: int = 0
    skipped: int = 0


def store_log_dir(
    lake: Lake, cluster: ClusterKey, session: str, node_id: str, directory: Path
) -> LogsReport:
    """Copy every regular file below `directory` (links are not followed)."""
    check_node(node_id)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: not a directory")
    report = LogsReport()
    for path in sorted(directory.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        target = log_file_path(cluster, session, node_id, path.relative_to(directory).as_posix())
        size = path.stat().st_size
        if lake.exists(target) and lake.size(target) == size:
            report.skipped += 1
            continue
        lake.write_bytes(target, path.read_bytes())
        report.files += 1
        report.bytes += size
    _record(lake, cluster, session, node_id)
    return report


def _record(lake: Lake, cluster: ClusterKey, session: str, node_id: str) -> None:
    directory = logs_dir(cluster, session, node_id)
    files = [
        LogFile(relative, lake.size(path), None, "whole", None)
        for path in lake.list_files(directory)
        if not (relative := path.removeprefix(directory + "/")).startswith("_parts/")
    ]
    write_index(lake, cluster, session, node_id, files)

    def count(entry: CatalogEntry) -> bool:
        entry.log_files = len(files)
        entry.log_bytes = sum(f.size for f in files)
        return True

    update_entry(lake, cluster, session, node_id, count)
