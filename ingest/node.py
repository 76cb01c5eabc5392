"""What a collector learns from its node's Ray directory, without asking Ray.

`<ray-root>/session_latest` points at the current session's directory, which holds
files named `<component>_port_<node_id_hex>` written at node start.
"""

from __future__ import annotations

import re
from pathlib import Path

_PORT_FILE = re.compile(r"[a-z_]+_port_([0-9a-f]{56})")
_SESSION = re.compile(r"session_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+_\d+")


def current_session_dir(ray_root: Path) -> Path | None:
    latest = ray_root / "session_latest"
    try:
        target = latest.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        return None
    return target if _SESSION.fullmatch(target.name) else None


def session_dirs(ray_root: Path) -> list[Path]:
    """Every session directory under the root, oldest first (names sort by time)."""
    if not ray_root.is_dir():
        return []
    return sorted(p for p in ray_root.iterdir() if p.is_dir() and _SESSION.fullmatch(p.name))


def node_id(session_dir: Path) -> str | None:
    """The node's id, from the port files Ray writes into its session directory."""
    if not session_dir.is_dir():
        return None
    for path in sorted(session_dir.iterdir()):
        match = _PORT_FILE.fullmatch(path.name)
        if match:
            return match[1]
    return None
