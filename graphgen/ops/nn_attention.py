"""Attention: scaled_dot_product_attention (PyTorch's) and attention_weights.

    attention_weights(q, k, mask, causal) = softmax(q @ k^T / sqrt(E)), masked
    scaled_dot_product_attention(q, k, v, mask, causal) = attention_weights(q, k, ...) @ v

q (..., L, E), k (..., S, E), v (..., S, Ev); batch dims broadcast. mask is bool and True
means keep (like PyTorch's bool attn_mask); causal keeps j <= i (the top-left-aligned lower
triangle, PyTorch's is_causal); masked scores become -inf before the softmax; a query
whose keys are all masked out gets weights 0 (so output 0 and no gradient), as in PyTorch.
Unlike PyTorch (which refuses the pair) a mask and causal=True combine: an entry is kept
when both keep it.

Both are kernels (templates/kernels/). The VJPs are fused and built from ordinary ops:
scaled_dot_product_attention recomputes the weights p with attention_weights (one extra
q @ k^T, instead of keeping an (..., L, S) residual alive) and returns dv = p^T @ g; the
weights' cotangent dp goes through the softmax VJP written with p, ds = p * (dp - sum(dp * p))
/ sqrt(E), then through the two matrix products. Masked entries have p = 0, so they get no
gradient, with no mask needed in the backward pass. Differentiable again.
"""

from __future__ import annotations

from functools import partial

from . import functions as F
from .linalg import swap_last
from .nn import SOFTMAX_KERNELS
from .nn_conv import emit_call
from .registry import Attr, OpDef, TensorSpec, TestCase, as_bool, register
from .shapes import broadcast_shapes, fmt_shape, promote, require_float


def _weights_spec(q: TensorSpec, k: TensorSpec, mask: TensorSpec | None) -> TensorSpec:
    for name, t in (("q", q), ("k", k)):
        require_float(t, name)
        if t.ndim < 2:
            raise ValueError(f"{name} must be (..., length, features), got {fmt_shape(t.shape)}")
    if isinstance(q.shape[-1], str):
        raise ValueError("the feature dim E of q must be static (the scale is 1 / sqrt(E))")
    if q.shape[-1] != k.shape[-1] and not isinstance(k.shape[-1], str):
        raise ValueError(f"q and k feature dims differ: {q.shape[-1]} vs {k.shape[-1]}")
    shape = broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], k.shape[-2])
    if mask is not None:
        if mask.dtype != "bool":
            raise ValueError(f"mask must be bool (True = keep), got {mask.dtype}")
        shape = broadcast_shapes(shape, mask.shape)
        if shape[-2:] != (q.shape[-2], k.shape[-2]):
            raise ValueError(f"mask {fmt_shape(mask.shape)} does not broadcast to (L, S)")
    return TensorSpec(shape, promote(q.dtype, k.dtype))


def weights_vjp(dp, p, q, k):
    """Cotangents of q and k given the cotangent dp of p = attention_weights(q, k, ...)."""
    ds = p * (dp - F.sum(dp * p, axis=-1, keepdims=True)) * (q.shape[-1] ** -0.5)
    return ds @ k, swap_last(ds) @ q


_CAUSAL = {"causal": Attr(False, as_bool, "keep only j <= i (no attention to later keys)")}
_emit = partial(emit_call, keys=("causal",), attrs=_CAUSAL)

# ---- attention_weights -----------------------------------------------------------------


def _weights_infer(specs, attrs) -> TensorSpec:
    return _weights_spec(*specs)


def _weights_vjp(g, out, args, attrs):
    q, k, _ = args
    dq, dk = weights_vjp(g, out, q, k)
    return dq, dk, None


register(
    OpDef(
        name="attention_weights",
        fresh=True,
        operands=("q", "k", "mask"),
        optional=("mask",),
        attrs=_CAUSAL,
        infer=_weights_infer,
        emit=_emit("_attention_weights"),
        kernel=(*SOFTMAX_KERNELS, "attention_weights"),
        vjp=_weights_vjp,
        formula="dq = ds @ k, dk = ds^T @ q, ds = p * (g - sum(g * p, -1)) / sqrt(E)",
        tests=(
            TestCase(shapes=((3, 4), (5, 4), None)),
            TestCase(shapes=((2, 3, 4), (2, 3, 4), None), attrs={"causal": True}),
            TestCase(shapes=((2, 3, 2), (4, 2), (2, 1, 4)), domains=("real", "real", "keep")),
        ),
        doc="softmax(q @ k^T / sqrt(E)) over the keys, masked (mask True = keep, causal: "
        "j <= i): the attention probabilities (..., L, S); fused VJP from ordinary ops",
    )
)

# ---- scaled_dot_product_attention ------------------------------------------------------


def _sdpa_infer(specs, attrs) -> TensorSpec:
    q, k, v, mask = specs
    weights = _weights_spec(q, k, mask)
    require_float(v, "v")
    if v.ndim < 2:
        raise ValueError(f"v must be (..., S, Ev), got {fmt_shape(v.shape)}")
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(f"k and v lengths differ: {k.shape[-2]} vs {v.shape[-2]}")
    batch = broadcast_shapes(weights.shape[:-2], v.shape[:-2])
    return TensorSpec(batch + (q.shape[-2], v.shape[-1]), promote(weights.dtype, v.dtype))


def _sdpa_vjp(g, out, args, attrs):
    q, k, v, mask = args
    p = F.attention_weights(q, k, mask, causal=attrs["causal"])
    dq, dk = weights_vjp(g @ swap_last(v), p, q, k)
    return dq, dk, swap_last(p) @ g, None


_MASK = ("real", "real", "real", "keep")
register(
    OpDef(
        name="scaled_dot_product_attention",
        fresh=True,
        operands=("q", "k", "v", "mask"),
        optional=("mask",),
        attrs=_CAUSAL,
        infer=_sdpa_infer,
        emit=_emit("_scaled_dot_product_attention"),
        kernel=(*SOFTMAX_KERNELS, "attention_weights", "scaled_dot_product_attention"),
        vjp=_sdpa_vjp,
        formula="dv = p^T @ g, dq = ds @ k, dk = ds^T @ q, ds = p * (dp - sum(dp * p, -1)) "
        "/ sqrt(E), dp = g @ v^T, p = attention_weights(q, k)",
        tests=(
            TestCase(shapes=((3, 4), (5, 4), (5, 2), None)),
            TestCase(shapes=((2, 3, 4), (2, 3, 4), (2, 3, 4), None), attrs={"causal": True}),
            TestCase(
                shapes=((2, 2, 3, 2), (2, 2, 4, 2), (2, 2, 4, 3), (2, 1, 3, 4)), domains=_MASK
            ),
            TestCase(shapes=((2, 3, 2), (4, 2), (4, 3), (3, 4)), domains=_MASK),
            TestCase(shapes=((1, 2, 4), (1, 5, 4), (1, 5, 1), None), attrs={"causal": True}),
        ),
        doc="PyTorch's scaled_dot_product_attention: softmax(q @ k^T / sqrt(E)) @ v with a "
        "bool mask (True = keep) and/or causal masking, scale 1 / sqrt(E), no dropout; fused "
        "VJP from ordinary ops that recomputes the weights (see graphgen/ops/nn_attention.py)",
    )
)
