"""Shape ops: reshape, transpose, broadcast_to, expand_dims, squeeze, concatenate, stack.

Their VJPs move g back without arithmetic (reshape, inverse transpose, views of g), except
broadcast_to, whose cotangent the autodiff pass sums over the broadcast axes.
"""

from __future__ import annotations

from . import functions as F
from .registry import (
    ATOM,
    Attr,
    Dim,
    OpDef,
    TensorSpec,
    TestCase,
    as_axes,
    as_int,
    as_shape,
    register,
)
from .shapes import fmt_shape, normalize_axes, promote


def _reshape_infer(specs, attrs) -> TensorSpec:
    x, target = specs[0], attrs["shape"]
    if sum(d == -1 for d in target) > 1:
        raise ValueError("only one dim can be -1")
    if -1 in target:
        target = _solve_minus_one(x.shape, target)
    if _dim_signature(x.shape) != _dim_signature(target):
        raise ValueError(f"cannot reshape {fmt_shape(x.shape)} to {fmt_shape(attrs['shape'])}")
    return TensorSpec(target, x.dtype)


def _dim_signature(shape) -> tuple:
    """(static element count, sorted symbolic dims): equal for shapes of equal size."""
    count = 1
    symbols = []
    for d in shape:
        if isinstance(d, str):
            symbols.append(d)
        else:
            count *= d
    return count, tuple(sorted(symbols))


def _solve_minus_one(shape, target):
    have_n, have_sym = _dim_signature(shape)
    known = tuple(d for d in target if d != -1)
    want_n, want_sym = _dim_signature(known)
    missing = list(have_sym)
    for s in want_sym:
        if s not in missing:
            raise ValueError(f"symbolic dim {s!r} of the target is not in {fmt_shape(shape)}")
        missing.remove(s)
    if want_n == 0 or have_n % want_n:
        raise ValueError(f"cannot reshape {fmt_shape(shape)} to {fmt_shape(target)}")
    ratio = have_n // want_n
    if not missing:
        fill = ratio
    elif len(missing) == 1 and ratio == 1:
        fill = missing[0]
    else:
        raise ValueError(f"-1 in {fmt_shape(target)} is not a single dim of {fmt_shape(shape)}")
    return tuple(fill if d == -1 else d for d in target)


register(
    OpDef(
        name="reshape",
        operands=("x",),
        attrs={"shape": Attr(convert=as_shape, doc="ints, symbolic dims, at most one -1")},
        infer=_reshape_infer,
        emit=lambda e: f"np.reshape({e.arg(0)}, {e.shape(e.out.shape)})",
        vjp=lambda g, out, args, attrs: (F.reshape(g, args[0].shape),),
        formula="dx = reshape(g, x.shape)",
        tests=(
            TestCase(shapes=((3, 4),), attrs={"shape": (4, 3)}),
            TestCase(shapes=((2, 3, 4),), attrs={"shape": (-1, 4)}),
            TestCase(shapes=((6,),), attrs={"shape": (1, 2, 3)}),
            TestCase(shapes=((),), attrs={"shape": (1, 1)}),
        ),
        doc="np.reshape(x, shape)",
    )
)


def _transpose_infer(specs, attrs) -> TensorSpec:
    x, axes = specs[0], attrs["axes"]
    if axes is None:
        return TensorSpec(tuple(reversed(x.shape)), x.dtype)
    if sorted(a % x.ndim if -x.ndim <= a < x.ndim else a for a in axes) != list(range(x.ndim)):
        raise ValueError(f"axes {axes} are not a permutation of {x.ndim} axes")
    return TensorSpec(tuple(x.shape[a] for a in axes), x.dtype)


def _transpose_vjp(g, out, args, attrs):
    x, axes = args[0], attrs["axes"]
    if axes is None:
        return (F.transpose(g),)
    axes = [a % x.ndim for a in axes]
    inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))
    return (F.transpose(g, inverse),)


def _emit_transpose(e) -> str:
    axes, ndim = e.attrs["axes"], e.ins[0].ndim
    if axes is None or [a % ndim for a in axes] == list(reversed(range(ndim))):
        return f"{e.arg(0, ATOM)}.T"
    return f"np.transpose({e.arg(0)}, {tuple(a % ndim for a in axes)})"


register(
    OpDef(
        name="transpose",
        operands=("x",),
        attrs={"axes": Attr(None, as_axes, "a permutation; None reverses the axes")},
        infer=_transpose_infer,
        emit=_emit_transpose,
        vjp=_transpose_vjp,
        formula="dx = transpose(g, inverse permutation)  (a view: no copy)",
        tests=(
            TestCase(shapes=((3, 4),)),
            TestCase(shapes=((2, 3, 4),), attrs={"axes": (1, 2, 0)}),
            TestCase(shapes=((2, 3, 4),), attrs={"axes": (0, -1, 1)}),
        ),
        doc="np.transpose(x, axes); x.T",
    )
)


def _broadcast_to_infer(specs, attrs) -> TensorSpec:
    x, target = specs[0], attrs["shape"]
    if -1 in target:
        raise ValueError("-1 is not allowed in broadcast_to")
    if len(x.shape) > len(target):
        raise ValueError(f"cannot broadcast {fmt_shape(x.shape)} to {fmt_shape(target)}")
    for d, t in zip(reversed(x.shape), reversed(target)):
        if d != t and d != 1 and not (isinstance(d, str) != isinstance(t, str)):
            raise ValueError(f"cannot broadcast {fmt_shape(x.shape)} to {fmt_shape(target)}")
    return TensorSpec(tuple(target), x.dtype)


register(
    OpDef(
        name="broadcast_to",
        operands=("x",),
        attrs={"shape": Attr(convert=as_shape)},
        infer=_broadcast_to_infer,
        emit=lambda e: f"np.broadcast_to({e.arg(0)}, {e.shape(e.out.shape)})",
        vjp=lambda g, out, args, attrs: (g,),
        formula="dx = unbroadcast(g): sum over the broadcast axes",
        tests=(
            TestCase(shapes=((4,),), attrs={"shape": (3, 4)}),
            TestCase(shapes=((3, 1),), attrs={"shape": (2, 3, 5)}),
            TestCase(shapes=((),), attrs={"shape": (2,)}),
        ),
        doc="np.broadcast_to(x, shape) (a read-only view)",
    )
)


# ---- adding and removing axes ------------------------------------------------------------


def _expand_dims_infer(specs, attrs) -> TensorSpec:
    x = specs[0]
    axes = normalize_axes(attrs["axis"], x.ndim + len(attrs["axis"]))
    dims = iter(x.shape)
    shape = tuple(1 if i in axes else next(dims) for i in range(x.ndim + len(axes)))
    return TensorSpec(shape, x.dtype)


def _emit_axes(axes) -> str:
    return str(axes[0]) if len(axes) == 1 else str(tuple(axes))


register(
    OpDef(
        name="expand_dims",
        operands=("x",),
        attrs={"axis": Attr(convert=as_axes, doc="an int or a tuple of ints")},
        infer=_expand_dims_infer,
        emit=lambda e: (
            f"np.expand_dims({e.arg(0)}, "
            f"{_emit_axes(normalize_axes(e.attrs['axis'], e.out.ndim))})"
        ),
        vjp=lambda g, out, args, attrs: (F.reshape(g, args[0].shape),),
        formula="dx = reshape(g, x.shape)",
        tests=(
            TestCase(shapes=((3, 4),), attrs={"axis": 1}),
            TestCase(shapes=((3,),), attrs={"axis": (0, -1)}),
            TestCase(shapes=((),), attrs={"axis": 0}),
        ),
        doc="np.expand_dims(x, axis): new size-1 axes at `axis` of the result",
    )
)


def squeeze_axes(shape, axis) -> tuple[int, ...]:
    """The axes squeezed: the given ones (each must be a static 1), or every static 1."""
    if axis is None:
        return tuple(i for i, d in enumerate(shape) if d == 1)
    axes = normalize_axes(axis, len(shape))
    for a in axes:
        if shape[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of size {shape[a]!r}")
    return axes


def _squeeze_infer(specs, attrs) -> TensorSpec:
    x = specs[0]
    axes = squeeze_axes(x.shape, attrs["axis"])
    return TensorSpec(tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype)


def _emit_squeeze(e) -> str:
    # the axes are resolved now: a symbolic dim that is 1 at run time is never squeezed
    axes = squeeze_axes(e.ins[0].shape, e.attrs["axis"])
    return f"np.squeeze({e.arg(0)}, axis={_emit_axes(axes)})"


register(
    OpDef(
        name="squeeze",
        operands=("x",),
        attrs={"axis": Attr(None, as_axes, "None (every size-1 axis), an int or a tuple")},
        infer=_squeeze_infer,
        emit=_emit_squeeze,
        vjp=lambda g, out, args, attrs: (F.reshape(g, args[0].shape),),
        formula="dx = reshape(g, x.shape)",
        tests=(
            TestCase(shapes=((3, 1, 4),)),
            TestCase(shapes=((1, 3, 1),), attrs={"axis": -1}),
            TestCase(shapes=((1, 1),), attrs={"axis": (0, 1)}),
        ),
        doc="np.squeeze(x, axis): size-1 axes removed",
    )
)

# ---- joining: concatenate, stack (variadic) -------------------------------------------------


def unify_dims(dims) -> Dim:
    """Dims that must agree: equal, or a symbolic dim meeting an int (the int is kept)."""
    out = dims[0]
    for d in dims[1:]:
        if d == out:
            continue
        if isinstance(d, str) == isinstance(out, str):
            raise ValueError(f"dims {out!r} and {d!r} differ")
        out = out if isinstance(out, int) else d
    return out


def _concatenate_infer(specs, attrs) -> TensorSpec:
    ndim = specs[0].ndim
    if ndim == 0 or any(s.ndim != ndim for s in specs):
        raise ValueError("operands must have the same number of dims, at least 1")
    (axis,) = normalize_axes((attrs["axis"],), ndim)
    shape = []
    for i in range(ndim):
        dims = [s.shape[i] for s in specs]
        if i != axis:
            shape.append(unify_dims(dims))
        elif len(dims) == 1:
            shape.append(dims[0])
        elif any(isinstance(d, str) for d in dims):
            raise ValueError(f"cannot concatenate along symbolic dims {dims}")
        else:
            shape.append(sum(dims))
    return TensorSpec(tuple(shape), promote(*(s.dtype for s in specs)))


def _emit_join(fn: str):
    def emit(e) -> str:
        parts = [e.arg(i) for i in range(len(e.ins))]
        arrays = "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        return f"{fn}({arrays}, axis={e.attrs['axis'] % e.out.ndim})"

    return emit


def _concatenate_vjp(g, out, args, attrs):
    if len(args) == 1:
        return (g,)
    axis, start, cots = attrs["axis"] % g.ndim, 0, []
    for a in args:
        stop = start + a.shape[axis]
        cots.append(g[(slice(None),) * axis + (slice(start, stop),)])
        start = stop
    return tuple(cots)


register(
    OpDef(
        name="concatenate",
        operands=("*arrays",),
        attrs={"axis": Attr(0, as_int)},
        infer=_concatenate_infer,
        emit=_emit_join("np.concatenate"),
        fresh=True,
        out_kwarg=True,
        vjp=_concatenate_vjp,
        formula="darrays = g split along axis at the operands' offsets (views)",
        tests=(
            TestCase(shapes=((2, 3), (4, 3))),
            TestCase(shapes=((2, 3), (2, 1), (2, 2)), attrs={"axis": -1}),
            TestCase(shapes=((3,),)),
            TestCase(shapes=((2, 1, 3), (2, 2, 3)), attrs={"axis": 1}),
        ),
        doc="np.concatenate(arrays, axis)",
    )
)


def _stack_infer(specs, attrs) -> TensorSpec:
    ndim = specs[0].ndim
    if any(s.ndim != ndim for s in specs):
        raise ValueError("operands must have the same shape")
    (axis,) = normalize_axes((attrs["axis"],), ndim + 1)
    try:
        shape = [unify_dims([s.shape[i] for s in specs]) for i in range(ndim)]
    except ValueError:
        raise ValueError("operands must have the same shape") from None
    shape.insert(axis, len(specs))
    return TensorSpec(tuple(shape), promote(*(s.dtype for s in specs)))


def _stack_vjp(g, out, args, attrs):
    axis = attrs["axis"] % g.ndim
    return tuple(g[(slice(None),) * axis + (k,)] for k in range(len(args)))


register(
    OpDef(
        name="stack",
        operands=("*arrays",),
        attrs={"axis": Attr(0, as_int)},
        infer=_stack_infer,
        emit=_emit_join("np.stack"),
        fresh=True,
        out_kwarg=True,
        vjp=_stack_vjp,
        formula="darrays = g[..., k, ...] at position k of the new axis (views)",
        tests=(
            TestCase(shapes=((3,), (3,))),
            TestCase(shapes=((2, 3), (2, 3), (2, 3)), attrs={"axis": -1}),
            TestCase(shapes=((), ())),
            TestCase(shapes=((2, 1), (2, 1)), attrs={"axis": 1}),
        ),
        doc="np.stack(arrays, axis): a new axis",
    )
)
