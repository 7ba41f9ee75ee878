"""Neural-network ops: softmax, log_softmax, softmax_cross_entropy, mse_loss, one_hot,
binary_cross_entropy_with_logits, dropout.

softmax, log_softmax, softmax_cross_entropy and binary_cross_entropy_with_logits are emitted
as small kernels (templates in templates/kernels/) written so that large logits never
overflow. Their VJPs are fused: they are written in terms of the stable forward values
(softmax p, log-probabilities, sigmoid) instead of differentiating exp/log/sum one by one,
which would be slower and less stable.
"""

from __future__ import annotations

from ..naming import string_literal
from . import functions as F
from .reductions import ROW_REDUCTIONS
from .registry import (
    ATOM,
    CMP,
    MUL,
    Attr,
    OpDef,
    TensorSpec,
    TestCase,
    as_dim,
    as_int,
    as_number,
    one_of,
    register,
)
from .shapes import broadcast_shapes, float_result, fmt_shape, normalize_axes, require_float

SOFTMAX_KERNELS = (*ROW_REDUCTIONS, "softmax")  # _softmax and the reductions it calls

_AXIS = {"axis": Attr(-1, as_int, "the axis to normalize over")}


def _softmax_infer(specs, attrs) -> TensorSpec:
    require_float(specs[0], "x")
    normalize_axes((attrs["axis"],), specs[0].ndim)
    return specs[0]


def _softmax_vjp(g, out, args, attrs):
    axis = attrs["axis"]
    return (out * (g - F.sum(g * out, axis=axis, keepdims=True)),)


def _log_softmax_vjp(g, out, args, attrs):
    axis = attrs["axis"]
    return (g - F.exp(out) * F.sum(g, axis=axis, keepdims=True),)


_SOFTMAX_TESTS = (
    TestCase(shapes=((3, 5),)),
    TestCase(shapes=((2, 3, 4),), attrs={"axis": 1}),
    TestCase(shapes=((4,),), attrs={"axis": 0}),
)

register(
    OpDef(
        name="softmax",
        out_kwarg=True,
        operands=("x",),
        attrs=_AXIS,
        infer=_softmax_infer,
        emit=lambda e: f"_softmax({e.arg(0)}, axis={e.attrs['axis']})",
        kernel=SOFTMAX_KERNELS,
        fresh=True,
        vjp=_softmax_vjp,
        formula="dx = p * (g - sum(g * p, axis)), p = softmax(x)  (fused)",
        tests=_SOFTMAX_TESTS,
        doc="exp(x) / sum(exp(x), axis), shifted by the max",
    )
)
register(
    OpDef(
        name="log_softmax",
        operands=("x",),
        attrs=_AXIS,
        infer=_softmax_infer,
        emit=lambda e: f"_log_softmax({e.arg(0)}, axis={e.attrs['axis']})",
        kernel=(*ROW_REDUCTIONS, "log_softmax"),
        fresh=True,
        vjp=_log_softmax_vjp,
        formula="dx = g - exp(y) * sum(g, axis), y = log_softmax(x)  (fused)",
        tests=_SOFTMAX_TESTS,
        doc="x - logsumexp(x, axis), stable",
    )
)

_REDUCTION = {"reduction": Attr("mean", one_of("mean", "sum", "none"))}


def _sce_infer(specs, attrs) -> TensorSpec:
    logits, labels = specs
    require_float(logits, "logits")
    if labels.dtype != "int64":
        raise ValueError(f"labels must be int64, got {labels.dtype}")
    if logits.ndim != labels.ndim + 1:
        raise ValueError("logits must have one more dim (classes, last) than labels")
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"labels must have the leading dims of logits {fmt_shape(logits.shape[:-1])}, "
            f"got {fmt_shape(labels.shape)}"
        )
    shape = logits.shape[:-1] if attrs["reduction"] == "none" else ()
    return TensorSpec(shape, logits.dtype)


def scale_for_reduction(g, values, reduction: str):
    """The per-element cotangent of a reduced loss: g / n for mean, g for sum, g for none."""
    if reduction == "mean":
        return g / F.size(values)
    return g


def _sce_vjp(g, out, args, attrs):
    logits, labels = args
    scale = scale_for_reduction(g, labels, attrs["reduction"])
    if attrs["reduction"] == "none":
        scale = F.reshape(scale, scale.shape + (1,))
    return F.softmax_cross_entropy_grad(logits, labels, scale), None


register(
    OpDef(
        name="softmax_cross_entropy",
        fresh=True,
        operands=("logits", "labels"),
        attrs=_REDUCTION,
        infer=_sce_infer,
        emit=lambda e: (
            f"_softmax_cross_entropy({e.arg(0)}, {e.arg(1)}, "
            f"{string_literal(e.attrs['reduction'])})"
        ),
        kernel=(*ROW_REDUCTIONS, "softmax_cross_entropy"),
        vjp=_sce_vjp,
        formula="dlogits = (softmax(logits) - onehot(labels)) * g / N",
        tests=(
            TestCase(shapes=((4, 5), (4,)), domains=("real", "int:5")),
            TestCase(shapes=((4, 3), (4,)), attrs={"reduction": "sum"}, domains=("real", "int:3")),
            TestCase(
                shapes=((2, 3, 4), (2, 3)), attrs={"reduction": "none"}, domains=("real", "int:4")
            ),
        ),
        doc="softmax cross-entropy of logits (..., C) against int labels (...); fused VJP "
        "(N: the number of labels for mean, 1 for sum and none)",
    )
)


def _sce_grad_infer(specs, attrs) -> TensorSpec:
    logits, labels, scale = specs
    _sce_infer((logits, labels), {"reduction": "none"})
    require_float(scale, "scale")
    rows = tuple(logits.shape[:-1]) + (1,)
    if tuple(scale.shape) not in ((), rows):
        raise ValueError(
            f"scale must be a scalar or {fmt_shape(rows)} (one factor per row), "
            f"got {fmt_shape(scale.shape)}"
        )
    return logits


register(
    OpDef(
        name="softmax_cross_entropy_grad",
        out_kwarg=True,
        fresh=True,
        operands=("logits", "labels", "scale"),
        infer=_sce_grad_infer,
        emit=lambda e: f"_softmax_cross_entropy_grad({e.arg(0)}, {e.arg(1)}, {e.arg(2)})",
        kernel=(*SOFTMAX_KERNELS, "softmax_cross_entropy_grad"),
        vjp=None,
        formula="(backward op of softmax_cross_entropy: second derivatives are out of scope)",
        tests=(
            TestCase(shapes=((4, 5), (4,), ()), domains=("real", "int:5", "real")),
            TestCase(shapes=((2, 3, 4), (2, 3), (2, 3, 1)), domains=("real", "int:4", "real")),
        ),
        doc="(softmax(logits) - one_hot(labels)) * scale, the gradient of "
        "softmax_cross_entropy with respect to its logits, in one array: the softmax, 1 "
        "taken from each row's label entry, then the scaling in place",
    )
)


def _mse_infer(specs, attrs) -> TensorSpec:
    a, b = specs
    shape = broadcast_shapes(a.shape, b.shape)
    return TensorSpec(shape if attrs["reduction"] == "none" else (), float_result(a.dtype, b.dtype))


def _emit_mse(e) -> str:
    return f"_mse_loss({e.arg(0)}, {e.arg(1)}, {string_literal(e.attrs['reduction'])})"


def _mse_vjp(g, out, args, attrs):
    diff = args[0] - args[1]
    d = 2.0 * diff * scale_for_reduction(g, diff, attrs["reduction"])
    return d, -d


register(
    OpDef(
        name="mse_loss",
        fresh=True,
        operands=("input", "target"),
        attrs=_REDUCTION,
        infer=_mse_infer,
        emit=_emit_mse,
        kernel="mse_loss",
        vjp=_mse_vjp,
        formula="dinput = 2 * (input - target) * g / n, dtarget = -dinput",
        tests=(
            TestCase(shapes=((3, 4), (3, 4))),
            TestCase(shapes=((3, 4), (4,)), attrs={"reduction": "sum"}),
            TestCase(shapes=((3, 4), (3, 4)), attrs={"reduction": "none"}),
        ),
        doc="mean squared error (PyTorch's mse_loss)",
    )
)


def _one_hot_infer(specs, attrs) -> TensorSpec:
    if specs[0].dtype != "int64":
        raise ValueError(f"labels must be int64, got {specs[0].dtype}")
    return TensorSpec(specs[0].shape + (attrs["num_classes"],), "bool")


register(
    OpDef(
        name="one_hot",
        fresh=True,
        operands=("labels",),
        attrs={"num_classes": Attr(convert=as_dim)},
        infer=_one_hot_infer,
        emit=lambda e: f"{e.arg(0, ATOM)}[..., None] == np.arange({e.dim(e.attrs['num_classes'])})",
        prec=CMP,
        vjp=None,
        formula="(integer labels: no gradient)",
        tests=(TestCase(shapes=((4,),), attrs={"num_classes": 3}, domains=("int:3",)),),
        doc="labels[..., None] == arange(num_classes), a bool tensor",
    )
)


# ---- binary cross-entropy with logits ----------------------------------------------------


def _bce_infer(specs, attrs) -> TensorSpec:
    logits, targets = specs
    require_float(logits, "logits")
    require_float(targets, "targets")
    shape = broadcast_shapes(logits.shape, targets.shape)
    dtype = float_result(logits.dtype, targets.dtype)
    return TensorSpec(shape if attrs["reduction"] == "none" else (), dtype)


def _bce_vjp(g, out, args, attrs):
    logits, targets = args
    diff = F.sigmoid(logits) - targets
    scale = scale_for_reduction(g, diff, attrs["reduction"])
    return diff * scale, -logits * scale


register(
    OpDef(
        name="binary_cross_entropy_with_logits",
        operands=("logits", "targets"),
        attrs=_REDUCTION,
        infer=_bce_infer,
        emit=lambda e: (
            f"_binary_cross_entropy_with_logits({e.arg(0)}, {e.arg(1)}, "
            f"{e.attrs['reduction']!r})"
        ),
        kernel="binary_cross_entropy_with_logits",
        vjp=_bce_vjp,
        formula="dlogits = (sigmoid(logits) - targets) * g / n, dtargets = -logits * g / n",
        tests=(
            TestCase(shapes=((4, 3), (4, 3)), domains=("real", "unit")),
            TestCase(shapes=((5,), (5,)), attrs={"reduction": "sum"}, domains=("real", "unit")),
            TestCase(
                shapes=((2, 3), (2, 3)), attrs={"reduction": "none"}, domains=("real", "unit")
            ),
            TestCase(shapes=((3, 4), (4,)), domains=("real", "unit")),
            TestCase(shapes=((), ()), domains=("real", "unit")),
        ),
        doc="PyTorch's binary_cross_entropy_with_logits, max(x, 0) - x * t + log1p(exp(-|x|)): "
        "stable for any logits; targets in [0, 1] broadcast against logits and get a "
        "gradient too; fused VJP through sigmoid (n: the element count for mean, else 1)",
    )
)

# ---- dropout -----------------------------------------------------------------------------


def _probability(v) -> float:
    v = as_number(v)
    if not 0 <= v <= 1:
        raise ValueError("expected a probability in [0, 1]")
    return float(v)


def _dropout_infer(specs, attrs) -> TensorSpec:
    x, mask = specs
    require_float(x, "x")
    if mask.dtype != "bool":
        raise ValueError(f"mask must be bool (True = keep), got {mask.dtype}")
    return TensorSpec(broadcast_shapes(x.shape, mask.shape), x.dtype)


def _keep_scale(p: float) -> float:
    """1 / (1 - p): the kept entries' scale (0 when everything is dropped, as in PyTorch)."""
    return 0.0 if p == 1 else 1.0 / (1.0 - p)


register(
    OpDef(
        name="dropout",
        operands=("x", "mask"),
        attrs={"p": Attr(0.5, _probability, "the probability that an entry is dropped")},
        infer=_dropout_infer,
        emit=lambda e: f"{e.arg(0, MUL)} * {e.arg(1, MUL + 1)} * {_keep_scale(e.attrs['p'])!r}",
        prec=MUL,
        vjp=lambda g, out, args, attrs: (F.dropout(g, args[1], p=attrs["p"]), None),
        formula="dx = dropout(g, mask, p) = g * mask / (1 - p)",
        tests=(
            TestCase(shapes=((3, 4), (3, 4)), domains=("real", "bool")),
            TestCase(shapes=((2, 3, 4), (2, 1, 4)), attrs={"p": 0.25}, domains=("real", "bool")),
            TestCase(shapes=((4,), (3, 4)), attrs={"p": 0.0}, domains=("real", "bool")),
            TestCase(shapes=((2, 2), (2, 2)), attrs={"p": 1.0}, domains=("real", "bool")),
        ),
        doc="inverted dropout with a given bool mask (True = keep; draw it outside, e.g. "
        "rng.random(shape) >= p): x * mask / (1 - p), broadcasting; zeros when p = 1",
    )
)
