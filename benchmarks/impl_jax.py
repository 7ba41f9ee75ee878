"""JAX: `jax.jit(jax.value_and_grad(loss))` on CPU, each call ended by block_until_ready.

Leaves are put on the device once; the first call (tracing + XLA compilation + one run)
is timed separately by the worker and reported as JAX's compile time. float64 runs with
`jax_enable_x64` (set before any array is made; the worker runs one case per process).
"""

from __future__ import annotations

import math
import os

from .impls import Prepared, Unavailable
from .impls import loss_for as shared_loss_for
from .workloads import Workload

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no accelerator probing (and its warnings)
try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # reported, not crashed on
    raise Unavailable(f"jax not installed ({exc})") from None


def _xent(logits, y):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def mlp_loss(p, x, y):
    h = jax.nn.relu(x @ p["W1"] + p["b1"])
    h = jax.nn.relu(h @ p["W2"] + p["b2"])
    return _xent(h @ p["W3"] + p["b3"], y)


def _conv(x, w, b, pad):
    out = jax.lax.conv_general_dilated(
        x, w, (1, 1), [(pad, pad), (pad, pad)], dimension_numbers=("NCHW", "OIHW", "NCHW")
    )
    return out + b[None, :, None, None]


def _pool2(a):
    n, c, h, w = a.shape
    return jnp.max(a.reshape(n, c, h // 2, 2, w // 2, 2), axis=(3, 5))


def cnn_loss(p, x, y, pad1=2, pad2=0):
    a = _pool2(jax.nn.relu(_conv(x, p["conv1_w"], p["conv1_b"], pad1)))
    a = _pool2(jax.nn.relu(_conv(a, p["conv2_w"], p["conv2_b"], pad2)))
    return _xent(a.reshape(a.shape[0], -1) @ p["fc_w"] + p["fc_b"], y)


def _layer_norm(x, w, b, eps):
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + eps) * w + b


def transformer_loss(p, x, target, heads=4, eps=1e-5):
    B, T, D = x.shape
    hd = D // heads
    y = _layer_norm(x, p["ln1_w"], p["ln1_b"], eps)

    def split(t):
        return t.reshape(B, T, heads, hd).transpose(0, 2, 1, 3)

    q = split(y @ p["Wq"] + p["bq"])
    k = split(y @ p["Wk"] + p["bk"])
    v = split(y @ p["Wv"] + p["bv"])
    att = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) * (1.0 / math.sqrt(hd)), axis=-1)
    ctx = (att @ v).transpose(0, 2, 1, 3).reshape(B, T, D)
    h = x + ctx @ p["Wo"] + p["bo"]
    y2 = _layer_norm(h, p["ln2_w"], p["ln2_b"], eps)
    out = h + jax.nn.gelu(y2 @ p["W1"] + p["b1"], approximate=False) @ p["W2"] + p["b2"]
    return jnp.mean(jnp.square(out - target))


def loss_for(workload: Workload):
    return shared_loss_for(workload, "JAX", mlp_loss, cnn_loss, transformer_loss)


def prepare(workload: Workload, inputs: dict) -> Prepared:
    if any(v.dtype.name == "float64" for v in inputs.values()):
        jax.config.update("jax_enable_x64", True)
    names = workload.params
    params = {n: jax.device_put(inputs[n]) for n in names}
    data = [jax.device_put(inputs[leaf.name]) for leaf in workload.leaves if leaf.kind != "param"]
    step = jax.jit(jax.value_and_grad(loss_for(workload)))

    def call():
        return jax.block_until_ready(step(params, *data))

    def convert(result):
        import numpy as np

        loss, grads = result
        return float(loss), {n: np.asarray(grads[n]) for n in names}

    info = {"jax": jax.__version__, "backend": jax.default_backend()}
    return Prepared(call=call, convert=convert, info=info)
