"""The op registry: one `OpDef` per op holds everything graphgen knows about it.

An op declaration puts side by side its operands, its attributes (defaults and
validation), its shape/dtype rule, its NumPy emitter, its VJP rule (with the formula in
words, for `graphgen ops` and `graphgen explain`) and its test spec. Tests are generated from
the registry, so an op without test cases fails the suite.

The VJP contract: ``vjp(g, out, args, attrs)`` receives the cotangent ``g`` of the node's
output, the output ``out`` and the operands ``args`` as graph handles, and returns one
cotangent handle per operand (``None`` where an operand gets none). Rules build their
results with the ordinary ops, so the reverse graph is a graph like any other. Cotangents
may have the broadcast shape of the output: the autodiff pass reduces them to each
operand's shape with one `unbroadcast` helper, so rules never deal with broadcasting.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..errors import AttrError, OpError

Dim = int | str
Shape = tuple[Dim, ...]

FLOAT_DTYPES = ("float32", "float64")
DTYPES = ("float32", "float64", "int64", "bool")

# Python operator precedence of an emitted expression, used to parenthesize operands.
ATOM, POW, UNARY, MUL, ADD, CMP = 100, 15, 14, 13, 12, 8

REQUIRED = object()


@dataclass(frozen=True)
class TensorSpec:
    """The static type of a value: its shape (ints and symbolic dims) and dtype."""

    shape: Shape
    dtype: str

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def __str__(self) -> str:
        short = {"float32": "f32", "float64": "f64", "int64": "i64", "bool": "bool"}
        return f"{short.get(self.dtype, self.dtype)}[{','.join(str(d) for d in self.shape)}]"


@dataclass(frozen=True)
class Attr:
    """An op attribute: its default (or REQUIRED) and a converter that validates it.

    The converter returns the canonical value or raises ValueError saying what is wrong.
    """

    default: Any = REQUIRED
    convert: Callable[[Any], Any] = lambda v: v
    doc: str = ""


@dataclass(frozen=True)
class TestCase:
    """One registry-driven gradient test: operand shapes, attrs and input domains.

    domain per operand: "real", "positive", "nonzero", "distinct" (no ties, for max),
    "unit" (in (0.05, 0.95)), "bool", "keep" (bool, a True in every last-axis row), or
    "int:N" (integers in [0, N), e.g. class labels).
    A shape of None omits an optional operand.
    """

    shapes: tuple[Shape | None, ...]
    attrs: dict = field(default_factory=dict)
    domains: tuple[str, ...] | None = None

    def domain(self, i: int) -> str:
        return self.domains[i] if self.domains else "real"


@dataclass(frozen=True)
class OpDef:
    """Everything about one op.

    name      registry name (NumPy's where one exists)
    operands  operand names, in argument order (the builder function's positional params);
              a last name starting with "*" (``("*arrays",)``) takes one or more operands
    attrs     attribute name -> Attr; also keyword params of the builder function
    infer     (operand specs, attrs) -> output spec; raises ShapeError-worthy ValueError
    emit      EmitContext -> NumPy expression (str) of precedence `prec`
    vjp       the VJP rule (see module docstring); None: no gradient flows through the op
    formula   the VJP rule in words, e.g. "dx = g * (1 - y**2)"
    tests     finite-difference test cases; an empty tuple fails the suite
    kernel    helper templates in templates/kernels/ included when the op is used: a name, a
              tuple of names (a kernel and the kernels it calls), or attrs -> names
    optional  trailing operands that may be omitted: the builder function gives them a
              None default, the IR has no edge at their position, and infer, emit and
              vjp see None in their place (specs, `e.ins`, `args`)
    builder   the public function, for the few ops whose NumPy signature is not operands
              then attrs (``einsum(subscripts, *operands)``); default: made from the above
    ufunc     the NumPy function the op is, called on its operands then `ufunc_extra`
              (``np.add``; tanh: ``np.tanh``), or a kernel's function that works like
              one (relu: ``_relu``, with its template in `kernel`): codegen can then hand
              it an ``out=`` buffer. Only for functions that give a fresh array, never a
              view.
    elementwise  with `ufunc`: the result is computed element by element, so an operand of
              the result's shape and dtype can be updated in place (``h += b``)
    fresh     the emitted expression always gives a new array, never a view of or the same
              object as an operand (true of every `ufunc` op): memory planning relies on it;
              or (number of operands) -> that, for ops whose answer depends on it (einsum)
    out_kwarg the emitted call (a kernel) also takes `out=`, an array of the result's shape
              and dtype that it fills and returns: memory planning can give it a buffer
    emit_as   (operand specs) -> the name of an op computing the same value faster for these
              operands, or None: codegen emits a node of this op as that op (matmul of a
              stack by a matrix: matmul_rows, one GEMM); comments still name this op
    lowering  (operand tensors, attrs, name) -> the same value built from other ops, or None:
              what the node becomes before differentiation (passes/lower.py), so that the
              backward reuses an intermediate of the forward; `name(suffix)` names new nodes
    """

    name: str
    operands: tuple[str, ...]
    infer: Callable[[Sequence[TensorSpec], dict], TensorSpec]
    emit: Callable[[Any], str]
    vjp: Callable | None
    formula: str
    tests: tuple[TestCase, ...]
    attrs: dict[str, Attr] = field(default_factory=dict)
    prec: int | Callable[[dict], int] = ATOM
    kernel: str | tuple[str, ...] | Callable[[dict], tuple[str, ...]] | None = None
    builder: Callable[..., Any] | None = None
    doc: str = ""
    leaf: bool = False
    reads_operands: bool = True  # False: emitted from the operands' static shapes alone
    optional: tuple[str, ...] = ()
    ufunc: str | None = None
    ufunc_extra: tuple[str, ...] = ()
    elementwise: bool = False
    fresh: bool | Callable[[int], bool] = False
    out_kwarg: bool = False
    emit_as: Callable[[Sequence[TensorSpec]], str | None] | None = None
    lowering: Callable | None = None

    def gives_fresh_array(self, operand_count: int) -> bool:
        """Whether a node's value, with this many operands, never shares memory with them."""
        fresh = self.fresh(operand_count) if callable(self.fresh) else self.fresh
        return fresh or self.ufunc is not None

    @property
    def writes_out(self) -> bool:
        """Whether a node's value can be written into a given `out=` array."""
        return self.ufunc is not None or self.out_kwarg

    @property
    def required(self) -> tuple[str, ...]:
        """The operands that must be present."""
        return tuple(o for o in self.operands if o not in self.optional)

    @property
    def variadic(self) -> bool:
        """True when the last operand takes one or more operands (concatenate, einsum)."""
        return bool(self.operands) and self.operands[-1].startswith("*")

    def takes(self, n: int) -> bool:
        """Whether the op accepts `n` operands."""
        if self.variadic:
            return n >= len(self.operands)
        return n == len(self.operands)

    def operand_name(self, i: int) -> str:
        """The declared name of operand position i (the variadic name for all the rest)."""
        return self.operands[min(i, len(self.operands) - 1)].lstrip("*")

    def operand_labels(self, n: int) -> list[str]:
        """Names for `n` operands as in comments: ``x``, or ``arrays[0]``, ``arrays[1]``."""
        if not self.variadic:
            return list(self.operands[:n])
        fixed = len(self.operands) - 1
        base = self.operand_name(fixed)
        return [*self.operands[:fixed], *(f"{base}[{k}]" for k in range(n - fixed))]

    def kernels(self, attrs: dict) -> tuple[str, ...]:
        """The kernel templates a node of this op with `attrs` needs."""
        names = self.kernel(attrs) if callable(self.kernel) else self.kernel
        if names is None:
            return ()
        return (names,) if isinstance(names, str) else tuple(names)

    def check_attrs(self, node: str, given: dict) -> dict:
        """Fill defaults and validate `given`; returns the canonical attrs dict."""
        unknown = sorted(set(given) - set(self.attrs))
        if unknown:
            raise AttrError(
                f"node {node!r} (op {self.name}): unknown attribute {unknown[0]!r}; "
                f"{self.name} takes {sorted(self.attrs) or 'no attributes'}"
            )
        out = {}
        for key, spec in self.attrs.items():
            if key not in given:
                if spec.default is REQUIRED:
                    raise AttrError(f"node {node!r} (op {self.name}): missing attribute {key!r}")
                out[key] = spec.default
                continue
            try:
                out[key] = spec.convert(given[key])
            except (TypeError, ValueError) as exc:
                raise AttrError(
                    f"node {node!r} (op {self.name}): attribute {key}={given[key]!r}: {exc}"
                ) from None
        return out


REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add `op` to the registry (each name once)."""
    if op.name in REGISTRY:
        raise RuntimeError(f"op {op.name!r} registered twice")
    if op.optional and op.operands[len(op.operands) - len(op.optional) :] != op.optional:
        raise RuntimeError(f"op {op.name!r}: optional operands must be the trailing operands")
    REGISTRY[op.name] = op
    return op


def get_op(name: Any, node: str | None = None) -> OpDef:
    """The OpDef called `name`, or an OpError suggesting the closest registered name."""
    if isinstance(name, str) and name in REGISTRY:
        return REGISTRY[name]
    where = f"node {node!r}: " if node is not None else ""
    close = difflib.get_close_matches(str(name), REGISTRY, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise OpError(f"{where}unknown op {name!r}{hint}")


# ---- attribute converters ------------------------------------------------------------


def as_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("expected true or false")
    return v


def as_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("expected an integer")
    return v


def as_number(v: Any) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("expected a number")
    return v


def as_axes(v: Any) -> tuple[int, ...] | None:
    """None, an int, or a sequence of ints -> None or a tuple of ints."""
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return tuple(as_int(a) for a in v)
    return (as_int(v),)


def as_shape(v: Any) -> Shape:
    """A shape: a sequence of non-negative ints and symbolic-dim names (or -1 for reshape)."""
    if not isinstance(v, (list, tuple)):
        raise ValueError("expected a list of dims")
    out = []
    for d in v:
        if isinstance(d, str):
            if not d:
                raise ValueError("a symbolic dim needs a non-empty name")
        elif isinstance(d, bool) or not isinstance(d, int) or d < -1:
            raise ValueError(f"dim {d!r} is not a non-negative int or a symbolic name")
        out.append(d)
    return tuple(out)


def as_dim(v: Any) -> Dim:
    """One dim: an int or a symbolic name (its range is checked with the inferred shape)."""
    if isinstance(v, str) and v:
        return v
    return as_int(v)


def as_dtype(v: Any) -> str:
    if v not in DTYPES:
        raise ValueError(f"expected one of {list(DTYPES)}")
    return v


def as_optional_dtype(v: Any) -> str | None:
    return None if v is None else as_dtype(v)


def np_dtype(dtype: str) -> str:
    """Source naming a dtype: np.bool_ for bool (np.bool only exists from NumPy 2)."""
    return "np.bool_" if dtype == "bool" else f"np.{dtype}"


def one_of(*choices: str) -> Callable[[Any], str]:
    def convert(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"expected one of {list(choices)}")
        return v

    return convert
