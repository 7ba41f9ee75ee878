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
nn           softmax, log_softmax, softmax_cross_entropy, mse_loss, one_hot,
             binary_cross_entropy_with_logits, dropout
nn_conv      conv2d, conv2d_input_grad, conv2d_weight_grad
nn_pool      max_pool2d, max_pool2d_grad, avg_pool2d, avg_pool2d_grad
nn_norm      layer_norm, batch_norm
nn_embedding embedding
nn_attention scaled_dot_product_attention, attention_weights
"""

from . import (  # noqa: F401  (importing a family registers its ops)
    activations,
    einsum,
    elementwise,
    functions,
    gathers,
    indexing,
    leaves,
    linalg,
    nn,
    nn_attention,
    nn_conv,
    nn_embedding,
    nn_norm,
    nn_pool,
    reductions,
    shape,
    unary,
)
from .functions import make_builder
from .registry import REGISTRY, OpDef, TensorSpec, TestCase, get_op

__all__ = ["REGISTRY", "OpDef", "TensorSpec", "TestCase", "functions", "get_op", "make_builder"]
