"""Shape and dtype helpers shared by the ops' inference rules.

A dim is an int or a symbolic name (a str such as "batch"). Broadcasting follows NumPy,
with one rule for symbolic dims: a symbolic dim unifies with itself or with an int other
than 1 (it must equal that int at run time); it is never treated as a broadcastable 1.
Rules raise ValueError; the caller turns it into a ShapeError naming the node.
"""

from __future__ import annotations

from .registry import FLOAT_DTYPES, Dim, Shape, TensorSpec

_DTYPE_RANK = {"bool": 0, "int64": 1, "float32": 2, "float64": 3}


def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def broadcast_dim(a: Dim, b: Dim) -> Dim:
    if a == b:
        return a
    if a == 1:
        return b
    if b == 1:
        return a
    if isinstance(a, str) and isinstance(b, int):
        return b
    if isinstance(b, str) and isinstance(a, int):
        return a
    raise ValueError(f"dims {a!r} and {b!r} do not broadcast")


def broadcast_shapes(*shapes: Shape) -> Shape:
    """The NumPy broadcast of `shapes`, or ValueError naming them."""
    ndim = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        d = dims[0]
        for other in dims[1:]:
            try:
                d = broadcast_dim(d, other)
            except ValueError:
                raise ValueError(
                    "shapes " + " and ".join(fmt_shape(s) for s in shapes) + " do not broadcast"
                ) from None
        out.append(d)
    return tuple(out)


def promote(*dtypes: str) -> str:
    """The result dtype of an arithmetic op (bool < int64 < float32 < float64)."""
    return max(dtypes, key=_DTYPE_RANK.__getitem__)


def float_result(*dtypes: str) -> str:
    """The dtype of a float-valued op (exp, divide, ...): ints and bools become float64."""
    d = promote(*dtypes)
    return d if d in FLOAT_DTYPES else "float64"


def normalize_axes(axis: tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """Axes as sorted non-negative ints (None: all axes); ValueError when out of range."""
    if axis is None:
        return tuple(range(ndim))
    out = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for {ndim}-d operand")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))


def reduced_shape(shape: Shape, axes: tuple[int, ...], keepdims: bool) -> Shape:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def require_float(spec: TensorSpec, what: str = "operand") -> None:
    if not spec.is_float:
        raise ValueError(f"{what} must be float32 or float64, got {spec.dtype}")


def numel(shape: Shape) -> int | None:
    """The number of elements, or None when a dim is symbolic."""
    n = 1
    for d in shape:
        if isinstance(d, str):
            return None
        n *= d
    return n
