"""Dead-code elimination: keep only what the targets need."""

from __future__ import annotations

import networkx as nx


def _reach(step, roots) -> set[str]:
    seen = set(roots)
    stack = list(seen)
    while stack:
        for nxt in step(stack.pop()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def upstream(graph: nx.MultiDiGraph, roots) -> set[str]:
    """`roots` and every node they depend on (one traversal for all roots)."""
    return _reach(graph.predecessors, roots)


def downstream(graph: nx.MultiDiGraph, roots) -> set[str]:
    """`roots` and every node that depends on them."""
    return _reach(graph.successors, roots)


def prune(graph: nx.MultiDiGraph, targets: list[str]) -> nx.MultiDiGraph:
    """A copy of `graph` with only the targets and their ancestors (input leaves are kept)."""
    keep = upstream(graph, targets)
    keep |= {n for n, op in graph.nodes(data="op") if op in ("input", "param")}
    return graph.subgraph([n for n in graph.nodes if n in keep]).copy()
