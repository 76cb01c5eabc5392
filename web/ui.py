"""The landing page and the real Ray Dashboard frontend.

Ray's UI is a single-page app on a hash router (`/#/jobs/...`), and it calls the API with
paths relative to the page. So, like Ray's own dashboard head
(`ray/dashboard/http_server_head.py`), the server only serves `/` (index.html),
`/favicon.ico` and `/static/...`; every page of the UI is `/` to the server, and its API
calls reach raylake's Ray-compatible routes with the session cookie.

Several builds can be served, one per Ray version: a session gets the build of its own
Ray version, else the one the user picked on the landing page (a cookie), else the newest.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import importlib.util
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from litestar import Request, Response, get, route
from litestar.datastructures import Cookie
from litestar.response import File, Redirect

from query.sessions import SessionInfo
from web.reply import ApiError
from web.sessions import COOKIE, Sessions, cluster_info, session_key

VERSION_COOKIE = "raylake_dashboard_version"
_VERSION_ASSIGNMENT = re.compile(r'^version\s*=\s*"([^"]+)"', re.MULTILINE)
# Types browsers insist on for scripts, styles and fonts, whatever the system's mime.types says.
_MEDIA_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".json": "application/json",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
# Content-hashed file names never change content: browsers may keep them.
_HASHED_NAME = re.compile(r"\.[0-9a-f]{8,}\.")


@dataclass(frozen=True)
class DashboardBuild:
    """A Ray Dashboard build directory (index.html, static/...)."""

    path: Path
    ray_version: str  # "" when its files do not tell
    source: str

    @property
    def key(self) -> str:
        """What the landing page's choice and its cookie call this build."""
        return self.ray_version or self.path.name


@dataclass(frozen=True)
class Builds:
    found: tuple[DashboardBuild, ...]
    problems: tuple[str, ...]

    def get(self, key: str) -> DashboardBuild | None:
        return next((b for b in self.found if b.key == key), None)


def build_ray_version(build: Path) -> str:
    """The Ray version of a build that sits in a ray package (`ray/dashboard/client/build`,
    as installed or unpacked from a wheel): the package's `_version.py` says it."""
    version_file = build.parent.parent.parent / "_version.py"
    if not version_file.is_file():
        return ""
    found = _VERSION_ASSIGNMENT.search(version_file.read_text(errors="replace"))
    return found[1] if found else ""


def installed_build() -> Path | None:
    """The build inside the installed `ray` package (found without importing ray)."""
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        return None
    build = Path(next(iter(spec.submodule_search_locations))) / "dashboard" / "client" / "build"
    return build if (build / "index.html").is_file() else None


@functools.cache
def dashboard_builds(dirs: tuple[Path, ...]) -> Builds:
    """The builds given by `--dashboard-dir`, then the installed ray's; one per key (the
    first one given wins)."""
    candidates = [(d.resolve(), f"--dashboard-dir {d}") for d in dirs]
    bundled = installed_build()
    if bundled is not None:
        candidates.append((bundled.resolve(), "the installed ray package"))
    found: list[DashboardBuild] = []
    problems: list[str] = []
    for path, source in candidates:
        build = DashboardBuild(path, build_ray_version(path), source)
        if not (path / "index.html").is_file():
            problems.append(f"{source}: no index.html there, so it is not a dashboard build")
        elif any(b.path == path for b in found):
            continue
        elif any(b.key == build.key for b in found):
            problems.append(f"{source}: a build for {build.key} is already served; ignored")
        else:
            found.append(build)
    return Builds(tuple(found), tuple(problems))


def _version_order(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def choose_build(builds: Builds, session_version: str, picked: str) -> DashboardBuild | None:
    """The user's pick, else the build of the session's Ray version, else the newest
    (raylake answers the newest Ray API, so the newest UI reads it best)."""
    chosen = builds.get(picked) if picked else None
    if chosen is None and session_version:
        chosen = next((b for b in builds.found if b.ray_version == session_version), None)
    if chosen is None and builds.found:
        chosen = max(builds.found, key=lambda b: _version_order(b.ray_version))
    return chosen


def asset_path(root: Path, relative: str) -> Path | None:
    """`relative` inside `root`, or None for a missing file or a path that leaves it."""
    root = root.resolve()
    target = (root / relative.lstrip("/")).resolve()
    return target if target.is_relative_to(root) and target.is_file() else None


def media_type(path: Path) -> str:
    return (
        _MEDIA_TYPES.get(path.suffix)
        or mimetypes.guess_type(path.name)[0]
        or "application/octet-stream"
    )


# The landing page: server-rendered, readable without JavaScript, no outside resources.

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:80em;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:1.5em;font-size:1.2em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35em .6em}
tr{border-bottom:1px solid #ddd}th{background:#f3f5f7}
.notice{background:#fff4d6;border:1px solid #e0c060;padding:.6em 1em}
form{display:flex;gap:1em;flex-wrap:wrap;align-items:end}label{display:flex;flex-direction:column}
code{background:#f3f5f7;padding:0 .3em}.muted{color:#666}
"""


@dataclass(frozen=True)
class Filters:
    namespace: str
    name: str
    since: dt.datetime | None
    until: dt.datetime | None

    def keep(self, info: SessionInfo) -> bool:
        cluster = info.ref.cluster
        return (
            self.namespace in ("", cluster.namespace)
            and self.name in ("", cluster.name)
            and (self.since is None or info.start_time >= self.since)
            and (self.until is None or info.start_time <= self.until)
        )


def _moment(text: str) -> dt.datetime:
    """A time from the filter form (`datetime-local` gives `2026-11-21T20:42`), in UTC."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def read_filters(query: dict[str, str]) -> tuple[Filters, list[str]]:
    times: dict[str, dt.datetime | None] = {}
    problems = []
    for name in ("since", "until"):
        text = query.get(name, "")
        try:
            times[name] = _moment(text) if text else None
        except ValueError:
            times[name] = None
            problems.append(f"{name}={text!r} is not a time (use 2026-11-21T20:42); ignored")
    filters = Filters(query.get("namespace", ""), query.get("name", ""), **times)
    return filters, problems


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _options(values: list[str], selected: str, everything: str) -> str:
    rows = [f'<option value="">{_e(everything)}</option>']
    rows += [
        f'<option value="{_e(v)}"{" selected" if v == selected else ""}>{_e(v)}</option>'
        for v in values
    ]
    return "".join(rows)


def _filter_form(sessions: list[SessionInfo], filters: Filters, query: dict[str, str]) -> str:
    namespaces = sorted({s.ref.cluster.namespace for s in sessions})
    names = sorted({s.ref.cluster.name for s in sessions})
    return (
        '<form method="get" action="/sessions" id="filters">'
        f'<label>Namespace <select name="namespace">'
        f"{_options(namespaces, filters.namespace, 'all')}</select></label>"
        f'<label>Cluster <select name="name">{_options(names, filters.name, "all")}</select>'
        "</label>"
        '<label>Started since (UTC) <input type="datetime-local" name="since" '
        f'value="{_e(query.get("since", ""))}"></label>'
        '<label>Started until (UTC) <input type="datetime-local" name="until" '
        f'value="{_e(query.get("until", ""))}"></label>'
        '<button type="submit">Filter</button> <a href="/sessions">clear</a></form>'
    )


def _cluster_list(shown: list[SessionInfo]) -> str:
    counts: dict[tuple[str, str], int] = {}
    for s in shown:
        key = (s.ref.cluster.namespace, s.ref.cluster.name)
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return '<p id="clusters">No cluster matches.</p>'
    items = "".join(
        f'<li><a href="/sessions?{_e(urlencode({"namespace": ns, "name": name}))}">'
        f"{_e(ns)}/{_e(name)}</a> <span class=muted>({n} session{'s' * (n != 1)})</span></li>"
        for (ns, name), n in sorted(counts.items())
    )
    return f'<ul id="clusters">{items}</ul>'


def enter_link(namespace: str, name: str, session: str) -> str:
    """The link that enters a session (sets its cookie), then opens its dashboard."""
    return (
        "/enter_cluster/"
        + "/".join(quote(p, safe="") for p in (namespace, name, session))
        + "?next=/"
    )


def _parts(info: SessionInfo) -> tuple[str, str, str]:
    return info.ref.cluster.namespace, info.ref.cluster.name, info.ref.session


_COLUMNS = ("Cluster", "Session", "Ray", "Started", "Last event", "Nodes", "State", "Build", "")


def _when(iso: str | None) -> str:
    """`2026-11-21T20:43:33.547032+00:00` as `2026-11-21 20:43:33 UTC`."""
    if not iso:
        return ""
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _session_table(shown: list[SessionInfo], builds: Builds, picked: str) -> str:
    rows = []
    for s in shown:
        info = cluster_info(s)  # what GET /clusters says of it
        build = choose_build(builds, s.ray_version, picked)
        rows.append(
            f'<tr data-session="{_e(session_key(s.ref))}">'
            f"<td>{_e(info['namespace'])}/{_e(info['name'])}</td>"
            f"<td><code>{_e(info['sessionName'])}</code></td>"
            f"<td>{_e(info['rayVersion'] or 'unknown')}</td>"
            f"<td>{_when(info['createTime'])}</td>"
            f"<td>{_when(info['lastEventTime'])}</td>"
            f"<td>{info['nodes']}</td>"
            f"<td>{'ended' if info['ended'] else 'live'}</td>"
            f"<td>{_e(build.key if build else 'none')}</td>"
            f'<td><a class="enter" href="{_e(enter_link(*_parts(s)))}">Open dashboard</a></td></tr>'
        )
    if not rows:
        return '<p id="sessions">No session matches.</p>'
    head = "".join(f"<th>{h}</th>" for h in _COLUMNS)
    return f'<table id="sessions"><tr>{head}</tr>{"".join(rows)}</table>'


AUTOMATIC = "each session's own Ray version (else the newest)"


def _version_form(builds: Builds, picked: str) -> str:
    if not builds.found:
        return (
            '<p id="dashboard-version">No Ray Dashboard build is served: install '
            "<code>raylake[dashboard]</code> (the <code>ray</code> package ships one) or "
            "pass <code>--dashboard-dir DIR</code>.</p>"
        )
    keys = [b.key for b in builds.found]
    described = "".join(
        f"<li><code>{_e(b.key)}</code> <span class=muted>from {_e(b.source)}</span></li>"
        for b in builds.found
    )
    return (
        '<form method="get" action="/dashboard_version" id="dashboard-version">'
        '<label>Dashboard build <select name="version">'
        f"{_options(keys, picked, AUTOMATIC)}"
        '</select></label><input type="hidden" name="next" value="/sessions">'
        f'<button type="submit">Use</button></form><ul>{described}</ul>'
    )


def landing_page(
    sessions: list[SessionInfo],
    query: dict[str, str],
    builds: Builds,
    *,
    picked: str,
    current: str,
    notices: list[str],
) -> str:
    filters, problems = read_filters(query)
    shown = [s for s in sessions if filters.keep(s)]
    notes = "".join(
        f'<p class="notice">{_e(n)}</p>' for n in [*notices, *problems, *builds.problems]
    )
    here = (
        f'<p id="current">Current session: <code>{_e(current)}</code> '
        '(<a href="/">open its dashboard</a>)</p>'
        if current
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>raylake: Ray sessions</title><style>{_STYLE}</style></head><body>"
        "<h1>raylake</h1><p>Ray sessions kept in this lake. Open one to browse it in the "
        "Ray Dashboard, as it was, or ask questions across all of them in the "
        '<a href="/lake/sql">SQL console</a> and the <a href="/lake/reports">reports</a>.'
        f"</p>{notes}{here}"
        f"<h2>Filter</h2>{_filter_form(sessions, filters, query)}"
        f"<h2>Clusters</h2>{_cluster_list(shown)}"
        f"<h2>Sessions</h2>{_session_table(shown, builds, picked)}"
        f"<h2>Dashboard version</h2>{_version_form(builds, picked)}"
        "</body></html>"
    )


# Routes: the I/O edge.


def _builds(request: Request[Any, Any, Any]) -> Builds:
    return dashboard_builds(tuple(request.app.state.config.dashboard_dirs))


def _chosen_info(request: Request[Any, Any, Any], text: str) -> SessionInfo | None:
    """The catalog's session named `text` (`<ns>/<name>/<session or latest>`), if any."""
    sessions: Sessions = request.app.state.sessions
    try:
        ref = sessions.parse(text)
    except ApiError:
        return None
    return next((s for s in sessions.all() if s.ref == ref), None)


def _landing(
    request: Request[Any, Any, Any], *, notices: list[str], status_code: int = 200
) -> Response[str]:
    sessions: Sessions = request.app.state.sessions
    page = landing_page(
        sessions.all(),
        dict(request.query_params),
        _builds(request),
        picked=request.cookies.get(VERSION_COOKIE, ""),
        current=request.cookies.get(COOKIE, ""),
        notices=notices,
    )
    return Response(page, media_type="text/html", status_code=status_code)


@get("/sessions", sync_to_thread=True)
def sessions_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The landing page: clusters and sessions, filtered by `namespace`, `name`, `since`
    and `until` (as `GET /clusters`), each with a link that enters it."""
    return _landing(request, notices=[])


@get("/", sync_to_thread=True)
def index(request: Request[Any, Any, Any]) -> Any:
    """The chosen session's Ray Dashboard; the landing page while none is chosen."""
    shared = request.query_params.get("session")
    if shared:  # a shared link: enter the session (cookie) so the UI's own calls carry it
        parts = shared.split("/")
        if len(parts) == 3:
            return Redirect(enter_link(*parts), status_code=303)
        return _landing(request, notices=[f"session={shared!r}: expected <ns>/<name>/<session>"])
    text = request.cookies.get(COOKIE)
    if not text:
        return _landing(request, notices=[])
    info = _chosen_info(request, text)
    if info is None:
        return _landing(
            request, notices=[f"Session {text} is not in this lake; pick one."], status_code=404
        )
    build = choose_build(
        _builds(request), info.ray_version, request.cookies.get(VERSION_COOKIE, "")
    )
    if build is None:
        return _landing(request, notices=[])
    return File(
        build.path / "index.html",
        media_type="text/html",
        content_disposition_type="inline",
        filename="index.html",
        headers={"Cache-Control": "no-store"},  # as Ray: a new build must not meet old assets
    )


def _asset(request: Request[Any, Any, Any], folder: str, relative: str) -> File:
    """A file under `folder` of the chosen session's build, else of any build (hashed
    names are unique, and a browser may ask before it carries the session cookie)."""
    builds = _builds(request)
    text = request.cookies.get(COOKIE, "")
    info = _chosen_info(request, text) if text else None
    first = choose_build(
        builds, info.ray_version if info else "", request.cookies.get(VERSION_COOKIE, "")
    )
    for build in [b for b in [first] if b] + [b for b in builds.found if b != first]:
        found = asset_path(build.path / folder, relative)
        if found is not None:
            immutable = _HASHED_NAME.search(found.name) is not None
            return File(
                found,
                media_type=media_type(found),
                content_disposition_type="inline",
                filename=found.name,
                headers={"Cache-Control": "public, max-age=31536000, immutable"}
                if immutable
                else {"Cache-Control": "no-cache"},
            )
    raise ApiError(404, "not_found", f"no dashboard asset {folder}/{relative}")


# HEAD too, as aiohttp's static route answers it for Ray.
@route("/static/{path:path}", http_method=["GET", "HEAD"], sync_to_thread=True)
def static_asset(request: Request[Any, Any, Any], path: str) -> File:
    return _asset(request, "static", path)


@route("/favicon.ico", http_method=["GET", "HEAD"], sync_to_thread=True)
def favicon(request: Request[Any, Any, Any]) -> File:
    return _asset(request, ".", "favicon.ico")


@get("/dashboard_version", sync_to_thread=True)
def pick_dashboard_version(request: Request[Any, Any, Any]) -> Redirect:
    """Keep the user's choice of build (`version=` a build's key; empty: match each
    session's Ray version) in a cookie, then go back to `next`."""
    version = request.query_params.get("version", "")
    if version and _builds(request).get(version) is None:
        raise ApiError(404, "unknown_dashboard_version", f"no dashboard build {version!r} here")
    target = request.query_params.get("next") or "/sessions"
    if not target.startswith("/") or target.startswith("//"):
        target = "/sessions"
    cookie = Cookie(
        key=VERSION_COOKIE,
        value=version,
        path="/",
        httponly=True,
        samesite="lax",
        max_age=None if version else 0,
    )
    return Redirect(target, status_code=303, cookies=[cookie])


ROUTES = [index, sessions_page, static_asset, favicon, pick_dashboard_version]
