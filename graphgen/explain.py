"""`graphgen explain`: a Markdown derivation of a graph's backward pass, node by node.

The document walks the forward graph in reverse topological order, as reverse mode does.
For every node on a path from a `wrt` leaf to the output it writes the forward equation,
the cotangent arriving at the node (a sum when the node fans out), the VJP for each operand
in LaTeX with the shapes involved, and why the formula has its shape: a transpose from the
matmul VJP, a Hadamard product from the diagonal Jacobian of an elementwise op, a sum from
broadcasting. When the graph is a multilayer perceptron it then composes those steps into
the textbook recurrence delta_l = (W_{l+1}^T delta_{l+1}) ⊙ sigma'(z_l), stating the layout
conventions, and ends with the gradients and the generated code that computes them.

Notation: \\bar{v} is the cotangent dL/dv of a value v (same shape as v), ⊙ and ⊘ are
elementwise product and division. Every name from the graph is escaped (graphgen.latex).
"""

from __future__ import annotations

import ast
import re
from typing import Any

import networkx as nx

from .autodiff import check_differentiable
from .compiler import compile_source
from .ir import spec, validate
from .latex import (
    Ctx,
    bar,
    name_symbol,
    operand_names,
    rule_for,
    tt,
    unbroadcast_axes,
    why,
)
from .layers import Layer, find_layers
from .naming import auto_id_number
from .ops.shapes import fmt_shape
from .schedule import operands, topological_order

_LEAVES = ("input", "param", "const")


def explain(graph: Any, wrt: Any = None) -> str:
    """The Markdown derivation of the backward pass of `graph` with respect to `wrt`."""
    forward = validate(graph)
    wrt = check_differentiable(forward, wrt)
    return _Document(forward, wrt).render()


# ---- the document -----------------------------------------------------------------------


class _Document:
    def __init__(self, graph: nx.MultiDiGraph, wrt: list[str]):
        self.graph = graph
        self.wrt = wrt
        self.out = graph.graph["outputs"][0]
        self.scalar = spec(graph, self.out).shape == ()
        self.order = topological_order(graph)
        self.active = _active(graph, wrt, self.out)
        self.layers = find_layers(graph, self.out) if self.scalar else []
        self.symbols = self._symbols()
        self.step_of: dict[str, int] = {}
        # operand -> [(user, latex contribution)]
        self.contributions: dict[str, list[tuple[str, str]]] = {}

    # symbols
    def _symbols(self) -> dict[str, str]:
        symbols: dict[str, str] = {}
        taken: set[str] = set()

        def assign(node: str, symbol: str) -> None:
            if node in symbols:
                return
            if symbol in taken:
                symbol = tt(node)
            symbols[node] = symbol
            taken.add(symbol)

        if self.scalar:
            assign(self.out, "L")
        for index, layer in enumerate(self.layers, start=1):
            assign(layer.z, f"z_{{{index}}}")
            if layer.b is not None:
                assign(layer.matmul, f"u_{{{index}}}")
            if layer.h is not None:
                assign(layer.h, f"h_{{{index}}}")
        for node in self.order:
            op = self.graph.nodes[node]["op"]
            k = None if op in ("input", "param") else auto_id_number(node, op)
            if k is not None:
                assign(node, f"v_{{{k}}}")
            else:
                assign(node, name_symbol(node))
        return symbols

    def s(self, node: str) -> str:
        return self.symbols[node]

    def shape(self, node: str) -> str:
        return fmt_shape(self.graph.nodes[node]["shape"])

    # rendering
    def render(self) -> str:
        parts = [
            self._head(),
            self._conventions(),
            self._notation(),
            self._steps(),
            self._recurrence(),
            self._gradients(),
            self._code(),
        ]
        return "\n\n".join(p.strip("\n") for p in parts if p) + "\n"

    def _head(self) -> str:
        name = self.graph.graph["name"]
        out = self.out
        what = (
            f"the scalar output {_code(out)} (written $L$)"
            if self.scalar
            else f"the output {_code(out)} of shape {_code(self.shape(out))}, seeded with a "
            "cotangent $u$ of that shape (the `vjp` function)"
        )
        return (
            f"# The backward pass of {_code(name)}, derived node by node\n\n"
            f"Reverse-mode differentiation of {what} with respect to "
            + ", ".join(_code(w) for w in self.wrt)
            + ". Each step below is one node's vector-Jacobian product (VJP): the cotangent "
            "of its output goes in, one cotangent per operand comes out. No Jacobian matrix "
            "is ever built."
        )

    def _conventions(self) -> str:
        return """## Conventions

- $\\bar{v} = \\partial L / \\partial v$ is the *cotangent* (adjoint) of a value $v$; it has
  $v$'s shape. A node $y = f(x_1, \\dots)$ maps $\\bar{y}$ to $\\bar{x}_i = J_i^{\\top} \\bar{y}$,
  where $J_i = \\partial y / \\partial x_i$, without forming $J_i$.
- $\\odot$ and $\\oslash$ are the elementwise (Hadamard) product and division; $v^{\\odot 2}$
  squares elementwise; $\\mathbf{1}[\\cdot]$ is 1 where the condition holds.
- Layout: row-major batch, as in the generated NumPy code. A matrix of activations has one
  row per example, and a dense layer is $z = h W + b$ with $W$ of shape
  (fan-in, fan-out). Textbooks write one example as a column vector, $z = \\mathbf{W} h + b$,
  so their $\\mathbf{W}$ is our $W^{\\top}$ and every formula below is the transpose of
  its textbook twin: the code's `d_h = d_z @ W.T` is the textbook's
  $\\mathbf{W}^{\\top} \\delta$, transposed.
- A node used by several others (fan-out) receives one cotangent per use; they add up
  (the multivariable chain rule sums over paths)."""

    def _notation(self) -> str:
        rows = ["| symbol | node | op | shape |", "|---|---|---|---|"]
        for node in self.order:
            data = self.graph.nodes[node]
            if data["op"] == "const":
                continue
            rows.append(
                f"| ${self.s(node)}$ | {_cell(node)} | {data['op']} | {_cell(self.shape(node))} |"
            )
        return "## Notation\n\n" + "\n".join(rows)

    # the steps
    def _steps(self) -> str:
        sections = []
        step = 0
        inactive = [
            n
            for n in self.order
            if n not in self.active and self.graph.nodes[n]["op"] not in _LEAVES
        ]
        for node in reversed(self.order):
            if node not in self.active or self.graph.nodes[node]["op"] in _LEAVES:
                continue
            step += 1
            self.step_of[node] = step
            sections.append(self._step(step, node))
        intro = (
            "## Backward pass, node by node\n\n"
            "In reverse topological order, from the output back to the leaves."
        )
        if inactive:
            intro += (
                " Not on a path from a differentiated leaf to the output, so without "
                "cotangent: " + ", ".join(_code(n) for n in inactive) + "."
            )
        return intro + "\n\n" + "\n\n".join(sections)

    def _ctx(self, node: str) -> Ctx:
        args = operands(self.graph, node)
        return Ctx(
            op=self.graph.nodes[node]["op"],
            y=self.s(node),
            x=[self.s(a) for a in args],
            attrs=self.graph.nodes[node].get("attrs") or {},
            out_shape=tuple(self.graph.nodes[node]["shape"]),
            in_shapes=[tuple(self.graph.nodes[a]["shape"]) for a in args],
        )

    def _step(self, step: int, node: str) -> str:
        data = self.graph.nodes[node]
        op = data["op"]
        args = operands(self.graph, node)
        ctx = self._ctx(node)
        rule = rule_for(op)
        lines = [
            f"### Step {step}: {_code(f'{node} = {op}(' + ', '.join(args) + ')')}",
            "",
            f"$${ctx.y} = {rule.forward(ctx)}$$",
            "",
            self._incoming(node, ctx),
        ]
        vjps = rule.vjp(ctx)
        notes = []
        for i, arg in enumerate(args):
            if arg not in self.active:
                lines += ["", f"{_code(arg)} gets no cotangent ({self._why_inactive(arg)})."]
                continue
            expr = vjps[i] if i < len(vjps) else None
            if expr is None and rule.kind in ("other", "none"):
                expr = self._registry_vjp(op, i, ctx)
                notes.append(
                    f"No LaTeX rule for `{op}` yet: the VJP above is the registry's formula "
                    f"(`{rule.formula}`), with `g` = ${ctx.g}$."
                )
            elif expr is None:
                continue
            axes = unbroadcast_axes(ctx.in_shapes[i], ctx.out_shape)
            if axes and rule.kind != "move":
                summed = rf"\left({expr}\right)" if " " in expr else expr
                where = ",".join(map(str, axes))
                expr = rf"\textstyle\sum_{{\text{{axis}}\ {where}}} {summed}"
                notes.append(self._broadcast_note(arg, ctx, i, axes))
            uses = self._active_uses(arg)
            relation = r"\mathrel{+}=" if uses > 1 else "="
            self.contributions.setdefault(arg, []).append((node, expr))
            lines += ["", f"$${bar(self.s(arg))} {relation} {expr}$$", ""]
            lines.append(self._shapes_line(node, arg, i, ctx))
        explanation = why(rule, ctx)
        for paragraph in [explanation, *dict.fromkeys(notes)]:
            if paragraph:
                lines += ["", paragraph]
        return "\n".join(lines)

    def _incoming(self, node: str, ctx: Ctx) -> str:
        if node == self.out:
            if self.scalar:
                return f"Seed: ${ctx.g} = \\partial L / \\partial L = 1$."
            return (
                f"Seed: ${ctx.g} = u$, the cotangent given to `vjp` (shape "
                f"{_code(self.shape(node))}): reverse mode computes $u^\\top J$, the gradient "
                f"of $\\langle u, {ctx.y} \\rangle$."
            )
        parts = self.contributions.get(node, [])
        if len(parts) == 1:
            user = parts[0][0]
            return (
                f"Cotangent in: ${ctx.g}$, shape {_code(self.shape(node))}, from step "
                f"{self.step_of[user]}."
            )
        counts: dict[str, int] = {}
        for user, _ in parts:
            counts[user] = counts.get(user, 0) + 1
        users = ", ".join(
            f"{_code(u)} (step {self.step_of[u]}{f', {k} times' if k > 1 else ''})"
            for u, k in counts.items()
        )
        total = " + ".join(_group(e) for _, e in parts)
        return (
            f"Fan-out: {_code(node)} is used {len(parts)} times, by {users}. Each use sends back "
            f"its own cotangent and they add up:\n\n$${ctx.g} = {total}$$"
        )

    def _registry_vjp(self, op: str, i: int, ctx: Ctx) -> str:
        names = operand_names(op)
        name = names[i] if i < len(names) else f"x{i + 1}"
        return rf"\operatorname{{VJP}}_{{{i + 1}}}({ctx.g})\ \text{{(for operand {name})}}"

    def _why_inactive(self, node: str) -> str:
        data = self.graph.nodes[node]
        if data["dtype"] not in ("float32", "float64"):
            return f"{data['dtype']} values are not differentiable"
        if data["op"] == "const":
            return "a constant"
        if data["op"] in ("input", "param"):
            return "not differentiated: it is not in wrt"
        return "it does not depend on any differentiated leaf"

    def _active_uses(self, node: str) -> int:
        return sum(
            1
            for user in dict.fromkeys(self.graph.successors(node))
            if user in self.active
            for a in operands(self.graph, user)
            if a == node
        )

    def _shapes_line(self, node: str, arg: str, i: int, ctx: Ctx) -> str:
        op = self.graph.nodes[node]["op"]
        g = f"${ctx.g}$ {_code(self.shape(node))}"
        if op == "matmul" and len(ctx.in_shapes[0]) == 2 and len(ctx.in_shapes[1]) == 2:
            a, b = operands(self.graph, node)
            if i == 0:
                return (
                    f"Shapes: {g} times ${self.s(b)}^\\top$ "
                    f"{_code(fmt_shape(ctx.in_shapes[1][::-1]))} gives "
                    f"${bar(self.s(arg))}$ {_code(self.shape(arg))}."
                )
            return (
                f"Shapes: ${self.s(a)}^\\top$ {_code(fmt_shape(ctx.in_shapes[0][::-1]))} "
                f"times {g} gives ${bar(self.s(arg))}$ {_code(self.shape(arg))}."
            )
        return f"Shapes: {g} in, ${bar(self.s(arg))}$ {_code(self.shape(arg))} out."

    def _broadcast_note(self, arg: str, ctx: Ctx, i: int, axes: tuple[int, ...]) -> str:
        text = (
            f"Sum from broadcasting: {_code(arg)} {_code(fmt_shape(ctx.in_shapes[i]))} was "
            f"broadcast to {_code(fmt_shape(ctx.out_shape))} along axis "
            f"{', '.join(map(str, axes))}, i.e. copied; the VJP of a copy is the sum of the "
            "copies' cotangents."
        )
        if ctx.op == "add" and len(ctx.in_shapes[i]) == 1 and axes == (0,):
            text += " For a bias this is the familiar sum of $\\delta$ over the batch."
        return text

    # the MLP recurrence
    def _recurrence(self) -> str:
        if not self.layers:
            return ""
        L = len(self.layers)
        last = self.layers[-1]
        loss_op = self.graph.nodes[self.out]["op"]
        lines = [
            "## The backprop recurrence",
            "",
            f"This graph is a {L}-layer perceptron: for $l = 1, \\dots, {L}$,",
            "$z_l = h_{l-1} W_l + b_l$, and $h_l = \\sigma_l(z_l)$ for "
            f"$l < {L}$, with $h_0$ the "
            "input and "
            f"$z_{L}$ the logits fed to `{loss_op}`. Write "
            "$\\delta_l = \\bar{z}_l = \\partial L / \\partial z_l$ (one row per example). "
            "Composing the steps above, layer by layer:",
            "",
            "- the bias add passes the cotangent through: $\\bar{u}_l = \\delta_l$, and "
            "$\\bar{b}_l = \\sum_{\\text{batch}} \\delta_l$;",
            "- the matmul VJP brings the transpose: $\\bar{h}_{l-1} = \\delta_l W_l^{\\top}$, "
            "and $\\bar{W}_l = h_{l-1}^{\\top} \\delta_l$;",
            "- the activation's diagonal Jacobian brings the Hadamard product: "
            "$\\delta_{l-1} = \\bar{h}_{l-1} \\odot \\sigma'_{l-1}(z_{l-1})$.",
            "",
            "Hence, in the row layout that the generated code computes:",
            "",
            "$$\\delta_{l} = \\left(\\delta_{l+1} W_{l+1}^{\\top}\\right) \\odot \\sigma'(z_{l})$$",
            "",
            "For one example as a column vector $\\delta_l^{\\mathsf{col}} = \\delta_l^{\\top}$ "
            "and the textbook's weight matrix $\\mathbf{W}_{l} = W_{l}^{\\top}$ (shape "
            "fan-out by fan-in, $z = \\mathbf{W} h + b$), transposing both sides gives the "
            "textbook form:",
            "",
            "$$\\delta_{l} = \\left(\\mathbf{W}_{l+1}^{\\top} \\delta_{l+1}\\right) "
            "\\odot \\sigma'(z_{l})$$",
            "",
            "The code's `d_h = d_z @ W.T` is the row-layout product $\\delta_{l+1} W_{l+1}^\\top$; "
            "its transpose is the textbook's $\\mathbf{W}_{l+1}^{\\top} \\delta_{l+1}$.",
            "",
            "For this graph:",
            "",
            f"$${self._delta_last(last, loss_op)}$$",
        ]
        for index in range(L - 1, 0, -1):
            layer, above = self.layers[index - 1], self.layers[index]
            ctx = self._ctx(layer.h)
            deriv = rule_for(self.graph.nodes[layer.h]["op"]).derivative(ctx)
            lines += [
                "",
                f"$$\\delta_{{{index}}} = \\left(\\delta_{{{index + 1}}} "
                f"{self.s(above.W)}^{{\\top}}\\right) \\odot \\left({deriv}\\right)$$",
            ]
        lines += ["", "and the parameter gradients"]
        for index, layer in enumerate(self.layers, start=1):
            h_prev = self.s(layer.h_in)
            lines += [
                "",
                f"$${bar(self.s(layer.W))} = {h_prev}^{{\\top}} \\delta_{{{index}}}"
                + (
                    f", \\qquad {bar(self.s(layer.b))} = \\textstyle\\sum_{{\\text{{batch}}}} "
                    f"\\delta_{{{index}}}$$"
                    if layer.b is not None
                    else "$$"
                ),
            ]
        return "\n".join(lines)

    def _delta_last(self, last: Layer, loss_op: str) -> str:
        L = len(self.layers)
        ctx = self._ctx(self.out)
        vjp = rule_for(loss_op).vjp(ctx)
        expr = vjp[0] if vjp and vjp[0] else rf"\bar{{z}}_{{{L}}}"
        return f"\\delta_{{{L}}} = {expr.replace(ctx.g, '1')}"

    # gradients and code
    def _gradients(self) -> str:
        rows = ["## Gradients", ""]
        for w in self.wrt:
            symbol = self.s(w)
            parts = self.contributions.get(w, [])
            if not parts:
                rows.append(f"- {_code(w)}: the output does not depend on it; its gradient is 0.")
                continue
            total = " + ".join(_group(e) for _, e in parts) if len(parts) > 1 else parts[0][1]
            steps = ", ".join(str(self.step_of[u]) for u, _ in parts)
            rows.append(
                f"- {_code(w)} {_code(self.shape(w))}, from step{'s' if len(parts) > 1 else ''} "
                f"{steps}: $\\dfrac{{\\partial L}}{{\\partial {symbol}}} = {bar(symbol)} = {total}$"
            )
        return "\n".join(rows)

    def _code(self) -> str:
        # plain statements: a derivation reads best without buffers and in-place updates
        source = compile_source(self.graph, self.wrt, buffers=False).source
        name = "value_and_grad" if self.scalar else "vjp"
        tree = ast.parse(source)
        found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
        if not found:
            return ""
        segment = ast.get_source_segment(source, found[0]) or ""
        return (
            "## The generated code\n\n"
            f"`{name}` as `graphgen compile --no-buffers` writes it (by default the same "
            "statements also write into workspace buffers and update arrays in place): each "
            "backward statement carries a comment naming the VJP rule and the shapes. "
            "Cotangents are named `d_<node>`.\n\n"
            "```python\n" + segment + "\n```"
        )


def _active(graph: nx.MultiDiGraph, wrt: list[str], out: str) -> set[str]:
    """Float nodes on a float path from a wrt leaf to `out` (the nodes that get cotangents)."""
    floats = graph.subgraph(n for n, d in graph.nodes(data="dtype") if d in ("float32", "float64"))
    if out not in floats:
        return set()
    down: set[str] = set()
    for w in wrt:
        down |= {w} | nx.descendants(floats, w)
    return down & ({out} | nx.ancestors(floats, out))


def _group(expr: str) -> str:
    return rf"\left({expr}\right)" if (" + " in expr or " - " in expr) else expr


def _code(text: object) -> str:
    """`text` as a Markdown code span, whatever backticks or control characters it holds."""
    from .show import printable

    text = printable(text)
    run = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or run else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: object) -> str:
    """A Markdown table cell: a code span with pipes escaped."""
    return _code(text).replace("|", "\\|")
