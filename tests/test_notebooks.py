"""The notebooks run clean, as committed, against a test lake, and show what they claim.

The test lake holds the sample session twice, under two clusters, so the cross-session
notebook has more than one session and the partition pruning has something to prune.
The post-mortem also runs against a `raylake serve` over the collected lake.
Each notebook runs in a fresh `python3` kernel (the venv's interpreter: jupyter_client
starts a kernel spec whose command is `python` with the running interpreter) with
`RAYLAKE_LAKE` pointing at the test lake. A cell that raises or writes to stderr (a
warning) fails the test.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lake.layout import ClusterKey

from conftest import CLUSTER, SESSION, ingest_sample
from server import Server

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CLUSTERS = (ClusterKey("default", "demo"), ClusterKey("default", "demo-replay"))
EXAMINED = CLUSTERS[1]  # the post-mortem's session, chosen by RAYLAKE_CLUSTER


@pytest.fixture(scope="module")
def two_session_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = str(tmp_path_factory.mktemp("notebooks") / "lake")
    for cluster in CLUSTERS:
        ingest_sample(url, cluster)
    # A first matplotlib import builds its font cache and says so on stderr: do it here.
    import matplotlib.font_manager  # noqa: F401

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAYLAKE_LAKE", url)
        mp.setenv("RAYLAKE_SESSION", SESSION)
        mp.setenv("RAYLAKE_CLUSTER", EXAMINED.name)
        yield url


def execute(name: str) -> tuple[nbformat.NotebookNode, str]:
    """Run a notebook as committed; its outputs' text (stdout and plain-text results)."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": NOTEBOOKS}}
    )
    client.execute()
    *cells, check = notebook.cells
    assert check.outputs[0]["text"].strip() == sys.executable  # the venv's interpreter
    text = []
    for cell in cells:
        for output in cell.get("outputs", []):
            assert output.get("name") != "stderr", f"{name} wrote to stderr:\n{output['text']}"
            assert output["output_type"] != "error"
            text.append(output.get("text") or output.get("data", {}).get("text/plain", ""))
    notebook.cells = cells
    return notebook, "\n".join(text)


def images(notebook: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_notebooks_are_all_tested() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == [
        "01_session_postmortem.ipynb",
        "02_failures_and_durations.ipynb",
        "03_beyond_one_machine.ipynb",
    ]


@pytest.mark.parametrize("where", ["lake", "server"])
def test_session_postmortem(where: str, request: pytest.FixtureRequest) -> None:
    """From the files, and from a running server over them (its SQL and log APIs)."""
    if where == "lake":
        request.getfixturevalue("two_session_lake")
        cluster = EXAMINED
    else:
        server: Server = request.getfixturevalue("server")
        monkeypatch = request.getfixturevalue("monkeypatch")
        cluster = CLUSTER
        monkeypatch.setenv("RAYLAKE_LAKE", server.url)
        monkeypatch.setenv("RAYLAKE_SESSION", SESSION)
        monkeypatch.setenv("RAYLAKE_CLUSTER", cluster.name)
    _, text = execute("01_session_postmortem.ipynb")
    assert f"{cluster.namespace}/{cluster.name}/{SESSION}" in text
    # What failed: the flaky task's three attempts and the crashing actor's two calls,
    # with Ray's error messages; the failed job.
    assert "ValueError: flaky failure for 7" in text
    assert "The actor is temporarily unavailable" in text
    assert "The actor is dead because its worker process has died" in text
    assert "job-fail-1" in text and "JOB_ENTRYPOINT_COMMAND_ERROR" in text
    # The log lines: the driver's retries, the raylet and the GCS on the dead workers,
    # what a dead worker printed last, the failed job's driver output.
    assert "No retries left for task 76385d6aec5a2d68ffffffffffffffffffffffff01000000" in text
    assert "Disconnecting worker, graceful=false" in text
    assert "Reporting worker exit, worker id = 943343d6e05d9f56b1f4" in text
    assert "Counter started at 0" in text
    assert "about to fail" in text


def test_failures_and_durations(two_session_lake: str) -> None:
    notebook, text = execute("02_failures_and_durations.ipynb")
    assert "2 session(s) in 2 cluster(s)" in text
    for cluster in CLUSTERS:  # a cell of a table
        assert re.search(rf"[│┆] {re.escape(cluster.name)} +[│┆]", text), cluster
    assert images(notebook) == 3


def test_beyond_one_machine(two_session_lake: str) -> None:
    _, text = execute("03_beyond_one_machine.ipynb")
    scanned = [line for line in text.splitlines() if "Parquet SCAN" in line]
    assert len(scanned) == 1
    # Only the chosen partition is read: the newest session, whose cluster sorts last.
    assert f"cluster={CLUSTERS[1].key}/session={SESSION}" in scanned[0]
    assert f"cluster={CLUSTERS[0].key}/" not in scanned[0]
    assert "polars over the Parquet files and the tasks view agree on 8 functions" in text
