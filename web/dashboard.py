"""The dashboard's own (non state-API) endpoints the Ray UI calls."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
