"""deploy/Dockerfile, built for real without a Docker engine: Debian's buildah builds it
(chroot isolation, a storage of the test's own that it removes), and the image must run
`raylake` as a non-root user, hold Ray's dashboard build and no compiler, and serve.

Docker Hub is out of reach here and in CI, so the base image is a stand-in made from
Debian's own packages by mmdebstrap (bookworm's Python 3.11 with venv and headers, as
python:3.11-slim-bookworm has them) and given as the PYTHON_IMAGE build argument; pip
reaches PyPI. Where a proxy re-signs TLS (as on this machine) the build must trust this
machine's CA bundle: it is mounted into the build's RUN steps only, with a pip.conf that
points pip at it. `make setup` installs buildah and mmdebstrap. The build's time and the
image's sizes go to tests/artifacts/image.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tarfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from s3_server import free_port, stop_process

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).parent / "artifacts"
BASE = "localhost/raylake-test-base:bookworm"
IMAGE = "localhost/raylake:test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")  # Debian's path, here and in the base
BASE_PACKAGES = "python3,python3-venv,python3-dev,python-is-python3,ca-certificates"
# The compressed layer the Dockerfile adds (the virtual environment): 325 MB when written.
LAYER_BUDGET = 400 * 1024 * 1024

pytestmark = pytest.mark.timeout(1800)


@dataclass
class Built:
    storage: Path
    seconds: float
    container: str
    rootfs: Path

    def buildah(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return buildah(self.storage, *args, check=check)

    def run(self, *command: str, env: dict[str, str] | None = None) -> str:
        """A command in the image's container, as the image's user; its output."""
        options = [arg for k, v in (env or {}).items() for arg in ("--env", f"{k}={v}")]
        return self.buildah("run", *options, self.container, "--", *command).stdout

    def config(self) -> dict[str, Any]:
        inspected = json.loads(self.buildah("inspect", "--type", "image", IMAGE).stdout)
        config: dict[str, Any] = inspected["OCIv1"]["config"]
        return config


def buildah_command(storage: Path, *args: str) -> list[str]:
    return ["buildah", "--root", str(storage / "root"), "--runroot", str(storage / "run"), *args]


BUILDAH_ENV = {**os.environ, "BUILDAH_ISOLATION": "chroot"}


def buildah(storage: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = buildah_command(storage, *args)
    result = subprocess.run(command, capture_output=True, text=True, env=BUILDAH_ENV, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr}")
    return result


def make_base(storage: Path) -> None:
    """The stand-in for python:3.11-slim-bookworm, from Debian's packages."""
    rootfs = storage / "base.tar"
    subprocess.run(
        [
            *("mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}"),
            *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale")),
            *("bookworm", str(rootfs)),
        ],
        check=True,
        capture_output=True,
    )
    container = buildah(storage, "from", "scratch").stdout.strip()
    buildah(storage, "add", container, str(rootfs), "/")
    buildah(storage, "config", "--cmd", "python3", container)
    buildah(storage, "commit", "--rm", container, BASE)
    rootfs.unlink()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    missing = [tool for tool in ("buildah", "mmdebstrap") if shutil.which(tool) is None]
    assert not missing, f"{missing} missing: `make setup` installs Debian's"
    assert os.geteuid() == 0, "buildah's chroot isolation and mmdebstrap need root"
    storage = tmp_path_factory.mktemp("buildah")
    pip_conf = storage / "pip.conf"
    pip_conf.write_text(f"[global]\ncert = {CA_BUNDLE}\n")
    try:
        make_base(storage)
        started = time.monotonic()
        buildah(
            storage,
            *("bud", "--layers=false", "--isolation", "chroot"),
            *(
                "--volume",
                f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
                "--volume",
                f"{pip_conf}:/etc/pip.conf:ro",
            ),
            *("--build-arg", f"PYTHON_IMAGE={BASE}", "--tag", IMAGE),
            *("--file", str(REPO / "deploy" / "Dockerfile"), str(REPO)),
        )
        seconds = time.monotonic() - started
        container = buildah(storage, "from", IMAGE).stdout.strip()
        rootfs = Path(buildah(storage, "mount", container).stdout.strip())
        yield Built(storage, seconds, container, rootfs)
    finally:
        buildah(storage, "umount", "--all", check=False)
        buildah(storage, "rm", "--all", check=False)
        buildah(storage, "rmi", "--all", "--force", check=False)
        shutil.rmtree(storage, ignore_errors=True)


def test_raylake_is_the_entrypoint_and_runs_as_a_non_root_user(image: Built) -> None:
    config = image.config()
    assert config["User"] == "1000:100"
    assert config["Entrypoint"] == ["raylake"] and config["Cmd"] == ["serve"]
    assert image.run("id", "-u").strip() == "1000"
    usage = image.run(*config["Entrypoint"], "--help")
    assert "serve" in usage and "collect" in usage


def test_rays_dashboard_build_is_inside(image: Built) -> None:
    """The `dashboard` extra: the Ray UI `raylake serve` finds, of the pinned Ray."""
    found = image.run(
        "python",
        "-c",
        "from web.ui import installed_build, build_ray_version as v; "
        "b = installed_build(); print(b, v(b) if b else '')",
    ).split()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    [ray] = extras["optional-dependencies"]["dashboard"]
    assert found[0].endswith("/site-packages/ray/dashboard/client/build"), found
    assert found[1] == ray.split("==")[1]


def test_no_compiler_nor_pip_but_the_compiled_extension(image: Built) -> None:
    tools = image.run("sh", "-c", "for t in gcc cc pip; do command -v $t || true; done")
    assert tools.strip() == ""
    assert not (image.rootfs / "opt/raylake/bin/pip").exists()
    extension = image.run("python", "-c", "import ingest.columnar as c; print(c.__file__)")
    assert extension.strip().endswith(".so")


def init_command() -> list[str]:
    """The history server's init container (it creates the lake), as the manifest says."""
    deployment = yaml.safe_load((REPO / "deploy/base/history-server/deployment.yaml").read_text())
    [init] = deployment["spec"]["template"]["spec"]["initContainers"]
    command: list[str] = init["command"]
    return command


def test_the_image_creates_a_lake_and_serves_rays_ui(image: Built, tmp_path: Path) -> None:
    lake = "/tmp/lake"  # in the image's container
    image.run(*init_command(), env={"RAYLAKE_LAKE": lake})
    port = free_port()
    serve = ["raylake", "serve", "--lake", lake, "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            buildah_command(image.storage, "run", image.container, "--", *serve),
            env=BUILDAH_ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
        icon = httpx.get(f"{url}/favicon.ico", timeout=10)
        build = next((image.rootfs / "opt/raylake/lib").glob("python3*/site-packages/ray"))
        assert icon.status_code == 200
        assert icon.content == (build / "dashboard/client/build/favicon.ico").read_bytes()
    finally:
        stop_process(server, timeout=30)


def test_the_image_is_small(image: Built, tmp_path: Path) -> None:
    """What the Dockerfile adds to the base, compressed as a registry stores it, within a
    budget that catches a dependency bloating it."""
    archive = tmp_path / "image.tar"
    image.buildah("push", "--quiet", IMAGE, f"oci-archive:{archive}:raylake:test")
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_name = "blobs/" + index["manifests"][0]["digest"].replace(":", "/")
        manifest = json.load(tar.extractfile(manifest_name))  # type: ignore[arg-type]
    layers = [layer["size"] for layer in manifest["layers"]]
    base = json.loads(image.buildah("inspect", BASE).stdout)["OCIv1"]["rootfs"]["diff_ids"]
    added = sum(layers[len(base) :])
    files = (f for f in image.rootfs.rglob("*") if f.is_file() and not f.is_symlink())
    figures = {
        "build_seconds": round(image.seconds, 1),
        "compressed_layer_bytes": layers,
        "added_compressed_bytes": added,
        "uncompressed_bytes": sum(f.stat().st_size for f in files),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "image.json").write_text(json.dumps(figures, indent=2) + "\n")
    assert added < LAYER_BUDGET, figures
