"""Write deploy/constraints.txt: every package the image installs, at the version the
development environment (`make setup`) has, so the image runs what the tests ran and
pip picks its versions in seconds instead of backtracking for minutes.

Run after `make setup` (and after changing the dependencies in pyproject.toml):

    .venv/bin/python deploy/lock.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "deploy" / "constraints.txt"
EXTRAS = "dashboard"  # as deploy/Dockerfile installs it
HEADER = """\
# The versions deploy/Dockerfile installs: those of the development environment when
# deploy/lock.py wrote this file. Regenerate it with `.venv/bin/python deploy/lock.py`.
"""


def pip(*args: str) -> str:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout


def normalized(name: str) -> str:
    """A package's name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        installed = Path(scratch) / "installed.txt"
        installed.write_text(pip("freeze", "--exclude-editable"))
        report = Path(scratch) / "report.json"
        pip(
            *("install", "--dry-run", "--ignore-installed", "--quiet"),
            *("--report", str(report), "--constraint", str(installed)),
            f".[{EXTRAS}]",
        )
        chosen = json.loads(report.read_text())["install"]
    pins = sorted(
        f"{normalized(item['metadata']['name'])}=={item['metadata']['version']}"
        for item in chosen
        if item["metadata"]["name"] != "raylake"
    )
    TARGET.write_text(HEADER + "\n".join(pins) + "\n")
    print(f"{TARGET.relative_to(REPO)}: {len(pins)} packages")


if __name__ == "__main__":
    main()
