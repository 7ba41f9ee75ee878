"""Gathers with integer index tensors, take and take_along_axis, and their transposes.

A gather reads entries of x, so its VJP writes the cotangent back to the entries read.
take and take_along_axis may read an entry several times, so their transposes
`scatter_add` and `scatter_add_along_axis` accumulate repeated indices (np.add.at
semantics, in small kernels). The VJP of each scatter is its gather again, so the pairs
differentiate twice.
"""

from __future__ import annotations

from . import functions as F
from .indexing import AXIS_OR_NONE, axis_source, normal_axis, same_shape
from .registry import Attr, OpDef, TensorSpec, TestCase, as_int, as_shape, register
from .shapes import broadcast_dim, fmt_shape, normalize_axes


def _require_int(spec: TensorSpec) -> None:
    if spec.dtype != "int64":
        raise ValueError(f"indices must be int64, got {spec.dtype}")


def take_shape(shape, indices_shape, axis) -> tuple:
    if axis is None:
        return tuple(indices_shape)
    (a,) = normalize_axes((axis,), len(shape))
    return tuple(shape[:a]) + tuple(indices_shape) + tuple(shape[a + 1 :])


def _take_infer(specs, attrs) -> TensorSpec:
    x, indices = specs
    _require_int(indices)
    return TensorSpec(take_shape(x.shape, indices.shape, attrs["axis"]), x.dtype)


register(
    OpDef(
        name="take",
        fresh=True,
        operands=("x", "indices"),
        attrs=AXIS_OR_NONE,
        infer=_take_infer,
        emit=lambda e: f"np.take({e.arg(0)}, {e.arg(1)}{axis_source(e, e.ins[0].ndim)})",
        vjp=lambda g, out, args, attrs: (
            F.scatter_add(
                g, args[1], shape=args[0].shape, axis=normal_axis(attrs["axis"], args[0].ndim)
            ),
            None,
        ),
        formula="dx = zeros(x.shape); np.add.at(dx, indices along axis, g)",
        tests=(
            TestCase(shapes=((5,), (3,)), domains=("real", "int:5")),
            TestCase(shapes=((3, 4), (2, 2)), attrs={"axis": 1}, domains=("real", "int:4")),
            TestCase(shapes=((3, 4), (6,)), attrs={"axis": -2}, domains=("real", "int:3")),
            TestCase(shapes=((2, 3), ()), attrs={"axis": 0}, domains=("real", "int:2")),
            TestCase(shapes=((3, 4), (2, 5)), domains=("real", "int:12")),
        ),
        doc="np.take(x, indices, axis): entries along axis (None: of the flat x)",
    )
)


def _scatter_infer(gathered_shape):
    """Shape rule of a scatter: `updates` must have the shape its gather would produce."""

    def infer(specs, attrs) -> TensorSpec:
        updates, indices = specs
        _require_int(indices)
        want = gathered_shape(attrs["shape"], indices.shape, attrs["axis"])
        if not same_shape(updates.shape, want):
            raise ValueError(f"updates must have shape {fmt_shape(want)}")
        return TensorSpec(attrs["shape"], updates.dtype)

    return infer


register(
    OpDef(
        name="scatter_add",
        fresh=True,
        operands=("updates", "indices"),
        attrs={"shape": Attr(convert=as_shape), **AXIS_OR_NONE},
        infer=_scatter_infer(take_shape),
        emit=lambda e: (
            f"_scatter_add({e.arg(0)}, {e.arg(1)}, {e.shape(e.out.shape)}, "
            f"{normal_axis(e.attrs['axis'], e.out.ndim)})"
        ),
        kernel="scatter_add",
        vjp=lambda g, out, args, attrs: (F.take(g, args[1], axis=attrs["axis"]), None),
        formula="dupdates = take(g, indices, axis)",
        tests=(
            TestCase(
                shapes=((2, 3), (3,)),
                attrs={"shape": (2, 4), "axis": 1},
                domains=("real", "int:4"),
            ),
            TestCase(shapes=((5,), (5,)), attrs={"shape": (2, 2)}, domains=("real", "int:4")),
        ),
        doc="zeros of shape plus updates added at indices along axis: the transpose of take",
    )
)


def along_axis_shape(shape, indices_shape, axis) -> tuple:
    if len(shape) != len(indices_shape):
        raise ValueError("x and indices must have the same number of dims")
    (a,) = normalize_axes((axis,), len(shape))
    return tuple(
        i if d == a else broadcast_dim(s, i) for d, (s, i) in enumerate(zip(shape, indices_shape))
    )


def _take_along_axis_infer(specs, attrs) -> TensorSpec:
    x, indices = specs
    _require_int(indices)
    return TensorSpec(along_axis_shape(x.shape, indices.shape, attrs["axis"]), x.dtype)


register(
    OpDef(
        name="take_along_axis",
        fresh=True,
        operands=("x", "indices"),
        attrs={"axis": Attr(-1, as_int)},
        infer=_take_along_axis_infer,
        emit=lambda e: f"np.take_along_axis({e.arg(0)}, {e.arg(1)}{axis_source(e, e.ins[0].ndim)})",
        vjp=lambda g, out, args, attrs: (
            F.scatter_add_along_axis(g, args[1], shape=args[0].shape, axis=attrs["axis"]),
            None,
        ),
        formula="dx = zeros(x.shape); np.add.at(dx, indices along axis, g)",
        tests=(
            TestCase(shapes=((3, 4), (3, 2)), attrs={"axis": 1}, domains=("real", "int:4")),
            TestCase(shapes=((3, 4), (5, 4)), attrs={"axis": 0}, domains=("real", "int:3")),
            TestCase(shapes=((3, 1), (3, 5)), attrs={"axis": 0}, domains=("real", "int:3")),
            TestCase(shapes=((2, 3, 4), (2, 1, 6)), domains=("real", "int:4")),
        ),
        doc="np.take_along_axis(x, indices, axis): per-position picks along axis",
    )
)


register(
    OpDef(
        name="scatter_add_along_axis",
        fresh=True,
        operands=("updates", "indices"),
        attrs={"shape": Attr(convert=as_shape), "axis": Attr(-1, as_int)},
        infer=_scatter_infer(along_axis_shape),
        emit=lambda e: (
            f"_scatter_add_along_axis({e.arg(0)}, {e.arg(1)}, {e.shape(e.out.shape)}, "
            f"{e.attrs['axis'] % e.out.ndim})"
        ),
        kernel="scatter_add_along_axis",
        vjp=lambda g, out, args, attrs: (
            F.take_along_axis(g, args[1], axis=attrs["axis"]),
            None,
        ),
        formula="dupdates = take_along_axis(g, indices, axis)",
        tests=(
            TestCase(
                shapes=((3, 2), (3, 2)),
                attrs={"shape": (3, 4), "axis": 1},
                domains=("real", "int:4"),
            ),
            TestCase(
                shapes=((3, 5), (3, 5)),
                attrs={"shape": (3, 1), "axis": 0},
                domains=("real", "int:3"),
            ),
        ),
        doc="zeros of shape plus updates added along axis: the transpose of take_along_axis",
    )
)
