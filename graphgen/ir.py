"""The IR: validation of a networkx graph and a one-line-per-node text printer.

`validate` checks everything that the later stages rely on and returns a normalized copy
(a MultiDiGraph whose nodes carry canonical attrs, shape and dtype). Each error is a
GraphError subclass naming the node, its op and the shapes involved.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from .errors import CycleError, GraphError, OpError, ShapeError
from .ops.registry import DTYPES, TensorSpec, as_shape, get_op
from .schedule import operands, topological_order


def validate(graph: Any) -> nx.MultiDiGraph:
    """A checked, normalized, shape-inferred copy of `graph` (the builder or networkx IR)."""
    if hasattr(graph, "nx") and isinstance(graph.nx, nx.Graph):
        graph = graph.nx
    if not isinstance(graph, (nx.MultiDiGraph, nx.DiGraph)):
        raise GraphError(
            f"expected a networkx DiGraph/MultiDiGraph or a gg.Graph, got {type(graph).__name__}"
        )
    out = nx.MultiDiGraph()
    out.graph["name"] = str(graph.graph.get("name", "graph"))
    for node, data in graph.nodes(data=True):
        if not isinstance(node, str) or not node:
            raise GraphError(f"node id {node!r} is not a non-empty string")
        out.add_node(node, **_check_node(node, data))
    for u, v, data in graph.edges(data=True):
        if u == v:
            raise CycleError(f"node {u!r} (op {out.nodes[u]['op']}) uses itself (a self-loop)")
        arg = data.get("arg")
        if isinstance(arg, bool) or not isinstance(arg, int):
            raise OpError(
                f"edge {u!r} -> {v!r}: 'arg' must be an int operand position, got {arg!r}"
            )
        out.add_edge(u, v, arg=arg)
    out.graph["outputs"] = _check_outputs(graph.graph.get("outputs"), out)
    _check_acyclic(out)
    for node in topological_order(out):
        _check_arity(out, node)
        _infer_node(out, node)
    return out


def _check_node(node: str, data: dict) -> dict:
    op = get_op(data.get("op"), node)
    attrs = data.get("attrs", {}) or {}
    if not isinstance(attrs, dict):
        raise GraphError(f"node {node!r} (op {op.name}): attrs must be a dict, got {attrs!r}")
    clean = {"op": op.name}
    if op.leaf:
        if attrs:
            raise GraphError(f"node {node!r} (op {op.name}): a leaf takes no attrs")
        try:
            shape = as_shape(data.get("shape", ()))
            if -1 in shape:
                raise ValueError("-1 is not a dim")
        except ValueError as exc:
            raise ShapeError(
                f"node {node!r} (op {op.name}): shape {data.get('shape')!r}: {exc}"
            ) from None
        dtype = data.get("dtype", "float64")
        if dtype not in DTYPES:
            raise ShapeError(
                f"node {node!r} (op {op.name}): dtype {dtype!r} is not one of {list(DTYPES)}"
            )
        clean.update(attrs={}, shape=shape, dtype=dtype)
    else:
        clean["attrs"] = op.check_attrs(node, attrs)
    for key in ("role", "rule", "vjp_of", "grad_of", "cot_arg"):
        if key in data:
            clean[key] = data[key]
    return clean


def _check_outputs(outputs: Any, graph: nx.MultiDiGraph) -> list[str]:
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, (list, tuple)) or not outputs:
        raise GraphError(
            f"graph {graph.graph['name']!r} has no outputs (graph attribute 'outputs')"
        )
    for o in outputs:
        if not isinstance(o, str) or o not in graph:
            raise GraphError(f"output {o!r} is not a node of graph {graph.graph['name']!r}")
    return list(outputs)


def _check_acyclic(graph: nx.MultiDiGraph) -> None:
    if nx.is_directed_acyclic_graph(graph):  # linear; find_cycle only to report one
        return
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join([str(e[0]) for e in cycle] + [str(cycle[0][0])])
    raise CycleError(f"graph {graph.graph['name']!r} has a cycle: {path}")


def _check_arity(graph: nx.MultiDiGraph, node: str) -> None:
    op = get_op(graph.nodes[node]["op"])
    args = sorted(a for _, _, a in graph.in_edges(node, data="arg"))
    if args != list(range(len(args))) or not op.takes(len(args)):
        count = f"{len(op.operands)}{' or more' if op.variadic else ''}"
        raise OpError(
            f"node {node!r} (op {op.name}) takes {count} operand(s) "
            f"({', '.join(op.operands) or 'none'}), got argument positions {args}"
        )


def _infer_node(graph: nx.MultiDiGraph, node: str) -> None:
    data = graph.nodes[node]
    op = get_op(data["op"])
    if op.leaf:
        return
    args = operands(graph, node)
    specs = [spec(graph, a) for a in args]
    try:
        result = op.infer(specs, data["attrs"])
    except ValueError as exc:
        shapes = ", ".join(f"{a}: {s}" for a, s in zip(args, specs))
        raise ShapeError(f"node {node!r} (op {op.name}): {exc} [operands {shapes}]") from None
    data["shape"], data["dtype"] = result.shape, result.dtype


def spec(graph: nx.MultiDiGraph, node: str) -> TensorSpec:
    data = graph.nodes[node]
    return TensorSpec(tuple(data["shape"]), data["dtype"])


def format_node(graph: nx.MultiDiGraph, node: str) -> str:
    """One line: `h1: f64[batch,256] = tanh(z1)`, with attrs in braces."""
    data = graph.nodes[node]
    args = ", ".join(operands(graph, node))
    attrs = data.get("attrs") or {}
    shown = ", ".join(f"{k}={v!r}" for k, v in attrs.items() if v is not None)
    call = f"{data['op']}({args})" + (f" {{{shown}}}" if shown else "")
    return f"{node}: {spec(graph, node)} = {call}"


def format_graph(graph: nx.MultiDiGraph) -> str:
    """The whole graph, one node a line in schedule order, then its outputs."""
    lines = [format_node(graph, n) for n in topological_order(graph)]
    lines.append("outputs: " + ", ".join(graph.graph.get("outputs", [])))
    return "\n".join(lines)
