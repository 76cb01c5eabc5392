"""`raylake serve`: choosing a session, access control, S3 lakes and `make run`, over
real HTTP against real server processes."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar import get
from litestar.testing import TestClient

from ingest.load import ingest_paths
from lake.layout import ClusterKey
from lake.store import Lake
from web.app import ServerConfig, create_app

from conftest import CLUSTER, POSTS, SESSION, ingest_sample
from s3_server import (
    FAKE_AWS_ENV,
    create_bucket,
    fake_aws_env,
    free_port,
    moto_server,
)
from server import REPO, Server, running_server

ENTER = f"/enter_cluster/{CLUSTER.namespace}/{CLUSTER.name}/{SESSION}"
KEY = f"{CLUSTER.namespace}/{CLUSTER.name}/{SESSION}"
OTHER = ClusterKey("team-b", "etl")


@pytest.fixture(scope="module")
def two_clusters(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The sample twice: as default/demo, and as team-b/etl."""
    lake = ingest_sample(str(tmp_path_factory.mktemp("lake") / "lake"))
    assert not ingest_paths(lake, OTHER, [POSTS]).rejected
    return lake


@pytest.fixture(scope="module")
def served(two_clusters: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(two_clusters.url, tmp_path_factory.mktemp("serve")) as server:
        yield server


def test_clusters_lists_sessions_in_kuberays_shape(served: Server) -> None:
    answer = httpx.get(f"{served.url}/clusters")
    assert answer.status_code == 200
    assert answer.headers["x-total-count"] == "2"
    found = {(c["namespace"], c["name"]) for c in answer.json()}
    assert found == {("default", "demo"), ("team-b", "etl")}
    first = answer.json()[0]
    assert list(first)[:5] == ["name", "namespace", "sessionName", "createTime", "createTimeStamp"]
    assert first["sessionName"] == SESSION
    assert first["createTime"] == "2026-11-21T20:42:42Z"
    assert first["createTimeStamp"] == 1795293762066


def test_clusters_filter_and_page(served: Server) -> None:
    def names(**params: str) -> list[str]:
        return [c["name"] for c in httpx.get(f"{served.url}/clusters", params=params).json()]

    assert names(namespace="team-b") == ["etl"]
    assert names(name="demo") == ["demo"]
    assert names(since="2026-11-22T00:00:00+00:00") == []
    assert len(names(until="2026-11-22T00:00:00+00:00")) == 2
    pages = names(limit="1") + names(limit="1", offset="1")
    assert sorted(pages) == ["demo", "etl"]
    bad = httpx.get(f"{served.url}/clusters", params={"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()["msg"]


def test_no_session_chosen_is_a_clear_400(served: Server) -> None:
    answer = httpx.get(f"{served.url}/api/v0/tasks")
    assert answer.status_code == 400
    assert answer.json() == {
        "result": False,
        "msg": answer.json()["msg"],
        "data": {"error": "no_session"},
    }
    assert "/enter_cluster/" in answer.json()["msg"]


def test_enter_cluster_sets_the_session_cookie(served: Server) -> None:
    with httpx.Client(base_url=served.url) as client:
        entered = client.get(ENTER)
        assert entered.status_code == 200
        assert entered.json()["session"] == SESSION
        assert client.cookies["raylake_session"].strip('"') == KEY
        assert client.get("/api/v0/tasks").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        f"/enter_cluster/{CLUSTER.namespace}/{CLUSTER.name}/latest",
        f"/enter_cluster/{CLUSTER.namespace}/RayCluster/{CLUSTER.name}/{SESSION}",
        f"/enter_cluster/{CLUSTER.namespace}/RayJob/{CLUSTER.name}/latest",
    ],
)
def test_enter_cluster_forms(served: Server, path: str) -> None:
    answer = httpx.get(f"{served.url}{path}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["session"] == SESSION


def test_enter_cluster_redirects_a_browser(served: Server) -> None:
    answer = httpx.get(f"{served.url}{ENTER}", params={"next": "/#/jobs"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/#/jobs"
    elsewhere = httpx.get(f"{served.url}{ENTER}", params={"next": "//evil.example/"})
    assert elsewhere.status_code == 200  # never redirected off the server


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"/enter_cluster/{CLUSTER.namespace}/{CLUSTER.name}/session_nope", 404, "unknown_session"),
        (f"/enter_cluster/nobody/{CLUSTER.name}/latest", 404, "unknown_session"),
        (f"/enter_cluster/Bad.NS/{CLUSTER.name}/latest", 400, "bad_session"),
        (f"/enter_cluster/{CLUSTER.namespace}/{CLUSTER.name}/..", 404, "not_found"),
    ],
)
def test_unknown_and_bad_sessions(served: Server, path: str, status: int, code: str) -> None:
    answer = httpx.get(f"{served.url}{path}")
    assert answer.status_code == status, answer.text
    assert answer.json()["result"] is False
    assert answer.json()["data"] == {"error": code}


def test_session_parameter_overrides_the_cookie(served: Server) -> None:
    with httpx.Client(base_url=served.url) as client:
        client.get(ENTER)
        other = f"{OTHER.namespace}/{OTHER.name}/{SESSION}"
        assert client.get("/api/v0/tasks", params={"session": other}).status_code == 200
        bad = client.get("/api/v0/tasks", params={"session": "no-slashes"})
        assert bad.status_code == 400 and bad.json()["data"] == {"error": "bad_session"}
        missing = client.get("/api/v0/tasks", params={"session": f"{OTHER.namespace}/x/latest"})
        assert missing.status_code == 404


# --- access ---------------------------------------------------------------------------

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def guarded(two_clusters: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("guarded")
    with running_server(two_clusters.url, work, env={"RAYLAKE_AUTH_TOKEN": TOKEN}) as server:
        yield server


def test_every_route_but_health_needs_the_token(guarded: Server) -> None:
    for path in ("/healthz", "/readyz"):
        assert httpx.get(f"{guarded.url}{path}").status_code == 200
    for path in ("/clusters", ENTER, "/api/v0/tasks", "/api/version", "/"):
        answer = httpx.get(f"{guarded.url}{path}")
        assert answer.status_code == 401, path
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["data"] == {"error": "unauthorized"}
    wrong = httpx.get(f"{guarded.url}/clusters", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = httpx.get(f"{guarded.url}/clusters", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200


def test_a_browser_signs_in_once(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url) as browser:
        page = browser.get("/clusters", headers={"Accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=/clusters"
        assert browser.get("/login").status_code == 200
        refused = browser.post("/login", data={"token": "nope", "next": "/clusters"})
        assert refused.status_code == 401 and "raylake_token" not in browser.cookies
        signed = browser.post("/login", data={"token": TOKEN, "next": "/clusters"})
        assert signed.status_code == 303 and signed.headers["location"] == "/clusters"
        assert browser.get("/clusters").status_code == 200  # the cookie carries the token


@contextlib.contextmanager
def root_logging_restored() -> Iterator[None]:
    """An app made in this process sets the root logger to INFO, with a handler writing to
    the stderr of the test that made it: left in place, later tests' INFO records (httpx
    logs every request) would go to a stream pytest has closed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


# Litestar 2.25 deprecates parameters inferred from a handler's signature; they still work.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_500_logs_its_traceback(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Outside debug mode too: a 500 is a bug, and its traceback is how it is found."""

    @get("/fails", sync_to_thread=False)
    def fails() -> None:
        raise RuntimeError("the bug behind a 500")

    Lake(str(tmp_path / "lake"), create=True)
    with root_logging_restored():
        app = create_app(ServerConfig(lake=str(tmp_path / "lake"), cache_dir=tmp_path / "cache"))
        app.register(fails)
        with TestClient(app) as client:
            assert client.get("/fails").status_code == 500
    # Litestar's own handler writes it to stderr, from a thread of its own.
    deadline = time.monotonic() + 5
    logged = ""
    while "RuntimeError: the bug behind a 500" not in logged and time.monotonic() < deadline:
        time.sleep(0.05)
        logged += capfd.readouterr().err
    assert "Traceback" in logged and "RuntimeError: the bug behind a 500" in logged, logged


def test_cors_is_off_by_default(served: Server) -> None:
    answer = httpx.get(f"{served.url}/clusters", headers={"Origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in answer.headers


# --- an S3 lake -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with fake_aws_env(), moto_server() as endpoint:
        create_bucket(endpoint, "raylake-serve")
        url = "s3://raylake-serve/lake"
        lake = Lake(url, endpoint_url=endpoint, create=True)
        assert not ingest_paths(lake, CLUSTER, [POSTS]).rejected
        yield url, endpoint


def test_an_s3_lake_answers_as_a_local_one(
    s3_lake: tuple[str, str], served: Server, tmp_path: Path
) -> None:
    url, endpoint = s3_lake
    with running_server(
        url, tmp_path, "--s3-endpoint-url", endpoint, env=dict(FAKE_AWS_ENV)
    ) as remote:
        sessions = httpx.get(f"{remote.url}/clusters").json()
        assert [(s["namespace"], s["name"], s["sessionName"]) for s in sessions] == [
            (CLUSTER.namespace, CLUSTER.name, SESSION)
        ]
        params = {"session": KEY, "limit": "10000"}
        got = httpx.get(f"{remote.url}/api/v0/tasks", params=params, timeout=60)
        want = httpx.get(f"{served.url}/api/v0/tasks", params=params, timeout=60)
        assert got.status_code == want.status_code == 200
        assert got.json() == want.json()
        # The remote state was copied to the server's cache, once.
        cached = list((tmp_path / f"cache-{remote.url.rsplit(':', 1)[1]}").rglob("*.parquet"))
        assert cached


# --- make run -------------------------------------------------------------------------


def test_make_run_serves_the_sample(tmp_path: Path) -> None:
    port = free_port()
    command = ["make", "--no-print-directory", "run", f"LAKE={tmp_path / 'lake'}", f"PORT={port}"]
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        make = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        answer = None
        while time.monotonic() < deadline and make.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(f"http://127.0.0.1:{port}/clusters", timeout=2)
                break
            time.sleep(0.2)
        assert answer is not None and answer.status_code == 200, log.read_text()[-3000:]
        assert [s["sessionName"] for s in answer.json()] == [SESSION]
        assert f"http://127.0.0.1:{port}/" in log.read_text()
    finally:
        # make and the server it started are this test's own process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=30)
