"""Builder functions made from the registry: `gg.tanh(x)`, `gg.sum(x, axis=1)`, ...

Each op's function takes its operands positionally, then its attributes (positionally in
declaration order, or by keyword), plus `name=` to give the node an id. VJP rules use the
same functions (``F.where(c, g, 0)``), looked up lazily so families can refer to each other.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from ..builder import Tensor, apply
from .registry import REGISTRY, REQUIRED, OpDef

_CACHE: dict[str, Callable[..., Tensor]] = {}


def make_builder(op: OpDef) -> Callable[..., Tensor]:
    """The public function that applies `op`.

    Operands come first, then attrs (positionally in declaration order, or by keyword). A
    variadic operand (``*arrays``) is passed as one sequence, as in ``np.concatenate``.
    """
    if op.builder is not None:
        build = op.builder
        build.__name__ = build.__qualname__ = op.name
        build.__doc__ = f"{op.doc or op.name}\n\nVJP: {op.formula}"
        return build
    n_operands = len(op.operands)
    attr_names = list(op.attrs)

    def build(*args: Any, name: str | None = None, **kwargs: Any) -> Tensor:
        if len(args) < n_operands:
            missing = ", ".join(o.lstrip("*") for o in op.operands[len(args) :])
            raise TypeError(f"{op.name}() missing operand(s): {missing}")
        extra = args[n_operands:]
        if len(extra) > len(attr_names):
            raise TypeError(f"{op.name}() takes {n_operands} operand(s) and attrs {attr_names}")
        attrs = dict(zip(attr_names, extra))
        for key, value in kwargs.items():
            if key in attrs:
                raise TypeError(f"{op.name}() got attribute {key!r} twice")
            attrs[key] = value
        operands = list(args[:n_operands])
        if op.variadic:
            rest = operands.pop()
            if not isinstance(rest, (list, tuple)) or not rest:
                raise TypeError(f"{op.name}() takes a non-empty sequence of tensors")
            operands += rest
        return apply(op.name, *operands, name=name, **attrs)

    params = [
        inspect.Parameter(o.lstrip("*"), inspect.Parameter.POSITIONAL_ONLY) for o in op.operands
    ]
    for key, spec in op.attrs.items():
        default = inspect.Parameter.empty if spec.default is REQUIRED else spec.default
        params.append(
            inspect.Parameter(key, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
        )
    params.append(inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, default=None))
    build.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    build.__name__ = build.__qualname__ = op.name
    build.__doc__ = f"{op.doc or op.name}\n\nVJP: {op.formula}"
    return build


def __getattr__(name: str) -> Callable[..., Tensor]:
    if name not in _CACHE:
        if name not in REGISTRY:
            raise AttributeError(f"no op named {name!r}")
        _CACHE[name] = make_builder(REGISTRY[name])
    return _CACHE[name]
