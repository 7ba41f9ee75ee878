"""The op registry, filled by one module per op family.

leaves       input, param, const
elementwise  unary math, binary arithmetic, maximum, minimum, clip, comparisons, where,
             astype, *_like
unary        log1p, expm1, reciprocal, abs, sin, cos, sign, floor, ceil, round, stop_gradient
activations  softplus, erf, erfc, leaky_relu, elu, gelu
indexing     getitem (x[...]) and slice_scatter, pad, cumsum
gathers      take, take_along_axis, and their transposes scatter_add, scatter_add_along_axis
reductions   sum, mean, max, min, prod, var, std, logsumexp, argmax, argmin, size
shape        reshape, transpose, broadcast_to, expand_dims, squeeze, concatenate, stack
linalg       matmul
einsum       einsum (any subscripts), eye
nn           softmax, log_softmax, softmax_cross_entropy, mse_loss, one_hot
"""

from . import (  # noqa: F401
    activations,
    einsum,
    elementwise,
    functions,
    gathers,
    indexing,
    leaves,
    linalg,
    nn,
    reductions,
    shape,
    unary,
)
from .functions import make_builder
from .registry import REGISTRY, OpDef, TensorSpec, TestCase, get_op

__all__ = ["REGISTRY", "OpDef", "TensorSpec", "TestCase", "functions", "get_op", "make_builder"]
