"""HIPS autograd: `autograd.value_and_grad` of a loss written with autograd.numpy.

Convolution is written the way autograd supports it: the k*k shifted slices of the input
stacked into patches (differentiable indexing and stacking) and contracted with the kernel
by tensordot; max-pool by reshape and max over the window axes. GELU's erf comes from
autograd.scipy.special (needs scipy).
"""

from __future__ import annotations

import math
from importlib import metadata

from .impls import Prepared, Unavailable, numpy_convert
from .impls import loss_for as shared_loss_for
from .workloads import Workload

try:
    import autograd
    import autograd.numpy as anp
except ImportError as exc:  # reported, not crashed on
    raise Unavailable(f"autograd not installed ({exc})") from None


def _xent(logits, y):
    shifted = logits - anp.max(logits, axis=1, keepdims=True)
    logp = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
    return -anp.mean(logp[anp.arange(logits.shape[0]), y])


def mlp_loss(p, x, y):
    h = anp.maximum(anp.dot(x, p["W1"]) + p["b1"], 0.0)
    h = anp.maximum(anp.dot(h, p["W2"]) + p["b2"], 0.0)
    return _xent(anp.dot(h, p["W3"]) + p["b3"], y)


def _conv(x, w, b, pad):
    n, c, hh, ww = x.shape
    f, _, k, _ = w.shape
    if pad:
        x = anp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    ho, wo = hh + 2 * pad - k + 1, ww + 2 * pad - k + 1
    patches = anp.stack(
        [x[:, :, i : i + ho, j : j + wo] for i in range(k) for j in range(k)], axis=2
    )  # (N, C, k*k, Ho, Wo)
    out = anp.tensordot(patches, anp.reshape(w, (f, c, k * k)), axes=([1, 2], [1, 2]))
    return anp.transpose(out, (0, 3, 1, 2)) + b[None, :, None, None]


def _pool2(a):
    n, c, h, w = a.shape
    return anp.max(anp.reshape(a, (n, c, h // 2, 2, w // 2, 2)), axis=(3, 5))


def cnn_loss(p, x, y, pad1=2, pad2=0):
    a = _pool2(anp.maximum(_conv(x, p["conv1_w"], p["conv1_b"], pad1), 0.0))
    a = _pool2(anp.maximum(_conv(a, p["conv2_w"], p["conv2_b"], pad2), 0.0))
    return _xent(anp.dot(anp.reshape(a, (a.shape[0], -1)), p["fc_w"]) + p["fc_b"], y)


def _layer_norm(x, w, b, eps):
    mu = anp.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    var = anp.mean(xc * xc, axis=-1, keepdims=True)
    return xc / anp.sqrt(var + eps) * w + b


def _softmax(s):
    e = anp.exp(s - anp.max(s, axis=-1, keepdims=True))
    return e / anp.sum(e, axis=-1, keepdims=True)


def transformer_loss(p, x, target, heads=4, eps=1e-5):
    from autograd.scipy.special import erf

    B, T, D = x.shape
    hd = D // heads
    y = _layer_norm(x, p["ln1_w"], p["ln1_b"], eps)

    def split(t):
        return anp.transpose(anp.reshape(t, (B, T, heads, hd)), (0, 2, 1, 3))

    q = split(anp.matmul(y, p["Wq"]) + p["bq"])
    k = split(anp.matmul(y, p["Wk"]) + p["bk"])
    v = split(anp.matmul(y, p["Wv"]) + p["bv"])
    att = _softmax(anp.matmul(q, anp.transpose(k, (0, 1, 3, 2))) * (1.0 / math.sqrt(hd)))
    ctx = anp.reshape(anp.transpose(anp.matmul(att, v), (0, 2, 1, 3)), (B, T, D))
    h = x + anp.matmul(ctx, p["Wo"]) + p["bo"]
    f = anp.matmul(_layer_norm(h, p["ln2_w"], p["ln2_b"], eps), p["W1"]) + p["b1"]
    u = 0.5 * f * (1.0 + erf(f * (1.0 / math.sqrt(2.0))))
    out = h + anp.matmul(u, p["W2"]) + p["b2"]
    return anp.mean((out - target) ** 2)


def loss_for(workload: Workload):
    if workload.name.startswith("transformer"):
        try:
            import scipy.special  # noqa: F401  (autograd.scipy needs it)
        except ImportError:
            raise Unavailable("autograd: the transformer's erf needs scipy") from None
    return shared_loss_for(workload, "autograd", mlp_loss, cnn_loss, transformer_loss)


def prepare(workload: Workload, inputs: dict) -> Prepared:
    step = autograd.value_and_grad(loss_for(workload))
    params = {n: inputs[n] for n in workload.params}
    data = [inputs[leaf.name] for leaf in workload.leaves if leaf.kind != "param"]
    info = {"autograd": metadata.version("autograd")}
    return Prepared(call=lambda: step(params, *data), convert=numpy_convert, info=info)
