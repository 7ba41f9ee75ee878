"""Every differentiable registry op against PyTorch (CPU, float64): values and gradients.

An independent framework checks what finite differences cannot: that each op means what
its name says (PyTorch's conventions for the neural-network ops, NumPy's for the rest) and
that its gradient is exact, to 1e-9 relative error. The inputs are those of the op's own
registry test cases (random, inside each operand's domain, with the broadcasting, axis and
edge cases listed there); the gradient is that of <u, output> for a random cotangent u.

ORACLE maps an op name to the same computation written with torch: it receives the operands
(torch tensors, None for an omitted optional operand) positionally and the node's canonical
attrs by keyword. A differentiable op without an entry fails `test_every_differentiable_op_
has_an_oracle`, which lists the missing ops. Entries for ops not (yet) in the registry are
unused. PyTorch comes from the `oracle` extra; the suite is never skipped unless
GRAPHGEN_SKIP_ORACLE=1 is set.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from test_ops import build_case

import graphgen as gg
from graphgen.ops import REGISTRY

if os.environ.get("GRAPHGEN_SKIP_ORACLE") == "1":
    pytest.skip("GRAPHGEN_SKIP_ORACLE=1", allow_module_level=True)

import torch  # noqa: E402  (the oracle extra; a missing torch fails the suite)
import torch.nn.functional as tF  # noqa: E402

torch.set_num_threads(1)

RTOL = 1e-9

# ---- helpers: NumPy semantics in torch --------------------------------------------------


def _dims(x, axis) -> tuple[int, ...]:
    return tuple(range(x.ndim)) if axis is None else tuple(axis)


def _reduce(fn):
    """A NumPy-style reduction (axis None | tuple, keepdims) from a torch one taking dim."""

    def reduce(x, axis=None, keepdims=False, **kw):
        return fn(x, dim=_dims(x, axis), keepdim=keepdims, **kw)

    return reduce


def _prod(x, dim, keepdim):
    for d in sorted((d % max(x.ndim, 1) for d in dim), reverse=True):
        x = torch.prod(x, dim=d, keepdim=keepdim)
    return x


def _numpy_shape(fn, shape, *args, **kwargs) -> tuple:
    """The shape NumPy's `fn` gives for an input of `shape` (for squeeze, expand_dims)."""
    return fn(np.empty(shape), *args, **kwargs).shape


def _transpose(x, axes=None):
    return x.permute(*reversed(range(x.ndim))) if axes is None else x.permute(*axes)


def _pad(x, pad_width, constant_values=0, **kw):
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    flat = [int(w) for pair in reversed(widths.tolist()) for w in pair]
    return tF.pad(x, flat, value=float(constant_values))


def _take(x, indices, axis=None, **kw):
    if axis is None:
        return x.reshape(-1)[indices]
    return x[(slice(None),) * (axis % x.ndim) + (indices,)]


def _flat_positions(shape, index) -> torch.Tensor:
    """The flat positions that NumPy's x[index] reads, for x of `shape` (an int64 tensor)."""
    items = tuple(
        Ellipsis if i == "..." else slice(*i[1:]) if isinstance(i, (list, tuple)) else i
        for i in index
    )
    return torch.as_tensor(np.ascontiguousarray(np.arange(math.prod(shape)).reshape(shape)[items]))


def _getitem(x, index):
    return x.reshape(-1)[_flat_positions(tuple(x.shape), index)]


def _transpose_of(forward, shape, g, *args):
    """The VJP of a linear `forward(x, *args)` at x = zeros(shape) for the cotangent g, by
    torch's autograd (create_graph: itself differentiable): scatters from gathers."""
    x = torch.zeros(tuple(shape), dtype=g.dtype, requires_grad=True)
    return torch.autograd.grad(forward(x, *args), x, g, create_graph=True)[0]


def _round(x, decimals=0):
    if not x.is_floating_point() and decimals >= 0:  # NumPy leaves integers as they are
        return x
    return torch.round(x, decimals=decimals)


def _gelu(x, approximate="none"):
    return tF.gelu(x, approximate=approximate)


def _astype(x, dtype):
    return x.to(getattr(torch, dtype))


# ---- helpers: the neural-network ops ------------------------------------------------------


def _broadcast(*ts):
    return torch.broadcast_tensors(*ts)


def _cross_entropy(logits, labels, reduction="mean"):
    return tF.cross_entropy(logits.movedim(-1, 1), labels, reduction=reduction)


def _conv(x, w, b=None, **attrs):
    return tF.conv2d(x, w, b, **attrs)


def _conv_input_grad(g, w, input_size, **attrs):
    """d conv2d / dx, by torch's own autograd (double-differentiable: create_graph)."""
    x = torch.zeros(g.shape[0], w.shape[1] * attrs["groups"], *input_size, dtype=g.dtype)
    x.requires_grad_(True)
    return torch.autograd.grad(tF.conv2d(x, w, **attrs), x, g, create_graph=True)[0]


def _conv_weight_grad(x, g, kernel_size, **attrs):
    shape = (g.shape[1], x.shape[1] // attrs["groups"], *kernel_size)
    w = torch.zeros(shape, dtype=x.dtype, requires_grad=True)
    return torch.autograd.grad(tF.conv2d(x, w, **attrs), w, g, create_graph=True)[0]


def _pool_args(kernel_size, stride, padding):
    return {"kernel_size": kernel_size, "stride": stride or kernel_size, "padding": padding}


def _max_pool(x, **attrs):
    return tF.max_pool2d(x, **_pool_args(**attrs))


def _max_pool_grad(x, g, y=None, **attrs):
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(_max_pool(x, **attrs), x, g, create_graph=True)[0]


def _avg_pool(x, **attrs):
    return tF.avg_pool2d(x, **_pool_args(**attrs), count_include_pad=True)


def _avg_pool_grad(g, input_size, **attrs):
    x = torch.zeros(*g.shape[:-2], *input_size, dtype=g.dtype, requires_grad=True)
    return torch.autograd.grad(_avg_pool(x, **attrs), x, g, create_graph=True)[0]


def _layer_norm(x, weight=None, bias=None, axis=-1, eps=1e-5):
    axes = tuple(sorted(a % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,))))
    if axes == tuple(range(x.ndim - len(axes), x.ndim)):
        return tF.layer_norm(x, x.shape[axes[0] :], weight, bias, eps)
    # a non-trailing axis: move the normalized axes last, normalize, move them back
    rest = [a for a in range(x.ndim) if a not in axes]
    moved = x.permute(*rest, *axes)
    y = tF.layer_norm(moved, moved.shape[len(rest) :], weight, bias, eps)
    return y.permute(*np.argsort(rest + list(axes)).tolist())


def _batch_norm(x, weight=None, bias=None, eps=1e-5):
    return tF.batch_norm(x, None, None, weight, bias, training=True, eps=eps)


def _bce(logits, targets, reduction="mean"):
    logits, targets = _broadcast(logits, targets)
    return tF.binary_cross_entropy_with_logits(logits, targets, reduction=reduction)


def _mse(a, b, reduction="mean"):
    return tF.mse_loss(*_broadcast(a, b), reduction=reduction)


def _dropout(x, mask, p):
    return x * mask * (0.0 if p == 1 else 1.0 / (1.0 - p))


def _sdpa(q, k, v, mask=None, causal=False):
    if mask is not None and causal:  # torch refuses the pair: fold causal into the mask
        mask = mask & torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        causal = False
    return tF.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


def _attention_weights(q, k, mask=None, causal=False):
    """The weights as attention over the identity: p @ I = p."""
    eye = torch.eye(k.shape[-2], dtype=q.dtype)
    return _sdpa(q, k, eye, mask, causal)


# ---- the table ------------------------------------------------------------------------

ORACLE = {
    # elementwise unary
    "negative": torch.neg,
    "exp": torch.exp,
    "log": torch.log,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "sqrt": torch.sqrt,
    "square": torch.square,
    "reciprocal": torch.reciprocal,
    "abs": torch.abs,
    "sign": torch.sign,
    "sin": torch.sin,
    "cos": torch.cos,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "leaky_relu": lambda x, alpha=0.01: tF.leaky_relu(x, alpha),
    "elu": lambda x, alpha=1.0: tF.elu(x, alpha),
    "softplus": tF.softplus,
    "gelu": _gelu,
    "normal_cdf": torch.special.ndtr,
    "floor": torch.floor,
    "ceil": torch.ceil,
    "round": _round,
    "stop_gradient": lambda x: x.detach(),
    # elementwise binary
    "add": torch.add,
    "subtract": torch.sub,
    "multiply": torch.mul,
    "divide": torch.div,
    "power": torch.pow,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "where": torch.where,
    "clip": lambda x, min=None, max=None: torch.clamp(x, min, max),  # noqa: A006
    "erf": torch.erf,
    "erfc": torch.erfc,
    "astype": _astype,
    # reductions
    "sum": _reduce(torch.sum),
    "mean": _reduce(torch.mean),
    "max": _reduce(torch.amax),
    "min": _reduce(torch.amin),
    "prod": _reduce(_prod),
    "var": _reduce(
        lambda x, dim, keepdim, ddof=0: torch.var(x, dim, correction=ddof, keepdim=keepdim)
    ),
    "std": _reduce(
        lambda x, dim, keepdim, ddof=0: torch.std(x, dim, correction=ddof, keepdim=keepdim)
    ),
    "logsumexp": _reduce(torch.logsumexp),
    "argmax": lambda x, axis=None, keepdims=False: torch.argmax(x, axis, keepdims),
    "argmin": lambda x, axis=None, keepdims=False: torch.argmin(x, axis, keepdims),
    "cumsum": lambda x, axis=None: torch.cumsum(x.reshape(-1) if axis is None else x, axis or 0),
    # linear algebra
    "matmul": torch.matmul,
    "matmul_rows": torch.matmul,
    "einsum": lambda *xs, subscripts: torch.einsum(subscripts, *xs),
    "transpose": _transpose,
    # shape and indexing
    "reshape": lambda x, shape: torch.reshape(x, shape),
    "broadcast_to": lambda x, shape: torch.broadcast_to(x, shape),
    "expand_dims": lambda x, axis: x.reshape(_numpy_shape(np.expand_dims, x.shape, axis)),
    "squeeze": lambda x, axis=None: x.reshape(_numpy_shape(np.squeeze, x.shape, axis)),
    "concatenate": lambda *xs, axis=0: (
        torch.cat([x.reshape(-1) for x in xs]) if axis is None else torch.cat(xs, axis)
    ),
    "stack": lambda *xs, axis=0: torch.stack(xs, axis),
    "getitem": _getitem,
    "slice_scatter": lambda u, shape, index: _transpose_of(_getitem, shape, u, index),
    "take": _take,
    "scatter_add": lambda u, i, shape, axis: _transpose_of(_take, shape, u, i, axis),
    "take_along_axis": lambda x, indices, axis: torch.take_along_dim(x, indices, axis),
    "scatter_add_along_axis": lambda u, i, shape, axis: _transpose_of(
        torch.take_along_dim, shape, u, i, axis
    ),
    "pad": _pad,
    # neural-network ops
    "softmax": lambda x, axis: torch.softmax(x, axis),
    "log_softmax": lambda x, axis: torch.log_softmax(x, axis),
    "softmax_cross_entropy": _cross_entropy,
    "mse_loss": _mse,
    "binary_cross_entropy_with_logits": _bce,
    "conv2d": _conv,
    "conv2d_input_grad": _conv_input_grad,
    "conv2d_weight_grad": _conv_weight_grad,
    "max_pool2d": _max_pool,
    "max_pool2d_grad": _max_pool_grad,
    "avg_pool2d": _avg_pool,
    "avg_pool2d_grad": _avg_pool_grad,
    "layer_norm": _layer_norm,
    "batch_norm": _batch_norm,
    "dropout": _dropout,
    "embedding": tF.embedding,
    "scaled_dot_product_attention": _sdpa,
    "attention_weights": _attention_weights,
}


def differentiable_ops() -> list[str]:
    return sorted(n for n, op in REGISTRY.items() if op.vjp is not None and not op.leaf)


CASES = [
    (name, i)
    for name in sorted(set(ORACLE) & set(REGISTRY))
    for i in range(len(REGISTRY[name].tests))
]


def test_every_differentiable_op_has_an_oracle():
    missing = [n for n in differentiable_ops() if n not in ORACLE]
    assert (
        not missing
    ), f"differentiable ops with no PyTorch oracle in tests/test_oracle.py: {missing}"


def assert_close(ours, theirs, what: str) -> None:
    """|ours - theirs| <= 1e-9 * |theirs| elementwise, with an absolute floor of 1e-12 times
    max(1, largest |theirs|) for entries that are zero up to rounding."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs PyTorch's {theirs.shape}"
    finite = np.abs(theirs[np.isfinite(theirs)])
    floor = 1e-12 * max(float(np.max(finite, initial=0.0)), 1.0)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=floor, err_msg=what)


def _torch_inputs(inputs: dict, wrt: list[str]) -> dict:
    return {n: torch.tensor(v, requires_grad=n in wrt) for n, v in inputs.items()}


@pytest.mark.parametrize(("name", "index"), CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_op_matches_pytorch(name, index, rng):
    g, out, inputs = build_case(name, index, rng)
    case = REGISTRY[name].tests[index]
    attrs = g.nx.nodes[out.id]["attrs"]
    float_inputs = [n for n, v in inputs.items() if v.dtype.kind == "f"]
    differentiable = REGISTRY[name].vjp is not None and out.spec.is_float and bool(float_inputs)
    wrt = float_inputs if differentiable else []
    model = gg.compile(g, wrt=wrt)

    tensors = _torch_inputs(inputs, wrt)
    operands = [None if s is None else tensors[f"a{i}"] for i, s in enumerate(case.shapes)]
    expected = ORACLE[name](*operands, **attrs)

    if not differentiable:
        assert_close(model.forward(**inputs), expected.detach().numpy(), f"{name} value")
        return
    u = rng.standard_normal(tuple(expected.shape))
    value, grads = model.vjp(**inputs, cotangent=u)
    assert_close(value, expected.detach().numpy(), f"{name} value")
    theirs = torch.autograd.grad(
        expected, [tensors[n] for n in wrt], torch.tensor(u), allow_unused=True
    )
    for n, t in zip(wrt, theirs):
        t = np.zeros(inputs[n].shape) if t is None else t.numpy()
        assert_close(grads[n], t, f"{name} gradient of operand {n}")


def test_tolerance_is_strict():
    """The comparison rejects an error of 1e-8 relative."""
    with pytest.raises(AssertionError):
        assert_close(np.array([1.0 + 1e-8]), np.array([1.0]), "x")
    assert_close(np.array([1.0 + 1e-10, math.inf]), np.array([1.0, math.inf]), "x")


@pytest.mark.parametrize(
    "attrs",
    [
        {"kernel_size": 2},
        {"kernel_size": (2, 3)},
        {"kernel_size": 2, "stride": 1},
        {"kernel_size": 3, "stride": 2, "padding": 1},
    ],
)
def test_max_pool_gradient_at_nan_follows_pytorch(attrs, rng):
    """A window holding nan pools to nan, and its g goes to its last nan in row-major
    order, as PyTorch's kernel does; ties still go to the first max."""
    x = np.round(rng.standard_normal((2, 3, 7, 8)), 0)  # many ties
    x.reshape(-1)[rng.choice(x.size, 12, replace=False)] = np.nan
    x[0, 0, :2, :2] = [[np.nan, 1.0], [np.nan, 2.0]]  # two nans in one window
    g = gg.Graph("pool")
    pooled = gg.max_pool2d(g.input("x", x.shape), **attrs)
    g.output(pooled)
    model = gg.compile(g, wrt=["x"])
    cotangent = rng.standard_normal(pooled.spec.shape)
    value, grads = model.vjp(x=x, cotangent=cotangent)
    xt = torch.tensor(x, requires_grad=True)
    yt = tF.max_pool2d(xt, **attrs)
    yt.backward(torch.tensor(cotangent))
    np.testing.assert_array_equal(value, yt.detach().numpy())
    # overlapping windows add their shares in another order than PyTorch: rounding only
    np.testing.assert_allclose(grads["x"], xt.grad.numpy(), rtol=1e-15, atol=1e-15)
    assert np.isnan(value).any()
