"""raylake's own SQL API: `/api/lake/sql` and `/api/lake/tables` over every session."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
