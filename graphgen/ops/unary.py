"""More elementwise unary ops: log1p, expm1, reciprocal, abs, sin, cos; sign, rounding
and stop_gradient.

As for every elementwise op the Jacobian is diagonal, so each VJP is the Hadamard product
of the cotangent with the local derivative, written with ordinary ops. Rounding ops (floor,
ceil, round) and sign pass no cotangent: their derivative is zero almost everywhere;
stop_gradient passes its value and, by definition, no cotangent.
"""

from __future__ import annotations

from . import functions as F
from .elementwise import unary
from .registry import ATOM, MUL, Attr, OpDef, TensorSpec, TestCase, as_int, register

_SHAPES = ((3, 4), (), (1,), (2, 1, 3))


def _fn(name: str):
    return lambda e: f"{name}({e.arg(0)})"


# ---- math functions --------------------------------------------------------------------

unary(
    "log1p",
    _fn("np.log1p"),
    lambda g, out, args, attrs: (g / (1.0 + args[0]),),
    "dx = g / (1 + x)",
    "positive",
    doc="log(1 + x), accurate for small x",
)
unary(
    "expm1",
    _fn("np.expm1"),
    lambda g, out, args, attrs: (g * (out + 1.0),),
    "dx = g * (expm1(x) + 1)",
    doc="exp(x) - 1, accurate for small x",
)
unary(
    "reciprocal",
    # `1.0 / x` rather than np.reciprocal, which divides integers as integers
    lambda e: f"1.0 / {e.arg(0, MUL + 1)}",
    lambda g, out, args, attrs: (-g * F.square(out),),
    "dx = -g / x**2 = -g * y**2",
    "nonzero",
    prec=MUL,
    doc="1 / x",
)
unary("sin", _fn("np.sin"), lambda g, out, args, attrs: (g * F.cos(args[0]),), "dx = g * cos(x)")
unary("cos", _fn("np.cos"), lambda g, out, args, attrs: (-g * F.sin(args[0]),), "dx = -g * sin(x)")


def _same_dtype(specs, attrs) -> TensorSpec:
    return specs[0]


def _abs_vjp(g, out, args, attrs):
    return (g * F.sign(args[0]),)


register(
    OpDef(
        name="abs",
        operands=("x",),
        infer=_same_dtype,
        emit=_fn("np.abs"),
        vjp=_abs_vjp,
        formula="dx = g * sign(x)   (abs'(0) = 0)",
        tests=tuple(TestCase(shapes=(s,), domains=("nonzero",)) for s in _SHAPES),
        doc="|x|",
    )
)

# ---- no gradient: sign, rounding, stop_gradient ----------------------------------------


def _int_identity(fn: str):
    """np.floor/np.ceil for floats; an integer (or bool) tensor is its own floor."""
    return lambda e: f"{fn}({e.arg(0)})" if e.ins[0].is_float else e.arg(0, ATOM)


def _no_grad_tests(domain: str = "real") -> tuple[TestCase, ...]:
    return tuple(TestCase(shapes=(s,), domains=(domain,)) for s in _SHAPES) + (
        TestCase(shapes=((2, 3),), domains=("int:5",)),
    )


for _name, _emit, _doc in (
    ("sign", _fn("np.sign"), "-1, 0 or 1 by the sign of x"),
    ("floor", _int_identity("np.floor"), "the largest integer <= x (dtype kept)"),
    ("ceil", _int_identity("np.ceil"), "the smallest integer >= x (dtype kept)"),
    ("stop_gradient", lambda e: e.arg(0, ATOM), "x, through which no cotangent flows"),
):
    register(
        OpDef(
            name=_name,
            operands=("x",),
            infer=_same_dtype,
            emit=_emit,
            vjp=None,
            formula="(no gradient)" if _name != "stop_gradient" else "(blocks the cotangent)",
            tests=_no_grad_tests(),
            doc=_doc,
        )
    )


def _emit_round(e) -> str:
    decimals = e.attrs["decimals"]
    return f"np.round({e.arg(0)}{f', {decimals}' if decimals else ''})"


register(
    OpDef(
        name="round",
        operands=("x",),
        attrs={"decimals": Attr(0, as_int)},
        infer=_same_dtype,
        emit=_emit_round,
        vjp=None,
        formula="(no gradient)",
        tests=_no_grad_tests() + (TestCase(shapes=((4,),), attrs={"decimals": 2}),),
        doc="x rounded half to even, to `decimals` places (np.round)",
    )
)
