"""`raylake serve` as users run it: a real process on a loopback port."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from s3_server import UNSET_AWS_ENV, free_port, stop_process

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def running_server(
    lake: str, work: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`raylake serve --lake LAKE ARGS...` (with `env` added to a clean environment),
    stopped (its own pid only) on exit."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RAYLAKE_") and k not in UNSET_AWS_ENV
    }
    environment.update(env or {})
    port = free_port(HOST)
    log = work / f"serve-{port}.log"
    command = [
        sys.executable, "-m", "raylake", "serve", "--lake", lake,
        "--host", HOST, "--port", str(port), "--cache-dir", str(work / f"cache-{port}"),
        *args,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=environment
        )
    server = Server(f"http://{HOST}:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"raylake serve exited:\n{server.output()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"raylake serve did not start:\n{server.output()}")
            time.sleep(0.05)
        yield server
    finally:
        stop_process(process)
