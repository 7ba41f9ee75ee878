"""Reductions over axes (None | int | tuple, negative axes, keepdims): sum, mean, max.

Their VJPs broadcast the cotangent back over the reduced axes: the Jacobian of a sum is a
row of ones, so its VJP copies g; mean divides by the count; max sends g to the entries
equal to the max, split equally among ties.
"""

from __future__ import annotations

from . import functions as F
from .registry import Attr, OpDef, TensorSpec, TestCase, as_axes, as_bool, register
from .shapes import normalize_axes, reduced_shape, require_float

_AXIS_CASES = (
    ((3, 4), {}),
    ((3, 4), {"axis": 0}),
    ((3, 4), {"axis": -1, "keepdims": True}),
    ((2, 3, 4), {"axis": (0, 2)}),
    ((2, 3, 4), {"axis": (-1, 1), "keepdims": True}),
    ((), {}),
    ((1, 5), {"axis": 0}),
)


def _reduce_infer(specs, attrs) -> TensorSpec:
    x = specs[0]
    axes = normalize_axes(attrs["axis"], x.ndim)
    return TensorSpec(reduced_shape(x.shape, axes, attrs["keepdims"]), x.dtype)


def _sum_infer(specs, attrs) -> TensorSpec:
    spec = _reduce_infer(specs, attrs)
    return TensorSpec(spec.shape, "int64") if spec.dtype == "bool" else spec  # as NumPy


def _float_reduce_infer(specs, attrs) -> TensorSpec:
    require_float(specs[0], "x")
    return _reduce_infer(specs, attrs)


def keepdims_shape(x, attrs) -> tuple:
    """x's shape with the reduced axes kept as size 1."""
    return reduced_shape(x.shape, normalize_axes(attrs["axis"], x.ndim), True)


def expand_reduced(t, x, attrs):
    """A reduced value `t` reshaped so that it broadcasts against `x` (keepdims layout)."""
    keep = keepdims_shape(x, attrs)
    return t if tuple(t.shape) == keep else F.reshape(t, keep)


def _emit_reduce(fn: str):
    def emit(e) -> str:
        axis, keep = e.attrs["axis"], e.attrs["keepdims"]
        parts = [e.arg(0)]
        if axis is not None:
            parts.append(f"axis={axis[0] if len(axis) == 1 else axis}")
        if keep:
            parts.append("keepdims=True")
        return f"{fn}({', '.join(parts)})"

    return emit


def _sum_vjp(g, out, args, attrs):
    x = args[0]
    return (F.broadcast_to(expand_reduced(g, x, attrs), x.shape),)


def _mean_vjp(g, out, args, attrs):
    x = args[0]
    count = F.size(x, axis=attrs["axis"])
    return (F.broadcast_to(expand_reduced(g / count, x, attrs), x.shape),)


def _max_vjp(g, out, args, attrs):
    x = args[0]
    is_max = x == expand_reduced(out, x, attrs)
    # counted in x's float dtype: an int64 count would promote float32 to float64
    ties = F.sum(F.where(is_max, F.ones_like(x), 0.0), axis=attrs["axis"], keepdims=True)
    return (F.where(is_max, expand_reduced(g, x, attrs) / ties, 0.0),)


_REDUCE_ATTRS = {
    "axis": Attr(None, as_axes, "None (all axes), an int or a tuple of ints"),
    "keepdims": Attr(False, as_bool),
}

for _name, _infer, _vjp, _formula, _domain in (
    ("sum", _sum_infer, _sum_vjp, "dx = broadcast g over the reduced axes", "real"),
    ("mean", _float_reduce_infer, _mean_vjp, "dx = broadcast g / n over the reduced axes", "real"),
    (
        "max",
        _reduce_infer,
        _max_vjp,
        "dx = g * (x == max) / (number of ties): ties share g equally",
        "distinct",
    ),
):
    register(
        OpDef(
            name=_name,
            operands=("x",),
            attrs=_REDUCE_ATTRS,
            infer=_infer,
            emit=_emit_reduce(f"np.{_name}"),
            vjp=_vjp,
            formula=_formula,
            tests=tuple(TestCase(shapes=(s,), attrs=a, domains=(_domain,)) for s, a in _AXIS_CASES),
            doc=f"np.{_name}(x, axis, keepdims)",
        )
    )


def _size_infer(specs, attrs) -> TensorSpec:
    normalize_axes(attrs["axis"], specs[0].ndim)
    return TensorSpec((), "int64")


def _emit_size(e) -> str:
    x = e.ins[0]
    dims = [x.shape[a] for a in normalize_axes(e.attrs["axis"], x.ndim)]
    return e.dim_product(dims)


register(
    OpDef(
        name="size",
        operands=("x",),
        attrs={"axis": Attr(None, as_axes)},
        infer=_size_infer,
        emit=_emit_size,
        vjp=None,
        formula="(a count: no gradient)",
        tests=(TestCase(shapes=((3, 4),), attrs={"axis": 1}),),
        doc="number of elements of x over axis (all by default), from its static shape",
    )
)
