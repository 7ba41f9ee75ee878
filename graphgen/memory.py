"""Memory planning: which statements write into workspace buffers, and which buffers they share.

A generated function can be given a workspace (a dict it keeps between calls). Statements
whose op is a NumPy ufunc (or matmul) then write their result into a buffer of it with
`out=`, so a training loop stops allocating (and page-faulting) its large intermediates.

Liveness is computed on storage, not on names: a value that may be a view of a buffer
(a reshape, a transpose, or any op not known to give a fresh array) keeps that buffer
alive for as long as the value itself is alive. A buffer whose storage could reach a
returned value is not planned at all, so arrays handed to the caller are never written by
a later call. Buffers of equal shape and dtype whose lifetimes do not overlap share a slot:
forward intermediates become backward scratch once they are dead.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BufferPlan:
    """slot[node]: the workspace buffer each planned statement writes; `slots` in all.
    reuse[node]: the dead operand whose array a statement overwrites with its result."""

    slot: dict[str, int]
    slots: int
    reuse: dict[str, str] = field(default_factory=dict)


def plan_buffers(
    statements: list[str],
    reads: Callable[[str], Iterable[str]],
    candidates: set[str],
    fresh: set[str],
    returned: Iterable[str],
    key: Callable[[str], Hashable],
    reusable: Callable[[str], list[str]] | None = None,
) -> BufferPlan:
    """Assign workspace slots to the `candidates` among `statements` (in execution order).

    reads(node): the statement variables node's statement reads (leaves are ignored);
    fresh: the statements whose value is a new array (never a view of what they read);
    returned: the statements whose values the function returns; key(node): what must be
    equal for two buffers to share a slot (shape and dtype); reusable(node): operands of
    node (statements of its shape and dtype) that it could compute its result into.
    A statement overwrites such an operand when that is its last use and no other live
    value shares its memory: it then needs neither a new array nor a buffer.
    """
    index = {node: i for i, node in enumerate(statements)}
    uses = {node: [v for v in reads(node) if v in index] for node in statements}
    returned = list(returned)
    last_read = _last_reads(statements, index, uses)
    reuse = _dead_operands(
        statements, index, uses, last_read, candidates, fresh, returned, reusable
    )
    planned = set(candidates) - set(reuse)
    while True:
        storage = _storage(statements, uses, planned, fresh, reuse)
        escaping = set().union(*(storage[t] for t in returned if t in storage))
        if not planned & escaping:
            break
        planned -= escaping
    end = {b: index[b] for b in planned}  # a buffer lives while any value aliasing it does
    for node in statements:
        for b in storage[node] & planned:
            end[b] = max(end[b], last_read[node])
    plan = _assign_slots([n for n in statements if n in planned], index, end, key)
    return BufferPlan(plan.slot, plan.slots, reuse)


def _dead_operands(statements, index, uses, last_read, candidates, fresh, returned, reusable):
    """node -> the operand it overwrites: read last by node (so by no other statement),
    owning its memory (a fresh array or a planned buffer) and shared with no value still
    live after node."""
    if reusable is None:
        return {}
    owners = set(candidates) | set(fresh)
    returned_set = set(returned)
    storage = _storage(statements, uses, set(candidates), fresh, {})
    sharers: dict[str, list[str]] = {}  # storage -> the values that may live in it
    for m in statements:
        for b in storage[m]:
            sharers.setdefault(b, []).append(m)
    reuse: dict[str, str] = {}
    for node in statements:
        for v in reusable(node):
            if v in returned_set or v not in owners or last_read[v] != index[node]:
                continue
            others = [
                m
                for b in storage[v]
                for m in sharers[b]
                if m not in (v, node) and last_read[m] >= index[node]
            ]
            if not others:
                reuse[node] = v
                break
    return reuse


def _last_reads(statements, index, uses) -> dict[str, int]:
    last = {node: index[node] for node in statements}
    for node in statements:
        for v in uses[node]:
            last[v] = max(last[v], index[node])
    return last


def _storage(statements, uses, planned, fresh, reuse) -> dict[str, set[str]]:
    """The planned buffers (and fresh arrays) each statement's value may share memory with."""
    storage: dict[str, set[str]] = {}
    for node in statements:
        if node in reuse:
            storage[node] = storage[reuse[node]]
        elif node in planned:
            storage[node] = {node}
        elif node in fresh:
            storage[node] = {node}
        else:  # it may be a view of anything it reads
            storage[node] = set().union(*(storage[v] for v in uses[node]))
    return storage


def _assign_slots(planned, index, end, key) -> BufferPlan:
    """Each planned node's slot: the lowest free slot of its key, freed by buffers whose
    last use came before the node, else a new one. Heaps keep this O(n log n) in the
    number of statements (a deep network keeps a thousand activations live)."""
    slot: dict[str, int] = {}
    free: dict[Hashable, list[int]] = {}  # key -> a heap of free slots
    live: list[tuple[int, int, str]] = []  # a heap of (end, order, node)
    count = 0
    for order, node in enumerate(planned):
        while live and live[0][0] < index[node]:
            b = heapq.heappop(live)[2]
            heapq.heappush(free.setdefault(key(b), []), slot[b])
        spare = free.get(key(node))
        if spare:
            slot[node] = heapq.heappop(spare)
        else:
            slot[node] = count
            count += 1
        heapq.heappush(live, (end[node], order, node))
    return BufferPlan(slot, count)
