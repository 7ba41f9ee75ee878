"""Optimization passes over the joint graph: algebraic simplification and dead-code removal."""

from .dce import prune
from .simplify import simplify

__all__ = ["prune", "simplify"]
