"""Runtime input checks in generated code: forward, value_and_grad and vjp check each input's
dtype kind, rank, static dims and symbolic dims (consistent across inputs) before anything
else, and raise ValueError naming the input, what was expected and what came.
`checks=False` leaves them out.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import graphgen as gg
from graphgen.api import load_module


def mlp() -> gg.Graph:
    g = gg.Graph("mlp")
    x = g.input("x", ("batch", 3))
    y = g.input("y", ("batch",), "int64")
    m = g.input("mask", (4,), "bool")
    W = g.param("W", (3, 4))
    b = g.param("b", (4,))
    h = gg.where(m, gg.tanh(x @ W + b), 0.0)
    g.output(gg.softmax_cross_entropy(h, y), h)
    return g


@pytest.fixture(scope="module")
def model() -> gg.Model:
    return gg.compile(mlp())


def good(batch: int = 5) -> dict:
    rng = np.random.default_rng(0)
    return {
        "x": rng.standard_normal((batch, 3)),
        "y": rng.integers(0, 4, batch),
        "mask": np.array([True, False, True, True]),
        "W": rng.standard_normal((3, 4)),
        "b": rng.standard_normal(4),
    }


def calls(model, values):
    """forward, value_and_grad and vjp on `values` (each must raise the same way)."""
    cot = np.ones(())
    return [
        lambda: model.forward(**values),
        lambda: model.value_and_grad(**values),
        lambda: model.vjp(**values, cotangent=cot),
    ]


BAD = [
    # (label, changes to the good inputs, message)
    ("rank", {"x": np.zeros(3)}, r"input 'x': expected 2 dims \('batch', 3\), got \(3,\)"),
    ("scalar for a matrix", {"W": 1.0}, r"input 'W': expected 2 dims \(3, 4\), got \(\)"),
    (
        "static dim",
        {"W": np.zeros((3, 5))},
        r"input 'W': dim 1 is 5, expected 4 \(shape \(3, 4\)\)",
    ),
    ("static dim 0", {"b": np.zeros(3)}, r"input 'b': dim 0 is 3, expected 4"),
    (
        "symbolic dim differs",
        {"y": np.zeros(4, dtype=np.int64)},
        r"input 'y': dim 0 \('batch'\) is 4, but 'batch' is 5 in input 'x'",
    ),
    (
        "int for float",
        {"x": np.zeros((5, 3), dtype=np.int64)},
        r"input 'x': expected a float array \(float64\), got dtype int64",
    ),
    ("bool for float", {"b": np.ones(4, dtype=bool)}, r"input 'b': expected a float array"),
    (
        "float for int",
        {"y": np.zeros(5)},
        r"input 'y': expected an integer array \(int64\), got dtype float64",
    ),
    (
        "float for bool",
        {"mask": np.ones(4)},
        r"input 'mask': expected a bool array \(bool\), got dtype float64",
    ),
    (
        "complex",
        {"x": np.zeros((5, 3), dtype=complex)},
        r"input 'x': expected a float array.*complex128",
    ),
    ("a string", {"b": "1234"}, r"input 'b': expected a float array"),
    ("None", {"W": None}, r"input 'W': expected a float array.*object"),
]


@pytest.mark.parametrize(("change", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("which", range(3), ids=["forward", "value_and_grad", "vjp"])
def test_bad_inputs_raise_a_clear_value_error(model, change, message, which):
    call = calls(model, {**good(), **change})[which]
    with pytest.raises(ValueError, match=message):
        call()


def test_inputs_that_passed_before_do_not_let_bad_ones_through():
    """Passing arrays are remembered by shape and dtype kind: after good calls (batch 5 and
    batch 3), every bad input still raises its error, in every function."""
    fresh = gg.compile(mlp())
    for batch in (5, 3):
        for call in calls(fresh, good(batch)):
            call()
    assert len(fresh.module._PASSED) == 4  # per batch: the inputs; with vjp's cotangent
    for _, change, message in BAD:
        for call in calls(fresh, {**good(), **change}):
            with pytest.raises(ValueError, match=message):
                call()


def test_good_inputs_pass_in_every_function(model):
    for call in calls(model, good()):
        call()


def test_symbolic_dims_bind_per_call(model):
    for batch in (1, 7, 2):
        loss, h = model.forward(**good(batch))
        assert h.shape == (batch, 4)


def test_close_kinds_are_accepted(model):
    """The check is on the kind: float32 for float64, other ints for int64, 0-d scalars."""
    values = good()
    values.update(
        x=values["x"].astype(np.float32), y=values["y"].astype(np.uint8), W=values["W"].tolist()
    )
    model.forward(**values)


def test_the_cotangent_is_checked_against_the_first_output(model):
    with pytest.raises(ValueError, match=r"cotangent of output '.*': expected 0 dims"):
        model.vjp(**good(), cotangent=np.ones(5))
    with pytest.raises(ValueError, match=r"cotangent of output '.*': expected a float array"):
        model.vjp(**good(), cotangent=1)


def test_a_non_scalar_output_cotangent_binds_symbolic_dims():
    g = gg.Graph("g")
    x = g.param("x", ("n", 2))
    g.output(gg.tanh(x))
    model = gg.compile(g)
    model.vjp(np.zeros((3, 2)), cotangent=np.ones((3, 2)))
    with pytest.raises(
        ValueError,
        match=r"cotangent of output 'tanh_1': dim 0 \('n'\) is 4, but 'n' is 3 in input 'x'",
    ):
        model.vjp(np.zeros((3, 2)), cotangent=np.ones((4, 2)))


def test_a_symbolic_dim_twice_in_one_input():
    g = gg.Graph("g")
    a = g.param("a", ("n", "n"))
    g.output(gg.sum(a @ a))
    model = gg.compile(g)
    model.forward(np.eye(3))
    with pytest.raises(
        ValueError, match=r"input 'a': dim 1 \('n'\) is 4, but 'n' is 3 in input 'a'"
    ):
        model.forward(np.zeros((3, 4)))


def test_checks_run_before_symbolic_dims_are_bound(model):
    for fn in ("forward", "value_and_grad", "vjp"):
        body = model.source.split(f"\ndef {fn}(")[1]
        lines = [line.strip() for line in body.splitlines()[2:]]
        assert lines[0].startswith("_check_inputs("), fn


def test_checks_false_leaves_them_out():
    source = gg.generate(mlp(), checks=False)
    assert "_check_inputs" not in source
    fast = gg.compile(mlp(), checks=False)
    checked = gg.compile(mlp())
    v1, g1 = fast.value_and_grad(**good())
    v2, g2 = checked.value_and_grad(**good())
    np.testing.assert_array_equal(v1[0], v2[0])
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])
    assert "OUTPUT_SPECS" in source  # the specs stay: they are public constants


def test_the_check_copies_no_data(model):
    """Checking 80 MB of inputs allocates (almost) nothing."""
    module = model.module
    big = {**good(), "x": np.zeros((3_000_000, 3)), "y": np.zeros(3_000_000, dtype=np.int64)}
    args = [big[n] for n in module.INPUTS]
    tracemalloc.start()
    try:
        module._check_inputs(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000


def test_a_module_without_inputs():
    g = gg.Graph("g")
    g.output(g.const([1.0, 2.0]))
    module = load_module(gg.generate(g))
    np.testing.assert_array_equal(module.forward(), [1.0, 2.0])
