"""Hypothesis strategies: random valid graphs drawn from the op registry.

`fuzz_cases()` draws a `FuzzCase`: a gg.Graph built op by op from a pool of tensors, the
inputs to call it with, and `wrt`. Each op is drawn through one entry of `OP_TABLE`
(op name -> how to pick its operands and attrs, and the range of its values); an op that
the registry does not have is simply not drawn, and a registry op without an entry is not
drawn either (tests/test_fuzz.py lists those). To fuzz a new op, add one entry.

Every tensor in the pool carries a conservative interval [lo, hi] of its values, computed
with the op's entry from its operands' intervals (interval arithmetic). Entries use it to
stay in their op's domain (log and sqrt of values >= 0.2, division by |x| >= 0.2, exp of
values <= 3) and the drawing rejects values beyond +-BOUND, so that float64 finite
differences stay accurate on every graph.

Shapes: a few static dims (1 to 4) and, in some graphs, one symbolic dim "n" whose run-time
size is drawn too. The fuzzer broadcasts only equal dims or 1s (a symbolic dim never meets a
static one), so every drawn graph is valid at run time as well as at compile time. Fan-out
and shared params come from reusing pool values and leaves; graphs are float64 or float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import strategies as st

import graphgen as gg
from graphgen.ir import format_graph, validate
from graphgen.ops import REGISTRY

BOUND = 50.0  # no drawn value leaves [-BOUND, BOUND]
SAFE = 0.2  # log, sqrt, 1/x and x**y are drawn only on values at least this far from 0
MAX_RANK = 3
SYMBOLIC = "n"


@dataclass
class Value:
    """A pool entry: a graph tensor and a conservative interval of its values."""

    t: gg.Tensor
    lo: float
    hi: float

    @property
    def kind(self) -> str:
        return {"float32": "float", "float64": "float"}.get(self.t.dtype, self.t.dtype)


@dataclass
class FuzzCase:
    """A drawn graph, the inputs to call it with (by name), and the wrt list."""

    graph: gg.Graph
    inputs: dict[str, np.ndarray]
    wrt: list[str]
    dims: dict[str, int]
    float_dtype: str

    def describe(self) -> str:
        """The graph one node a line, wrt and run-time dims: what a failure report shows."""
        lines = format_graph(validate(self.graph)).splitlines()
        return "\n".join(["graph:", *lines, f"wrt={self.wrt} dims={self.dims}"])


class Builder:
    """The state of one drawing: graph, pool, leaves, input values and run-time dims."""

    def __init__(self, draw, float_dtype: str, symbolic: bool):
        self.draw = draw
        self.dtype = float_dtype
        self.g = gg.Graph("fuzz")
        self.pool: list[Value] = []
        self.inputs: dict[str, np.ndarray] = {}
        seed = draw(st.integers(0, 2**32 - 1), label="seed")
        self.rng = np.random.default_rng(seed)  # input values
        # op choices: uniform over the table (hypothesis favours the first entries of a
        # sampled_from); shrinking the number of ops still truncates the same sequence
        self.op_rng = np.random.default_rng(seed + 1)
        self.dims = {SYMBOLIC: draw(st.integers(2, 4), label="n")} if symbolic else {}
        self.symbolic = symbolic

    # ---- shapes ----------------------------------------------------------------------
    def size(self, d) -> int:
        return d if isinstance(d, int) else self.dims[d]

    def runtime_shape(self, shape) -> tuple[int, ...]:
        return tuple(self.size(d) for d in shape)

    def count(self, shape) -> int:
        return int(np.prod(self.runtime_shape(shape), dtype=np.int64))

    def dim(self, leaf: bool = True):
        """A dim for a leaf's shape, or (leaf=False) for an op's shape attr: a symbolic dim
        there must be a dim of some leaf already, or its size is unknown at run time."""
        symbolic = self.symbolic and (leaf or self.bound(SYMBOLIC))
        choices = [1, 2, 3, 4] + ([SYMBOLIC] * 2 if symbolic else [])
        return self.draw(st.sampled_from(choices))

    def bound(self, dim: str) -> bool:
        return any(dim in v.t.shape for v in self.pool if v.t.op in ("input", "param"))

    def shape(self, min_rank: int = 0):
        rank = self.draw(st.integers(min_rank, MAX_RANK))
        return tuple(self.dim() for _ in range(rank))

    def compatible_shape(self, shape):
        """A shape that broadcasts with `shape`: a suffix of it with some dims set to 1."""
        keep = self.draw(st.integers(0, len(shape)))
        tail = shape[len(shape) - keep :]
        return tuple(1 if self.draw(st.booleans()) else d for d in tail)

    # ---- leaves ------------------------------------------------------------------------
    def leaf(self, shape, domain: str = "real", kind: str = "param") -> Value:
        """A new float leaf (param or input), or an existing one of that shape (shared)."""
        shared = [
            v
            for v in self.pool
            if v.t.op in ("param", "input")
            and v.kind == "float"
            and v.t.shape == tuple(shape)
            and (domain == "real" or v.lo >= SAFE)
        ]
        if shared and self.draw(st.integers(0, 3)) == 0:
            return self.draw(st.sampled_from(shared))
        name = f"{'w' if kind == 'param' else 'x'}{len(self.inputs)}"
        make = self.g.param if kind == "param" else self.g.input
        t = make(name, shape, self.dtype)
        lo, hi = (0.5, 2.0) if domain == "positive" else (-1.5, 1.5)
        self.inputs[name] = self.rng.uniform(lo, hi, self.runtime_shape(shape)).astype(self.dtype)
        return self.add(t, lo, hi)

    def int_leaf(self, shape, classes: int) -> Value:
        name = f"k{len(self.inputs)}"
        t = self.g.input(name, shape, "int64")
        self.inputs[name] = self.rng.integers(0, classes, self.runtime_shape(shape))
        return self.add(t, 0, classes - 1)

    def bool_leaf(self, shape) -> Value:
        name = f"m{len(self.inputs)}"
        t = self.g.input(name, shape, "bool")
        self.inputs[name] = self.rng.random(self.runtime_shape(shape)) < 0.5
        return self.add(t, 0, 1)

    # ---- the pool ----------------------------------------------------------------------
    def add(self, t: gg.Tensor, lo: float, hi: float) -> Value:
        v = Value(t, float(lo), float(hi))
        self.pool.append(v)
        return v

    def pick(self, kind: str = "float", ok: Callable[[Value], bool] = lambda v: True):
        """A pool value of `kind` satisfying `ok`, preferring recent ones; None if none."""
        found = [v for v in self.pool if v.kind == kind and ok(v)]
        if not found:
            return None
        # recent values first, so graphs grow deep rather than wide
        index = self.draw(st.integers(0, len(found) - 1).map(lambda i: len(found) - 1 - i))
        return found[index]

    def partner(self, a: Value, *others: Value) -> Value | float:
        """A second operand for an elementwise op on `a` (and `others`): a scalar, a pool
        value or a leaf (positive, so that it can be a divisor or a base)."""
        how = self.draw(st.sampled_from(["scalar", "pool", "leaf"]))
        if how == "scalar":
            return self.draw(st.sampled_from([0.5, 2.0, -1.5, 3.0]))
        shapes = [a.t.shape] + [o.t.shape for o in others]
        if how == "pool":
            b = self.pick("float", lambda v: broadcastable(v.t.shape, *shapes))
            if b is not None:
                return b
        return self.leaf(self.compatible_shape(a.t.shape), "positive")


def broadcastable(*shapes) -> bool:
    """NumPy broadcasting restricted to equal dims or 1s (never a symbolic dim vs an int)."""
    for i, a in enumerate(shapes):
        for b in shapes[i + 1 :]:
            if not all(x == y or x == 1 or y == 1 for x, y in zip(reversed(a), reversed(b))):
                return False
    return True


def bounds(v: Value | float) -> tuple[float, float]:
    return (v, v) if isinstance(v, float) else (v.lo, v.hi)


def operand(v: Value | float):
    return v if isinstance(v, float) else v.t


def corners(f, a, b) -> tuple[float, float]:
    """The range of f over the box a x b, for f monotone in each argument."""
    vals = [f(x, y) for x in a for y in b]
    return min(vals), max(vals)


def in_range(lo: float, hi: float) -> bool:
    return math.isfinite(lo) and math.isfinite(hi) and -BOUND <= lo <= hi <= BOUND


# ---- the op table ----------------------------------------------------------------------
# name -> (number of operands, maker). A maker draws operands and attrs for its op from
# the builder, applies the op, and returns (tensor, lo, hi), or None when it cannot apply.


def unary(f: Callable[[float, float], tuple[float, float]], ok=lambda v: True):
    def make(b: Builder, name: str):
        a = b.pick("float", ok)
        if a is None:
            return None
        return getattr(gg, name)(a.t), *f(a.lo, a.hi)

    return make


def monotone(fn):
    return lambda lo, hi: tuple(sorted((fn(lo), fn(hi))))


def _square(lo, hi):
    top = max(lo * lo, hi * hi)
    return (0.0 if lo <= 0 <= hi else min(lo * lo, hi * hi)), top


def _positive(v: Value) -> bool:
    return v.lo >= SAFE


def binary(f):
    """f: the operands' intervals -> the result's; (inf, inf) outside the op's domain."""

    def make(b: Builder, name: str):
        a = b.pick("float")
        if a is None:
            return None
        other = b.partner(a)
        first, second = (a, other) if b.draw(st.booleans()) else (other, a)
        lo, hi = f(bounds(first), bounds(second))
        return getattr(gg, name)(operand(first), operand(second)), lo, hi

    return make


def _power(a, b):
    if a[0] < SAFE or max(abs(b[0]), abs(b[1])) > 2:
        return math.inf, math.inf
    return corners(lambda x, y: x**y, a, b)


def _divide(a, b):
    if b[0] < SAFE and b[1] > -SAFE:
        return math.inf, math.inf
    return corners(lambda x, y: x / y, a, b)


def _reduction(b: Builder, name: str):
    a = b.pick("float")
    if a is None:
        return None
    axis, keepdims = draw_axes(b, a.t.ndim)
    axes = range(a.t.ndim) if axis is None else [x % a.t.ndim for x in np.atleast_1d(axis)]
    n = max(1, int(np.prod([b.size(a.t.shape[i]) for i in axes])))
    lo, hi = (a.lo * n, a.hi * n) if name == "sum" else (a.lo, a.hi)
    return getattr(gg, name)(a.t, axis=axis, keepdims=keepdims), lo, hi


def draw_axes(b: Builder, ndim: int):
    if ndim == 0 or b.draw(st.integers(0, 3)) == 0:
        return None, b.draw(st.booleans())
    axes = b.draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    axes = [x - ndim if b.draw(st.booleans()) else x for x in axes]
    return (axes[0] if len(axes) == 1 else tuple(axes)), b.draw(st.booleans())


def _matmul(b: Builder, name: str):
    a = b.pick("float", lambda v: v.t.ndim >= 1)
    if a is None:
        return None
    k = a.t.shape[-1]
    if b.draw(st.booleans()):
        other = b.pick(
            "float", lambda v: v.t.ndim >= 1 and v.t.shape[-2 if v.t.ndim > 1 else 0] == k
        )
    else:
        other = None
    if other is None:
        shape = (k,) if b.draw(st.booleans()) else (k, b.dim())
        other = b.leaf(shape)
    if not broadcastable(a.t.shape[:-2], other.t.shape[:-2]):
        return None
    out = a.t @ other.t
    m = max(abs(a.lo), abs(a.hi)) * max(abs(other.lo), abs(other.hi)) * b.size(k)
    return out, -m, m


def _reshape(b: Builder, name: str):
    a = b.pick("float")
    if a is None:
        return None
    symbolic = [d for d in a.t.shape if isinstance(d, str)]
    static = int(np.prod([d for d in a.t.shape if isinstance(d, int)]))
    factors = []
    rest = static
    for _ in range(b.draw(st.integers(0, 2))):
        f = b.draw(st.sampled_from([f for f in range(1, rest + 1) if rest % f == 0]))
        factors.append(f)
        rest //= f
    factors.append(rest)
    target = symbolic + b.draw(st.permutations(factors))
    if len(target) > MAX_RANK + 1:
        return None
    if b.draw(st.booleans()) and len(symbolic) <= 1:
        # -1 stands for the one symbolic dim, or for any static factor when there is none
        target[0 if symbolic else b.draw(st.integers(0, len(target) - 1))] = -1
    return gg.reshape(a.t, tuple(target)), a.lo, a.hi


def _transpose(b: Builder, name: str):
    a = b.pick("float", lambda v: v.t.ndim >= 2)
    if a is None:
        return None
    if b.draw(st.booleans()):
        return gg.transpose(a.t), a.lo, a.hi
    axes = b.draw(st.permutations(range(a.t.ndim)))
    return gg.transpose(a.t, tuple(axes)), a.lo, a.hi


def _broadcast_to(b: Builder, name: str):
    a = b.pick("float", lambda v: v.t.ndim < MAX_RANK)
    if a is None:
        return None
    lead = tuple(b.dim(False) for _ in range(b.draw(st.integers(0, MAX_RANK - a.t.ndim))))
    body = tuple(b.dim(False) if d == 1 and b.draw(st.booleans()) else d for d in a.t.shape)
    return gg.broadcast_to(a.t, lead + body), a.lo, a.hi


def _softmax(b: Builder, name: str):
    a = b.pick("float", lambda v: v.t.ndim >= 1)
    if a is None:
        return None
    axis = b.draw(st.integers(-a.t.ndim, a.t.ndim - 1))
    if name == "softmax":
        return gg.softmax(a.t, axis=axis), 0.0, 1.0
    n = b.size(a.t.shape[axis])
    return gg.log_softmax(a.t, axis=axis), -(a.hi - a.lo) - math.log(n), 0.0


def _cross_entropy(b: Builder, name: str):
    a = b.pick("float", lambda v: v.t.ndim >= 1)
    if a is None:
        return None
    classes = b.size(a.t.shape[-1])
    labels = b.int_leaf(a.t.shape[:-1], classes)
    reduction = b.draw(st.sampled_from(["mean", "sum", "none"]))
    n = b.count(a.t.shape[:-1]) if reduction == "sum" else 1
    top = ((a.hi - a.lo) + math.log(classes)) * n
    return gg.softmax_cross_entropy(a.t, labels.t, reduction=reduction), 0.0, top


def _mse(b: Builder, name: str):
    a = b.pick("float")
    if a is None:
        return None
    other = b.partner(a)
    if isinstance(other, float):
        other = b.leaf(b.compatible_shape(a.t.shape))
    reduction = b.draw(st.sampled_from(["mean", "sum", "none"]))
    d = max(abs(a.hi - other.lo), abs(other.hi - a.lo))
    shape = np.broadcast_shapes(b.runtime_shape(a.t.shape), b.runtime_shape(other.t.shape))
    n = int(np.prod(shape)) if reduction == "sum" else 1
    return gg.mse_loss(a.t, other.t, reduction=reduction), 0.0, d * d * n


def _compare(b: Builder, name: str):
    a = b.pick("float")
    if a is None:
        return None
    other = b.partner(a)
    return getattr(gg, name)(a.t, operand(other)), 0, 1


def _where(b: Builder, name: str):
    a = b.pick("float")
    if a is None:
        return None
    cond = b.pick("bool", lambda v: broadcastable(v.t.shape, a.t.shape))
    if cond is None:
        cond = b.bool_leaf(b.compatible_shape(a.t.shape))
    other = b.partner(a, cond)
    first, second = (a, other) if b.draw(st.booleans()) else (other, a)
    lo = min(bounds(first)[0], bounds(second)[0])
    hi = max(bounds(first)[1], bounds(second)[1])
    return gg.where(cond.t, operand(first), operand(second)), lo, hi


def _one_hot(b: Builder, name: str):
    labels = b.pick("int64", lambda v: v.t.ndim < MAX_RANK and v.lo >= 0)
    if labels is None:
        labels = b.int_leaf(b.shape()[: MAX_RANK - 1], 3)
    classes = int(labels.hi) + 1 + b.draw(st.integers(0, 1))
    return gg.one_hot(labels.t, classes), 0, 1


def _astype(b: Builder, name: str):
    """Casts that keep finite differences exact: bool/int -> float, float -> int64."""
    a = b.pick("bool") or b.pick("int64")
    if a is not None and b.draw(st.booleans()):
        return gg.astype(a.t, b.dtype), a.lo, a.hi
    a = b.pick("float")
    if a is None:
        return None
    return gg.astype(a.t, "int64"), math.floor(a.lo), math.floor(a.hi)


def _like(b: Builder, name: str):
    a = b.pick("float")
    if a is None:
        return None
    value = 1.0 if name == "ones_like" else 0.0
    return getattr(gg, name)(a.t), value, value


def _scale_by_size(b: Builder, name: str):
    """t / size(t, axis): `size` is an int scalar, used the way the VJP rules use it."""
    a = b.pick("float")
    if a is None:
        return None
    axis, _ = draw_axes(b, a.t.ndim)
    return a.t / gg.size(a.t, axis=axis), min(a.lo, 0), max(a.hi, 0)


def _const(b: Builder, name: str):
    """A non-scalar constant combined with a pool value."""
    a = b.pick("float", lambda v: 1 <= v.t.ndim and all(isinstance(d, int) for d in v.t.shape))
    if a is None:
        return None
    shape = b.compatible_shape(a.t.shape)
    value = np.round(b.rng.uniform(-1, 1, shape), 2).tolist()
    c = b.g.const(value, dtype=b.dtype)
    lo, hi = corners(lambda x, y: x * y, (a.lo, a.hi), (-1.0, 1.0))
    return a.t * c, lo, hi


OP_TABLE: dict[str, tuple[int, Callable]] = {
    # elementwise unary
    "negative": (1, unary(lambda lo, hi: (-hi, -lo))),
    "exp": (1, unary(monotone(math.exp), lambda v: v.hi <= 3)),
    "log": (1, unary(monotone(math.log), _positive)),
    "sqrt": (1, unary(monotone(math.sqrt), _positive)),
    "square": (1, unary(_square)),
    "tanh": (1, unary(monotone(math.tanh))),
    "sigmoid": (1, unary(monotone(lambda x: 1 / (1 + math.exp(-x))))),
    "relu": (1, unary(lambda lo, hi: (max(lo, 0.0), max(hi, 0.0)))),
    "abs": (1, unary(lambda lo, hi: (0.0, max(abs(lo), abs(hi))))),
    "sin": (1, unary(lambda lo, hi: (-1.0, 1.0))),
    "cos": (1, unary(lambda lo, hi: (-1.0, 1.0))),
    "log1p": (1, unary(monotone(math.log1p), lambda v: v.lo >= SAFE - 1.0)),
    "expm1": (1, unary(monotone(math.expm1), lambda v: v.hi <= 3)),
    "reciprocal": (1, unary(monotone(lambda x: 1.0 / x), _positive)),
    "softplus": (
        1,
        unary(monotone(lambda x: math.log1p(math.exp(min(x, 30.0))) + max(x - 30.0, 0))),
    ),
    "erf": (1, unary(monotone(math.erf))),
    "erfc": (1, unary(monotone(math.erfc))),
    "elu": (1, unary(monotone(lambda x: x if x > 0 else math.expm1(x)))),
    "leaky_relu": (1, unary(monotone(lambda x: x if x > 0 else 0.01 * x))),
    "gelu": (1, unary(lambda lo, hi: (-0.2, max(hi, 0.0)))),
    "normal_cdf": (1, unary(monotone(lambda x: 0.5 * math.erfc(-x / math.sqrt(2.0))))),
    # elementwise binary
    "add": (2, binary(lambda a, b: (a[0] + b[0], a[1] + b[1]))),
    "subtract": (2, binary(lambda a, b: (a[0] - b[1], a[1] - b[0]))),
    "multiply": (2, binary(lambda a, b: corners(lambda x, y: x * y, a, b))),
    "divide": (2, binary(_divide)),
    "power": (2, binary(_power)),
    "maximum": (2, binary(lambda a, b: (max(a[0], b[0]), max(a[1], b[1])))),
    "minimum": (2, binary(lambda a, b: (min(a[0], b[0]), min(a[1], b[1])))),
    # comparisons, selection, casts
    "greater": (2, _compare),
    "greater_equal": (2, _compare),
    "less": (2, _compare),
    "less_equal": (2, _compare),
    "equal": (2, _compare),
    "not_equal": (2, _compare),
    "where": (3, _where),
    "astype": (1, _astype),
    "ones_like": (1, _like),
    "zeros_like": (1, _like),
    "const": (0, _const),
    # reductions
    "sum": (1, _reduction),
    "mean": (1, _reduction),
    "max": (1, _reduction),
    "size": (1, _scale_by_size),
    # shapes and linear algebra
    "reshape": (1, _reshape),
    "transpose": (1, _transpose),
    "broadcast_to": (1, _broadcast_to),
    "matmul": (2, _matmul),
    # neural-network ops
    "softmax": (1, _softmax),
    "log_softmax": (1, _softmax),
    "softmax_cross_entropy": (2, _cross_entropy),
    "mse_loss": (2, _mse),
    "one_hot": (1, _one_hot),
}


# how often an op is drawn relative to the others (default 1)
WEIGHTS = {
    **{c: 0.25 for c in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal")},
    "ones_like": 0.3,
    "zeros_like": 0.3,
    "matmul": 2.0,
    "add": 1.5,
    "multiply": 1.5,
}


def drawable_ops() -> list[str]:
    """The table's ops that the registry has, with the number of operands the table expects."""
    return [n for n, (k, _) in OP_TABLE.items() if n in REGISTRY and len(REGISTRY[n].operands) == k]


def undrawn_ops() -> list[str]:
    """Registry ops the fuzzer cannot draw (no table entry): add one to fuzz them."""
    leaves = {n for n, op in REGISTRY.items() if op.leaf}
    return sorted(set(REGISTRY) - set(drawable_ops()) - leaves)


# ---- the strategy ------------------------------------------------------------------------


@st.composite
def fuzz_cases(draw, max_ops: int = 14, float_dtypes=("float64",)) -> FuzzCase:
    """A random valid graph with its inputs; see the module docstring."""
    dtype = draw(st.sampled_from(float_dtypes))
    b = Builder(draw, dtype, symbolic=draw(st.integers(0, 3)) == 0)
    for _ in range(draw(st.integers(1, 2))):
        b.leaf(b.shape(), draw(st.sampled_from(["real", "positive"])), "param")
    if draw(st.booleans()):
        b.leaf(b.shape(), "real", "input")
    ops = drawable_ops()
    weights = np.array([WEIGHTS.get(n, 1.0) for n in ops])
    for _ in range(draw(st.integers(1, max_ops))):
        name = ops[b.op_rng.choice(len(ops), p=weights / weights.sum())]
        made = OP_TABLE[name][1](b, name)
        if made is None:
            continue
        t, lo, hi = made
        if t.dtype in ("float32", "float64") and not in_range(lo, hi):
            continue  # drawn, but left out of the pool: the value could be too large
        b.add(t, lo, hi)
    return finish(draw, b)


def finish(draw, b: Builder) -> FuzzCase:
    """Mark outputs: first a loss (usually a scalar reduction), then a few pool values."""
    floats = [v for v in b.pool if v.kind == "float" and v.t.op not in ("param", "input")]
    if not floats:
        floats = [v for v in b.pool if v.kind == "float"]
    last = floats[-1]
    how = draw(st.sampled_from(["sum", "mean", "sum_square", "as_is"]))
    if how == "sum":
        loss = gg.sum(last.t)
    elif how == "mean":
        loss = gg.mean(last.t)
    elif how == "sum_square":
        loss = gg.sum(last.t * last.t)
    else:
        loss = last.t
    extras = draw(
        st.lists(st.sampled_from([v.t for v in b.pool]), max_size=2, unique_by=lambda t: t.id)
    )
    b.g.output(loss, *[t for t in extras if t.id != loss.id])
    params = [n for n, op in b.g.nx.nodes(data="op") if op == "param"]
    float_inputs = [
        n for n, d in b.g.nx.nodes(data=True) if d["op"] == "input" and d["dtype"] == b.dtype
    ]
    wrt = params
    if float_inputs and draw(st.booleans()):
        wrt = params + [draw(st.sampled_from(float_inputs))]
    return FuzzCase(b.g, b.inputs, wrt, dict(b.dims), b.dtype)
