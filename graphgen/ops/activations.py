"""Activations and erf: softplus, erf, erfc, normal_cdf, leaky_relu, elu, gelu (exact or
tanh form).

Emitters that would use their operand more than once (leaky_relu, elu, gelu) call a small
kernel function instead, so that an inlined operand expression is never computed twice.
NumPy has no erf: erf, erfc, normal_cdf and gelu's exact form use the blockwise kernels of
templates/kernels/erf_blocks.py.j2 (float64 accuracy, or float32's for float32 arrays): a
fitted polynomial near 0, and erfc beyond, so that the tails (erfc for large x, Phi and gelu
for negative x) keep their relative accuracy.
Every VJP is the cotangent times the local derivative, built with ordinary ops (erf, exp,
tanh, where); the exact gelu is differentiated as x * normal_cdf(x) (its lowering), so
that the backward reuses the forward's Phi.
"""

from __future__ import annotations

from . import functions as F
from .elementwise import unary
from .leaves import number_literal
from .registry import Attr, OpDef, TensorSpec, TestCase, as_number, one_of, register
from .shapes import float_result

_SHAPES = ((3, 4), (), (1,), (2, 1, 3))

TWO_OVER_SQRT_PI = 1.1283791670955126
INV_SQRT_2PI = 0.3989422804014327
SQRT_2_OVER_PI = 0.7978845608028654
GELU_TANH_CUBIC = 0.044715


def _float_infer(specs, attrs) -> TensorSpec:
    return TensorSpec(specs[0].shape, float_result(specs[0].dtype))


# ---- softplus, erf, erfc --------------------------------------------------------------------

unary(
    "softplus",
    lambda e: f"np.logaddexp(0.0, {e.arg(0)})",
    lambda g, out, args, attrs: (g * F.sigmoid(args[0]),),
    "dx = g * sigmoid(x)",
    doc="log(1 + exp(x)), as logaddexp(0, x): no overflow",
)


def _erf_vjp(g, out, args, attrs):
    x = args[0]
    return (g * TWO_OVER_SQRT_PI * F.exp(-F.square(x)),)


def _erfc_vjp(g, out, args, attrs):
    x = args[0]
    return (g * -TWO_OVER_SQRT_PI * F.exp(-F.square(x)),)


# kernels: each tuple lists a kernel after the kernels it calls
ERF_BLOCKS = ("erfc_fraction", "erf_blocks")
ERF_KERNELS = (*ERF_BLOCKS, "erf")
ERFC_KERNELS = (*ERF_BLOCKS, "erfc")

for _name, _kernels, _vjp, _formula, _doc in (
    (
        "erf",
        ERF_KERNELS,
        _erf_vjp,
        "dx = g * 2 / sqrt(pi) * exp(-x**2)",
        "the error function (math.erf elementwise), within a few float64 ulps",
    ),
    (
        "erfc",
        ERFC_KERNELS,
        _erfc_vjp,
        "dx = -g * 2 / sqrt(pi) * exp(-x**2)",
        "1 - erf(x) (math.erfc elementwise), accurate where it is tiny",
    ),
):
    register(
        OpDef(
            name=_name,
            operands=("x",),
            infer=_float_infer,
            emit=lambda e, n=_name: f"_{n}({e.arg(0)})",
            kernel=_kernels,
            vjp=_vjp,
            formula=_formula,
            tests=tuple(TestCase(shapes=(s,)) for s in _SHAPES)
            + (TestCase(shapes=((5,),), domains=("nonzero",)),),
            doc=_doc,
            fresh=True,
            out_kwarg=True,
        )
    )


# ---- activations with attrs ------------------------------------------------------------


def _leaky_relu_vjp(g, out, args, attrs):
    return (F.where(args[0] > 0, g, g * attrs["alpha"]),)


def _elu_vjp(g, out, args, attrs):
    return (F.where(args[0] > 0, g, g * (out + attrs["alpha"])),)


def _alpha(e) -> str:
    return number_literal(e.attrs["alpha"], "float64")


def _alpha_tests(alpha: float) -> tuple[TestCase, ...]:
    return tuple(TestCase(shapes=(s,), domains=("nonzero",)) for s in _SHAPES) + (
        TestCase(shapes=((2, 3),), attrs={"alpha": alpha}, domains=("nonzero",)),
    )


for _name, _default, _vjp, _formula, _doc in (
    (
        "leaky_relu",
        0.01,
        _leaky_relu_vjp,
        "dx = where(x > 0, g, alpha * g)",
        "x where x > 0, alpha * x elsewhere (PyTorch's negative_slope)",
    ),
    (
        "elu",
        1.0,
        _elu_vjp,
        "dx = where(x > 0, g, g * (y + alpha)),  y = elu(x)",
        "x where x > 0, alpha * (exp(x) - 1) elsewhere",
    ),
):
    register(
        OpDef(
            name=_name,
            operands=("x",),
            attrs={"alpha": Attr(_default, as_number)},
            infer=_float_infer,
            emit=lambda e, n=_name: f"_{n}({e.arg(0)}, {_alpha(e)})",
            kernel=_name,
            fresh=True,  # np.where
            vjp=_vjp,
            formula=_formula,
            tests=_alpha_tests(0.2),
            doc=_doc,
        )
    )


def _normal_pdf(x):
    return INV_SQRT_2PI * F.exp(-0.5 * F.square(x))


def _normal_cdf_vjp(g, out, args, attrs):
    return (g * _normal_pdf(args[0]),)


register(
    OpDef(
        name="normal_cdf",
        out_kwarg=True,
        operands=("x",),
        infer=_float_infer,
        emit=lambda e: f"_normal_cdf({e.arg(0)})",
        kernel=(*ERF_BLOCKS, "normal_cdf"),
        vjp=_normal_cdf_vjp,
        formula="dx = g * phi(x), phi(x) = exp(-x**2 / 2) / sqrt(2 pi)",
        tests=tuple(TestCase(shapes=(s,)) for s in _SHAPES),
        doc="Phi(x), the standard normal CDF (scipy.special.ndtr), accurate in both tails",
        fresh=True,
    )
)


def _gelu_lowering(args, attrs, name):
    """Differentiated as x * Phi(x): the backward reuses the forward's Phi(x)."""
    if attrs["approximate"] != "none":
        return None
    x = args[0]
    return x * F.normal_cdf(x, name=name("cdf"))


def _gelu_vjp(g, out, args, attrs):
    """The tanh form's VJP. The exact form is lowered to x * normal_cdf(x) before
    differentiation (_gelu_lowering), whose rules give g * (Phi(x) + x phi(x))."""
    if attrs["approximate"] == "none":
        raise RuntimeError("exact gelu is differentiated through its lowering, not this rule")
    x = args[0]
    t = F.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x**3.0))
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_CUBIC * F.square(x))
    return (g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - F.square(t)) * du),)


register(
    OpDef(
        name="gelu",
        out_kwarg=True,
        operands=("x",),
        attrs={"approximate": Attr("none", one_of("none", "tanh"), '"none" (erf) or "tanh"')},
        infer=_float_infer,
        emit=lambda e: f"_gelu{'_tanh' if e.attrs['approximate'] == 'tanh' else ''}({e.arg(0)})",
        kernel=lambda attrs: (
            (*ERF_BLOCKS, "normal_cdf", "gelu")
            if attrs["approximate"] == "none"
            else ("gelu_tanh",)
        ),
        vjp=_gelu_vjp,
        formula=(
            "dx = g * (Phi(x) + x * phi(x)); tanh form: dx = g * (0.5 (1 + t) + "
            "0.5 x (1 - t**2) du/dx), t = tanh(u)"
        ),
        tests=tuple(TestCase(shapes=(s,)) for s in _SHAPES)
        + tuple(TestCase(shapes=(s,), attrs={"approximate": "tanh"}) for s in _SHAPES),
        doc='x * Phi(x); approximate="tanh" uses the tanh approximation',
        fresh=True,
        lowering=_gelu_lowering,
    )
)
