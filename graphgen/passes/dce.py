"""Dead-code elimination: keep only what the targets need."""

from __future__ import annotations

import networkx as nx


def upstream(graph: nx.MultiDiGraph, roots) -> set[str]:
    """`roots` and every node they depend on (one traversal for all roots)."""
    seen = set(roots)
    stack = list(seen)
    while stack:
        for parent in graph.predecessors(stack.pop()):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def downstream(graph: nx.MultiDiGraph, roots) -> set[str]:
    """`roots` and every node that depends on them."""
    seen = set(roots)
    stack = list(seen)
    while stack:
        for child in graph.successors(stack.pop()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def prune(graph: nx.MultiDiGraph, targets: list[str]) -> nx.MultiDiGraph:
    """A copy of `graph` with only the targets and their ancestors (input leaves are kept)."""
    keep = upstream(graph, targets)
    keep |= {n for n, op in graph.nodes(data="op") if op in ("input", "param")}
    return graph.subgraph([n for n in graph.nodes if n in keep]).copy()
