"""Leaves: input (data), param (trainable), const (a number or nested list)."""

from __future__ import annotations

import math
from typing import Any

from .registry import (
    ATOM,
    UNARY,
    Attr,
    OpDef,
    TensorSpec,
    TestCase,
    as_optional_dtype,
    np_dtype,
    register,
)


def _leaf_infer(specs, attrs):  # leaves carry their spec as node attributes
    raise ValueError("a leaf has no operands to infer from")


def _emit_leaf(e) -> str:
    return e.name


for _name, _doc in (
    ("input", "data fed at call time; differentiated only when named in wrt"),
    ("param", "a trainable leaf; in wrt by default"),
):
    register(
        OpDef(
            name=_name,
            operands=(),
            infer=_leaf_infer,
            emit=_emit_leaf,
            vjp=None,
            formula="(leaf: receives the sum of its uses' cotangents)",
            tests=(),
            leaf=True,
            doc=_doc,
        )
    )


def _check_value(v: Any) -> Any:
    """A number, or a rectangular nested list of numbers (bools allowed)."""
    if isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, (list, tuple)):
        items = [_check_value(x) for x in v]
        shapes = {_value_shape(x) for x in items}
        if len(shapes) > 1:
            raise ValueError("nested lists are not rectangular")
        return items
    raise ValueError("expected a number or a nested list of numbers")


def _value_shape(v: Any) -> tuple[int, ...]:
    if isinstance(v, list):
        return (len(v),) + (_value_shape(v[0]) if v else ())
    return ()


def _flat(v: Any):
    if isinstance(v, list):
        for x in v:
            yield from _flat(x)
    else:
        yield v


def _const_infer(specs, attrs) -> TensorSpec:
    value, dtype = attrs["value"], attrs["dtype"]
    if dtype is None:
        items = list(_flat(value))
        if all(isinstance(x, bool) for x in items) and items:
            dtype = "bool"
        elif all(isinstance(x, int) for x in items) and items:
            dtype = "int64"
        else:
            dtype = "float64"
    return TensorSpec(_value_shape(value), dtype)


def number_literal(x: Any, dtype: str) -> str:
    """Python source for one number: a plain literal, so it never upcasts an array."""
    if dtype == "bool":
        return repr(bool(x))
    if dtype == "int64":
        return repr(int(x))
    x = float(x)
    if math.isnan(x):
        return "np.nan"
    if math.isinf(x):
        return "np.inf" if x > 0 else "-np.inf"
    return repr(x)


def _nested_literal(v: Any, dtype: str) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_nested_literal(x, dtype) for x in v) + "]"
    return number_literal(v, dtype)


def _emit_const(e) -> str:
    value, spec = e.attrs["value"], e.out
    if not spec.shape:
        return number_literal(value, spec.dtype)
    return f"np.array({_nested_literal(value, spec.dtype)}, dtype={np_dtype(spec.dtype)})"


def const_prec(attrs: dict) -> int:
    """A negative scalar literal binds like unary minus; everything else is an atom."""
    v = attrs["value"]
    if not isinstance(v, list) and not isinstance(v, bool) and (v < 0 or math.isinf(v)):
        return UNARY
    return ATOM


register(
    OpDef(
        name="const",
        operands=(),
        attrs={"value": Attr(convert=_check_value), "dtype": Attr(None, as_optional_dtype)},
        infer=_const_infer,
        emit=_emit_const,
        prec=const_prec,
        vjp=None,
        formula="(constant: no cotangent)",
        tests=(
            TestCase(shapes=(), attrs={"value": [[1.0, -2.5], [0.0, 3.0]]}),
            TestCase(shapes=(), attrs={"value": 7}),
        ),
        doc="a number or nested list, emitted from numbers only",
    )
)
