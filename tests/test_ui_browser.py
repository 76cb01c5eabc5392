"""The landing page and the real Ray Dashboard frontend that `raylake serve` serves.

HTTP-level checks of the pages and assets, then a person's path through Ray's own UI in
headless Chromium (Debian's `chromium`, driven by Playwright; `make setup` installs it):
land on `/`, enter the sample session, Jobs, a job's task table, a task's log. Screenshots
go to tests/artifacts/ui/ (its path is printed), with every request the UI made.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from lake.store import Lake
from web.ui import installed_build

from conftest import CLUSTER, SAMPLE, SESSION, WORKER_NODE, live
from server import Server, running_server

SESSION_KEY = f"{CLUSTER.namespace}/{CLUSTER.name}/{SESSION}"
ARTIFACTS = Path(__file__).parent / "artifacts" / "ui"


def bundled_build() -> Path:
    build = installed_build()
    assert build is not None, "the ray package (raylake[dashboard]) ships the dashboard build"
    return build


@contextlib.contextmanager
def entered(server: Server) -> Iterator[httpx.Client]:
    """A client of `server` that has entered the sample session."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.get(f"/enter_cluster/{SESSION_KEY}")
        assert answer.status_code == 200, answer.text
        yield client


def asset_paths(index_html: str) -> list[str]:
    """The script and style sheet index.html loads (`./static/...`)."""
    return [
        p.removeprefix(".") for p in re.findall(r'(?:src|href)="(\./static/[^"]+)"', index_html)
    ]


# HTTP level.


def test_landing_page_lists_the_sample_session_and_its_link_enters_it(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as fresh:
        landing = fresh.get("/")
        assert landing.status_code == 200
        assert landing.headers["content-type"].startswith("text/html")
        page = landing.text
        assert "<script" not in page  # readable without JavaScript
        assert f'data-session="{SESSION_KEY}"' in page
        assert f"{CLUSTER.namespace}/{CLUSTER.name}" in page
        assert "2.60.0" in page  # the session's Ray version, and the build it gets
        link = re.search(r'<a class="enter" href="([^"]+)"', page)
        assert link is not None
        href = link[1].replace("&amp;", "&")
        assert href == f"/enter_cluster/{SESSION_KEY}?next=/"

        enter = fresh.get(href)
        assert enter.status_code == 303
        assert enter.headers["location"] == "/"
        assert SESSION in fresh.cookies["raylake_session"]
        dashboard = fresh.get("/")
        assert dashboard.status_code == 200
        assert dashboard.headers["cache-control"] == "no-store"
        assert dashboard.content == (bundled_build() / "index.html").read_bytes()
        # /sessions stays the landing page once a session is chosen.
        assert f'data-session="{SESSION_KEY}"' in fresh.get("/sessions").text


def test_shared_link_enters_the_session(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60, follow_redirects=True) as fresh:
        opened = fresh.get("/", params={"session": SESSION_KEY})
        assert opened.status_code == 200
        assert opened.content == (bundled_build() / "index.html").read_bytes()
        assert SESSION in fresh.cookies["raylake_session"]


def test_landing_page_filters(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as fresh:

        def shown(**params: str) -> bool:
            answer = fresh.get("/sessions", params=params)
            assert answer.status_code == 200
            return f'data-session="{SESSION_KEY}"' in answer.text

        assert shown(namespace=CLUSTER.namespace, name=CLUSTER.name)
        assert not shown(namespace="elsewhere")
        assert not shown(name="other-cluster")
        assert shown(since="2026-11-21T20:00", until="2026-11-21T21:00")
        assert not shown(since="2026-11-22T00:00")
        assert not shown(until="2026-11-20T00:00")
        bad = fresh.get("/sessions", params={"since": "yesterday"})
        assert "since='yesterday' is not a time" in html.unescape(bad.text)
        assert f'data-session="{SESSION_KEY}"' in bad.text


def test_unknown_session_cookie_shows_the_landing_page(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as fresh:
        fresh.cookies.set("raylake_session", "default/demo/session_2000-01-01_00-00-00_000000_1")
        answer = fresh.get("/")
        assert answer.status_code == 404
        assert "is not in this lake" in answer.text
        assert f'data-session="{SESSION_KEY}"' in answer.text


def test_static_assets_have_their_content_types(server: Server) -> None:
    build = bundled_build()
    with entered(server) as client:
        paths = asset_paths(client.get("/").text)
        assert {Path(p).suffix for p in paths} == {".js", ".css"}
        for path in paths:
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert answer.content == (build / path.lstrip("/")).read_bytes()
            want = {".js": "text/javascript", ".css": "text/css"}[Path(path).suffix]
            assert answer.headers["content-type"].split(";")[0] == want
            assert "immutable" in answer.headers["cache-control"]  # content-hashed names
            head = client.head(path)
            assert head.status_code == 200 and head.content == b"", path
            assert head.headers["content-length"] == answer.headers["content-length"]
        font = next((build / "static" / "media").glob("*.woff2"))
        answer = client.get(f"/static/media/{font.name}")
        assert answer.headers["content-type"] == "font/woff2"
        favicon = client.get("/favicon.ico")
        assert favicon.status_code == 200
        assert favicon.content == (build / "favicon.ico").read_bytes()


def test_assets_do_not_need_the_session_cookie(server: Server) -> None:
    index = (bundled_build() / "index.html").read_text()
    with httpx.Client(base_url=server.url, timeout=60) as fresh:
        for path in asset_paths(index):
            assert fresh.get(path).status_code == 200, path


def test_unknown_or_escaping_static_paths_are_404(server: Server) -> None:
    with entered(server) as client:
        assert client.get("/static/js/main.0000000.js").status_code == 404
        assert client.get("/static/").status_code == 404
        for escape in ("/static/%2e%2e/index.html", "/static/%2e%2e/%2e%2e/%2e%2e/_version.py"):
            assert client.get(escape).status_code == 404, escape


def test_version_pick_cookie(server: Server) -> None:
    with entered(server) as client:
        picked = client.get("/dashboard_version", params={"version": "2.60.0", "next": "/sessions"})
        assert picked.status_code == 303
        assert picked.headers["location"] == "/sessions"
        assert client.cookies["raylake_dashboard_version"] == "2.60.0"
        assert '<option value="2.60.0" selected>' in client.get("/sessions").text

        unknown = client.get("/dashboard_version", params={"version": "1.0.0"})
        assert unknown.status_code == 404
        assert client.cookies["raylake_dashboard_version"] == "2.60.0"

        automatic = client.get("/dashboard_version", params={"version": "", "next": "//evil"})
        assert automatic.headers["location"] == "/sessions"  # never off-site
        assert "raylake_dashboard_version" not in client.cookies
        assert " selected>" not in client.get("/sessions").text.split('id="dashboard-version"')[1]


@pytest.fixture(scope="module")
def two_builds(collected_lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with an older build from `--dashboard-dir` beside the installed one: a
    copy of the real build, laid out as in a Ray 2.49.0 package (`ray/_version.py`)."""
    work = tmp_path_factory.mktemp("two-builds")
    older = work / "ray" / "dashboard" / "client" / "build"
    shutil.copytree(bundled_build(), older)
    (work / "ray" / "_version.py").write_text('version = "2.49.0"\n')
    (older / "index.html").write_text(
        (older / "index.html").read_text().replace("<title>Ray Dashboard", "<title>2.49 build")
    )
    (older / "favicon.ico").write_bytes(b"older favicon")
    with running_server(collected_lake.url, work, "--dashboard-dir", str(older)) as running:
        yield running


def test_a_session_gets_the_build_of_its_ray_version_unless_picked(
    two_builds: Server,
) -> None:
    with entered(two_builds) as client:
        landing = client.get("/sessions").text
        assert "2.49.0" in landing and "2.60.0" in landing
        assert client.get("/").content == (bundled_build() / "index.html").read_bytes()
        assert client.get("/favicon.ico").content == (bundled_build() / "favicon.ico").read_bytes()

        client.get("/dashboard_version", params={"version": "2.49.0"})
        assert "<title>2.49 build" in client.get("/").text
        assert client.get("/favicon.ico").content == b"older favicon"

        client.get("/dashboard_version", params={"version": ""})
        assert client.get("/").content == (bundled_build() / "index.html").read_bytes()


# In the browser.


@dataclass(frozen=True)
class PrintedTask:
    """A task of the driver job, on the worker node, that printed to stdout and stderr:
    its lines are its bytes of the worker's .out and .err files, as Ray's log API cuts
    them (`task_log_info` offsets)."""

    task_id: str
    stdout: str
    stderr: str


def worker_log_part(logs: dict[str, Any], stream: str) -> str:
    path = SAMPLE / "logs" / "worker" / Path(logs[f"{stream}_file"]).name
    start, end = logs[f"{stream}_start"], logs[f"{stream}_end"]
    return path.read_bytes()[start:end].decode().strip()


def printed_task() -> PrintedTask:
    for task in live("api_v0_tasks_limit_10000_detail_1"):
        logs = task["task_log_info"]
        if task["node_id"] == WORKER_NODE and logs and logs["stdout_end"] > logs["stdout_start"]:
            out, err = worker_log_part(logs, "stdout"), worker_log_part(logs, "stderr")
            return PrintedTask(task["task_id"], out, err)
    raise AssertionError("the capture has a task on the worker that printed")


def test_ray_dashboard_in_the_browser(server: Server, browser: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots and requests: {ARTIFACTS}")
    seen: list[dict[str, Any]] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on(
        "response",
        lambda r: seen.append({"status": r.status, "method": r.request.method, "url": r.url}),
    )
    page.on(
        "requestfailed",
        lambda r: seen.append({"status": "failed", "method": r.method, "url": r.url}),
    )

    def shot(name: str) -> None:
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    # The innermost rows: Ray's job page nests the task table inside a layout table.
    rows = page.locator("tr:not(:has(tr))")
    try:
        page.goto(server.url + "/")
        shot("0-landing")
        page.locator(f'tr[data-session="{SESSION_KEY}"] a.enter').click()
        page.wait_for_url(server.url + "/#/overview")
        shot("1-overview")

        page.get_by_role("link", name="Jobs", exact=True).first.click()
        for submission, status in (("job-ok-1", "SUCCEEDED"), ("job-fail-1", "FAILED")):
            row = rows.filter(has_text=submission)
            row.wait_for()
            assert status in row.inner_text(), row.inner_text()
        shot("2-jobs")

        task = printed_task()
        job = task.task_id[-8:]  # a task id ends with its job id
        rows.filter(has_text="python workload_a.py").get_by_role("link", name=job).click()
        page.wait_for_url(f"**/#/jobs/{job}")
        page.get_by_text("Task Table", exact=True).click()
        rows.get_by_role("link", name="Log").first.wait_for()  # the table has loaded
        page.get_by_label("Task ID").fill(task.task_id)
        page.get_by_role("option", name=task.task_id).click()
        task_row = rows.filter(has_text=task.task_id)
        assert "FINISHED" in task_row.inner_text()
        shot("3-task-table")

        task_row.get_by_role("link", name="Log").click()
        page.wait_for_url(f"**/#/jobs/{job}/tasks/{task.task_id}")
        page.get_by_text(task.stderr).first.wait_for()  # the first tab
        page.get_by_role("tab", name="stdout").click()
        page.get_by_text(task.stdout).first.wait_for()
        shot("4-task-log")
    finally:
        context.close()
        (ARTIFACTS / "requests.json").write_text(json.dumps(seen, indent=1))
        print("requests raylake did not answer:", *unanswered(seen), sep="\n  ")

    assert not unanswered(seen), "every request of Ray's UI gets an answer"
    assert all(r["url"].startswith(server.url) for r in seen), "the UI reached off the machine"


# Ray's own answers when the cluster's Grafana and Prometheus do not answer
# (metrics_head.py); a recorded session has neither, and the UI then shows its
# "set up Prometheus and Grafana" hint.
RAY_ANSWERS_500 = {"/api/grafana_health", "/api/prometheus_health"}


def unanswered(seen: list[dict[str, Any]]) -> list[str]:
    """The UI's requests that failed or got an error Ray would not have given."""
    return sorted(
        {
            f"{r['status']} {r['method']} {urlsplit(r['url']).path}"
            for r in seen
            if r["status"] == "failed"
            or (
                r["status"] >= 400
                and not (r["status"] == 500 and urlsplit(r["url"]).path in RAY_ANSWERS_500)
            )
        }
    )
