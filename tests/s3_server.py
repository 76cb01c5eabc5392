"""Moto's standalone S3 server on loopback, for tests.

The server runs as a separate process (moto's `moto.server` main), as s3fs's own tests do,
so the code under test talks to a real HTTP endpoint through s3fs, aiobotocore and
DuckDB exactly as it would to MinIO or AWS. Only the process started here is ever
stopped.

    with moto_server() as endpoint:          # "http://127.0.0.1:<port>"
        create_bucket(endpoint, "lake")
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 30.0

#: Fake credentials and a region for the test process, and nothing that could send the
#: requests elsewhere (a real profile or config file, a proxy, another endpoint).
FAKE_AWS_ENV: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
UNSET_AWS_ENV: tuple[str, ...] = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "RAYLAKE_S3_ENDPOINT_URL",
    "RAYLAKE_LAKE",
)


#: `python -m moto.server`, plus a watchdog: the server exits when its stdin reaches EOF,
#: that is when the test process that started it is gone, however it ended (a killed
#: pytest leaves no server behind).
_SERVER = """
import os, sys, threading
from moto.server import main

def watchdog():
    sys.stdin.buffer.read()
    os._exit(0)

threading.Thread(target=watchdog, daemon=True).start()
main(sys.argv[1:])
"""


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM a child the tests started, SIGKILL it if it has not exited in `timeout`."""
    if process.stdin:
        process.stdin.close()
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def fake_aws_env() -> Iterator[pytest.MonkeyPatch]:
    """The fake credentials moto takes, and none of the machine's AWS settings, until
    the block ends (the environment is restored then)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in UNSET_AWS_ENV:
            mp.delenv(name, raising=False)
        for name, value in FAKE_AWS_ENV.items():
            mp.setenv(name, value)
        yield mp


@contextlib.contextmanager
def moto_server(host: str = HOST, attempts: int = 3) -> Iterator[str]:
    """Start moto's server on a free loopback port; yield its endpoint URL, then stop it."""
    with tempfile.TemporaryFile() as log:
        for _ in range(attempts):
            port = free_port(host)
            endpoint = f"http://{host}:{port}"
            process = subprocess.Popen(
                [sys.executable, "-c", _SERVER, "-H", host, "-p", str(port)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + START_TIMEOUT
                while process.poll() is None and time.monotonic() < deadline:
                    if _answers(endpoint):
                        break
                    time.sleep(0.1)
                else:
                    # The server exited (e.g. another process took the port) or never
                    # answered: try again on another port.
                    continue
                yield endpoint
                return
            finally:
                stop_process(process)
        log.seek(0)
        output = log.read().decode(errors="replace")[-4000:]
        raise RuntimeError(f"moto server did not start in {attempts} attempts:\n{output}")


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def create_bucket(endpoint: str, bucket: str) -> None:
    with contextlib.closing(s3_client(endpoint)) as client:
        client.create_bucket(Bucket=bucket)


def list_objects(endpoint: str, bucket: str, prefix: str = "") -> dict[str, tuple[str, int]]:
    """Every object under `prefix`: key -> (ETag without quotes, size)."""
    objects: dict[str, tuple[str, int]] = {}
    with contextlib.closing(s3_client(endpoint)) as client:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                objects[item["Key"]] = (item["ETag"].strip('"'), int(item["Size"]))
    return objects


def get_object(endpoint: str, bucket: str, key: str) -> bytes:
    with contextlib.closing(s3_client(endpoint)) as client:
        data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return data


def put_object(endpoint: str, bucket: str, key: str, data: bytes) -> None:
    with contextlib.closing(s3_client(endpoint)) as client:
        client.put_object(Bucket=bucket, Key=key, Body=data)
