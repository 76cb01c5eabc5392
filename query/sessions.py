"""The sessions a lake holds, from its catalog alone (never a glob over data)."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass

from lake.catalog import CatalogEntry, read_entries
from lake.layout import ClusterKey
from lake.store import Lake
from query.engine import SessionRef

# session_<YYYY-MM-DD_HH-MM-SS_ffffff>_<pid>: the head's local time when Ray started.
_SESSION_TIME = re.compile(r"session_(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})_(\d{6})_\d+")


@dataclass(frozen=True)
class SessionInfo:
    ref: SessionRef
    entries: tuple[CatalogEntry, ...]

    @property
    def ended(self) -> bool:
        return all(e.ended for e in self.entries)

    @property
    def ray_version(self) -> str:
        return next((e.ray_version for e in self.entries if e.ray_version), "")

    @property
    def start_time(self) -> dt.datetime:
        """When the session began: from its name, else its first event."""
        found = _SESSION_TIME.fullmatch(self.ref.session)
        if found:
            stamp = dt.datetime.strptime(f"{found[1]}_{found[2]}", "%Y-%m-%d_%H-%M-%S_%f")
            return stamp.replace(tzinfo=dt.UTC)
        firsts = [e.first_event_time for e in self.entries if e.first_event_time]
        if firsts:
            return dt.datetime.fromisoformat(min(firsts))
        return dt.datetime.fromtimestamp(0, dt.UTC)

    @property
    def last_event_time(self) -> str | None:
        lasts = [e.last_event_time for e in self.entries if e.last_event_time]
        return max(lasts) if lasts else None


def list_sessions(lake: Lake) -> list[SessionInfo]:
    """Every session in the catalog, newest first."""
    grouped: dict[SessionRef, list[CatalogEntry]] = defaultdict(list)
    for entry in read_entries(lake):
        grouped[SessionRef(ClusterKey(entry.namespace, entry.cluster), entry.session)].append(entry)
    infos = [SessionInfo(ref, tuple(entries)) for ref, entries in grouped.items()]
    return sorted(infos, key=lambda s: (s.start_time, s.ref), reverse=True)
