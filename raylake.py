"""The `raylake` command line: a thin layer that wires the packages together.

raylake ingest  --lake LAKE --namespace NS --cluster NAME PATH...
raylake sql     --lake LAKE [--format table|csv|json|parquet] "SELECT ..."
raylake catalog --lake LAKE
raylake collect --lake LAKE --cluster NAME --role head|worker
raylake serve   --lake LAKE [--host 127.0.0.1] [--port 8080]
raylake materialize --lake LAKE [--session NS/NAME/SESSION] [--ended]
raylake report  --lake LAKE [--since 7d] [--namespace NS] [--cluster NAME] --out report.html
raylake views
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.endpoints import ENDPOINTS
from ingest.settings import add_arguments as add_collector_arguments
from lake.layout import ClusterKey, LayoutError
from lake.store import Lake, LakeError

if TYPE_CHECKING:
    import pyarrow as pa

    from ingest.load import Report

# Each command imports what it needs when it runs: `raylake collect` runs in a sidecar
# with 256 MiB, and DuckDB, polars and rich would take a sixth of it for nothing.

_LAKE_HELP = "lake URL: a local directory or s3://bucket/prefix (env RAYLAKE_LAKE)"


def _lake_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lake", default=os.environ.get("RAYLAKE_LAKE"), help=_LAKE_HELP)
    parser.add_argument(
        "--s3-endpoint-url",
        default=None,
        help="S3 API endpoint, e.g. http://minio:9000 "
        "(env RAYLAKE_S3_ENDPOINT_URL or AWS_ENDPOINT_URL)",
    )


def _open_lake(args: argparse.Namespace, create: bool = False) -> Lake:
    if not args.lake:
        raise SystemExit("raylake: --lake is required (or set RAYLAKE_LAKE)")
    return Lake(args.lake, endpoint_url=args.s3_endpoint_url, create=create)


def cmd_ingest(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ingest.load import ingest_paths, input_files
    from ingest.logs import store_log_dir
    from ingest.snapshots import store_snapshot

    lake = _open_lake(args, create=True)
    cluster = ClusterKey(args.namespace, args.cluster)
    stderr = Console(stderr=True)
    files = input_files(args.paths)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=stderr,
        disable=not stderr.is_terminal,
        transient=True,
    ) as progress:
        task = progress.add_task("ingesting", total=len(files))
        report = ingest_paths(lake, cluster, files, on_file=lambda _: progress.advance(task))
    _print_report(report)
    for name, path in args.snapshot:
        session = args.session or _only_session(report)
        store_snapshot(lake, cluster, session, name, path.read_bytes(), path.stat().st_mtime_ns)
        print(f"snapshot of {ENDPOINTS[name]} in {session}: {path}")
    if args.logs:
        if not args.node_id:
            raise SystemExit("raylake: --logs needs --node-id (the node the logs belong to)")
        session = args.session or _only_session(report)
        logs = store_log_dir(lake, cluster, session, args.node_id, args.logs)
        print(
            f"logs of node {args.node_id} in {session}: {logs.files} files stored "
            f"({logs.bytes:,} bytes), {logs.skipped} unchanged"
        )
    return 1 if report.rejected else 0


def _only_session(report: Report) -> str:
    if len(report.sessions) != 1:
        found = ", ".join(sorted(report.sessions)) or "none"
        raise SystemExit(f"raylake: --logs needs --session (sessions in this ingest: {found})")
    return next(iter(report.sessions))


def _print_report(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="events ingested")
    table.add_column("event type")
    table.add_column("events", justify="right")
    for event_type, count in sorted(report.events_by_type.items()):
        table.add_row(event_type, f"{count:,}")
    table.add_row("total", f"{sum(report.events_by_type.values()):,}", style="bold")
    console.print(table)
    console.print(
        f"{report.files} files, {report.bodies} bodies, {len(report.parts)} Parquet parts written, "
        f"{report.raw_bytes:,} raw bytes new"
    )
    for session in sorted(report.sessions):
        console.print(f"session {session}")
    for path, reason in report.rejected:
        console.print(f"[red]rejected[/red] {path}: {reason}", markup=True, highlight=False)


def cmd_sql(args: argparse.Namespace) -> int:
    from query.console import connect_console, run_query

    lake = _open_lake(args)
    result = run_query(connect_console(lake), args.query, dialect=args.dialect, limit=args.limit)
    _write_result(result, args.format, args.output)
    return 0


def _write_result(result: pa.Table, fmt: str, output: Path | None) -> None:
    import polars as pl
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "table":
        _print_table(result)
        return
    sink = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(_nested_as_json(result), sink)
    elif fmt == "json":
        sink.write(pl.from_arrow(result).write_json().encode())  # type: ignore[union-attr]
    else:
        if output is None and sys.stdout.isatty():
            raise SystemExit("raylake: --format parquet writes binary; give --output FILE")
        pq.write_table(result, sink)
    if output is not None:
        output.write_bytes(sink.getvalue())
    else:
        sys.stdout.buffer.write(sink.getvalue())
        sys.stdout.flush()


def _nested_as_json(result: pa.Table) -> pa.Table:
    """CSV holds no maps, lists or structs: write those cells as JSON text."""
    import duckdb
    import pyarrow as pa

    nested = [f.name for f in result.schema if pa.types.is_nested(f.type)]
    if not nested:
        return result
    replace = ", ".join(f"to_json({quote(name)})::VARCHAR AS {quote(name)}" for name in nested)
    con = duckdb.connect()
    con.register("result", result)
    flat: pa.Table = con.sql(f"SELECT * REPLACE ({replace}) FROM result").to_arrow_table()
    return flat


def quote(identifier: str) -> str:
    from sqlglot import exp

    return exp.to_identifier(identifier, quoted=True).sql("duckdb")


def _print_table(result: pa.Table) -> None:
    import polars as pl
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for name in result.column_names:
        table.add_column(name, overflow="fold")
    frame = pl.from_arrow(result)
    assert isinstance(frame, pl.DataFrame)
    for row in frame.iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    console = Console()
    console.print(table)
    console.print(f"{result.num_rows:,} rows")


def cmd_catalog(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lake.catalog import read_entries

    lake = _open_lake(args)
    table = Table(title=f"sessions in {lake.url}")
    for column in (
        "namespace",
        "cluster",
        "session",
        "node",
        "role",
        "events",
        "logs",
        "last event",
    ):
        table.add_column(column)
    entries = sorted(read_entries(lake), key=lambda e: (e.session, e.namespace, e.cluster, e.role))
    for e in reversed(entries):
        table.add_row(
            e.namespace,
            e.cluster,
            e.session,
            e.node_id[:12],
            e.role,
            f"{sum(e.event_counts.values()):,}",
            f"{e.log_files:,}",
            e.last_event_time or "",
        )
    Console().print(table)
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from ingest.load import rebuild

    lake = _open_lake(args)
    for cluster, report in rebuild(lake).items():
        print(f"cluster {cluster.key}:")
        _print_report(report)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from lake.compact import compact

    lake = _open_lake(args)
    report = compact(lake, target_bytes=args.target_mb * 1024 * 1024)
    print(
        f"{report.partitions} partitions compacted: {report.parts_read} parts merged into "
        f"{report.parts_written}, {report.rows_dropped:,} duplicate rows dropped; "
        f"{report.log_files_joined} shipped log files joined into whole files"
    )
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    # Arrow picks its memory pool at its first allocation, and its own pools keep what a
    # flush freed: under the sidecar's 256 MiB the system allocator, which gives memory
    # back, must be chosen before Arrow loads (about 45 MiB less at peak in the bench).
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    from ingest.settings import config_from
    from ingest.sidecar import run as run_collector

    try:
        config = config_from(args)
    except ValueError as exc:
        raise SystemExit(f"raylake collect: {exc}") from None
    return run_collector(config)


def cmd_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from web.app import ServerConfig
    from web.app import run as run_server

    if not args.lake:
        raise SystemExit("raylake serve: --lake is required (or set RAYLAKE_LAKE)")
    _open_lake(args)  # a missing lake or a newer format: one clear line, before serving
    config = ServerConfig(
        lake=args.lake,
        s3_endpoint_url=args.s3_endpoint_url,
        host=args.host,
        port=args.port,
        auth_token=args.auth_token or None,
        dashboard_dirs=tuple(args.dashboard_dir),
        cache_dir=args.cache_dir,
        recheck_seconds=args.recheck_seconds,
        cors_origins=tuple(args.cors_origin),
        kubeconfig=args.kubeconfig,
        live_namespaces=tuple(args.live_namespace),
    )
    if args.live_dashboard_url_template:
        config = dataclasses.replace(
            config, live_dashboard_url_template=args.live_dashboard_url_template
        )
    try:
        return run_server(config)
    except ValueError as exc:  # an unreadable kubeconfig, a bad URL template
        raise SystemExit(f"raylake serve: {exc}") from None


def cmd_materialize(args: argparse.Namespace) -> int:
    from query.sessions import list_sessions
    from query.state import inputs_version, materialize, read_meta

    lake = _open_lake(args)
    chosen = [s for s in list_sessions(lake) if not args.ended or s.ended]
    if args.session:
        chosen = [
            s
            for s in chosen
            if f"{s.ref.cluster.namespace}/{s.ref.cluster.name}/{s.ref.session}" in args.session
        ]
    for info in chosen:
        ref = info.ref
        meta = read_meta(lake, ref)
        current, _ = inputs_version(lake, ref)
        label = f"{ref.cluster.key} {ref.session}"
        if meta is not None and meta["version"] == current:
            print(f"{label}: state is current ({current})")
            continue
        version = materialize(lake, ref)
        built = read_meta(lake, ref) or {}
        print(f"{label}: state {version} built in {built.get('build_seconds', '?')} s")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import datetime as dt

    from query.report import parse_since
    from web.reports import render_report

    lake = _open_lake(args)
    now = dt.datetime.now(dt.UTC)
    try:
        since = parse_since(args.since, now) if args.since else None
    except ValueError as exc:
        raise SystemExit(f"raylake report: {exc}") from None
    page = render_report(lake, since=since, namespace=args.namespace, cluster=args.cluster, now=now)
    args.out.write_text(page, encoding="utf-8")
    print(f"wrote {args.out} ({len(page.encode()):,} bytes)")
    return 0


def cmd_views(args: argparse.Namespace) -> int:
    from query.engine import view_names

    for name in view_names():
        print(name)
    return 0


def _snapshot_argument(text: str) -> tuple[str, Path]:
    name, equals, path = text.partition("=")
    if not equals or name not in ENDPOINTS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected ENDPOINT=FILE with ENDPOINT one of {', '.join(ENDPOINTS)}"
        )
    return name, Path(path)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="raylake", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="load recorded RayEvent POST bodies")
    _lake_arguments(ingest)
    ingest.add_argument("--namespace", required=True, help="Kubernetes namespace of the cluster")
    ingest.add_argument("--cluster", required=True, help="RayCluster name")
    ingest.add_argument("--node-id", help="with --logs: the node (hex id) the logs belong to")
    ingest.add_argument("--logs", type=Path, help="a Ray session's logs/ directory to store")
    ingest.add_argument("--session", help="with --logs: the session (default: the ingested one)")
    ingest.add_argument(
        "--snapshot",
        action="append",
        default=[],
        type=_snapshot_argument,
        metavar="ENDPOINT=FILE",
        help=f"a recorded dashboard answer to keep ({', '.join(ENDPOINTS)}); repeatable",
    )
    ingest.add_argument("paths", nargs="*", type=Path, help=".json/.jsonl[.gz] files or dirs")
    ingest.set_defaults(run=cmd_ingest)

    sql = commands.add_parser("sql", help="run a read-only query over the lake's views")
    _lake_arguments(sql)
    sql.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
    sql.add_argument("--output", type=Path, help="write the result to this file")
    sql.add_argument("--dialect", default="duckdb", help="SQL dialect of the query (sqlglot)")
    sql.add_argument("--limit", type=int, default=1_000_000, help="row cap (default 1,000,000)")
    sql.add_argument("query")
    sql.set_defaults(run=cmd_sql)

    catalog = commands.add_parser("catalog", help="list the sessions in the lake")
    _lake_arguments(catalog)
    catalog.set_defaults(run=cmd_catalog)

    rebuilding = commands.add_parser("rebuild", help="rewrite every event table from raw/")
    _lake_arguments(rebuilding)
    rebuilding.set_defaults(run=cmd_rebuild)

    compaction = commands.add_parser("compact", help="merge small Parquet parts per partition")
    _lake_arguments(compaction)
    compaction.add_argument(
        "--target-mb", type=int, default=512, help="largest part to write, in MB (512)"
    )
    compaction.set_defaults(run=cmd_compact)

    collect = commands.add_parser(
        "collect", help="the collector beside a Ray node: receive, spool, write to the lake"
    )
    add_collector_arguments(collect)
    collect.set_defaults(run=cmd_collect)

    serve = commands.add_parser(
        "serve", help="the history server: Ray's dashboard API and UI for stored sessions"
    )
    _lake_arguments(serve)
    serve.add_argument(
        "--host",
        default=os.environ.get("RAYLAKE_SERVE_HOST", "127.0.0.1"),
        help="address to listen on (env RAYLAKE_SERVE_HOST; 127.0.0.1)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("RAYLAKE_SERVE_PORT", "8080")),
        help="port to listen on (env RAYLAKE_SERVE_PORT; 8080)",
    )
    serve.add_argument(
        "--auth-token",
        default=os.environ.get("RAYLAKE_AUTH_TOKEN"),
        help="require this token on every route but health checks (env RAYLAKE_AUTH_TOKEN)",
    )
    serve.add_argument(
        "--dashboard-dir",
        type=Path,
        action="append",
        default=[],
        help="a Ray Dashboard build (client/build) to serve; once per Ray version "
        "(the installed ray package's build is served too)",
    )
    serve.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="local copies of a remote lake's session state (default: a temporary directory)",
    )
    serve.add_argument(
        "--recheck-seconds",
        type=float,
        default=2.0,
        help="how long an answer may reuse a session's state before the catalog is "
        "checked for newer data (2)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        help="allow browser requests from this origin (repeatable; CORS is off by default)",
    )
    serve.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="list the RayClusters running now through this kubeconfig (env KUBECONFIG; "
        "in a pod, its service account is used without one)",
    )
    serve.add_argument(
        "--live-namespace",
        action="append",
        default=[n for n in os.environ.get("RAYLAKE_LIVE_NAMESPACES", "").split(",") if n],
        help="list running clusters only in this namespace (repeatable; env "
        "RAYLAKE_LIVE_NAMESPACES, comma-separated; default: every namespace)",
    )
    serve.add_argument(
        "--live-dashboard-url-template",
        default=os.environ.get("RAYLAKE_LIVE_DASHBOARD_URL_TEMPLATE"),
        help="a running cluster's dashboard, for what only it knows (env "
        "RAYLAKE_LIVE_DASHBOARD_URL_TEMPLATE; default: KubeRay's head service)",
    )
    serve.set_defaults(run=cmd_serve)

    materializing = commands.add_parser(
        "materialize", help="build the sessions' state/ tables the history server reads"
    )
    _lake_arguments(materializing)
    materializing.add_argument(
        "--session",
        action="append",
        default=[],
        metavar="NS/NAME/SESSION",
        help="only this session (repeatable; default: every session)",
    )
    materializing.add_argument(
        "--ended", action="store_true", help="only sessions whose collectors have all ended"
    )
    materializing.set_defaults(run=cmd_materialize)

    reporting = commands.add_parser(
        "report", help="write a cross-session HTML report (failures, durations, jobs, nodes)"
    )
    _lake_arguments(reporting)
    reporting.add_argument(
        "--since", help="only what ended in this window: 7d, 12h, 30m or an ISO date (all time)"
    )
    reporting.add_argument("--namespace", help="only this Kubernetes namespace")
    reporting.add_argument("--cluster", help="only this cluster name")
    reporting.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    reporting.set_defaults(run=cmd_report)

    views = commands.add_parser("views", help="list the views SQL can read")
    views.set_defaults(run=cmd_views)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (LakeError, FileNotFoundError, NotADirectoryError, ValueError) as exc:
        if isinstance(exc, ValueError) and not isinstance(exc, _user_errors()):
            raise
        print(f"raylake: {exc}", file=sys.stderr)
        return 2
    return code


def _user_errors() -> tuple[type[ValueError], ...]:
    """Mistakes in what the user gave: reported in a line, not a traceback."""
    from ingest.snapshots import SnapshotError
    from query.console import QueryError

    return (LayoutError, QueryError, SnapshotError)


if __name__ == "__main__":
    sys.exit(main())
