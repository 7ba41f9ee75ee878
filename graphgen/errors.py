"""Errors raised by graphgen.

Every error about a graph is a `GraphError`; its message names the node, its op and the
shapes involved, so that the command line can print it as one line.
"""

from __future__ import annotations

import re

# line breaks and other control characters, which names and dims from a graph may contain
_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


class GraphError(ValueError):
    """A graph that graphgen cannot compile: the message says which node and why.

    The message is always one line: control characters coming from graph names are escaped.
    """

    def __init__(self, message: str = ""):
        super().__init__(_CONTROL.sub(lambda m: repr(m.group())[1:-1], str(message)))


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
