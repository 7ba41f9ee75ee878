"""Common-subexpression elimination over the reverse part of the joint graph.

VJP rules are written independently, so two rules (or one rule and the forward pass) can
build the same value twice, e.g. the same reshape of a cotangent. A reverse node equal to
an earlier node (same op, attrs, operands in order, shape and dtype) is replaced by it.
Forward nodes are left alone: their names are the user's.
"""

from __future__ import annotations

import networkx as nx

from ..schedule import operands, topological_order
from .simplify import redirect


def eliminate_common_subexpressions(graph: nx.MultiDiGraph, targets: list[str]) -> list[str]:
    """Rewrite `graph` in place; returns `targets` with merged nodes substituted."""
    seen: dict[tuple, str] = {}
    replaced: dict[str, str] = {}
    for node in topological_order(graph):
        data = graph.nodes[node]
        if data["op"] in ("input", "param"):
            continue
        key = (
            data["op"],
            repr(sorted((data.get("attrs") or {}).items())),
            tuple(operands(graph, node)),
            tuple(data["shape"]),
            data["dtype"],
        )
        first = seen.setdefault(key, node)
        if first != node and data.get("role") == "backward":
            redirect(graph, node, first)
            replaced[node] = first
    out = []
    for t in targets:
        while t in replaced:
            t = replaced[t]
        out.append(t)
    return out
