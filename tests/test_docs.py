"""docs/cli.md says its outputs are real: every `$ graphgen ...` line of its console blocks,
and of the README's, is run here, in order, in a folder holding a copy of examples/, and
must print what the page shows (pipes included, through bash).

The files the page describes but does not list (a graph with a typo, a model file that
raises, a generated module with one line broken) are written first, as the page describes
them. A `...` line in an expected output stands for any number of lines. Gradient-check
tables are compared with their numbers masked, since finite-difference errors depend on the
machine's rounding. The two commands that draw pictures need Graphviz and write into docs/:
they are listed in NOT_RUN and not run. The `python examples/...` runs print timings;
tests/test_examples.py runs the examples.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from graphs import mlp
from test_pipeline import function_source

import graphgen as gg

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "cli.md"
README = ROOT / "README.md"

NOT_RUN = {
    "graphgen show examples/graphs/mlp.json --format svg -o docs/mlp.svg",
    "graphgen show examples/graphs/mlp.json --backward --format svg -o docs/mlp_backward.svg",
}
NO_GRAPHVIZ = "graphgen show examples/graphs/mlp.json --format svg"  # run without `dot`
FLOAT = re.compile(r"\d\.\d{3}e[+-]\d{2}")

NET_PY = """import graphgen as gg


def build():
    g = gg.Graph("net")
    x = g.input("x", (3, 4))
    g.output(x @ x)
    return g
"""


def console_commands(page: Path) -> list[tuple[str, str]]:
    """(command, expected output) for each `$ graphgen` line of the page's console blocks;
    an `echo $?` line adds `exit N` to the output of the command before it."""
    commands: list[tuple[str, list[str]]] = []
    inside = False
    current = None
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            inside, current = line == "```console", None
        elif inside and line.startswith("$ "):
            command = line[2:].split("  #")[0].strip()
            if command == "echo $?":
                current = commands[-1][1]
                current.append("exit")
            elif command.startswith("graphgen "):
                current = []
                commands.append((command, current))
            else:
                current = None
        elif inside and current is not None:
            current.append(line)
    return [(command, "\n".join(lines)) for command, lines in commands]


def matches(got: str, want: str) -> bool:
    """Whether got is want line for line, where a `...` line of want stands for any number
    of lines."""
    parts = [
        r"(?:[^\n]*\n)*" if line == "..." else re.escape(line) + r"\n" for line in want.splitlines()
    ]
    return re.fullmatch("".join(parts), got + "\n" if got else "") is not None


COMMANDS = [
    (c, out) for page in (PAGE, README) for c, out in console_commands(page) if c not in NOT_RUN
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of examples/ plus the files the page describes without listing them."""
    folder = tmp_path_factory.mktemp("docs")
    shutil.copytree(
        ROOT / "examples", folder / "examples", ignore=shutil.ignore_patterns("generated")
    )
    (folder / "bad.json").write_text("[\n")
    graph = json.loads((ROOT / "examples" / "graphs" / "mlp.json").read_text())
    for node in graph["nodes"]:
        if node["id"] == "h1":
            node["op"] = "tanhh"
    (folder / "typo.json").write_text(json.dumps(graph))
    (folder / "net.py").write_text(NET_PY)
    return folder


def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """command, as a user types it, in bash: `graphgen` is this checkout's CLI."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if command == NO_GRAPHVIZ:
        env["PATH"] = str(Path(sys.executable).parent)  # Python, but no `dot`
    cli = f'graphgen() {{ "{sys.executable}" -m graphgen.cli "$@"; }}'
    return subprocess.run(
        ["/bin/bash", "-c", f"{cli}\n{command}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_broken_module(folder: Path) -> None:
    """broken_grad.py: mlp_grad.py (written by an earlier command) after the edit the page
    describes, `d_W1 = 1.01 * (x.T @ d_z1)` in the backward pass."""
    source = (folder / "mlp_grad.py").read_text()
    assert source.count("    d_W1 = x.T @ d_z1\n") == 2  # value_and_grad and vjp
    (folder / "broken_grad.py").write_text(
        source.replace("    d_W1 = x.T @ d_z1\n", "    d_W1 = 1.01 * (x.T @ d_z1)\n")
    )


def test_the_page_shows_the_commands_this_file_runs_and_leaves_out():
    listed = [c for c, _ in console_commands(PAGE)]
    assert len(COMMANDS) >= 24
    assert NOT_RUN <= set(listed) and NO_GRAPHVIZ in listed
    assert "graphgen check broken_grad.py" in listed


@pytest.mark.parametrize(("command", "expected"), COMMANDS, ids=[c for c, _ in COMMANDS])
def test_a_documented_command_prints_what_the_page_shows(command, expected, workdir):
    if command == "graphgen check broken_grad.py":
        write_broken_module(workdir)
    done = run(command, workdir)
    lines = expected.splitlines()
    status = 2 if expected.startswith("graphgen: error:") else 0
    if lines[-2:-1] == ["exit"]:
        status, lines = int(lines[-1]), lines[:-2]
    got, want = (done.stdout + done.stderr).rstrip("\n"), "\n".join(lines)
    if command.startswith("graphgen check") and status != 2:
        got, want = FLOAT.sub("#", got), FLOAT.sub("#", want)
    assert matches(got, want), f"{command} printed:\n{got}"
    if "|" not in command:  # a pipeline's status is its last command's
        assert done.returncode == status


def test_the_shipped_graph_file_is_what_the_documented_command_writes(workdir):
    """`graphgen show examples/graphs/models.py:mlp --format json -o examples/graphs/mlp.json`
    (run above, in the copy) writes the file the repository ships."""
    command = (
        "graphgen show examples/graphs/models.py:mlp --format json -o examples/graphs/mlp.json"
    )
    assert command in dict(COMMANDS)
    assert run(command, workdir).returncode == 0
    written = (workdir / "examples" / "graphs" / "mlp.json").read_text()
    assert written == (ROOT / "examples" / "graphs" / "mlp.json").read_text()


def test_the_shipped_derivation_is_what_graphgen_explain_writes(workdir):
    """docs/explain_mlp.md is `graphgen explain examples/graphs/mlp.json -o
    docs/explain_mlp.md`, as docs/cli.md says."""
    assert "graphgen explain examples/graphs/mlp.json -o docs/explain_mlp.md" in PAGE.read_text()
    done = run("graphgen explain examples/graphs/mlp.json -o explain_mlp.md", workdir)
    assert done.returncode == 0
    shipped = (ROOT / "docs" / "explain_mlp.md").read_text()
    assert (workdir / "explain_mlp.md").read_text() == shipped


def test_the_readme_shows_the_code_graphgen_writes_for_its_example():
    """ "What the generated code looks like" is value_and_grad of tests/graphs.py's MLP
    compiled with buffers=False, exactly as graphgen writes it today."""
    shown = README.read_text().split("## What the generated code looks like", 1)[1]
    shown = shown.split("```python\n", 1)[1].split("```", 1)[0]
    written = function_source(gg.compile(mlp(), buffers=False).source, "value_and_grad")
    assert shown.strip() == written.strip()
