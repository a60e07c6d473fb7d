from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci_command = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(ci_command) == 1
    assert ci_command[0] in (ROOT / "README.md").read_text()


def test_readme_python_examples_run():
    from test_docs import compile_block, python_blocks

    readme = ROOT / "README.md"
    blocks = python_blocks(readme)
    assert len(blocks) == 2
    for line, code in blocks:
        exec(compile_block(readme, line, code), {})
