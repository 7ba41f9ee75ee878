"""The IR: validation of a networkx graph and a one-line-per-node text printer.

`validate` checks everything that the later stages rely on and returns a normalized copy
(a MultiDiGraph whose nodes carry canonical attrs, shape and dtype). Each error is a
GraphError subclass naming the node, its op and the shapes involved.
"""

from __future__ import annotations

import math
import operator
import reprlib
from typing import Any

import networkx as nx

from .errors import AttrError, CycleError, GraphError, OpError, ShapeError
from .ops.registry import DTYPES, TensorSpec, as_shape, get_op
from .schedule import operand_slots, operands, topological_order


def validate(graph: Any) -> nx.MultiDiGraph:
    """A checked, normalized, shape-inferred copy of `graph` (the builder or networkx IR)."""
    if hasattr(graph, "nx") and isinstance(graph.nx, nx.Graph):
        graph = graph.nx
    if not isinstance(graph, (nx.MultiDiGraph, nx.DiGraph)):
        raise GraphError(
            f"expected a networkx DiGraph/MultiDiGraph or a gg.Graph, got {type(graph).__name__}"
        )
    out = nx.MultiDiGraph()
    name = graph.graph.get("name", "graph")
    out.graph["name"] = str.__str__(name) if isinstance(name, str) else str(name)
    for node, data in graph.nodes(data=True):
        if not isinstance(node, str) or not node:
            raise GraphError(f"node id {node!r} is not a non-empty string")
        # str subclasses become plain str: no user __repr__/__format__ reaches the source
        out.add_node(str.__str__(node), **_check_node(str.__str__(node), data))
    for u, v, data in graph.edges(data=True):
        u, v = str.__str__(u), str.__str__(v)
        if u == v:
            raise CycleError(f"node {u!r} (op {out.nodes[u]['op']}) uses itself (a self-loop)")
        arg = data.get("arg")
        if isinstance(arg, bool) or not isinstance(arg, int):
            raise OpError(
                f"edge {u!r} -> {v!r}: 'arg' must be an int operand position, got {arg!r}"
            )
        out.add_edge(u, v, arg=operator.index(arg))
    out.graph["outputs"] = _check_outputs(graph.graph.get("outputs"), out)
    _check_tags(out)
    _check_acyclic(out)
    for node in topological_order(out):
        _check_arity(out, node)
        _infer_node(out, node)
    _check_dims_bound(out)
    return out


def plain(value: Any, finite: bool = True) -> Any:
    """`value` rebuilt from plain JSON-like Python types (str, int, float, bool, None, and
    lists, tuples and dicts of them); TypeError for anything else.

    Subclasses of str/int/float become the base type, so no user-defined __repr__ or
    __format__ can reach the generated source. finite: reject nan and inf (an attr that an
    emitter renders with repr would become the undefined names `nan`/`inf`).
    """
    if value is None or type(value) is bool:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return operator.index(value)
    if isinstance(value, float):
        value = float.__float__(value)
        if finite and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return value
    if isinstance(value, (list, tuple)):
        items = [plain(v, finite) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {plain(k, finite): plain(v, finite) for k, v in value.items()}
    raise TypeError(f"a {type(value).__name__} is not a JSON-like value")


def _check_node(node: str, data: dict) -> dict:
    op = get_op(data.get("op"), node)
    attrs = data.get("attrs", {}) or {}
    if not isinstance(attrs, dict):
        raise AttrError(f"node {node!r} (op {op.name}): attrs must be a dict, got {attrs!r}")
    bad_keys = [k for k in attrs if not isinstance(k, str)]
    if bad_keys:
        raise AttrError(
            f"node {node!r} (op {op.name}): attribute name {bad_keys[0]!r} is not a str"
        )
    clean = {"op": op.name}
    if op.leaf:
        if attrs:
            raise AttrError(f"node {node!r} (op {op.name}): a leaf takes no attrs")
        try:
            shape = plain(as_shape(data.get("shape", ())))
            if -1 in shape:
                raise ValueError("-1 is not a dim")
        except (TypeError, ValueError) as exc:
            raise ShapeError(
                f"node {node!r} (op {op.name}): shape {data.get('shape')!r}: {exc}"
            ) from None
        dtype = data.get("dtype", "float64")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise ShapeError(
                f"node {node!r} (op {op.name}): dtype {dtype!r} is not one of {list(DTYPES)}"
            )
        clean.update(attrs={}, shape=shape, dtype=DTYPES[DTYPES.index(dtype)])
    else:
        try:
            checked = op.check_attrs(node, attrs)
            for key, value in checked.items():
                try:
                    # const values are emitted by number_literal, which spells nan and inf
                    checked[key] = plain(value, finite=op.name != "const")
                except (TypeError, ValueError) as exc:
                    raise AttrError(
                        f"node {node!r} (op {op.name}): attribute {key}={reprlib.repr(value)}: "
                        f"{exc}"
                    ) from None
        except RecursionError:
            raise AttrError(f"node {node!r} (op {op.name}): attrs nested too deeply") from None
        clean["attrs"] = checked
    for key in _TAGS:
        if key in data:
            clean[key] = data[key]
    return clean


# Naming and comment tags that autodiff puts on reverse nodes; a graph may carry them (a
# saved joint graph) but they only steer names and comments, so malformed ones are dropped.
_TAGS = {"role": str, "rule": str, "vjp_of": str, "grad_of": str, "cot_arg": int}


def _check_tags(graph: nx.MultiDiGraph) -> None:
    for _, data in graph.nodes(data=True):
        for key, kind in _TAGS.items():
            if key not in data:
                continue
            value = data[key]
            ok = isinstance(value, kind) and not isinstance(value, bool)
            if ok and key in ("vjp_of", "grad_of"):
                ok = value in graph
            if ok:
                data[key] = plain(value)
            else:
                del data[key]


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
    return [str.__str__(o) for o in outputs]


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
    count = f"{len(op.operands)}{' or more' if op.variadic else ''}"
    if op.variadic:  # any number of further positions, without gaps
        ok = args == list(range(len(args))) and op.takes(len(args))
    else:  # each position once, every required operand present (optional ones may be absent)
        required = {i for i, o in enumerate(op.operands) if o not in op.optional}
        ok = len(set(args)) == len(args) and required <= set(args) <= set(range(len(op.operands)))
    if not ok:
        raise OpError(
            f"node {node!r} (op {op.name}) takes {count} operand(s) "
            f"({', '.join(op.operands) or 'none'}), got argument positions {args}"
        )


def _infer_node(graph: nx.MultiDiGraph, node: str) -> None:
    data = graph.nodes[node]
    op = get_op(data["op"])
    if op.leaf:
        return
    args = operand_slots(graph, node, len(op.operands))
    specs = [None if a is None else spec(graph, a) for a in args]
    shapes = ", ".join(f"{a}: {s}" for a, s in zip(args, specs) if a is not None)
    try:
        result = op.infer(specs, data["attrs"])
    except ValueError as exc:
        raise ShapeError(f"node {node!r} (op {op.name}): {exc} [operands {shapes}]") from None
    except (TypeError, LookupError, ArithmeticError) as exc:  # a rule that missed a check
        raise ShapeError(
            f"node {node!r} (op {op.name}): cannot infer its shape: {exc!r} [operands {shapes}]"
        ) from exc
    bad = [d for d in result.shape if not _is_dim(d)]
    if bad:
        raise ShapeError(
            f"node {node!r} (op {op.name}): its shape {result.shape} has the invalid dim "
            f"{bad[0]!r} [operands {shapes}]"
        )
    data["shape"], data["dtype"] = result.shape, result.dtype
    if op.name == "const":
        _check_const_value(node, data["attrs"]["value"], result.dtype)


def _is_dim(d: Any) -> bool:
    """A non-negative int or a non-empty symbolic name."""
    if isinstance(d, str):
        return bool(d)
    return isinstance(d, int) and not isinstance(d, bool) and d >= 0


_INT64 = (-(2**63), 2**63 - 1)


def _check_const_value(node: str, value: Any, dtype: str) -> None:
    """Every number of a const must be representable in its dtype (nan is not an int)."""
    if isinstance(value, list):
        for x in value:
            _check_const_value(node, x, dtype)
        return
    finite = isinstance(value, int) or math.isfinite(value)
    if dtype == "int64" and not (finite and _INT64[0] <= value <= _INT64[1]):
        raise AttrError(f"node {node!r} (op const): value {value!r} is not an int64")
    if dtype in ("float32", "float64"):
        try:
            float(value)
        except OverflowError:
            raise AttrError(f"node {node!r} (op const): value {value} is too large") from None


def _check_dims_bound(graph: nx.MultiDiGraph) -> None:
    """Every symbolic dim must be a dim of an input or param: that is where it is bound."""
    bound = {
        d
        for n, data in graph.nodes(data=True)
        if data["op"] in ("input", "param")
        for d in data["shape"]
        if isinstance(d, str)
    }
    for node in topological_order(graph):
        for d in graph.nodes[node]["shape"]:
            if isinstance(d, str) and d not in bound:
                raise ShapeError(
                    f"node {node!r} (op {graph.nodes[node]['op']}): symbolic dim {d!r} of its "
                    "shape is not a dim of any input or param, so its size is unknown at run time"
                )


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
