"""Read-only SQL over the lake's views: `raylake sql`, `/api/lake/sql`, the Python client.

A query passes two parsers before DuckDB runs it, and is refused, never run, otherwise:

1. sqlglot reads it in the user's dialect (duckdb, trino, spark, postgres, ...): exactly
   one query (a SELECT or a set operation), with no write or command anywhere inside.
   A query in another dialect is transpiled to DuckDB's.
2. DuckDB's own parser (`json_serialize_sql`, which parses and never binds or runs) reads
   the very text that will run: every query node is a SELECT or a set operation (DuckDB
   would accept `WITH d AS (DELETE ...)`), every table a lake view or a CTE in scope,
   every table function `unnest`, `range` or `generate_series`, every function on
   FUNCTIONS. Checking DuckDB's reading of that exact text leaves no room for the two
   parsers to disagree about what runs.

FUNCTIONS is an allowlist of DuckDB 2.0's scalar, aggregate and window functions (a
function DuckDB adds later stays refused until it is added here). Left out: whatever
reads or writes files or runs SQL (`read_*`, `glob`, `query`, `json_execute_serialized_sql`),
reveals the server or its settings (`getenv`, `current_setting`, `version`, `platform`,
`user_agent`, `current_query`, `pg_get_viewdef`, `duckdb_*()`, `pg_*` catalog
functions), or changes the connection's state (`nextval`, `setseed`, `enable_*`). So
`version()` is refused too: the DuckDB version helps an attacker more than a user.

`lock_down` then locks the connection itself, in case a query got past both parsers:
files only under the lake's data directories, no extension loading, no Python variable
as a table, nothing spilled to disk, a memory limit, and no setting can change.

Exceptions:

    QueryError      refused or failed; `.code` says why (one of CODES), the message what
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from lake.layout import EVENTS, SNAPSHOTS, log_index_dir
from lake.store import Lake
from query.engine import connect, view_names

ROW_CAP = 1_000_000

CODES = {
    "syntax_error": "the query could not be parsed",
    "not_read_only": "not exactly one query, or something in it writes, changes or runs commands",
    "unknown_table": "a table that is not one of the lake's views (files, URLs, system tables)",
    "forbidden_function": "a function or table function outside the allowlist",
    "timeout": "the query ran past its time limit and was interrupted",
    "out_of_memory": "the query needed more memory than the console's limit",
    "query_failed": "DuckDB could not run the query (e.g. an unknown column)",
}


class QueryError(ValueError):
    def __init__(self, message: str, code: str = "query_failed") -> None:
        super().__init__(message)
        self.code = code


TABLE_FUNCTIONS = frozenset({"unnest", "range", "generate_series"})

# Operators reach DuckDB's parse tree as functions named by their symbol.
_OPERATORS = (
    "!= !__postfix !~~ !~~* % & && * ** + - ->> / // < <-> << <= <=> <@ = > >= >> @ @> "
    "^ ^@ | || ~ ~~ ~~* ~~~"
)
# query/engine.py's macros, which the entity views use too.
_LAKE_MACROS = "task_status_rank to_us ray_task_us"
_BUILTINS = """
abs acos acosh add age aggregate ago any_value apply approx_count_distinct
approx_quantile approx_top_k arbitrary arg_max arg_max_null arg_max_nulls_last
arg_min arg_min_null arg_min_nulls_last argmax argmin array_agg array_aggr
array_aggregate array_append array_apply array_cat array_concat array_contains
array_cosine_distance array_cosine_similarity array_cross_product array_distance
array_distinct array_dot_product array_extract array_filter array_grade_up array_has
array_has_all array_has_any array_indexof array_inner_product array_intersect
array_length array_negative_dot_product array_negative_inner_product array_pop_back
array_pop_front array_position array_prepend array_push_back array_push_front
array_reduce array_resize array_reverse array_reverse_sort array_select array_slice
array_sort array_to_json array_to_string array_transform array_unique array_value
array_where array_zip ascii asin asinh atan atan2 atanh avg bar base64 bin binom
bit_and bit_count bit_length bit_or bit_position bit_xor bitstring bitstring_agg
bool_and bool_or cardinality cbrt ceil ceiling century char_length character_length
chr concat concat_ws contains corr cos cosh cot count count_if count_star countif
covar_pop covar_samp cume_dist current_date current_localtime current_localtimestamp
damerau_levenshtein date_add date_diff date_part date_sub date_trunc datediff datepart
datesub datetrunc day dayname dayofmonth dayofweek dayofyear days_in_month decade
decode degrees dense_rank divide editdist3 element_at encode ends_with entropy
enum_code enum_first enum_last enum_range enum_range_boundary epoch epoch_ms epoch_ns
epoch_us equi_width_bins era even exp factorial favg fdiv fill filter first
first_value flatten floor fmod format formatreadabledecimalsize formatreadablesize
format_bytes from_base64 from_binary from_hex from_json from_json_strict fsum gamma
gcd gen_random_uuid generate_series generate_subscripts geomean geometric_mean get_bit
get_current_time get_current_timestamp grade_up greatest greatest_common_divisor
group_concat hamming hash hex histogram histogram_exact hour if ilike_escape instr
isfinite isinf isnan isodow isoyear jaccard jaro_similarity jaro_winkler_similarity
json json_array json_array_length json_contains json_deep_merge json_exists
json_extract json_extract_path json_extract_path_text json_extract_string
json_group_array json_group_object json_group_structure json_insert json_keys
json_merge_patch json_normalize json_object json_pretty json_quote json_remove
json_replace json_set json_strip_nulls json_structure json_transform
json_transform_strict json_type json_valid json_value julian kahan_sum kurtosis
kurtosis_pop lag last last_day last_value lcase lcm lead least least_common_multiple
left left_grapheme len length length_grapheme levenshtein lgamma like_escape list
list_aggr list_aggregate list_any_value list_append list_apply
list_approx_count_distinct list_avg list_bit_and list_bit_or list_bit_xor
list_bool_and list_bool_or list_cat list_concat list_contains list_cosine_distance
list_cosine_similarity list_count list_distance list_distinct list_dot_product
list_element list_entropy list_extract list_filter list_first list_grade_up list_has
list_has_all list_has_any list_histogram list_indexof list_inner_product
list_intersect list_kurtosis list_kurtosis_pop list_last list_mad list_max
list_median list_min list_mode list_negative_dot_product list_negative_inner_product
list_pack list_position list_prepend list_product list_reduce list_resize
list_reverse list_reverse_sort list_select list_sem list_skewness list_slice
list_sort list_stddev_pop list_stddev_samp list_string_agg list_sum list_transform
list_unique list_value list_var_pop list_var_samp list_where list_zip listagg ln log
log10 log2 lower lpad ltrim lttb mad make_date make_time make_timestamp
make_timestamp_ms make_timestamp_ns make_timestamptz map map_concat map_contains
map_contains_entry map_contains_value map_entries map_extract map_extract_value
map_from_entries map_keys map_values max max_by md5 md5_number md5_number_lower
md5_number_upper mean median microsecond millennium millisecond min min_by minute
mismatches mod mode month monthname multiply nanosecond nextafter nfc_normalize
normalized_interval not_ilike_escape not_like_escape now nth_value ntile nullif
octet_length ord overlay parse_dirname parse_dirpath parse_filename
parse_formatted_bytes parse_path path_join percent_rank pg_size_pretty pg_typeof pi
position pow power prefix printf product quantile quantile_cont quantile_disc quarter
radians random range rank rank_dense reduce regexp_escape regexp_extract
regexp_extract_all regexp_full_match regexp_matches regexp_replace
regexp_split_to_array regexp_split_to_table regr_avgx regr_avgy regr_count
regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy repeat replace
reservoir_quantile reverse right right_grapheme round round_even roundbankers row
row_number row_to_json rpad rtrim second sem set_bit sha1 sha256 sign signbit sin sinh
skewness split split_part sqrt starts_with stddev stddev_pop stddev_samp str_split
str_split_regex strftime string_agg string_split string_split_regex string_to_array
strip_accents strlen strpos strptime struct_concat struct_contains struct_extract
struct_extract_at struct_has struct_indexof struct_insert struct_keys struct_pack
struct_position struct_update struct_values substr substring substring_grapheme
subtract suffix sum sum_no_overflow sumkahan switch tan tanh time_bucket timezone
timezone_hour timezone_minute to_base to_base64 to_binary to_centuries to_days
to_decades to_hex to_hours to_json to_microseconds to_millennia to_milliseconds
to_minutes to_months to_quarters to_seconds to_timestamp to_weeks to_years today
transaction_timestamp translate trim trunc try_strptime typeof ucase unbin unhex
unicode union_extract union_tag union_value unnest upper url_decode url_encode uuid
uuid_extract_timestamp uuid_extract_version uuidv4 uuidv7 var_pop var_samp variance
wavg week weekday weekofyear weighted_avg xor year yearweek
"""
FUNCTIONS = frozenset(f"{_BUILTINS} {_OPERATORS} {_LAKE_MACROS}".split())

# The parts of DuckDB's parse tree a read-only query is made of.
_QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE"})
_TABLE_REFS = frozenset(
    {"BASE_TABLE", "JOIN", "SUBQUERY", "TABLE_FUNCTION", "EMPTY", "EXPRESSION_LIST", "PIVOT"}
)
_PARSER = duckdb.connect()
_PARSER_LOCK = threading.Lock()


def check_query(sql: str, dialect: str = "duckdb") -> str:
    """The DuckDB SQL to run, if the query only reads the lake's views; else QueryError."""
    views = frozenset(name.lower() for name in view_names())
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        if dialect == "duckdb":  # DuckDB may know better why it is no query (EXPORT ...)
            _check_parse_tree(sql, views)
        errors = getattr(exc, "errors", [])  # a TokenError (unclosed quote) has none
        first = errors[0] if errors else {}
        where = f" (line {first.get('line')}, column {first.get('col')})" if first else ""
        message = first.get("description", str(exc))
        raise QueryError(f"could not parse the query: {message}{where}", "syntax_error") from None
    if len(statements) != 1:
        raise QueryError(
            f"expected exactly one query, found {len(statements)} statements", "not_read_only"
        )
    (query,) = statements
    if not isinstance(query, exp.Query):
        raise QueryError(f"only queries may run, not {query.key.upper()}", "not_read_only")
    for node in query.walk():
        if isinstance(node, exp.DML | exp.DDL | exp.Command):
            raise QueryError(f"only queries may run, not {node.key.upper()}", "not_read_only")
    duckdb_sql = sql if dialect == "duckdb" else query.sql("duckdb")
    _check_parse_tree(duckdb_sql, views)
    return duckdb_sql


def _check_parse_tree(sql: str, views: frozenset[str]) -> None:
    with _PARSER_LOCK:
        row = _PARSER.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {}
    if tree.get("error"):
        message = tree.get("error_message", "")
        code = "syntax_error" if tree.get("error_type") == "parser" else "not_read_only"
        raise QueryError(f"DuckDB refuses the query: {message}", code)
    if len(tree["statements"]) != 1:
        raise QueryError(
            f"expected exactly one query, DuckDB reads {len(tree['statements'])}", "not_read_only"
        )
    _check_node(tree["statements"][0]["node"], frozenset(), views)


def _check_node(node: Any, ctes: frozenset[str], views: frozenset[str]) -> None:
    """Walk DuckDB's parse tree; `ctes` are the CTE names in scope here."""
    if isinstance(node, list):
        for item in node:
            _check_node(item, ctes, views)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if "cte_map" in node and "modifiers" in node:  # a query node
        if kind not in _QUERY_NODES:
            raise QueryError(f"only queries may run, not {kind}", "not_read_only")
        for cte in node["cte_map"]["map"]:
            ctes = ctes | {cte["key"].lower()}  # a CTE sees itself and the ones before
            _check_node(cte["value"], ctes, views)
    elif "alias" in node and "sample" in node and "class" not in node:  # a table reference
        _check_table_ref(kind)
    if "table_name" in node:  # BASE_TABLE, wherever it sits
        _check_table(node, ctes, views)
    if kind == "TABLE_FUNCTION":
        name = node["function"].get("function_name", "").lower()
        if name not in TABLE_FUNCTIONS:
            allowed = ", ".join(sorted(TABLE_FUNCTIONS))
            raise QueryError(
                f"table function {name}() is not allowed (reading files or the catalog is "
                f"not); the table functions allowed are {allowed}",
                "forbidden_function",
            )
    if "function_name" in node:
        _check_function(node)
    for key, value in node.items():
        if key != "cte_map":
            _check_node(value, ctes, views)


def _check_table_ref(kind: str | None) -> None:
    if kind not in _TABLE_REFS:
        raise QueryError(f"{kind} is not allowed in a query", "not_read_only")


def _check_table(node: dict[str, Any], ctes: frozenset[str], views: frozenset[str]) -> None:
    name = node["table_name"]
    parts = (node.get("catalog_name"), node.get("schema_name"), name)
    qualified = ".".join(p for p in parts if p)
    if qualified != name or name.lower() not in views | ctes:
        known = ", ".join(sorted(views))
        if any(c in name for c in "/.:\\"):
            what = f"reading files or URLs ({qualified!r}) is not allowed"
        else:
            what = f"unknown table {qualified!r}"
        raise QueryError(f"{what}; the lake's views are: {known}", "unknown_table")


def _check_function(node: dict[str, Any]) -> None:
    name = node["function_name"].lower()
    if node.get("schema") or node.get("catalog") or name not in FUNCTIONS:
        raise QueryError(
            f"function {name}() is not allowed in the SQL console", "forbidden_function"
        )


# The connection and the run.


def lock_down(con: duckdb.DuckDBPyConnection, lake: Lake, *, memory_limit: str) -> None:
    """No file outside the lake's data directories, no extension, no Python variable as a
    table, no spilling to disk, a memory limit; then no setting can change."""
    readable = [lake.uri(d).rstrip("/") + "/" for d in (EVENTS, SNAPSHOTS, log_index_dir())]
    con.execute("SET temp_directory = ''")
    con.execute("SET memory_limit = ?", [memory_limit])
    con.execute("SET allowed_directories = ?", [readable])
    con.execute("SET allowed_paths = []")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET python_enable_replacements = false")
    con.execute("SET lock_configuration = true")


def connect_console(lake: Lake, *, memory_limit: str = "1GB") -> duckdb.DuckDBPyConnection:
    """The lake's views (every session) on a locked-down connection."""
    con = connect(lake)
    lock_down(con, lake, memory_limit=memory_limit)
    return con


@dataclass(frozen=True)
class Result:
    table: pa.Table
    types: list[str]  # DuckDB's type of each column
    truncated: bool  # the query had more rows than the limit
    sql: str  # the DuckDB SQL that ran
    elapsed: float  # seconds


def execute(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    dialect: str = "duckdb",
    limit: int = ROW_CAP,
    timeout: float | None = None,
) -> Result:
    """Check the query, then run it on a cursor of its own: at most `limit` rows, and
    interrupted after `timeout` seconds."""
    started = time.monotonic()
    checked = check_query(sql, dialect)
    cursor = con.cursor()
    timer = threading.Timer(timeout, cursor.interrupt) if timeout is not None else None
    try:
        if timer:
            timer.start()
        relation = cursor.sql(checked)
        types = [str(t) for t in relation.types]
        reader = relation.to_arrow_reader(65_536)
        batches, rows = [], 0
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows > limit:
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.InterruptException:
        raise QueryError(
            f"the query ran past its time limit of {timeout:g} s and was stopped", "timeout"
        ) from None
    except duckdb.OutOfMemoryException as exc:
        raise QueryError(f"the query needs too much memory: {exc}", "out_of_memory") from None
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    finally:
        if timer:
            timer.cancel()
        cursor.close()
    return Result(table.slice(0, limit), types, rows > limit, checked, time.monotonic() - started)


def run_query(
    con: duckdb.DuckDBPyConnection, sql: str, *, dialect: str = "duckdb", limit: int = ROW_CAP
) -> pa.Table:
    """Run a checked query; at most `limit` rows."""
    return execute(con, sql, dialect=dialect, limit=limit).table
