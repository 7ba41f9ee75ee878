"""Lowering before differentiation: a node whose op declares a `lowering` is replaced by
that composition of ops, so that the backward pass can reuse the forward's intermediates.

gelu(x) = x * Phi(x) is the example: differentiated as one op, its backward would compute
Phi(x) (an erfc) a second time; differentiated as a product, the backward reads the Phi(x)
the forward has just computed. The lowered node keeps its name, its uses and its place
among the outputs; new intermediates are named after it (`f_cdf` for a gelu called `f`).
"""

from __future__ import annotations

import networkx as nx

from ..builder import Graph
from ..ops.registry import get_op
from ..schedule import operand_slots, topological_order


def lower_for_autodiff(forward: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy of `forward` with every node that has a lowering replaced by it."""
    graph = forward.copy()
    builder = Graph(nx_graph=graph)
    for node in topological_order(forward):
        data = forward.nodes[node]
        op = get_op(data["op"])
        if op.lowering is None:
            continue
        slots = operand_slots(forward, node, len(op.operands))
        args = [None if a is None else builder.tensor(a) for a in slots]
        result = op.lowering(
            args, data.get("attrs") or {}, lambda suffix: free_name(graph, node, suffix)
        )
        if result is not None:
            replace_node(graph, node, result.id)
    return graph


def unique_name(graph: nx.MultiDiGraph, name: str) -> str:
    """`name`, or `name_2`, `name_3`, ... : the first not yet in `graph`."""
    k, candidate = 1, name
    while candidate in graph:
        k += 1
        candidate = f"{name}_{k}"
    return candidate


def free_name(graph: nx.MultiDiGraph, node: str, suffix: str) -> str:
    """A new node's name after `node`: `node_suffix`, made unique."""
    return unique_name(graph, f"{node}_{suffix}")


def replace_node(graph: nx.MultiDiGraph, node: str, new: str) -> None:
    """Move `node`'s uses to `new`, drop `node`, and give `new` its name."""
    for _, user, data in list(graph.out_edges(node, data=True)):
        graph.add_edge(new, user, **data)
    graph.remove_node(node)
    nx.relabel_nodes(graph, {new: node}, copy=False)
