"""The SQL console page at `/lake/sql`."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
