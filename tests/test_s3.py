"""A lake in S3 (moto's server on loopback, through s3fs) answers like a local lake.

The sample session is ingested three times: into a local directory through the API,
into `s3://raylake-api/lake` through the API and into `s3://raylake-cli/lake` through
the `raylake` command line with `--s3-endpoint-url` (what `make sample` runs). Every
view must give the same rows, the catalog the same entries, and the lake the same
objects under the same names, byte for byte except the catalog's `updated_at`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

import raylake
from ingest.load import ingest_paths
from ingest.logs import store_log_dir
from lake.catalog import read_entries, read_entry
from lake.layout import LAKE_FILE, ClusterKey, log_file_path
from lake.store import Lake, LakeNotFound, LakeVersionError
from query.engine import ENTITY_VIEWS, connect, view_names

# tests/ is not a package: pytest's default ("prepend") import mode puts this file's
# directory on sys.path, so the helper imports as a top-level module.
from s3_server import (
    create_bucket,
    fake_aws_env,
    get_object,
    list_objects,
    moto_server,
    put_object,
)

SAMPLE = Path(__file__).parent / "fixtures" / "ray-2.60-scenario-a"
POSTS = SAMPLE / "posts"
HEAD_NODE = "a7adc7d8d330156f3b83a38b0c44ded53f9781cc3dab953e8694bb36"
WORKER_NODE = "baecc821b4e2be4b05f9d2711297e15761d5a0fa665dd02790868f0e"
SESSION = "session_2026-11-21_20-42-42_066305_20083"
LOGS = {HEAD_NODE: SAMPLE / "logs" / "head", WORKER_NODE: SAMPLE / "logs" / "worker"}
CLUSTER = ClusterKey("default", "demo")
PREFIX = "lake"
BUCKETS = {"api": "raylake-api", "cli": "raylake-cli"}


# --- the server and the lakes ---------------------------------------------------------


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    """Fake credentials for this module only; the environment is restored afterwards."""
    with fake_aws_env():
        yield


@pytest.fixture(scope="module")
def s3_endpoint(aws_env: None) -> Iterator[str]:
    """The endpoint URL of a moto S3 server process, stopped after this module."""
    with moto_server() as endpoint:
        yield endpoint


def _ingest_api(lake: Lake) -> None:
    report = ingest_paths(lake, CLUSTER, [POSTS])
    assert not report.rejected
    assert report.sessions == {SESSION}
    for node_id, directory in LOGS.items():
        store_log_dir(lake, CLUSTER, SESSION, node_id, directory)


def _cli_ingest(url: str, endpoint: str, *, logs: bool = True) -> None:
    """What `make sample` runs: the posts with the head's logs, then the worker's logs."""
    common = ["ingest", "--lake", url, "--s3-endpoint-url", endpoint]
    common += ["--namespace", CLUSTER.namespace, "--cluster", CLUSTER.name]
    if not logs:
        assert raylake.main([*common, str(POSTS)]) == 0
        return
    head = ["--node-id", HEAD_NODE, "--logs", str(LOGS[HEAD_NODE])]
    assert raylake.main([*common, str(POSTS), *head]) == 0
    worker = ["--session", SESSION, "--node-id", WORKER_NODE, "--logs", str(LOGS[WORKER_NODE])]
    assert raylake.main([*common, *worker]) == 0


@pytest.fixture(scope="module")
def local_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The reference: the same ingest into a local directory (this module's own)."""
    lake = Lake(str(tmp_path_factory.mktemp("local") / PREFIX), create=True)
    _ingest_api(lake)
    return lake


@pytest.fixture(scope="module")
def api_lake(s3_endpoint: str) -> Lake:
    create_bucket(s3_endpoint, BUCKETS["api"])
    lake = Lake(f"s3://{BUCKETS['api']}/{PREFIX}", endpoint_url=s3_endpoint, create=True)
    assert not lake.is_local
    _ingest_api(lake)
    return lake


@pytest.fixture(scope="module")
def cli_lake(s3_endpoint: str) -> Lake:
    create_bucket(s3_endpoint, BUCKETS["cli"])
    url = f"s3://{BUCKETS['cli']}/{PREFIX}"
    _cli_ingest(url, s3_endpoint)
    return Lake(url, endpoint_url=s3_endpoint)


@pytest.fixture(params=sorted(BUCKETS))
def s3_lake(request: pytest.FixtureRequest) -> tuple[str, Lake]:
    """Each S3 lake with its bucket: the one the API wrote and the one the CLI wrote."""
    lake: Lake = request.getfixturevalue(f"{request.param}_lake")
    return BUCKETS[request.param], lake


# --- what a lake answers --------------------------------------------------------------


def answers(lake: Lake) -> dict[str, pa.Table]:
    """The full, ordered contents of every view, as Arrow (timestamps stay typed)."""
    con = connect(lake)
    try:
        return {
            view: con.sql(f'SELECT * FROM "{view}" ORDER BY ALL').to_arrow_table()
            for view in view_names()
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def local_answers(local_lake: Lake) -> dict[str, pa.Table]:
    found = answers(local_lake)
    # The comparison means something only if the sample fills the main views.
    for view in (*ENTITY_VIEWS, "task_lifecycle_events", "actor_lifecycle_events"):
        assert found[view].num_rows > 0, view
    return found


@pytest.fixture(scope="module")
def api_answers(api_lake: Lake) -> dict[str, pa.Table]:
    return answers(api_lake)


@pytest.fixture(scope="module")
def cli_answers(cli_lake: Lake) -> dict[str, pa.Table]:
    return answers(cli_lake)


def assert_same_table(actual: pa.Table, expected: pa.Table, what: str) -> None:
    assert actual.schema == expected.schema, f"{what}: schemas differ"
    assert actual.num_rows == expected.num_rows, f"{what}: row counts differ"
    if actual.equals(expected):
        return
    for i in range(actual.num_rows):
        if not actual.slice(i, 1).equals(expected.slice(i, 1)):
            pytest.fail(
                f"{what}: row {i} differs:\n"
                f"  got      {actual.slice(i, 1).to_pylist()}\n"
                f"  expected {expected.slice(i, 1).to_pylist()}"
            )
    pytest.fail(f"{what}: tables differ")


def assert_same_answers(actual: dict[str, pa.Table], expected: dict[str, pa.Table]) -> None:
    assert actual.keys() == expected.keys()
    for view, table in expected.items():
        assert_same_table(actual[view], table, view)


def catalog(lake: Lake) -> list[dict[str, Any]]:
    """The catalog entries, without the time they were written."""
    entries = []
    for entry in read_entries(lake):
        fields = msgspec.structs.asdict(entry)
        assert fields.pop("updated_at")
        entries.append(fields)
    return sorted(entries, key=lambda e: (e["namespace"], e["cluster"], e["session"], e["node_id"]))


def local_files(lake: Lake) -> dict[str, tuple[str, int]]:
    """Every file of a local lake: relative path -> (MD5, size), as S3 lists objects."""
    root = Path(lake.root)
    return {
        path.relative_to(root).as_posix(): (
            hashlib.md5(path.read_bytes()).hexdigest(),
            path.stat().st_size,
        )
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def s3_files(endpoint: str, bucket: str) -> dict[str, tuple[str, int]]:
    """Every object of an S3 lake: path relative to the lake's root -> (ETag, size)."""
    objects = list_objects(endpoint, bucket, f"{PREFIX}/")
    return {key.removeprefix(f"{PREFIX}/"): value for key, value in objects.items()}


def changed_outside_catalog(
    before: dict[str, tuple[str, int]], after: dict[str, tuple[str, int]]
) -> list[str]:
    return [p for p in after if after[p] != before.get(p) and not p.startswith("_catalog/")]


def expected_logs() -> dict[str, int]:
    """Where store_log_dir must put each sample log file, with its size."""
    expected = {}
    for node_id, directory in LOGS.items():
        for path in sorted(directory.rglob("*")):
            if path.is_file() and not path.is_symlink():
                relative = path.relative_to(directory).as_posix()
                expected[log_file_path(CLUSTER, SESSION, node_id, relative)] = path.stat().st_size
    return expected


# --- the same answers -----------------------------------------------------------------


@pytest.mark.parametrize("view", view_names())
@pytest.mark.parametrize("kind", sorted(BUCKETS))
def test_s3_views_match_local(
    kind: str, view: str, request: pytest.FixtureRequest, local_answers: dict[str, pa.Table]
) -> None:
    got: dict[str, pa.Table] = request.getfixturevalue(f"{kind}_answers")
    assert_same_table(got[view], local_answers[view], view)


def test_s3_catalog_matches_local(s3_lake: tuple[str, Lake], local_lake: Lake) -> None:
    _, lake = s3_lake
    expected = catalog(local_lake)
    assert [(e["node_id"], e["role"]) for e in expected] == [
        (HEAD_NODE, "head"),
        (WORKER_NODE, "worker"),
    ]
    assert all(e["log_files"] > 0 and e["event_counts"] for e in expected)
    assert catalog(lake) == expected


def test_s3_objects_match_local(
    s3_endpoint: str, s3_lake: tuple[str, Lake], local_lake: Lake
) -> None:
    """The same objects under the same names; all but the catalog byte for byte."""
    bucket, _ = s3_lake
    got, expected = s3_files(s3_endpoint, bucket), local_files(local_lake)
    assert sorted(got) == sorted(expected)
    for path, (md5, size) in expected.items():
        if path.startswith("_catalog/"):
            continue
        etag, got_size = got[path]
        assert got_size == size, path
        if "-" not in etag:  # a single PUT: the ETag is the MD5 of the bytes
            assert etag == md5, path


def test_s3_logs_under_logs_prefix(s3_endpoint: str, s3_lake: tuple[str, Lake]) -> None:
    bucket, lake = s3_lake
    expected = expected_logs()
    assert len(expected) > 10
    partition = f"logs/cluster={CLUSTER.key}/session={SESSION}/node="
    assert all(path.startswith(partition) for path in expected)
    objects = s3_files(s3_endpoint, bucket)
    stored = {path: size for path, (_, size) in objects.items() if path.startswith(partition)}
    assert stored == expected
    # Beside them, one log-file index per node.
    index = sorted(path for path in objects if path.startswith("logs/_index/"))
    assert index == [
        f"logs/_index/cluster={CLUSTER.key}/session={SESSION}/node={node}.parquet"
        for node in sorted(LOGS)
    ]
    # The lake's own filesystem sees the same files, with the same bytes.
    assert list(lake.list_files("logs")) == sorted([*expected, *index])
    relative = "raylet.out"
    stored_raylet = log_file_path(CLUSTER, SESSION, HEAD_NODE, relative)
    assert lake.read_bytes(stored_raylet) == (LOGS[HEAD_NODE] / relative).read_bytes()


def test_s3_lake_file_in_bucket(s3_endpoint: str, s3_lake: tuple[str, Lake]) -> None:
    bucket, lake = s3_lake
    key = f"{PREFIX}/{LAKE_FILE}"
    assert key in list_objects(s3_endpoint, bucket, key)
    assert json.loads(get_object(s3_endpoint, bucket, key)) == {
        "format": "raylake",
        "version": "1.0",
    }
    assert lake.exists(LAKE_FILE)


def test_cli_sql_on_s3_matches_local(
    s3_endpoint: str, cli_lake: Lake, local_lake: Lake, tmp_path: Path
) -> None:
    def sql(*lake_args: str, query: str) -> pa.Table:
        output = tmp_path / "result.parquet"
        args = ["sql", *lake_args, "--format", "parquet", "--output", str(output), query]
        assert raylake.main(args) == 0
        return pq.read_table(output)

    for view in ("tasks", "jobs"):
        query = f"SELECT * FROM {view} ORDER BY ALL"
        expected = sql("--lake", local_lake.url, query=query)
        assert expected.num_rows > 0, view
        got = sql("--lake", cli_lake.url, "--s3-endpoint-url", s3_endpoint, query=query)
        assert_same_table(got, expected, view)


@pytest.mark.parametrize(
    "variable", ["RAYLAKE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
)
def test_s3_endpoint_from_environment(
    variable: str,
    s3_endpoint: str,
    api_lake: Lake,
    local_lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, s3_endpoint)
    lake = Lake(api_lake.url)
    assert lake.storage_options["endpoint_url"] == s3_endpoint
    assert catalog(lake) == catalog(local_lake)
    query = "SELECT job_id, status, entrypoint FROM jobs ORDER BY ALL"
    assert raylake.main(["sql", "--lake", local_lake.url, "--format", "csv", query]) == 0
    expected = capsys.readouterr().out
    assert expected.count("\n") > 1
    assert raylake.main(["sql", "--lake", api_lake.url, "--format", "csv", query]) == 0
    assert capsys.readouterr().out == expected


def test_s3_newer_major_version_refused(
    s3_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = "raylake-version"
    create_bucket(s3_endpoint, bucket)
    url = f"s3://{bucket}/{PREFIX}"
    with pytest.raises(LakeNotFound):
        Lake(url, endpoint_url=s3_endpoint)
    Lake(url, endpoint_url=s3_endpoint, create=True)
    key = f"{PREFIX}/{LAKE_FILE}"

    # A newer minor version is still readable.
    put_object(s3_endpoint, bucket, key, b'{"format": "raylake", "version": "1.7"}')
    Lake(url, endpoint_url=s3_endpoint)

    newer = b'{"format": "raylake", "version": "2.0"}'
    put_object(s3_endpoint, bucket, key, newer)
    with pytest.raises(LakeVersionError, match=r"format 2\.0"):
        Lake(url, endpoint_url=s3_endpoint)
    with pytest.raises(LakeVersionError):
        Lake(url, endpoint_url=s3_endpoint, create=True)
    assert get_object(s3_endpoint, bucket, key) == newer  # never overwritten

    args = ["--lake", url, "--s3-endpoint-url", s3_endpoint]
    assert raylake.main(["sql", *args, "SELECT * FROM tasks"]) == 2
    assert "lake format 2.0" in capsys.readouterr().err
    ingest = ["ingest", *args, "--namespace", "default", "--cluster", "demo", str(POSTS)]
    assert raylake.main(ingest) == 2
    assert "lake format 2.0" in capsys.readouterr().err
    assert list(list_objects(s3_endpoint, bucket)) == [key]  # the ingest wrote nothing


class StaleRead(Exception):
    """What a reader got wrong about objects written after it last listed."""


def test_s3_reader_sees_objects_written_by_another_process(s3_endpoint: str) -> None:
    """A history server reads a lake that ingesters in other processes keep writing."""
    bucket = "raylake-readers"
    create_bucket(s3_endpoint, bucket)
    url = f"s3://{bucket}/{PREFIX}"
    reader = Lake(url, endpoint_url=s3_endpoint, create=True)
    ingest_paths(reader, CLUSTER, [POSTS / "head"])
    assert [e["node_id"] for e in catalog(reader)] == [HEAD_NODE]
    answers(reader)  # the reader has listed everything once

    # Another process: a filesystem of its own (not fsspec's cached instance).
    s3fs.S3FileSystem.clear_instance_cache()
    writer = Lake(url, endpoint_url=s3_endpoint)
    assert writer.fs is not reader.fs
    ingest_paths(writer, CLUSTER, [POSTS / "worker"])
    expected = catalog(writer)
    assert [e["node_id"] for e in expected] == [HEAD_NODE, WORKER_NODE]
    expected_answers = answers(writer)

    problems = []
    if read_entry(reader, CLUSTER, SESSION, WORKER_NODE) is None:
        problems.append("read_entry(worker) is None")
    try:
        if catalog(reader) != expected:
            problems.append("read_entries differs from the writer's")
    except FileNotFoundError as exc:  # listed by find(), then missing from the dircache
        problems.append(f"read_entries raised FileNotFoundError({exc})")
    got = answers(reader)
    stale = [v for v in expected_answers if not got[v].equals(expected_answers[v])]
    if stale:
        problems.append(f"stale views: {stale}")
    if problems:
        raise StaleRead("; ".join(problems))


# --- last: ingesting again into the module's S3 lakes must change nothing -------------


def test_s3_reingest_via_api_changes_nothing(
    s3_endpoint: str, api_lake: Lake, local_lake: Lake, local_answers: dict[str, pa.Table]
) -> None:
    before = s3_files(s3_endpoint, BUCKETS["api"])
    report = ingest_paths(api_lake, CLUSTER, [POSTS])
    assert not report.rejected
    assert report.raw_bytes == 0  # every body was already kept
    for node_id, directory in LOGS.items():
        logs = store_log_dir(api_lake, CLUSTER, SESSION, node_id, directory)
        assert (logs.files, logs.bytes) == (0, 0)
        assert logs.skipped > 0
    after = s3_files(s3_endpoint, BUCKETS["api"])
    assert sorted(after) == sorted(before)
    assert changed_outside_catalog(before, after) == []
    assert catalog(api_lake) == catalog(local_lake)
    assert_same_answers(answers(Lake(api_lake.url, endpoint_url=s3_endpoint)), local_answers)


def test_s3_reingest_via_cli_changes_nothing(
    s3_endpoint: str, cli_lake: Lake, local_lake: Lake, local_answers: dict[str, pa.Table]
) -> None:
    before = s3_files(s3_endpoint, BUCKETS["cli"])
    _cli_ingest(cli_lake.url, s3_endpoint, logs=False)  # the API test re-stores the logs
    after = s3_files(s3_endpoint, BUCKETS["cli"])
    assert sorted(after) == sorted(before)
    assert changed_outside_catalog(before, after) == []
    assert catalog(cli_lake) == catalog(local_lake)
    assert_same_answers(answers(Lake(cli_lake.url, endpoint_url=s3_endpoint)), local_answers)
