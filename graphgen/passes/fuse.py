"""Horizontal fusion before differentiation: products that share their left operand.

An attention block projects one input three times, q = x @ Wq, k = x @ Wk, v = x @ Wv.
Those become one product p = x @ concatenate([Wq, Wk, Wv], axis=1) whose column blocks are
q, k and v (views of p). One GEMM three times as wide keeps BLAS busier than three narrow
ones, and the backward pass follows suit: autodiff joins the cotangents of the blocks
into one array (see autodiff._accumulate), so x's gradient is one product g @ W^T instead
of a sum of three, and the weights' gradient one product x^T @ g, cut back into blocks.

Only products whose right operands are 2-D leaves (params, inputs, constants) of the same
dtype are fused: a leaf cannot depend on another member of the group, so the fused graph
has no cycle. A product that is a graph output is left alone (its value must be its own
array, not a view of the fused one).
"""

from __future__ import annotations

import networkx as nx

from ..builder import Graph
from ..naming import auto_id_number
from ..ops import functions as F
from ..schedule import operands
from .lower import replace_node, unique_name

LEAVES = ("param", "input", "const")


def fuse_shared_matmuls(forward: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """`forward` where every group of two or more fusable matmuls with the same left
    operand is one matmul of the concatenated right operands, sliced: a copy, or
    `forward` itself when there is nothing to fuse."""
    groups = _groups(forward)
    if not groups:
        return forward
    graph = forward.copy()
    builder = Graph(nx_graph=graph)
    for (left, _), group in groups.items():
        _fuse(graph, builder, left, group)
    return graph


def _groups(forward: nx.MultiDiGraph) -> dict[tuple[str, str], list[str]]:
    """The fusable matmuls, in node order, by left operand and right operands' dtype:
    only groups of two or more."""
    outputs = set(forward.graph["outputs"])
    groups: dict[tuple[str, str], list[str]] = {}
    for node, op in forward.nodes(data="op"):
        if op != "matmul" or node in outputs:
            continue
        x, w = operands(forward, node)
        wdata = forward.nodes[w]
        if x == w or wdata["op"] not in LEAVES or len(wdata["shape"]) != 2:
            continue
        if all(isinstance(d, int) for d in wdata["shape"]):
            groups.setdefault((x, wdata["dtype"]), []).append(node)
    return {key: group for key, group in groups.items() if len(group) >= 2}


def _fuse(graph: nx.MultiDiGraph, builder: Graph, left: str, group: list[str]) -> None:
    weights = [builder.tensor(operands(graph, m)[1]) for m in group]
    biases = [_bias(graph, builder, m, w) for m, w in zip(group, weights)]
    fused_bias = all(b is not None for b in biases)
    replaced = [b[0] for b in biases] if fused_bias else group
    name = "_".join(replaced)
    unnamed = any(auto_id_number(n, graph.nodes[n]["op"]) is not None for n in replaced)
    if len(name) > 40 or unnamed:
        name = f"{left}_products"
    name = unique_name(graph, name)
    joined = F.concatenate(weights, axis=1, name=unique_name(graph, f"{name}_w"))
    product_name = unique_name(graph, f"{name}_xw") if fused_bias else name
    product = F.matmul(builder.tensor(left), joined, name=product_name)
    if fused_bias:
        bias = F.concatenate([b[1] for b in biases], axis=0, name=unique_name(graph, f"{name}_b"))
        product = F.add(product, bias, name=name)
    start = 0
    for node, w in zip(replaced, weights):
        width = w.spec.shape[1]
        block = product[..., start : start + width]
        start += width
        replace_node(graph, node, block.id)
    if fused_bias:
        graph.remove_nodes_from(group)


def _bias(graph: nx.MultiDiGraph, builder: Graph, product: str, weight) -> tuple | None:
    """(the add, the bias) when `product`'s one use adds a 1-D leaf bias of its width and
    dtype to it (x @ W + b), else None."""
    uses = list(graph.out_edges(product))
    if len(uses) != 1:
        return None
    add = uses[0][1]
    if graph.nodes[add]["op"] != "add" or add in graph.graph["outputs"]:
        return None
    args = operands(graph, add)
    other = args[1] if args[0] == product else args[0]
    data = graph.nodes[other]
    if other == product or data["op"] not in LEAVES:
        return None
    if tuple(data["shape"]) != (weight.spec.shape[1],) or data["dtype"] != weight.spec.dtype:
        return None
    if graph.nodes[add]["dtype"] != weight.spec.dtype:
        return None
    return add, builder.tensor(other)
