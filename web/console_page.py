"""The SQL console page at `/lake/sql`: an editor, the lake's views beside it, the result
as a table and a chart, downloads, and the query in the page's URL so it can be shared.

The server renders the whole page, the result included when `sql` is given, so it works
without JavaScript; `static/console/console.js` then runs queries through
`/api/lake/sql` without reloading and draws the chart. Nothing comes from outside
raylake, and the Content-Security-Policy lets the page load only its own script and
style: a query or a value that looks like HTML stays text.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.response import File

from web import lake_api
from web.reply import ApiError

STATIC_DIR = Path(__file__).parent / "static" / "console"
STATIC_FILES = {"console.js": "text/javascript", "console.css": "text/css"}
# As lake_api encodes its JSON answer.
_JSON = msgspec.json.Encoder(decimal_format="number")
# sqlglot reads these (and more: `dialect=` in the URL may name any it knows).
DIALECTS = ("duckdb", "postgres", "trino", "spark", "bigquery", "snowflake", "mysql", "sqlite")
DOWNLOAD_FORMATS = {"csv": "CSV", "parquet": "Parquet", "arrow": "Arrow"}
# Only the page's own files; inline scripts, handlers and styles never run.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def script_json(value: Any) -> str:
    """JSON to sit inside a `<script type="application/json">` element: no `<`, `>` or
    `&` can end the element or start markup."""
    text = _JSON.encode(value).decode()
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


@dataclass(frozen=True)
class Failure:
    """A query the API refused or that failed: its error code and message."""

    status: int
    code: str
    message: str


# The page: pure functions of the query, its answer and the catalog.


def catalog_html(tables: list[dict[str, Any]]) -> str:
    """The views and their columns; each name is a button that inserts it (console.js)."""
    items = []
    for table in tables:
        columns = "".join(
            f'<li><button type="button" class="insert" data-insert="{_e(c["name"])}">'
            f"{_e(c['name'])}</button> <span class=type>{_e(c['type'])}</span>"
            + (
                f'<span class="description">{_e(c["description"])}</span>'
                if c.get("description")
                else ""
            )
            + "</li>"
            for c in table["columns"]
        )
        description = (
            f'<span class="description">{_e(table["description"])}</span>'
            if table.get("description")
            else ""
        )
        items.append(
            f'<details data-view="{_e(table["name"])}"><summary>'
            f'<button type="button" class="insert" data-insert="{_e(table["name"])}">'
            f"{_e(table['name'])}</button></summary>{description}<ul>{columns}</ul></details>"
        )
    return "".join(items)


def _number(value: float) -> str:
    """As console.js writes numbers (`Intl.NumberFormat("en")`, at most 3 decimals)."""
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _cell(value: Any) -> str:
    """A value as console.js shows it: text as is, anything else as its JSON."""
    if value is None:
        return '<td class="null">NULL</td>'
    text = value if isinstance(value, str) else _JSON.encode(value).decode()
    number = isinstance(value, int | float) and not isinstance(value, bool)
    kind = ' class="number"' if number else ""
    return f'<td{kind} title="{_e(text)}">{_e(text)}</td>'


def download_links(sql: str, dialect: str) -> str:
    links = " ".join(
        f'<a href="/api/lake/sql?{_e(urlencode(_params(sql, dialect, format=fmt)))}" '
        f'download="">{label}</a>'
        for fmt, label in DOWNLOAD_FORMATS.items()
    )
    return f'<p class="downloads">Download all rows: {links}</p>'


def _params(sql: str, dialect: str, **more: str) -> dict[str, str]:
    return {"sql": sql, **({"dialect": dialect} if dialect != "duckdb" else {}), **more}


def result_html(answer: dict[str, Any], sql: str, dialect: str) -> str:
    """The answer of `/api/lake/sql` as the page shows it (console.js draws the same)."""
    count = answer["row_count"]
    truncated = (
        '<span class="truncated"> · truncated: the query has more rows</span>'
        if answer["truncated"]
        else ""
    )
    summary = (
        f'<p id="summary">{count} row{"s" * (count != 1)} in '
        f"{_number(answer['elapsed_ms'])} ms{truncated}</p>"
    )
    columns = answer["columns"]
    head = "".join(
        f'<th>{_e(c["name"])}<span class="type">{_e(c["type"])}</span></th>' for c in columns
    )
    rows = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in answer["rows"])
    return (
        f"{summary}{download_links(sql, dialect)}"
        '<div class="table-wrap"><table class="rows" id="rows">'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
        f'<script type="application/json" id="answer">{script_json(answer)}</script>'
    )


def error_html(failure: Failure) -> str:
    return (
        f'<div id="error" role="alert"><strong>Error ({_e(failure.code)}): </strong>'
        f"{_e(failure.message)}</div>"
    )


def _dialect_select(chosen: str) -> str:
    names = DIALECTS if chosen in DIALECTS else (*DIALECTS, chosen)
    options = "".join(
        f'<option value="{_e(n)}"{" selected" if n == chosen else ""}>{_e(n)}</option>'
        for n in names
    )
    return f'<select name="dialect">{options}</select>'


def console_page(
    sql: str,
    limit: str,
    dialect: str,
    tables: list[dict[str, Any]],
    outcome: dict[str, Any] | Failure | None,
) -> str:
    if isinstance(outcome, Failure):
        output = error_html(outcome)
    elif outcome is not None:
        output = result_html(outcome, sql, dialect)
    else:
        output = ""
    # A textarea drops one newline right after its start tag: give it one to drop.
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<title>raylake: SQL console</title>"
        '<link rel="stylesheet" href="/lake/static/console/console.css">'
        '<script src="/lake/static/console/console.js" defer></script></head><body>'
        '<header><h1>raylake SQL</h1><a href="/sessions">Sessions</a>'
        '<span class="muted">read-only SQL over every session in the lake</span></header>'
        '<div class="layout"><aside id="catalog"><h2>Views</h2>'
        f"{catalog_html(tables)}</aside><main>"
        '<form id="console" method="get" action="/lake/sql">'
        '<textarea id="sql" name="sql" spellcheck="false" autocapitalize="off" '
        'autocomplete="off" aria-label="SQL query" '
        f'placeholder="SELECT state, count(*) AS tasks FROM tasks GROUP BY state">\n{_e(sql)}'
        "</textarea>"
        '<div class="controls"><button type="submit" id="run">Run</button>'
        f"<label>Dialect {_dialect_select(dialect)}</label>"
        f'<label>Rows <input type="number" name="limit" min="1" value="{_e(limit)}" '
        f'data-default="{lake_api.DEFAULT_LIMIT}"></label>'
        '<span class="muted"><kbd>Ctrl</kbd>+<kbd>Enter</kbd> runs</span></div></form>'
        f'<section id="output" aria-live="polite">{output}</section>'
        "</main></div></body></html>"
    )


# Routes: the I/O edge.


def as_json_values(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer as `/api/lake/sql` sends it (times as ISO text, sums as numbers), so
    the server's table and console.js's show the same text."""
    decoded: dict[str, Any] = msgspec.json.decode(_JSON.encode(answer))
    return decoded


def _outcome(app: Litestar, sql: str, limit: str, dialect: str) -> dict[str, Any] | Failure:
    if not limit.isdigit():
        return Failure(400, "bad_request", f"limit={limit!r}: expected a whole number")
    try:
        return as_json_values(lake_api.run_sql(app, sql, limit=int(limit), dialect=dialect))
    except ApiError as exc:
        return Failure(exc.status_code, exc.code, str(exc.detail))


@get("/lake/sql", sync_to_thread=True)
def sql_console(request: Request[Any, Any, Any]) -> Response[str]:
    """The console; with `sql=` (and `limit=`, `dialect=`) it runs that query as
    `/api/lake/sql` does and shows its result, or its error (with the API's status)."""
    sql = request.query_params.get("sql", "")
    dialect = request.query_params.get("dialect", "") or "duckdb"
    limit = request.query_params.get("limit", "").strip() or str(lake_api.DEFAULT_LIMIT)
    outcome = _outcome(request.app, sql, limit, dialect) if sql.strip() else None
    page = console_page(sql, limit, dialect, lake_api.describe_tables(request.app), outcome)
    return Response(
        page,
        media_type="text/html",
        status_code=outcome.status if isinstance(outcome, Failure) else 200,
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"},
    )


@get("/lake/static/console/{name:str}", sync_to_thread=True)
def console_asset(name: str) -> File:
    if name not in STATIC_FILES:
        raise ApiError(404, "not_found", f"no console file {name!r}")
    return File(
        STATIC_DIR / name,
        media_type=STATIC_FILES[name],
        content_disposition_type="inline",
        filename=name,
        headers={"Cache-Control": "no-cache"},
    )


ROUTES: list[Any] = [sql_console, console_asset]
