"""The matmul-only floor of the MLP: its eight GEMMs and nothing else, into buffers made once.

Forward x @ W1, h1 @ W2, h2 @ W3; backward h2.T @ d, d @ W3.T, h1.T @ dh2, dh2 @ W2.T,
x.T @ dh1 (no dx: x is data). The operands are the right shapes and dtype (the
activations are stand-ins, values do not matter to a GEMM), transposes are views, and
`out=` avoids any allocation: the time a value_and_grad cannot go below with these BLAS
calls. Not a full value_and_grad, so it is not checked, only timed.
"""

from __future__ import annotations

import numpy as np

from .impls import Prepared, Unavailable
from .workloads import Workload


def prepare(workload: Workload, inputs: dict) -> Prepared:
    if not workload.name.startswith("mlp"):
        raise Unavailable("the matmul floor is defined for the MLPs only")
    x = inputs["x"]
    Ws = [inputs[f"W{i}"] for i in (1, 2, 3)]
    n = x.shape[0]
    rng = np.random.default_rng(1)

    def buf(*shape):
        return rng.standard_normal(shape).astype(x.dtype)

    h1, h2, logits = buf(n, Ws[0].shape[1]), buf(n, Ws[1].shape[1]), buf(n, Ws[2].shape[1])
    dh1, dh2 = np.empty_like(h1), np.empty_like(h2)
    dW = [np.empty_like(W) for W in Ws]
    d = buf(*logits.shape)
    W1, W2, W3 = Ws

    def call():
        np.matmul(x, W1, out=h1)
        np.matmul(h1, W2, out=h2)
        np.matmul(h2, W3, out=logits)
        np.matmul(h2.T, d, out=dW[2])
        np.matmul(d, W3.T, out=dh2)
        np.matmul(h1.T, dh2, out=dW[1])
        np.matmul(dh2, W2.T, out=dh1)
        np.matmul(x.T, dh1, out=dW[0])
        return None

    return Prepared(call=call, convert=lambda r: (0.0, {}), checked=False)
