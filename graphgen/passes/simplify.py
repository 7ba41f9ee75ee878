"""Algebraic simplification of the joint graph.

VJP rules are written generally (``g * 2.0 * x ** (2.0 - 1.0)``); this pass folds scalar
constant arithmetic and removes identities (``* 1``, ``/ 1``, ``** 1``, ``--x``, reshapes and
broadcasts to the same shape) so the generated code reads like hand-written backprop. It
never folds ``0 * x`` (x may be inf or nan) and only removes a node when its replacement
has exactly the same shape and dtype.
"""

from __future__ import annotations

import math
import operator

import networkx as nx

from ..builder import Graph
from ..ir import spec
from ..ops import functions as F
from ..schedule import operands, topological_order

_FOLD = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
    "power": operator.pow,
}


def simplify(graph: nx.MultiDiGraph, targets: list[str]) -> list[str]:
    """Rewrite `graph` in place; returns `targets` with replaced nodes substituted."""
    replaced: dict[str, str] = {}
    for node in topological_order(graph):
        data = graph.nodes[node]
        if data["op"] in ("input", "param", "const"):
            continue
        args = operands(graph, node)
        folded = _fold_constants(graph, node, args)
        if folded is not None:
            data.update(op="const", attrs={"value": folded, "dtype": data["dtype"]})
            graph.remove_edges_from(list(graph.in_edges(node, keys=True)))
            continue
        same = _identity_of(graph, node, args)
        if same is None:
            same = _joined_before_reshape(graph, node, args)
        if same is not None and spec(graph, same) == spec(graph, node):
            redirect(graph, node, same)
            replaced[node] = same
    return [_final(replaced, t) for t in targets]


def _final(replaced: dict[str, str], node: str) -> str:
    while node in replaced:
        node = replaced[node]
    return node


def _scalar_const(graph: nx.MultiDiGraph, node: str) -> float | None:
    data = graph.nodes[node]
    if data["op"] != "const" or data["shape"] != () or data["dtype"] not in ("float32", "float64"):
        return None
    value = data["attrs"]["value"]
    return None if isinstance(value, (list, bool)) else float(value)


def _fold_constants(graph, node, args):
    """The value of a float scalar op whose operands are all scalar consts, else None."""
    data = graph.nodes[node]
    values = [_scalar_const(graph, a) for a in args]
    if (
        not args
        or None in values
        or data["shape"] != ()
        or data["dtype"] not in ("float32", "float64")
    ):
        return None
    try:
        if data["op"] == "negative":
            result = -values[0]
        elif data["op"] in _FOLD and len(values) == 2:
            result = _FOLD[data["op"]](*values)
        else:
            return None
    except (ZeroDivisionError, OverflowError, ValueError):
        return None
    return result if math.isfinite(result) else None


def _identity_of(graph, node, args):
    """The operand that `node` merely passes through, or None."""
    op = graph.nodes[node]["op"]
    consts = [_scalar_const(graph, a) for a in args]
    if op == "multiply":
        if consts[1] == 1.0:
            return args[0]
        if consts[0] == 1.0:
            return args[1]
    if op in ("divide", "power") and consts[1] == 1.0:
        return args[0]
    if op in ("reshape", "broadcast_to") and tuple(graph.nodes[args[0]]["shape"]) == tuple(
        graph.nodes[node]["shape"]
    ):
        return args[0]
    if op == "stop_gradient":  # it has done its work once the reverse graph is built
        return args[0]
    if op == "negative" and graph.nodes[args[0]]["op"] == "negative":
        return operands(graph, args[0])[0]
    return None


def _joined_before_reshape(graph, node, args):
    """concatenate((reshape(a), reshape(b), ...), axis=-1), where each reshape merges the
    last two axes of its operand (..., h, d) -> (..., h * d), as the reshape of
    concatenate((a, b, ...), axis=-2): one copy instead of one per operand and one more.
    Attention heads' gradients, transposed views, are joined this way. None otherwise."""
    data = graph.nodes[node]
    shape = tuple(data["shape"])
    if data["op"] != "concatenate" or data["attrs"]["axis"] % len(shape) != len(shape) - 1:
        return None
    sources = []
    for a in args:
        if graph.nodes[a]["op"] != "reshape":
            return None
        (source,) = operands(graph, a)
        inner = tuple(graph.nodes[source]["shape"])
        if len(inner) != len(shape) + 1 or inner[:-2] != shape[:-1]:
            return None
        sources.append(source)
    depth = {graph.nodes[s]["shape"][-1] for s in sources}
    if len(depth) != 1 or not all(isinstance(graph.nodes[s]["shape"][-2], int) for s in sources):
        return None
    builder = Graph(nx_graph=graph)
    tags = {k: data[k] for k in ("role", "rule", "vjp_of") if k in data}
    with builder.tagged(**tags):
        joined = F.concatenate([builder.tensor(s) for s in sources], axis=-2)
        return F.reshape(joined, shape).id


def redirect(graph: nx.MultiDiGraph, node: str, target: str) -> None:
    """Make every use of `node` a use of `target`, keeping naming tags where useful."""
    for _, user, key, arg in list(graph.out_edges(node, keys=True, data="arg")):
        graph.remove_edge(node, user, key)
        graph.add_edge(target, user, arg=arg)
    data, tdata = graph.nodes[node], graph.nodes[target]
    if "grad_of" in data and "grad_of" not in tdata and tdata.get("role") == "backward":
        tdata["grad_of"] = data["grad_of"]
