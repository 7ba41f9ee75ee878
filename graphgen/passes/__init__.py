"""Optimization passes over the joint graph: simplification, CSE, dead-code removal,
the reordering of max pooling ahead of relu, and the fusion of products that share
their left operand."""

from .cse import eliminate_common_subexpressions
from .dce import prune
from .fuse import fuse_shared_matmuls
from .reorder import pool_before_relu
from .simplify import simplify

__all__ = [
    "eliminate_common_subexpressions",
    "fuse_shared_matmuls",
    "pool_before_relu",
    "prune",
    "simplify",
]
