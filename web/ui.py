"""The landing page and the real Ray Dashboard frontend."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
