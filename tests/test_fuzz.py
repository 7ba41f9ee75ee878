"""Random-graph fuzzing: every drawn graph compiles, is black-stable, imports, runs with the
inferred shapes and dtypes, and its gradients match finite differences in float64.

CI draws GRAPHGEN_FUZZ_EXAMPLES graphs (default 200) from GRAPHGEN_FUZZ_SEED (default 0), so
every run draws the same graphs; raise the first for a longer hunt, change the second to draw
other graphs. A failing graph shrinks and hypothesis prints it (one node a line); keep it as
a named test in the regression section below. The graphs come from tests/strategies.py,
which draws ops through a table.
"""

from __future__ import annotations

import copy
import os
from unittest import mock

import black
import numpy as np
from hypothesis import HealthCheck, given, note, seed, settings
from strategies import FuzzCase, fuzz_cases, undrawn_ops

import graphgen as gg
from graphgen import codegen
from graphgen.codegen import BLACK_MODE

EXAMPLES = int(os.environ.get("GRAPHGEN_FUZZ_EXAMPLES", "200"))
SEED = int(os.environ.get("GRAPHGEN_FUZZ_SEED", "0"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}  # deeper than one op: a little looser than test_ops


def run_case(case: FuzzCase) -> None:
    """Everything one graph must satisfy."""
    g, inputs = case.graph, case.inputs
    source = gg.generate(g, wrt=case.wrt)
    assert gg.generate(g, wrt=case.wrt) == source, "generation is not deterministic"
    assert black.format_str(source, mode=BLACK_MODE) == source, "black changes the output"
    model = gg.compile(g, wrt=case.wrt)
    check_forward(model, case)
    first = model.graph.nodes[model.outputs[0]]
    if case.wrt and first["dtype"] in ("float32", "float64"):
        check_gradient_dtypes(model, case)
        check_workspace(model, case)
        gg.gradcheck(model, inputs, **TOLERANCE)  # in float64, whatever the graph declares


def check_forward(model: gg.Model, case: FuzzCase) -> None:
    """Outputs have the inferred shapes (symbolic dims at their run-time size) and dtypes."""
    values = model.forward(**case.inputs)
    if len(model.outputs) == 1:
        values = (values,)
    for name, value in zip(model.outputs, values):
        data = model.graph.nodes[name]
        want = tuple(case.dims.get(d, d) for d in data["shape"])
        assert np.shape(value) == want, f"output {name}: shape {np.shape(value)}, want {want}"
        assert np.asarray(value).dtype == np.dtype(data["dtype"]), f"output {name}: dtype"


def check_gradient_dtypes(model: gg.Model, case: FuzzCase) -> None:
    """Gradients have the dtype of their inputs (float32 graphs stay float32)."""
    first = np.asarray(model.forward(**case.inputs)[0 if len(model.outputs) > 1 else ...])
    if first.ndim == 0:
        _, grads = model.value_and_grad(**case.inputs)
    else:
        _, grads = model.vjp(**case.inputs, cotangent=np.ones_like(first))
    for name, grad in grads.items():
        assert np.asarray(grad).dtype == case.inputs[name].dtype, f"gradient of {name}"


def check_workspace(model: gg.Model, case: FuzzCase) -> None:
    """With a workspace, results are bitwise those without one, and a later call leaves the
    arrays an earlier call returned untouched."""

    def call(inputs, workspace=None):
        first = np.asarray(model.forward(**inputs)[0 if len(model.outputs) > 1 else ...])
        if first.ndim == 0:
            return model.value_and_grad(**inputs, workspace=workspace)
        return model.vjp(**inputs, cotangent=np.ones_like(first), workspace=workspace)

    halved = {k: v * 0.5 if v.dtype.kind == "f" else v for k, v in case.inputs.items()}
    workspace: dict = {}
    earlier = call(case.inputs, workspace)
    kept = copy.deepcopy(earlier)
    for inputs in (halved, case.inputs):
        with np.errstate(all="ignore"):  # halved inputs may leave a domain: nan equals nan
            got, want = call(inputs, workspace), call(inputs)
        for name in want[1]:
            np.testing.assert_array_equal(got[1][name], want[1][name], err_msg=name)
    for name in kept[1]:
        np.testing.assert_array_equal(earlier[1][name], kept[1][name], err_msg=name)


@FUZZ
@seed(SEED)  # the same graphs on every run
@given(fuzz_cases(float_dtypes=("float64", "float32")))
def test_random_graphs(case):
    note(case.describe())
    run_case(case)


@settings(FUZZ, max_examples=max(EXAMPLES // 2, 1))
@seed(SEED + 1)
@given(fuzz_cases(float_dtypes=("float64", "float32")))
def test_random_graphs_with_every_result_in_a_workspace_buffer(case):
    """Memory planning leaves small results to malloc; here every ufunc result is planned,
    so buffer sharing and in-place chains meet every shape the fuzzer draws."""
    note(case.describe())
    with mock.patch.object(codegen, "MIN_BUFFER_ELEMENTS", 1):
        model = gg.compile(case.graph, wrt=case.wrt)
        first = model.graph.nodes[model.outputs[0]]
        if case.wrt and first["dtype"] in ("float32", "float64"):
            check_workspace(model, case)
            gg.gradcheck(model, case.inputs, **TOLERANCE)


# Registry ops the fuzzer does not draw yet, each with why. A new op must either get an
# OP_TABLE entry in tests/strategies.py or be listed here: the test below fails otherwise.
NOT_FUZZED = {
    **dict.fromkeys(("sign", "floor", "ceil", "round"), "piecewise constant: FD jumps"),
    **dict.fromkeys(("argmax", "argmin", "stop_gradient"), "no gradient; covered by test_ops"),
    **dict.fromkeys(("clip",), "kinks at the bounds need a strategy that avoids them"),
    **dict.fromkeys(
        ("min", "prod", "var", "std", "logsumexp", "cumsum"), "reductions: entries to add"
    ),
    **dict.fromkeys(
        ("concatenate", "stack", "expand_dims", "squeeze", "getitem", "pad", "einsum"),
        "shape ops with attrs: entries to add",
    ),
    **dict.fromkeys(
        ("take", "take_along_axis", "scatter_add", "scatter_add_along_axis", "slice_scatter"),
        "integer index operands: entries to add",
    ),
    **dict.fromkeys(
        (
            "conv2d",
            "conv2d_input_grad",
            "conv2d_weight_grad",
            "max_pool2d",
            "max_pool2d_grad",
            "avg_pool2d",
            "avg_pool2d_grad",
            "layer_norm",
            "batch_norm",
            "dropout",
            "embedding",
            "binary_cross_entropy_with_logits",
            "scaled_dot_product_attention",
            "attention_weights",
        ),
        "NN ops: covered by test_ops, test_oracle and test_models; entries to add",
    ),
    "eye": "no operands; made by einsum's VJP",
    "softmax_cross_entropy_grad": "backward op: made by the VJP of softmax_cross_entropy, drawn",
    "matmul_rows": "drawn as matmul: codegen emits a stack-by-matrix matmul as matmul_rows",
}


def test_every_registry_op_is_fuzzed_or_listed_with_a_reason():
    assert sorted(undrawn_ops()) == sorted(NOT_FUZZED)


# ---- regressions: graphs the fuzzer found, shrunk ------------------------------------------


def regression_case(g: gg.Graph, dims: dict[str, int], seed: int = 0) -> FuzzCase:
    """A FuzzCase for a hand-written graph: inputs drawn like the fuzzer's, positive floats."""
    rng = np.random.default_rng(seed)
    inputs, wrt = {}, []
    for name, data in g.nx.nodes(data=True):
        if data["op"] in ("input", "param"):
            shape = tuple(dims.get(d, d) for d in data["shape"])
            inputs[name] = rng.uniform(0.5, 2.0, shape).astype(data["dtype"])
            wrt += [name] if data["op"] == "param" else []
    return FuzzCase(g, inputs, wrt, dims, "float64")


def test_regression_symbolic_dim_broadcast_against_1_is_unbroadcast():
    """w1 (1, 1, 1) + w0 (n,): the cotangent of w1 must be summed over the n axis (it came
    back with shape (1, 1, n): unbroadcast took a symbolic dim against a 1 as equal)."""
    g = gg.Graph("r1")
    w0 = g.param("w0", ("n",))
    w1 = g.param("w1", (1, 1, 1))
    g.output(gg.sum(w1 + gg.broadcast_to(w0, ("n",))))
    run_case(regression_case(g, {"n": 2}))


def test_regression_size_of_symbolic_dims_binds_as_an_atom():
    """mean over (2, n): the count was emitted as `2 * n`, so `g / count` read `g / 2 * n`."""
    g = gg.Graph("r2")
    w = g.param("w", ())
    x = g.param("x", (2, "n"))
    g.output(gg.mean(0.5 + x) * w)
    run_case(regression_case(g, {"n": 2}))
