"""Looking at a graph: a text listing, Graphviz DOT, and SVG rendered by Graphviz.

The listing prints one node a line, the way a jaxpr or an FX graph prints
(`h1: f64[batch,5] = tanh(z1)`). With `backward`, the graph shown is the joint forward +
reverse graph exactly as it is compiled (`compiler.optimize_joint`), each reverse
node marked with the VJP rule that built it and the forward node it belongs to.

Node names are untrusted text: the listing escapes control characters, and DOT labels are
escaped for DOT's string syntax and for Graphviz's own label escapes and entities.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import networkx as nx

from .autodiff import build_joint, check_wrt
from .compiler import optimize_joint
from .errors import GraphError
from .ir import format_node, spec
from .ops.registry import get_op
from .schedule import operands, topological_order


class GraphvizError(RuntimeError):
    """Graphviz is missing or failed to render."""


@dataclass
class View:
    """The graph to show: forward only, or joint with its gradient nodes."""

    graph: nx.MultiDiGraph
    outputs: list[str]
    grads: dict[str, str]  # wrt name -> node holding its gradient (joint only)

    @property
    def backward(self) -> bool:
        return bool(self.grads)


def forward_view(forward: nx.MultiDiGraph) -> View:
    return View(forward, list(forward.graph["outputs"]), {})


def joint_view(forward: nx.MultiDiGraph, wrt=None) -> View:
    """The joint forward + reverse graph as compiled: built, simplified, pruned."""
    wrt = check_wrt(forward, wrt)
    out = forward.graph["outputs"][0]
    if not wrt:
        raise GraphError(
            f"graph {forward.graph['name']!r}: nothing to differentiate (wrt is empty)"
        )
    if not spec(forward, out).is_float:
        raise GraphError(f"output {out!r} has dtype {spec(forward, out).dtype}: no backward pass")
    joint = build_joint(forward, wrt, seed_input=spec(forward, out).shape != ())
    graph, outputs, grads = optimize_joint(joint, list(forward.graph["outputs"]), wrt)
    return View(graph, outputs, dict(zip(wrt, grads)))


def is_reverse(graph: nx.MultiDiGraph, node: str) -> bool:
    return graph.nodes[node].get("role") == "backward"


def reverse_note(graph: nx.MultiDiGraph, node: str) -> str:
    """What built a reverse node: `matmul VJP at matmul_2, cotangent of h1`."""
    data = graph.nodes[node]
    rule, fwd = data.get("rule"), data.get("vjp_of")
    target = None
    if rule == "seed":
        text, target = f"seed: cotangent of {fwd}", fwd
    elif rule == "fan-out":
        text, target = f"fan-out: sums the cotangents of {fwd}", fwd
    elif rule == "zero":
        text, target = f"{fwd} does not affect the output: zero gradient", fwd
    else:
        text = f"{rule} VJP at {fwd}"
        i = data.get("cot_arg")
        if i is not None and fwd in graph:
            args = operands(graph, fwd)
            target = args[i] if i < len(args) else None
            text += f", cotangent of {target}"
    if "grad_of" in data and data["grad_of"] != target:
        text += f"; total cotangent of {data['grad_of']}"
    return text


# ---- text --------------------------------------------------------------------------------


def printable(text: object) -> str:
    """`text` with control and other non-printable characters escaped (\\n, \\x1b, ...)."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text)
    )


def listing(view: View) -> str:
    """One node a line in schedule order; reverse nodes carry a `# bwd:` note."""
    order = topological_order(view.graph)
    forward = [n for n in order if not is_reverse(view.graph, n)]
    reverse = [n for n in order if is_reverse(view.graph, n)]
    lines = []
    if view.backward:
        lines.append(f"# forward ({len(forward)} nodes)")
    lines += [format_node(view.graph, n) for n in forward]
    if view.backward:
        lines.append(f"# reverse ({len(reverse)} nodes, built by the VJP rules; marked bwd)")
        width = max((len(format_node(view.graph, n)) for n in reverse), default=0)
        lines += [
            f"{format_node(view.graph, n):<{width}}  # bwd: {reverse_note(view.graph, n)}"
            for n in reverse
        ]
    lines.append("outputs: " + ", ".join(view.outputs))
    if view.backward:
        lines.append("gradients: " + ", ".join(f"{w} = {n}" for w, n in view.grads.items()))
    return "\n".join(printable(line) for line in lines) + "\n"


# ---- DOT ---------------------------------------------------------------------------------

_STYLE = {
    "input": 'shape=ellipse, fillcolor="#dbeafe"',
    "param": 'shape=ellipse, fillcolor="#dcfce7"',
    "const": 'shape=box, style="rounded,filled", fillcolor="#f3f4f6", fontcolor="#4b5563"',
    "op": 'shape=box, fillcolor="#ffffff"',
    "reverse": 'shape=box, fillcolor="#ffedd5", color="#c2410c"',
}


def dot_string(text: object) -> str:
    """A DOT double-quoted string showing `text` literally.

    Inside quotes DOT only knows \\" but Graphviz then reads \\n, \\l, \\N, ... in labels
    and HTML entities such as &amp;, so backslashes and ampersands are escaped as well.
    """
    text = printable(text).replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")
    return f'"{text}"'


def _label(view: View, node: str) -> str:
    """A DOT label: name, then op and type, joined by Graphviz's centred line break."""
    data = view.graph.nodes[node]
    parts = [node, f"{data['op']} {spec(view.graph, node)}"]
    if view.backward and is_reverse(view.graph, node):
        parts.append(reverse_note(view.graph, node))
    return "\\n".join(dot_string(p)[1:-1] for p in parts)


def to_dot(view: View) -> str:
    """Graphviz DOT of the view: leaves as ellipses, reverse nodes orange, outputs doubled."""
    order = topological_order(view.graph)
    ids = {n: f"n{i}" for i, n in enumerate(order)}
    outputs = set(view.outputs) | set(view.grads.values())
    title = dot_string(view.graph.graph.get("name", "graph"))[1:-1]
    if view.backward:
        title += "\\nreverse nodes (built by the VJP rules) orange, with dashed edges"
    title += "\\ndouble border: outputs" + (" and gradients" if view.backward else "")
    lines = [
        "digraph graphgen {",
        f'  graph [label="{title}", labelloc=t, rankdir=TB, fontname="Helvetica"];',
        '  node [style=filled, fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#6b7280"];',
    ]
    for n in order:
        op = view.graph.nodes[n]["op"]
        kind = "reverse" if is_reverse(view.graph, n) else op if op in _STYLE else "op"
        extra = ", peripheries=2" if n in outputs else ""
        lines.append(f'  {ids[n]} [label="{_label(view, n)}", {_STYLE[kind]}{extra}];')
    for n in order:
        args = operands(view.graph, n)
        names = get_op(view.graph.nodes[n]["op"]).operands
        for i, a in enumerate(args):
            attrs = []
            if len(args) > 1:
                attrs.append(f"label={dot_string(names[i] if i < len(names) else i)}")
            if is_reverse(view.graph, n):
                attrs.append('style=dashed, color="#c2410c"')
            lines.append(
                f"  {ids[a]} -> {ids[n]}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(dot_source: str, dot_program: str = "dot") -> bytes:
    """SVG from Graphviz's `dot`; GraphvizError when it is missing or fails."""
    exe = shutil.which(dot_program)
    if exe is None:
        raise GraphvizError(
            "--format svg needs Graphviz, but the `dot` program is not on PATH "
            "(install Graphviz, e.g. `apt-get install graphviz`), or use --format dot"
        )
    try:
        done = subprocess.run(
            [exe, "-Tsvg"], input=dot_source.encode("utf-8"), capture_output=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GraphvizError(f"Graphviz `dot` failed: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GraphvizError(f"Graphviz `dot` failed: {message[0] if message else done.returncode}")
    return done.stdout
