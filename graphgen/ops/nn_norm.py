"""Normalization: layer_norm and batch_norm (training mode), biased variance as in PyTorch.

Both normalize x over some axes, xhat = (x - mean) / sqrt(var + eps), then scale by an
optional weight and shift by an optional bias that span other axes (layer_norm: the
normalized axes, like PyTorch's normalized_shape; batch_norm: the channel axis 1). One
kernel (templates/kernels/normalize.py.j2) computes both forwards.

The VJP is fused, built from ordinary ops: the closed form
    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dxhat = g * weight
instead of differentiating mean, var, sqrt and the division one by one, which would take
more passes over x and go through 1 / var**1.5 terms. It recomputes mean and rstd from x
(one extra reduction) rather than keeping them from the forward, and, being made of
ordinary ops, it can be differentiated again.
"""

from __future__ import annotations

from . import functions as F
from .registry import Attr, OpDef, TensorSpec, TestCase, as_axes, as_int, as_number, register
from .shapes import fmt_shape, normalize_axes, require_float


def _eps(v) -> float:
    v = as_number(v)
    if v < 0:
        raise ValueError("eps must be >= 0")
    return float(v)


_EPS = {"eps": Attr(1e-5, _eps, "added to the variance")}


def param_layout(shape: tuple, param_axes: tuple[int, ...]) -> tuple | None:
    """The shape that makes a parameter over `param_axes` (its dims in order) broadcast
    against x, or None when it already does (the parameter spans x's trailing axes)."""
    start = param_axes[0]
    if param_axes == tuple(range(start, len(shape))):
        return None
    return tuple(d if i in param_axes else 1 for i, d in enumerate(shape) if i >= start)


def _infer(x: TensorSpec, params, param_axes) -> TensorSpec:
    require_float(x, "x")
    want = tuple(x.shape[a] for a in param_axes)
    for name, p in zip(("weight", "bias"), params):
        if p is None:
            continue
        require_float(p, name)
        if p.dtype != x.dtype:
            raise ValueError(f"{name} must have x's dtype {x.dtype}, got {p.dtype}")
        if tuple(p.shape) != want:
            raise ValueError(f"{name} must have shape {fmt_shape(want)}, got {fmt_shape(p.shape)}")
    return x


def _emit(param_axes_of, axis_text):
    def emit(e) -> str:
        x = e.ins[0]
        layout = param_layout(x.shape, param_axes_of(x, e.attrs))
        params = []
        for i in (1, 2):
            if e.ins[i] is None:
                params.append("None")
            elif layout is None:
                params.append(e.arg(i))
            else:
                params.append(f"np.reshape({e.arg(i)}, {e.shape(layout)})")
        axis = axis_text(x, e.attrs)
        return f"_normalize({e.arg(0)}, {', '.join(params)}, axis={axis}, eps={e.attrs['eps']!r})"

    return emit


def normalize_vjp(g, x, weight, bias, axes, param_axes, eps):
    """Cotangents of x, weight and bias for y = xhat * weight + bias (see the module doc)."""
    centered = x - F.mean(x, axis=axes, keepdims=True)
    rstd = 1.0 / F.sqrt(F.mean(F.square(centered), axis=axes, keepdims=True) + eps)
    xhat = centered * rstd
    layout = param_layout(x.shape, param_axes)
    dxhat = g
    if weight is not None:
        dxhat = g * (weight if layout is None else F.reshape(weight, layout))
    mean_dxhat = F.mean(dxhat, axis=axes, keepdims=True)
    dx = rstd * (dxhat - mean_dxhat - xhat * F.mean(dxhat * xhat, axis=axes, keepdims=True))
    other = tuple(i for i in range(x.ndim) if i not in param_axes)

    def over_params(t):  # sum over the axes a parameter is broadcast along
        return F.sum(t, axis=other) if other else t

    dw = None if weight is None else over_params(g * xhat)
    db = None if bias is None else over_params(g)
    return dx, dw, db


_FORMULA = (
    "dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = g * weight, "
    "dweight = sum(g * xhat), dbias = sum(g)"
)

# ---- layer_norm ------------------------------------------------------------------------


def _axis(v):
    """An int, or a tuple of ints (a list from JSON becomes a tuple)."""
    return as_int(v) if not isinstance(v, (list, tuple)) else as_axes(v)


def _ln_axes(x, attrs) -> tuple[int, ...]:
    return normalize_axes(as_axes(attrs["axis"]), x.ndim)


def _ln_infer(specs, attrs) -> TensorSpec:
    x, weight, bias = specs
    return _infer(x, (weight, bias), _ln_axes(x, attrs))


def _ln_vjp(g, out, args, attrs):
    x, weight, bias = args
    axes = _ln_axes(x, attrs)
    return normalize_vjp(g, x, weight, bias, axes, axes, attrs["eps"])


def _ln_axis_text(x, attrs) -> str:
    axis = attrs["axis"]
    return str(axis[0] if isinstance(axis, tuple) and len(axis) == 1 else axis)


register(
    OpDef(
        name="layer_norm",
        out_kwarg=True,
        operands=("x", "weight", "bias"),
        optional=("weight", "bias"),
        attrs={"axis": Attr(-1, _axis, "an int or a tuple of ints"), **_EPS},
        infer=_ln_infer,
        emit=_emit(_ln_axes, _ln_axis_text),
        kernel=("sum", "normalize"),
        fresh=True,
        vjp=_ln_vjp,
        formula=_FORMULA,
        tests=(
            TestCase(shapes=((3, 5), None, None)),
            TestCase(shapes=((3, 5), (5,), (5,))),
            TestCase(shapes=((2, 3, 4), (3, 4), (3, 4)), attrs={"axis": (1, 2), "eps": 0.1}),
            TestCase(shapes=((2, 3, 4), (3,), None), attrs={"axis": 1}),
            TestCase(shapes=((2, 4), None, (4,)), attrs={"axis": -1}),
            TestCase(shapes=((3, 1), (1,), (1,))),
            TestCase(shapes=((4,), (4,), (4,)), attrs={"axis": 0}),
        ),
        doc="layer normalization over axis (default the last; PyTorch normalizes the trailing "
        "normalized_shape dims), biased variance, optional weight and bias of the normalized "
        "dims; fused VJP from ordinary ops (see graphgen/ops/nn_norm.py)",
    )
)

# ---- batch_norm ------------------------------------------------------------------------


def _bn_axes(x, attrs) -> tuple[int, ...]:
    return (0,) + tuple(range(2, x.ndim))


def _bn_infer(specs, attrs) -> TensorSpec:
    x, weight, bias = specs
    if x.ndim < 2:
        raise ValueError(f"x must have a channel axis 1, got {fmt_shape(x.shape)}")
    return _infer(x, (weight, bias), (1,))


def _bn_vjp(g, out, args, attrs):
    x, weight, bias = args
    return normalize_vjp(g, x, weight, bias, _bn_axes(x, attrs), (1,), attrs["eps"])


register(
    OpDef(
        name="batch_norm",
        operands=("x", "weight", "bias"),
        optional=("weight", "bias"),
        attrs=_EPS,
        infer=_bn_infer,
        emit=_emit(lambda x, attrs: (1,), lambda x, attrs: str(_bn_axes(x, attrs))),
        kernel=("sum", "normalize"),
        vjp=_bn_vjp,
        formula=_FORMULA,
        tests=(
            TestCase(shapes=((4, 3), (3,), (3,))),
            TestCase(shapes=((2, 3, 2, 2), (3,), (3,)), attrs={"eps": 0.01}),
            TestCase(shapes=((3, 2, 4), None, None)),
            TestCase(shapes=((2, 2, 3), (2,), None)),
            TestCase(shapes=((5, 1), None, (1,))),
        ),
        doc="batch normalization in training mode: statistics over every axis but the channel "
        "axis 1, biased variance (no running statistics); optional weight and bias (C,); "
        "fused VJP from ordinary ops (see graphgen/ops/nn_norm.py)",
    )
)
