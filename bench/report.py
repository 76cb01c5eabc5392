"""What every benchmark prints the same way."""

from __future__ import annotations

import os


def count(value: float) -> str:
    return f"{value:,.0f}"


def load_average() -> str:
    """The load average: wall-clock figures mean little on a busy machine."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"
