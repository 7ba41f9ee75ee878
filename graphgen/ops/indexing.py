"""Indexing: x[...] (getitem) and its transpose slice_scatter, pad, cumsum.

Basic indexing reads each entry of x at most once, so its VJP writes g into zeros at the
same index (`slice_scatter`, whose own VJP is the indexing again). pad's VJP slices the
padding off (a view); cumsum's VJP is a reversed cumsum of the reversed cotangent.
Gathers with integer tensors (take, take_along_axis) are in gathers.py.

Indices are stored in attrs as JSON data: an int, None (a new axis), "..." (Ellipsis) or
("slice", start, stop, step) per item. Emitters render them from the ints alone.
"""

from __future__ import annotations

import numbers

from . import functions as F
from .leaves import number_literal
from .registry import ATOM, Attr, OpDef, TensorSpec, TestCase, as_int, as_number, as_shape, register
from .shapes import fmt_shape, normalize_axes, numel

ELLIPSIS = "..."

# ---- index data ------------------------------------------------------------------------


def _bound(v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"slice bound {v!r} is not an int or None")
    return int(v)


def _item(v):
    if v is None:
        return None
    if v is Ellipsis or v == ELLIPSIS:
        return ELLIPSIS
    if isinstance(v, slice):
        v = ("slice", v.start, v.stop, v.step)
    if isinstance(v, (list, tuple)) and len(v) == 4 and v[0] == "slice":
        start, stop, step = (_bound(b) for b in v[1:])
        if step == 0:
            raise ValueError("slice step cannot be zero")
        return ("slice", start, stop, step)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"index item {v!r} is not an int, slice, None or Ellipsis")
    return int(v)


def as_index(v) -> tuple:
    """A basic index as canonical JSON-able data: a tuple of items (see module docstring)."""
    items = tuple(_item(i) for i in (v if isinstance(v, (list, tuple)) else (v,)))
    if items.count(ELLIPSIS) > 1:
        raise ValueError("an index can only have a single ellipsis")
    return items


def full_slice(step=None) -> tuple:
    return ("slice", None, None, step)


def along(axis: int, item) -> tuple:
    """The index applying `item` to `axis` (non-negative) and keeping the axes before it."""
    return (full_slice(),) * axis + (item,)


def _slice_len(dim, item) -> int | str:
    _, start, stop, step = item
    if isinstance(dim, int):
        return len(range(*slice(start, stop, step).indices(dim)))
    if start is None and stop is None and step in (None, 1, -1):
        return dim
    raise ValueError(f"slicing symbolic dim {dim!r} needs static bounds")


def index_shape(shape, index) -> tuple:
    """The shape of x[index] for x of `shape` (NumPy basic indexing)."""
    consumed = sum(1 for i in index if i is not None and i != ELLIPSIS)
    if consumed > len(shape):
        raise ValueError(f"too many indices ({consumed}) for {len(shape)}-d operand")
    items = list(index) if ELLIPSIS in index else [*index, ELLIPSIS]
    out, dim = [], 0
    for item in items:
        if item is None:
            out.append(1)
        elif item == ELLIPSIS:
            n = len(shape) - consumed
            out.extend(shape[dim : dim + n])
            dim += n
        elif isinstance(item, int):
            d = shape[dim]
            if isinstance(d, int) and not -d <= item < d:
                raise ValueError(f"index {item} is out of bounds for axis {dim} with size {d}")
            dim += 1
        else:
            out.append(_slice_len(shape[dim], item))
            dim += 1
    return tuple(out)


def index_source(index) -> str:
    """Python source of an index, from its numbers: `1:3, ::-1, None, ...`."""

    def item(i) -> str:
        if i is None:
            return "None"
        if i == ELLIPSIS:
            return "..."
        if isinstance(i, int):
            return str(int(i))
        _, start, stop, step = i
        text = ("" if start is None else str(int(start))) + ":"
        text += "" if stop is None else str(int(stop))
        return text + ("" if step is None else f":{int(step)}")

    return ", ".join(item(i) for i in index) if index else "()"


def same_shape(a, b) -> bool:
    return len(a) == len(b) and all(
        x == y or isinstance(x, str) != isinstance(y, str) for x, y in zip(a, b)
    )


# ---- x[index] and its transpose ----------------------------------------------------------

_INDEX = {"index": Attr(convert=as_index, doc="ints, slices, None and one Ellipsis")}


register(
    OpDef(
        name="getitem",
        operands=("x",),
        attrs=_INDEX,
        infer=lambda specs, attrs: TensorSpec(
            index_shape(specs[0].shape, attrs["index"]), specs[0].dtype
        ),
        emit=lambda e: f"{e.arg(0, ATOM)}[{index_source(e.attrs['index'])}]",
        vjp=lambda g, out, args, attrs: (
            F.slice_scatter(g, shape=args[0].shape, index=attrs["index"]),
        ),
        formula="dx = zeros(x.shape) with dx[index] = g",
        tests=(
            TestCase(shapes=((3, 4),), attrs={"index": (1,)}),
            TestCase(shapes=((3, 4),), attrs={"index": (slice(None, None, -1), slice(1, None, 2))}),
            TestCase(shapes=((2, 3, 4),), attrs={"index": (Ellipsis, -1)}),
            TestCase(shapes=((3, 4),), attrs={"index": (None, slice(0, 2), Ellipsis, None)}),
            TestCase(shapes=((5,),), attrs={"index": (slice(3, 0, -2),)}),
            TestCase(shapes=((2, 1, 3),), attrs={"index": (-1, 0)}),
            TestCase(shapes=((3,),), attrs={"index": ()}),
        ),
        doc="x[index] with basic indexing (a view); also written x[...]",
    )
)


def _slice_scatter_infer(specs, attrs) -> TensorSpec:
    shape = attrs["shape"]
    want = index_shape(shape, attrs["index"])
    if not same_shape(specs[0].shape, want):
        raise ValueError(
            f"updates {fmt_shape(specs[0].shape)} do not fit the index's shape {fmt_shape(want)}"
        )
    return TensorSpec(shape, specs[0].dtype)


register(
    OpDef(
        name="slice_scatter",
        fresh=True,
        operands=("updates",),
        attrs={"shape": Attr(convert=as_shape), **_INDEX},
        infer=_slice_scatter_infer,
        emit=lambda e: (
            f"_slice_scatter({e.arg(0)}, {e.shape(e.out.shape)}, "
            f"np.s_[{index_source(e.attrs['index'])}])"
        ),
        kernel="slice_scatter",
        vjp=lambda g, out, args, attrs: (F.getitem(g, index=attrs["index"]),),
        formula="dupdates = g[index]",
        tests=(
            TestCase(shapes=((2,),), attrs={"shape": (3, 4), "index": (1, slice(0, 2))}),
            TestCase(shapes=((4, 1),), attrs={"shape": (4, 3), "index": (Ellipsis, None, 1)}),
        ),
        doc="zeros of shape with updates written at a basic index: the transpose of getitem",
    )
)

# ---- shared by the ops with an axis attribute (int or None) ------------------------------


def axis_source(e, ndim: int) -> str:
    """ ", axis=1" with the axis made non-negative, or "" for axis None."""
    axis = e.attrs["axis"]
    return "" if axis is None else f", axis={axis % ndim}"


def normal_axis(axis, ndim):
    return None if axis is None else normalize_axes((axis,), ndim)[0]


AXIS_OR_NONE = {"axis": Attr(None, lambda v: None if v is None else as_int(v))}

# ---- pad and cumsum -----------------------------------------------------------------------


def _width(v) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            v = (v[0], v[0])
        if len(v) != 2:
            raise ValueError("each pad width is (before, after)")
        before, after = as_int(v[0]), as_int(v[1])
    else:
        before = after = as_int(v)
    if before < 0 or after < 0:
        raise ValueError("pad widths must be non-negative")
    return before, after


def as_pad_width(v) -> tuple[tuple[int, int], ...]:
    """NumPy's pad_width (n, (before, after), or one pair per axis) as a tuple of pairs;
    a single pair applies to every axis."""
    if isinstance(v, (list, tuple)) and v and all(isinstance(p, (list, tuple)) for p in v):
        return tuple(_width(p) for p in v)
    return (_width(v),)


def pad_pairs(attrs, ndim: int) -> tuple[tuple[int, int], ...]:
    pairs = attrs["pad_width"]
    if len(pairs) == 1:
        return pairs * ndim
    if len(pairs) != ndim:
        raise ValueError(f"pad_width has {len(pairs)} pairs for a {ndim}-d operand")
    return pairs


def _pad_infer(specs, attrs) -> TensorSpec:
    x = specs[0]
    shape = []
    for d, (before, after) in zip(x.shape, pad_pairs(attrs, x.ndim)):
        if isinstance(d, str) and before + after:
            raise ValueError(f"cannot pad symbolic dim {d!r}")
        shape.append(d if isinstance(d, str) else d + before + after)
    return TensorSpec(tuple(shape), x.dtype)


def _emit_pad(e) -> str:
    pairs = pad_pairs(e.attrs, e.ins[0].ndim)
    value = number_literal(e.attrs["constant_values"], e.out.dtype)
    return f"np.pad({e.arg(0)}, {tuple(pairs)}, constant_values={value})"


def _pad_vjp(g, out, args, attrs):
    pairs = pad_pairs(attrs, args[0].ndim)
    index = tuple(("slice", b or None, -a if a else None, None) for b, a in pairs)
    return (F.getitem(g, index=index),)


register(
    OpDef(
        name="pad",
        operands=("x",),
        attrs={
            "pad_width": Attr(convert=as_pad_width, doc="n, (before, after) or one pair per axis"),
            "constant_values": Attr(0, as_number),
        },
        infer=_pad_infer,
        emit=_emit_pad,
        vjp=_pad_vjp,
        formula="dx = g[before:-after] on every axis (the padding gets no cotangent)",
        tests=(
            TestCase(shapes=((3, 4),), attrs={"pad_width": ((1, 2), (0, 1))}),
            TestCase(shapes=((2, 3),), attrs={"pad_width": 1, "constant_values": 0.5}),
            TestCase(shapes=((4,),), attrs={"pad_width": (2, 0)}),
            TestCase(
                shapes=((1, 2, 3),),
                attrs={"pad_width": ((0, 0), (1, 1), (2, 0)), "constant_values": -1},
            ),
        ),
        doc="np.pad(x, pad_width, constant_values=...) (constant mode)",
    )
)


def _cumsum_infer(specs, attrs) -> TensorSpec:
    x = specs[0]
    dtype = x.dtype if x.is_float else "int64"
    if attrs["axis"] is not None:
        normalize_axes((attrs["axis"],), x.ndim)
        return TensorSpec(x.shape, dtype)
    if x.ndim == 1:
        return TensorSpec(x.shape, dtype)
    n = numel(x.shape)
    if n is None:
        raise ValueError("cumsum over the flat array needs static dims (or one dim)")
    return TensorSpec((n,), dtype)


def flip(t, axis: int):
    """t reversed along `axis` (a view)."""
    return F.getitem(t, index=along(axis, full_slice(-1)))


def _cumsum_vjp(g, out, args, attrs):
    x, axis = args[0], attrs["axis"]
    if axis is None:
        return (F.reshape(flip(F.cumsum(flip(g, 0), axis=0), 0), x.shape),)
    axis = axis % x.ndim
    return (flip(F.cumsum(flip(g, axis), axis=axis), axis),)


register(
    OpDef(
        name="cumsum",
        operands=("x",),
        attrs=AXIS_OR_NONE,
        infer=_cumsum_infer,
        emit=lambda e: f"np.cumsum({e.arg(0)}{axis_source(e, e.ins[0].ndim)})",
        vjp=_cumsum_vjp,
        formula="dx = reversed cumsum of g along axis: flip(cumsum(flip(g)))",
        tests=(
            TestCase(shapes=((3, 4),), attrs={"axis": 1}),
            TestCase(shapes=((2, 3, 4),), attrs={"axis": -2}),
            TestCase(shapes=((5,),)),
            TestCase(shapes=((2, 3),)),
            TestCase(shapes=((1,),), attrs={"axis": 0}),
            TestCase(shapes=((2, 3),), attrs={"axis": 0}, domains=("int:5",)),
        ),
        doc="np.cumsum(x, axis) (axis None: over the flat x)",
    )
)
