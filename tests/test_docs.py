"""The documentation builds without warnings, its tutorials run as written, its tables match the code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))

_PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", flags=re.M | re.S)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """The fenced ```python blocks of a Markdown file, in order, with the line number each block's code starts on."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in _PYTHON_BLOCK.finditer(text)]


def compile_block(path: Path, line: int, code: str):
    """Compile one block so that tracebacks name the Markdown file and its line numbers."""
    return compile("\n" * (line - 1) + code, str(path), "exec")


# Runs a Markdown file's blocks top to bottom in one namespace, as a reader pasting them
# into one Python session would (a fresh interpreter: no state shared with the test run).
_RUNNER = """
import json, sys
path, blocks = sys.argv[1], json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
for line, code in blocks:
    exec(compile("\\n" * (line - 1) + code, path, "exec"), namespace)
"""


def run_markdown(path: Path, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    blocks = python_blocks(path)
    # One intra-op thread: the tutorials' tensors are small, and on a machine whose cores are
    # busy with other work (a parallel test run) torch's thread pool can be 10-20x slower.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, str(path)],
        input=json.dumps(blocks),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_sphinx_build_has_no_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(DOCS), str(tmp_path / "html")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "html" / "index.html").is_file()


def test_there_are_three_tutorials_each_with_code():
    assert [path.stem for path in TUTORIALS] == ["compare-rules", "fit-recording", "plasticity-simulation"]
    for path in TUTORIALS:
        assert len(python_blocks(path)) >= 3, path


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda path: path.stem)
def test_tutorial_runs_as_written(path, tmp_path):
    result = run_markdown(path, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, f"{path.name} failed:\n{result.stdout}\n{result.stderr}"
    # a tutorial writes only into the temporary folder it creates, never into the working directory
    assert not any(tmp_path.iterdir()), sorted(p.name for p in tmp_path.iterdir())


def _parameter_table(text: str) -> list[list[str]]:
    start = text.index("| rules | parameter | symbol | default | bounds |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_rules_page_parameters_match_the_rule_definitions():
    from neurofwp.plasticity import RULES

    listed: dict[tuple[str, str], tuple[float, tuple[float, float]]] = {}
    for rules, name, _symbol, default, bounds in _parameter_table((DOCS / "rules.md").read_text(encoding="utf-8")):
        low, high = (float(x.replace("−", "-")) for x in bounds.split("]")[0].strip("[]").split(","))
        for rule in re.findall(r"`([^`]+)`", rules):
            listed[(rule, name.strip("`"))] = (float(default), (low, high))
    defined = {(rule.name, p.name): (p.default, p.bounds) for rule in RULES.values() for p in rule.parameters}
    assert listed == defined


def test_rules_page_states_every_rule_expression():
    """Each rule's on_pre/on_post/drift expressions are the ones the rules page is written from."""
    from neurofwp.plasticity import RULES

    # the page's equations, transcribed back into the definitions' expression syntax
    stated = {
        "stdp": ("-A_minus * y", "A_plus * x", None),
        "stdp-nearest": ("-A_minus * y", "A_plus * x", None),
        "triplet": ("-o1 * (A2_minus + A3_minus * r2)", "r1 * (A2_plus + A3_plus * o2)", None),
        "triplet-nearest": ("-o1 * (A2_minus + A3_minus * r2)", "r1 * (A2_plus + A3_plus * o2)", None),
        "delta": ("0", "eta * x", "-eta * prediction * x"),
        "stdp-modulated": ("-beta * A_minus * y", "beta * A_plus * x", None),
        "stdp-gated": ("-beta_minus * A_minus * y", "beta_plus * A_plus * x", None),
        "tsodyks-markram": ("0", "0", None),
    }
    assert set(stated) == set(RULES)
    for name, rule in RULES.items():
        assert (rule.on_pre, rule.on_post, rule.drift) == stated[name], name
    assert RULES["delta"].summed == (("prediction", "w * x / tau_plus", "Hz"),)
    assert RULES["tsodyks-markram"].response == "A * u * R"
    assert [(t.rest, t.on_spike) for t in RULES["tsodyks-markram"].traces] == [
        ("U", "u + U * (1 - u)"),
        ("1", "R * (1 - u)"),
    ]
    assert RULES["stdp-modulated"].helpers == (("beta", "1 / (1 + exp(-(a * y_slow + b * x_slow + g * m + c)))"),)
    nearest = {name: [trace.reset for trace in rule.traces] for name, rule in RULES.items()}
    assert all(nearest["stdp-nearest"]) and all(nearest["triplet-nearest"])
    assert not any(nearest["stdp"] + nearest["triplet"] + nearest["delta"] + nearest["stdp-modulated"])
