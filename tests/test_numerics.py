"""Numerical safety: float32 and float64 both work, NaN/inf propagate as NumPy does, and large
logits through the stable ops give finite values and gradients.

The float32 tests run every registry op's own test cases (as tests/test_ops.py does in
float64): a float32 graph called with float32 arrays must give float32 outputs and float32
gradients, and so must a float64 graph called with float32 arrays (generated functions
follow the float dtype of the arrays they are given).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_ops import build_case

import graphgen as gg
from graphgen.ops import REGISTRY

# ops with operands: const and eye make their own dtype from their attrs
OPS = sorted(n for n, op in REGISTRY.items() if op.operands)
# an explicit astype to a float dtype rightly gives that dtype: not a float32 path


def _explicit_float_cast(name: str, index: int) -> bool:
    return name == "astype" and REGISTRY[name].tests[index].attrs.get("dtype") != "int64"


def _has_float_operand(name: str, index: int) -> bool:
    """An int-only case (e.g. clip of ints with float bounds) is no float32 path."""
    case = REGISTRY[name].tests[index]
    return any(
        shape is not None and not case.domain(i).startswith("int:") and case.domain(i) != "bool"
        for i, shape in enumerate(case.shapes)
    )


CASES = [
    (name, i, declared)
    for name in OPS
    for i in range(len(REGISTRY[name].tests))
    for declared in ("float32", "float64")
    if not _explicit_float_cast(name, i) and _has_float_operand(name, i)
]


def one_op(name: str, index: int, declared: str, given: str):
    """(model, inputs, out) for op `name`'s test case `index`, declared in one float dtype
    and fed arrays of another."""
    g, out, inputs = build_case(name, index, np.random.default_rng(index), declared)
    wrt = [n for n, v in inputs.items() if v.dtype.kind == "f"]
    inputs = {n: v.astype(given) if v.dtype.kind == "f" else v for n, v in inputs.items()}
    differentiable = REGISTRY[name].vjp is not None and out.spec.is_float and wrt
    return gg.compile(g, wrt=wrt if differentiable else []), inputs, out


def float_arrays(values) -> list[np.ndarray]:
    if isinstance(values, dict):
        values = list(values.values())
    if not isinstance(values, (tuple, list)):
        values = [values]
    return [np.asarray(v) for v in values if np.asarray(v).dtype.kind == "f"]


@pytest.mark.parametrize(
    ("name", "index", "declared"), CASES, ids=["-".join(map(str, c)) for c in CASES]
)
def test_float32_in_float32_out(name, index, declared):
    model, inputs, out = one_op(name, index, declared, "float32")
    value = model.forward(**inputs)
    for v in float_arrays(value):
        assert v.dtype == np.float32, f"forward gives {v.dtype}"
    if model.wrt:
        first = model.forward(**inputs)
        if np.ndim(first) == 0:
            value, grads = model.value_and_grad(**inputs)
        else:
            cot = np.ones(np.shape(first), dtype=np.float32)
            value, grads = model.vjp(**inputs, cotangent=cot)
        for name_, v in grads.items():
            assert np.asarray(v).dtype == np.float32, f"gradient of {name_} is {v.dtype}"
        assert all(v.dtype == np.float32 for v in float_arrays(value))


def mlp(dtype: str) -> gg.Graph:
    g = gg.Graph("mlp")
    x = g.input("x", ("batch", 4), dtype)
    y = g.input("y", ("batch",), "int64")
    W1, b1 = g.param("W1", (4, 8), dtype), g.param("b1", (8,), dtype)
    W2, b2 = g.param("W2", (8, 3), dtype), g.param("b2", (3,), dtype)
    h = gg.tanh(x @ W1 + b1)
    s = gg.sigmoid(h) * 2.0 - 1 + gg.relu(h) / 2
    loss = gg.softmax_cross_entropy(s @ W2 + b2, y) + 0.1 * gg.mean(gg.square(W1))
    g.output(loss)
    return g


def mlp_inputs(dtype, rng, batch=6):
    return {
        "x": rng.standard_normal((batch, 4)).astype(dtype),
        "y": rng.integers(0, 3, batch),
        "W1": rng.standard_normal((4, 8)).astype(dtype),
        "b1": rng.standard_normal(8).astype(dtype),
        "W2": rng.standard_normal((8, 3)).astype(dtype),
        "b2": rng.standard_normal(3).astype(dtype),
    }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_mlp_in_both_precisions(dtype, rng):
    model = gg.compile(mlp(dtype))
    values = mlp_inputs(dtype, rng)
    loss, grads = model.value_and_grad(**values)
    assert np.asarray(loss).dtype == np.dtype(dtype)
    assert {g.dtype for g in grads.values()} == {np.dtype(dtype)}
    gg.gradcheck(model, values, atol=1e-5)  # in float64, whatever the graph declares


def test_float32_and_float64_agree(rng):
    values = mlp_inputs("float64", rng)
    loss64, grads64 = gg.compile(mlp("float64")).value_and_grad(**values)
    values32 = {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in values.items()}
    loss32, grads32 = gg.compile(mlp("float32")).value_and_grad(**values32)
    np.testing.assert_allclose(loss32, loss64, rtol=1e-5)
    for k in grads64:
        np.testing.assert_allclose(grads32[k], grads64[k], rtol=1e-3, atol=1e-5)


# ---- NaN and inf --------------------------------------------------------------------------


def test_nan_from_the_domain_propagates(rng):
    g = gg.Graph("g")
    x = g.param("x", (3,))
    g.output(gg.sum(gg.log(x) * gg.sqrt(x)))
    model = gg.compile(g)
    with np.errstate(invalid="ignore", divide="ignore"):
        value, grads = model.value_and_grad(np.array([-1.0, 0.0, 2.0]))
    assert np.isnan(value)
    assert np.isnan(grads["x"][0]) and np.isfinite(grads["x"][2])


def test_warnings_are_numpy_warnings_only():
    g = gg.Graph("g")
    x = g.param("x", (2,))
    g.output(gg.sum(1.0 / x))
    model = gg.compile(g)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value, grads = model.value_and_grad(np.array([0.0, 1.0]))
    assert np.isinf(value) and np.isinf(grads["x"][0])
    assert all(issubclass(w.category, RuntimeWarning) for w in caught)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_inputs_flow_through_every_function(value):
    g = gg.Graph("g")
    x = g.param("x", (2, 3))
    g.output(gg.sum(gg.softmax(x) * gg.tanh(x)), gg.max(x, axis=1))
    model = gg.compile(g)
    data = np.zeros((2, 3))
    data[0, 1] = value
    with np.errstate(all="ignore"):
        (loss, mx), grads = model.value_and_grad(data)
        model.vjp(data, cotangent=np.float64(1.0))
    assert np.isfinite(mx[1]) and np.all(np.isfinite(grads["x"][1]))  # the clean row


@pytest.mark.parametrize("const", [np.nan, np.inf, -np.inf, 1e308, -0.0, 5e-324])
def test_extreme_consts_compile_and_fold(const):
    g = gg.Graph("g")
    x = g.param("x", (2,))
    c = g.const(const)
    g.output(gg.sum(x * c + c * 2.0 - (c - c)))
    model = gg.compile(g)
    with np.errstate(all="ignore"):
        value, grads = model.value_and_grad(np.ones(2))
        expected = np.sum(np.ones(2) * const + const * 2.0 - (const - const))
    np.testing.assert_equal(value, expected)


# ---- large logits --------------------------------------------------------------------------

BIG = 1e4


def big_logits(dtype, rng):
    x = rng.standard_normal((4, 5)) * BIG
    x[0] = [BIG, -BIG, BIG, 0.0, -BIG]  # ties at the top, far below
    x[1] = -BIG
    return x.astype(dtype)


def reference_log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


STABLE = {
    "softmax": (lambda x: gg.softmax(x), lambda x: np.exp(reference_log_softmax(x))),
    "log_softmax": (lambda x: gg.log_softmax(x), reference_log_softmax),
    "sigmoid": (gg.sigmoid, lambda x: np.exp(-np.logaddexp(0, -np.asarray(x, np.float64)))),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(STABLE))
def test_large_logits_elementwise(name, dtype, rng):
    build, reference = STABLE[name]
    g = gg.Graph("g")
    x = g.param("x", (4, 5), dtype)
    g.output(build(x))
    model = gg.compile(g)
    logits = big_logits(dtype, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        value = model.forward(logits)
        out, grads = model.vjp(logits, cotangent=np.ones((4, 5), dtype=dtype))
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grads["x"]))
    np.testing.assert_allclose(value, reference(logits), rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_large_logits_cross_entropy(reduction, dtype, rng):
    g = gg.Graph("g")
    x = g.param("x", (4, 5), dtype)
    y = g.input("y", (4,), "int64")
    loss = gg.softmax_cross_entropy(x, y, reduction=reduction)
    g.output(gg.sum(loss) if reduction == "none" else loss)
    model = gg.compile(g)
    logits = big_logits(dtype, rng)
    labels = np.array([1, 2, 3, 4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grads = model.value_and_grad(logits, labels)
    per_row = -reference_log_softmax(logits)[np.arange(4), labels]
    expected = per_row.mean() if reduction == "mean" else per_row.sum()
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    assert np.all(np.isfinite(grads["x"]))
    # the gradient of each row is softmax - onehot (scaled): rows sum to zero
    np.testing.assert_allclose(grads["x"].sum(axis=1), 0.0, atol=1e-6)


def test_large_logits_gradcheck_in_float64(rng):
    g = gg.Graph("g")
    x = g.param("x", (3, 4))
    y = g.input("y", (3,), "int64")
    g.output(gg.softmax_cross_entropy(x, y) + gg.sum(gg.sigmoid(x) * gg.log_softmax(x)))
    model = gg.compile(g)
    logits = rng.standard_normal((3, 4)) * 30 + 1e4  # large, but FD steps still resolve them
    gg.gradcheck(model, {"x": logits, "y": np.array([0, 1, 3])}, eps=1e-5, atol=1e-5)


# ---- regressions ---------------------------------------------------------------------------


def test_regression_the_seed_follows_the_value_dtype():
    """value_and_grad seeded the backward pass with the literal 1.0: where a rule made an
    array of g alone (reshape, broadcast_to), gradients of float32 inputs came out float64."""
    g = gg.Graph("g")
    x, y = g.param("x", (4,)), g.param("y", (4,))
    g.output(x @ y + gg.sum(x))
    model = gg.compile(g)
    _, grads = model.value_and_grad(np.ones(4, np.float32), np.ones(4, np.float32))
    assert {v.dtype for v in grads.values()} == {np.dtype(np.float32)}


def test_regression_max_counts_ties_in_the_float_dtype():
    """The max VJP divided by an int64 count of ties: float32 / int64 is float64."""
    g = gg.Graph("g")
    x = g.param("x", (3, 4), "float32")
    g.output(gg.sum(gg.max(x, axis=0)))
    _, grads = gg.compile(g).value_and_grad(np.arange(12, dtype=np.float32).reshape(3, 4))
    assert grads["x"].dtype == np.float32


def test_regression_sum_of_bool_is_int64():
    """sum of a bool tensor was inferred bool; NumPy counts in int64."""
    g = gg.Graph("g")
    m = g.input("m", (3,), "bool")
    s = gg.sum(m)
    g.output(s)
    assert s.dtype == "int64"
    assert gg.compile(g).forward(np.array([True, True, False])).dtype == np.int64


def test_regression_numpy_calls_on_scalar_consts_do_not_upcast():
    """The power VJP's log(x1) on a const base was emitted as np.log(0.5), an np.float64
    that promoted float32 gradients to float64 (found by the fuzzer)."""
    g = gg.Graph("g")
    w = g.param("w", (), "float32")
    g.output(gg.sum(gg.power(0.5, w)))
    model = gg.compile(g)
    _, grads = model.value_and_grad(np.float32(0.5))
    assert np.asarray(grads["w"]).dtype == np.float32
    gg.gradcheck(model, {"w": np.array(0.5)})
