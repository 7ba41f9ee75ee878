"""The op registry, filled by one module per op family.

leaves       input, param, const
elementwise  unary math, binary arithmetic, comparisons, where, astype, *_like
reductions   sum, mean, max, size
shape        reshape, transpose, broadcast_to
linalg       matmul
nn           softmax, log_softmax, softmax_cross_entropy, mse_loss, one_hot
"""

from . import elementwise, functions, leaves, linalg, nn, reductions, shape  # noqa: F401
from .functions import make_builder
from .registry import REGISTRY, OpDef, TensorSpec, TestCase, get_op

__all__ = ["REGISTRY", "OpDef", "TensorSpec", "TestCase", "functions", "get_op", "make_builder"]
