"""Autodiff behaviours of the whole pipeline: fan-out, pruning, determinism, symbolic dims."""

import ast

import numpy as np
import pytest
from graphs import mlp, mlp_inputs

import graphgen as gg


def function_source(source: str, name: str) -> str:
    tree = ast.parse(source)
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    return ast.get_source_segment(source, fn)


def test_operand_used_twice_gets_both_cotangents(rng):
    g = gg.Graph("square")
    x = g.param("x", (3,))
    g.output(gg.sum(x * x))
    model = gg.compile(g)
    x0 = rng.standard_normal(3)
    _, grads = model.value_and_grad(x0)
    np.testing.assert_allclose(grads["x"], 2 * x0, rtol=1e-15)


def test_weight_used_in_two_places_sums_its_cotangents(rng):
    g = gg.Graph("tied")
    x = g.input("x", (2, 3))
    W = g.param("W", (3, 3))
    g.output(gg.sum(gg.tanh(x @ W) @ W))
    model = gg.compile(g)
    assert "fan-out" in model.source
    assert gg.gradcheck(
        model, {"x": rng.standard_normal((2, 3)), "W": rng.standard_normal((3, 3))}
    ).ok


def test_no_gradient_code_for_an_input_not_in_wrt():
    source = gg.generate(mlp(), wrt=["W2"])
    body = function_source(source, "value_and_grad")
    assert "d_W2" in body
    for absent in ("d_W1", "d_b1", "d_x", "d_z1"):
        assert absent not in body


def test_gradient_of_an_unused_param_is_zero(rng):
    g = gg.Graph("unused")
    x = g.param("x", (3,))
    g.param("unused", (2,))
    g.output(gg.sum(x))
    _, grads = gg.compile(g).value_and_grad(rng.standard_normal(3), rng.standard_normal(2))
    np.testing.assert_array_equal(grads["unused"], np.zeros(2))


def test_wrt_can_name_an_input(rng):
    model = gg.compile(mlp(), wrt="x")
    assert model.wrt == ("x",)
    assert gg.gradcheck(model, mlp_inputs(rng)).ok


def test_two_generations_are_byte_identical():
    assert gg.generate(mlp()) == gg.generate(mlp())


def test_one_compile_serves_every_batch_size(rng):
    model = gg.compile(mlp())
    for batch in (1, 7):
        inputs = mlp_inputs(rng, batch=batch)
        loss, grads = model.value_and_grad(**inputs)
        assert np.isfinite(float(loss))
        assert grads["W1"].shape == (6, 5)


def test_vjp_of_a_non_scalar_output_matches_finite_differences(rng):
    g = gg.Graph("vector")
    x = g.input("x", (4, 3))
    W = g.param("W", (3, 2))
    g.output(gg.tanh(x @ W))
    model = gg.compile(g)
    inputs = {"x": rng.standard_normal((4, 3)), "W": rng.standard_normal((3, 2))}
    assert gg.gradcheck(model, inputs).ok
    outputs, grads = model.vjp(**inputs, cotangent=np.ones((4, 2)))
    assert outputs.shape == (4, 2) and grads["W"].shape == (3, 2)


def test_value_and_grad_of_a_non_scalar_output_says_to_use_vjp():
    g = gg.Graph("vector")
    W = g.param("W", (3,))
    g.output(W * 2.0)
    with pytest.raises(TypeError, match="vjp"):
        gg.compile(g).value_and_grad(np.ones(3))


def test_several_outputs_come_back_as_a_tuple_and_the_first_is_differentiated(rng):
    g = gg.Graph("two")
    W = g.param("W", (3,))
    g.output(gg.sum(W * W), gg.exp(W))
    model = gg.compile(g)
    w = rng.standard_normal(3)
    (total, e), grads = model.value_and_grad(w)
    np.testing.assert_allclose(e, np.exp(w))
    np.testing.assert_allclose(grads["W"], 2 * w)


def test_returned_gradients_are_writable_and_do_not_alias_inputs(rng):
    g = gg.Graph("alias")
    a = g.param("a", (3,))
    b = g.param("b", (2, 3))
    g.output(gg.sum(a + b))
    _, grads = gg.compile(g).value_and_grad(np.zeros(3), np.zeros((2, 3)))
    for grad in grads.values():
        grad += 1.0  # raises if a read-only broadcast view was returned
    assert not np.shares_memory(grads["a"], grads["b"])


def test_backward_statements_name_their_rule_and_shapes():
    body = function_source(gg.generate(mlp()), "value_and_grad")
    lines = body.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("d_W2 ="):
            assert "matmul VJP for W2" in lines[i - 1]
            assert "(5, 4)" in lines[i - 1]
            break
    else:
        raise AssertionError("no d_W2 statement")


def test_dead_intermediates_are_deleted():
    body = function_source(gg.generate(mlp()), "value_and_grad")
    assert "del " in body


def test_a_value_two_rules_build_alike_is_computed_once():
    g = gg.Graph("square")
    x = g.param("x", (3,))
    g.output(gg.sum(x * x))
    body = function_source(gg.generate(g), "value_and_grad")
    # multiply's VJP builds g * x for each of its two (identical) operands: one statement
    assert (
        sum(" * x" in line for line in body.splitlines() if not line.strip().startswith("#")) == 2
    )


def test_float32_graph_keeps_float32_gradients_through_reductions(rng):
    g = gg.Graph("f32")
    x = g.param("x", (3, 4), dtype="float32")
    g.output(gg.sum(x) + gg.mean(x * x))
    _, grads = gg.compile(g).value_and_grad(rng.standard_normal((3, 4)).astype(np.float32))
    assert grads["x"].dtype == np.float32


def test_gradient_that_is_a_view_of_a_broadcast_is_returned_writable(rng):
    g = gg.Graph("view")
    a = g.param("a", (3, 4))
    g.output(gg.sum(a.T))
    _, grads = gg.compile(g).value_and_grad(rng.standard_normal((3, 4)))
    grads["a"] += 1.0
    np.testing.assert_array_equal(grads["a"], np.full((3, 4), 2.0))


def test_a_value_only_counted_by_a_vjp_is_not_kept_for_the_backward_pass():
    g = gg.Graph("mean")
    x = g.param("x", ("batch", 4))
    g.output(gg.mean(gg.square(x)))
    body = function_source(gg.generate(g), "value_and_grad")
    # mean's VJP needs only the size of square(x), which comes from its static shape
    assert "_mean(np.square(x))" in body
    assert "    square_1 =" not in body
