"""graphgen: compile a computation graph into standalone NumPy forward and backward code.

import graphgen as gg
g = gg.Graph("mlp")
x = g.input("x", ("batch", 784)); y = g.input("y", ("batch",), dtype="int64")
W, b = g.param("W", (784, 10)), g.param("b", (10,))
g.output(gg.softmax_cross_entropy(x @ W + b, y))
model = gg.compile(g)
loss, grads = model.value_and_grad(x=..., y=..., W=..., b=...)
"""

__version__ = "0.1.0"

from . import ops as _ops  # noqa: E402  (fills the registry)
from .api import Model, compile, generate  # noqa: E402
from .builder import Graph, Tensor  # noqa: E402
from .check import GradcheckReport, gradcheck  # noqa: E402
from .errors import (  # noqa: E402
    AttrError,
    CycleError,
    GradcheckError,
    GraphError,
    OpError,
    ShapeError,
    SpecError,
    WrtError,
)
from .frontends import load_graph, save_graph  # noqa: E402

# one builder function per registry op with operands: gg.tanh, gg.sum, gg.einsum, ...
# (ops without operands, such as const, are made through Graph methods or rules)
for _name, _op in _ops.REGISTRY.items():
    if _op.operands:
        globals()[_name] = getattr(_ops.functions, _name)

__all__ = [
    "AttrError",
    "CycleError",
    "GradcheckError",
    "GradcheckReport",
    "Graph",
    "GraphError",
    "Model",
    "OpError",
    "ShapeError",
    "SpecError",
    "Tensor",
    "WrtError",
    "__version__",
    "compile",
    "generate",
    "gradcheck",
    "load_graph",
    "save_graph",
    *sorted(n for n, o in _ops.REGISTRY.items() if o.operands),
]
