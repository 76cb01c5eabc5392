"""Which session a request is about, following KubeRay's history server: `GET /clusters`
lists them (the lake's sessions, and the clusters running now, marked `live`),
`/enter_cluster/...` sets the session cookie, and `?session=<ns>/<name>/<session>` on any
request does the same for that request (so links can be shared).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import Cookie
from litestar.response import Redirect

from lake.layout import ClusterKey, LayoutError, check_session
from lake.store import Lake
from query.engine import SessionRef
from query.sessions import SessionInfo, list_sessions
from query.state import SessionNotFound, SessionState, StateCache
from web.live import LiveCluster, LiveClusters, live_session
from web.reply import ApiError, json_response

COOKIE = "raylake_session"
LATEST = "latest"


class Sessions:
    """The catalog's sessions (listed again at most every `recheck_seconds`) and their
    states."""

    def __init__(self, lake: Lake, cache: StateCache, *, recheck_seconds: float) -> None:
        self.lake = lake
        self.cache = cache
        self.recheck_seconds = recheck_seconds
        self._listed: list[SessionInfo] = []
        self._listed_at = float("-inf")
        self._guard = threading.Lock()

    def all(self) -> list[SessionInfo]:
        with self._guard:
            if time.monotonic() - self._listed_at >= self.recheck_seconds:
                self._listed = list_sessions(self.lake)
                self._listed_at = time.monotonic()
            return self._listed

    def resolve(self, namespace: str, name: str, session: str) -> SessionRef:
        """The session named, `latest` meaning the cluster's newest one."""
        try:
            cluster = ClusterKey(namespace, name)
            if session != LATEST:
                return SessionRef(cluster, check_session(session))
        except LayoutError as exc:
            raise ApiError(400, "bad_session", str(exc)) from None
        newest = next((s.ref for s in self.all() if s.ref.cluster == cluster), None)
        if newest is None:
            raise ApiError(404, "unknown_session", f"no session of cluster {cluster.key} here")
        return newest

    def parse(self, text: str) -> SessionRef:
        parts = text.split("/")
        if len(parts) != 3:
            raise ApiError(
                400,
                "bad_session",
                f"session {text!r}: expected <namespace>/<cluster name>/<session> "
                "(the session may be 'latest')",
            )
        return self.resolve(*parts)

    def chosen(self, request: Request[Any, Any, Any]) -> SessionRef:
        """The session `?session=` or the session cookie names."""
        text = request.query_params.get("session") or request.cookies.get(COOKIE)
        if not text:
            raise ApiError(
                400,
                "no_session",
                "No session chosen: open /enter_cluster/<namespace>/<name>/<session> "
                "(see GET /clusters), or add ?session=<namespace>/<name>/<session>",
            )
        return self.parse(text)

    def state(self, ref: SessionRef) -> SessionState:
        try:
            return self.cache.get(ref)
        except SessionNotFound as exc:
            raise ApiError(404, "unknown_session", str(exc)) from None


def session_key(ref: SessionRef) -> str:
    return f"{ref.cluster.namespace}/{ref.cluster.name}/{ref.session}"


def chosen_session(request: Request[Any, Any, Any]) -> SessionRef:
    sessions: Sessions = request.app.state.sessions
    return sessions.chosen(request)


def session_state(request: Request[Any, Any, Any]) -> SessionState:
    """The dependency every session route takes: the chosen session's state."""
    sessions: Sessions = request.app.state.sessions
    return sessions.state(chosen_session(request))


def remembered(
    request: Request[Any, Any, Any],
    state: SessionState,
    build: Callable[[], Response[bytes]],
    *,
    browser: bool = False,
) -> Response[bytes]:
    """The answer to this request (path, query, and whether Ray would answer a browser
    differently) for this version of the session's state, built once: a whole-session
    answer is expensive on a large session and the same until the session changes."""
    key = (request.url.path, tuple(sorted(request.query_params.multi_items())), browser)
    content, status, headers, media_type = state.remember(key, lambda: _parts(build()))
    return Response(content, status_code=status, headers=headers, media_type=media_type)


def _parts(response: Response[bytes]) -> tuple[bytes, int, dict[str, str], str | None]:
    media_type = response.media_type if isinstance(response.media_type, str) else None
    return response.content, response.status_code or 200, dict(response.headers), media_type


def _millis(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _time_param(request: Request[Any, Any, Any], name: str) -> dt.datetime | None:
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        if value.isdigit():
            return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            400, "bad_time", f"{name}={value!r}: expected ISO 8601 or epoch milliseconds"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def cluster_info(info: SessionInfo, live: LiveCluster | None = None) -> dict[str, Any]:
    """KubeRay's ClusterInfo, plus what the lake knows about the session; `live` when it
    is the session a cluster that exists now runs."""
    start = info.start_time
    return {
        "name": info.ref.cluster.name,
        "namespace": info.ref.cluster.namespace,
        "sessionName": info.ref.session,
        "createTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "createTimeStamp": _millis(start),
        "rayVersion": info.ray_version,
        "ended": info.ended,
        "lastEventTime": info.last_event_time,
        "nodes": len(info.entries),
        "live": live is not None,
        "kind": live.kind if live else None,
    }


def new_cluster_info(live: LiveCluster) -> dict[str, Any]:
    """A running cluster none of whose sessions is in the lake yet."""
    created = live.created.astimezone(dt.UTC)
    return {
        "name": live.cluster.name,
        "namespace": live.cluster.namespace,
        "sessionName": "",
        "createTime": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "createTimeStamp": _millis(created),
        "rayVersion": "",
        "ended": False,
        "lastEventTime": None,
        "nodes": 0,
        "live": True,
        "kind": live.kind,
    }


def cluster_listing(
    infos: list[SessionInfo], running: dict[ClusterKey, LiveCluster]
) -> list[tuple[dt.datetime, dict[str, Any]]]:
    """The lake's sessions (each running cluster's marked live) and the running clusters
    the lake has no session of yet, newest first, each with when it began."""
    live_refs = {}
    listed = []
    for cluster, live in running.items():
        session = live_session(infos, cluster)
        if session is None:
            listed.append((live.created, new_cluster_info(live)))
        else:
            live_refs[session.ref] = live
    listed += [(s.start_time, cluster_info(s, live_refs.get(s.ref))) for s in infos]
    return sorted(listed, key=lambda pair: pair[0], reverse=True)


@get("/clusters", sync_to_thread=True)
def clusters(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Sessions and running clusters newest first; `namespace`, `name`, `since`, `until`
    narrow them and `limit`/`offset` page (the total is in `X-Total-Count`)."""
    sessions: Sessions = request.app.state.sessions
    running: LiveClusters = request.app.state.live
    query = request.query_params
    since, until = _time_param(request, "since"), _time_param(request, "until")
    found = [
        c
        for start, c in cluster_listing(sessions.all(), running.current())
        if query.get("namespace", c["namespace"]) == c["namespace"]
        and query.get("name", c["name"]) == c["name"]
        and (since is None or start >= since)
        and (until is None or start <= until)
    ]
    try:
        offset = int(query.get("offset") or 0)
        limit = int(query.get("limit") or len(found))
    except ValueError:
        raise ApiError(400, "bad_page", "limit and offset must be integers") from None
    page = found[offset : offset + limit]
    return json_response(page, headers={"X-Total-Count": str(len(found))})


def _enter(request: Request[Any, Any, Any], namespace: str, name: str, session: str) -> Any:
    sessions: Sessions = request.app.state.sessions
    ref = sessions.resolve(namespace, name, session)
    sessions.state(ref)  # 404 for a session the catalog does not have
    cookie = Cookie(key=COOKIE, value=session_key(ref), path="/", httponly=True, samesite="lax")
    target = request.query_params.get("next")
    if target and target.startswith("/") and not target.startswith("//"):
        return Redirect(target, status_code=303, cookies=[cookie])
    body = {
        "result": "success",
        "namespace": ref.cluster.namespace,
        "name": ref.cluster.name,
        "session": ref.session,
    }
    return Response(body, cookies=[cookie])


@get("/enter_cluster/{namespace:str}/{name:str}/{session:str}", sync_to_thread=True)
def enter_cluster(request: Request[Any, Any, Any], namespace: str, name: str, session: str) -> Any:
    return _enter(request, namespace, name, session)


@get("/enter_cluster/{namespace:str}/{kind:str}/{name:str}/{session:str}", sync_to_thread=True)
def enter_cluster_of_kind(
    request: Request[Any, Any, Any], namespace: str, kind: str, name: str, session: str
) -> Any:
    """KubeRay's newer form; the kind (RayCluster, RayJob) does not change the lake path."""
    return _enter(request, namespace, name, session)


ROUTES = [clusters, enter_cluster, enter_cluster_of_kind]
