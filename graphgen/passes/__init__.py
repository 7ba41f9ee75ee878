"""Optimization passes over the joint graph: simplification, CSE, dead-code removal,
and the reordering of max pooling ahead of relu."""

from .cse import eliminate_common_subexpressions
from .dce import prune
from .reorder import pool_before_relu
from .simplify import simplify

__all__ = ["eliminate_common_subexpressions", "pool_before_relu", "prune", "simplify"]
