"""The cross-session report (`raylake report`, `/lake/reports`) over real lakes.

Its numbers are checked against the sample's known facts (the README's failure counts)
and against independent computations with polars over the lake's own views; then the
page itself: filters, the empty page, no outside URL, the same page over HTTP from a
real server, and in headless Chromium (JavaScript off) with its plots on screen.
Screenshots go to tests/artifacts/reports/.
"""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from ingest.load import ingest_paths
from ingest.snapshots import store_snapshot
from lake.layout import ClusterKey
from lake.store import Lake
from query.engine import connect
from query.report import ReportData, parse_since, report_data, scope_of
from web.reports import render_report

from conftest import LIVE, POSTS, SESSION, SNAPSHOT_NS, SNAPSHOTS, ingest_sample
from server import Server, running_server

# After the whole capture (2026-11-21 20:42:45 to 20:43:34 UTC).
NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
OTHER = ClusterKey("team-b", "batch")
ARTIFACTS = Path(__file__).parent / "artifacts" / "reports"
PLOTS = (
    "plot-function-failures",
    "plot-job-failures",
    "plot-durations",
    "plot-errors",
    "plot-slowest-jobs",
    "plot-node-hours",
    "plot-concurrency",
    "plot-job-trend",
)


@pytest.fixture(scope="module")
def two_clusters(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The sample twice: as `default/demo`, and again as `team-b/batch`."""
    lake = ingest_sample(str(tmp_path_factory.mktemp("reports") / "lake"))
    assert not ingest_paths(lake, OTHER, [POSTS]).rejected
    jobs = (LIVE / SNAPSHOTS["jobs"]).read_bytes()
    store_snapshot(lake, OTHER, SESSION, "jobs", jobs, SNAPSHOT_NS)
    return lake


def all_time(lake: Lake, **scope: Any) -> ReportData:
    return report_data(lake, scope_of(NOW, None, **scope))


def by(table: Any, *keys: str) -> dict[Any, dict[str, Any]]:
    return {
        tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in table.to_pylist()
    }


# Independent computations: polars over the lake's views.


def view(lake: Lake, sql: str) -> pl.DataFrame:
    con = connect(lake)
    try:
        frame = con.sql(sql).pl()
    finally:
        con.close()
    # DuckDB names the zone of its session (e.g. Etc/UTC); compare in plain UTC.
    return frame.with_columns(pl.col(pl.Datetime).dt.convert_time_zone("UTC"))


def ended_attempts(lake: Lake) -> pl.DataFrame:
    """Task attempts that ended, drivers left out (the report's definition)."""
    tasks = view(
        lake,
        "SELECT namespace, cluster, session, job_id, func_or_class_name, type, state, "
        "start_time, end_time, error_type FROM tasks",
    )
    return tasks.filter(pl.col("type").ne_missing("DRIVER_TASK") & pl.col("end_time").is_not_null())


def seconds(column: str, since: str) -> pl.Expr:
    return (pl.col(column) - pl.col(since)).dt.total_microseconds() / 1e6


# The numbers.


def test_failure_counts_by_function(sample_lake: Lake) -> None:
    data = all_time(sample_lake)
    failures = by(data.function_failures, "function")
    # The capture's README: `flaky` fails all 3 attempts, Counter.crash 2 actor tasks.
    assert (failures["flaky"]["attempts"], failures["flaky"]["failed"]) == (3, 3)
    assert (failures["Counter.crash"]["attempts"], failures["Counter.crash"]["failed"]) == (2, 2)
    assert failures["flaky"]["failure_rate"] == 1.0
    assert data.totals["failed_attempts"] == 5
    assert data.totals["task_attempts"] == 279  # as many as the live API listed
    # Every function, against polars.
    expected = (
        ended_attempts(sample_lake)
        .group_by("func_or_class_name")
        .agg(attempts=pl.len(), failed=(pl.col("state") == "FAILED").sum())
    )
    assert {r["func_or_class_name"]: (r["attempts"], r["failed"]) for r in expected.to_dicts()} == {
        f: (r["attempts"], r["failed"]) for f, r in failures.items()
    }
    assert [r["function"] for r in data.function_failures.to_pylist()][:2] == [
        "flaky",
        "Counter.crash",
    ]


def test_failure_rate_over_time(sample_lake: Lake) -> None:
    data = all_time(sample_lake)
    assert data.bucket == dt.timedelta(seconds=1)  # the sample's tasks span ~25 s
    series = data.function_failure_series.to_pylist()
    assert {r["function"] for r in series} == {"flaky", "Counter.crash"}
    assert sum(r["failed"] for r in series if r["function"] == "flaky") == 3
    # The job view: each bucket's counts, against polars.
    attempts = ended_attempts(sample_lake).with_columns(bucket=pl.col("end_time").dt.truncate("1s"))
    expected = (
        attempts.filter(pl.col("job_id") == "01000000")
        .group_by("bucket")
        .agg(attempts=pl.len(), failed=(pl.col("state") == "FAILED").sum())
    )
    got = {r["bucket"]: (r["attempts"], r["failed"]) for r in data.job_failure_series.to_pylist()}
    assert got == {r["bucket"]: (r["attempts"], r["failed"]) for r in expected.to_dicts()}
    jobs = by(data.job_failures, "job_id")
    assert (jobs["01000000"]["attempts"], jobs["01000000"]["failed"]) == (248, 5)
    assert jobs["03000000"]["submission_id"] == "job-ok-1"


def test_duration_percentiles_match_polars(sample_lake: Lake) -> None:
    durations = by(all_time(sample_lake).durations, "function")
    expected = (
        ended_attempts(sample_lake)
        .filter(pl.col("start_time").is_not_null())
        .with_columns(seconds=seconds("end_time", "start_time"))
        .group_by("func_or_class_name")
        .agg(
            attempts=pl.len(),
            p50=pl.col("seconds").quantile(0.5, "linear"),
            p90=pl.col("seconds").quantile(0.9, "linear"),
            p99=pl.col("seconds").quantile(0.99, "linear"),
            max=pl.col("seconds").max(),
        )
    )
    assert len(expected) == len(durations) >= 6
    for want in expected.to_dicts():
        got = durations[want["func_or_class_name"]]
        assert got["attempts"] == want["attempts"]
        for q in ("p50", "p90", "p99", "max"):
            assert got[q] == pytest.approx(want[q], rel=1e-9, abs=1e-9), (got, q)
    assert durations["square"]["attempts"] == 215  # one of the 216 never reported RUNNING


def test_top_errors(sample_lake: Lake) -> None:
    data = all_time(sample_lake)
    types = {(r["source"], r["error_type"]): r["failures"] for r in data.error_types.to_pylist()}
    failed = ended_attempts(sample_lake).filter(pl.col("state") == "FAILED")
    expected = dict(failed.group_by("error_type").len().iter_rows())
    assert {t: n for (source, t), n in types.items() if source == "task"} == expected
    assert expected["TASK_EXECUTION_EXCEPTION"] == 3
    # job-fail-1 exits with code 3: its job error is there too.
    assert types[("job", "JOB_ENTRYPOINT_COMMAND_ERROR")] == 1
    top = data.error_messages.to_pylist()[0]
    assert (top["error_type"], top["message"], top["failures"], top["affected"]) == (
        "TASK_EXECUTION_EXCEPTION",
        "ValueError: flaky failure for 7",  # the traceback's last line
        3,
        "flaky",
    )


def test_slowest_jobs_and_job_trend(sample_lake: Lake) -> None:
    data = all_time(sample_lake)
    jobs = view(sample_lake, "SELECT job_id, status, start_time, end_time FROM jobs").filter(
        pl.col("end_time").is_not_null()
    )
    slowest = jobs.with_columns(seconds=seconds("end_time", "start_time")).sort(
        "seconds", descending=True
    )
    got = data.slowest_jobs.to_pylist()
    assert [(r["job_id"], r["seconds"]) for r in got] == [
        (r["job_id"], pytest.approx(r["seconds"])) for r in slowest.to_dicts()
    ]
    trend = data.job_trend.to_pylist()
    assert sum(r["succeeded"] for r in trend) == 2
    assert sum(r["failed"] for r in trend) == 1
    assert data.totals["jobs"] == 3 and data.totals["succeeded_jobs"] == 2


def running_at_once(intervals: list[tuple[dt.datetime, dt.datetime]]) -> tuple[int, float]:
    """The most intervals open at once (one ending as another starts: not both), and
    the mean over the span from the first start to the last end."""
    changes = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = most = 0
    for _, change in changes:
        running += change
        most = max(most, running)
    busy = sum((e - s).total_seconds() for s, e in intervals)
    span = max(e for _, e in intervals) - min(s for s, _ in intervals)
    return most, busy / span.total_seconds()


def test_node_hours_and_concurrency(sample_lake: Lake) -> None:
    (session,) = all_time(sample_lake).sessions.to_pylist()
    nodes = view(sample_lake, "SELECT start_time, end_time FROM nodes")
    assert nodes["end_time"].null_count() == 0  # both nodes died in the capture
    hours = nodes.select(seconds("end_time", "start_time").sum()).item() / 3600
    assert session["nodes"] == 2
    assert session["node_hours"] == pytest.approx(hours)
    assert session["cpu_hours"] == pytest.approx(2 * hours)  # 2 CPUs each
    runs = ended_attempts(sample_lake).filter(
        pl.col("start_time").is_not_null() & (pl.col("end_time") > pl.col("start_time"))
    )
    most, mean = running_at_once(list(runs.select("start_time", "end_time").iter_rows()))
    assert session["attempts_run"] == len(runs)
    assert session["max_running"] == most
    assert session["mean_running"] == pytest.approx(mean)
    assert 1 < most <= len(runs)


# Windows and filters.


def test_parse_since() -> None:
    assert parse_since("7d", NOW) == dt.timedelta(days=7)
    assert parse_since("12h", NOW) == dt.timedelta(hours=12)
    assert parse_since("30m", NOW) == dt.timedelta(minutes=30)
    assert parse_since("2026-11-21", NOW) == dt.timedelta(days=1)
    assert parse_since("2026-11-21T23:00:00+01:00", NOW) == dt.timedelta(hours=2)
    with pytest.raises(ValueError, match="not a duration or a time"):
        parse_since("yesterday", NOW)
    with pytest.raises(ValueError, match="after the end of the report"):
        parse_since("2026-12-01", NOW)


def test_since_covers_part_of_the_sample(sample_lake: Lake) -> None:
    start = dt.datetime(2026, 11, 21, 20, 43, tzinfo=dt.UTC)  # after the driver's tasks
    data = report_data(sample_lake, scope_of(NOW, NOW - start))
    later = ended_attempts(sample_lake).filter(pl.col("end_time") >= start)
    assert {r["function"]: r["attempts"] for r in data.function_failures.to_pylist()} == dict(
        later.group_by("func_or_class_name").len().iter_rows()
    )
    assert data.totals["failed_attempts"] == 0
    assert {r["job_id"] for r in data.slowest_jobs.to_pylist()} == {"03000000", "04000000"}
    (session,) = data.sessions.to_pylist()
    assert session["node_hours"] < all_time(sample_lake).sessions.to_pylist()[0]["node_hours"]
    page = render_report(sample_lake, since=NOW - start, namespace=None, cluster=None, now=NOW)
    assert "No task attempt failed in this window." in page


def test_window_without_data_gives_the_empty_page(sample_lake: Lake) -> None:
    later = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    page = render_report(
        sample_lake, since=dt.timedelta(days=7), namespace=None, cluster=None, now=later
    )
    assert 'id="no-data"' in page and "No data in this window" in page
    assert "<svg" not in page
    assert "From 2026-12-25 00:00:00 UTC to 2027-01-01 00:00:00 UTC" in page
    # Before the sample, too.
    early = dt.datetime(2026, 11, 21, 20, tzinfo=dt.UTC)
    assert 'id="no-data"' in render_report(
        sample_lake, since=dt.timedelta(hours=1), namespace=None, cluster=None, now=early
    )


def test_empty_lake_gives_the_empty_page(tmp_path: Path) -> None:
    empty = Lake(str(tmp_path / "empty"), create=True)
    page = render_report(empty, since=None, namespace=None, cluster=None, now=NOW)
    assert 'id="no-data"' in page
    assert "From the beginning of the lake to 2026-11-22 00:00:00 UTC" in page


def test_sessions_add_up_across_clusters(two_clusters: Lake, sample_lake: Lake) -> None:
    one = all_time(sample_lake)
    both = all_time(two_clusters)
    assert (both.totals["sessions"], both.totals["clusters"]) == (2, 2)
    failures = by(both.function_failures, "function")
    assert (failures["flaky"]["attempts"], failures["flaky"]["failed"]) == (6, 6)
    assert failures["flaky"]["sessions"] == 2
    for function, row in by(one.function_failures, "function").items():
        assert failures[function]["attempts"] == 2 * row["attempts"]
    durations, single = by(both.durations, "function"), by(one.durations, "function")
    for function, row in single.items():  # the same values twice: the same percentiles
        assert durations[function]["attempts"] == 2 * row["attempts"]
        assert durations[function]["p50"] == pytest.approx(row["p50"])
    sessions = by(both.sessions, "namespace", "cluster")
    assert set(sessions) == {("default", "demo"), ("team-b", "batch")}
    assert sessions["team-b", "batch"]["node_hours"] == pytest.approx(
        sessions["default", "demo"]["node_hours"]
    )
    # A job id is one job per session: 01000000 appears once for each cluster.
    assert [(r["namespace"], r["job_id"]) for r in both.job_failures.to_pylist()][:2] == [
        ("default", "01000000"),
        ("team-b", "01000000"),
    ]
    assert both.totals["jobs"] == 6


@pytest.mark.parametrize(
    "scope",
    [{"namespace": "team-b"}, {"cluster": "batch"}, {"namespace": "team-b", "cluster": "batch"}],
)
def test_namespace_and_cluster_filters(
    two_clusters: Lake, sample_lake: Lake, scope: dict[str, str]
) -> None:
    one, only = all_time(sample_lake), all_time(two_clusters, **scope)
    assert only.totals == one.totals
    assert only.function_failures == one.function_failures
    assert only.durations == one.durations
    assert {(r["namespace"], r["cluster"]) for r in only.sessions.to_pylist()} == {
        ("team-b", "batch")
    }
    page = render_report(
        two_clusters, since=None, now=NOW, **{"namespace": None, "cluster": None, **scope}
    )
    assert "team-b/batch" in page and "default/demo" not in page


def test_filter_matching_nothing_gives_the_empty_page(two_clusters: Lake) -> None:
    page = render_report(two_clusters, since=None, namespace="default", cluster="batch", now=NOW)
    assert 'id="no-data"' in page
    assert "namespace <code>default</code>, cluster <code>batch</code>" in page


# The page.


class Page(HTMLParser):
    """What a browser would see of the page: elements, attributes, each section's
    table rows; an end tag that closes anything but the innermost element fails."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.ids: list[str] = []
        self.open: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.section = ""
        self.row: list[str] | None = None
        self.cell: str | None = None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            self.attributes.append((tag, name, value or ""))
            if name == "id":
                self.ids.append(value or "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_startendtag(tag, attrs)
        if tag == "section":
            self.section = dict(attrs)["id"] or ""
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = ""
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (tag, self.open[-5:])
        self.open.pop()
        if tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.tables.setdefault(self.section, []).append(self.row)
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell += data


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    assert parsed.open == [], f"unclosed elements: {parsed.open}"
    return parsed


def test_page_shows_the_numbers_and_nothing_from_elsewhere(sample_lake: Lake) -> None:
    started = time.monotonic()
    page = render_report(sample_lake, since=None, namespace=None, cluster=None, now=NOW)
    took = time.monotonic() - started
    print(f"\nreport rendered in {took:.2f} s")
    assert took < 10, "the sample's report renders in about a second"
    parsed = parse(page)
    assert page.startswith("<!doctype html>")
    # Self-contained: no script, no fetched resource, no outside URL in any attribute.
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parsed.tags)
    for tag, name, value in parsed.attributes:
        assert "http:" not in value and "https:" not in value, (tag, name, value)
        assert not value.startswith("//"), (tag, name, value)
        if name in ("href", "xlink:href", "src"):
            assert value.startswith("#"), (tag, name, value)  # only links inside a figure
    assert len(parsed.ids) == len(set(parsed.ids)), "ids are unique across the figures"
    # The plots: inline SVG, their text kept as text.
    assert parsed.tags.count("svg") == len(PLOTS)
    assert set(PLOTS) <= set(parsed.ids)
    assert "failed attempts (%)" in page and "<text" in page
    assert "DejaVuSans-" not in page  # no glyphs turned into paths
    # The tables beside them.
    functions = {row[0]: row for row in parsed.tables["failures-by-function"]}
    assert functions["flaky"] == ["flaky", "3", "3", "100.0%", "1"]
    assert functions["Counter.crash"] == ["Counter.crash", "2", "2", "100.0%", "1"]
    durations = {row[0]: row for row in parsed.tables["durations"]}
    square = by(all_time(sample_lake).durations, "function")["square"]
    assert durations["square"][1] == "215"
    assert durations["square"][2] == f"{square['p50'] * 1000:.3g} ms"
    errors = [row for row in parsed.tables["errors"] if "ValueError: flaky failure for 7" in row]
    assert errors and errors[0][3] == "3"
    assert "job-fail-1" in {row[0] for row in parsed.tables["slowest-jobs"]}
    # Rendering is deterministic: the same page twice.
    assert render_report(sample_lake, since=None, namespace=None, cluster=None, now=NOW) == page


# Over HTTP, and in the browser.


@pytest.fixture(scope="module")
def report_server(two_clusters: Lake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(two_clusters.url, tmp_path_factory.mktemp("reports-serve")) as running:
        yield running


@pytest.mark.parametrize(
    ("params", "since", "namespace", "cluster"),
    [
        ({}, None, None, None),
        ({"since": "7d"}, dt.timedelta(days=7), None, None),
        ({"since": "2026-11-21", "namespace": "team-b"}, dt.timedelta(days=1), "team-b", None),
        ({"since": "30m", "cluster": "demo"}, dt.timedelta(minutes=30), None, "demo"),
    ],
)
def test_served_report_is_the_rendered_report(
    report_server: Server,
    two_clusters: Lake,
    params: dict[str, str],
    since: dt.timedelta | None,
    namespace: str | None,
    cluster: str | None,
) -> None:
    answer = httpx.get(
        f"{report_server.url}/lake/reports",
        params={**params, "until": NOW.isoformat()},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    expected = render_report(
        two_clusters, since=since, namespace=namespace, cluster=cluster, now=NOW
    )
    assert answer.text == expected


def test_served_report_refuses_bad_parameters(report_server: Server) -> None:
    for params, message in (
        ({"since": "yesterday"}, "since=&#x27;yesterday&#x27; is not a duration or a time"),
        ({"until": "tomorrow"}, "until=&#x27;tomorrow&#x27; is not an ISO time"),
    ):
        answer = httpx.get(f"{report_server.url}/lake/reports", params=params, timeout=60)
        assert answer.status_code == 400
        assert 'id="bad-request"' in answer.text and message in answer.text


def non_white_share(png: bytes) -> float:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    histogram = image.histogram()
    return 1 - sum(histogram[245:]) / (image.width * image.height)


def test_report_in_the_browser_without_javascript(report_server: Server, browser: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {ARTIFACTS}")
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, java_script_enabled=False
    )
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    try:
        url = f"{report_server.url}/lake/reports?until={NOW.isoformat().replace('+', '%2B')}"
        page.goto(url)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        assert page.title() == "raylake report"
        for plot in PLOTS:
            svg = page.locator(f"#{plot} svg")
            svg.scroll_into_view_if_needed()
            assert svg.is_visible(), plot
            box = svg.bounding_box()
            assert box["width"] > 300 and box["height"] > 100, (plot, box)
            shot = svg.screenshot(path=str(ARTIFACTS / f"{plot}.png"))
            assert non_white_share(shot) > 0.02, f"{plot} is drawn, not blank"
        # Axis labels are text a reader (and a search) can find.
        assert page.locator(
            "#plot-function-failures svg text", has_text="failed attempts (%)"
        ).is_visible()
        assert page.get_by_role("cell", name="flaky", exact=True).first.is_visible()

        page.goto(f"{report_server.url}/lake/reports?namespace=nobody")
        page.screenshot(path=str(ARTIFACTS / "empty.png"), full_page=True)
        assert page.locator("#no-data").is_visible()
    finally:
        context.close()
    assert requested and all(u.startswith(report_server.url) for u in requested), requested


def test_raylake_report_writes_the_page(sample_lake: Lake, tmp_path: Path) -> None:
    from raylake import main

    out = tmp_path / "report.html"
    assert main(["report", "--lake", sample_lake.url, "--out", str(out)]) == 0
    assert "flaky" in out.read_text()
    with pytest.raises(SystemExit, match="7d, 12h, 30m"):
        main(["report", "--lake", sample_lake.url, "--since", "soon", "--out", str(out)])
