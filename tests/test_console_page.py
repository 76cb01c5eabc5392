"""The SQL console page (`/lake/sql`) of a real `raylake serve` over the collected sample.

HTTP first: the page and its two files, nothing from outside the server, the result
rendered by the server (no JavaScript) exactly as `/api/lake/sql` answers it, errors,
and user SQL or values that look like HTML staying inert text. Then a person's path in
headless Chromium (Playwright driving Debian's chromium, as tests/test_ui_browser.py):
type a query, run it with Ctrl+Enter, see the table and the chart, insert names from the
catalog, open the shared URL in a fresh browser, see a bad query's error. Screenshots go
to tests/artifacts/console/.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from conftest import live
from server import Server

ARTIFACTS = Path(__file__).parent / "artifacts" / "console"
STATIC = Path(__file__).parent.parent / "web" / "static" / "console"
BY_FUNCTION = (
    "SELECT func_or_class_name, count(*) AS attempts FROM tasks GROUP BY 1 ORDER BY 2 DESC, 1"
)
OVER_TIME = (
    "SELECT date_trunc('second', start_time) AS second, count(*) AS started FROM tasks "
    "WHERE start_time IS NOT NULL GROUP BY 1 ORDER BY 1"
)
# Each would run script, load something or break out of its element if the page put it
# in as HTML: in the editor, as a value and as a column name of the result.
XSS = '<img src=x onerror="window.pwned=1">'
XSS_QUERIES = [
    "</textarea><script>window.pwned=1</script>",
    '"><svg onload="window.pwned=1">',
    f"SELECT '{XSS}' AS \"</script><script>window.pwned=1</script>\"",
    "SELECT '</script><script>window.pwned=1</script><!--' AS v, '&amp;' AS \"<b>\"",
]


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None) -> Iterator[Element]:
        for child in self.children:
            if isinstance(child, Element):
                if tag is None or child.tag == tag:
                    yield child
                yield from child.all(tag)

    def by_id(self, id_: str) -> Element | None:
        return next((e for e in self.all() if e.attrs.get("id") == id_), None)


VOID = {"meta", "link", "input", "br", "img", "hr", "source", "col", "wbr"}


class TreeBuilder(HTMLParser):
    """The page as the HTML parser reads it (the standard library's; the browser part
    checks the same in Chromium)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        if any(e.tag == tag for e in self.stack[1:]):
            while self.stack.pop().tag != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> Element:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    return builder.root


def cell(value: Any) -> str:
    """What the page shows for a value of the API's JSON answer."""
    if value is None:
        return "NULL"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class Shown:
    """A console page as the server rendered it."""

    status: int
    document: Element
    html: str

    def element(self, id_: str) -> Element:
        found = self.document.by_id(id_)
        assert found is not None, f"#{id_} is on the page"
        return found

    @property
    def editor(self) -> str:
        return self.element("sql").text().removeprefix("\n")  # the parser keeps it

    @property
    def columns(self) -> list[tuple[str, str]]:
        heads = self.element("rows").all("th")
        return [(str(th.children[0]), next(th.all("span")).text()) for th in heads]

    @property
    def rows(self) -> list[list[str]]:
        body = next(self.element("rows").all("tbody"))
        return [[td.text() for td in tr.all("td")] for tr in body.all("tr")]

    @property
    def answer(self) -> dict[str, Any]:
        """The API answer the page carries for console.js."""
        block = self.element("answer")
        assert block.tag == "script" and block.attrs == {"type": "application/json", "id": "answer"}
        return dict(json.loads(block.text()))


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    """A fresh browser's view: the console needs no session cookie (it spans them all)."""
    with httpx.Client(base_url=server.url, timeout=60) as fresh:
        yield fresh


def shown(client: httpx.Client, **params: str) -> Shown:
    answer = client.get("/lake/sql", params=params)
    assert answer.headers["content-type"].startswith("text/html"), answer.text
    return Shown(answer.status_code, parse(answer.text), answer.text)


def api_answer(client: httpx.Client, sql: str, **params: str) -> httpx.Response:
    return client.get("/api/lake/sql", params={"sql": sql, **params})


def test_page_and_its_own_files(client: httpx.Client) -> None:
    page = client.get("/lake/sql")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy
    document = parse(page.text)
    assert document.by_id("sql") is not None and document.by_id("output") is not None
    form = next(document.all("form"))
    assert form.attrs["method"] == "get" and form.attrs["action"] == "/lake/sql"
    assert {e.attrs["name"] for e in form.all() if "name" in e.attrs} == {
        "sql",
        "dialect",
        "limit",
    }
    assert next(form.all("button")).attrs["type"] == "submit"
    assert document.by_id("rows") is None and document.by_id("error") is None

    wanted = {"/lake/static/console/console.js": "text/javascript"}
    wanted["/lake/static/console/console.css"] = "text/css"
    loaded = [e.attrs.get("src") or e.attrs.get("href") for e in document.all()]
    assert set(wanted) <= set(loaded)
    for path, media in wanted.items():
        asset = client.get(path)
        assert asset.status_code == 200, path
        assert asset.headers["content-type"].split(";")[0] == media
        assert asset.content == (STATIC / Path(path).name).read_bytes()
    for missing in ("nothing.js", "..%2Fconsole_page.py", "%2E%2E%2F%2E%2E%2Fapp.py"):
        assert client.get(f"/lake/static/console/{missing}").status_code == 404, missing


def test_catalog_lists_every_view_and_column_of_the_tables_api(client: httpx.Client) -> None:
    tables = client.get("/api/lake/tables").json()["data"]["tables"]
    catalog = parse(client.get("/lake/sql").text).by_id("catalog")
    assert catalog is not None
    views = list(catalog.all("details"))
    assert [v.attrs["data-view"] for v in views] == [t["name"] for t in tables]
    for view, table in zip(views, tables, strict=True):
        buttons = [b.attrs["data-insert"] for b in view.all("button")]
        assert buttons == [table["name"], *(c["name"] for c in table["columns"])]
        text = view.text()
        for column in table["columns"]:
            assert column["type"] in text and column["description"] in text
    assert any(t["name"] == "tasks" for t in tables)


def test_server_renders_the_result_as_the_api_answers(client: httpx.Client) -> None:
    page = shown(client, sql=BY_FUNCTION)
    api = api_answer(client, BY_FUNCTION).json()["data"]
    assert page.status == 200
    assert page.editor == BY_FUNCTION
    assert page.columns == [(c["name"], c["type"]) for c in api["columns"]]
    assert page.columns == [("func_or_class_name", "VARCHAR"), ("attempts", "BIGINT")]
    assert page.rows == [[cell(v) for v in row] for row in api["rows"]]
    carried = page.answer
    assert carried.pop("elapsed_ms") >= 0 and api.pop("elapsed_ms") >= 0
    assert carried == api
    summary = page.element("summary").text()
    assert re.fullmatch(rf"{api['row_count']} rows in [\d,.]+ ms", summary), summary
    # The capture's own count: Ray's task list has a row per attempt, as `tasks` does.
    ray = Counter(t["func_or_class_name"] for t in live("api_v0_tasks_limit_10000_detail_1"))
    assert page.rows[0] == ["square", str(ray["square"])]
    assert ray.most_common(1)[0][0] == "square"


def test_values_of_every_kind_match_the_api(client: httpx.Client) -> None:
    sql = (
        "SELECT task_id, attempt_number, start_time, required_resources, events, "
        "is_detached_actor, 1.5 AS half, sum(attempt_number) OVER () AS total "
        "FROM tasks ORDER BY task_id, attempt_number LIMIT 20"
    )
    page = shown(client, sql=sql)
    api = api_answer(client, sql).json()["data"]
    assert page.rows == [[cell(v) for v in row] for row in api["rows"]]
    assert [t for _, t in page.columns][:3] == ["VARCHAR", "BIGINT", "TIMESTAMP WITH TIME ZONE"]
    assert len(page.rows) == 20


def test_limit_and_truncation_are_shown(client: httpx.Client) -> None:
    page = shown(client, sql="SELECT task_id FROM tasks ORDER BY task_id", limit="3")
    assert len(page.rows) == 3
    assert page.answer["truncated"] is True and page.answer["limit"] == 3
    summary = page.element("summary").text()
    assert summary.startswith("3 rows in ") and "truncated" in summary
    limit = next(e for e in page.document.all("input") if e.attrs.get("name") == "limit")
    assert limit.attrs["value"] == "3"

    whole = shown(client, sql="SELECT count(*) AS n FROM jobs", limit="3")
    assert whole.answer["truncated"] is False
    assert re.fullmatch(r"1 row in [\d,.]+ ms", whole.element("summary").text())


def test_download_links_answer_each_format(client: httpx.Client) -> None:
    page = shown(client, sql=BY_FUNCTION)
    links = {
        a.text(): a.attrs["href"]
        for a in page.document.all("a")
        if "format=" in a.attrs.get("href", "")
    }
    assert set(links) == {"CSV", "Parquet", "Arrow"}
    media = {"CSV": "text/csv", "Parquet": "application/vnd.apache.parquet"}
    media["Arrow"] = "application/vnd.apache.arrow.stream"
    for label, href in links.items():
        query = parse_qs(urlsplit(href).query)
        assert urlsplit(href).path == "/api/lake/sql" and query["sql"] == [BY_FUNCTION]
        assert "limit" not in query  # every row, not the page's
        answer = client.get(href)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].split(";")[0] == media[label]
        assert answer.headers["x-raylake-row-count"] == str(len(page.rows))
    csv = client.get(links["CSV"]).text.splitlines()
    assert csv[0] == '"func_or_class_name","attempts"'
    assert csv[1] == f'"square",{page.rows[0][1]}'


def test_dialect_is_kept(client: httpx.Client) -> None:
    sql = "SELECT CAST(count(*) AS VARCHAR) AS n FROM jobs"
    page = shown(client, sql=sql, dialect="trino")
    assert page.status == 200 and page.rows == [["3"]]
    select = next(e for e in page.document.all("select") if e.attrs.get("name") == "dialect")
    assert [o.attrs["value"] for o in select.all("option") if "selected" in o.attrs] == ["trino"]
    hrefs = [
        a.attrs["href"] for a in page.document.all("a") if "format=" in a.attrs.get("href", "")
    ]
    assert all(parse_qs(urlsplit(h).query)["dialect"] == ["trino"] for h in hrefs)


@pytest.mark.parametrize(
    ("sql", "params", "code"),
    [
        ("SELECT FROM WHERE", {}, "syntax_error"),
        ("DROP VIEW tasks", {}, "not_read_only"),
        ("SELECT * FROM read_csv('/etc/passwd')", {}, "forbidden_function"),
        ("SELECT nope FROM tasks", {}, "query_failed"),
        ("SELECT 1", {"limit": "0"}, "bad_request"),
        ("SELECT 1", {"limit": "ten"}, "bad_request"),
        ("SELECT 1", {"dialect": "klingon"}, "bad_request"),
    ],
)
def test_errors_are_shown_with_the_api_status_and_code(
    client: httpx.Client, sql: str, params: dict[str, str], code: str
) -> None:
    page = shown(client, sql=sql, **params)
    assert page.status == 400
    error = page.element("error")
    assert error.attrs["role"] == "alert"
    assert error.text().startswith(f"Error ({code}): ")
    assert page.editor == sql  # still there to fix
    assert page.document.by_id("rows") is None
    api = api_answer(client, sql, **params)
    if params.get("limit") != "ten":  # the page reads the form's number itself
        assert api.status_code == 400
        assert api.json()["data"]["error"] == code
        assert error.text() == f"Error ({code}): {api.json()['msg']}"


def test_empty_query_only_shows_the_editor(client: httpx.Client) -> None:
    page = shown(client, sql="   ")
    assert page.status == 200 and page.element("output").children == []


def test_a_leading_newline_and_markup_in_the_query_come_back_unchanged(
    client: httpx.Client,
) -> None:
    sql = "\n\n  SELECT '&lt;' AS \"a<b\", 1 AS x -- </textarea> & more\n"
    page = shown(client, sql=sql)
    assert page.editor == sql
    assert page.columns[0] == ("a<b", "VARCHAR")
    assert page.rows == [["&lt;", "1"]]


@pytest.mark.parametrize("sql", XSS_QUERIES)
def test_user_sql_and_values_are_inert(client: httpx.Client, sql: str) -> None:
    page = shown(client, sql=sql)
    assert page.editor == sql
    scripts = [e.attrs for e in page.document.all("script")]
    expected = [{"src": "/lake/static/console/console.js", "defer": ""}]
    if page.status == 200:
        expected.append({"type": "application/json", "id": "answer"})
        assert page.answer["sql"] == sql
    assert scripts == expected
    for element in page.document.all():
        assert element.tag not in {"img", "svg", "iframe", "object", "embed", "b"}, element
        assert not [a for a in element.attrs if a.startswith("on")], element
    if page.status == 200:  # the value and the column name, as text in the table
        api = api_answer(client, sql).json()["data"]
        assert page.columns == [(c["name"], c["type"]) for c in api["columns"]]
        assert page.rows == [[cell(v) for v in row] for row in api["rows"]]


def test_nothing_comes_from_outside_the_server(client: httpx.Client) -> None:
    page = client.get("/lake/sql", params={"sql": BY_FUNCTION}).text
    document = parse(page)
    for element in document.all():
        for name in ("src", "href", "action"):
            if name in element.attrs:
                target = element.attrs[name]
                assert target.startswith("/") and not target.startswith("//"), target
    assert not re.search(r"https?:|//", page.split('id="answer"')[0])
    css = (STATIC / "console.css").read_text()
    assert "url(" not in css and "@import" not in css
    js = (STATIC / "console.js").read_text()
    # The SVG namespace is a name, never fetched.
    assert re.findall(r"https?://[^\s\"'`]*", js) == ["http://www.w3.org/2000/svg"]
    assert re.findall(r"fetch\(([^,]*),", js) == ['"/api/lake/sql"']


# In the browser.


@dataclass
class Watched:
    """A fresh browser context's page, and everything it requested, logged or ran into."""

    page: Any
    seen: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def table(self) -> list[list[str]]:
        return list(
            self.page.locator("#rows tbody tr").evaluate_all(
                "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
            )
        )

    def columns(self) -> list[str]:
        return list(self.page.locator("#rows th").evaluate_all("hs => hs.map(h => h.textContent)"))

    def shot(self, name: str) -> None:
        self.page.wait_for_load_state("networkidle")
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@contextlib.contextmanager
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    seen = Watched(page)
    page.on("response", lambda r: seen.seen.append({"status": r.status, "url": r.url}))
    page.on("requestfailed", lambda r: seen.seen.append({"status": "failed", "url": r.url}))
    page.on("pageerror", lambda e: seen.problems.append(f"page error: {e}"))
    # Chromium logs every 4xx answer as an error too; those are checked from `seen`.
    page.on(
        "console",
        lambda m: (
            seen.problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") and not m.text.startswith("Failed to load resource")
            else None
        ),
    )

    def dismiss(dialog: Any) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    try:
        yield seen
    finally:
        context.close()


def run_and_wait(watch: Watched, action: Any) -> None:
    """Do `action`, then wait for the console's answer (a result or an error)."""
    with watch.page.expect_response(lambda r: r.url.endswith("/api/lake/sql")):
        action()
    watch.page.locator("#summary, #error").first.wait_for()


def test_console_in_the_browser(server: Server, browser: Any, client: httpx.Client) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {ARTIFACTS}")
    expected = api_answer(client, BY_FUNCTION).json()["data"]
    with watched(browser) as watch:
        page = watch.page
        page.goto(f"{server.url}/lake/sql")
        editor = page.locator("#sql")
        watch.shot("0-empty")

        # The keyboard: Enter keeps the indentation, Tab indents, Shift+Tab outdents.
        editor.click()
        page.keyboard.type("SELECT")
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        page.keyboard.type("1")
        page.keyboard.press("Enter")
        page.keyboard.type("+ 2")
        assert editor.input_value() == "SELECT\n  1\n  + 2"
        page.keyboard.press("Shift+Tab")
        assert editor.input_value() == "SELECT\n  1\n+ 2"
        page.keyboard.press("Control+z")  # undo still works after the console's edits
        assert editor.input_value() == "SELECT\n  1\n  + 2"
        editor.fill("")

        # Type a query, taking the view's name from the catalog, and run it.
        page.keyboard.type("SELECT func_or_class_name, count(*) AS attempts FROM ")
        page.locator('#catalog details[data-view="tasks"] summary button').click()
        page.keyboard.type(" GROUP BY 1 ORDER BY 2 DESC, 1")
        assert editor.input_value() == BY_FUNCTION
        run_and_wait(watch, lambda: page.keyboard.press("Control+Enter"))
        assert watch.columns() == [f"{c['name']}{c['type']}" for c in expected["columns"]]
        assert watch.table() == [[cell(v) for v in row] for row in expected["rows"]]
        summary = page.locator("#summary").inner_text()
        assert re.fullmatch(rf"{expected['row_count']} rows in [\d,.]+ ms", summary), summary
        bars = page.locator("#chart svg.bar-chart rect")
        assert bars.count() == len(expected["rows"])
        assert bars.first.locator("title").text_content() == f"square: {expected['rows'][0][1]}"
        shared = page.url
        assert parse_qs(urlsplit(shared).query) == {"sql": [BY_FUNCTION]}
        links = page.locator(".downloads a")
        assert links.all_inner_texts() == ["CSV", "Parquet", "Arrow"]
        watch.shot("1-bar-chart")

        # A column from the catalog: open the view, click the column.
        editor.fill("SELECT  FROM jobs")
        editor.evaluate("e => e.setSelectionRange(7, 7)")
        jobs = page.locator('#catalog details[data-view="jobs"]')
        jobs.locator("summary").click(position={"x": 4, "y": 8})
        jobs.locator('button[data-insert="job_id"]').click()
        assert editor.input_value() == "SELECT job_id FROM jobs"
        watch.shot("2-catalog")

        # A time column: a line chart.
        editor.fill(OVER_TIME)
        run_and_wait(watch, lambda: page.locator("#run").click())
        over_time = api_answer(client, OVER_TIME).json()["data"]
        assert watch.table() == [[cell(v) for v in row] for row in over_time["rows"]]
        points = page.locator("#chart svg.line-chart polyline").get_attribute("points")
        assert points is not None and len(points.split()) == over_time["row_count"]
        watch.shot("3-line-chart")

        # A bad query: the API's message, clearly.
        bad = "SELECT * FROM read_csv('/etc/passwd')"
        editor.fill(bad)
        run_and_wait(watch, lambda: page.keyboard.press("Control+Enter"))
        refused = api_answer(client, bad).json()
        error = page.locator("#error")
        assert error.get_attribute("role") == "alert"
        assert error.inner_text() == f"Error ({refused['data']['error']}): {refused['msg']}"
        assert page.locator("#rows").count() == 0
        watch.shot("4-error")

        # Back: the previous query and its result again.
        run_and_wait(watch, page.go_back)
        assert editor.input_value() == OVER_TIME
        assert page.locator("#chart svg.line-chart").count() == 1
    assert not watch.problems, watch.problems
    assert_only_this_server(server, watch)
    refusals = [r for r in watch.seen if r["status"] >= 400]
    assert [(r["status"], urlsplit(r["url"]).path) for r in refusals] == [(400, "/api/lake/sql")]

    # The shared URL, in a fresh browser: the server has already run it.
    with watched(browser) as fresh:
        fresh.page.goto(shared)
        assert fresh.page.locator("#sql").input_value() == BY_FUNCTION
        assert fresh.table() == [[cell(v) for v in row] for row in expected["rows"]]
        assert fresh.page.locator("#chart svg.bar-chart rect").count() == len(expected["rows"])
        fresh.shot("5-shared-url")
    assert not fresh.problems, fresh.problems
    assert not [r for r in fresh.seen if "/api/lake/sql" in r["url"]], "no second run"
    assert_only_this_server(server, fresh)


def test_the_page_works_without_javascript(server: Server, browser: Any) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/lake/sql")
        page.locator("#sql").fill(BY_FUNCTION)
        page.locator("#run").click()
        page.wait_for_url("**/lake/sql?**")
        assert parse_qs(urlsplit(page.url).query)["sql"] == [BY_FUNCTION]
        assert page.locator("#rows tbody tr").first.locator("td").first.inner_text() == "square"
        page.screenshot(path=str(ARTIFACTS / "6-no-javascript.png"), full_page=True)
    finally:
        context.close()


@pytest.mark.parametrize("sql", XSS_QUERIES)
def test_hostile_text_stays_text_in_the_browser(server: Server, browser: Any, sql: str) -> None:
    """Served by the server (a shared link) and run again by console.js, nothing runs."""
    with watched(browser) as watch:
        page = watch.page
        page.goto(f"{server.url}/lake/sql?{urlencode({'sql': sql})}")
        assert page.locator("#sql").input_value() == sql
        page.locator("#summary, #error").first.wait_for()
        run_and_wait(watch, lambda: page.locator("#run").click())
        assert page.locator("#sql").input_value() == sql
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.pwned") is None
        assert page.locator("#output img, #output script, #output b").count() == 0
    assert not watch.dialogs
    assert not [r for r in watch.seen if urlsplit(r["url"]).path == "/x"], "no image loaded"
    assert_only_this_server(server, watch)


def assert_only_this_server(server: Server, watch: Watched) -> None:
    failed = [r for r in watch.seen if r["status"] == "failed" or r["status"] >= 500]
    assert not failed, failed
    assert all(r["url"].startswith(server.url) for r in watch.seen), "reached off the machine"
