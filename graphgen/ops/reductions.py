"""Reductions over axes (None | int | tuple, negative axes, keepdims): sum, mean, max, min,
prod, var, std, logsumexp; argmax and argmin.

Their VJPs broadcast the cotangent back over the reduced axes: the Jacobian of a sum is a
row of ones, so its VJP copies g; mean divides by the count; max and min send g to the
entries equal to the result, split equally among ties; prod multiplies g by the product of
the other entries, computed without dividing by x so that zeros are handled exactly;
var and std scale the centered x; logsumexp's VJP is fused: g * softmax(x).
"""

from __future__ import annotations

from ..errors import ShapeError
from . import functions as F
from .registry import Attr, OpDef, TensorSpec, TestCase, as_axes, as_bool, as_int, register
from .shapes import normalize_axes, reduced_shape, require_float

# the kernels of a reduction along rows: _max_along (max) and _sum / _mean (sum, mean);
# the softmax family's kernels call them
ROW_REDUCTIONS = ("max_along", "sum")

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


def _count_infer(specs, attrs) -> TensorSpec:
    """sum and prod: NumPy counts bools as int64."""
    spec = _reduce_infer(specs, attrs)
    return TensorSpec(spec.shape, "int64") if spec.dtype == "bool" else spec


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


def _axis_source(axis) -> str:
    return "None" if axis is None else str(axis[0] if len(axis) == 1 else axis)


def _blas_summable(x: TensorSpec, axis) -> bool:
    """Whether the sum kernel (templates/kernels/sum.py.j2) sums x over `axis` as
    matrix-vector products: float32 or float64, the summed axes x's first and/or last."""
    if x.dtype not in ("float32", "float64") or not x.ndim:
        return False
    axes = normalize_axes(axis, x.ndim)
    lead = 0
    while lead < len(axes) and axes[lead] == lead:
        lead += 1
    return bool(axes) and axes[lead:] == tuple(range(x.ndim - len(axes) + lead, x.ndim))


def _emit_reduce(fn: str, kernel: str | None = None):
    """np.<fn>(x, axis=..., keepdims=...); with `kernel` (sum and mean), that kernel's
    function instead where it runs on BLAS (_blas_summable), with the same arguments."""

    def emit(e) -> str:
        axis, keep = e.attrs["axis"], e.attrs["keepdims"]
        name = fn
        if kernel is not None and _blas_summable(e.ins[0], axis):
            e.use_kernel("sum")
            name = kernel
        parts = [e.arg(0)]
        if axis is not None:
            parts.append(f"axis={_axis_source(axis)}")
        if e.attrs.get("ddof"):
            parts.append(f"ddof={e.attrs['ddof']}")
        if keep:
            parts.append("keepdims=True")
        return f"{name}({', '.join(parts)})"

    return emit


def _sum_vjp(g, out, args, attrs):
    x = args[0]
    return (F.broadcast_to(expand_reduced(g, x, attrs), x.shape),)


def _mean_vjp(g, out, args, attrs):
    x = args[0]
    count = F.size(x, axis=attrs["axis"])
    return (F.broadcast_to(expand_reduced(g / count, x, attrs), x.shape),)


def _extremum_vjp(g, out, args, attrs):
    x = args[0]
    is_max = x == expand_reduced(out, x, attrs)
    # counted in x's float dtype: an int64 count would promote float32 to float64
    ties = F.sum(F.where(is_max, F.ones_like(x), 0.0), axis=attrs["axis"], keepdims=True)
    return (F.where(is_max, expand_reduced(g, x, attrs) / ties, 0.0),)


_REDUCE_ATTRS = {
    "axis": Attr(None, as_axes, "None (all axes), an int or a tuple of ints"),
    "keepdims": Attr(False, as_bool),
}


def _exclusive_products(x, axis: int):
    """Per entry of x, the product of the other entries along `axis`, with no division.

    An exclusive prefix product times an exclusive suffix product, each a Hillis-Steele
    scan: log2(n) steps of multiplying by a copy shifted by 1, 2, 4, ... entries (padded
    with ones). Built from getitem, pad and multiply, so it differentiates again.
    """
    n, ndim = x.shape[axis], x.ndim

    def shifted(t, step: int):  # t moved `step` entries along axis (+: later), ones padded
        keep = slice(None, -step) if step > 0 else slice(-step, None)
        width = (step, 0) if step > 0 else (0, -step)
        widths = tuple(width if d == axis else (0, 0) for d in range(ndim))
        return F.pad(t[(slice(None),) * axis + (keep,)], widths, constant_values=1.0)

    prefix, suffix, step = shifted(x, 1), shifted(x, -1), 1
    while step < n - 1:
        prefix = prefix * shifted(prefix, step)
        suffix = suffix * shifted(suffix, -step)
        step *= 2
    return prefix * suffix


def _prod_vjp(g, out, args, attrs):
    # With axes a1 < ... < am reduced, the product of the entries other than x[i] is
    #   prod_k exclusive_products(prod(x, axes after a_k), a_k)
    # (split the others by the first reduced axis on which they differ from i).
    x = args[0]
    axes = normalize_axes(attrs["axis"], x.ndim)
    others = None
    for k, axis in enumerate(axes):
        n = x.shape[axis]
        if isinstance(n, str):
            raise ShapeError(
                f"node {out.id!r} (op prod): the gradient over symbolic dim {n!r} needs a "
                "static size"
            )
        if n <= 1:
            continue
        later = axes[k + 1 :]
        rest = F.prod(x, axis=later, keepdims=True) if later else x
        factor = _exclusive_products(rest, axis)
        others = factor if others is None else others * factor
    g = expand_reduced(g, x, attrs)
    return (F.broadcast_to(g, x.shape) if others is None else g * others,)


for _name, _infer, _vjp, _formula, _domain in (
    ("sum", _count_infer, _sum_vjp, "dx = broadcast g over the reduced axes", "real"),
    ("mean", _float_reduce_infer, _mean_vjp, "dx = broadcast g / n over the reduced axes", "real"),
    (
        "max",
        _reduce_infer,
        _extremum_vjp,
        "dx = g * (x == max) / (number of ties): ties share g equally",
        "distinct",
    ),
    (
        "min",
        _reduce_infer,
        _extremum_vjp,
        "dx = g * (x == min) / (number of ties): ties share g equally",
        "distinct",
    ),
    (
        "prod",
        _count_infer,
        _prod_vjp,
        "dx = g * (product of the other entries), by prefix and suffix products (no division)",
        "real",
    ),
):
    register(
        OpDef(
            name=_name,
            operands=("x",),
            attrs=_REDUCE_ATTRS,
            infer=_infer,
            emit=_emit_reduce(f"np.{_name}", {"sum": "_sum", "mean": "_mean"}.get(_name)),
            vjp=_vjp,
            formula=_formula,
            tests=tuple(TestCase(shapes=(s,), attrs=a, domains=(_domain,)) for s, a in _AXIS_CASES),
            doc=f"np.{_name}(x, axis, keepdims)",
            fresh=True,
        )
    )


# ---- var, std, logsumexp ------------------------------------------------------------------


def _dof(x, attrs):
    """n - ddof, the count over the reduced axes (a Python int at run time)."""
    n = F.size(x, axis=attrs["axis"])
    return n - attrs["ddof"] if attrs["ddof"] else n


def _centered(x, attrs):
    return x - F.mean(x, axis=attrs["axis"], keepdims=True)


def _var_vjp(g, out, args, attrs):
    x = args[0]
    return (expand_reduced(g, x, attrs) * 2.0 * _centered(x, attrs) / _dof(x, attrs),)


def _std_vjp(g, out, args, attrs):
    x = args[0]
    scale = expand_reduced(g / out, x, attrs) / _dof(x, attrs)
    return (scale * _centered(x, attrs),)


def _ddof(v) -> int:
    if as_int(v) < 0:
        raise ValueError("ddof must be >= 0")
    return v


_STD_CASES = tuple(
    (s, a) for s, a in _AXIS_CASES if s != () and (a.get("axis") != 0 or s[0] != 1)
) + (((3, 4), {"axis": 1, "ddof": 1}),)

for _name, _vjp, _formula in (
    ("var", _var_vjp, "dx = g * 2 * (x - mean(x)) / (n - ddof)"),
    ("std", _std_vjp, "dx = g * (x - mean(x)) / ((n - ddof) * std(x))"),
):
    register(
        OpDef(
            name=_name,
            operands=("x",),
            attrs={**_REDUCE_ATTRS, "ddof": Attr(0, _ddof, "delta degrees of freedom")},
            infer=_float_reduce_infer,
            emit=_emit_reduce(f"np.{_name}"),
            vjp=_vjp,
            formula=_formula,
            tests=tuple(TestCase(shapes=(s,), attrs=a) for s, a in _STD_CASES),
            doc=f"np.{_name}(x, axis, ddof, keepdims)",
            fresh=True,
        )
    )


def _logsumexp_vjp(g, out, args, attrs):
    x = args[0]
    return (expand_reduced(g, x, attrs) * F.exp(x - expand_reduced(out, x, attrs)),)


register(
    OpDef(
        name="logsumexp",
        fresh=True,
        operands=("x",),
        attrs=_REDUCE_ATTRS,
        infer=_float_reduce_infer,
        emit=lambda e: (
            f"_logsumexp({e.arg(0)}, axis={_axis_source(e.attrs['axis'])}, "
            f"keepdims={e.attrs['keepdims']})"
        ),
        kernel=(*ROW_REDUCTIONS, "logsumexp"),
        vjp=_logsumexp_vjp,
        formula="dx = g * exp(x - logsumexp(x)) = g * softmax(x)  (fused: stable, no re-sum)",
        tests=tuple(TestCase(shapes=(s,), attrs=a) for s, a in _AXIS_CASES),
        doc="log(sum(exp(x), axis)), shifted by the max (scipy.special.logsumexp)",
    )
)

# ---- argmax, argmin: int64 positions, no gradient ---------------------------------------


def _arg_infer(specs, attrs) -> TensorSpec:
    x, axis = specs[0], attrs["axis"]
    axes = normalize_axes(None if axis is None else (axis,), x.ndim)
    return TensorSpec(reduced_shape(x.shape, axes, attrs["keepdims"]), "int64")


def _emit_arg(fn: str):
    def emit(e) -> str:
        axis = "" if e.attrs["axis"] is None else f", axis={e.attrs['axis']}"
        keep = ", keepdims=True" if e.attrs["keepdims"] else ""
        return f"{fn}({e.arg(0)}{axis}{keep})"

    return emit


for _name in ("argmax", "argmin"):
    register(
        OpDef(
            name=_name,
            operands=("x",),
            attrs={
                "axis": Attr(None, lambda v: None if v is None else as_int(v)),
                "keepdims": Attr(False, as_bool),
            },
            infer=_arg_infer,
            emit=_emit_arg(f"np.{_name}"),
            vjp=None,
            formula="(integer positions: no gradient)",
            tests=(
                TestCase(shapes=((3, 4),)),
                TestCase(shapes=((3, 4),), attrs={"axis": 1}),
                TestCase(shapes=((2, 3, 4),), attrs={"axis": -2, "keepdims": True}),
                TestCase(shapes=((1, 5),), attrs={"axis": 0}),
                TestCase(shapes=((2, 3),), attrs={"keepdims": True}),
            ),
            doc=f"np.{_name}(x, axis, keepdims): int64 positions (axis None: in the flat x)",
        )
    )


def _size_infer(specs, attrs) -> TensorSpec:
    normalize_axes(attrs["axis"], specs[0].ndim)
    return TensorSpec((), "int64")


def _emit_size(e) -> str:
    x = e.ins[0]
    dims = [x.shape[a] for a in normalize_axes(e.attrs["axis"], x.ndim)]
    return e.dim_product(dims)  # parenthesized when a product: an atom


register(
    OpDef(
        name="size",
        reads_operands=False,
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
