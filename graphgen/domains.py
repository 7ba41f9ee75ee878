"""Input domains: where random test values for each input must come from.

`graphgen check` (and anyone who wants sample inputs for a generated module) needs more than
shapes and dtypes: class labels must lie in [0, C), the operand of `log` must be positive.
The domain of a leaf is read from the ops that use it directly, in the vocabulary of
`check.sample`: "real", "positive", "nonzero", "unit", "distinct", "bool", and "int:N",
integers in [0, N), where N is an int or a symbolic dim (bound when the dims are).

- An integer operand that indexes (labels, one-hot, embedding indices) gets "int:N" from
  the table below, N read from the graph (the class count of the logits, ...).
- A float operand gets the strictest domain that every registry test case of the op gives
  it (e.g. "positive" for log, "nonzero" for a divisor), so new ops need no entry here.
- Otherwise "real"; an integer leaf nothing indexes with gets "int:2", valid for any index.

Only direct uses count: `log(x - 3)` says nothing about x. It is a sampling aid, not proof.
"""

from __future__ import annotations

from typing import Callable

import networkx as nx

from .ir import spec
from .ops.registry import REGISTRY, TensorSpec
from .schedule import operands

# op -> (operand position, (operand specs, attrs) -> the index bound N of "int:N")
INDEX_OPERANDS: dict[str, tuple[int, Callable[[list[TensorSpec], dict], object]]] = {
    "softmax_cross_entropy": (1, lambda specs, attrs: specs[0].shape[-1]),
    "one_hot": (0, lambda specs, attrs: attrs["num_classes"]),
    "embedding": (0, lambda specs, attrs: specs[1].shape[0]),
    "nll_loss": (1, lambda specs, attrs: specs[0].shape[-1]),
}

# strictest first: a value in an earlier domain also lies in the later ones
_FLOAT_ORDER = ("unit", "positive", "nonzero", "distinct", "real")
DEFAULT_INT = "int:2"


def input_domains(graph: nx.MultiDiGraph) -> dict[str, str]:
    """Domain of every input and param leaf of a validated graph, in declaration order."""
    return {
        n: leaf_domain(graph, n) for n, op in graph.nodes(data="op") if op in ("input", "param")
    }


def leaf_domain(graph: nx.MultiDiGraph, leaf: str) -> str:
    dtype = graph.nodes[leaf]["dtype"]
    if dtype == "bool":
        return "bool"
    uses = [
        (user, i)
        for user in dict.fromkeys(graph.successors(leaf))
        for i, a in enumerate(operands(graph, user))
        if a == leaf
    ]
    if dtype == "int64":
        bounds = [b for b in (_index_bound(graph, u, i) for u, i in uses) if b is not None]
        ints = [b for b in bounds if isinstance(b, int)]
        if ints:
            return f"int:{min(ints)}"
        return f"int:{bounds[0]}" if bounds else DEFAULT_INT
    found = {_float_domain(graph.nodes[u]["op"], i) for u, i in uses}
    return next(d for d in _FLOAT_ORDER if d in found or d == "real")


def _index_bound(graph: nx.MultiDiGraph, user: str, i: int) -> object:
    entry = INDEX_OPERANDS.get(graph.nodes[user]["op"])
    if entry is None or entry[0] != i:
        return None
    specs = [spec(graph, a) for a in operands(graph, user)]
    bound = entry[1](specs, graph.nodes[user].get("attrs") or {})
    return bound if isinstance(bound, (int, str)) and bound != 0 else None


def _float_domain(op: str, i: int) -> str:
    """The domain every test case of `op` gives operand i, when they agree; else "real"."""
    opdef = REGISTRY.get(op)
    if opdef is None or not opdef.tests:
        return "real"
    seen = {case.domain(i) for case in opdef.tests if i < len(case.shapes)}
    if len(seen) == 1:
        (domain,) = seen
        if domain in _FLOAT_ORDER:
            return domain
    return "real"
