"""Bugs found while building the command line, pinned by tests."""

import numpy as np

import graphgen as gg


def test_mean_over_a_symbolic_and_a_static_dim_divides_by_their_product(rng):
    g = gg.Graph("mean2d")
    x = g.param("x", ("batch", 4))
    g.output(gg.mean(gg.square(x)))
    model = gg.compile(g)
    assert "1.0 / (4 * batch)" in model.source
    x0 = rng.standard_normal((3, 4))
    _, grads = model.value_and_grad(x0)
    np.testing.assert_allclose(grads["x"], 2 * x0 / 12)
