"""2-D convolution (PyTorch's conv2d: NCHW input, OIHW weight) and its two backward ops.

conv2d is emitted as an im2col kernel (templates/kernels/conv2d.py.j2): a strided view of
all windows, copied once into a (C // groups * kh * kw, Ho * Wo) matrix per image and group,
times the weights, one BLAS product per image and group that leaves the result in NCHW
order; no Python loop over the batch or the output pixels. Its VJP uses two backward ops,
because neither gradient is a cheap composition of other ops:
- conv2d_input_grad(g, w): the transposed convolution. Dense (stride 1, one group, at
  least 4 input channels times kernel columns): one GEMM over row-shifted copies of g on
  the flat grid of all padded planes, then one add per kernel column. Otherwise a matrix
  product then col2im (a loop over the kh * kw kernel positions only, each step one
  vectorised strided add);
- conv2d_weight_grad(x, g): g times the im2col matrix of x.
The three are bilinear and each one's VJP is made of the other two, so convolutions are
differentiable to any order: for y = conv2d(x, w), <u, input_grad(g, w)> = <g, conv2d(u, w)>
and <u, weight_grad(x, g)> = <g, conv2d(x, u)>.
"""

from __future__ import annotations

from typing import Any

from . import functions as F
from .registry import Attr, OpDef, TensorSpec, TestCase, as_int, register
from .shapes import float_result, fmt_shape, require_float

# ---- attributes ------------------------------------------------------------------------


def as_pair(minimum: int):
    """A converter: an int or a pair of ints (each >= minimum) -> a pair."""

    def convert(v: Any) -> tuple[int, int]:
        pair = tuple(v) if isinstance(v, (list, tuple)) else (v, v)
        if len(pair) != 2:
            raise ValueError("expected an int or a pair of ints")
        pair = (as_int(pair[0]), as_int(pair[1]))
        if min(pair) < minimum:
            raise ValueError(f"expected values >= {minimum}")
        return pair

    return convert


CONV_ATTRS = {
    "stride": Attr((1, 1), as_pair(1), "an int or a (height, width) pair"),
    "padding": Attr((0, 0), as_pair(0), "zero padding on both sides: an int or a pair"),
    "dilation": Attr((1, 1), as_pair(1), "spacing between kernel taps: an int or a pair"),
    "groups": Attr(1, as_int, "channels are split into this many independent groups"),
}
_CONV_KEYS = tuple(CONV_ATTRS)


def static_dims(spec: TensorSpec, axes, what: str) -> tuple[int, ...]:
    """The dims of `spec` at `axes`, which must be ints (not symbolic)."""
    dims = tuple(spec.shape[a] for a in axes)
    if any(isinstance(d, str) for d in dims):
        raise ValueError(f"{what} must be static ints, got {fmt_shape(spec.shape)}")
    return dims


def window_count(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """How many windows fit along one axis (PyTorch's floor formula)."""
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(
            f"the kernel (span {span}) is larger than the padded input ({size + 2 * padding})"
        )
    return (size + 2 * padding - span) // stride + 1


def conv_output_hw(hw, khw, attrs) -> tuple[int, int]:
    return tuple(
        window_count(hw[i], khw[i], attrs["stride"][i], attrs["padding"][i], attrs["dilation"][i])
        for i in range(2)
    )


def _check_groups(channels: int, out_channels: int, groups: int) -> int:
    """C // groups, after checking that groups divides both channel counts."""
    if groups < 1 or channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide the input channels ({channels}) "
            f"and the output channels ({out_channels})"
        )
    return channels // groups


def _check_4d(spec: TensorSpec, what: str) -> None:
    require_float(spec, what)
    if spec.ndim != 4:
        raise ValueError(f"{what} must be 4-D, got {fmt_shape(spec.shape)}")


def emit_call(fn: str, keys: tuple[str, ...], attrs: dict, scratch: bool = False):
    """An emitter `fn(operands..., key=value, ...)`: an absent optional operand is None (left
    out when trailing), and an attr at its default is left out (the kernels declare the same
    defaults). scratch: the kernel takes the function's workspace scratch for temporaries
    that die inside it (`scratch=scratch`, when the function plans buffers)."""

    def emit(e) -> str:
        args = ["None" if s is None else e.arg(i) for i, s in enumerate(e.ins)]
        while args[-1] == "None":  # a trailing optional operand left out
            args.pop()
        args += [f"{k}={e.attrs[k]!r}" for k in keys if e.attrs[k] != attrs[k].default]
        if scratch and (name := e.scratch()):
            args.append(f"scratch={name}")
        return f"{fn}({', '.join(args)})"

    return emit


def _conv_attrs(attrs: dict) -> dict:
    return {key: attrs[key] for key in _CONV_KEYS}


# ---- conv2d ----------------------------------------------------------------------------


def _conv2d_infer(specs, attrs) -> TensorSpec:
    x, w, b = specs
    _check_4d(x, "x")
    _check_4d(w, "w")
    c, h, wd = static_dims(x, (1, 2, 3), "the channel and spatial dims of x")
    o, cg, kh, kw = static_dims(w, range(4), "the dims of w")
    if _check_groups(c, o, attrs["groups"]) != cg:
        raise ValueError(
            f"w {fmt_shape(w.shape)} needs C // groups = {c // attrs['groups']} input channels"
        )
    dtype = float_result(x.dtype, w.dtype)
    if b is not None:
        require_float(b, "b")
        if b.shape != (o,):
            raise ValueError(f"bias b must have shape ({o},), got {fmt_shape(b.shape)}")
        dtype = float_result(dtype, b.dtype)
    return TensorSpec((x.shape[0], o, *conv_output_hw((h, wd), (kh, kw), attrs)), dtype)


def _conv2d_vjp(g, out, args, attrs):
    x, w, b = args
    common = _conv_attrs(attrs)
    dx = F.conv2d_input_grad(g, w, input_size=x.shape[2:], **common)
    dw = F.conv2d_weight_grad(x, g, kernel_size=w.shape[2:], **common)
    db = None if b is None else F.sum(g, axis=(0, 2, 3))
    return dx, dw, db


_X, _W = (2, 3, 6, 5), (4, 3, 3, 2)
register(
    OpDef(
        name="conv2d",
        fresh=True,
        out_kwarg=True,
        operands=("x", "w", "b"),
        optional=("b",),
        attrs=CONV_ATTRS,
        infer=_conv2d_infer,
        emit=emit_call("_conv2d", _CONV_KEYS, CONV_ATTRS, scratch=True),
        kernel=("pad2d", "windows", "temporary", "im2col", "conv_rows", "conv2d"),
        vjp=_conv2d_vjp,
        formula="dx = conv2d_input_grad(g, w), dw = conv2d_weight_grad(x, g), "
        "db = sum(g, axis=(0, 2, 3))",
        tests=(
            TestCase(shapes=(_X, _W, (4,))),
            TestCase(shapes=(_X, _W, None)),
            TestCase(shapes=((1, 2, 5, 5), (3, 2, 3, 3), (3,)), attrs={"stride": 2, "padding": 1}),
            TestCase(
                shapes=((2, 2, 7, 6), (2, 2, 2, 3), None),
                attrs={"stride": (2, 1), "padding": (0, 2), "dilation": (2, 1)},
            ),
            TestCase(shapes=((1, 4, 4, 4), (6, 2, 3, 3), (6,)), attrs={"groups": 2}),
            TestCase(shapes=((2, 3, 4, 4), (3, 1, 2, 2), None), attrs={"groups": 3}),
            TestCase(shapes=((2, 3, 3, 3), (2, 3, 1, 1), (2,))),
            TestCase(shapes=((1, 1, 3, 3), (1, 1, 3, 3), None)),
            TestCase(shapes=((1, 2, 7, 8), (2, 2, 2, 2), (2,)), attrs={"stride": 3}),
        ),
        doc="PyTorch's conv2d: x (N, C, H, W), w (O, C // groups, kh, kw), optional bias "
        "(O,) -> (N, O, H_out, W_out); a cross-correlation, like every deep-learning conv. "
        "Backward through the conv2d_input_grad and conv2d_weight_grad ops (im2col / col2im "
        "kernels, faster than any composition of primitives)",
    )
)

# ---- conv2d_input_grad -----------------------------------------------------------------


_INPUT_GRAD_ATTRS = {"input_size": Attr(convert=as_pair(1), doc="(H, W) of x"), **CONV_ATTRS}


def _input_grad_infer(specs, attrs) -> TensorSpec:
    g, w = specs
    _check_4d(g, "g")
    _check_4d(w, "w")
    o, cg, kh, kw = static_dims(w, range(4), "the dims of w")
    hw = attrs["input_size"]
    c = cg * attrs["groups"]
    _check_groups(c, o, attrs["groups"])
    want = (o, *conv_output_hw(hw, (kh, kw), attrs))
    if static_dims(g, (1, 2, 3), "the channel and spatial dims of g") != want:
        raise ValueError(
            f"g must have shape (N, {', '.join(map(str, want))}) for input size {hw}, "
            f"got {fmt_shape(g.shape)}"
        )
    return TensorSpec((g.shape[0], c, *hw), float_result(g.dtype, w.dtype))


def _input_grad_vjp(u, out, args, attrs):
    g, w = args
    common = _conv_attrs(attrs)
    return F.conv2d(u, w, **common), F.conv2d_weight_grad(u, g, kernel_size=w.shape[2:], **common)


_GRAD_CASES = (  # (x shape, w shape, attrs)
    (_X, _W, {}),
    ((1, 2, 6, 5), (3, 2, 3, 3), {"stride": 2, "padding": 1}),
    ((2, 2, 7, 6), (2, 2, 2, 3), {"stride": (2, 1), "padding": (0, 2), "dilation": (2, 1)}),
    ((1, 4, 4, 4), (6, 2, 3, 3), {"groups": 2}),
    ((1, 2, 7, 8), (2, 2, 2, 2), {"stride": 3}),
)


def _out_shape(x, w, attrs) -> tuple:
    """The conv2d output shape for input shape x, weight shape w and (partial) attrs."""
    full = {k: a.convert(attrs.get(k, a.default)) for k, a in CONV_ATTRS.items()}
    return (x[0], w[0], *conv_output_hw(x[2:], w[2:], full))


register(
    OpDef(
        name="conv2d_input_grad",
        fresh=True,
        operands=("g", "w"),
        attrs=_INPUT_GRAD_ATTRS,
        infer=_input_grad_infer,
        emit=emit_call(
            "_conv2d_input_grad", tuple(_INPUT_GRAD_ATTRS), _INPUT_GRAD_ATTRS, scratch=True
        ),
        kernel=("fold_windows", "temporary", "conv2d_input_grad"),
        vjp=_input_grad_vjp,
        formula="dg = conv2d(u, w), dw = conv2d_weight_grad(u, g)",
        tests=tuple(
            TestCase(shapes=(_out_shape(x, w, a), w), attrs={"input_size": x[2:], **a})
            for x, w, a in _GRAD_CASES
        ),
        doc="the gradient of conv2d with respect to its input x (N, C, *input_size), "
        "given the output gradient g and the weights w (a transposed convolution: matrix "
        "product, then col2im); u is the cotangent of its result",
    )
)

# ---- conv2d_weight_grad ----------------------------------------------------------------


_WEIGHT_GRAD_ATTRS = {"kernel_size": Attr(convert=as_pair(1), doc="(kh, kw) of w"), **CONV_ATTRS}


def _weight_grad_infer(specs, attrs) -> TensorSpec:
    x, g = specs
    _check_4d(x, "x")
    _check_4d(g, "g")
    c, h, wd = static_dims(x, (1, 2, 3), "the channel and spatial dims of x")
    o, ho, wo = static_dims(g, (1, 2, 3), "the channel and spatial dims of g")
    kh, kw = attrs["kernel_size"]
    cg = _check_groups(c, o, attrs["groups"])
    want = conv_output_hw((h, wd), (kh, kw), attrs)
    if (ho, wo) != want:
        raise ValueError(f"g must have spatial dims {want} for x {fmt_shape(x.shape)}")
    return TensorSpec((o, cg, kh, kw), float_result(x.dtype, g.dtype))


def _weight_grad_vjp(u, out, args, attrs):
    x, g = args
    common = _conv_attrs(attrs)
    return F.conv2d_input_grad(g, u, input_size=x.shape[2:], **common), F.conv2d(x, u, **common)


register(
    OpDef(
        name="conv2d_weight_grad",
        fresh=True,
        operands=("x", "g"),
        attrs={
            "kernel_size": Attr(convert=as_pair(1), doc="(kh, kw) of the weights"),
            **CONV_ATTRS,
        },
        infer=_weight_grad_infer,
        emit=emit_call(
            "_conv2d_weight_grad", tuple(_WEIGHT_GRAD_ATTRS), _WEIGHT_GRAD_ATTRS, scratch=True
        ),
        kernel=(
            "pad2d",
            "windows",
            "temporary",
            "im2col",
            "conv_rows",
            "conv2d_weight_grad",
        ),
        vjp=_weight_grad_vjp,
        formula="dx = conv2d_input_grad(g, u), dg = conv2d(x, u)",
        tests=tuple(
            TestCase(shapes=(x, _out_shape(x, w, a)), attrs={"kernel_size": w[2:], **a})
            for x, w, a in _GRAD_CASES
        ),
        doc="the gradient of conv2d with respect to its weights (O, C // groups, *kernel_size), "
        "given the input x and the output gradient g (g times the im2col matrix of x); u is "
        "the cotangent of its result",
    )
)
