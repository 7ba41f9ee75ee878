"""Each op's forward and VJP in LaTeX, for `graphgen explain`.

A table keyed by op name, kept here rather than in the registry so that an op added
anywhere works at once: an op without an entry is explained from its registry formula
(`OpDef.formula`) by `fallback_rule`, so a new op never breaks `explain`.

A rule gets a `Ctx`: the LaTeX symbols of the output `y` and operands `x[i]`, the output's
cotangent `g` (written \\bar{y}), the attrs and shapes. It returns the forward expression
and one VJP expression per operand (None: no cotangent). Its `kind` says where the shape of
the formula comes from (a transpose, a Hadamard product, a sum over copies, ...) and
selects the sentence that explains it. Cotangents have the output's broadcast shape; the
document sums them over broadcast axes itself (`unbroadcast_axes`), as autodiff does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from .ops.registry import REGISTRY, Shape, get_op

# ---- LaTeX text --------------------------------------------------------------------------

_TT_ESCAPES = {
    "\\": r"\backslash{}",
    "{": r"\{",
    "}": r"\}",
    "_": r"\_",
    "#": r"\#",
    "$": r"\$",
    "%": r"\%",
    "&": r"\&",
    "^": r"\hat{}",
    "~": r"\sim{}",
}


def tt(text: object) -> str:
    """`text` (an untrusted name) as LaTeX math-mode typewriter text."""
    return r"\mathtt{" + escape(text) + "}"


def escape(text: object) -> str:
    """`text` with LaTeX's special characters escaped; no control or non-ASCII characters."""
    chars = []
    for c in str(text):
        if c in _TT_ESCAPES:
            chars.append(_TT_ESCAPES[c])
        elif c.isascii() and c.isprintable():
            chars.append(c)
        else:
            chars.append(f"?{ord(c):x}")
    return "".join(chars)


def name_symbol(name: str) -> str:
    """A readable symbol for a graph name: x, W_{1} for W1 or W_1, \\mathrm{logits}."""
    if re.fullmatch(r"[A-Za-z]", name):
        return name
    m = re.fullmatch(r"([A-Za-z])_?(\d{1,3})", name)
    if m:
        return f"{m[1]}_{{{m[2]}}}"
    if re.fullmatch(r"[A-Za-z]{2,24}", name):
        return rf"\mathrm{{{name}}}"
    return tt(name)


def bar(symbol: str) -> str:
    """The cotangent symbol: \\bar{W}_{1} for W_{1}, \\overline{...} for longer ones."""
    m = re.fullmatch(r"([A-Za-z]|\\[A-Za-z]+)((?:_\{[^{}]*\})?)", symbol)
    if m and not symbol.startswith(("\\mathrm", "\\mathtt")):
        return rf"\bar{{{m[1]}}}{m[2]}"
    return rf"\overline{{{symbol}}}"


def dim(d: object) -> str:
    return str(d) if isinstance(d, int) else rf"\text{{{escape(d)}}}"


def numel(shape: Shape) -> str:
    """The element count, as text: 5·batch."""
    n, symbols = 1, []
    for d in shape:
        if isinstance(d, int):
            n *= d
        else:
            symbols.append(str(d))
    return "·".join(([str(n)] if n != 1 or not symbols else []) + symbols)


def unbroadcast_axes(operand: Shape, out: Shape) -> tuple[int, ...]:
    """Axes of `out` along which an operand of shape `operand` was broadcast."""
    lead = len(out) - len(operand)
    if lead < 0:
        return ()
    return tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(operand) if d == 1 and out[lead + i] != 1
    )


def axes_text(axes) -> str:
    if axes is None:
        return r"\text{all}"
    axes = tuple(axes)
    return rf"\text{{axis{'es' if len(axes) > 1 else ''} }}{','.join(map(str, axes))}"


# ---- rules -------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a rule sees: symbols, the cotangent, attrs and shapes of one node."""

    op: str
    y: str
    x: list[str]
    attrs: dict
    out_shape: Shape
    in_shapes: list[Shape]
    g: str = ""

    def __post_init__(self):
        self.g = bar(self.y)


@dataclass
class Rule:
    forward: Callable[[Ctx], str]
    vjp: Callable[[Ctx], list]
    kind: str  # hadamard | transpose | linear | broadcast | move | fused | select | none | other
    derivative: Callable[[Ctx], str] | None = None  # f'(x) of a unary elementwise op
    note: str = ""
    formula: str = field(default="")


def _hadamard(fwd: str, deriv: Callable[[Ctx], str]) -> Rule:
    return Rule(
        forward=lambda c: fwd.format(x=c.x[0]),
        vjp=lambda c: [rf"{c.g} \odot {paren(deriv(c))}"],
        kind="hadamard",
        derivative=deriv,
    )


def paren(text: str) -> str:
    """`text` in \\left( \\right) when it is a sum or difference, else as it is."""
    return rf"\left({text}\right)" if re.search(r" [+-] ", text) else text


def _count(c: Ctx) -> str:
    axes = c.attrs.get("axis")
    shape = c.in_shapes[0]
    picked = shape if axes is None else [shape[a % len(shape)] for a in axes]
    return r" \cdot ".join(dim(d) for d in picked) or "1"


def _sum_sub(c: Ctx) -> str:
    return rf"_{{{axes_text(c.attrs.get('axis'))}}}"


def _sce_forward(c: Ctx) -> str:
    pick = rf"-\log \operatorname{{softmax}}({c.x[0]})_{{{c.x[1]}}}"
    reduction = c.attrs.get("reduction", "mean")
    if reduction == "mean":
        return rf"\frac{{1}}{{N}} \sum_{{n}} \left({pick}\right)_{{n}}"
    return rf"\sum_{{n}} \left({pick}\right)_{{n}}" if reduction == "sum" else pick


def _sce_vjp(c: Ctx) -> list:
    diff = rf"\left(\operatorname{{softmax}}({c.x[0]}) - \operatorname{{onehot}}({c.x[1]})\right)"
    reduction = c.attrs.get("reduction", "mean")
    scale = {"mean": rf"\frac{{{c.g}}}{{N}}", "sum": c.g}.get(reduction, c.g)
    return [rf"{scale}\, {diff}" if reduction != "none" else rf"{c.g} \odot {diff}", None]


def _mse_scale(c: Ctx) -> str:
    reduction = c.attrs.get("reduction", "mean")
    return {"mean": rf"\frac{{2 {c.g}}}{{n}}", "sum": rf"2 {c.g}"}.get(reduction, rf"2 {c.g}")


def _transpose_forward(c: Ctx) -> str:
    axes = c.attrs.get("axes")
    if axes is None or len(c.in_shapes[0]) == 2:
        return rf"{c.x[0]}^{{\top}}"
    return rf"\operatorname{{transpose}}({c.x[0]}, ({','.join(map(str, axes))}))"


def _transpose_vjp(c: Ctx) -> list:
    axes = c.attrs.get("axes")
    if axes is None or len(c.in_shapes[0]) == 2:
        return [rf"{c.g}^{{\top}}"]
    n = len(axes)
    inverse = sorted(range(n), key=lambda i: axes[i] % n)
    return [rf"\operatorname{{transpose}}({c.g}, ({','.join(map(str, inverse))}))"]


def _none(c: Ctx) -> list:
    return [None] * len(c.x)


def _call(name: str) -> Callable[[Ctx], str]:
    return lambda c: rf"\operatorname{{{escape(name)}}}({', '.join(c.x)})"


RULES: dict[str, Rule] = {
    "negative": Rule(lambda c: f"-{c.x[0]}", lambda c: [f"-{c.g}"], "linear"),
    "exp": _hadamard(r"\exp({x})", lambda c: c.y),
    "log": _hadamard(r"\log {x}", lambda c: rf"1 \oslash {c.x[0]}"),
    "sqrt": _hadamard(r"\sqrt{{{x}}}", lambda c: rf"1 \oslash (2 {c.y})"),
    "square": _hadamard(r"{x}^{{\odot 2}}", lambda c: rf"2 {c.x[0]}"),
    "tanh": _hadamard(r"\tanh({x})", lambda c: rf"1 - {c.y}^{{\odot 2}}"),
    "sigmoid": _hadamard(r"\sigma({x})", lambda c: rf"{c.y} \odot (1 - {c.y})"),
    "relu": _hadamard(r"\max({x}, 0)", lambda c: rf"\mathbf{{1}}[{c.x[0]} > 0]"),
    "add": Rule(lambda c: f"{c.x[0]} + {c.x[1]}", lambda c: [c.g, c.g], "linear"),
    "subtract": Rule(lambda c: f"{c.x[0]} - {c.x[1]}", lambda c: [c.g, f"-{c.g}"], "linear"),
    "multiply": Rule(
        lambda c: rf"{c.x[0]} \odot {c.x[1]}",
        lambda c: [rf"{c.g} \odot {c.x[1]}", rf"{c.g} \odot {c.x[0]}"],
        "hadamard",
    ),
    "divide": Rule(
        lambda c: rf"{c.x[0]} \oslash {c.x[1]}",
        lambda c: [rf"{c.g} \oslash {c.x[1]}", rf"-{c.g} \odot {c.y} \oslash {c.x[1]}"],
        "hadamard",
    ),
    "power": Rule(
        lambda c: rf"{c.x[0]}^{{\odot {c.x[1]}}}",
        lambda c: [
            rf"{c.g} \odot {c.x[1]} \odot {c.x[0]}^{{\odot ({c.x[1]} - 1)}}",
            rf"{c.g} \odot {c.y} \odot \log {c.x[0]}",
        ],
        "hadamard",
    ),
    "where": Rule(
        lambda c: rf"\operatorname{{where}}({c.x[0]}, {c.x[1]}, {c.x[2]})",
        lambda c: [None, rf"{c.g} \odot {c.x[0]}", rf"{c.g} \odot (1 - {c.x[0]})"],
        "select",
    ),
    "astype": Rule(
        lambda c: rf"\operatorname{{astype}}({c.x[0]}, \text{{{c.attrs.get('dtype')}}})",
        lambda c: [c.g],
        "linear",
    ),
    "matmul": Rule(
        lambda c: f"{c.x[0]}\\, {c.x[1]}",
        lambda c: [rf"{c.g}\, {c.x[1]}^{{\top}}", rf"{c.x[0]}^{{\top}} {c.g}"],
        "transpose",
    ),
    "sum": Rule(
        lambda c: rf"\sum{_sum_sub(c)} {c.x[0]}",
        lambda c: [rf"\operatorname{{broadcast}}({c.g})"],
        "broadcast",
    ),
    "mean": Rule(
        lambda c: rf"\frac{{1}}{{{_count(c)}}} \sum{_sum_sub(c)} {c.x[0]}",
        lambda c: [rf"\frac{{1}}{{{_count(c)}}} \operatorname{{broadcast}}({c.g})"],
        "broadcast",
    ),
    "max": Rule(
        lambda c: rf"\max{_sum_sub(c)} {c.x[0]}",
        lambda c: [
            rf"\operatorname{{broadcast}}({c.g}) \odot \mathbf{{1}}[{c.x[0]} = {c.y}]"
            r" \oslash \#\text{ties}"
        ],
        "select",
    ),
    "reshape": Rule(
        lambda c: rf"\operatorname{{reshape}}({c.x[0]})",
        lambda c: [rf"\operatorname{{reshape}}({c.g}, \text{{shape of }} {c.x[0]})"],
        "move",
    ),
    "transpose": Rule(_transpose_forward, _transpose_vjp, "move"),
    "broadcast_to": Rule(
        lambda c: rf"\operatorname{{broadcast}}({c.x[0]})", lambda c: [c.g], "linear"
    ),
    "softmax": Rule(
        lambda c: rf"\operatorname{{softmax}}({c.x[0]})",
        lambda c: [
            rf"{c.y} \odot \left({c.g} - \textstyle\sum_{{\text{{axis}}}} ({c.g} \odot {c.y})"
            r"\right)"
        ],
        "fused",
        note="the Jacobian of softmax along its axis is diag(p) - p p^T, dense; applied to the "
        "cotangent it collapses to this one line",
    ),
    "log_softmax": Rule(
        lambda c: rf"\operatorname{{log\_softmax}}({c.x[0]})",
        lambda c: [rf"{c.g} - e^{{{c.y}}} \odot \textstyle\sum_{{\text{{axis}}}} {c.g}"],
        "fused",
        note="written with the stable forward value instead of differentiating exp, sum and log",
    ),
    "softmax_cross_entropy": Rule(
        _sce_forward,
        _sce_vjp,
        "fused",
        note="differentiating log-sum-exp minus the true class's logit gives softmax minus "
        "one-hot ($N$ is the number of labels); the dense softmax Jacobian never appears",
    ),
    "mse_loss": Rule(
        lambda c: (
            rf"\operatorname{{mean}}\left(({c.x[0]} - {c.x[1]})^{{\odot 2}}\right)"
            if c.attrs.get("reduction", "mean") == "mean"
            else rf"({c.x[0]} - {c.x[1]})^{{\odot 2}}"
        ),
        lambda c: [
            rf"{_mse_scale(c)} ({c.x[0]} - {c.x[1]})",
            rf"-{_mse_scale(c)} ({c.x[0]} - {c.x[1]})",
        ],
        "fused",
        note="the derivative of a square, scaled by the reduction",
    ),
}
for _name in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"):
    RULES[_name] = Rule(_call(_name), _none, "none")
for _name in ("one_hot", "size", "ones_like", "zeros_like"):
    RULES[_name] = Rule(_call(_name), _none, "none")


def why(rule: Rule, ctx: Ctx) -> str:
    """The sentence saying where the shape of the VJP comes from, by the rule's kind."""
    op = ctx.op
    n = numel(ctx.out_shape)
    if rule.kind == "transpose":
        return (
            "Transpose from the matmul VJP: $y = x_1 x_2$ is linear in each operand. A "
            "change $dx_1$ changes $y$ by $dx_1\\, x_2$, and the VJP is the transpose "
            "(adjoint) of that linear map: "
            "$\\langle \\bar{y}, dx_1 x_2 \\rangle = "
            "\\langle \\bar{y} x_2^\\top, dx_1 \\rangle$,"
            " so $\\bar{x}_1 = \\bar{y}\\, x_2^\\top$, and likewise "
            "$\\bar{x}_2 = x_1^\\top \\bar{y}$. The transposes are not chosen to make the "
            "shapes agree; they are what the adjoint of a matrix product is. The Jacobian "
            f"(of size {n} by {numel(ctx.in_shapes[1])} for the right operand) is never formed."
        )
    if rule.kind == "hadamard":
        if rule.derivative is not None:
            deriv = rule.derivative(ctx)
            name = rf"\operatorname{{{escape(op)}}}"
            return (
                f"Hadamard product from a diagonal Jacobian: `{op}` acts elementwise, so "
                f"$\\partial {ctx.y} / \\partial {ctx.x[0]}$ is the diagonal matrix "
                f"$\\operatorname{{diag}}({name}'({ctx.x[0]}))$ of size {n} by {n}, with "
                f"${name}'({ctx.x[0]}) = {deriv}$. Multiplying by a diagonal matrix is the "
                "elementwise product $\\odot$ with its diagonal, so the VJP needs only the "
                "derivative values, never the matrix."
            )
        return (
            f"Hadamard products from diagonal Jacobians: `{op}` is elementwise in each "
            f"operand, so each Jacobian is a diagonal {n} by {n} matrix and applying its "
            "transpose is an elementwise product $\\odot$."
        )
    if rule.kind == "linear":
        return (
            f"`{op}` is linear with an identity (or negated identity) Jacobian: the "
            "cotangent passes through unchanged."
        )
    if rule.kind == "broadcast":
        return (
            f"`{op}` adds up entries, so its Jacobian is rows of ones; their transpose copies "
            "the cotangent back to every position that was reduced (a broadcast)."
        )
    if rule.kind == "move":
        return (
            f"`{op}` only moves entries: its Jacobian is a permutation matrix, whose "
            "transpose is the inverse permutation."
        )
    if rule.kind == "select":
        return (
            f"`{op}` selects entries: the cotangent flows only to the entries that were "
            "selected (a diagonal 0/1 Jacobian, applied as $\\odot$)."
        )
    if rule.kind == "fused":
        return f"Fused rule: {rule.note}."
    if rule.kind == "none":
        return f"`{op}` has no gradient."
    return ""


def rule_for(op: str) -> Rule:
    """The op's LaTeX rule, or one made from its registry formula."""
    return RULES.get(op) or fallback_rule(op)


def fallback_rule(op: str) -> Rule:
    """For an op without a LaTeX entry: `\\operatorname{op}(...)`, its VJP from the registry."""
    opdef = REGISTRY.get(op)
    formula = opdef.formula if opdef else ""
    if opdef is not None and opdef.vjp is None:
        return Rule(_call(op), _none, "none", formula=formula)
    return Rule(_call(op), _none, "other", formula=formula)


def operand_names(op: str) -> tuple[str, ...]:
    try:
        return get_op(op).operands
    except Exception:  # noqa: BLE001 - an unknown op has no operand names
        return ()
