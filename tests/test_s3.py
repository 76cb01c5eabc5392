"""A lake in S3 (moto's server on loopback, through s3fs) answers like a local lake.

The sample session is ingested three times: into a local directory through the API,
into `s3://raylake-api/lake` through the API and into `s3://raylake-cli/lake` through
the `raylake` command line with `--s3-endpoint-url`. Every view must give the same
rows, the catalog the same entries, and the lake the same objects (byte for byte,
except the catalog's `updated_at`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest

# tests/ is not a package: pytest's default ("prepend") import mode puts this file's
# directory on sys.path, so the helper imports as a top-level module.
from s3_server import (
    FAKE_AWS_ENV,
    UNSET_AWS_ENV,
    create_bucket,
    get_object,
    list_objects,
    moto_server,
    put_object,
)

import raylake
from ingest.load import ingest_paths
from ingest.logs import store_log_dir
from lake.catalog import read_entries
from lake.layout import LAKE_FILE, ClusterKey, log_file_path
from lake.store import Lake, LakeNotFound, LakeVersionError
from query.engine import ENTITY_VIEWS, connect, view_names

SAMPLE = Path(__file__).parent / "fixtures" / "ray-2.60-scenario-a"
POSTS = SAMPLE / "posts"
HEAD_NODE = "a7adc7d8d330156f3b83a38b0c44ded53f9781cc3dab953e8694bb36"
WORKER_NODE = "baecc821b4e2be4b05f9d2711297e15761d5a0fa665dd02790868f0e"
SESSION = "session_2026-11-21_20-42-42_066305_20083"
LOGS = {HEAD_NODE: SAMPLE / "logs" / "head", WORKER_NODE: SAMPLE / "logs" / "worker"}
CLUSTER = ClusterKey("default", "demo")
PREFIX = "lake"
API_BUCKET = "raylake-api"
CLI_BUCKET = "raylake-cli"


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    """Fake credentials for this module only; the environment is restored afterwards."""
    with pytest.MonkeyPatch.context() as mp:
        for name in UNSET_AWS_ENV:
            mp.delenv(name, raising=False)
        for name, value in FAKE_AWS_ENV.items():
            mp.setenv(name, value)
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


def _cli_ingest(url: str, endpoint: str) -> None:
    """What `make sample` runs: the posts with the head's logs, then the worker's logs."""
    common = ["ingest", "--lake", url, "--s3-endpoint-url", endpoint]
    common += ["--namespace", CLUSTER.namespace, "--cluster", CLUSTER.name]
    assert raylake.main([*common, str(POSTS), "--node-id", HEAD_NODE, "--logs", str(LOGS[HEAD_NODE])]) == 0
    worker = ["--session", SESSION, "--node-id", WORKER_NODE, "--logs", str(LOGS[WORKER_NODE])]
    assert raylake.main([*common, *worker]) == 0


@pytest.fixture(scope="module")
def local_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = Lake(str(tmp_path_factory.mktemp("local") / PREFIX), create=True)
    _ingest_api(lake)
    return lake


@pytest.fixture(scope="module")
def s3_lake(s3_endpoint: str) -> Lake:
    create_bucket(s3_endpoint, API_BUCKET)
    lake = Lake(f"s3://{API_BUCKET}/{PREFIX}", endpoint_url=s3_endpoint, create=True)
    assert not lake.is_local
    _ingest_api(lake)
    return lake


@pytest.fixture(scope="module")
def cli_lake(s3_endpoint: str) -> Lake:
    create_bucket(s3_endpoint, CLI_BUCKET)
    url = f"s3://{CLI_BUCKET}/{PREFIX}"
    _cli_ingest(url, s3_endpoint)
    return Lake(url, endpoint_url=s3_endpoint)


@pytest.fixture(params=["api", "cli"])
def s3_kind(request: pytest.FixtureRequest) -> tuple[str, Lake]:
    """Each S3 lake with its bucket: the one the API wrote and the one the CLI wrote."""
    fixture, bucket = {"api": ("s3_lake", API_BUCKET), "cli": ("cli_lake", CLI_BUCKET)}[
        request.param
    ]
    lake: Lake = request.getfixturevalue(fixture)
    return bucket, lake


# --- helpers -------------------------------------------------------------------------


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
    pytest.fail(f"{what}: tables differ")  # pragma: no cover


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
    return sorted(entries, key=lambda e: (e["session"], e["node_id"]))


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


def expected_logs() -> dict[str, int]:
    """Where store_log_dir must put each sample log file, with its size."""
    expected = {}
    for node_id, directory in LOGS.items():
        for path in sorted(directory.rglob("*")):
            if path.is_file() and not path.is_symlink():
                relative = path.relative_to(directory).as_posix()
                expected[log_file_path(CLUSTER, SESSION, node_id, relative)] = path.stat().st_size
    return expected


# --- tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("view", view_names())
def test_s3_views_match_local(
    view: str, s3_kind: tuple[str, Lake], local_answers: dict[str, pa.Table]
) -> None:
    _, lake = s3_kind
    con = connect(lake)
    try:
        got = con.sql(f'SELECT * FROM "{view}" ORDER BY ALL').to_arrow_table()
    finally:
        con.close()
    assert_same_table(got, local_answers[view], view)


def test_s3_catalog_matches_local(s3_kind: tuple[str, Lake], local_lake: Lake) -> None:
    _, lake = s3_kind
    expected = catalog(local_lake)
    assert [(e["node_id"], e["role"]) for e in expected] == [
        (HEAD_NODE, "head"),
        (WORKER_NODE, "worker"),
    ]
    assert all(e["log_files"] > 0 and e["event_counts"] for e in expected)
    assert catalog(lake) == expected


def test_s3_objects_match_local(
    s3_endpoint: str, s3_kind: tuple[str, Lake], local_lake: Lake
) -> None:
    """The same objects under the same names; all but the catalog byte for byte."""
    bucket, _ = s3_kind
    got, expected = s3_files(s3_endpoint, bucket), local_files(local_lake)
    assert sorted(got) == sorted(expected)
    for path, (md5, size) in expected.items():
        etag, got_size = got[path]
        assert got_size == size or path.startswith("_catalog/"), path
        if not path.startswith("_catalog/") and "-" not in etag:  # not a multipart upload
            assert etag == md5, path


def test_s3_logs_under_logs_prefix(s3_endpoint: str, s3_kind: tuple[str, Lake]) -> None:
    bucket, lake = s3_kind
    expected = expected_logs()
    assert len(expected) > 10
    assert all(path.startswith(f"logs/cluster=default.demo/session={SESSION}/node=") for path in expected)
    stored = {
        path: size for path, (_, size) in s3_files(s3_endpoint, bucket).items() if path.startswith("logs/")
    }
    assert stored == expected
    # The lake's own filesystem lists the same files.
    assert sorted(lake.list_files("logs")) == sorted(expected)
    head_log = next(p for p in expected if f"node={HEAD_NODE}/" in p)
    relative = head_log.split(f"node={HEAD_NODE}/", 1)[1]
    assert lake.read_bytes(head_log) == (LOGS[HEAD_NODE] / relative).read_bytes()


def test_s3_lake_file_in_bucket(s3_endpoint: str, s3_kind: tuple[str, Lake]) -> None:
    bucket, lake = s3_kind
    assert f"{PREFIX}/{LAKE_FILE}" in list_objects(s3_endpoint, bucket, PREFIX)
    info = json.loads(get_object(s3_endpoint, bucket, f"{PREFIX}/{LAKE_FILE}"))
    assert info == {"format": "raylake", "version": "1.0"}
    assert lake.exists(LAKE_FILE)


def test_cli_sql_on_s3_matches_local(
    s3_endpoint: str, cli_lake: Lake, local_lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    def sql(*lake_args: str, query: str) -> str:
        assert raylake.main(["sql", *lake_args, "--format", "csv", query]) == 0
        out: str = capsys.readouterr().out
        return out

    for view in ENTITY_VIEWS:
        query = f"SELECT * FROM {view} ORDER BY ALL"
        expected = sql("--lake", local_lake.url, query=query)
        assert expected.count("\n") > 1, view
        got = sql("--lake", cli_lake.url, "--s3-endpoint-url", s3_endpoint, query=query)
        assert got == expected, view


@pytest.mark.parametrize(
    "variable", ["RAYLAKE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
)
def test_s3_endpoint_from_environment(
    variable: str,
    s3_endpoint: str,
    s3_lake: Lake,
    local_lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, s3_endpoint)
    lake = Lake(s3_lake.url)
    assert lake.storage_options == {"endpoint_url": s3_endpoint}
    assert catalog(lake) == catalog(local_lake)
    query = "SELECT job_id, status FROM jobs ORDER BY ALL"
    assert raylake.main(["sql", "--lake", local_lake.url, "--format", "csv", query]) == 0
    expected = capsys.readouterr().out
    assert raylake.main(["sql", "--lake", s3_lake.url, "--format", "csv", query]) == 0
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
    with pytest.raises(LakeVersionError, match=r"2\.0"):
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


# Last: these ingest again into the module's S3 lakes (which must change nothing).


def test_s3_reingest_via_api_changes_nothing(
    s3_endpoint: str, s3_lake: Lake, local_lake: Lake, local_answers: dict[str, pa.Table]
) -> None:
    before = s3_files(s3_endpoint, API_BUCKET)
    report = ingest_paths(s3_lake, CLUSTER, [POSTS])
    assert not report.rejected
    assert report.raw_bytes == 0  # every body was already kept
    for node_id, directory in LOGS.items():
        logs = store_log_dir(s3_lake, CLUSTER, SESSION, node_id, directory)
        assert (logs.files, logs.bytes) == (0, 0)
        assert logs.skipped > 0
    after = s3_files(s3_endpoint, API_BUCKET)
    assert sorted(after) == sorted(before)
    changed = [p for p in after if after[p] != before[p] and not p.startswith("_catalog/")]
    assert changed == []
    assert catalog(s3_lake) == catalog(local_lake)
    # A fresh Lake (and so a fresh look at the bucket) gives the same answers.
    fresh = Lake(s3_lake.url, endpoint_url=s3_endpoint)
    assert_same_answers(answers(fresh), local_answers)


def test_s3_reingest_via_cli_changes_nothing(
    s3_endpoint: str, cli_lake: Lake, local_lake: Lake, local_answers: dict[str, pa.Table]
) -> None:
    before = s3_files(s3_endpoint, CLI_BUCKET)
    _cli_ingest(cli_lake.url, s3_endpoint)
    after = s3_files(s3_endpoint, CLI_BUCKET)
    assert sorted(after) == sorted(before)
    changed = [p for p in after if after[p] != before[p] and not p.startswith("_catalog/")]
    assert changed == []
    assert catalog(cli_lake) == catalog(local_lake)
    assert_same_answers(answers(Lake(cli_lake.url, endpoint_url=s3_endpoint)), local_answers)
