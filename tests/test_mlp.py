"""The MLP of DESIGN.md against a hand-written NumPy backprop and finite differences."""

import numpy as np
from graphs import mlp, mlp_inputs

import graphgen as gg


def hand_backprop(x, y, W1, b1, W2, b2):
    """Textbook backprop, written out by hand, for the same network (row-major batch)."""
    n = x.shape[0]
    z1 = x @ W1 + b1
    h1 = np.tanh(z1)
    logits = h1 @ W2 + b2
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(n), y].mean()
    delta2 = np.exp(log_p)
    delta2[np.arange(n), y] -= 1.0
    delta2 /= n
    delta1 = (delta2 @ W2.T) * (1.0 - h1**2)
    grads = {"W1": x.T @ delta1, "b1": delta1.sum(0), "W2": h1.T @ delta2, "b2": delta2.sum(0)}
    return loss, grads


def test_mlp_gradients_match_hand_written_backprop(rng):
    inputs = mlp_inputs(rng)
    loss, grads = gg.compile(mlp()).value_and_grad(**inputs)
    want_loss, want = hand_backprop(**inputs)
    assert abs(float(loss) - want_loss) <= 1e-12 * abs(want_loss)
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(grads[name], want[name], rtol=1e-10, atol=1e-14)


def test_mlp_gradients_match_finite_differences(rng):
    model = gg.compile(mlp())
    assert gg.gradcheck(model, mlp_inputs(rng)).ok


def test_forward_and_value_and_grad_give_the_same_loss(rng):
    model = gg.compile(mlp())
    inputs = mlp_inputs(rng)
    loss, _ = model.value_and_grad(**inputs)
    assert float(model.forward(**inputs)) == float(loss)


def test_inputs_can_be_given_positionally_in_inputs_order(rng):
    model = gg.compile(mlp())
    inputs = mlp_inputs(rng)
    assert model.inputs == ("x", "y", "W1", "b1", "W2", "b2")
    assert float(model.forward(*inputs.values())) == float(model.forward(**inputs))


def test_float32_inputs_give_float32_loss_and_gradients(rng):
    model = gg.compile(mlp(dtype="float32"))
    inputs = {
        k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in mlp_inputs(rng).items()
    }
    loss, grads = model.value_and_grad(**inputs)
    assert np.asarray(loss).dtype == np.float32
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
