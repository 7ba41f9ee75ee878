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

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class BufferPlan:
    """slot[node]: the workspace buffer each planned statement writes; `slots` in all."""

    slot: dict[str, int]
    slots: int


def plan_buffers(
    statements: list[str],
    reads: Callable[[str], Iterable[str]],
    candidates: set[str],
    fresh: set[str],
    returned: Iterable[str],
    key: Callable[[str], Hashable],
) -> BufferPlan:
    """Assign workspace slots to the `candidates` among `statements` (in execution order).

    reads(node): the statement variables node's statement reads (leaves are ignored);
    fresh: the statements whose value is a new array (never a view of what they read);
    returned: the statements whose values the function returns; key(node): what must be
    equal for two buffers to share a slot (shape and dtype).
    """
    index = {node: i for i, node in enumerate(statements)}
    uses = {node: [v for v in reads(node) if v in index] for node in statements}
    planned = set(candidates)
    while True:
        storage = _storage(statements, uses, planned, fresh)
        escaping = set().union(*(storage[t] for t in returned if t in storage))
        if not planned & escaping:
            break
        planned -= escaping
    last_read = {node: index[node] for node in statements}
    for node in statements:
        for v in uses[node]:
            last_read[v] = max(last_read[v], index[node])
    end = {b: index[b] for b in planned}  # a buffer lives while any value aliasing it does
    for node in statements:
        for b in storage[node]:
            end[b] = max(end[b], last_read[node])
    return _assign_slots([n for n in statements if n in planned], index, end, key)


def _storage(statements, uses, planned, fresh) -> dict[str, set[str]]:
    """The planned buffers each statement's value may share memory with."""
    storage: dict[str, set[str]] = {}
    for node in statements:
        if node in planned:
            storage[node] = {node}
        elif node in fresh:
            storage[node] = set()
        else:  # it may be a view of anything it reads
            storage[node] = set().union(*(storage[v] for v in uses[node]))
    return storage


def _assign_slots(planned, index, end, key) -> BufferPlan:
    slot: dict[str, int] = {}
    free: dict[Hashable, list[int]] = {}
    live: list[str] = []
    count = 0
    for node in planned:
        for b in [b for b in live if end[b] < index[node]]:
            live.remove(b)
            free.setdefault(key(b), []).append(slot[b])
        spare = free.get(key(node))
        if spare:
            spare.sort()
            slot[node] = spare.pop(0)
        else:
            slot[node] = count
            count += 1
        live.append(node)
    return BufferPlan(slot, count)
