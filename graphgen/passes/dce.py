"""Dead-code elimination: keep only what the targets need."""

from __future__ import annotations

import networkx as nx


def prune(graph: nx.MultiDiGraph, targets: list[str]) -> nx.MultiDiGraph:
    """A copy of `graph` with only the targets and their ancestors (input leaves are kept)."""
    keep = set(targets)
    for t in targets:
        keep |= nx.ancestors(graph, t)
    keep |= {n for n, op in graph.nodes(data="op") if op in ("input", "param")}
    return graph.subgraph([n for n in graph.nodes if n in keep]).copy()
