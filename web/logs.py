"""`/api/v0/logs` and `/api/v0/logs/file` over the session's shipped log files."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
