"""Shape ops: reshape, transpose, broadcast_to. Their VJPs move g back (no arithmetic)."""

from __future__ import annotations

from . import functions as F
from .registry import ATOM, Attr, OpDef, TensorSpec, TestCase, as_axes, as_shape, register
from .shapes import fmt_shape


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
