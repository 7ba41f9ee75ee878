"""Elementwise ops: unary math, broadcasting binary arithmetic, comparisons, where, astype.

Elementwise ops have diagonal Jacobians, so every VJP here is a Hadamard (elementwise)
product of the cotangent with the local derivative: no Jacobian is ever built. Binary
rules return cotangents of the broadcast output shape; the autodiff pass unbroadcasts them.
"""

from __future__ import annotations

import math
from typing import Callable

from . import functions as F
from .leaves import number_literal
from .registry import (
    ADD,
    ATOM,
    CMP,
    MUL,
    POW,
    UNARY,
    Attr,
    OpDef,
    TensorSpec,
    TestCase,
    as_dtype,
    as_number,
    np_dtype,
    register,
)
from .shapes import broadcast_shapes, float_result, promote, require_float

# ---- unary ---------------------------------------------------------------------------

_UNARY_SHAPES = ((3, 4), (), (1,), (2, 1, 3))


def _float_unary(specs, attrs) -> TensorSpec:
    return TensorSpec(specs[0].shape, float_result(specs[0].dtype))


def _call(fn: str) -> Callable:
    return lambda e: f"{fn}({e.arg(0)})"


def unary(
    name: str,
    emit,
    vjp,
    formula: str,
    domain: str = "real",
    prec: int = ATOM,
    doc: str = "",
    ufunc: tuple[str, ...] = (),
    kernel: str | None = None,
):
    """Register an elementwise unary op; ufunc: (NumPy ufunc, arguments after x) it equals,
    or a kernel's function that works like one (then `kernel` names its template)."""
    register(
        OpDef(
            name=name,
            operands=("x",),
            infer=_float_unary,
            emit=emit,
            prec=prec,
            vjp=vjp,
            formula=formula,
            tests=tuple(TestCase(shapes=(s,), domains=(domain,)) for s in _UNARY_SHAPES),
            doc=doc,
            ufunc=ufunc[0] if ufunc else None,
            ufunc_extra=tuple(ufunc[1:]),
            elementwise=bool(ufunc),
            kernel=kernel,
        )
    )


unary(
    "negative",
    lambda e: f"-{e.arg(0, UNARY)}",
    lambda g, out, args, attrs: (-g,),
    "dx = -g",
    prec=UNARY,
    doc="-x",
    ufunc=("np.negative",),
)
unary(
    "exp",
    _call("np.exp"),
    lambda g, out, args, attrs: (g * out,),
    "dx = g * exp(x)",
    ufunc=("np.exp",),
)
unary(
    "log",
    _call("np.log"),
    lambda g, out, args, attrs: (g / args[0],),
    "dx = g / x",
    "positive",
    ufunc=("np.log",),
)
unary(
    "sqrt",
    _call("np.sqrt"),
    lambda g, out, args, attrs: (g * 0.5 / out,),
    "dx = g * 0.5 / sqrt(x)",
    "positive",
    ufunc=("np.sqrt",),
)
unary(
    "square",
    _call("np.square"),
    lambda g, out, args, attrs: (g * 2.0 * args[0],),
    "dx = g * 2 * x",
    ufunc=("np.square",),
)
unary(
    "tanh",
    _call("np.tanh"),
    lambda g, out, args, attrs: (g * (1.0 - F.square(out)),),
    "dx = g * (1 - tanh(x)**2)",
    ufunc=("np.tanh",),
)
unary(
    "sigmoid",
    # exp(-log(1 + exp(-x))) never overflows, for any x
    lambda e: f"np.exp(-np.logaddexp(0, -{e.arg(0, UNARY)}))",
    lambda g, out, args, attrs: (g * out * (1.0 - out),),
    "dx = g * s * (1 - s), s = sigmoid(x)",
    doc="1 / (1 + exp(-x)), computed without overflow",
)
unary(
    "relu",
    # np.maximum(x, 0), faster: the kernel is elementwise and takes out= like a ufunc
    _call("_relu"),
    # from the output (y > 0 exactly where x > 0): the input can be released after the forward
    lambda g, out, args, attrs: (F.where(out > 0, g, 0.0),),
    "dx = g * (y > 0), y = relu(x)   (relu'(0) = 0)",
    "nonzero",
    ufunc=("_relu",),
    kernel="relu",
)

# ---- binary arithmetic ---------------------------------------------------------------

_BINARY_SHAPES = (
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((4,), (3, 4)),
    ((2, 1, 4), (3, 1)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((1,), (3,)),
)


def _arith_infer(specs, attrs) -> TensorSpec:
    return TensorSpec(
        broadcast_shapes(specs[0].shape, specs[1].shape), promote(specs[0].dtype, specs[1].dtype)
    )


def _float_binary_infer(specs, attrs) -> TensorSpec:
    return TensorSpec(
        broadcast_shapes(specs[0].shape, specs[1].shape),
        float_result(specs[0].dtype, specs[1].dtype),
    )


def _infix(symbol: str, prec: int) -> Callable:
    # left-associative: the right operand needs strictly higher precedence
    return lambda e: f"{e.arg(0, prec)} {symbol} {e.arg(1, prec + 1)}"


def binary(name, symbol, prec, vjp, formula, domains=("real", "real"), infer=_arith_infer):
    register(
        OpDef(
            name=name,
            operands=("x1", "x2"),
            infer=infer,
            emit=_infix(symbol, prec),
            prec=prec,
            vjp=vjp,
            formula=formula,
            tests=tuple(TestCase(shapes=s, domains=domains) for s in _BINARY_SHAPES),
            doc=f"x1 {symbol} x2, broadcasting",
            ufunc=f"np.{name}",
            elementwise=True,
        )
    )


binary("add", "+", ADD, lambda g, out, args, attrs: (g, g), "dx1 = g, dx2 = g")
binary(
    "subtract",
    "-",
    ADD,
    lambda g, out, args, attrs: (g, -g),
    "dx1 = g, dx2 = -g",
)
binary(
    "multiply",
    "*",
    MUL,
    lambda g, out, args, attrs: (g * args[1], g * args[0]),
    "dx1 = g * x2, dx2 = g * x1  (Hadamard products)",
)
binary(
    "divide",
    "/",
    MUL,
    lambda g, out, args, attrs: (g / args[1], -g * out / args[1]),
    "dx1 = g / x2, dx2 = -g * x1 / x2**2",
    domains=("real", "nonzero"),
    infer=_float_binary_infer,
)


def _power_vjp(g, out, args, attrs):
    x, y = args
    return g * y * x ** (y - 1.0), g * out * F.log(x)


register(
    OpDef(
        name="power",
        operands=("x1", "x2"),
        infer=_arith_infer,
        emit=lambda e: f"{e.arg(0, POW + 1)} ** {e.arg(1, UNARY)}",
        prec=POW,
        vjp=_power_vjp,
        formula="dx1 = g * x2 * x1**(x2 - 1), dx2 = g * x1**x2 * log(x1)",
        tests=tuple(TestCase(shapes=s, domains=("positive", "real")) for s in _BINARY_SHAPES),
        doc="x1 ** x2, broadcasting",
    )
)

# ---- maximum, minimum, clip: the cotangent goes to the selected operand ----------------


def _select_vjp(wins):
    """VJP of maximum/minimum: g to the operand that `wins`, half of it to each on a tie."""

    def vjp(g, out, args, attrs):
        x1, x2 = args
        tie, half = x1 == x2, g * 0.5
        return (
            F.where(tie, half, F.where(wins(x1, x2), g, 0.0)),
            F.where(tie, half, F.where(wins(x2, x1), g, 0.0)),
        )

    return vjp


for _name, _wins, _word in (
    ("maximum", lambda a, b: a > b, "larger"),
    ("minimum", lambda a, b: a < b, "smaller"),
):
    register(
        OpDef(
            name=_name,
            operands=("x1", "x2"),
            infer=_arith_infer,
            emit=lambda e, n=_name: f"np.{n}({e.arg(0)}, {e.arg(1)})",
            vjp=_select_vjp(_wins),
            formula=f"dx1 = g where x1 is the {_word}, g / 2 on ties, else 0; dx2 likewise",
            tests=tuple(TestCase(shapes=s) for s in _BINARY_SHAPES),
            doc=f"the elementwise {_word} of x1 and x2, broadcasting",
            ufunc=f"np.{_name}",
            elementwise=True,
        )
    )


def _optional_number(v):
    return None if v is None else as_number(v)


def _clip_infer(specs, attrs) -> TensorSpec:
    x = specs[0]
    if attrs["min"] is None and attrs["max"] is None:
        raise ValueError("clip needs min or max")
    if x.is_float:
        return x
    if any(isinstance(attrs[k], float) for k in ("min", "max")):
        return TensorSpec(x.shape, "float64")
    return TensorSpec(x.shape, promote(x.dtype, "int64"))


def _emit_clip(e) -> str:
    dtype = e.out.dtype
    lo, hi = (
        "None" if e.attrs[k] is None else number_literal(e.attrs[k], dtype) for k in ("min", "max")
    )
    return f"np.clip({e.arg(0)}, {lo}, {hi})"


def _clip_vjp(g, out, args, attrs):
    x, lo, hi = args[0], attrs["min"], attrs["max"]
    if hi is not None:
        g = F.where(x < hi, g, 0.0)
    if lo is not None:
        g = F.where(x > lo, g, 0.0)
    return (g,)


register(
    OpDef(
        name="clip",
        operands=("x",),
        attrs={"min": Attr(None, _optional_number), "max": Attr(None, _optional_number)},
        infer=_clip_infer,
        emit=_emit_clip,
        vjp=_clip_vjp,
        formula="dx = g where min < x < max, else 0",
        tests=(
            TestCase(shapes=((3, 4),), attrs={"min": -0.5, "max": 0.5}),
            TestCase(shapes=((2, 1, 3),), attrs={"min": 0.0}),
            TestCase(shapes=((),), attrs={"max": -0.25}),
            TestCase(shapes=((1,),), attrs={"min": -1, "max": 1}),
            TestCase(shapes=((2, 3),), attrs={"min": 1, "max": 3}, domains=("int:5",)),
            TestCase(shapes=((2, 3),), attrs={"min": 0.5, "max": 2.5}, domains=("int:5",)),
        ),
        doc="x limited to [min, max] (np.clip); either bound may be None",
    )
)

# ---- comparisons: bool results, no gradient -------------------------------------------


def _compare_infer(specs, attrs) -> TensorSpec:
    return TensorSpec(broadcast_shapes(specs[0].shape, specs[1].shape), "bool")


for _name, _symbol in (
    ("greater", ">"),
    ("greater_equal", ">="),
    ("less", "<"),
    ("less_equal", "<="),
    ("equal", "=="),
    ("not_equal", "!="),
):
    register(
        OpDef(
            name=_name,
            operands=("x1", "x2"),
            infer=_compare_infer,
            # comparisons chain in Python, so both sides need higher precedence
            emit=lambda e, s=_symbol: f"{e.arg(0, CMP + 1)} {s} {e.arg(1, CMP + 1)}",
            prec=CMP,
            vjp=None,
            formula="(comparison: no gradient)",
            tests=(TestCase(shapes=((3, 4), (4,))),),
            doc=f"x1 {_symbol} x2 as a bool tensor",
        )
    )

# ---- selection and casts ----------------------------------------------------------------


def _where_infer(specs, attrs) -> TensorSpec:
    cond, a, b = specs
    if cond.dtype != "bool":
        raise ValueError(f"condition must be bool, got {cond.dtype}")
    return TensorSpec(broadcast_shapes(cond.shape, a.shape, b.shape), promote(a.dtype, b.dtype))


def where_zero_branch(e) -> int | None:
    """1 or 2 when that branch of where(condition, x1, x2) is the constant +0.0 and the other
    branch has the result's float dtype: the result is then the other branch with its bits
    cleared where it is not chosen (the where_zero kernel), exact and branch-free."""
    if not e.out.is_float:
        return None
    for zero in (1, 2):
        value, other = e.constant(zero), e.ins[3 - zero]
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and value == 0
            and not math.copysign(1.0, value) < 0  # -0.0 must stay -0.0
            and other.dtype == e.out.dtype
        ):
            return zero
    return None


def where_bit_select(e) -> bool:
    """Whether where(condition, x1, x2) can pick bits with a mask (the where_bits kernel):
    both branches are arrays (not constants) of the result's float dtype."""
    return e.out.is_float and all(
        e.ins[i] is not None and e.constant(i) is None and e.ins[i].dtype == e.out.dtype
        for i in (1, 2)
    )


def _emit_where(e) -> str:
    if e.plain:  # the same bits as the kernels: np.where reads as the textbook does
        return f"np.where({e.arg(0)}, {e.arg(1)}, {e.arg(2)})"
    zero = where_zero_branch(e)
    if zero is not None:
        e.use_kernel("where_zero")
        kept = e.arg(0) if zero == 2 else f"~{e.arg(0, UNARY)}"
        return f"_where_zero({kept}, {e.arg(3 - zero)})"
    if where_bit_select(e):
        e.use_kernel("where_zero")  # _bool_mask
        e.use_kernel("where_bits")
        return f"_where_bits({e.arg(0)}, {e.arg(1)}, {e.arg(2)})"
    return f"np.where({e.arg(0)}, {e.arg(1)}, {e.arg(2)})"


def where_into_branch(e, position: int, target: str, var: str) -> list[str]:
    """Statements leaving where's value in `var`, computed into the array `target` of its
    branch at `position` (1 or 2), which is read here for the last time."""
    if where_zero_branch(e) == 3 - position:  # the other branch is +0.0
        e.use_kernel("where_zero")
        kept = e.arg(0) if position == 1 else f"~{e.arg(0, UNARY)}"
        return [f"{var} = _where_zero({kept}, {target}, out={target})"]
    if where_bit_select(e):
        e.use_kernel("where_zero")  # _bool_mask
        e.use_kernel("where_bits")
        args = [e.arg(0)] + [target if i == position else e.arg(i) for i in (1, 2)]
        return [f"{var} = _where_bits({', '.join(args)}, out={target})"]
    kept = f"~{e.arg(0, UNARY)}" if position == 1 else e.arg(0)  # where the other branch goes
    return [f"np.copyto({target}, {e.arg(3 - position)}, where={kept})", f"{var} = {target}"]


def _where_vjp(g, out, args, attrs):
    cond = args[0]
    return None, F.where(cond, g, 0.0), F.where(cond, 0.0, g)


register(
    OpDef(
        name="where",
        operands=("condition", "x1", "x2"),
        infer=_where_infer,
        emit=_emit_where,
        vjp=_where_vjp,
        formula="dx1 = where(c, g, 0), dx2 = where(c, 0, g)",
        tests=(
            TestCase(shapes=((3, 4), (3, 4), (3, 4)), domains=("bool", "real", "real")),
            TestCase(shapes=((3, 4), (4,), ()), domains=("bool", "real", "real")),
        ),
        doc="x1 where condition else x2",
        fresh=True,
    )
)


def _astype_vjp(g, out, args, attrs):
    if not (args[0].spec.is_float and out.spec.is_float):
        return (None,)
    return (F.astype(g, args[0].dtype),)


register(
    OpDef(
        name="astype",
        operands=("x",),
        attrs={"dtype": Attr(convert=as_dtype)},
        infer=lambda specs, attrs: TensorSpec(specs[0].shape, attrs["dtype"]),
        emit=lambda e: f"{e.arg(0, ATOM)}.astype({np_dtype(e.attrs['dtype'])})",
        vjp=_astype_vjp,
        formula="dx = g cast back to x's dtype (float to float only)",
        tests=(
            TestCase(shapes=((3, 4),), attrs={"dtype": "float64"}),
            TestCase(shapes=((3,),), attrs={"dtype": "int64"}),
        ),
        doc="cast to dtype",
    )
)


def _like_infer(specs, attrs) -> TensorSpec:
    require_float(specs[0], "x")
    return specs[0]


for _name, _fn in (("ones_like", "np.ones_like"), ("zeros_like", "np.zeros_like")):
    register(
        OpDef(
            name=_name,
            operands=("x",),
            infer=_like_infer,
            emit=_call(_fn),
            vjp=None,
            formula="(constant in x: no gradient)",
            tests=(TestCase(shapes=((2, 3),)),),
            doc=f"{_fn}(x): seeds and zero gradients",
        )
    )
