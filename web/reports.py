"""Cross-session reports: `/lake/reports`, and the HTML `raylake report` writes."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
