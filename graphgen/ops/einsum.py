"""einsum(subscripts, *operands), and eye, the identity matrix its VJP uses for diagonals.

Subscripts follow NumPy: letters label axes, `...` stands for broadcast axes, a label
repeated within one operand takes a diagonal, a label missing from the output is summed,
and without `->` the output is `...` then the labels used once, in alphabetical order.
Labels of size 1 broadcast against other operands, as in NumPy. The subscripts are stored
in explicit canonical form ("ij,jk->ik"), rebuilt from the parsed labels, so the emitted
string holds nothing but letters, ",", "->" and "...".

An einsum is linear in each operand, so the cotangent of operand k is an einsum of g with
the other operands, whose output is operand k's subscripts:

    dX_k = einsum("<out>,<others>-><term k>", g, *others)

with three adjustments. A label repeated in term k (a diagonal) is renamed, and tied to its
first occurrence by an identity matrix (eye), so the cotangent lands on the diagonal. A
label that appears in term k only (summed inside X_k) is left out and restored by
a broadcast. The `...` axes of the result are summed down to operand k's own; the autodiff
pass sums the size-1 axes that were broadcast.
"""

from __future__ import annotations

import string
from collections import Counter

from ..builder import apply
from .registry import (
    FLOAT_DTYPES,
    Attr,
    OpDef,
    TensorSpec,
    TestCase,
    as_dim,
    as_dtype,
    np_dtype,
    register,
)
from .shapes import broadcast_dim, broadcast_shapes, fmt_shape, promote

LABELS = string.ascii_letters
ELLIPSIS = "..."

# ---- subscripts --------------------------------------------------------------------------


def _term(text: str) -> list[str]:
    labels, i = [], 0
    while i < len(text):
        if text.startswith(ELLIPSIS, i):
            if ELLIPSIS in labels:
                raise ValueError(f"more than one '...' in {text!r}")
            labels.append(ELLIPSIS)
            i += 3
        elif text[i] in LABELS:
            labels.append(text[i])
            i += 1
        else:
            raise ValueError(f"invalid character {text[i]!r} in subscripts")
    return labels


def parse(subscripts) -> tuple[list[list[str]], list[str]]:
    """(input terms, output term), each a list of letters and "..."."""
    if not isinstance(subscripts, str):
        raise ValueError("expected a subscripts string such as 'ij,jk->ik'")
    lhs, arrow, rhs = subscripts.replace(" ", "").partition("->")
    inputs = [_term(t) for t in lhs.split(",")]
    has_ellipsis = any(ELLIPSIS in t for t in inputs)
    if not arrow:
        counts = Counter(label for t in inputs for label in t if label != ELLIPSIS)
        once = sorted(label for label, n in counts.items() if n == 1)
        return inputs, [ELLIPSIS] * has_ellipsis + once
    output = _term(rhs)
    labels = [label for label in output if label != ELLIPSIS]
    if len(set(labels)) != len(labels):
        raise ValueError(f"output subscripts {rhs!r} repeat a label")
    missing = sorted(set(labels) - {label for t in inputs for label in t})
    if missing:
        raise ValueError(f"output label {missing[0]!r} is not in any input")
    if ELLIPSIS in output and not has_ellipsis:
        raise ValueError("output has '...' but no input has")
    return inputs, output


def unparse(inputs, output) -> str:
    return ",".join("".join(t) for t in inputs) + "->" + "".join(output)


def canonical(subscripts) -> str:
    """The explicit form of `subscripts` ("ij,jk" -> "ij,jk->ik")."""
    return unparse(*parse(subscripts))


def term_dims(term, shape) -> tuple[list[tuple[str, object]], tuple]:
    """([(label, dim)] in order, the dims under "...") of an operand of `shape`."""
    n_ellipsis = len(shape) - (len(term) - term.count(ELLIPSIS))
    if n_ellipsis < 0 or (n_ellipsis and ELLIPSIS not in term):
        raise ValueError(f"subscripts {''.join(term)!r} do not fit shape {fmt_shape(shape)}")
    pairs, ellipsis, i = [], (), 0
    for label in term:
        if label == ELLIPSIS:
            ellipsis, i = tuple(shape[i : i + n_ellipsis]), i + n_ellipsis
        else:
            pairs.append((label, shape[i]))
            i += 1
    return pairs, ellipsis


def bind(inputs, shapes) -> tuple[dict, tuple]:
    """(label -> dim, the broadcast "..." dims); ValueError when the operands disagree."""
    if len(inputs) != len(shapes):
        raise ValueError(f"subscripts name {len(inputs)} operand(s), got {len(shapes)}")
    sizes: dict = {}
    ellipses = []
    for term, shape in zip(inputs, shapes):
        pairs, ellipsis = term_dims(term, shape)
        ellipses.append(ellipsis)
        own: dict = {}
        for label, d in pairs:
            if own.setdefault(label, d) != d:
                raise ValueError(f"repeated label {label!r} has dims {own[label]!r} and {d!r}")
        for label, d in own.items():
            try:
                sizes[label] = broadcast_dim(sizes[label], d) if label in sizes else d
            except ValueError:
                raise ValueError(f"label {label!r} has dims {sizes[label]!r} and {d!r}") from None
    return sizes, broadcast_shapes(*ellipses)


def _einsum_infer(specs, attrs) -> TensorSpec:
    inputs, output = parse(attrs["subscripts"])
    sizes, ellipsis = bind(inputs, [s.shape for s in specs])
    if ellipsis and ELLIPSIS not in output:
        raise ValueError("the output needs '...' for the broadcast dims")
    shape = []
    for label in output:
        shape.extend(ellipsis if label == ELLIPSIS else (sizes[label],))
    return TensorSpec(tuple(shape), promote(*(s.dtype for s in specs)))


def _emit_einsum(e) -> str:
    rows = _rows_product(e)
    if rows is not None:
        return rows
    args = ", ".join(e.arg(i) for i in range(len(e.ins)))
    optimize = ", optimize=True" if len(e.ins) > 1 else ""  # BLAS and a contraction order
    return f'np.einsum("{canonical(e.attrs["subscripts"])}", {args}{optimize})'


def _rows_product(e) -> str | None:
    """One GEMM over the rows for "aby,abz->yz" (a weight's gradient over symbolic batch
    axes): np.matmul(np.reshape(a, (-1, K)).T, np.reshape(b, (-1, N))), the same BLAS call
    einsum's optimizer makes, without its path search at every call. Only when both
    operands have the same leading axes and static, nonzero K and N (a -1 needs them)."""
    terms, out = parse(e.attrs["subscripts"])
    if len(terms) != 2:
        return None
    ta, tb = terms
    if ELLIPSIS in ta + tb + out or len(ta) < 2 or ta[:-1] != tb[:-1]:
        return None
    a, b = e.ins
    k, n = a.shape[-1], b.shape[-1]
    if out != [ta[-1], tb[-1]] or ta[-1] == tb[-1] or len(set(ta)) != len(ta):
        return None
    if a.shape[:-1] != b.shape[:-1] or not all(isinstance(d, int) and d > 0 for d in (k, n)):
        return None
    return f"np.matmul(np.reshape({e.arg(0)}, (-1, {k})).T, np.reshape({e.arg(1)}, (-1, {n})))"


# ---- the VJP -----------------------------------------------------------------------------


def _cotangent(k, g, args, inputs, output):
    """The cotangent of operand k (see the module docstring)."""
    x = args[k]
    pairs, own_ellipsis = term_dims(inputs[k], x.shape)
    n_ellipsis = len(g.shape) - (len(output) - output.count(ELLIPSIS))
    used = {label for t in inputs for label in t}
    fresh = iter(c for c in LABELS if c not in used)
    strip = (lambda t: [c for c in t if c != ELLIPSIS]) if not n_ellipsis else list

    # rename repeated labels; an eye ties each copy to its first occurrence
    term, eyes, seen, dims = [], [], set(), dict(pairs)
    for label in strip(inputs[k]):
        if label != ELLIPSIS and label in seen:
            copy = next(fresh)
            term.append(copy)
            eyes.append(([label, copy], dims[label]))
        else:
            term.append(label)
            seen.add(label)
    terms = [strip(output)] + [strip(t) for j, t in enumerate(inputs) if j != k]
    terms += [t for t, _ in eyes]
    operands = [g] + [a for j, a in enumerate(args) if j != k]
    operands += [_eye(g, n) for _, n in eyes]

    available = {label for t in terms for label in t}
    result = [c for c in term if c in available]
    if n_ellipsis and ELLIPSIS not in result:
        result.insert(0, ELLIPSIS)  # operand k has no "...": its axes are summed below
    if len(operands) == 1 and terms[0] == result:
        r = g
    else:
        r = apply("einsum", *operands, subscripts=unparse(terms, result))

    # sum the leading "..." axes that operand k does not have
    if n_ellipsis:
        start = result.index(ELLIPSIS)
        extra = n_ellipsis - len(own_ellipsis)
        if extra:
            r = _sum(r, tuple(range(start, start + extra)))
    # restore the labels summed inside operand k alone, by broadcasting
    if len(result) - result.count(ELLIPSIS) < len(term) - term.count(ELLIPSIS):
        kept, target, i = [], [], 0
        for c in term:
            if c == ELLIPSIS:
                block = tuple(r.shape[i : i + len(own_ellipsis)])
                kept += block
                target += block
                i += len(own_ellipsis)
            elif c in available:
                kept.append(r.shape[i])
                target.append(r.shape[i])
                i += 1
            else:
                kept.append(1)
                target.append(dims[c])
        r = apply("broadcast_to", apply("reshape", r, shape=tuple(kept)), shape=tuple(target))
    return r


def _sum(t, axes):
    return apply("sum", t, axis=axes)


def _eye(like, n):
    # bool, not like's dtype: einsum then keeps the runtime float dtype of the other operands
    return like.graph.apply("eye", [], {"N": n, "dtype": "bool"})


def _einsum_vjp(g, out, args, attrs):
    inputs, output = parse(attrs["subscripts"])
    return tuple(
        _cotangent(k, g, args, inputs, output) if a.dtype in FLOAT_DTYPES else None
        for k, a in enumerate(args)
    )


def _einsum(subscripts, *operands, name=None):
    """np.einsum(subscripts, *operands)."""
    return apply("einsum", *operands, name=name, subscripts=subscripts)


register(
    OpDef(
        name="einsum",
        operands=("*operands",),
        attrs={"subscripts": Attr(convert=canonical, doc="NumPy einsum subscripts")},
        infer=_einsum_infer,
        emit=_emit_einsum,
        # with two or more operands NumPy computes a new array; one operand may give a
        # view of it ("ij->ji", "ii->i")
        fresh=lambda operand_count: operand_count > 1,
        builder=_einsum,
        vjp=_einsum_vjp,
        formula="doperands = einsum(g, the other operands -> this operand's subscripts)",
        tests=(
            TestCase(shapes=((2, 3), (3, 4)), attrs={"subscripts": "ij,jk->ik"}),
            TestCase(shapes=((2, 3), (3, 4)), attrs={"subscripts": "ij,jk"}),
            TestCase(shapes=((2, 3),), attrs={"subscripts": "ba"}),
            TestCase(shapes=((3, 3),), attrs={"subscripts": "ii->i"}),
            TestCase(shapes=((3, 3),), attrs={"subscripts": "ii"}),
            TestCase(shapes=((2, 2, 2),), attrs={"subscripts": "iii->i"}),
            TestCase(shapes=((2, 3),), attrs={"subscripts": "ij->"}),
            TestCase(shapes=((1, 3),), attrs={"subscripts": "ij->j"}),
            TestCase(shapes=((3,), (4,)), attrs={"subscripts": "i,j->ij"}),
            TestCase(shapes=((2, 3), (1, 3)), attrs={"subscripts": "ij,ij->ij"}),
            TestCase(shapes=((2, 3, 3), (2, 4)), attrs={"subscripts": "bii,bj->bij"}),
            TestCase(shapes=((3, 3, 2), (2, 4), (4,)), attrs={"subscripts": "iij,jk,k->ik"}),
            TestCase(shapes=((2, 1, 2, 3), (4, 3, 2)), attrs={"subscripts": "...ij,...jk->...ik"}),
            TestCase(shapes=((2, 1, 3), (3,)), attrs={"subscripts": "i...j,j->i..."}),
            TestCase(shapes=((2, 3), (3,)), attrs={"subscripts": "...,..."}),
            TestCase(shapes=((2, 3), (3,)), attrs={"subscripts": "...j,j"}),
        ),
        doc="np.einsum(subscripts, *operands): any subscripts, incl. diagonals and '...'",
    )
)


register(
    OpDef(
        name="eye",
        operands=(),
        attrs={"N": Attr(convert=as_dim), "dtype": Attr("float64", as_dtype)},
        infer=lambda specs, attrs: TensorSpec((attrs["N"], attrs["N"]), attrs["dtype"]),
        emit=lambda e: f"np.eye({e.dim(e.attrs['N'])}, dtype={np_dtype(e.attrs['dtype'])})",
        vjp=None,
        formula="(constant: no cotangent)",
        tests=(TestCase(shapes=(), attrs={"N": 3}),),
        doc="the N x N identity (np.eye); einsum's VJP ties diagonal labels with it",
    )
)
