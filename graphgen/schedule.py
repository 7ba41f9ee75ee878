"""Deterministic scheduling: a topological order that depends only on the graph.

Ties are broken by node insertion order (the order of the builder calls or of the JSON
file), with Kahn's algorithm, so deep graphs cannot overflow the stack and the same graph
always gives the same order, hence byte-identical generated source.
"""

from __future__ import annotations

import networkx as nx


def topological_order(graph: nx.MultiDiGraph) -> list[str]:
    """Nodes in a deterministic topological order (raises NetworkXUnfeasible on a cycle)."""
    position = {node: i for i, node in enumerate(graph.nodes)}
    return list(nx.lexicographical_topological_sort(graph, key=position.__getitem__))


def operands(graph: nx.MultiDiGraph, node: str) -> list[str]:
    """The operand node ids of `node`, ordered by the edges' `arg` positions."""
    edges = sorted(graph.in_edges(node, data="arg"), key=lambda e: e[2])
    return [u for u, _, _ in edges]


def operand_slots(graph: nx.MultiDiGraph, node: str, count: int) -> list[str | None]:
    """The operand ids of `node` by position, None where an optional operand is absent (an
    op with optional operands may have gaps in its edges' `arg` positions). At least `count`
    slots (the op's declared operands), more when edges go further (a variadic op)."""
    edges = list(graph.in_edges(node, data="arg"))
    slots: list[str | None] = [None] * max([count] + [i + 1 for _, _, i in edges])
    for u, _, i in edges:
        slots[i] = u
    return slots
