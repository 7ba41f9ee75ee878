"""The builder API: Python sugar that produces the IR (a networkx.MultiDiGraph).

    g = gg.Graph("mlp")
    x = g.input("x", ("batch", 784))
    W = g.param("W", (784, 10))
    g.output(gg.sum(gg.tanh(x @ W)))

Every op application validates the op's attrs and infers the output shape and dtype at
once, so a mistake is reported at the line that makes it. The autodiff pass uses the same
builder over the joint graph, which is why VJP rules can be written with ordinary ops.
"""

from __future__ import annotations

import contextlib
import numbers
from typing import Any, Iterator, Sequence

import networkx as nx

from .errors import GraphError, ShapeError
from .ops.registry import DTYPES, FLOAT_DTYPES, TensorSpec, as_shape, get_op


class Graph:
    """A computation graph under construction; `.nx` is the IR it builds."""

    def __init__(self, name: str = "graph", nx_graph: nx.MultiDiGraph | None = None):
        if nx_graph is None:
            nx_graph = nx.MultiDiGraph(name=name, outputs=[])
        self.nx = nx_graph
        self._counter = 0
        self._tags: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.nx.graph.get("name", "graph")

    # ---- leaves ------------------------------------------------------------------------

    def input(self, name: str, shape: Sequence = (), dtype: str = "float64") -> Tensor:
        """A data leaf (not differentiated unless named in `wrt`)."""
        return self._leaf("input", name, shape, dtype)

    def param(self, name: str, shape: Sequence = (), dtype: str = "float64") -> Tensor:
        """A trainable leaf: in `wrt` by default."""
        return self._leaf("param", name, shape, dtype)

    def const(self, value: Any, dtype: str | None = None, name: str | None = None) -> Tensor:
        """A constant: a number or a nested list of numbers."""
        return self.apply("const", [], {"value": value, "dtype": dtype}, name=name)

    def _leaf(self, op: str, name: str, shape: Sequence, dtype: str) -> Tensor:
        if not isinstance(name, str) or not name:
            raise GraphError(f"{op} name must be a non-empty string, got {name!r}")
        if name in self.nx:
            raise GraphError(f"node {name!r} already exists in graph {self.name!r}")
        try:
            shape = as_shape(tuple(shape) if isinstance(shape, list) else shape)
            if any(d == -1 for d in shape):
                raise ValueError("-1 is not a dim")
        except ValueError as exc:
            raise ShapeError(f"node {name!r} (op {op}): shape {shape!r}: {exc}") from None
        if dtype not in DTYPES:
            raise ShapeError(f"node {name!r} (op {op}): dtype {dtype!r} is not one of {DTYPES}")
        self.nx.add_node(name, op=op, attrs={}, shape=shape, dtype=dtype, **self._tags)
        return Tensor(self, name)

    def output(self, *tensors: Tensor) -> None:
        """Mark `tensors` as graph outputs, in order; the first is the one differentiated."""
        for t in tensors:
            if not isinstance(t, Tensor) or t.graph is not self:
                raise GraphError(f"output {t!r} is not a tensor of graph {self.name!r}")
            self.nx.graph["outputs"] = [*self.nx.graph.get("outputs", []), t.id]

    # ---- op nodes ----------------------------------------------------------------------

    def apply(
        self, op: str, operands: Sequence[Tensor], attrs: dict, name: str | None = None
    ) -> Tensor:
        """Add a node applying `op` to `operands`; validates attrs and infers its spec."""
        opdef = get_op(op)
        node = self._new_id(name, op)
        attrs = opdef.check_attrs(node, attrs)
        specs = [t.spec for t in operands]
        try:
            spec = opdef.infer(specs, attrs)
        except ValueError as exc:
            shapes = ", ".join(f"{t.id}: {t.spec}" for t in operands)
            raise ShapeError(f"node {node!r} (op {op}): {exc} [operands {shapes}]") from None
        self.nx.add_node(node, op=op, attrs=attrs, shape=spec.shape, dtype=spec.dtype, **self._tags)
        for i, t in enumerate(operands):
            self.nx.add_edge(t.id, node, arg=i)
        return Tensor(self, node)

    def _new_id(self, name: str | None, op: str) -> str:
        if name is not None:
            if not isinstance(name, str) or not name:
                raise GraphError(f"node name must be a non-empty string, got {name!r}")
            if name in self.nx:
                raise GraphError(f"node {name!r} already exists in graph {self.name!r}")
            return name
        prefix = self._tags.get("id_prefix", "")
        while True:
            self._counter += 1
            node = f"{prefix}{op}_{self._counter}"
            if node not in self.nx:
                return node

    def tensor(self, node: str) -> Tensor:
        """A handle to an existing node."""
        if node not in self.nx:
            raise GraphError(f"no node {node!r} in graph {self.name!r}")
        return Tensor(self, node)

    @contextlib.contextmanager
    def tagged(self, **tags: Any) -> Iterator[None]:
        """Nodes made inside this block carry `tags` as extra node attributes."""
        saved = self._tags
        self._tags = {**saved, **tags}
        try:
            yield
        finally:
            self._tags = saved


class Tensor:
    """A handle to one node of a Graph, with NumPy-style operators."""

    __array_priority__ = 1000  # so that ndarray <op> Tensor defers to Tensor

    def __init__(self, graph: Graph, node: str):
        self.graph = graph
        self.id = node

    @property
    def spec(self) -> TensorSpec:
        data = self.graph.nx.nodes[self.id]
        return TensorSpec(tuple(data["shape"]), data["dtype"])

    @property
    def shape(self) -> tuple:
        return self.spec.shape

    @property
    def dtype(self) -> str:
        return self.spec.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def op(self) -> str:
        return self.graph.nx.nodes[self.id]["op"]

    def __repr__(self) -> str:
        return f"<Tensor {self.id}: {self.spec}>"

    def __hash__(self) -> int:
        return hash((id(self.graph), self.id))

    def __bool__(self) -> bool:
        raise TypeError("a graph Tensor has no truth value; use gg.where for conditions")

    # arithmetic
    def __add__(self, o):
        return apply("add", self, o)

    def __radd__(self, o):
        return apply("add", o, self)

    def __sub__(self, o):
        return apply("subtract", self, o)

    def __rsub__(self, o):
        return apply("subtract", o, self)

    def __mul__(self, o):
        return apply("multiply", self, o)

    def __rmul__(self, o):
        return apply("multiply", o, self)

    def __truediv__(self, o):
        return apply("divide", self, o)

    def __rtruediv__(self, o):
        return apply("divide", o, self)

    def __pow__(self, o):
        return apply("power", self, o)

    def __rpow__(self, o):
        return apply("power", o, self)

    def __matmul__(self, o):
        return apply("matmul", self, o)

    def __rmatmul__(self, o):
        return apply("matmul", o, self)

    def __neg__(self):
        return apply("negative", self)

    def __pos__(self):
        return self

    # comparisons build (non-differentiable) bool tensors
    def __lt__(self, o):
        return apply("less", self, o)

    def __le__(self, o):
        return apply("less_equal", self, o)

    def __gt__(self, o):
        return apply("greater", self, o)

    def __ge__(self, o):
        return apply("greater_equal", self, o)

    def __eq__(self, o):  # type: ignore[override]
        return apply("equal", self, o)

    def __ne__(self, o):  # type: ignore[override]
        return apply("not_equal", self, o)

    @property
    def T(self) -> Tensor:
        return apply("transpose", self)

    # basic indexing: ints, slices (any step), None, Ellipsis
    def __getitem__(self, key: Any) -> Tensor:
        items = key if isinstance(key, tuple) else (key,)
        for item in items:
            basic = item is None or item is Ellipsis or isinstance(item, slice)
            if not basic and (isinstance(item, bool) or not isinstance(item, numbers.Integral)):
                raise GraphError(
                    f"tensor {self.id!r}: only basic indexing (ints, slices, None, ...) is "
                    "supported; gather with gg.take or gg.take_along_axis"
                )
        return apply("getitem", self, index=items)

    def __iter__(self):
        raise TypeError("a graph Tensor is not iterable; index it (x[i]) or use gg ops")


def _graph_of(values: Sequence[Any]) -> Graph:
    graphs = {id(v.graph): v.graph for v in values if isinstance(v, Tensor)}
    if not graphs:
        raise GraphError("an op needs at least one graph Tensor operand")
    if len(graphs) > 1:
        raise GraphError("operands belong to different graphs")
    return next(iter(graphs.values()))


def _lift(graph: Graph, value: Any, like: Sequence[Any]) -> Tensor:
    """A Python scalar operand as a scalar const of the tensors' dtype (never upcasting)."""
    if isinstance(value, Tensor):
        return value
    if not isinstance(value, numbers.Number) or isinstance(value, complex):
        raise GraphError(f"operand {value!r} is neither a graph Tensor nor a real number")
    dtypes = [t.dtype for t in like if isinstance(t, Tensor)]
    floats = [d for d in dtypes if d in FLOAT_DTYPES]
    if isinstance(value, bool):
        dtype = "bool"
    elif floats:
        dtype = floats[0]
    elif isinstance(value, float) or (
        isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
    ):
        dtype = "float64"
    else:
        dtype = dtypes[0] if dtypes and dtypes[0] != "bool" else "int64"
    number = float(value) if dtype in FLOAT_DTYPES else int(value)
    return graph.apply("const", [], {"value": number, "dtype": dtype})


def apply(op: str, *operands: Any, name: str | None = None, **attrs: Any) -> Tensor:
    """Apply registry op `op` to operands (Tensors or Python scalars) with `attrs`."""
    graph = _graph_of(operands)
    tensors = [_lift(graph, v, operands) for v in operands]
    return graph.apply(op, tensors, attrs, name=name)
