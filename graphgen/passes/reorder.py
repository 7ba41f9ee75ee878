"""Reordering before differentiation: max pooling moved ahead of the relu that feeds it.

max_pool2d(relu(x)) and relu(max_pool2d(x)) are the same value: relu is a monotone
selection (it keeps x or gives 0), so it keeps each window's max in place, ties and nan
included. Their gradients are the same too. Where the window's max is positive both
orders send g to the first tap holding it; where it is not, relu's zero slope clears the
window's gradient in both. Pooling first runs relu and its backward on the pooled array,
a quarter of the size for 2x2 windows, and leaves max_pool2d_grad a window whose values
come straight from x, so ties (every window of negatives after a relu) no longer arise.

The rewrite applies only where the relu's single use is the pool, the relu is not an
output and the windows tile x (stride = kernel size, no padding: every CNN's 2x2 pool).
There it is exact, nan included: a window holding a nan passes no gradient in either
order. Overlapping windows are left alone: their gradient kernel sends a nan window's g
to its largest number, which the relu in front of it may then clear or not. Other
monotone activations (leaky_relu, sigmoid, tanh) are not moved either, since rounding
them can merge two distinct entries and change which tap is first.
"""

from __future__ import annotations

import networkx as nx

from ..builder import Graph
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
        attrs = dict(forward.nodes[pool]["attrs"])
        pooled = builder.apply("max_pool2d", [x], attrs, name=free_name(graph, pool, "max"))
        result = builder.apply("relu", [pooled], {}, name=free_name(graph, pool, "relu"))
        replace_node(graph, pool, result.id)
        graph.remove_node(relu)
    return graph


def _relu_of(forward: nx.MultiDiGraph, pool: str) -> str | None:
    """The relu that `pool` (a max_pool2d of windows that tile x: stride = kernel size, no
    padding) alone reads, when it is not an output."""
    data = forward.nodes[pool]
    if data["op"] != "max_pool2d":
        return None
    attrs = data["attrs"]
    if (attrs["stride"] or attrs["kernel_size"]) != attrs["kernel_size"] or any(attrs["padding"]):
        return None
    relu = operands(forward, pool)[0]
    if forward.nodes[relu]["op"] != "relu" or relu in forward.graph["outputs"]:
        return None
    return relu if forward.out_degree(relu) == 1 else None
