// The raylake SQL console, in the browser: runs the editor's query through
// /api/lake/sql without leaving the page, shows the rows and a chart of them (SVG drawn
// here, no library), and keeps the query in the page's URL so it can be shared. The page
// works without this file too: its form asks the server, which renders the result.
// Everything user-made (queries, values, names) goes into the page as text, never HTML.
"use strict";
(() => {
  const form = document.getElementById("console");
  const editor = document.getElementById("sql");
  const output = document.getElementById("output");
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_BARS = 40;

  // An element with attributes and children (strings become text nodes).
  function el(tag, attributes = {}, ...children) {
    const node = tag.startsWith("svg:")
      ? document.createElementNS(SVG, tag.slice(4))
      : document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  // The editor: Tab indents, Shift+Tab outdents (Escape then Tab leaves the editor),
  // Enter keeps the line's indentation, Ctrl/Cmd+Enter runs. Edits go through
  // execCommand where the browser has it, so that undo still works.
  function replace(start, end, text) {
    editor.focus();
    editor.setSelectionRange(start, end);
    const done = text
      ? document.execCommand("insertText", false, text)
      : document.execCommand("delete");
    if (!done) editor.setRangeText(text, start, end, "end");
  }

  function insert(text) {
    replace(editor.selectionStart, editor.selectionEnd, text);
  }

  function lineStart() {
    return editor.value.lastIndexOf("\n", editor.selectionStart - 1) + 1;
  }

  function outdent() {
    const start = lineStart();
    const spaces = /^ {0,2}/.exec(editor.value.slice(start))[0].length;
    const caret = editor.selectionStart;
    if (spaces === 0) return;
    replace(start, start + spaces, "");
    const moved = Math.max(start, caret - spaces);
    editor.setSelectionRange(moved, moved);
  }

  let escaped = false;
  editor.addEventListener("keydown", (event) => {
    const command = event.ctrlKey || event.metaKey;
    if (event.key === "Enter" && command) {
      event.preventDefault();
      run(true);
    } else if (event.key === "Tab" && !escaped && !command && !event.altKey) {
      event.preventDefault();
      if (event.shiftKey) outdent();
      else insert("  ");
    } else if (event.key === "Enter" && !event.shiftKey && !event.altKey) {
      const start = lineStart();
      const indent = /^[ \t]*/.exec(editor.value.slice(start, editor.selectionStart))[0];
      if (indent) {
        event.preventDefault();
        insert("\n" + indent);
      }
    }
    escaped = event.key === "Escape";
  });

  // The catalog: a click on a view's or a column's name inserts it at the caret.
  document.getElementById("catalog").addEventListener("click", (event) => {
    const button = event.target.closest("button.insert");
    if (button) insert(button.dataset.insert);
  });

  // Running a query.

  // The options besides the query, as the page's URL and the API name them; the
  // defaults are left out of the URL.
  function options() {
    const chosen = {};
    const { limit, dialect } = form.elements;
    if (limit.value !== limit.dataset.default) chosen.limit = limit.value;
    if (dialect.value !== "duckdb") chosen.dialect = dialect.value;
    return chosen;
  }

  function pageUrl(sql) {
    return `${location.pathname}?${new URLSearchParams({ sql, ...options() })}`;
  }

  let inFlight = null;
  async function run(remember) {
    const sql = editor.value;
    if (!sql.trim()) return;
    if (remember) history.pushState(null, "", pageUrl(sql));
    inFlight?.abort();
    const mine = new AbortController();
    inFlight = mine;
    output.replaceChildren(el("p", { id: "running", class: "muted" }, "Running…"));
    let response, body;
    try {
      response = await fetch("/api/lake/sql", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({
          sql,
          limit: Number(form.elements.limit.value),
          dialect: form.elements.dialect.value,
        }),
        signal: mine.signal,
      });
      body = await response.json();
    } catch (error) {
      if (mine.signal.aborted) return;
      const status = response ? `HTTP ${response.status}` : "network";
      showError(status, `The server's answer could not be read: ${error.message}`);
      return;
    }
    if (mine.signal.aborted) return;
    if (!response.ok || body.result === false) {
      showError(body.data?.error ?? `HTTP ${response.status}`, body.msg ?? response.statusText);
      return;
    }
    show(body.data, sql);
  }

  function showError(code, message) {
    output.replaceChildren(
      el("div", { id: "error", role: "alert" }, el("strong", {}, `Error (${code}): `), message),
    );
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(true);
  });

  window.addEventListener("popstate", () => {
    editor.value = new URLSearchParams(location.search).get("sql") ?? "";
    if (editor.value.trim()) run(false);
    else output.replaceChildren();
  });

  // The result: a summary line, downloads, a chart and the rows.

  function show(answer, sql) {
    output.replaceChildren(
      summary(answer),
      downloads(sql),
      chart(answer.columns, answer.rows),
      table(answer.columns, answer.rows),
    );
  }

  const numberFormat = new Intl.NumberFormat("en", { maximumFractionDigits: 3 });

  function summary(answer) {
    const count = answer.row_count;
    return el(
      "p",
      { id: "summary" },
      `${count} row${count === 1 ? "" : "s"} in ${numberFormat.format(answer.elapsed_ms)} ms`,
      answer.truncated
        ? el("span", { class: "truncated" }, " · truncated: the query has more rows")
        : null,
    );
  }

  function downloads(sql) {
    const { dialect } = options();
    const extra = dialect ? { dialect } : {};
    const links = ["csv", "parquet", "arrow"].map((format) =>
      el(
        "a",
        {
          href: `/api/lake/sql?${new URLSearchParams({ sql, format, ...extra })}`,
          download: "",
        },
        format === "csv" ? "CSV" : format[0].toUpperCase() + format.slice(1),
      ),
    );
    return el("p", { class: "downloads" }, "Download all rows: ", ...links);
  }

  // A value as the server's page shows it: text as is, anything else as its JSON.
  function cellText(value) {
    if (value === null || value === undefined) return "NULL";
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function table(columns, rows) {
    const head = el(
      "tr",
      {},
      ...columns.map((c) => el("th", {}, c.name, el("span", { class: "type" }, c.type))),
    );
    const body = rows.map((row) =>
      el(
        "tr",
        {},
        ...row.map((value) => {
          const kind = value === null ? "null" : typeof value === "number" ? "number" : "";
          return el("td", { class: kind, title: cellText(value) }, cellText(value));
        }),
      ),
    );
    return el(
      "div",
      { class: "table-wrap" },
      el("table", { class: "rows", id: "rows" }, el("thead", {}, head), el("tbody", {}, ...body)),
    );
  }

  // Chart: a line over a time column, else bars of a label column; the user may pick.

  const NUMERIC =
    /^(tinyint|smallint|integer|bigint|hugeint|utinyint|usmallint|uinteger|ubigint|uhugeint|float|double|real|decimal|numeric|u?int\d*|halffloat)\b/i;
  const TEMPORAL = /^(timestamp|date)/i;

  function isNumeric(type) {
    return NUMERIC.test(type);
  }

  function isTemporal(type) {
    return TEMPORAL.test(type);
  }

  function epochMs(value) {
    if (typeof value === "number") return value;
    const iso = String(value)
      .replace(" ", "T")
      .replace(/(\.\d{3})\d+/, "$1")
      .replace(/([+-]\d\d)$/, "$1:00");
    return Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(iso) || iso.length <= 10 ? iso : `${iso}Z`);
  }

  function defaultAxes(columns) {
    const index = (test) => columns.findIndex((c) => test(c.type));
    const time = index(isTemporal);
    const label = index((t) => !isNumeric(t) && !isTemporal(t));
    const x = time >= 0 ? time : label >= 0 ? label : 0;
    const y = columns.findIndex((c, i) => i !== x && isNumeric(c.type));
    return { x, y };
  }

  function chart(columns, rows) {
    const box = el("figure", { id: "chart" });
    const { x, y } = defaultAxes(columns);
    if (y < 0 || rows.length === 0) {
      box.append(
        el(
          "figcaption",
          { class: "muted" },
          rows.length === 0
            ? "No rows to chart."
            : "No chart: the result needs a numeric column beside a label or time column.",
        ),
      );
      return box;
    }
    const options = (test, chosen) =>
      columns
        .map((c, i) => [c, i])
        .filter(([c]) => test(c.type))
        .map(([c, i]) => {
          const option = el("option", { value: String(i) }, c.name);
          option.selected = i === chosen;
          return option;
        });
    const xSelect = el("select", { name: "x" }, ...options(() => true, x));
    const ySelect = el("select", { name: "y" }, ...options(isNumeric, y));
    const drawing = el("div");
    const draw = () => {
      const xi = Number(xSelect.value);
      const yi = Number(ySelect.value);
      drawing.replaceChildren(
        isTemporal(columns[xi].type)
          ? lineChart(rows, xi, yi, columns)
          : barChart(rows, xi, yi, columns),
      );
    };
    xSelect.addEventListener("change", draw);
    ySelect.addEventListener("change", draw);
    box.append(
      el("figcaption", {}, el("label", {}, "x ", xSelect), el("label", {}, "y ", ySelect)),
      drawing,
    );
    draw();
    return box;
  }

  // Round numbers from at most `low` to at least `high`, about `count` steps apart.
  function niceTicks(low, high, count) {
    if (low === high) high = low + 1;
    const rough = (high - low) / count;
    const magnitude = 10 ** Math.floor(Math.log10(rough));
    const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough);
    const ticks = [Math.floor(low / step) * step];
    while (ticks[ticks.length - 1] < high) ticks.push(ticks[ticks.length - 1] + step);
    return ticks.map((t) => Number(t.toPrecision(12)));
  }

  function svgText(x, y, text, anchor, extra = {}) {
    return el("svg:text", { x, y, "text-anchor": anchor, "font-size": "11", ...extra }, text);
  }

  function shorten(text, length) {
    return text.length > length ? `${text.slice(0, length - 1)}…` : text;
  }

  // Horizontal bars, so that long labels (function names, ids) stay readable.
  function barChart(rows, xi, yi, columns) {
    const shown = rows.slice(0, MAX_BARS).filter((r) => Number.isFinite(Number(r[yi])));
    const values = shown.map((r) => Number(r[yi]));
    const [left, plot, rowHeight, top] = [220, 460, 20, 24];
    const width = left + plot + 90;
    const height = top + shown.length * rowHeight + 8;
    const low = Math.min(0, ...values);
    const high = Math.max(0, ...values);
    const scale = (v) => left + ((v - low) / (high - low || 1)) * plot;
    const svg = el("svg:svg", {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: "img",
      class: "bar-chart",
      "aria-label": `${columns[yi].name} by ${columns[xi].name}`,
    });
    svg.append(
      svgText(left, 14, `${columns[yi].name} by ${columns[xi].name}`, "start", {
        "font-weight": "bold",
      }),
    );
    shown.forEach((row, i) => {
      const y = top + i * rowHeight;
      const label = cellText(row[xi]);
      const start = scale(Math.min(0, values[i]));
      const bar = el("svg:rect", {
        x: start,
        y: y + 3,
        width: Math.max(1, Math.abs(scale(values[i]) - scale(0))),
        height: rowHeight - 6,
        fill: "#4a7fb5",
      });
      bar.append(el("svg:title", {}, `${label}: ${values[i]}`));
      svg.append(
        svgText(left - 6, y + 14, shorten(label, 32), "end"),
        bar,
        svgText(scale(Math.max(0, values[i])) + 4, y + 14, numberFormat.format(values[i]), "start"),
      );
    });
    const box = el("div", {}, svg);
    if (rows.length > MAX_BARS) {
      box.append(el("p", { class: "muted" }, `The first ${MAX_BARS} of ${rows.length} rows.`));
    }
    return box;
  }

  function lineChart(rows, xi, yi, columns) {
    const points = rows
      .map((r) => [epochMs(r[xi]), Number(r[yi])])
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
      .sort((a, b) => a[0] - b[0]);
    const [width, height, left, right, top, bottom] = [760, 300, 70, 20, 34, 40];
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const [xLow, xHigh] = [Math.min(...xs), Math.max(...xs)];
    const yTicks = niceTicks(Math.min(0, ...ys), Math.max(...ys), 5);
    const [yLow, yHigh] = [yTicks[0], yTicks[yTicks.length - 1]];
    const sx = (v) => left + ((v - xLow) / (xHigh - xLow || 1)) * (width - left - right);
    const sy = (v) => height - bottom - ((v - yLow) / (yHigh - yLow || 1)) * (height - top - bottom);
    const svg = el("svg:svg", {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: "img",
      class: "line-chart",
      "aria-label": `${columns[yi].name} over ${columns[xi].name}`,
    });
    svg.append(
      svgText(left, 14, `${columns[yi].name} over ${columns[xi].name}`, "start", {
        "font-weight": "bold",
      }),
    );
    for (const tick of yTicks) {
      svg.append(
        el("svg:line", {
          x1: left,
          x2: width - right,
          y1: sy(tick),
          y2: sy(tick),
          stroke: "#e3e3e3",
        }),
        svgText(left - 6, sy(tick) + 4, numberFormat.format(tick), "end"),
      );
    }
    const moment = (ms) => `${new Date(ms).toISOString().replace("T", " ").slice(0, 19)} UTC`;
    for (const [ms, anchor] of [
      [xLow, "start"],
      [xHigh, "end"],
    ]) {
      svg.append(svgText(sx(ms), height - bottom + 16, moment(ms), anchor));
    }
    svg.append(
      el("svg:polyline", {
        points: points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "),
        fill: "none",
        stroke: "#4a7fb5",
        "stroke-width": "2",
      }),
    );
    if (points.length <= 200) {
      for (const [x, y] of points) {
        const dot = el("svg:circle", { cx: sx(x), cy: sy(y), r: 3, fill: "#4a7fb5" });
        dot.append(el("svg:title", {}, `${moment(x)}: ${y}`));
        svg.append(dot);
      }
    }
    return svg;
  }

  // The server's own result (a shared URL it has run), shown here with its chart.
  const served = document.getElementById("answer");
  if (served) show(JSON.parse(served.textContent), editor.value);
})();
