"""Smoke tests: each example written for the command line runs, at tiny sizes, as a script."""

import importlib.util
import math
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


def losses(stdout: str, pattern: str) -> list[float]:
    """The numbers matched by `pattern` (one group) in the lines of `stdout`, in order."""
    return [float(m.group(1)) for m in re.finditer(pattern, stdout, flags=re.MULTILINE)]


def assert_gradcheck_passed(stdout: str, n_params: int) -> None:
    rows = [line.split() for line in stdout.splitlines() if re.match(r"^\w+ +\d+ +\S+e", line)]
    assert len(rows) == n_params and all(row[-1] == "ok" for row in rows), stdout
    assert re.search(rf"^gradcheck ok: {n_params} params, max abs err \S+$", stdout, re.M)


def test_cnn_gradchecks_and_learns():
    out = run_example("cnn.py", "--epochs", "3", "--limit", "300").stdout
    assert_gradcheck_passed(out, 8)
    curve = losses(out, r"^epoch +\d+  train loss (\S+)")
    assert len(curve) == 4  # epoch 0 (before training) and three epochs
    assert all(math.isfinite(v) for v in curve)
    assert curve[-1] < 0.8 * curve[0], curve
    (accuracy,) = losses(out, r"test accuracy (\S+)")
    assert accuracy > 0.2  # chance is 0.1


def test_transformer_gradchecks_and_the_loss_falls():
    out = run_example("transformer.py", "--steps", "30", "--batch", "16").stdout
    assert_gradcheck_passed(out, 20)
    curve = losses(out, r"^step +\d+  loss (\S+)")
    assert len(curve) >= 3 and all(math.isfinite(v) for v in curve)
    assert curve[-1] < 0.9 * curve[0], curve
    (per_token,) = losses(out, r"reversed: (\S+) of the tokens")
    assert per_token > 0.15  # chance is 0.1


def test_mlp_draws_its_loss_curve_when_matplotlib_is_installed(tmp_path):
    png = tmp_path / "loss.png"
    args = ("--steps", "30", "--out", tmp_path / "mlp_grad.py", "--plot", png)
    out = run_example("mlp.py", *args).stdout
    curve = losses(out, r"^step +\d+  loss (\S+)")
    assert curve[-1] < curve[0]
    if importlib.util.find_spec("matplotlib") is None:
        assert f"matplotlib is not installed: no plot written to {png}" in out
        assert not png.exists()
    else:
        assert f"wrote {png}" in out
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_mlp_without_matplotlib_says_so_and_goes_on(tmp_path):
    """matplotlib made unimportable by an import hook, in a child process."""
    png = tmp_path / "loss.png"
    argv = ["mlp.py", "--steps", "5", "--out", str(tmp_path / "mlp_grad.py"), "--plot", str(png)]
    script = f"""
import runpy, sys
class RefuseMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("matplotlib is deliberately not importable here")
sys.meta_path.insert(0, RefuseMatplotlib())
sys.argv = {argv!r}
runpy.run_path({str(EXAMPLES / "mlp.py")!r}, run_name="__main__")
"""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == f"matplotlib is not installed: no plot written to {png}"
    assert lines[-2].startswith("test loss ")
    assert not png.exists()
