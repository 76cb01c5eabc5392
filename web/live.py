"""Clusters that run now, and the few answers only their head knows.

KubeRay's RayClusters are listed from the Kubernetes API (a RayJob's or RayService's
cluster is a RayCluster too, owned by it), through a kubeconfig or, in a pod, the pod's
service account; the listing is reused for a few seconds, and an API that does not
answer only leaves `/clusters` without live marks.

A live session is read from the lake like any other, at most one collector flush
behind, so readers never load the head. Only what the lake cannot know goes to the
head's dashboard (KubeRay's `<cluster>-head-svc` in the cluster's namespace): log
streaming, which follows the file as Ray writes it, and the nodes' current usage
(`/nodes?view=summary`, `/nodes/{id}`, `/api/cluster_status`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import anyio
import httpx
from kubernetes import client as kubernetes
from kubernetes import config as kubeconfig_loader
from litestar import Litestar, Request, Response
from litestar.datastructures import MultiDict
from litestar.response import Stream

from lake.layout import ClusterKey, LayoutError
from query.sessions import SessionInfo
from web.reply import ApiError

if TYPE_CHECKING:
    from web.sessions import Sessions

log = logging.getLogger(__name__)

KUBERAY_DASHBOARD = "http://{name}-head-svc.{namespace}.svc.cluster.local:8265"
RAY_GROUP, RAY_VERSION, RAY_CLUSTERS = "ray.io", "v1", "rayclusters"
OWNER_KINDS = ("RayJob", "RayService")  # what KubeRay makes RayClusters for
LISTING_SECONDS = 5.0  # how long one Kubernetes listing is reused
KUBERNETES_TIMEOUT = (2.0, 5.0)  # connect, read: a silent API must not hold /clusters
HEAD_ANSWER_SECONDS = 30.0  # until the head's status line and headers
HEAD_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
STREAM_TIMEOUT = httpx.Timeout(30.0, connect=5.0, read=None)  # a followed file may be quiet
FORWARDED_HEADERS = ("content-disposition",)

Lister = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class LiveCluster:
    """A RayCluster that exists now."""

    cluster: ClusterKey
    kind: str  # RayCluster, or the RayJob or RayService that owns it
    created: dt.datetime


def live_cluster(item: dict[str, Any]) -> LiveCluster | None:
    """One item of a RayCluster list; None for a name the lake could not hold."""
    meta = item.get("metadata") or {}
    try:
        cluster = ClusterKey(str(meta.get("namespace")), str(meta.get("name")))
    except LayoutError:
        return None
    owners = [owner.get("kind") for owner in meta.get("ownerReferences") or []]
    kind = next((k for k in owners if k in OWNER_KINDS), "RayCluster")
    stamp = meta.get("creationTimestamp")
    created = dt.datetime.fromisoformat(stamp) if stamp else dt.datetime.fromtimestamp(0, dt.UTC)
    return LiveCluster(cluster, kind, created if created.tzinfo else created.replace(tzinfo=dt.UTC))


def live_session(infos: Sequence[SessionInfo], cluster: ClusterKey) -> SessionInfo | None:
    """The session a live cluster runs: its newest in the lake (`infos` are newest
    first), unless every collector of it has ended it (a cluster made again under the
    same name whose new session is not in the lake yet)."""
    newest = next((s for s in infos if s.ref.cluster == cluster), None)
    return newest if newest is not None and not newest.ended else None


def kubernetes_lister(kubeconfig: str | None, namespaces: Sequence[str]) -> Lister | None:
    """RayClusters from the Kubernetes API (every namespace, or those given), through
    `kubeconfig`, else the pod's service account; None outside a cluster without one."""
    configuration = kubernetes.Configuration()
    if kubeconfig:
        try:
            kubeconfig_loader.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        except (kubeconfig_loader.ConfigException, OSError) as exc:
            raise ValueError(f"kubeconfig {kubeconfig}: {exc}") from None
    else:
        try:
            kubeconfig_loader.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except kubeconfig_loader.ConfigException:
            return None
    configuration.retries = 0  # the next listing is the retry
    api = kubernetes.CustomObjectsApi(kubernetes.ApiClient(configuration))

    def list_ray_clusters() -> list[dict[str, Any]]:
        if not namespaces:
            found = api.list_cluster_custom_object(
                RAY_GROUP, RAY_VERSION, RAY_CLUSTERS, _request_timeout=KUBERNETES_TIMEOUT
            )
            return list(cast(dict[str, Any], found)["items"])
        items: list[dict[str, Any]] = []
        for namespace in namespaces:
            found = api.list_namespaced_custom_object(
                RAY_GROUP, RAY_VERSION, namespace, RAY_CLUSTERS, _request_timeout=KUBERNETES_TIMEOUT
            )
            items += cast(dict[str, Any], found)["items"]
        return items

    return list_ray_clusters


class LiveClusters:
    """The RayClusters that exist now, listed again at most every LISTING_SECONDS."""

    def __init__(self, lister: Lister | None, dashboard_url_template: str) -> None:
        try:
            dashboard_url_template.format(name="n", namespace="ns")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"live dashboard URL template {dashboard_url_template!r}: {exc!r} "
                "(placeholders: {name}, {namespace})"
            ) from None
        self.lister = lister
        self.dashboard_url_template = dashboard_url_template
        self._clusters: dict[ClusterKey, LiveCluster] = {}
        self._listed_at = float("-inf")
        self._failing = False
        self._guard = threading.Lock()

    def current(self) -> dict[ClusterKey, LiveCluster]:
        if self.lister is None:
            return {}
        with self._guard:
            if time.monotonic() - self._listed_at < LISTING_SECONDS:
                return self._clusters
            try:
                items = self.lister()
            except Exception as exc:  # the API's or the network's: either way, none live
                if not self._failing:
                    log.warning("Kubernetes API: cannot list RayClusters (%s)", exc)
                self._failing = True
                self._clusters = {}
            else:
                if self._failing:
                    log.warning("Kubernetes API: RayClusters listed again")
                self._failing = False
                found = (live_cluster(item) for item in items)
                self._clusters = {c.cluster: c for c in found if c is not None}
            self._listed_at = time.monotonic()
            return self._clusters

    def dashboard_url(self, cluster: ClusterKey) -> str:
        return self.dashboard_url_template.format(name=cluster.name, namespace=cluster.namespace)


# --- the proxy to a live head -------------------------------------------------------------


def live_only(path: str, query: MultiDict[str]) -> bool:
    """Routes whose answer only the running head knows."""
    return (
        path in ("/api/v0/logs/stream", "/api/cluster_status")
        or (path == "/nodes" and query.get("view") == "summary")
        or path.startswith("/nodes/")
    )


def head_dashboard(request: Request[Any, Any, Any]) -> str | None:
    """The head's dashboard URL when the request's session is a live cluster's running
    session; None otherwise (the route answers from the lake, or with its error)."""
    sessions: Sessions = request.app.state.sessions
    live: LiveClusters = request.app.state.live
    try:
        ref = sessions.chosen(request)
    except ApiError:
        return None
    if ref.cluster not in live.current():
        return None
    running = live_session(sessions.all(), ref.cluster)
    return live.dashboard_url(ref.cluster) if running and running.ref == ref else None


@asynccontextmanager
async def head_client(app: Litestar) -> AsyncIterator[None]:
    """The app's lifespan: one HTTP client for every request proxied to a head."""
    async with httpx.AsyncClient() as client:
        app.state.head_http = client
        yield


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_bytes():
            yield chunk
    finally:
        await upstream.aclose()


async def forward(http: httpx.AsyncClient, url: str, params: httpx.QueryParams) -> Response[Any]:
    """GET `url` and stream its answer back as it comes; 502 when the head does not
    answer."""
    follows = url.endswith("/api/v0/logs/stream")
    asked = http.build_request(
        "GET", url, params=params, timeout=STREAM_TIMEOUT if follows else HEAD_TIMEOUT
    )
    try:
        with anyio.fail_after(HEAD_ANSWER_SECONDS):
            upstream = await http.send(asked, stream=True)
    except (httpx.HTTPError, TimeoutError) as exc:
        raise ApiError(
            502,
            "head_unreachable",
            f"The live cluster's head dashboard did not answer {url}: {exc!r}",
        ) from None
    headers = {k: upstream.headers[k] for k in FORWARDED_HEADERS if k in upstream.headers}
    return Stream(
        _relay(upstream),
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/octet-stream"),
        headers=headers,
    )


async def proxy_live_only(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """The app's `before_request`: a live session's live-only routes go to its head."""
    if not live_only(request.url.path, request.query_params):
        return None
    base = await anyio.to_thread.run_sync(head_dashboard, request)
    if base is None:
        return None
    params = httpx.QueryParams(
        [(k, v) for k, v in request.query_params.multi_items() if k != "session"]
    )
    http: httpx.AsyncClient = request.app.state.head_http
    return await forward(http, base.rstrip("/") + request.url.path, params)
