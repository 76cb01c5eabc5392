"""The numbers of the cross-session report, computed by DuckDB over the lake-wide views.

A report covers a time window (`since` before its `now`, or all time up to `now`) and
optionally one namespace and one cluster. A task attempt belongs to the window when it
ended in it (its failure and duration count there); a job when it ended in it; a node or
a running attempt is clipped to the window (node-hours, concurrency). The window's rows
are first narrowed into small temporary tables (a few columns, no lists or maps), then
every figure is an aggregate over them: only aggregates ever reach Python.

Task attempts of drivers (`DRIVER_TASK`) are not tasks a user wrote and are left out.
Concurrency counts attempts that reported both a start and an end; a node that never
reported its death is counted up to the last time its session recorded.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from lake.store import Lake
from query.engine import connect

#: How many functions or jobs the over-time series follow (the ones with most failures).
SERIES_LIMIT = 8
#: How many slowest jobs, and error messages, the report lists.
TOP_LIMIT = 10

# Bucket widths for the over-time figures, the smallest giving at most MAX_BUCKETS.
BUCKET_WIDTHS = tuple(
    dt.timedelta(seconds=s)
    for s in (1, 5, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
) + tuple(dt.timedelta(days=d) for d in (1, 7, 30))
MAX_BUCKETS = 48

_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


@dataclass(frozen=True)
class Scope:
    """What a report covers: the window [start, end) (start None: from the beginning),
    and the namespace and cluster it is restricted to (None: all)."""

    start: dt.datetime | None
    end: dt.datetime
    namespace: str | None = None
    cluster: str | None = None


def parse_time(text: str) -> dt.datetime:
    """An ISO date or time; UTC unless it names its zone."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def parse_since(text: str, now: dt.datetime) -> dt.timedelta:
    """`7d`, `12h`, `30m`, or an ISO date or time (how long before `now` it was)."""
    if match := re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text):
        return dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        moment = parse_time(text.strip())
    except ValueError:
        raise ValueError(
            f"since={text!r} is not a duration or a time: use 7d, 12h, 30m or an ISO date "
            "such as 2026-11-21"
        ) from None
    if moment > now:
        raise ValueError(f"since={text!r} is after the end of the report ({now.isoformat()})")
    return now - moment


def scope_of(
    now: dt.datetime,
    since: dt.timedelta | None,
    namespace: str | None = None,
    cluster: str | None = None,
) -> Scope:
    return Scope(now - since if since is not None else None, now, namespace, cluster)


def bucket_width(span: dt.timedelta) -> dt.timedelta:
    """The width of the time buckets for data spread over `span`."""
    for width in BUCKET_WIDTHS:
        if span / width <= MAX_BUCKETS:
            return width
    return BUCKET_WIDTHS[-1]


@dataclass(frozen=True)
class ReportData:
    """Every table of one report; times are UTC, durations in seconds."""

    scope: Scope
    bucket: dt.timedelta
    totals: dict[str, Any]
    function_failures: pa.Table
    function_failure_series: pa.Table
    job_failures: pa.Table
    job_failure_series: pa.Table
    durations: pa.Table
    error_types: pa.Table
    error_messages: pa.Table
    slowest_jobs: pa.Table
    sessions: pa.Table
    job_trend: pa.Table

    @property
    def empty(self) -> bool:
        return not (self.totals["task_attempts"] or self.totals["jobs"] or self.totals["sessions"])


_SCOPE = """
    ($namespace IS NULL OR namespace = $namespace)
    AND ($cluster IS NULL OR cluster = $cluster)
"""

# The window's task attempts: those that ended in it or ran during it.
_REPORT_TASKS = f"""
CREATE OR REPLACE TEMP TABLE report_tasks AS
SELECT namespace, cluster, session, job_id,
       coalesce(func_or_class_name, '') AS function,
       state, start_time, end_time,
       end_time < $end AS ended_in_window,
       error_type,
       -- The last line of a traceback names the exception: what tells failures apart.
       CASE WHEN state = 'FAILED' THEN left(trim(regexp_extract(
           rtrim(error_message, chr(10) || ' '), '[^\\n]*$')), 200) END AS error_summary
FROM tasks
WHERE type IS DISTINCT FROM 'DRIVER_TASK'
  AND end_time IS NOT NULL
  AND ($start IS NULL OR end_time >= $start)
  AND coalesce(start_time, end_time) < $end
  AND {_SCOPE}
"""

_REPORT_JOBS = f"""
CREATE OR REPLACE TEMP TABLE report_jobs AS
SELECT namespace, cluster, session, job_id, submission_id, type, status, entrypoint,
       message, error_type, start_time, end_time,
       end_time IS NOT NULL AND end_time < $end
           AND ($start IS NULL OR end_time >= $start) AS ended_in_window
FROM jobs
WHERE ($start IS NULL OR end_time IS NULL OR end_time >= $start)
  AND (start_time IS NULL OR start_time < $end)
  AND {_SCOPE}
"""

_REPORT_NODES = f"""
CREATE OR REPLACE TEMP TABLE report_nodes AS
SELECT namespace, cluster, session, node_id, resources_total['CPU'] AS cpus,
       start_time, end_time
FROM nodes
WHERE start_time IS NOT NULL
  AND ($start IS NULL OR end_time IS NULL OR end_time >= $start)
  AND start_time < $end
  AND {_SCOPE}
"""

_TOTALS = """
WITH sessions AS (
    SELECT namespace, cluster, session FROM report_tasks WHERE ended_in_window
    UNION SELECT namespace, cluster, session FROM report_jobs
    UNION SELECT namespace, cluster, session FROM report_nodes
)
SELECT
    (SELECT count(*) FROM sessions) AS sessions,
    (SELECT count(DISTINCT (namespace, cluster)) FROM sessions) AS clusters,
    (SELECT count(*) FROM report_tasks WHERE ended_in_window) AS task_attempts,
    (SELECT count(*) FROM report_tasks WHERE ended_in_window AND state = 'FAILED')
        AS failed_attempts,
    (SELECT count(*) FROM report_jobs WHERE ended_in_window) AS jobs,
    (SELECT count(*) FROM report_jobs WHERE ended_in_window AND status = 'SUCCEEDED')
        AS succeeded_jobs,
    (SELECT min(end_time) FROM (
        SELECT end_time FROM report_tasks WHERE ended_in_window
        UNION ALL SELECT end_time FROM report_jobs WHERE ended_in_window)) AS first_end,
    (SELECT max(end_time) FROM (
        SELECT end_time FROM report_tasks WHERE ended_in_window
        UNION ALL SELECT end_time FROM report_jobs WHERE ended_in_window)) AS last_end
"""

_FUNCTION_FAILURES = """
SELECT function,
       count(*) AS attempts,
       count(*) FILTER (state = 'FAILED') AS failed,
       count(*) FILTER (state = 'FAILED') / count(*) AS failure_rate,
       count(DISTINCT (namespace, cluster, session)) AS sessions
FROM report_tasks
WHERE ended_in_window
GROUP BY function
ORDER BY failed DESC, attempts DESC, function
"""

_FUNCTION_FAILURE_SERIES = """
WITH followed AS (
    SELECT function FROM report_tasks
    WHERE ended_in_window AND state = 'FAILED'
    GROUP BY function
    ORDER BY count(*) DESC, function
    LIMIT $limit
)
SELECT function,
       time_bucket(to_microseconds($bucket), end_time) AS bucket,
       count(*) AS attempts,
       count(*) FILTER (state = 'FAILED') AS failed,
       count(*) FILTER (state = 'FAILED') / count(*) AS failure_rate
FROM report_tasks JOIN followed USING (function)
WHERE ended_in_window
GROUP BY ALL
ORDER BY function, bucket
"""

_JOB_FAILURES = """
SELECT t.namespace, t.cluster, t.session, t.job_id, j.submission_id, j.entrypoint,
       j.status,
       count(*) AS attempts,
       count(*) FILTER (t.state = 'FAILED') AS failed,
       count(*) FILTER (t.state = 'FAILED') / count(*) AS failure_rate
FROM report_tasks t
LEFT JOIN report_jobs j USING (namespace, cluster, session, job_id)
WHERE t.ended_in_window
GROUP BY ALL
ORDER BY failed DESC, attempts DESC, t.namespace, t.cluster, t.session, t.job_id
"""

_JOB_FAILURE_SERIES = """
WITH followed AS (
    SELECT namespace, cluster, session, job_id FROM report_tasks
    WHERE ended_in_window AND state = 'FAILED'
    GROUP BY ALL
    ORDER BY count(*) DESC, namespace, cluster, session, job_id
    LIMIT $limit
)
SELECT t.namespace, t.cluster, t.session, t.job_id, j.submission_id,
       time_bucket(to_microseconds($bucket), t.end_time) AS bucket,
       count(*) AS attempts,
       count(*) FILTER (t.state = 'FAILED') AS failed,
       count(*) FILTER (t.state = 'FAILED') / count(*) AS failure_rate
FROM report_tasks t
JOIN followed USING (namespace, cluster, session, job_id)
LEFT JOIN report_jobs j USING (namespace, cluster, session, job_id)
WHERE t.ended_in_window
GROUP BY ALL
ORDER BY t.namespace, t.cluster, t.session, t.job_id, bucket
"""

_DURATIONS = """
SELECT function,
       count(*) AS attempts,
       quantile_cont(seconds, 0.5) AS p50,
       quantile_cont(seconds, 0.9) AS p90,
       quantile_cont(seconds, 0.99) AS p99,
       max(seconds) AS max
FROM (
    SELECT function, epoch(end_time - start_time) AS seconds
    FROM report_tasks
    WHERE ended_in_window AND start_time IS NOT NULL
)
GROUP BY function
ORDER BY attempts DESC, function
"""

# Failed task attempts and failed jobs, side by side.
_ERRORS = """
CREATE OR REPLACE TEMP VIEW report_errors AS
SELECT 'task' AS source, coalesce(nullif(error_type, ''), '(none)') AS error_type,
       coalesce(error_summary, '') AS message, function AS what, end_time
FROM report_tasks
WHERE ended_in_window AND state = 'FAILED'
UNION ALL
SELECT 'job', coalesce(nullif(error_type, ''), '(none)'),
       left(trim(regexp_extract(rtrim(coalesce(message, ''), chr(10) || ' '), '[^\\n]*$')), 200),
       coalesce(submission_id, job_id), end_time
FROM report_jobs
WHERE ended_in_window AND status = 'FAILED'
"""

_ERROR_TYPES = """
SELECT source, error_type, count(*) AS failures,
       string_agg(DISTINCT what, ', ' ORDER BY what) AS affected
FROM report_errors
GROUP BY ALL
ORDER BY failures DESC, source DESC, error_type
"""

_ERROR_MESSAGES = """
SELECT source, error_type, message, count(*) AS failures,
       string_agg(DISTINCT what, ', ' ORDER BY what) AS affected,
       max(end_time) AS last_seen
FROM report_errors
GROUP BY ALL
ORDER BY failures DESC, source DESC, error_type, message
LIMIT $limit
"""

_SLOWEST_JOBS = """
SELECT namespace, cluster, session, job_id, submission_id, type, status, entrypoint,
       start_time, end_time, epoch(end_time - start_time) AS seconds
FROM report_jobs
WHERE ended_in_window AND start_time IS NOT NULL
ORDER BY seconds DESC, namespace, cluster, session, job_id
LIMIT $limit
"""

_SESSIONS = """
WITH last_seen AS (
    SELECT namespace, cluster, session, max(t) AS last_time FROM (
        SELECT namespace, cluster, session, greatest(start_time, end_time) AS t
        FROM report_nodes
        UNION ALL SELECT namespace, cluster, session, end_time FROM report_tasks
        UNION ALL SELECT namespace, cluster, session, greatest(start_time, end_time)
        FROM report_jobs
    )
    GROUP BY ALL
),
node_spans AS (
    SELECT namespace, cluster, session, n.cpus,
           greatest(n.start_time, coalesce($start, n.start_time)) AS t0,
           least(coalesce(n.end_time, l.last_time), $end) AS t1
    FROM report_nodes n JOIN last_seen l USING (namespace, cluster, session)
),
usage AS (
    SELECT namespace, cluster, session,
           count(*) AS nodes,
           sum(epoch(t1 - t0)) / 3600 AS node_hours,
           sum(epoch(t1 - t0) * coalesce(cpus, 0)) / 3600 AS cpu_hours
    FROM node_spans
    WHERE t1 > t0
    GROUP BY ALL
),
runs AS (
    SELECT namespace, cluster, session,
           greatest(start_time, coalesce($start, start_time)) AS t0,
           least(end_time, $end) AS t1
    FROM report_tasks
    WHERE start_time IS NOT NULL AND end_time > start_time
),
changes AS (
    SELECT namespace, cluster, session, t0 AS t, 1 AS change FROM runs WHERE t1 > t0
    UNION ALL
    SELECT namespace, cluster, session, t1 AS t, -1 AS change FROM runs WHERE t1 > t0
),
running AS (
    -- An attempt that ends as another starts does not overlap it: ends count first.
    SELECT namespace, cluster, session,
           sum(change) OVER (
               PARTITION BY namespace, cluster, session ORDER BY t, change
               ROWS UNBOUNDED PRECEDING) AS running
    FROM changes
),
peaks AS (
    SELECT namespace, cluster, session, max(running) AS max_running
    FROM running GROUP BY ALL
),
busy AS (
    SELECT namespace, cluster, session,
           count(*) AS attempts,
           min(t0) AS first_start,
           max(t1) AS last_end,
           -- Mean over the span from the first start to the last end.
           sum(epoch(t1 - t0)) / nullif(epoch(max(t1) - min(t0)), 0) AS mean_running
    FROM runs
    WHERE t1 > t0
    GROUP BY ALL
)
SELECT namespace, cluster, session,
       coalesce(u.nodes, 0) AS nodes,
       coalesce(u.node_hours, 0) AS node_hours,
       coalesce(u.cpu_hours, 0) AS cpu_hours,
       coalesce(b.attempts, 0) AS attempts_run,
       coalesce(p.max_running, 0)::BIGINT AS max_running,
       coalesce(b.mean_running, 0) AS mean_running,
       b.first_start, b.last_end
FROM usage u
FULL OUTER JOIN busy b USING (namespace, cluster, session)
FULL OUTER JOIN peaks p USING (namespace, cluster, session)
ORDER BY node_hours DESC, namespace, cluster, session
"""

_JOB_TREND = """
SELECT time_bucket(to_microseconds($bucket), end_time) AS bucket,
       count(*) AS jobs,
       count(*) FILTER (status = 'SUCCEEDED') AS succeeded,
       count(*) FILTER (status = 'FAILED') AS failed,
       count(*) FILTER (status = 'STOPPED') AS stopped,
       count(*) FILTER (status NOT IN ('SUCCEEDED', 'FAILED', 'STOPPED')) AS other,
       count(*) FILTER (status = 'SUCCEEDED') / count(*) AS success_rate
FROM report_jobs
WHERE ended_in_window
GROUP BY bucket
ORDER BY bucket
"""


def _scope_params(scope: Scope) -> dict[str, Any]:
    return {
        "start": scope.start,
        "end": scope.end,
        "namespace": scope.namespace,
        "cluster": scope.cluster,
    }


def _table(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> pa.Table:
    table: pa.Table = con.sql(sql, params=params or {}).to_arrow_table()
    return table


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters a statement names (DuckDB refuses unused ones)."""
    return {k: v for k, v in params.items() if f"${k}" in sql}


def prepare(con: duckdb.DuckDBPyConnection, scope: Scope) -> None:
    """Narrow the scope's rows into the report's temporary tables."""
    params = _scope_params(scope)
    for sql in (_REPORT_TASKS, _REPORT_JOBS, _REPORT_NODES, _ERRORS):
        con.execute(sql, _used(sql, params))


def totals(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    row: dict[str, Any] = _table(con, _TOTALS).to_pylist()[0]
    return row


def function_failures(con: duckdb.DuckDBPyConnection) -> pa.Table:
    return _table(con, _FUNCTION_FAILURES)


def function_failure_series(con: duckdb.DuckDBPyConnection, bucket: dt.timedelta) -> pa.Table:
    return _table(con, _FUNCTION_FAILURE_SERIES, {"bucket": _micros(bucket), "limit": SERIES_LIMIT})


def job_failures(con: duckdb.DuckDBPyConnection) -> pa.Table:
    return _table(con, _JOB_FAILURES)


def job_failure_series(con: duckdb.DuckDBPyConnection, bucket: dt.timedelta) -> pa.Table:
    return _table(con, _JOB_FAILURE_SERIES, {"bucket": _micros(bucket), "limit": SERIES_LIMIT})


def durations(con: duckdb.DuckDBPyConnection) -> pa.Table:
    return _table(con, _DURATIONS)


def error_types(con: duckdb.DuckDBPyConnection) -> pa.Table:
    return _table(con, _ERROR_TYPES)


def error_messages(con: duckdb.DuckDBPyConnection) -> pa.Table:
    return _table(con, _ERROR_MESSAGES, {"limit": TOP_LIMIT})


def slowest_jobs(con: duckdb.DuckDBPyConnection) -> pa.Table:
    return _table(con, _SLOWEST_JOBS, {"limit": TOP_LIMIT})


def sessions(con: duckdb.DuckDBPyConnection, scope: Scope) -> pa.Table:
    return _table(con, _SESSIONS, {"start": scope.start, "end": scope.end})


def job_trend(con: duckdb.DuckDBPyConnection, bucket: dt.timedelta) -> pa.Table:
    return _table(con, _JOB_TREND, {"bucket": _micros(bucket)})


def _micros(width: dt.timedelta) -> int:
    return width // dt.timedelta(microseconds=1)


def collect(con: duckdb.DuckDBPyConnection, scope: Scope) -> ReportData:
    """Every table of the report, from a connection with the lake's views."""
    con.execute("SET TimeZone = 'UTC'")  # time buckets fall on UTC boundaries
    prepare(con, scope)
    counts = totals(con)
    span = counts["last_end"] - counts["first_end"] if counts["first_end"] else dt.timedelta(0)
    bucket = bucket_width(span)
    return ReportData(
        scope=scope,
        bucket=bucket,
        totals=counts,
        function_failures=function_failures(con),
        function_failure_series=function_failure_series(con, bucket),
        job_failures=job_failures(con),
        job_failure_series=job_failure_series(con, bucket),
        durations=durations(con),
        error_types=error_types(con),
        error_messages=error_messages(con),
        slowest_jobs=slowest_jobs(con),
        sessions=sessions(con, scope),
        job_trend=job_trend(con, bucket),
    )


def report_data(lake: Lake, scope: Scope) -> ReportData:
    """The report of `scope`, on a connection of its own (its temporary tables die
    with it)."""
    con = connect(lake)
    try:
        return collect(con, scope)
    finally:
        con.close()
