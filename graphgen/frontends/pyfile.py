"""`path/to/model.py:function`: a graph built by a function in a Python file.

The file is imported as a module (its folder first on sys.path while it loads, so that it
can import its neighbours) and the function is called with no arguments. It must return a
gg.Graph or a networkx graph. Running the file runs its code: this frontend is for the
user's own model files, never for files from elsewhere (graph files are JSON for that).
"""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
import traceback
import types
from pathlib import Path
from typing import Any

import networkx as nx

from ..errors import SpecError

FUNCTION_SPEC = re.compile(r"^(?P<path>.+\.py):(?P<function>[A-Za-z_][A-Za-z0-9_]*)$")
_COUNTER = itertools.count(1)


def is_function_spec(spec: str) -> bool:
    """True for `path/to/model.py:function`."""
    return FUNCTION_SPEC.match(spec) is not None


def load_function_spec(spec: str) -> Any:
    """Import the file of `path.py:function`, call the function, return its graph."""
    match = FUNCTION_SPEC.match(spec)
    if match is None:
        raise SpecError(f"{spec!r} is not of the form path/to/model.py:function")
    path, name = Path(match["path"]), match["function"]
    if not path.is_file():
        raise SpecError(f"{spec}: no such file {str(path)!r}")
    module = import_file(path)
    fn = getattr(module, name, None)
    if not callable(fn):
        found = sorted(
            n for n, v in vars(module).items() if isinstance(v, types.FunctionType) and n[0] != "_"
        )
        hint = f"; its functions: {', '.join(found)}" if found else ""
        raise SpecError(f"{spec}: {path} has no function {name!r}{hint}")
    try:
        graph = fn()
    except Exception as exc:  # noqa: BLE001 - the user's code: report it in one line
        raise SpecError(f"{spec}: calling {name}() raised {_describe(exc, path)}") from exc
    if hasattr(graph, "nx") and isinstance(graph.nx, nx.Graph):
        return graph
    if isinstance(graph, nx.Graph):
        return graph
    raise SpecError(
        f"{spec}: {name}() returned a {type(graph).__name__}, not a gg.Graph or networkx graph"
    )


def import_file(path: str | Path, prefix: str = "graphgen_model") -> types.ModuleType:
    """Import the Python file `path` as a new module; SpecError if importing it fails."""
    path = Path(path)
    module_name = f"{prefix}_{next(_COUNTER)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's code: report it in one line
        del sys.modules[module_name]
        raise SpecError(f"cannot import {path}: {_describe(exc, path)}") from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _describe(exc: BaseException, path: Path) -> str:
    """`ValueError: message (model.py line 12)`: the exception and where in `path` it arose."""
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"{type(exc).__name__}: {exc.msg} ({path.name} line {exc.lineno})"
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if Path(f.filename).resolve() == path.resolve()
    ]
    if frames:
        text += f" ({path.name} line {frames[-1].lineno})"
    return text
