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

    Required operands are positional; optional operands (OpDef.optional) and attributes
    follow, positionally in declaration order or by keyword. An omitted optional operand
    is None: the node gets no edge at its position. A variadic operand (``*arrays``) is
    passed as one sequence, as in ``np.concatenate``.
    """
    if op.builder is not None:
        build = op.builder
        build.__name__ = build.__qualname__ = op.name
        build.__doc__ = f"{op.doc or op.name}\n\nVJP: {op.formula}"
        return build
    names = [o.lstrip("*") for o in op.operands]
    required = [o.lstrip("*") for o in op.required]
    positional = names + list(op.attrs)

    def build(*args: Any, name: str | None = None, **kwargs: Any) -> Tensor:
        if len(args) < len(required):
            missing = ", ".join(required[len(args) :])
            raise TypeError(f"{op.name}() missing operand(s): {missing}")
        if len(args) > len(positional):
            raise TypeError(f"{op.name}() takes operand(s) {names} and attrs {list(op.attrs)}")
        bound = dict(zip(positional, args))
        for key, value in kwargs.items():
            if key in bound:
                raise TypeError(f"{op.name}() got {key!r} twice")
            bound[key] = value
        operands = [bound.pop(o, None) for o in names]
        if op.variadic:
            rest = operands.pop()
            if not isinstance(rest, (list, tuple)) or not rest:
                raise TypeError(f"{op.name}() takes a non-empty sequence of tensors")
            operands += rest
        return apply(op.name, *operands, name=name, **bound)

    params = [inspect.Parameter(o, inspect.Parameter.POSITIONAL_ONLY) for o in required]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    for o in op.optional:
        params.append(inspect.Parameter(o, kind, default=None))
    for key, spec in op.attrs.items():
        default = inspect.Parameter.empty if spec.default is REQUIRED else spec.default
        if default is inspect.Parameter.empty and params and params[-1].default is not default:
            kind = inspect.Parameter.KEYWORD_ONLY  # a required attr after a defaulted one
        params.append(inspect.Parameter(key, kind, default=default))
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
