"""The `graphgen` command line: each command's behaviour, and one-line errors with exit 2.

Exit codes and error lines are checked on a real process (`python -m graphgen.cli`), the
rest in-process through `graphgen.cli.main`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from graphs import mlp

import graphgen as gg
from graphgen.cli import main
from graphgen.ops import REGISTRY

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("compile", "check", "show", "explain", "ops")


def run_cli(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """`graphgen ARGS` in a fresh interpreter, importing graphgen from this checkout."""
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        [sys.executable, "-m", "graphgen.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


@pytest.fixture
def mlp_json(tmp_path) -> Path:
    path = tmp_path / "mlp.json"
    gg.save_graph(mlp(), path)
    return path


@pytest.fixture
def model_py(tmp_path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(textwrap.dedent("""
            import graphgen as gg

            def positive():
                g = gg.Graph("positive")
                a = g.param("a", (3,))
                g.output(gg.sum(gg.log(a) * gg.sqrt(a)))
                return g

            def broken():
                raise RuntimeError("the model file is broken")
            """))
    return path


# ---- general -----------------------------------------------------------------------------


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"graphgen {gg.__version__}"


def test_help_lists_every_command_with_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert re.search(rf"^  graphgen {command} ", out, re.M), command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert "examples:" in out and f"graphgen {command}" in out


def test_no_command_prints_usage_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: graphgen" in capsys.readouterr().err


# ---- compile -----------------------------------------------------------------------------


def test_compile_writes_the_module_and_prints_a_summary(tmp_path, mlp_json, capsys):
    out = tmp_path / "mlp_grad.py"
    assert main(["compile", str(mlp_json), "-o", str(out)]) == 0
    assert out.read_text() == gg.generate(mlp())
    summary = capsys.readouterr().out
    assert summary.count("\n") == 1
    assert re.fullmatch(
        rf"wrote {re.escape(str(out))}: graph 'mlp', 12 forward nodes, \d+ reverse nodes, "
        r"wrt W1, b1, W2, b2\n",
        summary,
    )


def test_compile_without_output_prints_the_source(mlp_json, capsys):
    assert main(["compile", str(mlp_json)]) == 0
    assert capsys.readouterr().out == gg.generate(mlp())


def test_compile_wrt_limits_the_gradients(mlp_json, capsys):
    main(["compile", str(mlp_json), "--wrt", "W2,b2"])
    assert 'WRT = ("W2", "b2")' in capsys.readouterr().out


def test_compile_name_renames_the_graph(mlp_json, capsys):
    main(["compile", str(mlp_json), "--name", "digits_head"])
    assert "from graph digits_head." in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, options",
    [
        (["--no-buffers"], {"buffers": False}),
        (["--no-checks"], {"checks": False}),
        (["--no-checks", "--no-buffers"], {"checks": False, "buffers": False}),
    ],
)
def test_compile_flags_match_the_python_options(mlp_json, capsys, flags, options):
    assert main(["compile", str(mlp_json), *flags]) == 0
    source = capsys.readouterr().out
    assert source == gg.generate(mlp(), **options) != gg.generate(mlp())


def test_compile_accepts_a_model_function(model_py, capsys):
    assert main(["compile", f"{model_py}:positive"]) == 0
    assert "def value_and_grad(a, *, workspace=None):" in capsys.readouterr().out


# ---- errors: one line, exit 2, no output file ---------------------------------------------


def _error_cases(tmp_path: Path, mlp_json: Path, model_py: Path) -> dict:
    unknown_op = tmp_path / "unknown_op.json"
    unknown_op.write_text(
        json.dumps(
            {
                "graph": {"name": "g", "outputs": ["t"]},
                "nodes": [{"id": "x", "op": "param", "shape": [2]}, {"id": "t", "op": "tanhh"}],
                "edges": [{"source": "x", "target": "t", "arg": 0}],
            }
        )
    )
    bad_shapes = tmp_path / "bad_shapes.json"
    bad_shapes.write_text(
        json.dumps(
            {
                "graph": {"name": "g", "outputs": ["m"]},
                "nodes": [
                    {"id": "a", "op": "param", "shape": [2, 3]},
                    {"id": "b", "op": "param", "shape": [4, 5]},
                    {"id": "m", "op": "matmul"},
                ],
                "edges": [
                    {"source": "a", "target": "m", "arg": 0},
                    {"source": "b", "target": "m", "arg": 1},
                ],
            }
        )
    )
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"nodes": [}')
    return {
        "missing file": (["compile", tmp_path / "missing.json"], "cannot read"),
        "invalid JSON": (["compile", invalid], "invalid JSON at line 1"),
        "unknown op": (["compile", unknown_op], "unknown op 'tanhh'; did you mean 'tanh'?"),
        "shape error": (["compile", bad_shapes], "node 'm' (op matmul)"),
        "unknown wrt": (["compile", mlp_json, "--wrt", "W9"], "wrt name 'W9'"),
        "model raises": (["compile", f"{model_py}:broken"], "RuntimeError: the model file"),
        "no function": (["compile", model_py], "name the function"),
        "bad option": (["compile", mlp_json, "--wrong"], "unrecognized arguments: --wrong"),
        "unwritable": (["compile", mlp_json, "-o", tmp_path / "no" / "x.py"], "cannot write"),
    }


CASES = [
    "missing file",
    "invalid JSON",
    "unknown op",
    "shape error",
    "unknown wrt",
    "model raises",
    "no function",
    "bad option",
    "unwritable",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_prints_one_line_exits_2_and_writes_nothing(tmp_path, mlp_json, model_py, case):
    args, message = _error_cases(tmp_path, mlp_json, model_py)[case]
    out = tmp_path / "out.py"
    if "-o" not in args:
        args = [*args, "-o", out]
    before = sorted(tmp_path.iterdir())
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("graphgen: error: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(tmp_path.iterdir()) == before


def test_failed_compile_leaves_the_existing_output_untouched(tmp_path, mlp_json):
    out = tmp_path / "out.py"
    out.write_text("previous\n")
    done = run_cli("compile", mlp_json, "--wrt", "nope", "-o", out)
    assert done.returncode == 2
    assert out.read_text() == "previous\n"


def test_traceback_flag_shows_the_traceback(tmp_path):
    done = run_cli("--traceback", "compile", tmp_path / "missing.json")
    assert done.returncode != 0 and "Traceback" in done.stderr


# ---- check -------------------------------------------------------------------------------


def test_check_of_a_generated_module_prints_a_row_per_wrt_name(tmp_path, capsys):
    path = tmp_path / "mlp_grad.py"
    gg.compile(mlp()).save(path)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    for name in ("W1", "b1", "W2", "b2"):
        assert re.search(rf"^{name} +\d+ +\S+ +\S+ +ok$", out, re.M), name
    assert "ok: all 4 gradients agree" in out


def test_check_binds_symbolic_dims_and_labels_in_range(tmp_path, capsys):
    path = tmp_path / "mlp_grad.py"
    gg.compile(mlp(n_out=3)).save(path)
    main(["check", str(path), "--batch", "7"])
    out = capsys.readouterr().out
    assert "(batch=7, seed 0)" in out
    assert "x f64[7,6] real; y i64[7] int:3;" in out


def test_check_dim_overrides_batch_for_one_dim(mlp_json, capsys):
    assert main(["check", str(mlp_json), "--batch", "2", "--dim", "batch=5"]) == 0
    assert "x f64[5,6]" in capsys.readouterr().out


def test_check_unknown_dim_is_an_input_error(mlp_json, capsys):
    assert main(["check", str(mlp_json), "--dim", "seq=4"]) == 2
    assert "the inputs have no symbolic dim 'seq'" in capsys.readouterr().err


def test_check_of_a_spec_draws_positive_inputs_where_the_ops_need_them(model_py, capsys):
    assert main(["check", f"{model_py}:positive"]) == 0
    assert "a f64[3] positive" in capsys.readouterr().out


def test_check_only_the_wrt_names_asked_for(tmp_path, capsys):
    path = tmp_path / "mlp_grad.py"
    gg.compile(mlp()).save(path)
    assert main(["check", str(path), "--wrt", "b2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^b2 ", out, re.M) and not re.search(r"^W1 ", out, re.M)


def test_check_of_a_module_older_than_input_domains_still_runs(tmp_path, capsys):
    source = gg.generate(mlp(n_out=2))
    source = re.sub(r"INPUT_DOMAINS = \{.*?\}\n", "", source, flags=re.S)
    path = tmp_path / "old.py"
    path.write_text(source)
    assert main(["check", str(path)]) == 0
    assert "y i64[3] int:2" in capsys.readouterr().out


def test_check_exits_1_when_a_gradient_is_wrong(tmp_path):
    path = tmp_path / "mlp_grad.py"
    source = gg.generate(mlp())
    assert "d_W1 = x.T @ d_z1" in source
    path.write_text(source.replace("d_W1 = x.T @ d_z1", "d_W1 = 1.5 * (x.T @ d_z1)"))
    done = run_cli("check", path)
    assert done.returncode == 1
    assert re.search(r"^W1 .* FAIL$", done.stdout, re.M)
    assert re.search(r"^b1 .* ok$", done.stdout, re.M)
    assert "FAIL: W1 disagrees with central finite differences" in done.stdout


def test_check_of_a_python_file_that_is_not_generated_is_an_input_error(tmp_path):
    path = tmp_path / "other.py"
    path.write_text("X = 1\n")
    done = run_cli("check", path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "is not a module generated by graphgen" in done.stderr


# ---- show --------------------------------------------------------------------------------


def test_show_lists_one_node_a_line(mlp_json, capsys):
    assert main(["show", str(mlp_json)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(mlp().nx) + 1
    assert "h1: f64[batch,5] = tanh(z1)" in lines
    assert lines[-1] == "outputs: loss"


def test_show_backward_marks_every_reverse_node(mlp_json, capsys):
    assert main(["show", str(mlp_json), "--backward"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# reverse"))
    reverse = lines[start + 1 : -2]
    assert reverse and all("  # bwd: " in line for line in reverse)
    assert not any("# bwd" in line for line in lines[:start])
    assert any(re.search(r"# bwd: matmul VJP at \w+, cotangent of h1$", r) for r in reverse)
    assert any(r.endswith("# bwd: tanh VJP at h1, cotangent of z1") for r in reverse)
    assert lines[-1].startswith("gradients: W1 = ")


def test_show_backward_of_a_graph_without_gradients_is_an_input_error(mlp_json, capsys):
    assert main(["show", str(mlp_json), "--backward", "--wrt", ""]) == 2
    assert "nothing to differentiate" in capsys.readouterr().err


HOSTILE = 'a"b\\n\\"c\nd&amp;{e}|<f>'


def hostile_graph() -> gg.Graph:
    g = gg.Graph('x"; rankdir=LR; "')
    w = g.param(HOSTILE, (2,))
    g.output(gg.sum(gg.tanh(w, name="t\\l\x1b[31m")))
    return g


def test_dot_labels_escape_untrusted_names():
    from graphgen.ir import validate
    from graphgen.show import forward_view, to_dot

    dot = to_dot(forward_view(validate(hostile_graph())))
    quoted = r'"(?:[^"\\\n]|\\.)*"'
    for line in dot.splitlines()[4:-1]:
        assert re.fullmatch(rf"  n\d+ \[label={quoted}, .*\];|  n\d+ -> n\d+( \[.*\])?;", line)
    assert '"a\\"b\\\\n\\\\\\"c\\\\nd&amp;amp;{e}|<f>' in dot
    assert "\x1b" not in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_svg_shows_untrusted_names_literally(tmp_path):
    path = tmp_path / "hostile.json"
    gg.save_graph(hostile_graph(), path)
    out = tmp_path / "g.svg"
    assert main(["show", str(path), "--format", "svg", "-o", str(out)]) == 0
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    assert "a&quot;b\\n\\&quot;c\\nd&amp;amp;{e}|&lt;f&gt;" in svg


def test_svg_without_graphviz_is_one_clear_line_and_exit_2(tmp_path, mlp_json):
    empty = tmp_path / "empty_path"
    empty.mkdir()
    done = run_cli("show", mlp_json, "--format", "svg", env={"PATH": str(empty)})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "needs Graphviz" in done.stderr and "--format dot" in done.stderr


def test_show_json_saves_a_model_function_as_a_graph_file(tmp_path, model_py):
    out = tmp_path / "positive.json"
    assert main(["show", f"{model_py}:positive", "--format", "json", "-o", str(out)]) == 0
    assert gg.generate(gg.load_graph(out)) == gg.generate(
        gg.frontends.load_spec(f"{model_py}:positive")
    )


def test_show_json_backward_is_a_compilable_joint_graph(tmp_path, mlp_json):
    out = tmp_path / "joint.json"
    assert main(["show", str(mlp_json), "--backward", "--format", "json", "-o", str(out)]) == 0
    joint = gg.load_graph(out)
    assert len(joint.graph["outputs"]) == 5  # the loss and four gradients
    gg.compile(joint, wrt=[])


# ---- explain and ops ---------------------------------------------------------------------


def test_explain_writes_the_derivation_to_a_file(tmp_path, mlp_json, capsys):
    out = tmp_path / "derivation.md"
    assert main(["explain", str(mlp_json), "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert out.read_text().startswith("# The backward pass of `mlp`, derived node by node")


def test_ops_lists_every_op_with_its_vjp_formula(capsys):
    assert main(["ops"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["op", "operands", "attrs", "VJP", "formula"]
    assert [line.split()[0] for line in lines[1:]] == sorted(REGISTRY)
    matmul = next(line for line in lines if line.startswith("matmul "))
    assert matmul.endswith(REGISTRY["matmul"].formula)


def test_ops_markdown_is_a_table(capsys):
    main(["ops", "--format", "markdown"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["| op | operands | attrs | VJP formula |", "|---|---|---|---|"]
    assert "| sum | x | axis=None, keepdims=False |" in "\n".join(lines)
