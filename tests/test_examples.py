"""Smoke tests: each example written for the command line runs, at tiny sizes, as a script."""

import os
import re
import subprocess
import sys
from pathlib import Path

import graphgen as gg
from graphgen.frontends import load_spec

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def run_example(name: str, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_jacobian_vs_vjp_finds_the_same_gradients():
    out = run_example("jacobian_vs_vjp.py", "--widths", "4,8", "--batch", "2", "--repeats", "1")
    rows = [line for line in out.stdout.splitlines() if re.match(r"^ +\d+ ", line)]
    assert [row.split()[0] for row in rows] == ["4", "8"]
    assert "Same gradients." in out.stdout


def test_use_generated_module_trains_without_importing_graphgen(tmp_path):
    module = tmp_path / "mlp_grad.py"
    out = run_example("use_generated_module.py", module, "--steps", "5", "--batch", "16")
    assert module.is_file()
    assert "step    5  loss" in out.stdout
    assert "test accuracy" in out.stdout
    assert out.stdout.rstrip().endswith("graphgen imported in this process: False")


def test_example_graph_file_matches_its_model_function():
    graphs = EXAMPLES / "graphs"
    from_file = gg.load_graph(graphs / "mlp.json")
    assert gg.generate(from_file) == gg.generate(load_spec(f"{graphs / 'models.py'}:mlp"))
