"""The SQL console: `/api/lake/sql` and `/api/lake/tables` over real HTTP, and the
read-only check (query/console.py) against a corpus of hostile queries.

Every hostile query must be refused with its code before DuckDB runs it. The proof of
"before": the console's DuckDB may write under the lake's data directories (DuckDB's
`allowed_directories` allows writes too; the control test shows it), so the hostile
queries that would write a file there must leave no file.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.store import Lake
from query.console import CODES, FUNCTIONS, QueryError, check_query, connect_console, execute
from query.engine import connect, view_names
from query.view_docs import COLUMNS, SHARED, VIEWS

from conftest import CLUSTER, HEAD_NODE, SESSION, WORKER_NODE, ingest_sample, live
from s3_server import FAKE_AWS_ENV, create_bucket, fake_aws_env, moto_server
from server import running_server

# --- the corpus -------------------------------------------------------------------------

# (category, query, code). `{events}` is the lake's events directory, where the console's
# DuckDB itself would let a write through.
HOSTILE: list[tuple[str, str, str]] = [
    # More than one statement.
    ("statements", "SELECT 1; SELECT 2", "not_read_only"),
    ("statements", "SELECT count(*) FROM tasks; DROP VIEW tasks", "not_read_only"),
    ("statements", "SELECT 1; COPY (SELECT 1) TO '{events}/multi.csv'", "not_read_only"),
    ("statements", "SELECT 1 -- x\n; COPY (SELECT 1) TO '{events}/line.csv'", "not_read_only"),
    ("statements", "SELECT 1 /* ; */ ; COPY (SELECT 1) TO '{events}/block.csv'", "not_read_only"),
    ("statements", "SELECT ';'; ATTACH '{events}/after.duckdb'", "not_read_only"),
    # Writes and DDL.
    ("write", "CREATE TABLE pwned AS SELECT * FROM tasks", "not_read_only"),
    ("write", "CREATE OR REPLACE VIEW tasks AS SELECT 1 AS x", "not_read_only"),
    ("write", "DROP VIEW tasks", "not_read_only"),
    ("write", "INSERT INTO tasks SELECT * FROM tasks", "not_read_only"),
    ("write", "UPDATE tasks SET state = 'X'", "not_read_only"),
    ("write", "DELETE FROM tasks", "not_read_only"),
    ("write", "ALTER VIEW tasks RENAME TO t2", "not_read_only"),
    ("write", "CREATE MACRO evil(x) AS x", "not_read_only"),
    ("write", "CREATE TEMP TABLE t AS SELECT 1", "not_read_only"),
    ("write", "WITH d AS (DELETE FROM tasks RETURNING *) SELECT * FROM d", "not_read_only"),
    (
        "write",
        "WITH i AS (INSERT INTO tasks SELECT * FROM tasks RETURNING *) SELECT 1",
        "not_read_only",
    ),
    ("write", "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", "not_read_only"),
    ("write", "BEGIN TRANSACTION", "not_read_only"),
    ("write", "CHECKPOINT", "not_read_only"),
    # COPY, EXPORT, ATTACH, INSTALL/LOAD, SET/PRAGMA and other commands.
    (
        "command",
        "COPY (SELECT * FROM tasks) TO '{events}/copy.parquet' (FORMAT parquet)",
        "not_read_only",
    ),
    ("command", "copy tasks to '{events}/lower.csv'", "not_read_only"),
    ("command", "EXPORT DATABASE '{events}/export'", "not_read_only"),
    ("command", "ATTACH '{events}/attached.duckdb' AS evil", "not_read_only"),
    ("command", "INSTALL httpfs", "not_read_only"),
    ("command", "LOAD httpfs", "not_read_only"),
    ("command", "FORCE INSTALL httpfs FROM 'http://127.0.0.1:9/'", "not_read_only"),
    ("command", "SET enable_external_access = true", "not_read_only"),
    ("command", "SET lock_configuration = false", "not_read_only"),
    ("command", "RESET memory_limit", "not_read_only"),
    ("command", "PRAGMA enable_profiling", "not_read_only"),
    ("command", "CALL duckdb_settings()", "not_read_only"),
    ("command", "EXPLAIN SELECT 1", "not_read_only"),
    ("command", "DESCRIBE tasks", "not_read_only"),
    ("command", "SUMMARIZE tasks", "not_read_only"),
    ("command", "SHOW TABLES", "not_read_only"),
    ("command", "USE memory", "not_read_only"),
    ("command", "SELECT * FROM (DESCRIBE tasks)", "not_read_only"),
    # Files and URLs: table functions, `FROM 'path'`, in every position.
    ("files", "SELECT * FROM 'file.parquet'", "unknown_table"),
    ("files", "SELECT * FROM '/etc/passwd'", "unknown_table"),
    ("files", "SELECT * FROM '{events}/task_lifecycle'", "unknown_table"),
    ("files", "SELECT * FROM 'https://example.com/data.csv'", "unknown_table"),
    ("files", "SELECT * FROM tasks JOIN 's3://other-bucket/x.parquet' ON true", "unknown_table"),
    ("files", "SELECT * FROM read_parquet('{events}/*/*/*/*/*.parquet')", "forbidden_function"),
    ("files", "SELECT * FROM read_csv('/etc/passwd')", "forbidden_function"),
    ("files", "SELECT * FROM read_text('/etc/hostname')", "forbidden_function"),
    ("files", "SELECT * FROM read_blob('/proc/self/environ')", "forbidden_function"),
    ("files", "SELECT * FROM glob('/*')", "forbidden_function"),
    ("files", "SELECT * FROM read_json_auto('https://example.com/x.json')", "forbidden_function"),
    ("files", "SELECT * FROM parquet_metadata('{events}/x.parquet')", "forbidden_function"),
    (
        "files",
        "WITH f AS (SELECT * FROM read_parquet('/tmp/x.parquet')) SELECT * FROM f",
        "forbidden_function",
    ),
    (
        "files",
        "SELECT * FROM tasks WHERE name IN (SELECT content FROM read_text('/etc/passwd'))",
        "forbidden_function",
    ),
    (
        "files",
        "SELECT * FROM tasks, LATERAL (SELECT * FROM read_csv('/etc/passwd'))",
        "forbidden_function",
    ),
    ("files", "SELECT (SELECT count(*) FROM glob('/*'))", "forbidden_function"),
    ("files", "SELECT read_text('/etc/passwd')", "forbidden_function"),
    ("files", "SELECT * FROM read_csv('/et' || 'c/passwd')", "forbidden_function"),
    ("files", "SELECT * FROM read_csv(concat('/etc', '/passwd'))", "forbidden_function"),
    ("files", "SELECT * FROM query('SELECT 42')", "forbidden_function"),
    ("files", "SELECT * FROM query_table('tasks')", "forbidden_function"),
    (
        "files",
        "SELECT task_id FROM tasks UNION ALL SELECT content FROM read_text('/etc/passwd')",
        "forbidden_function",
    ),
    ("files", "FROM read_text('/etc/passwd')", "forbidden_function"),
    ("files", "SELECT * FROM ReAd_TeXt('/etc/passwd')", "forbidden_function"),
    ("files", "SELECT * FROM \"read_text\"('/etc/passwd')", "forbidden_function"),
    ("files", "SELECT/**/*/**/FROM/**/read_text('/etc/passwd')", "forbidden_function"),
    (
        "files",
        "SELECT * FROM tasks WHERE EXISTS "
        "(WITH x AS (SELECT * FROM read_blob('/')) SELECT 1 FROM x)",
        "forbidden_function",
    ),
    # Functions that reveal the environment or the settings, or change state.
    ("system", "SELECT getenv('HOME')", "forbidden_function"),
    ("system", "SELECT 'HOME'.getenv()", "forbidden_function"),
    ("system", "SELECT current_setting('allowed_directories')", "forbidden_function"),
    ("system", "SELECT * FROM duckdb_settings()", "forbidden_function"),
    ("system", "SELECT * FROM duckdb_extensions()", "forbidden_function"),
    ("system", "SELECT * FROM duckdb_secrets()", "forbidden_function"),
    ("system", "SELECT * FROM pragma_version()", "forbidden_function"),
    ("system", "SELECT version()", "forbidden_function"),
    ("system", "SELECT platform()", "forbidden_function"),
    ("system", "SELECT user_agent()", "forbidden_function"),
    ("system", "SELECT current_query()", "forbidden_function"),
    ("system", "SELECT pg_get_viewdef('tasks')", "forbidden_function"),
    ("system", "SELECT nextval('seq')", "forbidden_function"),
    (
        "system",
        "SELECT json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
        "forbidden_function",
    ),
    ("system", "SELECT list_transform([1], lambda x: getenv('HOME'))", "forbidden_function"),
    (
        "system",
        "SELECT count(*) FILTER (WHERE current_setting('threads') > 0) FROM tasks",
        "forbidden_function",
    ),
    ("system", "SELECT main.to_us(now())", "forbidden_function"),
    # Tables that are not the lake's views.
    ("tables", "SELECT * FROM duckdb_tables", "unknown_table"),
    ("tables", "SELECT * FROM information_schema.tables", "unknown_table"),
    ("tables", "SELECT * FROM pg_catalog.pg_class", "unknown_table"),
    ("tables", "SELECT * FROM sqlite_master", "unknown_table"),
    ("tables", "SELECT * FROM main.tasks", "unknown_table"),
    (
        "tables",
        "SELECT * FROM (WITH duckdb_tables AS (SELECT 1) SELECT 1), duckdb_tables",
        "unknown_table",
    ),
    (
        "tables",
        "WITH a AS (SELECT * FROM duckdb_views), duckdb_views AS (SELECT 1) SELECT * FROM a",
        "unknown_table",
    ),
    ("tables", 'SELECT * FROM "tasks; DROP VIEW tasks"', "unknown_table"),
    ("tables", "SELECT * FROM lake", "unknown_table"),
]

# Queries in other dialects, and what the same question asks in DuckDB's.
DIALECTS = [
    (
        "trino",
        "SELECT approx_distinct(task_id) AS ids, "
        "max(date_diff('millisecond', creation_time, end_time)) AS longest_ms FROM tasks",
        "SELECT approx_count_distinct(task_id) AS ids, "
        "max(date_diff('millisecond', creation_time, end_time)) AS longest_ms FROM tasks",
    ),
    (
        "spark",
        "SELECT `state`, count(1) AS n FROM tasks GROUP BY `state` ORDER BY n DESC, `state`",
        "SELECT state, count(1) AS n FROM tasks GROUP BY state ORDER BY n DESC, state",
    ),
    (
        "postgres",
        "SELECT name::text AS name, count(*) FILTER (WHERE state = 'FAILED') AS failed "
        "FROM tasks GROUP BY 1 HAVING count(*) FILTER (WHERE state = 'FAILED') > 0 ORDER BY 1",
        "SELECT name, count(*) FILTER (state = 'FAILED') AS failed FROM tasks "
        "GROUP BY ALL HAVING failed > 0 ORDER BY 1",
    ),
]

SLOW = (
    "SELECT count(*) FROM tasks a, tasks b, tasks c, tasks d "
    "WHERE a.task_id || b.task_id || c.task_id || d.task_id = 'x'"
)


def test_corpus_covers_every_category() -> None:
    by_category = Counter(category for category, _, _ in HOSTILE)
    assert len(HOSTILE) >= 50, by_category
    assert set(by_category) == {"statements", "write", "command", "files", "system", "tables"}
    assert {code for _, _, code in HOSTILE} <= set(CODES)


# --- in process: the check, and the proof it comes before execution ---------------------


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """This module's own sample lake (the control test writes into it)."""
    return ingest_sample(str(tmp_path_factory.mktemp("console") / "lake"))


@pytest.fixture(scope="module")
def console(lake: Lake) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect_console(lake)
    yield con
    con.close()


def _hostile(lake: Lake) -> list[tuple[str, str, str]]:
    events = Path(lake.root, "events").as_posix()
    return [(c, sql.replace("{events}", events), code) for c, sql, code in HOSTILE]


def _files(lake: Lake) -> set[Path]:
    return set(Path(lake.root).rglob("*"))


def test_the_lockdown_alone_would_let_a_write_into_the_lake(
    lake: Lake, console: duckdb.DuckDBPyConnection
) -> None:
    """The control: DuckDB's own lockdown allows writes under its allowed directories,
    so only the check keeps COPY out."""
    target = Path(lake.root, "events", "control.csv")
    console.cursor().execute(f"COPY (SELECT 1) TO '{target.as_posix()}'")
    assert target.exists()
    target.unlink()
    with pytest.raises(duckdb.PermissionException):
        console.cursor().execute("COPY (SELECT 1) TO '/tmp/raylake-console-control.csv'")
    with pytest.raises(duckdb.Error, match="lock"):
        console.cursor().execute("SET enable_external_access = true")


def test_hostile_queries_are_refused_before_they_run(
    lake: Lake, console: duckdb.DuckDBPyConnection
) -> None:
    before = _files(lake)
    wrong = []
    for category, sql, code in _hostile(lake):
        started = time.monotonic()
        try:
            execute(console, sql, timeout=5)
        except QueryError as exc:
            if exc.code != code:
                wrong.append((category, sql, exc.code, str(exc)))
        else:
            wrong.append((category, sql, "ran", ""))
        assert time.monotonic() - started < 1, sql
    assert not wrong, "\n".join(map(str, wrong))
    assert _files(lake) == before, "a hostile query wrote into the lake"


def test_refusals_name_the_reason() -> None:
    with pytest.raises(QueryError, match=r"unknown table 'nope'.*tasks") as exc:
        check_query("SELECT * FROM nope")
    assert exc.value.code == "unknown_table"
    with pytest.raises(QueryError, match=r"files or URLs \('/etc/passwd'\)"):
        check_query("SELECT * FROM '/etc/passwd'")
    with pytest.raises(QueryError, match=r"function getenv\(\) is not allowed"):
        check_query("SELECT getenv('HOME')")
    with pytest.raises(QueryError, match=r"table function read_csv\(\) is not allowed"):
        check_query("SELECT * FROM read_csv('x')")
    with pytest.raises(QueryError, match="not INSERT") as exc:
        check_query("INSERT INTO tasks SELECT * FROM tasks")
    assert exc.value.code == "not_read_only"
    with pytest.raises(QueryError) as exc:
        check_query("SELEC 1")
    assert exc.value.code == "syntax_error"
    for dialect in ("duckdb", "trino"):  # sqlglot's tokenizer fails before its parser
        with pytest.raises(QueryError) as exc:
            check_query('SELECT "unclosed FROM tasks', dialect)
        assert exc.value.code == "syntax_error"


def test_function_allowlist_names_real_functions_and_no_system_one(
    console: duckdb.DuckDBPyConnection,
) -> None:
    known = {
        name.lower()
        for (name,) in console.cursor()
        .execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() "
            "WHERE function_type IN ('scalar', 'aggregate', 'window', 'macro') "
            "OR function_name = 'unnest'"  # SELECT unnest(x): a table function in DuckDB's list
        )
        .fetchall()
    }
    assert FUNCTIONS - known == set()
    system = {
        "getenv", "current_setting", "version", "platform", "user_agent", "current_query",
        "json_execute_serialized_sql", "json_serialize_plan", "pg_get_viewdef", "nextval",
        "setseed", "getvariable", "database_list", "read_text", "read_parquet", "glob",
        "query", "sleep_ms", "pg_sleep", "write_log", "current_user", "extension_versions",
    }  # fmt: skip
    assert FUNCTIONS & system == set()


def test_every_column_of_every_view_is_described(lake: Lake) -> None:
    con = connect(lake)
    described = set()
    for view in view_names():
        assert VIEWS.get(view), f"view {view} has no description"
        for column, _type, *_ in con.execute(f'DESCRIBE "{view}"').fetchall():
            assert COLUMNS.get(view, {}).get(column) or SHARED.get(column), (view, column)
            described.add((view, column))
    stale = {(v, c) for v, columns in COLUMNS.items() for c in columns} - described
    assert not stale, f"described but gone: {stale}"
    assert set(VIEWS) == set(view_names())
    shared_used = {c for _, c in described}
    assert set(SHARED) <= shared_used, set(SHARED) - shared_used


# --- over HTTP: the real server ---------------------------------------------------------


def _post(api: httpx.Client, sql: str, **options: Any) -> httpx.Response:
    return api.post("/api/lake/sql", json={"sql": sql, **options})


def _answer(api: httpx.Client, sql: str, **options: Any) -> dict[str, Any]:
    reply = _post(api, sql, **options)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["result"] is True and body["msg"] == ""
    answer: dict[str, Any] = body["data"]
    return answer


def _rows(api: httpx.Client, sql: str, **options: Any) -> list[list[Any]]:
    rows: list[list[Any]] = _answer(api, sql, **options)["rows"]
    return rows


def _one(api: httpx.Client, sql: str) -> Any:
    (row,) = _rows(api, sql)
    (value,) = row
    return value


AFTER = "after_worker_death_api_v0"
LIVE_TASKS = f"{AFTER}_tasks_limit_10000"


def test_legitimate_queries_answer_the_sample(api: httpx.Client) -> None:
    tasks = live(LIVE_TASKS)
    by_type_state = Counter((t["type"], t["state"]) for t in tasks)
    failed = sum(1 for t in tasks if t["state"] == "FAILED")
    squares = sum(1 for t in tasks if t["func_or_class_name"] == "square")
    # Ray lists one driver per job (the job API's supervisor job 02 too) as a worker.
    workers = live(f"{AFTER}_workers_limit_10000_detail_1")
    transitions = _one(api, "SELECT sum(len(events)) FROM tasks")
    drivers = sum(1 for w in workers if w["worker_type"] == "DRIVER")
    checks: list[tuple[str, Any]] = [
        ("SELECT count(*) FROM tasks WHERE type <> 'DRIVER_TASK'", len(tasks)),
        ("SELECT count(*) FROM tasks WHERE type = 'DRIVER_TASK'", drivers),
        ("FROM tasks SELECT count(*) FILTER (type = 'DRIVER_TASK')", drivers),
        ('SELECT COUNT(*) FROM "TASKS" WHERE "Type" = \'DRIVER_TASK\'', drivers),
        ("-- failed\nSELECT count(*) /* all */ FROM tasks WHERE state = 'FAILED'", failed),
        ("WITH f AS (SELECT * FROM tasks WHERE state = 'FAILED') SELECT count(*) FROM f", failed),
        ("SELECT count(*) FROM tasks WHERE func_or_class_name = 'square'", squares),
        ("SELECT max(attempt_number) FROM tasks WHERE func_or_class_name = 'flaky'", 2),
        ("SELECT count(*) FROM actors", len(live(f"{AFTER}_actors_limit_10000_detail_1"))),
        ("SELECT count(*) FROM jobs", len(live(f"{AFTER}_jobs_detail_1"))),
        ("SELECT list_sort(list(node_id)) FROM nodes", sorted([HEAD_NODE, WORKER_NODE])),
        ("SELECT node_id FROM nodes WHERE is_head_node", HEAD_NODE),
        ("SELECT count(DISTINCT event_id) FROM task_lifecycle_events", 808),
        ("SELECT count(*) FROM tasks WHERE type <> 'DRIVER_TASK' AND job_id IN "
         "(SELECT job_id FROM jobs WHERE type = 'DRIVER')",
         sum(1 for t in tasks if t["job_id"] == "01000000")),
        ("SELECT count(*) FROM (SELECT row_number() OVER (PARTITION BY task_id "
         "ORDER BY attempt_number DESC) AS r FROM tasks WHERE type <> 'DRIVER_TASK') WHERE r = 1",
         len({t["task_id"] for t in tasks})),
        ("SELECT count(*) FROM tasks, unnest(events)", transitions),
        ("SELECT count(*) FROM range(10)", 10),
        ("SELECT task_status_rank('FINISHED') > task_status_rank('RUNNING')", True),
        ("SELECT DISTINCT session || '@' || namespace || '.' || cluster FROM tasks",
         f"{SESSION}@{CLUSTER.namespace}.{CLUSTER.name}"),
        ("SELECT required_resources['CPU'] FROM tasks WHERE func_or_class_name = 'flaky' "
         "LIMIT 1", 1.0),
        ("SELECT count(*) FROM (SELECT 'tasks' FROM tasks UNION ALL SELECT 'actors' FROM actors)",
         _one(api, "SELECT count(*) FROM tasks") + 4),
        ("SELECT count(*) > 0 FROM log_files WHERE node_id = '" + HEAD_NODE + "'", True),
        ("SELECT typeof(creation_time) FROM tasks LIMIT 1", "TIMESTAMP WITH TIME ZONE"),
    ]  # fmt: skip
    wrong = [(sql, _one(api, sql), want) for sql, want in checks if _one(api, sql) != want]
    assert not wrong, wrong
    rows = _rows(
        api, "SELECT type, state, count(*) FROM tasks WHERE type <> 'DRIVER_TASK' GROUP BY ALL"
    )
    assert {(t, s): n for t, s, n in rows} == dict(by_type_state)
    assert len(checks) + 1 >= 20


def test_json_answer_carries_columns_types_and_counts(api: httpx.Client) -> None:
    answer = _answer(
        api, "SELECT task_id, attempt_number, creation_time, events FROM tasks LIMIT 3"
    )
    assert list(answer) == [
        "columns",
        "rows",
        "row_count",
        "truncated",
        "limit",
        "elapsed_ms",
        "sql",
    ]
    assert answer["columns"] == [
        {"name": "task_id", "type": "VARCHAR"},
        {"name": "attempt_number", "type": "BIGINT"},
        {"name": "creation_time", "type": "TIMESTAMP WITH TIME ZONE"},
        {"name": "events", "type": 'STRUCT(state VARCHAR, "time" TIMESTAMP WITH TIME ZONE)[]'},
    ]
    assert answer["row_count"] == 3 and len(answer["rows"]) == 3
    assert answer["truncated"] is False and answer["limit"] == 1000
    assert answer["elapsed_ms"] > 0
    row = answer["rows"][0]
    assert isinstance(row[0], str) and isinstance(row[1], int)
    assert row[2].endswith("Z") or "+00:00" in row[2]


def test_results_past_the_limit_are_truncated_and_say_so(api: httpx.Client) -> None:
    total = _one(api, "SELECT count(*) FROM tasks")
    sql = "SELECT task_id, attempt_number FROM tasks ORDER BY ALL"
    cut = _answer(api, sql, limit=10)
    assert (cut["row_count"], cut["truncated"], cut["limit"]) == (10, True, 10)
    assert _answer(api, sql, limit=total)["truncated"] is False
    assert _answer(api, sql, limit=total - 1)["truncated"] is True
    assert cut["rows"] == _answer(api, sql)["rows"][:10]
    download = api.get("/api/lake/sql", params={"sql": sql, "format": "csv", "limit": 5})
    assert download.headers["x-raylake-truncated"] == "true"
    assert download.headers["x-raylake-row-count"] == "5"
    whole = api.get("/api/lake/sql", params={"sql": sql, "format": "csv"})
    assert whole.headers["x-raylake-truncated"] == "false"
    assert pl.read_csv(io.BytesIO(whole.content)).height == total


def test_get_and_post_agree(api: httpx.Client) -> None:
    sql = "SELECT state, count(*) AS n FROM tasks GROUP BY ALL ORDER BY ALL"
    posted = _post(api, sql, limit=3, dialect="duckdb").json()["data"]
    got = api.get("/api/lake/sql", params={"sql": sql, "limit": "3", "dialect": "duckdb"})
    assert got.status_code == 200, got.text
    fetched = got.json()["data"]
    for answer in (posted, fetched):
        answer.pop("elapsed_ms")
    assert posted == fetched
    refused = api.get("/api/lake/sql", params={"sql": "SELECT getenv('HOME')"})
    assert refused.status_code == 400
    assert refused.json()["data"] == {"error": "forbidden_function"}


def test_every_format_round_trips(api: httpx.Client) -> None:
    sql = (
        "SELECT task_id, attempt_number, state, creation_time, required_resources, events "
        "FROM tasks ORDER BY task_id, attempt_number"
    )
    answer = _answer(api, sql, limit=1_000_000)
    ids = [(r[0], r[1]) for r in answer["rows"]]
    files = {}
    for fmt in ("arrow", "parquet", "csv"):
        reply = _post(api, sql, format=fmt)
        assert reply.status_code == 200, reply.text
        assert f'filename="raylake-query.{fmt}"' in reply.headers["content-disposition"]
        files[fmt] = reply.content
    arrow = pa.ipc.open_stream(files["arrow"]).read_all()
    parquet = pq.read_table(io.BytesIO(files["parquet"]))
    csv = pl.read_csv(io.BytesIO(files["csv"]))
    assert arrow.equals(parquet)
    assert (
        list(zip(arrow["task_id"].to_pylist(), arrow["attempt_number"].to_pylist(), strict=True))
        == ids
    )
    assert list(zip(csv["task_id"], csv["attempt_number"], strict=True)) == ids
    assert arrow.column_names == csv.columns == [c["name"] for c in answer["columns"]]
    assert pa.types.is_timestamp(arrow.schema.field("creation_time").type)
    # CSV writes nested cells as JSON text.
    assert csv["events"][0].startswith("[{")
    first = pl.from_arrow(arrow).row(0)
    assert first[2] == answer["rows"][0][2]


def test_dialects_are_transpiled(api: httpx.Client) -> None:
    for dialect, sql, duckdb_sql in DIALECTS:
        answer = _answer(api, sql, dialect=dialect)
        assert answer["rows"] == _rows(api, duckdb_sql), dialect
        assert answer["rows"], dialect
        assert answer["sql"] != sql
    trino = _answer(api, DIALECTS[0][1], dialect="trino")
    assert "APPROX_COUNT_DISTINCT" in trino["sql"]
    assert trino["rows"][0][0] == _one(api, "SELECT count(DISTINCT task_id) FROM tasks")
    # A dialect's own way into a file is refused as well.
    refused = _post(api, "SELECT * FROM read_parquet('/etc/x')", dialect="trino")
    assert refused.json()["data"] == {"error": "forbidden_function"}


def test_slow_query_is_interrupted_on_time(api: httpx.Client) -> None:
    latencies = []
    for timeout_ms in (500, 1500):
        started = time.monotonic()
        reply = _post(api, SLOW, timeout_ms=timeout_ms)
        elapsed = time.monotonic() - started
        assert reply.status_code == 400, reply.text
        body = reply.json()
        assert body["result"] is False and body["data"] == {"error": "timeout"}
        assert "time limit" in body["msg"]
        assert elapsed < timeout_ms / 1000 + 0.5, elapsed
        latencies.append(elapsed - timeout_ms / 1000)
    print(f"interrupt latency over HTTP: {[f'{s * 1000:.0f} ms' for s in latencies]}")
    assert _one(api, "SELECT count(*) FROM range(3)") == 3  # the server still answers


def test_hostile_queries_over_http(api: httpx.Client, collected_lake: Lake) -> None:
    before = _files(collected_lake)
    for _category, sql, code in _hostile(collected_lake):
        reply = _post(api, sql)
        assert reply.status_code == 400, (sql, reply.text)
        body = reply.json()
        assert body["result"] is False and body["data"] == {"error": code}, (sql, body)
        assert body["msg"]
    assert _files(collected_lake) == before


def test_bad_requests_are_refused_clearly(api: httpx.Client) -> None:
    cases: list[tuple[Any, str]] = [
        ({}, "`sql` is required"),
        ({"sql": "  "}, "`sql` is required"),
        ({"sql": "SELECT 1", "format": "xlsx"}, "format='xlsx'"),
        ({"sql": "SELECT 1", "limit": 0}, "limit=0"),
        ({"sql": "SELECT 1", "limit": 10_000_001}, "limit="),
        ({"sql": "SELECT 1", "limit": True}, "limit=True"),
        ({"sql": "SELECT 1", "timeout_ms": "soon"}, "timeout_ms='soon'"),
        ({"sql": "SELECT 1", "dialect": "cobol"}, "dialect='cobol'"),
        ({"sql": "SELECT 1", "timeout": 5}, "unknown option timeout"),
    ]
    for body, message in cases:
        reply = api.post("/api/lake/sql", json=body)
        assert reply.status_code == 400, (body, reply.text)
        assert reply.json()["data"] == {"error": "bad_request"}, body
        assert message in reply.json()["msg"], (body, reply.json())
    not_an_object = api.post("/api/lake/sql", json=["SELECT 1"])
    assert not_an_object.status_code == 400
    assert not_an_object.json()["result"] is False
    failed = _post(api, "SELECT no_such_column FROM tasks")
    assert failed.status_code == 400
    assert failed.json()["data"] == {"error": "query_failed"}
    assert "no_such_column" in failed.json()["msg"]


def test_tables_lists_every_view_with_described_columns(api: httpx.Client) -> None:
    reply = api.get("/api/lake/tables")
    assert reply.status_code == 200
    tables = reply.json()["data"]["tables"]
    assert [t["name"] for t in tables][:5] == ["tasks", "actors", "nodes", "jobs", "workers"]
    assert sorted(t["name"] for t in tables) == sorted(view_names())
    for table in tables:
        assert table["description"], table["name"]
        assert table["columns"], table["name"]
        for column in table["columns"]:
            assert column["name"] and column["type"] and column["description"], column
    tasks = next(t for t in tables if t["name"] == "tasks")
    answer = _answer(api, "SELECT * FROM tasks LIMIT 1")
    assert [(c["name"], c["type"]) for c in tasks["columns"]] == [
        (c["name"], c["type"]) for c in answer["columns"]
    ]


# --- the token, and a lake in S3 ---------------------------------------------------------


def test_console_needs_the_token(collected_lake: Lake, tmp_path: Path) -> None:
    with running_server(collected_lake.url, tmp_path, "--auth-token", "s3cret") as server:
        body = {"sql": "SELECT count(*) FROM tasks"}
        anonymous = httpx.post(f"{server.url}/api/lake/sql", json=body)
        assert anonymous.status_code == 401
        assert anonymous.json()["data"] == {"error": "unauthorized"}
        for path in ("/api/lake/sql?sql=SELECT%201", "/api/lake/tables"):
            assert httpx.get(f"{server.url}{path}").status_code == 401
        wrong = httpx.post(
            f"{server.url}/api/lake/sql", json=body, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        ok = httpx.post(
            f"{server.url}/api/lake/sql",
            json=body,
            headers={"Authorization": "Bearer s3cret"},
            timeout=60,
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["data"]["rows"][0][0] > 0


@pytest.fixture(scope="module")
def s3_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lake, str]]:
    with fake_aws_env() as mp, moto_server() as endpoint:
        create_bucket(endpoint, "raylake-console")
        mp.setenv("RAYLAKE_S3_ENDPOINT_URL", endpoint)
        yield ingest_sample("s3://raylake-console/lake"), endpoint


def test_s3_lake_is_readable_and_nothing_else(
    s3_lake: tuple[Lake, str], lake: Lake, tmp_path: Path
) -> None:
    s3, endpoint = s3_lake
    con = connect_console(s3)
    local = connect_console(lake)
    sql = "SELECT type, state, count(*) FROM tasks GROUP BY ALL ORDER BY ALL"
    assert execute(con, sql).table.equals(execute(local, sql).table)
    with pytest.raises(duckdb.PermissionException):
        con.cursor().execute("SELECT * FROM read_text('s3://raylake-console/lakeside/x')")
    args = ("--s3-endpoint-url", endpoint)
    with running_server(s3.url, tmp_path, *args, env=FAKE_AWS_ENV) as server:
        reply = httpx.post(f"{server.url}/api/lake/sql", json={"sql": sql}, timeout=60)
        assert reply.status_code == 200, reply.text
        expected = [list(r.values()) for r in execute(local, sql).table.to_pylist()]
        assert reply.json()["data"]["rows"] == expected
        refused = httpx.post(
            f"{server.url}/api/lake/sql",
            json={"sql": "SELECT * FROM 's3://raylake-console/lake/_lake.json'"},
        )
        assert refused.json()["data"] == {"error": "unknown_table"}
