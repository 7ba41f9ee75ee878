"""Errors raised by graphgen.

Every error about a graph is a `GraphError`; its message names the node, its op and the
shapes involved, so that the command line can print it as one line.
"""

from __future__ import annotations


class GraphError(ValueError):
    """A graph that graphgen cannot compile: the message says which node and why."""


class CycleError(GraphError):
    """The graph has a cycle (or a self-loop), so it is not a DAG."""


class OpError(GraphError):
    """An unknown op, a wrong number of operands, or bad argument positions."""


class AttrError(GraphError):
    """A node attribute (an op's `attrs`) is missing, unknown, or of the wrong type."""


class ShapeError(GraphError):
    """Operand shapes or dtypes that the op does not accept."""


class WrtError(GraphError):
    """A name in `wrt` that is not a float leaf of the graph."""


class GradcheckError(AssertionError):
    """Generated gradients disagree with finite differences."""


class SpecError(GraphError):
    """A graph source that cannot be read: a bad graph file, or a model function that fails."""
