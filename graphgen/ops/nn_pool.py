"""2-D pooling (PyTorch's max_pool2d and avg_pool2d, floor mode) and their backward ops.

Forward: a strided view of all windows (templates/kernels/windows.py.j2, no copy), reduced
with one vectorised np.maximum / add per kernel position (much faster than np.max over the
small window axes); no Python loop over the batch or the output pixels. stride defaults to
the kernel size; max pooling pads with -inf, average pooling with zeros that count in the
mean (count_include_pad=True), and padding is at most half the kernel, as in PyTorch.

Backward ops (col2im: one vectorised strided add per kernel position):
- max_pool2d_grad(x, g, y=None): g to each window's max, the first in row-major order on
  ties and the last nan of a window holding nan (PyTorch's choices), accumulated where
  windows overlap. y, optional, is max_pool2d(x)
  (max_pool2d's VJP passes its output): non-overlapping windows then compare each tap with
  it instead of taking the maxima again. It declares no VJP: second
  derivatives through max pooling are out of scope (its VJP for g would gather the
  cotangent at each window's argmax; for x it is zero almost everywhere).
- avg_pool2d_grad(g): g / (kh * kw) spread over each window. It is linear, and the adjoint
  of avg_pool2d, so its VJP is avg_pool2d itself.
"""

from __future__ import annotations

from . import functions as F
from .nn_conv import as_pair, static_dims, window_count
from .registry import Attr, OpDef, TensorSpec, TestCase, register
from .shapes import fmt_shape, require_float

POOL_ATTRS = {
    "kernel_size": Attr(convert=as_pair(1), doc="an int or a (kh, kw) pair"),
    "stride": Attr(None, lambda v: None if v is None else as_pair(1)(v), "default: kernel_size"),
    "padding": Attr((0, 0), as_pair(0), "an int or a pair, at most half the kernel size"),
}
_KEYS = ("kernel_size", "stride", "padding")


def resolved(attrs: dict) -> dict:
    """The pooling attrs with stride resolved (None means the kernel size)."""
    return {**attrs, "stride": attrs["stride"] or attrs["kernel_size"]}


def pooled_hw(x: TensorSpec, attrs: dict) -> tuple[int, int]:
    """The output (Ho, Wo) of pooling x (..., H, W), after checking the attrs against x."""
    require_float(x, "x")
    if x.ndim not in (3, 4):
        raise ValueError(f"x must be (N, C, H, W) or (C, H, W), got {fmt_shape(x.shape)}")
    hw = static_dims(x, (-2, -1), "the spatial dims of x")
    attrs = resolved(attrs)
    k, s, p = attrs["kernel_size"], attrs["stride"], attrs["padding"]
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding {p} must be at most half the kernel size {k}")
    return tuple(window_count(hw[i], k[i], s[i], p[i], 1) for i in range(2))


def _pool_infer(specs, attrs) -> TensorSpec:
    x = specs[0]
    return TensorSpec(x.shape[:-2] + pooled_hw(x, attrs), x.dtype)


def _emit_pool(fn: str, keys: tuple[str, ...] = _KEYS):
    """An emitter `fn(operands..., kernel_size=.., stride=.., padding=..)`, leaving out a
    stride equal to the kernel size and a zero padding (the kernels' defaults)."""

    def emit(e) -> str:
        attrs = resolved(e.attrs)
        defaults = {"stride": attrs["kernel_size"], "padding": (0, 0)}
        args = [e.arg(i) for i, s in enumerate(e.ins) if s is not None]  # y: optional
        args += [f"{k}={attrs[k]!r}" for k in keys if attrs[k] != defaults.get(k)]
        return f"{fn}({', '.join(args)})"

    return emit


def _pooled_shape(x: tuple, attrs: dict) -> tuple:
    """The pooled shape of an input of shape x, for a test case's (partial) attrs."""
    full = {k: a.convert(attrs.get(k, a.default)) for k, a in POOL_ATTRS.items()}
    return x[:-2] + pooled_hw(TensorSpec(x, "float64"), full)


_POOL_CASES = (  # (x shape, attrs)
    ((2, 3, 4, 4), {"kernel_size": 2}),
    ((1, 2, 5, 5), {"kernel_size": 3, "stride": 1}),
    ((2, 1, 5, 6), {"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 1)}),
    ((1, 2, 7, 5), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((3, 5, 5), {"kernel_size": 2}),
    ((1, 1, 1, 1), {"kernel_size": 1}),
    ((1, 2, 7, 8), {"kernel_size": 2, "stride": 3}),
)


def _grad_infer(x: TensorSpec, g: TensorSpec, attrs: dict) -> None:
    """Check that g has the pooled shape of x."""
    require_float(g, "g")
    want = x.shape[:-2] + pooled_hw(x, attrs)
    if g.ndim != len(want) or static_dims(g, (-2, -1), "the spatial dims of g") != want[-2:]:
        raise ValueError(
            f"g must have the pooled shape {fmt_shape(want)}, got {fmt_shape(g.shape)}"
        )


# ---- max pooling -----------------------------------------------------------------------

register(
    OpDef(
        name="max_pool2d",
        out_kwarg=True,
        fresh=True,
        operands=("x",),
        attrs=POOL_ATTRS,
        infer=_pool_infer,
        emit=_emit_pool("_max_pool2d"),
        kernel=("pad2d", "windows", "max_pool2d"),
        vjp=lambda g, out, args, attrs: (F.max_pool2d_grad(args[0], g, out, **attrs),),
        formula="dx = max_pool2d_grad(x, g, y),  y = max_pool2d(x)",
        tests=tuple(TestCase(shapes=(x,), attrs=a, domains=("distinct",)) for x, a in _POOL_CASES),
        doc="the max of each window of x (N, C, H, W) or (C, H, W), padded with -inf; "
        "backward through the max_pool2d_grad op (a col2im kernel)",
    )
)


def _max_grad_infer(specs, attrs) -> TensorSpec:
    x, g, y = specs
    _grad_infer(x, g, attrs)
    if y is not None and (y.shape != g.shape or y.dtype != x.dtype):
        raise ValueError(
            f"y must be max_pool2d(x): {fmt_shape(g.shape)} {x.dtype}, got "
            f"{fmt_shape(y.shape)} {y.dtype}"
        )
    return x


register(
    OpDef(
        name="max_pool2d_grad",
        out_kwarg=True,
        fresh=True,
        operands=("x", "g", "y"),
        optional=("y",),
        attrs=POOL_ATTRS,
        infer=_max_grad_infer,
        emit=_emit_pool("_max_pool2d_grad"),
        kernel=("pad2d", "windows", "fold_windows", "where_zero", "max_pool2d", "max_pool2d_grad"),
        vjp=None,
        formula="(backward op of max_pool2d: second derivatives are out of scope)",
        tests=tuple(
            TestCase(
                shapes=(x, _pooled_shape(x, a), None), attrs=a, domains=("distinct", "real", "real")
            )
            for x, a in _POOL_CASES
        ),
        doc="the gradient of max_pool2d with respect to x, given x and the output gradient "
        "g: each window's g goes to its max (the first one on ties, like PyTorch); y, "
        "optional: max_pool2d(x), which saves taking the maxima again",
    )
)

# ---- average pooling -------------------------------------------------------------------

register(
    OpDef(
        name="avg_pool2d",
        operands=("x",),
        attrs=POOL_ATTRS,
        infer=_pool_infer,
        emit=_emit_pool("_avg_pool2d"),
        kernel=("pad2d", "windows", "avg_pool2d"),
        vjp=lambda g, out, args, attrs: (
            F.avg_pool2d_grad(g, input_size=args[0].shape[-2:], **attrs),
        ),
        formula="dx = avg_pool2d_grad(g)",
        tests=tuple(TestCase(shapes=(x,), attrs=a) for x, a in _POOL_CASES),
        doc="the mean of each window of x (N, C, H, W) or (C, H, W), zero padding counted "
        "(PyTorch's count_include_pad=True); backward through the avg_pool2d_grad op",
    )
)


def _avg_grad_infer(specs, attrs) -> TensorSpec:
    g = specs[0]
    shape = g.shape[:-2] + tuple(attrs["input_size"])
    _grad_infer(TensorSpec(shape, g.dtype), g, attrs)
    return TensorSpec(shape, g.dtype)


register(
    OpDef(
        name="avg_pool2d_grad",
        operands=("g",),
        attrs={"input_size": Attr(convert=as_pair(1), doc="(H, W) of the input"), **POOL_ATTRS},
        infer=_avg_grad_infer,
        emit=_emit_pool("_avg_pool2d_grad", ("input_size", *_KEYS)),
        kernel=("fold_windows", "avg_pool2d_grad"),
        vjp=lambda u, out, args, attrs: (F.avg_pool2d(u, **{k: attrs[k] for k in _KEYS}),),
        formula="dg = avg_pool2d(u)",
        tests=tuple(
            TestCase(shapes=(_pooled_shape(x, a),), attrs={"input_size": x[-2:], **a})
            for x, a in _POOL_CASES
        ),
        doc="the gradient of avg_pool2d with respect to x (..., *input_size), given the output "
        "gradient g: g / (kh * kw) added over each window; linear, the adjoint of avg_pool2d, "
        "whose VJP is avg_pool2d of the cotangent u",
    )
)
