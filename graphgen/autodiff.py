"""Reverse-mode autodiff: attach each node's VJP rule and build the reverse graph.

The result is one joint graph: the forward nodes plus the reverse nodes that the rules
build with ordinary ops. Three things are handled here once, never inside the rules:
- activity: only float nodes on a path from a `wrt` leaf to the differentiated output get
  cotangents, so no gradient code is made for data inputs or integer paths;
- broadcasting: a rule's cotangent may have the output's broadcast shape; `unbroadcast`
  sums it over the broadcast axes (decided now, from shapes) and reshapes it;
- fan-out: the cotangents of a node used k times are summed.
Reverse nodes carry `role="backward"`, the forward node they came from (`vjp_of`), the
rule's op (`rule`) and, for a cotangent, the operand position (`cot_arg`), which codegen
turns into comments. The total cotangent of a forward node carries `grad_of`.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from .builder import Graph, Tensor
from .errors import GraphError, WrtError
from .ir import spec
from .ops import functions as F
from .ops.registry import get_op
from .passes.dce import downstream, upstream
from .passes.fuse import fuse_shared_matmuls
from .passes.lower import lower_for_autodiff, unique_name
from .passes.reorder import pool_before_relu
from .schedule import operand_slots, operands, topological_order

COTANGENT_INPUT = "cotangent"


@dataclass
class Joint:
    """A joint forward+reverse graph and where its gradients are."""

    graph: nx.MultiDiGraph
    grads: dict[str, str]  # wrt leaf -> node holding its gradient
    seed: str  # the node holding the output's cotangent


def default_wrt(graph: nx.MultiDiGraph) -> list[str]:
    """All params, in declaration order."""
    return [n for n, op in graph.nodes(data="op") if op == "param"]


def check_wrt(graph: nx.MultiDiGraph, wrt: list[str] | None) -> list[str]:
    """`wrt` as a list of float leaves (default: all params); WrtError otherwise."""
    if wrt is None:
        return default_wrt(graph)
    if isinstance(wrt, str):
        wrt = [w for w in wrt.split(",") if w]
    names = list(dict.fromkeys(wrt))
    for name in names:
        if name not in graph:
            raise WrtError(f"wrt name {name!r} is not a node of graph {graph.graph['name']!r}")
        data = graph.nodes[name]
        if data["op"] not in ("input", "param"):
            raise WrtError(f"wrt name {name!r} is a {data['op']} node, not an input or param leaf")
        if data["dtype"] not in ("float32", "float64"):
            raise WrtError(
                f"wrt name {name!r} has dtype {data['dtype']}: only float leaves have gradients"
            )
    return names


def check_differentiable(forward: nx.MultiDiGraph, wrt: list[str] | None) -> list[str]:
    """`wrt` checked as by check_wrt, and non-empty with a float first output."""
    wrt = check_wrt(forward, wrt)
    out = forward.graph["outputs"][0]
    if not wrt:
        raise GraphError(
            f"graph {forward.graph['name']!r}: nothing to differentiate (wrt is empty)"
        )
    if not spec(forward, out).is_float:
        raise GraphError(f"output {out!r} has dtype {spec(forward, out).dtype}: no backward pass")
    return wrt


def build_joint(forward: nx.MultiDiGraph, wrt: list[str], seed_input: bool = False) -> Joint:
    """The joint graph for the gradient of `<seed, outputs[0]>` with respect to `wrt`.

    seed_input False: the output must be a scalar and the seed is ones_like(output).
    seed_input True: the seed is a new input leaf `cotangent` of the output's shape (vjp).
    """
    forward = lower_for_autodiff(forward)  # gelu as x * Phi(x), ...: see passes/lower.py
    forward = pool_before_relu(forward)  # relu on the pooled array: see passes/reorder.py
    forward = fuse_shared_matmuls(forward)  # x @ Wq, x @ Wk, ... as one GEMM: passes/fuse.py
    joint = forward.copy()
    b = Graph(nx_graph=joint)
    out = forward.graph["outputs"][0]
    out_spec = spec(forward, out)
    if not out_spec.is_float:
        raise GraphError(
            f"output {out!r} has dtype {out_spec.dtype}: only a float output can be differentiated"
        )
    with b.tagged(role="backward", rule="seed", vjp_of=out):
        if seed_input:
            seed = b.input(unique_name(joint, COTANGENT_INPUT), out_spec.shape, out_spec.dtype)
        else:
            if out_spec.shape != ():
                raise GraphError(
                    f"output {out!r} has shape {out_spec.shape}: "
                    "value_and_grad needs a scalar; use vjp"
                )
            # ones_like, not the literal 1.0: the gradients take the dtype of the value at
            # run time (float32 in, float32 out), even where a rule makes an array of g alone
            seed = F.ones_like(b.tensor(out))
    active = _active_nodes(forward, wrt, out)
    cotangents: dict[str, list[Tensor]] = {out: [seed]} if out in active else {}
    totals: dict[str, Tensor] = {}
    for node in reversed(topological_order(forward)):
        if node not in cotangents:
            continue
        total = _accumulate(b, node, cotangents.pop(node))
        totals[node] = total
        _propagate(b, forward, node, total, active, cotangents)
    grads = {}
    for w in wrt:
        if w in totals:
            grads[w] = totals[w].id
        else:  # the output does not depend on w
            with b.tagged(role="backward", rule="zero", vjp_of=w, grad_of=w):
                grads[w] = F.zeros_like(b.tensor(w)).id
    return Joint(joint, grads, seed.id)


def _active_nodes(graph: nx.MultiDiGraph, wrt: list[str], out: str) -> set[str]:
    """Float nodes on a float path from a wrt leaf to `out`."""
    floats = graph.subgraph(n for n, d in graph.nodes(data="dtype") if d in ("float32", "float64"))
    if out not in floats:
        return set()
    return downstream(floats, wrt) & upstream(floats, [out])


def _accumulate(b: Graph, node: str, parts: list[Tensor]) -> Tensor:
    """The sum of a node's cotangents (fan-out), marked as the node's total cotangent."""
    total = parts[0]
    if len(parts) > 1:
        with b.tagged(role="backward", rule="blocks", vjp_of=node):
            joined = _joined_blocks(b, parts)
        if joined is not None:
            total = joined
        else:
            with b.tagged(role="backward", rule="fan-out", vjp_of=node):
                for p in parts[1:]:
                    total = total + p
    data = b.nx.nodes[total.id]
    data.setdefault("grad_of", node)
    return total


def _joined_blocks(b: Graph, parts: list[Tensor]) -> Tensor | None:
    """The parts as one concatenate, when each is a cotangent scattered into zeros at a
    block of the last axis (slice_scatter) and the blocks tile that axis: the column
    blocks of a fused product (passes/fuse.py). One copy instead of zeros, scatters and a
    sum; None otherwise."""
    blocks = []
    for p in parts:
        data = b.nx.nodes[p.id]
        if data["op"] != "slice_scatter":
            return None
        size = data["attrs"]["shape"][-1]
        span = _last_axis_span(data["attrs"]["index"], size)
        if span is None or data["attrs"]["shape"] != b.nx.nodes[parts[0].id]["attrs"]["shape"]:
            return None
        blocks.append((span, p))
    blocks.sort(key=lambda block: block[0])
    ends = [0] + [stop for (_, stop), _ in blocks]
    if [start for (start, _), _ in blocks] != ends[:-1] or ends[-1] != size:
        return None
    return F.concatenate([b.tensor(operands(b.nx, p.id)[0]) for _, p in blocks], axis=-1)


def _last_axis_span(index: tuple, size) -> tuple[int, int] | None:
    """(start, stop) of an index `[..., start:stop]` on an axis of static `size`, else None."""
    if not isinstance(size, int) or len(index) != 2 or index[0] != "...":
        return None
    item = index[1]
    if not isinstance(item, (list, tuple)) or item[0] != "slice" or item[3] not in (None, 1):
        return None
    start, stop = item[1] or 0, size if item[2] is None else item[2]
    if not 0 <= start < stop <= size:
        return None
    return start, stop


def _propagate(
    b: Graph, forward: nx.MultiDiGraph, node: str, g: Tensor, active: set[str], cotangents
) -> None:
    """Apply `node`'s VJP rule to its total cotangent `g`; add the results to its operands."""
    data = forward.nodes[node]
    op = get_op(data["op"])
    args = operand_slots(forward, node, len(op.operands))  # None: an absent optional operand
    if op.vjp is None or not any(a in active for a in args):
        return
    handles = [None if a is None else b.tensor(a) for a in args]
    with b.tagged(role="backward", rule=op.name, vjp_of=node):
        outs = op.vjp(g, b.tensor(node), handles, data["attrs"])
    if len(outs) != len(args):
        raise GraphError(
            f"the VJP rule of {op.name} returned {len(outs)} cotangents for {len(args)} operands"
        )
    for i, (arg, cot) in enumerate(zip(args, outs)):
        if cot is None or arg not in active:
            continue
        with b.tagged(role="backward", rule=op.name, vjp_of=node, cot_arg=i, unbroadcast=True):
            cot = unbroadcast(cot, spec(forward, arg).shape)
        _tag_cotangent(b, cot, node, i)
        cotangents.setdefault(arg, []).append(cot)


def _tag_cotangent(b: Graph, cot: Tensor, node: str, i: int) -> None:
    data = b.nx.nodes[cot.id]
    if data.get("vjp_of") == node:
        data.setdefault("cot_arg", i)


def _compatible(a: tuple, b: tuple) -> bool:
    """Equal shapes, up to a symbolic dim meeting an int; a symbolic dim meeting a 1 was
    broadcast (symbolic dims never broadcast as 1)."""
    return len(a) == len(b) and all(
        x == y or (isinstance(x, str) != isinstance(y, str) and 1 not in (x, y))
        for x, y in zip(a, b)
    )


def unbroadcast(t: Tensor, shape: tuple) -> Tensor:
    """`t` summed over the axes along which an operand of `shape` was broadcast.

    Decided at compile time from the shapes; nothing is emitted when they already match.
    """
    shape = tuple(shape)
    if _compatible(tuple(t.shape), shape):
        return t
    lead = t.ndim - len(shape)
    if lead < 0:
        raise GraphError(f"cannot unbroadcast a cotangent of shape {t.shape} to {shape}")
    axes = list(range(lead)) + [
        lead + i for i, d in enumerate(shape) if d == 1 and t.shape[lead + i] != 1
    ]
    if axes:
        t = F.sum(t, axis=tuple(axes), keepdims=lead == 0)
    if not _compatible(tuple(t.shape), shape):
        t = F.reshape(t, shape)
    return t
