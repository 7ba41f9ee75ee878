"""The Python API: compile a graph into a loaded module, generate source, save it."""

from __future__ import annotations

import builtins
import linecache
import os
import stat
import tempfile
import types
from pathlib import Path
from typing import Any

from .compiler import Compiled, compile_source


class Model:
    """A compiled graph: its generated source and the module loaded from it.

    forward / value_and_grad / vjp take the inputs positionally in INPUTS order or as
    keywords by graph name (the module's own functions take sanitized parameter names).
    """

    def __init__(self, compiled: Compiled):
        self._compiled = compiled
        self.source: str = compiled.source
        self.name: str = compiled.graph.graph["name"]
        self.module = load_module(self.source, self.name)
        self.inputs: tuple[str, ...] = tuple(self.module.INPUTS)
        self.outputs: tuple[str, ...] = tuple(self.module.OUTPUTS)
        self.wrt: tuple[str, ...] = tuple(self.module.WRT)
        self.input_specs: dict[str, dict] = dict(self.module.INPUT_SPECS)

    @property
    def graph(self):
        """The validated forward graph (networkx.MultiDiGraph) this model was made from."""
        return self._compiled.graph

    def _args(self, args: tuple, kwargs: dict) -> list:
        if len(args) > len(self.inputs):
            raise TypeError(
                f"{self.name}: expected at most {len(self.inputs)} inputs "
                f"{list(self.inputs)}, got {len(args)}"
            )
        values = dict(zip(self.inputs, args))
        for key, value in kwargs.items():
            if key not in self.inputs:
                raise TypeError(
                    f"{self.name}: unknown input {key!r}; inputs are {list(self.inputs)}"
                )
            if key in values:
                raise TypeError(f"{self.name}: input {key!r} given twice")
            values[key] = value
        missing = [n for n in self.inputs if n not in values]
        if missing:
            raise TypeError(f"{self.name}: missing inputs {missing}")
        return [values[n] for n in self.inputs]

    def forward(self, *args: Any, workspace: dict | None = None, **kwargs: Any) -> Any:
        """The graph's outputs (a tuple when there are several).

        workspace: a dict that the generated function keeps its large intermediates in
        between calls (pass the same one every step; one per thread: a call from another
        thread while one runs with it raises RuntimeError). Results are the same with or
        without it, and returned arrays are never reused.
        """
        return self.module.forward(*self._args(args, kwargs), workspace=workspace)

    def value_and_grad(
        self, *args: Any, workspace: dict | None = None, **kwargs: Any
    ) -> tuple[Any, dict]:
        """(value, grads): grads of the first (scalar) output, a dict keyed by `wrt` names.

        workspace: as for `forward`.
        """
        if not hasattr(self.module, "value_and_grad"):
            raise TypeError(
                f"{self.name}: value_and_grad needs a scalar float first output and a "
                "non-empty wrt; use vjp for a non-scalar output"
            )
        return self.module.value_and_grad(*self._args(args, kwargs), workspace=workspace)

    def vjp(
        self, *args: Any, cotangent: Any, workspace: dict | None = None, **kwargs: Any
    ) -> tuple[Any, dict]:
        """(outputs, grads) where grads are those of <cotangent, first output>.

        workspace: as for `forward`.
        """
        if not hasattr(self.module, "vjp"):
            raise TypeError(
                f"{self.name}: nothing to differentiate (empty wrt or non-float output)"
            )
        return self.module.vjp(*self._args(args, kwargs), cotangent, workspace=workspace)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the module source to `path` atomically (a complete file or none)."""
        return write_atomic(path, self.source)

    def __repr__(self) -> str:
        return f"<graphgen.Model {self.name!r} inputs={list(self.inputs)} wrt={list(self.wrt)}>"


def compile(  # noqa: A001
    graph: Any, wrt: Any = None, *, checks: bool = True, buffers: bool = True
) -> Model:
    """Compile `graph` (a gg.Graph or networkx graph) into a loaded Model.

    wrt: the leaf names to differentiate with respect to (a list, or a comma-separated
    string); default: every param.
    checks: the generated functions check their inputs' dtype kind, rank and dims and
    raise ValueError naming the input; False leaves the checks out for the fastest code.
    buffers: large intermediates are computed with `out=` into the buffers of an optional
    `workspace` dict and updated in place; False gives plain one-expression statements.
    """
    return Model(compile_source(graph, wrt, checks=checks, buffers=buffers))


def generate(graph: Any, wrt: Any = None, *, checks: bool = True, buffers: bool = True) -> str:
    """The generated module's source for `graph` (black-formatted); options as in compile."""
    return compile_source(graph, wrt, checks=checks, buffers=buffers).source


_LOADED = 0


def load_module(source: str, name: str = "graph") -> types.ModuleType:
    """Execute generated `source` as a new module; tracebacks show its lines."""
    global _LOADED
    _LOADED += 1
    filename = f"<graphgen {name!r} #{_LOADED}>"
    code = builtins.compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"graphgen_generated_{_LOADED}")
    module.__file__ = filename
    exec(code, module.__dict__)  # the source is our own generated code, never user text
    return module


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder, then rename."""
    path = Path(path)
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)  # mkstemp makes 0600 files; give the usual permissions instead
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _file_mode(path: Path) -> int:
    """The permissions `path` has now, or those a new file gets under the current umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
