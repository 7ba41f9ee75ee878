"""Reordering before differentiation: max pooling moved ahead of the relu that feeds it.

max_pool2d(relu(x)) and relu(max_pool2d(x)) are the same value: relu is a monotone
selection (it keeps x or gives 0), so it keeps each window's max in place, ties and nan
included. Their gradients are the same too. Where the window's max is positive both
orders send g to the first tap holding it; where it is not, relu's zero slope clears the
window's gradient in both. Pooling first runs relu and its backward on the pooled array,
a quarter of the size for 2x2 windows, and leaves max_pool2d_grad a window whose values
come straight from x, so ties (every window of negatives after a relu) no longer arise.

The rewrite applies only where the relu's single use is the pool and the relu is not an
output. It is exact for any windows, nan included: a window holding a nan sends g to its
last nan (max_pool2d_grad), where relu's slope is 0 in one order and relu'(nan) = 0
clears the window in the other. Other monotone activations (leaky_relu, sigmoid, tanh)
are not moved, since rounding them can merge two distinct entries and change which tap
is first.
"""

from __future__ import annotations

import networkx as nx

from ..builder import Graph
from ..ops import functions as F
from ..schedule import operands
from .lower import free_name, replace_node


def pool_before_relu(forward: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """`forward` with every max_pool2d(relu(x)) rewritten as relu(max_pool2d(x)): a copy,
    or `forward` itself when there is nothing to rewrite."""
    pools = [p for p in forward.nodes if _relu_of(forward, p) is not None]
    if not pools:
        return forward
    graph = forward.copy()
    builder = Graph(nx_graph=graph)
    for pool in pools:
        relu = _relu_of(forward, pool)
        x = builder.tensor(operands(forward, relu)[0])
        attrs = forward.nodes[pool]["attrs"]
        pooled = F.max_pool2d(x, **attrs, name=free_name(graph, pool, "max"))
        replace_node(graph, pool, F.relu(pooled, name=free_name(graph, pool, "relu")).id)
        graph.remove_node(relu)
    return graph


def _relu_of(forward: nx.MultiDiGraph, pool: str) -> str | None:
    """The relu that `pool` (a max_pool2d) alone reads, when it is not an output."""
    if forward.nodes[pool]["op"] != "max_pool2d":
        return None
    relu = operands(forward, pool)[0]
    if forward.nodes[relu]["op"] != "relu" or relu in forward.graph["outputs"]:
        return None
    return relu if forward.out_degree(relu) == 1 else None
