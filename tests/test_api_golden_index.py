"""Every request the live Ray 2.60 dashboard answered in the capture is answered by
raylake (the answers are compared key by key in `test_api_tasks.py`,
`test_api_entities.py`, `test_api_dashboard.py` and `test_api_logs.py`).

The capture names each answer after its request (every non-alphanumeric character of
path and query turned into `_`); `after_worker_death_*` repeats the same requests.
"""

from __future__ import annotations

import httpx
import pytest

from collected import recorded_name
from conftest import LIVE

#: The request behind each golden file.
REQUESTS = [
    "/api/cluster_status?format=1",
    "/api/jobs/",
    "/api/v0/actors?limit=10000&detail=1",
    "/api/v0/actors/summarize",
    "/api/v0/cluster_metadata",
    "/api/v0/jobs?detail=1",
    "/api/v0/nodes?detail=1",
    "/api/v0/placement_groups?detail=1&limit=10000",
    "/api/v0/tasks?limit=10000",
    "/api/v0/tasks?limit=10000&detail=1",
    "/api/v0/tasks/summarize",
    "/api/v0/tasks/summarize?summary_by=lineage",
    "/api/v0/tasks/timeline?download=1",
    "/api/v0/workers?limit=10000&detail=1",
    "/api/version",
    "/events",
    "/logical/actors",
    "/nodes?view=summary",
    "/timezone",
]


def test_the_requests_are_exactly_the_captured_ones() -> None:
    captured = {p.stem for p in LIVE.glob("*.json")}
    names = {recorded_name(r) for r in REQUESTS}
    assert captured == names | {f"after_worker_death_{n}" for n in names}


@pytest.mark.parametrize("request_path", REQUESTS)
def test_raylake_answers_it(api: httpx.Client, request_path: str) -> None:
    answer = api.get(request_path)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["content-type"].startswith("application/json")
