"""Embedding lookup (PyTorch's embedding(indices, table)) and its backward op.

embedding gathers rows, `table[indices]`, shape indices.shape + (D,). Its VJP scatters the
cotangent back into a zero table with np.add.at, so an index that occurs several times
receives the sum of its rows' cotangents: the backward op embedding_grad (a kernel, since
scatter-add is no composition of elementwise ops). The two are adjoint linear maps in the
table, so each one's VJP is the other: differentiable to any order.
"""

from __future__ import annotations

from . import functions as F
from .registry import ATOM, Attr, OpDef, TensorSpec, TestCase, as_int, register
from .shapes import fmt_shape, require_float


def _require_indices(spec: TensorSpec) -> None:
    if spec.dtype != "int64":
        raise ValueError(f"indices must be int64, got {spec.dtype}")


def _embedding_infer(specs, attrs) -> TensorSpec:
    indices, table = specs
    _require_indices(indices)
    require_float(table, "table")
    if table.ndim != 2:
        raise ValueError(f"table must be 2-D (num_embeddings, D), got {fmt_shape(table.shape)}")
    return TensorSpec(indices.shape + table.shape[1:], table.dtype)


register(
    OpDef(
        name="embedding",
        operands=("indices", "table"),
        infer=_embedding_infer,
        emit=lambda e: f"{e.arg(1, ATOM)}[{e.arg(0)}]",
        vjp=lambda g, out, args, attrs: (
            None,
            F.embedding_grad(args[0], g, num_embeddings=args[1].shape[0]),
        ),
        formula="dtable = embedding_grad(indices, g): rows of g added at indices (np.add.at)",
        tests=(
            TestCase(shapes=((4,), (5, 3)), domains=("int:5", "real")),
            TestCase(shapes=((2, 6), (3, 2)), domains=("int:3", "real")),  # repeated indices
            TestCase(shapes=((), (4, 3)), domains=("int:4", "real")),
            TestCase(shapes=((2, 1, 3), (1, 4)), domains=("int:1", "real")),
        ),
        doc="rows of table (num_embeddings, D) at int64 indices: shape indices.shape + (D,)",
    )
)


def _num(v):
    """num_embeddings: an int, or a symbolic dim name."""
    if isinstance(v, str) and v:
        return v
    if as_int(v) < 0:
        raise ValueError("expected a count >= 0")
    return v


def _grad_infer(specs, attrs) -> TensorSpec:
    indices, g = specs
    _require_indices(indices)
    require_float(g, "g")
    if g.ndim != indices.ndim + 1 or tuple(g.shape[:-1]) != tuple(indices.shape):
        raise ValueError(
            f"g must have shape indices.shape + (D,), got {fmt_shape(g.shape)} "
            f"for indices {fmt_shape(indices.shape)}"
        )
    return TensorSpec((attrs["num_embeddings"], g.shape[-1]), g.dtype)


register(
    OpDef(
        name="embedding_grad",
        operands=("indices", "g"),
        attrs={"num_embeddings": Attr(convert=_num, doc="rows of the table")},
        infer=_grad_infer,
        emit=lambda e: (
            f"_embedding_grad({e.arg(0)}, {e.arg(1)}, "
            f"num_embeddings={e.dim(e.attrs['num_embeddings'])})"
        ),
        kernel="embedding_grad",
        vjp=lambda u, out, args, attrs: (None, F.embedding(args[0], u)),
        formula="dg = embedding(indices, u)",
        tests=(
            TestCase(shapes=((4,), (4, 3)), attrs={"num_embeddings": 5}, domains=("int:5", "real")),
            TestCase(
                shapes=((2, 6), (2, 6, 2)), attrs={"num_embeddings": 3}, domains=("int:3", "real")
            ),
        ),
        doc="the gradient of embedding with respect to its table, given the indices and the "
        "output gradient g: a zero table with np.add.at(table, indices, g) (repeated indices "
        "accumulate); u is the cotangent of its result",
    )
)
