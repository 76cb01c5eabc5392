"""deploy/: the image and the Kubernetes manifests of docs/deploy.md, checked offline.

Every overlay is built with `kubectl kustomize`; what it builds must agree with the
Dockerfile, with the settings the commands really parse (the collector's and the
server's own parsers read each container's arguments and environment), and with the
routes the real `raylake serve` and `raylake collect` processes answer.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

import raylake
from ingest.settings import SETTINGS, CollectorConfig, config_from
from ingest.sidecar import DRAIN_SECONDS
from lake.store import Lake, storage_options

from s3_server import free_port
from server import running_server

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if p.is_dir())
PLATFORM = "kind"  # the overlay with MinIO, the server, and the lake's ConfigMap/Secret
NAMESPACE = "raylake"
IMAGE = "raylake:dev"
RAY_IMAGE = "rayproject/ray:2.60.0"
RAY_TMP = "/tmp/ray"  # where Ray writes its sessions (its default temp dir)
CLUSTER_LABEL = "metadata.labels['ray.io/cluster']"
SERVER = "raylake-history-server"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}

COLLECTOR_DEFAULTS = {s.name: s.default for s in SETTINGS}
LOCK_PATH = "deploy/constraints.txt"


def ray_event_env(port: str) -> dict[str, str]:
    """What every Ray container sets (README "Pointing Ray at raylake")."""
    return {
        "RAY_enable_ray_event": "true",
        "RAY_enable_core_worker_ray_event_to_aggregator": "true",
        "RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR": f"http://localhost:{port}/v1/events",
        "RAY_DASHBOARD_AGGREGATOR_AGENT_EXPOSABLE_EVENT_TYPES": "ALL",
    }


HEAD_ONLY_ENV = {"RAY_enable_export_api_write_config": "EXPORT_SUBMISSION_JOB"}


# --- building -----------------------------------------------------------------------


@functools.cache
def built(overlay: str) -> tuple[dict[str, Any], ...]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the overlays cannot be built")
    result = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay}:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def one(overlay: str, kind: str, name: str) -> dict[str, Any]:
    found = [d for d in built(overlay) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{overlay}: {len(found)} {kind} named {name}"
    return found[0]


def cluster_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The RayClusterSpec of a RayCluster or of a RayJob's cluster."""
    if doc["kind"] == "RayCluster":
        spec: dict[str, Any] = doc["spec"]
        return spec
    if doc["kind"] == "RayJob":
        spec = doc["spec"]["rayClusterSpec"]
        return spec
    return None


def cluster_pods(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(group, role, pod spec) of the head and of each worker group."""
    yield "head", "head", spec["headGroupSpec"]["template"]["spec"]
    for group in spec["workerGroupSpecs"]:
        yield group["groupName"], "worker", group["template"]["spec"]


def all_ray_pods() -> list[tuple[str, str, dict[str, Any]]]:
    """(where, role, pod spec) of every Ray pod template in every overlay."""
    return [
        (f"{overlay}: {doc['kind']} {doc['metadata']['name']} {group}", role, pod)
        for overlay in OVERLAYS
        for doc in built(overlay)
        if (spec := cluster_spec(doc)) is not None
        for group, role, pod in cluster_pods(spec)
    ]


def raylake_containers() -> list[tuple[str, dict[str, Any]]]:
    """Every container (and init container) running the raylake image, in every overlay."""
    return [
        (f"{overlay}: {path} {c['name']}", c)
        for overlay in OVERLAYS
        for doc in built(overlay)
        for path, pod in pod_specs(doc)
        for c in pod.get("initContainers", []) + pod["containers"]
        if c["image"].split(":")[0] == IMAGE.split(":")[0]
    ]


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    name = f"{doc['kind']} {doc['metadata']['name']}"
    if doc["kind"] in ("Deployment", "Job"):
        yield name, doc["spec"]["template"]["spec"]
    elif (spec := cluster_spec(doc)) is not None:
        for group, _, pod in cluster_pods(spec):
            yield f"{name} {group}", pod


def container_env(container: dict[str, Any], labels: dict[str, str]) -> dict[str, str]:
    """The environment a container gets, with the platform overlay's ConfigMap and Secret
    and the downward API resolved (an optional reference that is not there is left out,
    as Kubernetes does)."""
    config = one(PLATFORM, "ConfigMap", "raylake-lake")["data"]
    secret = {
        k: base64.b64decode(v).decode()
        for k, v in one(PLATFORM, "Secret", "raylake-s3")["data"].items()
    }
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            fields = {"metadata.namespace": NAMESPACE}
            fields |= {f"metadata.labels['{k}']": v for k, v in labels.items()}
            assert path in fields, f"{container['name']}: unexpected downward API {path}"
            env[var["name"]] = fields[path]
            continue
        kind, values = (
            ("configMapKeyRef", config) if "configMapKeyRef" in source else ("secretKeyRef", secret)
        )
        ref = source[kind]
        platform = {"configMapKeyRef": "raylake-lake", "secretKeyRef": "raylake-s3"}[kind]
        if ref["name"] != platform and ref.get("optional"):
            continue  # not made by the overlays (raylake-auth): Kubernetes leaves it out
        assert ref["name"] == platform, f"{var['name']}: {ref}"
        assert ref["key"] in values, f"{var['name']}: no key {ref['key']} in {ref['name']}"
        env[var["name"]] = values[ref["key"]]
    return env


def parsed_with_env(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """raylake's own parser over `argv`, with exactly `env` as the raylake/AWS environment
    (the parsers read their environment defaults when they are built)."""
    for name in list(os.environ):
        if name.startswith(("RAYLAKE_", "AWS_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return raylake.parser().parse_args(argv)


def mount_of(container: dict[str, Any], volume: str) -> dict[str, Any]:
    mounts = [m for m in container.get("volumeMounts", []) if m["name"] == volume]
    assert len(mounts) == 1, f"{container['name']} mounts {volume} {len(mounts)} times"
    return mounts[0]


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    assert numbers, f"{container['name']}: no port named {port}"
    return int(numbers[0])


# --- the Dockerfile -------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def build_args() -> dict[str, str]:
    return dict(arg.split("=", 1) for op, arg in dockerfile() if op == "ARG" and "=" in arg)


def image_env() -> dict[str, str]:
    env = {}
    for op, arg in final_stage():
        if op == "ENV":
            env |= dict(token.split("=", 1) for token in shlex.split(arg))
    return env


def serve_defaults(monkeypatch: pytest.MonkeyPatch) -> Any:
    return parsed_with_env(["serve"], {}, monkeypatch)


# --- tests: the image -----------------------------------------------------------------


def test_the_image_is_small_non_root_and_runs_raylake(monkeypatch: pytest.MonkeyPatch) -> None:
    instructions = dockerfile()
    base = build_args()["PYTHON_IMAGE"]
    assert base.startswith("python:3.11-slim"), base
    froms = [arg for op, arg in instructions if op == "FROM"]
    assert len(froms) == 2, "a build stage and a final stage"
    assert all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms), froms
    final = final_stage()
    # No compiler, package manager run or wheel cache in the final image: it only copies
    # the build stage's virtual environment.
    assert not [arg for op, arg in final if op == "RUN" and "apt-get" in arg]
    copies = [arg for op, arg in final if op == "COPY"]
    assert copies == ["--from=build /opt/raylake /opt/raylake"], copies
    # A numeric user, so Kubernetes can enforce runAsNonRoot.
    users = [arg for op, arg in final if op == "USER"]
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit() and int(uid) != 0, users
    assert any(f"--uid {uid}" in arg and f"--gid {gid}" in arg for op, arg in final if op == "RUN")
    assert [arg for op, arg in final if op == "ENTRYPOINT"] == ['["raylake"]']
    assert [arg for op, arg in final if op == "CMD"] == ['["serve"]']
    # The Ray UI is served: the dashboard extra is installed by default.
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert build_args()["EXTRAS"] in extras["optional-dependencies"]
    assert build_args()["EXTRAS"] == "dashboard"
    # The ports it exposes are the two commands' own defaults.
    exposed = {int(p) for op, arg in final if op == "EXPOSE" for p in arg.split()}
    assert exposed == {serve_defaults(monkeypatch).port, int(COLLECTOR_DEFAULTS["port"])}
    # In a container the server must listen beyond loopback.
    env = image_env()
    assert parsed_with_env(["serve"], env, monkeypatch).host == "0.0.0.0"


def test_the_build_context_holds_the_whole_package() -> None:
    """What the Dockerfile copies is what pyproject packages, .dockerignore lets it through,
    and every data file the packages read is declared as package data (else the image,
    a non-editable install, would lack it)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    packages = [p.rstrip("*") for p in setuptools["packages"]["find"]["include"]]
    modules = [f"{m}.py" for m in setuptools["py-modules"]]
    needed = {*packages, *modules, "pyproject.toml", project["project"]["readme"], LOCK_PATH}
    copied = set()
    for op, arg in dockerfile():
        if op == "COPY" and not arg.startswith("--from"):
            copied |= set(arg.split()[:-1])
    assert copied == needed
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert needed <= allowed, needed - allowed
    declared = setuptools["package-data"]
    # A compiled module's source is built, not read; its stub, C file and library are
    # for type checkers or made by the build.
    compiled = {
        Path(source).with_suffix("") for e in setuptools["ext-modules"] for source in e["sources"]
    }
    code = (".py", ".pyc", ".pyi", ".pyx", ".c", ".so")
    for package in packages:
        for path in (REPO / package).rglob("*"):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            stem = path.relative_to(REPO).parent / path.name.split(".")[0]
            if path.suffix in code and stem in compiled:
                continue
            inside = path.relative_to(REPO / package).as_posix()
            patterns = declared.get(package, [])
            assert any(fnmatch.fnmatch(inside, p) for p in patterns), (
                f"{package}/{inside} is not package data in pyproject.toml: "
                "the image would not have it"
            )


def locked() -> dict[str, str]:
    """deploy/constraints.txt: package name -> pinned version."""
    pins = {}
    for line in (REPO / LOCK_PATH).read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{LOCK_PATH}: {line!r} pins no version"
            pins[name] = version
    return pins


def test_the_image_installs_locked_versions_of_every_dependency() -> None:
    """The image's pip installs under deploy/constraints.txt (written by deploy/lock.py), so
    every dependency, direct or of the `dashboard` extra, must be pinned there."""
    assert any(op == "RUN" and f"--constraint /src/{LOCK_PATH}" in arg for op, arg in dockerfile())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extra = build_args()["EXTRAS"]
    wanted = [*project["dependencies"], *project["optional-dependencies"][extra]]
    pins = locked()
    for requirement in wanted:
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", requirement)[0]).lower()
        assert name in pins, f"{requirement} is not in {LOCK_PATH}: run deploy/lock.py"
        exact = requirement.partition("==")[2]
        assert not exact or pins[name] == exact, (requirement, pins[name])


# --- tests: the overlays --------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_builds_into_one_namespace(overlay: str) -> None:
    docs = built(overlay)
    assert docs
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]


def test_every_raylake_container_runs_the_image_docs_build() -> None:
    containers = raylake_containers()
    assert len(containers) >= 1 + 2 * 3  # server (+ its init container), 3 clusters' pods
    for where, c in containers:
        assert c["image"] == IMAGE, where
        assert c["imagePullPolicy"] == "IfNotPresent", f"{where}: kind-loaded images"
    docs = (REPO / "docs" / "deploy.md").read_text()
    assert f"docker build -t {IMAGE} -f deploy/Dockerfile ." in docs
    assert f"kind load docker-image {IMAGE}" in docs
    for overlay in OVERLAYS:
        assert f"kubectl apply -k deploy/overlays/{overlay}" in docs, overlay


def test_every_ray_pod_carries_a_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    pods = all_ray_pods()
    # The RayCluster, the RayJob's cluster and the HA cluster, each a head and a group.
    assert len(pods) == 6, [where for where, _, _ in pods]
    lake = one(PLATFORM, "ConfigMap", "raylake-lake")["data"]
    for where, role, pod in pods:
        ray, *others = pod["containers"]  # KubeRay takes containers[0] as Ray's
        assert ray["image"] == RAY_IMAGE, where
        collectors = [c for c in others if c["image"] == IMAGE]
        assert len(collectors) == 1, where
        collector = collectors[0]
        want_env = ray_event_env(COLLECTOR_DEFAULTS["port"] or "")
        if role == "head":
            want_env |= HEAD_ONLY_ENV
        ray_env = {v["name"]: v.get("value") for v in ray.get("env", [])}
        assert {k: ray_env.get(k) for k in want_env} == want_env, where
        if role == "worker":
            assert not HEAD_ONLY_ENV.keys() & ray_env.keys(), where

        # What the collector really runs with: its arguments through raylake's parser,
        # with the environment the pod gives it.
        env = container_env(collector, labels={"ray.io/cluster": "the-cluster"})
        args = parsed_with_env(collector["args"], env, monkeypatch)
        assert args.command == "collect", where
        config: CollectorConfig = config_from(args)
        assert config.role == role, where
        assert config.cluster == "the-cluster", f"{where}: the RayCluster's own name"
        assert config.namespace == NAMESPACE, where
        assert config.lake == lake["RAYLAKE_LAKE"], where
        assert config.s3_endpoint_url == lake["RAYLAKE_S3_ENDPOINT_URL"], where
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env.keys(), where
        cluster_refs = [v for v in collector["env"] if v.get("valueFrom", {}).get("fieldRef")]
        assert {v["valueFrom"]["fieldRef"]["fieldPath"] for v in cluster_refs} == {
            CLUSTER_LABEL,
            "metadata.namespace",
        }, where

        # Ray POSTs to the port the collector listens on, at the route it serves.
        export = urlsplit(ray_env["RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR"] or "")
        assert export.hostname == "localhost", where
        assert export.port == config.port, where
        assert port_number(collector, "raylake-events") == config.port, where

        # Ray's /tmp/ray is the collector's Ray root: one shared emptyDir.
        volumes = {v["name"]: v for v in pod["volumes"]}
        shared = [m for m in ray["volumeMounts"] if m["mountPath"] == RAY_TMP]
        assert len(shared) == 1, f"{where}: Ray's {RAY_TMP} is not a volume"
        assert "emptyDir" in volumes[shared[0]["name"]], where
        assert mount_of(collector, shared[0]["name"])["mountPath"] == str(config.ray_root)
        # The spool lives on a volume of the pod (it survives a collector restart).
        spool_mounts = [
            m["mountPath"]
            for m in collector["volumeMounts"]
            if config.spool.is_relative_to(m["mountPath"]) and m["mountPath"] != RAY_TMP
        ]
        assert len(spool_mounts) == 1, f"{where}: the spool {config.spool} is not on a volume"

        limits = collector["resources"]["limits"]
        assert (limits["cpu"], limits["memory"]) == ("200m", "256Mi"), where
        assert collector["securityContext"]["runAsNonRoot"] is True, where

        # Ray stops first; the collector waits in its preStop, then drains; the pod's
        # grace period covers both, with the sidecar's own margin.
        pre_stop = collector["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep", where
        grace = pod["terminationGracePeriodSeconds"]
        assert grace >= 30, where
        assert grace >= int(pre_stop[1]) + DRAIN_SECONDS + 5, where


def plain_head_containers() -> list[dict[str, Any]]:
    (plain,) = [d for d in built("kind-ray-cluster") if d["kind"] == "RayCluster"]
    containers: list[dict[str, Any]] = plain["spec"]["headGroupSpec"]["template"]["spec"][
        "containers"
    ]
    return containers


def test_the_ha_cluster_keeps_its_gcs_in_redis() -> None:
    overlay = "kind-ray-cluster-ha"
    clusters = [d for d in built(overlay) if d["kind"] == "RayCluster"]
    assert len(clusters) == 1
    cluster = clusters[0]
    # KubeRay's HA guide: the annotation, the head's Redis address and password.
    assert cluster["metadata"]["annotations"]["ray.io/ft-enabled"] == "true"
    head = cluster["spec"]["headGroupSpec"]
    ray = head["template"]["spec"]["containers"][0]
    env = {v["name"]: v for v in ray["env"]}
    host, port = env["RAY_REDIS_ADDRESS"]["value"].split(":")
    service = one(overlay, "Service", host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    ref = env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    secret = one(overlay, "Secret", ref["name"])
    assert ref["key"] in {**secret.get("data", {}), **secret.get("stringData", {})}
    assert head["rayStartParams"]["redis-password"] == "$REDIS_PASSWORD"
    redis = one(overlay, "Deployment", host)
    redis_env = redis["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"secretKeyRef": ref} in [v.get("valueFrom") for v in redis_env]
    # KubeRay refuses the newer gcsFaultToleranceOptions next to these.
    assert "gcsFaultToleranceOptions" not in cluster["spec"]
    # The event variables and the collector are still there (the patch only adds).
    assert "RAY_enable_ray_event" in env
    assert [c["name"] for c in head["template"]["spec"]["containers"]][1:] == [
        c["name"] for c in plain_head_containers()
    ][1:]
    # Distinct from the plain RayCluster, so both can run side by side.
    plain = [d for d in built("kind-ray-cluster") if d["kind"] == "RayCluster"]
    assert cluster["metadata"]["name"] != plain[0]["metadata"]["name"]


def test_the_history_server_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = one(PLATFORM, "Deployment", SERVER)
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    env = image_env() | container_env(server, labels={})
    args = parsed_with_env(server["args"], env, monkeypatch)
    assert args.command == "serve"
    lake = one(PLATFORM, "ConfigMap", "raylake-lake")["data"]
    assert args.lake == lake["RAYLAKE_LAKE"]
    assert storage_options(args.lake, args.s3_endpoint_url) == {
        "endpoint_url": lake["RAYLAKE_S3_ENDPOINT_URL"]
    }
    assert args.host == "0.0.0.0"
    assert port_number(server, "http") == args.port == serve_defaults(monkeypatch).port
    service = one(PLATFORM, "Service", SERVER)
    assert service["spec"]["selector"].items() <= pod_labels(deployment).items()
    (service_port,) = service["spec"]["ports"]
    assert port_number(server, service_port["targetPort"]) == args.port
    # The cache directory given is a volume, writable whatever the image's filesystem.
    assert mount_of(server, "cache")["mountPath"] == str(args.cache_dir)
    # Every probe is an HTTP GET on the served port; liveness and readiness are distinct.
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert port_number(server, server[probe]["httpGet"]["port"]) == args.port
    assert server["resources"]["requests"] and server["resources"]["limits"]
    # The init container creates the lake the server would otherwise refuse to open.
    (init,) = pod["initContainers"]
    assert container_env(init, labels={}).items() <= env.items()
    assert pod["securityContext"]["runAsNonRoot"] is True


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def test_rbac_lets_the_server_read_ray_clusters_jobs_and_services() -> None:
    deployment = one(PLATFORM, "Deployment", SERVER)
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    one(PLATFORM, "ServiceAccount", account)
    bindings = [
        b
        for b in built(PLATFORM)
        if b["kind"] == "ClusterRoleBinding"
        and {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE} in b["subjects"]
    ]
    assert len(bindings) == 1
    role = one(PLATFORM, "ClusterRole", bindings[0]["roleRef"]["name"])
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = {
        (group, resource, verb)
        for group, resource in (("ray.io", "rayclusters"), ("ray.io", "rayjobs"), ("", "services"))
        for verb in ("get", "list", "watch")
    }
    assert granted == needed  # read-only, nothing more


def test_the_bucket_job_creates_the_lakes_bucket() -> None:
    job = one(PLATFORM, "Job", "minio-create-bucket")
    (mc,) = job["spec"]["template"]["spec"]["containers"]
    env = container_env(mc, labels={})
    script = mc["command"][-1]
    assert "mc mb --ignore-existing" in script
    # The script takes the bucket from RAYLAKE_LAKE; run its two expansions here.
    result = subprocess.run(
        ["sh", "-c", 'bucket="${RAYLAKE_LAKE#s3://}"; echo "${bucket%%/*}"'],
        env={"RAYLAKE_LAKE": env["RAYLAKE_LAKE"]},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == urlsplit(env["RAYLAKE_LAKE"]).hostname
    minio = one(PLATFORM, "Deployment", "minio")
    (server,) = minio["spec"]["template"]["spec"]["containers"]
    endpoint = urlsplit(env["RAYLAKE_S3_ENDPOINT_URL"])
    service = one(PLATFORM, "Service", endpoint.hostname or "")
    (s3_port,) = [p for p in service["spec"]["ports"] if p["port"] == endpoint.port]
    assert port_number(server, s3_port["targetPort"]) == 9000  # MinIO's S3 API


# --- tests: the probes reach real routes ----------------------------------------------


def probes(container: dict[str, Any]) -> set[str]:
    return {
        container[p]["httpGet"]["path"]
        for p in ("startupProbe", "livenessProbe", "readinessProbe")
        if p in container
    }


@contextlib.contextmanager
def running_collector(work: Path) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable, "-m", "raylake", "collect", "--lake", str(work / "lake"),
        "--cluster", "probe", "--role", "worker", "--host", "127.0.0.1", "--port", str(port),
        "--spool", str(work / "spool"), "--ray-root", str(work / "ray"),
    ]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RAYLAKE_")}
    work.mkdir()
    log = (work / "collect.log").open("wb")
    process = subprocess.Popen(
        command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=environment
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (work / "collect.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{url}/healthz", timeout=1)
                break
            assert time.monotonic() < deadline, "raylake collect did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_the_probes_and_the_export_address_are_routes_the_processes_answer(
    tmp_path: Path,
) -> None:
    server_paths: set[str] = set()
    collector_paths: set[str] = set()
    export_paths: set[str] = set()
    for _, c in raylake_containers():
        if c.get("args", [""])[0] == "serve":
            server_paths |= probes(c)
        elif c.get("args", [""])[0] == "collect":
            collector_paths |= probes(c)
    for _, _, pod in all_ray_pods():
        for var in pod["containers"][0]["env"]:
            if var["name"] == "RAY_DASHBOARD_AGGREGATOR_AGENT_EVENTS_EXPORT_ADDR":
                export_paths.add(urlsplit(var["value"]).path)
    assert server_paths == {"/healthz", "/readyz"}
    assert collector_paths == {"/healthz"}
    assert export_paths == {"/v1/events"}

    Lake(str(tmp_path / "served"), create=True)
    with running_server(str(tmp_path / "served"), tmp_path) as server:
        for path in sorted(server_paths):
            assert httpx.get(f"{server.url}{path}").status_code == 200, path
    with running_collector(tmp_path / "collector") as url:
        for path in sorted(collector_paths):
            assert httpx.get(f"{url}{path}").status_code == 200, path
        for path in sorted(export_paths):
            answer = httpx.post(f"{url}{path}", content=b"[]")
            assert answer.status_code == 200, (path, answer.text)


def test_the_sample_job_runs_the_script_the_configmap_holds() -> None:
    overlay = "kind-ray-job"
    (job,) = [d for d in built(overlay) if d["kind"] == "RayJob"]
    script = PurePosixPath(job["spec"]["entrypoint"].split()[-1])
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    volumes = {v["name"]: v for v in head["volumes"]}
    mounts = [
        m for m in head["containers"][0]["volumeMounts"] if m["mountPath"] == str(script.parent)
    ]
    assert len(mounts) == 1
    config_map = one(overlay, "ConfigMap", volumes[mounts[0]["name"]]["configMap"]["name"])
    source = (DEPLOY / "base" / "ray-job" / script.name).read_text()
    assert config_map["data"][script.name] == source
    assert job["spec"]["shutdownAfterJobFinishes"] is True  # a dead cluster to look at
