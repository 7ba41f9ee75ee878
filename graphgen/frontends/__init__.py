"""Frontends: where a graph comes from, when it is not built in the same Python process.

json_graph   node-link JSON files (`gg.save_graph` / `gg.load_graph`), exact round trips
pyfile       `path/to/model.py:function`, a function that returns a graph

`load_spec` takes the command line's SPEC argument and returns the graph it names.
"""

from __future__ import annotations

from typing import Any

from ..errors import SpecError
from .json_graph import dumps_graph, load_graph, loads_graph, save_graph
from .pyfile import import_file, is_function_spec, load_function_spec

__all__ = [
    "dumps_graph",
    "import_file",
    "is_function_spec",
    "load_graph",
    "load_spec",
    "loads_graph",
    "save_graph",
]


def load_spec(spec: str) -> Any:
    """The graph named by `spec`: a node-link JSON file or `path/to/model.py:function`."""
    if is_function_spec(spec):
        return load_function_spec(spec)
    if spec.endswith(".py"):
        raise SpecError(
            f"{spec} is a Python file: name the function that builds the graph, "
            f"as {spec}:function"
        )
    return load_graph(spec)
