"""Optimization passes over the joint graph: simplification, CSE, dead-code removal."""

from .cse import eliminate_common_subexpressions
from .dce import prune
from .simplify import simplify

__all__ = ["eliminate_common_subexpressions", "prune", "simplify"]
