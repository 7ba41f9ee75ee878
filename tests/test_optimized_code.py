"""The performance-minded emission keeps gradients exact: each rewrite's output is checked
against finite differences or an independent formula, and against the code it replaced."""

import math

import numpy as np
import pytest
from test_pipeline import function_source

import graphgen as gg


def batched_dense(batch_dims) -> gg.Graph:
    g = gg.Graph("dense")
    x = g.input("x", (*batch_dims, 4))
    W = g.param("W", (4, 3))
    g.output(gg.sum(gg.tanh(x @ W)))
    return g


@pytest.mark.parametrize("batch_dims", [(2, 5), ("batch", 5), (2, "seq"), ("batch", "seq")])
def test_a_weight_shared_across_batch_axes_gets_its_gradient_from_one_product(batch_dims, rng):
    model = gg.compile(batched_dense(batch_dims))
    body = function_source(model.source, "value_and_grad")
    assert "@ d_" not in body.replace("d_W = ", "")  # only d_W's statement is a product
    assert "axis=0" not in body  # no batched product summed afterwards
    x = rng.standard_normal((2, 5, 4))
    W = rng.standard_normal((4, 3))
    assert gg.gradcheck(model, {"x": x, "W": W}).ok
    want = np.einsum("bti,btj->ij", x, 1 - np.tanh(x @ W) ** 2)
    np.testing.assert_allclose(model.value_and_grad(x, W)[1]["W"], want, rtol=1e-13)


@pytest.mark.parametrize("op", ["gelu", "erf", "erfc", "normal_cdf"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blockwise_kernels_cover_every_element_of_a_large_array(op, dtype):
    """The erf family runs in blocks of 16384 elements: sizes around the block edge and
    several blocks give the same values as a reference formula, element by element."""
    exact = {
        "erf": math.erf,
        "erfc": math.erfc,
        "gelu": lambda v: v * 0.5 * math.erfc(-v / math.sqrt(2.0)),
        "normal_cdf": lambda v: 0.5 * math.erfc(-v / math.sqrt(2.0)),
    }[op]
    for n in (16383, 16384, 16385, 3 * 16384 + 7):
        x = np.linspace(-7.0, 7.0, n).astype(dtype).reshape(-1, 1)
        g = gg.Graph("big")
        g.output(getattr(gg, op)(g.input("x", ("n", 1), dtype)))
        got = gg.compile(g).forward(x)
        assert got.dtype == dtype and got.shape == x.shape
        want = np.array([exact(float(v)) for v in x.ravel()]).reshape(x.shape)
        tol = 1e-6 if dtype == "float32" else 1e-13
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 1e-3)


def test_gelu_backward_reuses_the_forward_normal_cdf(rng):
    """gelu is differentiated as x * Phi(x): value_and_grad evaluates Phi (the costly
    erfc) once, and the lowered node keeps its name and its place as an output."""
    g = gg.Graph("ffn")
    x = g.input("x", ("batch", 6))
    W = g.param("W", (6, 5))
    f = gg.gelu(x @ W, name="f")
    g.output(gg.sum(f * f, name="loss"), f)
    model = gg.compile(g)
    body = function_source(model.source, "value_and_grad")
    assert body.count("_normal_cdf(") == 1 and "_erfc(" not in body and "_gelu(" not in body
    assert "f = " in body and model.outputs == ("loss", "f")
    x0, W0 = rng.standard_normal((4, 6)), rng.standard_normal((6, 5))
    (loss, f0), _ = model.value_and_grad(x0, W0)
    np.testing.assert_array_equal(f0, model.forward(x0, W0)[1])
    assert gg.gradcheck(model, {"x": x0, "W": W0}).ok
