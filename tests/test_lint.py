"""The code base stays lint-, format- and type-clean (ruff and mypy, configured in pyproject.toml)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["neurofwp", "tests", "benchmarks", "analyses", "docs/conf.py"]


def _run(module: str, *args: str) -> None:
    # ruff and mypy are in the test extra: a missing tool is a broken set-up, not a reason to skip
    assert importlib.util.find_spec(module) is not None, f"{module} is not installed (pip install '.[test]')"
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{module} {' '.join(args)} failed:\n{result.stdout}{result.stderr}"


def test_ruff_check():
    _run("ruff", "check", *PATHS)


def test_ruff_format():
    _run("ruff", "format", "--check", *PATHS)


def test_mypy():
    _run("mypy", "neurofwp")
