"""Shared fixtures: the bundled Ray 2.60 capture, ingested once into a real lake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from ingest.load import ingest_paths
from ingest.logs import store_log_dir
from ingest.snapshots import store_snapshot
from lake.layout import ClusterKey
from lake.store import Lake

if TYPE_CHECKING:
    from server import Server

SAMPLE = Path(__file__).parent / "fixtures" / "ray-2.60-scenario-a"
POSTS = SAMPLE / "posts"
LIVE = SAMPLE / "live"
SESSION = "session_2026-11-21_20-42-42_066305_20083"
HEAD_NODE = "a7adc7d8d330156f3b83a38b0c44ded53f9781cc3dab953e8694bb36"
WORKER_NODE = "baecc821b4e2be4b05f9d2711297e15761d5a0fa665dd02790868f0e"
CLUSTER = ClusterKey("default", "demo")
# The live dashboard's answers, as the head collector's snapshots would have kept them.
SNAPSHOTS = {
    "jobs": "api_jobs_.json",
    "placement_groups": "api_v0_placement_groups_detail_1_limit_10000.json",
    "version": "api_version.json",
    "cluster_metadata": "api_v0_cluster_metadata.json",
    "timezone": "timezone.json",
}
SNAPSHOT_NS = 1_795_293_800_000_000_000


def live(name: str) -> Any:
    """The `result` list (or whole body) of a golden answer of the live dashboard."""
    body = json.loads((LIVE / f"{name}.json").read_text())
    data = body.get("data", {}).get("result", {})
    return data.get("result", body) if isinstance(data, dict) else body


def ingest_sample(url: str, cluster: ClusterKey = CLUSTER) -> Lake:
    """The capture as `cluster`, with its snapshots and both nodes' logs (the lake is
    created when missing, so several clusters can share it)."""
    lake = Lake(url, create=True)
    report = ingest_paths(lake, cluster, [POSTS])
    assert not report.rejected, report.rejected
    for endpoint, answer in SNAPSHOTS.items():
        body = (LIVE / answer).read_bytes()
        store_snapshot(lake, cluster, SESSION, endpoint, body, SNAPSHOT_NS)
    store_log_dir(lake, cluster, SESSION, HEAD_NODE, SAMPLE / "logs" / "head")
    store_log_dir(lake, cluster, SESSION, WORKER_NODE, SAMPLE / "logs" / "worker")
    return lake


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return ingest_sample(str(tmp_path_factory.mktemp("lake") / "sample"))


@pytest.fixture(scope="session")
def collected_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The capture stored through two real collectors (head and worker)."""
    from collected import collect_sample

    return collect_sample(tmp_path_factory.mktemp("collected"))


@pytest.fixture(scope="session")
def server(collected_lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`raylake serve` over the collected lake."""
    from server import running_server

    with running_server(collected_lake.url, tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture(scope="session")
def api(server: Server) -> Iterator[httpx.Client]:
    """An HTTP client of the server that has entered the sample session."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        entered = client.get(f"/enter_cluster/{CLUSTER.namespace}/{CLUSTER.name}/{SESSION}")
        assert entered.status_code == 200, entered.text
        yield client


#: Debian's chromium, which `make setup` installs; Playwright drives it (no download).
CHROMIUM = "/usr/bin/chromium"
# No sandbox as root, and no background connections to Google's hosts, which a closed
# network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium, for the tests of pages."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
