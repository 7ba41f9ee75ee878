"""Embedding lookup: PyTorch's embedding(indices, table), shape indices.shape + (D,).

embedding gathers rows, `table[indices]`. Its VJP scatters the cotangent back into a zero
table with scatter_add (np.add.at), so an index that occurs several times receives the sum
of its rows' cotangents; scatter_add's own VJP gathers again, so embedding is
differentiable to any order.
"""

from __future__ import annotations

from . import functions as F
from .registry import ATOM, OpDef, TensorSpec, TestCase, register
from .shapes import fmt_shape, require_float


def _embedding_infer(specs, attrs) -> TensorSpec:
    indices, table = specs
    if indices.dtype != "int64":
        raise ValueError(f"indices must be int64, got {indices.dtype}")
    require_float(table, "table")
    if table.ndim != 2:
        raise ValueError(f"table must be 2-D (num_embeddings, D), got {fmt_shape(table.shape)}")
    return TensorSpec(indices.shape + table.shape[1:], table.dtype)


def _embedding_vjp(g, out, args, attrs):
    indices, table = args
    return None, F.scatter_add(g, indices, shape=table.shape, axis=0)


register(
    OpDef(
        name="embedding",
        operands=("indices", "table"),
        infer=_embedding_infer,
        emit=lambda e: f"{e.arg(1, ATOM)}[{e.arg(0)}]",
        vjp=_embedding_vjp,
        formula="dtable = scatter_add(g, indices, table.shape, axis=0): rows of g added at "
        "indices (np.add.at)",
        tests=(
            TestCase(shapes=((4,), (5, 3)), domains=("int:5", "real")),
            TestCase(shapes=((2, 6), (3, 2)), domains=("int:3", "real")),  # repeated indices
            TestCase(shapes=((), (4, 3)), domains=("int:4", "real")),
            TestCase(shapes=((2, 1, 3), (1, 4)), domains=("int:1", "real")),
        ),
        doc="rows of table (num_embeddings, D) at int64 indices: shape indices.shape + (D,)",
    )
)
