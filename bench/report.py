"""What every benchmark prints the same way."""

from __future__ import annotations

import math
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


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of a non-empty list."""
    ranked = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ranked)))
    return ranked[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"
