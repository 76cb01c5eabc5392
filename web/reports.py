"""Cross-session reports: `/lake/reports`, and the HTML `raylake report` writes.

One self-contained page: plots drawn by matplotlib as inline SVG (text kept as text),
each beside the table of its numbers; no script, no style sheet, font or image from
elsewhere, so the page reads the same offline, in a mail or a browser without
JavaScript. The numbers come from `query/report.py`.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import matplotlib
from litestar import Request, Response, get
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lake.store import Lake
from query.report import (
    ReportData,
    Scope,
    parse_since,
    parse_time,
    report_data,
    scope_of,
)

# Headless: figures are drawn straight to SVG, never to a screen.
matplotlib.use("Agg")

#: Rows a table shows before saying how many it left out.
TABLE_ROWS = 30
#: Bars a bar chart shows (the table beside it has the rest).
PLOT_BARS = 12

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:100em;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:2em;font-size:1.25em;border-bottom:1px solid #ccc}
h3{font-size:1em;margin:.5em 0}
table{border-collapse:collapse;font-size:.9em}th,td{text-align:left;padding:.3em .6em;
vertical-align:top}tr{border-bottom:1px solid #ddd}th{background:#f3f5f7}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.msg{white-space:pre-wrap;word-break:break-word;max-width:40em}
.pair{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1.5em;
align-items:start}@media (max-width:70em){.pair{grid-template-columns:minmax(0,1fr)}}
figure{margin:0}figure svg{width:100%;height:auto;display:block}
figcaption,.muted{color:#666;font-size:.9em}
.notice{background:#fff4d6;border:1px solid #e0c060;padding:.6em 1em}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dl.summary dt{font-weight:600}dl.summary dd{margin:0}
code{background:#f3f5f7;padding:0 .3em}
"""

_COLORS = ("#4e79a7", "#e15759", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f")
_OUTCOME_COLORS = {
    "succeeded": "#59a14f",
    "failed": "#e15759",
    "stopped": "#9c9c9c",
    "other": "#4e79a7",
}


# Text.


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.3g} ms"
    if value < 120:
        return f"{value:.3g} s"
    if value < 7200:
        return f"{value / 60:.3g} min"
    return f"{value / 3600:.3g} h"


def _percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate * 100:.1f}%"


def _hours(value: float) -> str:
    return f"{value:.3g}"


def _session_stamp(session: str) -> str:
    """`session_2026-11-21_20-42-42_066305_20083` -> `2026-11-21 20:42:42`."""
    match = re.fullmatch(r"session_(\d{4}-\d\d-\d\d)_(\d\d)-(\d\d)-(\d\d)_.*", session)
    return f"{match[1]} {match[2]}:{match[3]}:{match[4]}" if match else session


def _session_label(row: dict[str, Any]) -> str:
    return f"{row['namespace']}/{row['cluster']} {_session_stamp(row['session'])}"


def _job_name(row: dict[str, Any]) -> str:
    return str(row["submission_id"] or row["job_id"])


def _job_label(row: dict[str, Any]) -> str:
    return f"{_job_name(row)} ({_session_label(row)})"


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# Tables.


def _table(
    head: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    numeric: Sequence[int] = (),
    wide: Sequence[int] = (),
    total: int | None = None,
) -> str:
    """An HTML table; `numeric` columns align right, `wide` ones wrap long text. Says
    how many rows it left out when `total` is more than it shows."""

    def cell(tag: str, i: int, value: object) -> str:
        kind = " class='n'" if i in numeric else " class='msg'" if i in wide else ""
        return f"<{tag}{kind}>{_e(value)}</{tag}>"

    shown = list(rows)
    header = "".join(cell("th", i, h) for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in shown
    )
    more = (
        f'<p class="muted">Showing {len(shown)} of {total} rows.</p>'
        if total is not None and total > len(shown)
        else ""
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>{more}"


# Plots.

# matplotlib's settings are process-wide: render one figure at a time.
_PLOTTING = threading.Lock()
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}


def _svg(name: str, caption: str, draw: Callable[[Axes], None], *, height: float = 3.4) -> str:
    """A figure drawn by `draw` on its axes, as inline SVG: text as text, its ids
    prefixed with `name` so that the page's several figures cannot collide, and no XML
    prologue or namespace URLs."""
    out = io.StringIO()
    with (
        _PLOTTING,
        matplotlib.rc_context(
            {"svg.fonttype": "none", "svg.hashsalt": "raylake", "date.converter": "concise"}
        ),
    ):
        figure = Figure(figsize=(6.4, height), layout="constrained")
        draw(figure.subplots())
        figure.savefig(out, format="svg", metadata=_NO_METADATA)
    svg = out.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'\sxmlns(:xlink)?="[^"]*"', "", svg)
    svg = re.sub(r'\bid="', f'id="{name}-', svg)
    svg = re.sub(r"url\(#", f"url(#{name}-", svg)
    svg = re.sub(r'href="#', f'href="#{name}-', svg)
    tag_end = svg.index(">") + 1
    svg = f'<svg role="img" {svg[5:tag_end]}<title>{_e(caption)}</title>{svg[tag_end:]}'

    return f'<figure id="{name}">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


def _days(moment: dt.datetime | dt.timedelta) -> float:
    """A time as matplotlib's date axis counts it: days since 1970 (a width: days)."""
    if isinstance(moment, dt.timedelta):
        return moment / dt.timedelta(days=1)
    return moment.timestamp() / 86400


def _time_axis(axes: Axes, buckets: Sequence[dt.datetime], width: dt.timedelta) -> None:
    axes.xaxis_date(dt.UTC)
    # Never a zero-width axis, even with one bucket.
    axes.set_xlim(_days(min(buckets) - width / 2), _days(max(buckets) + width * 1.5))
    axes.set_xlabel(f"time (UTC), buckets of {_bucket_text(width)}")


def _bucket_text(width: dt.timedelta) -> str:
    seconds = int(width.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''}"
    return f"{seconds} second{'s' if seconds > 1 else ''}"


def _rate_series_plot(
    name: str,
    caption: str,
    series: dict[str, list[dict[str, Any]]],
    width: dt.timedelta,
) -> str:
    def draw(axes: Axes) -> None:
        for (label, rows), color in zip(series.items(), _COLORS, strict=False):
            times = [_days(r["bucket"] + width / 2) for r in rows]
            rates = [r["failure_rate"] * 100 for r in rows]
            axes.plot(times, rates, marker="o", color=color, label=label)
        _time_axis(axes, [r["bucket"] for rows in series.values() for r in rows], width)
        axes.set_ylim(-3, 103)
        axes.set_ylabel("failed attempts (%)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="best")

    return _svg(name, caption, draw)


def _barh_plot(
    name: str,
    caption: str,
    labels: Sequence[str],
    bars: dict[str, Sequence[float]],
    *,
    xlabel: str,
    colors: Sequence[str] = _COLORS,
    log_scale: bool = False,
) -> str:
    """Horizontal bars, first label on top; several `bars` series side by side."""
    size = 0.8 / len(bars)
    positions = range(len(labels))
    values = [v for series_values in bars.values() for v in series_values]

    def draw(axes: Axes) -> None:
        for i, ((series, heights), color) in enumerate(zip(bars.items(), colors, strict=False)):
            offsets = [p - 0.4 + size * (i + 0.5) for p in positions]
            axes.barh(offsets, heights, height=size, color=color, label=series)
        axes.set_yticks(list(positions), [_short(label) for label in labels])
        axes.invert_yaxis()
        if log_scale and min(values) > 0 and max(values) > 50 * min(values):
            axes.set_xscale("log")  # durations spread over orders of magnitude
        axes.set_xlabel(xlabel)
        axes.grid(axis="x", alpha=0.3)
        if len(bars) > 1:
            axes.legend(fontsize=8, loc="best")

    height = max(2.2, 0.9 + 0.32 * len(labels) * max(1, len(bars) // 2))
    return _svg(name, caption, draw, height=height)


# Sections.


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _pair(plot: str, table: str) -> str:
    return f'<div class="pair"><div>{plot}</div><div>{table}</div></div>'


def _none(text: str) -> str:
    return f'<p class="muted">{_e(text)}</p>'


def _group(
    rows: list[dict[str, Any]], label: Callable[[dict[str, Any]], str]
) -> dict[str, list[dict[str, Any]]]:
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        series.setdefault(label(row), []).append(row)
    return series


def _function_failures(data: ReportData) -> str:
    rows = data.function_failures.to_pylist()
    series = _group(data.function_failure_series.to_pylist(), lambda r: r["function"])
    plot = (
        _rate_series_plot(
            "plot-function-failures",
            "Failure rate over time of the functions with most failed attempts",
            series,
            data.bucket,
        )
        if series
        else _none("No task attempt failed in this window.")
    )
    table = _table(
        ["function", "attempts", "failed", "failure rate", "sessions"],
        (
            [r["function"], r["attempts"], r["failed"], _percent(r["failure_rate"]), r["sessions"]]
            for r in rows[:TABLE_ROWS]
        ),
        numeric=(1, 2, 3, 4),
        total=len(rows),
    )
    return _section("failures-by-function", "Failure rate by function", _pair(plot, table))


def _job_failures(data: ReportData) -> str:
    rows = data.job_failures.to_pylist()
    series = _group(data.job_failure_series.to_pylist(), _job_label)
    plot = (
        _rate_series_plot(
            "plot-job-failures",
            "Failure rate over time of the tasks of the jobs with most failed attempts",
            series,
            data.bucket,
        )
        if series
        else _none("No task attempt failed in this window.")
    )
    table = _table(
        ["job", "session", "entrypoint", "job status", "attempts", "failed", "failure rate"],
        (
            [
                _job_name(r),
                _session_label(r),
                r["entrypoint"] or "",
                r["status"] or "",
                r["attempts"],
                r["failed"],
                _percent(r["failure_rate"]),
            ]
            for r in rows[:TABLE_ROWS]
        ),
        numeric=(4, 5, 6),
        total=len(rows),
    )
    return _section(
        "failures-by-job", "Failure rate by job (its task attempts)", _pair(plot, table)
    )


def _durations(data: ReportData) -> str:
    rows = data.durations.to_pylist()
    if not rows:
        return _section(
            "durations", "Task duration percentiles", _none("No task attempt ran in this window.")
        )
    plotted = rows[:PLOT_BARS]
    plot = _barh_plot(
        "plot-durations",
        "Task duration percentiles (start to end of each attempt) of the most run functions",
        [r["function"] for r in plotted],
        {q: [r[q] for r in plotted] for q in ("p50", "p90", "p99")},
        xlabel="seconds",
        log_scale=True,
    )
    table = _table(
        ["function", "attempts", "p50", "p90", "p99", "max"],
        (
            [r["function"], r["attempts"], *(_seconds(r[q]) for q in ("p50", "p90", "p99", "max"))]
            for r in rows[:TABLE_ROWS]
        ),
        numeric=(1, 2, 3, 4, 5),
        total=len(rows),
    )
    return _section("durations", "Task duration percentiles", _pair(plot, table))


def _errors(data: ReportData) -> str:
    types = data.error_types.to_pylist()
    if not types:
        return _section(
            "errors", "Top errors", _none("No task attempt or job failed in this window.")
        )
    plotted = types[:PLOT_BARS]
    plot = _barh_plot(
        "plot-errors",
        "Failures by error type (failed task attempts and failed jobs)",
        [f"{r['error_type']} ({r['source']})" for r in plotted],
        {"failures": [r["failures"] for r in plotted]},
        xlabel="failures",
        colors=(_OUTCOME_COLORS["failed"],),
    )
    table = _table(
        ["error type", "of", "failures", "functions or jobs"],
        ([r["error_type"], r["source"], r["failures"], r["affected"]] for r in types[:TABLE_ROWS]),
        numeric=(2,),
        wide=(3,),
        total=len(types),
    )
    messages = _table(
        ["error type", "of", "message (last line)", "failures", "functions or jobs", "last seen"],
        (
            [
                r["error_type"],
                r["source"],
                r["message"] or "(no message)",
                r["failures"],
                r["affected"],
                _when(r["last_seen"]),
            ]
            for r in data.error_messages.to_pylist()
        ),
        numeric=(3,),
        wide=(2, 4),
    )
    return _section(
        "errors",
        "Top errors",
        _pair(plot, table) + f"<h3>Most frequent error messages</h3>{messages}",
    )


def _slowest_jobs(data: ReportData) -> str:
    rows = data.slowest_jobs.to_pylist()
    if not rows:
        return _section("slowest-jobs", "Slowest jobs", _none("No job ended in this window."))
    plot = _barh_plot(
        "plot-slowest-jobs",
        "Slowest jobs that ended in the window (start to end)",
        [_job_label(r) for r in rows],
        {"duration": [r["seconds"] for r in rows]},
        xlabel="seconds",
    )
    table = _table(
        ["job", "session", "type", "status", "entrypoint", "started", "duration"],
        (
            [
                _job_name(r),
                _session_label(r),
                r["type"],
                r["status"],
                r["entrypoint"] or "",
                _when(r["start_time"]),
                _seconds(r["seconds"]),
            ]
            for r in rows
        ),
        numeric=(6,),
        total=data.totals["jobs"],
    )
    return _section("slowest-jobs", "Slowest jobs", _pair(plot, table))


def _sessions(data: ReportData) -> str:
    rows = data.sessions.to_pylist()
    if not rows:
        return _section(
            "sessions",
            "Node-hours and task concurrency by session",
            _none("No node or task ran in this window."),
        )
    plotted = rows[:PLOT_BARS]
    labels = [_session_label(r) for r in plotted]
    usage = _barh_plot(
        "plot-node-hours",
        "Node-hours by session (clipped to the window)",
        labels,
        {"node-hours": [r["node_hours"] for r in plotted]},
        xlabel="node-hours",
    )
    concurrency = _barh_plot(
        "plot-concurrency",
        "Task attempts running at once by session: the most, and the mean while tasks ran",
        labels,
        {
            "max": [r["max_running"] for r in plotted],
            "mean": [r["mean_running"] for r in plotted],
        },
        xlabel="attempts running at once",
    )
    table = _table(
        [
            "session",
            "nodes",
            "node-hours",
            "CPU-hours",
            "attempts run",
            "max running",
            "mean running",
            "tasks from",
            "tasks to",
        ],
        (
            [
                _session_label(r),
                r["nodes"],
                _hours(r["node_hours"]),
                _hours(r["cpu_hours"]),
                r["attempts_run"],
                r["max_running"],
                f"{r['mean_running']:.2f}",
                _when(r["first_start"]),
                _when(r["last_end"]),
            ]
            for r in rows[:TABLE_ROWS]
        ),
        numeric=(1, 2, 3, 4, 5, 6),
        total=len(rows),
    )
    note = (
        '<p class="muted">Concurrency counts task attempts with both a start and an end; '
        "the mean is over the span from the first start to the last end. A node that never "
        "reported its death counts until the last time its session recorded.</p>"
    )
    return _section(
        "sessions",
        "Node-hours and task concurrency by session",
        _pair(usage, concurrency) + note + table,
    )


def _job_trend(data: ReportData) -> str:
    rows = data.job_trend.to_pylist()
    if not rows:
        return _section("job-trend", "Job success trend", _none("No job ended in this window."))
    width = data.bucket

    def draw(axes: Axes) -> None:
        times = [_days(r["bucket"] + width / 2) for r in rows]
        bottom = [0] * len(rows)
        for outcome, color in _OUTCOME_COLORS.items():
            counts = [r[outcome] for r in rows]
            if any(counts):
                bar_width = _days(width * 0.8)
                axes.bar(times, counts, bar_width, bottom=bottom, color=color, label=outcome)
                bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        _time_axis(axes, [r["bucket"] for r in rows], width)
        axes.set_ylabel("jobs ended")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(axis="y", alpha=0.3)
        axes.legend(fontsize=8, loc="best")

    plot = _svg("plot-job-trend", "Jobs ended per time bucket, by final status", draw)
    table = _table(
        ["bucket start (UTC)", "jobs", "succeeded", "failed", "stopped", "other", "success rate"],
        (
            [
                _when(r["bucket"]),
                r["jobs"],
                r["succeeded"],
                r["failed"],
                r["stopped"],
                r["other"],
                _percent(r["success_rate"]),
            ]
            for r in rows[:TABLE_ROWS]
        ),
        numeric=(1, 2, 3, 4, 5, 6),
        total=len(rows),
    )
    return _section("job-trend", "Job success trend", _pair(plot, table))


def _scope_text(scope: Scope) -> str:
    start = f"{_when(scope.start)} UTC" if scope.start else "the beginning of the lake"
    where = [
        f"namespace <code>{_e(scope.namespace)}</code>" if scope.namespace else "every namespace",
        f"cluster <code>{_e(scope.cluster)}</code>" if scope.cluster else "every cluster",
    ]
    return f"From {_e(start)} to {_e(_when(scope.end))} UTC; {', '.join(where)}."


def _summary(data: ReportData) -> str:
    t = data.totals
    attempts, failed = t["task_attempts"], t["failed_attempts"]
    rate = f" ({_percent(failed / attempts)})" if attempts else ""
    items = {
        "Sessions": f"{t['sessions']} in {t['clusters']} cluster(s)",
        "Task attempts ended": f"{attempts}, {failed} failed{rate}",
        "Jobs ended": f"{t['jobs']}, {t['succeeded_jobs']} succeeded",
    }
    return (
        '<dl class="summary">'
        + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items.items())
        + "</dl>"
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def report_page(data: ReportData) -> str:
    """The whole report page of `data`."""
    head = f"<h1>raylake report</h1><p>{_scope_text(data.scope)}</p>"
    if data.empty:
        return _page(
            "raylake report: no data",
            head + '<p class="notice" id="no-data">No data in this window: no task attempt, '
            "job or node of these clusters ended or ran between these times.</p>",
        )
    sections = [
        _summary(data),
        _function_failures(data),
        _job_failures(data),
        _durations(data),
        _errors(data),
        _slowest_jobs(data),
        _sessions(data),
        _job_trend(data),
    ]
    return _page("raylake report", head + "".join(sections))


def render_report(
    lake: Lake,
    *,
    since: dt.timedelta | None,
    namespace: str | None,
    cluster: str | None,
    now: dt.datetime | None = None,
) -> str:
    """The report page over `lake`: the `since` before `now` (default: the current
    time; None: all time up to `now`), for one namespace and cluster if given."""
    scope = scope_of(now or dt.datetime.now(dt.UTC), since, namespace or None, cluster or None)
    return report_page(report_data(lake, scope))


# The route.


def _error_page(message: str) -> str:
    return _page(
        "raylake report: bad request",
        f'<h1>raylake report</h1><p class="notice" id="bad-request">{_e(message)}</p>',
    )


@get("/lake/reports", sync_to_thread=True)
def reports_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The report over every session: `since` (7d, 12h, 30m or an ISO date),
    `namespace`, `cluster`, and `until` (an ISO time, default now) narrow it."""
    query = request.query_params
    try:
        until = query.get("until") or ""
        now = parse_time(until) if until else dt.datetime.now(dt.UTC)
    except ValueError:
        return Response(
            _error_page(f"until={until!r} is not an ISO time such as 2026-11-21T20:42"),
            status_code=400,
            media_type="text/html",
        )
    try:
        since_text = query.get("since") or ""
        since = parse_since(since_text, now) if since_text else None
    except ValueError as exc:
        return Response(_error_page(str(exc)), status_code=400, media_type="text/html")
    page = render_report(
        request.app.state.lake,
        since=since,
        namespace=query.get("namespace") or None,
        cluster=query.get("cluster") or None,
        now=now,
    )
    return Response(page, media_type="text/html")


ROUTES: list[Any] = [reports_page]
