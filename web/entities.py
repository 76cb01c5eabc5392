"""Actors, nodes, jobs, workers and placement groups as Ray's state API lists them."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
