"""The scenario-A capture stored the way production stores it: through collectors.

Two real `raylake collect` processes (head and worker) each get a Ray root holding the
node's session directory (its port files and the captured `logs/`), receive the POST
bodies their node's aggregator sent, in the captured order, and are stopped with
SIGTERM, which ships the logs and ends the catalog entries. The head collector polls a
replay of the live dashboard: each recorded answer served at the path it answered.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from lake.store import Lake

from conftest import CLUSTER, HEAD_NODE, LIVE, POSTS, SAMPLE, SESSION, WORKER_NODE
from s3_server import UNSET_AWS_ENV, free_port

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
NODES = {"head": HEAD_NODE, "worker": WORKER_NODE}


def recorded_name(path_and_query: str) -> str:
    """The capture's file name of a request: every non-alphanumeric character is `_`."""
    return re.sub(r"[^A-Za-z0-9]", "_", path_and_query.lstrip("/"))


class _Replay(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        found = LIVE / f"{recorded_name(self.path)}.json"
        if not found.exists():
            self.send_error(404)
            return
        body = found.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def recorded_dashboard() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer((HOST, 0), _Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _ray_root(root: Path, role: str) -> Path:
    session = root / SESSION
    shutil.copytree(SAMPLE / "logs" / role, session / "logs")
    for component in ("raylet", "metrics_export"):
        (session / f"{component}_port_{NODES[role]}").write_text("6379")
    (root / "session_latest").symlink_to(session, target_is_directory=True)
    return root


def _env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RAYLAKE_") and k not in UNSET_AWS_ENV
    }


def _start(work: Path, lake: str, role: str, dashboard: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port(HOST)
    log = work / f"collector-{role}.log"
    command = [
        sys.executable, "-m", "raylake", "collect",
        "--lake", lake, "--namespace", CLUSTER.namespace, "--cluster", CLUSTER.name,
        "--role", role, "--host", HOST, "--port", str(port),
        "--spool", str(work / f"spool-{role}"),
        "--ray-root", str(_ray_root(work / f"ray-{role}", role)),
        "--dashboard-url", dashboard,
        "--flush-interval", "1s", "--poll-interval", "1h", "--log-interval", "1h",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=_env()
        )
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"the {role} collector did not start: {log.read_text()[-3000:]}")


def collect_sample(work: Path) -> Lake:
    """A lake at `work/lake` holding the capture as two collectors stored it."""
    url = str(work / "lake")
    Lake(url, create=True)
    processes = []
    with recorded_dashboard() as dashboard:
        try:
            urls = {}
            for role in NODES:
                process, urls[role] = _start(work, url, role, dashboard)
                processes.append(process)
            for post in sorted(POSTS.glob("*/post_*.json"), key=lambda p: p.name):
                answer = httpx.post(
                    f"{urls[post.parent.name]}/v1/events",
                    content=post.read_bytes(),
                    headers={"content-type": "application/json"},
                    timeout=30,
                )
                assert answer.status_code == 200, (post, answer.text)
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                assert process.wait(timeout=60) == 0, f"a collector failed; see {work}"
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    return Lake(url)
