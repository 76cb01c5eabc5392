"""Tasks: `/api/v0/tasks`, its summaries and the timeline."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
