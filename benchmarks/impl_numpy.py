"""Hand-written NumPy backprop: the baseline every other implementation is measured against.

Written the way a careful engineer would: transposes as views that BLAS takes without a
copy (`h.T @ d`), in-place updates where a buffer is dead (`z += b`, `np.maximum(z, 0,
out=z)`), the softmax reused as the cross-entropy gradient, convolutions as one im2col
GEMM in a channels-last layout, max-pool on strided views, attention's Q/K/V projections
fused into one GEMM. It allocates its temporaries per call like any ordinary NumPy code
(no workspace kept between calls). Float32 inputs give float32 all the way through.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .impls import Prepared, numpy_convert
from .workloads import Workload

# ---- shared pieces ---------------------------------------------------------------------


def softmax_xent(logits: np.ndarray, y: np.ndarray):
    """(mean cross-entropy, d loss / d logits); overwrites `logits` with the gradient."""
    n = logits.shape[0]
    rows = np.arange(n)
    logits -= logits.max(axis=1, keepdims=True)
    picked = logits[rows, y]
    np.exp(logits, out=logits)
    s = logits.sum(axis=1, keepdims=True)
    loss = np.log(s).mean() - picked.mean()
    logits /= s  # softmax
    logits[rows, y] -= 1.0
    logits *= 1.0 / n
    return loss, logits


def dense_backward(d: np.ndarray, h: np.ndarray, W: np.ndarray, need_dh: bool = True):
    """Gradients of h @ W + b given d = d loss / d out: (dW, db, dh)."""
    dW = h.T @ d
    db = d.sum(axis=0)
    dh = d @ W.T if need_dh else None
    return dW, db, dh


# ---- MLP -------------------------------------------------------------------------------


def mlp_value_and_grad(x, y, W1, b1, W2, b2, W3, b3):
    h1 = x @ W1
    h1 += b1
    np.maximum(h1, 0, out=h1)
    h2 = h1 @ W2
    h2 += b2
    np.maximum(h2, 0, out=h2)
    logits = h2 @ W3
    logits += b3
    loss, d = softmax_xent(logits, y)
    dW3, db3, dh2 = dense_backward(d, h2, W3)
    dh2 *= h2 > 0  # relu'(z2), from its output
    dW2, db2, dh1 = dense_backward(dh2, h1, W2)
    dh1 *= h1 > 0
    dW1, db1, _ = dense_backward(dh1, x, W1, need_dh=False)
    return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}


# ---- CNN (channels-last inside; NCHW/OIHW at the interface, as in PyTorch) -------------


def _pad_hw(a: np.ndarray, p: int) -> np.ndarray:
    """(N, H, W, C) zero-padded by p on both sides of H and W (a copy even when p == 0)."""
    if p == 0:
        return a
    n, h, w, c = a.shape
    out = np.zeros((n, h + 2 * p, w + 2 * p, c), a.dtype)
    out[:, p : p + h, p : p + w] = a
    return out


def _im2col(a: np.ndarray, k: int) -> np.ndarray:
    """(N, Hp, Wp, C) -> (N*Ho*Wo, k*k*C) patches ordered (kh, kw, C).

    Two layouts, whichever copies faster: for C > 1 one strided copy of the window view
    (contiguous runs of kw*C); for C == 1 (the first layer) k*k slice copies into a
    (kh*kw, N*Ho*Wo) buffer, returned transposed (a view BLAS takes as it is).
    """
    n, hp, wp, c = a.shape
    ho, wo = hp - k + 1, wp - k + 1
    if c == 1:
        cols_t = np.empty((k, k, n, ho, wo), a.dtype)
        for i in range(k):
            for j in range(k):
                cols_t[i, j] = a[:, i : i + ho, j : j + wo, 0]
        return cols_t.reshape(k * k, n * ho * wo).T
    win = sliding_window_view(a, (k, k), axis=(1, 2))  # (N, Ho, Wo, C, kh, kw), a view
    cols = np.empty((n, ho, wo, k, k, c), a.dtype)
    np.copyto(cols, win.transpose(0, 1, 2, 4, 5, 3))
    return cols.reshape(n * ho * wo, k * k * c)


def _col2im_add(dz2: np.ndarray, wm: np.ndarray, shape: tuple, k: int) -> np.ndarray:
    """d input of the conv from dz2 (N*Ho*Wo, F): the patches' gradient dz2 @ wm computed
    as k*k (N*Ho*Wo, C) blocks (one batched matmul) so that each block is scatter-added
    into the (N, Hp, Wp, C) result with contiguous reads."""
    n, hp, wp, c = shape
    ho, wo = hp - k + 1, wp - k + 1
    w3 = wm.reshape(-1, k * k, c).transpose(1, 0, 2)  # (kh*kw, F, C)
    blocks = np.matmul(dz2, w3).reshape(k, k, n, ho, wo, c)
    out = np.zeros(shape, dz2.dtype)
    for i in range(k):
        for j in range(k):
            out[:, i : i + ho, j : j + wo] += blocks[i, j]
    return out


def _conv_forward(a_nhwc: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int):
    """relu(conv(a) + b) channels-last, and the patches kept for the backward."""
    f, _, k, _ = w.shape
    a_p = _pad_hw(a_nhwc, pad)
    cols = _im2col(a_p, k)
    wm = w.transpose(0, 2, 3, 1).reshape(f, -1)  # (F, kh*kw*C), matches the patch order
    n, hp, wp, _ = a_p.shape
    z = cols @ wm.T
    z += b
    np.maximum(z, 0, out=z)
    return z.reshape(n, hp - k + 1, wp - k + 1, f), cols, wm, a_p.shape


def _conv_backward(dz: np.ndarray, cols, wm, w_shape, padded_shape, pad: int, need_dx: bool):
    """(dw OIHW, db, d input NHWC or None) for the conv whose relu'd output had grad dz."""
    f, c, k, _ = w_shape
    dz2 = dz.reshape(-1, f)
    db = dz2.sum(axis=0)
    dw = (dz2.T @ cols).reshape(f, k, k, c).transpose(0, 3, 1, 2)
    if not need_dx:
        return dw, db, None
    dx = _col2im_add(dz2, wm, padded_shape, k)
    if pad:
        dx = dx[:, pad:-pad, pad:-pad]
    return dw, db, dx


def _pool_views(a: np.ndarray):
    """The four (N, H/2, W/2, C) strided views of 2x2 windows, in row-major window order."""
    return (a[:, 0::2, 0::2], a[:, 0::2, 1::2], a[:, 1::2, 0::2], a[:, 1::2, 1::2])


def _max_pool2(a: np.ndarray) -> np.ndarray:
    v = _pool_views(a)
    out = np.maximum(v[0], v[1])
    np.maximum(out, v[2], out=out)
    np.maximum(out, v[3], out=out)
    return out


def _max_pool2_relu_backward(dp: np.ndarray, a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Grad of relu-then-pool's input: to the first max of each window (as PyTorch), times
    relu' (p > 0 on the window: the max is positive exactly when the winner's input was)."""
    g = dp * (p > 0)
    dz = np.empty_like(a)
    free = None
    for view, dview in zip(_pool_views(a), _pool_views(dz)):
        hit = view == p
        if free is None:
            free = ~hit
        else:
            hit &= free
            free &= ~hit
        np.multiply(g, hit, out=dview)
    return dz


def cnn_value_and_grad(x, y, conv1_w, conv1_b, conv2_w, conv2_b, fc_w, fc_b, pad1=2, pad2=0):
    n = x.shape[0]
    a1, cols1, wm1, padded1 = _conv_forward(x.transpose(0, 2, 3, 1), conv1_w, conv1_b, pad1)
    p1 = _max_pool2(a1)
    a2, cols2, wm2, padded2 = _conv_forward(p1, conv2_w, conv2_b, pad2)
    p2 = _max_pool2(a2)
    flat = p2.transpose(0, 3, 1, 2).reshape(n, -1)  # PyTorch's (C, H, W) flatten order
    logits = flat @ fc_w
    logits += fc_b
    loss, d = softmax_xent(logits, y)
    dfc_w, dfc_b, dflat = dense_backward(d, flat, fc_w)
    dp2 = dflat.reshape(n, p2.shape[3], p2.shape[1], p2.shape[2]).transpose(0, 2, 3, 1)
    dz2 = _max_pool2_relu_backward(dp2, a2, p2)
    dw2, db2, dp1 = _conv_backward(dz2, cols2, wm2, conv2_w.shape, padded2, pad2, True)
    dz1 = _max_pool2_relu_backward(dp1, a1, p1)
    dw1, db1, _ = _conv_backward(dz1, cols1, wm1, conv1_w.shape, padded1, pad1, False)
    return loss, {
        "conv1_w": dw1,
        "conv1_b": db1,
        "conv2_w": dw2,
        "conv2_b": db2,
        "fc_w": dfc_w,
        "fc_b": dfc_b,
    }


# ---- transformer block -----------------------------------------------------------------

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _erf():
    """erf(a, out=a): scipy.special.erf when scipy is there (what hand-written code would
    use), else math.erf vectorized (exact but slow; the run's notes say which)."""
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - scipy comes with the bench extra
        vec = np.vectorize(math.erf, otypes=[np.float64])

        def erf(a, out):
            out[...] = vec(a)
            return out

        erf.slow = True
    return erf


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float):
    """Over the last axis of a 2-D x: (y, xhat, rstd)."""
    xhat = x - x.mean(axis=1, keepdims=True)
    var = np.einsum("ij,ij->i", xhat, xhat)[:, None]
    var *= 1.0 / x.shape[1]
    var += eps
    rstd = np.sqrt(var, out=var)
    np.reciprocal(rstd, out=rstd)
    xhat *= rstd
    y = xhat * w
    y += b
    return y, xhat, rstd


def _layer_norm_backward(dy: np.ndarray, xhat: np.ndarray, rstd: np.ndarray, w: np.ndarray):
    """(dx, dw, db) of the 2-D layer norm."""
    dw = np.einsum("ij,ij->j", dy, xhat)
    db = dy.sum(axis=0)
    dxhat = dy * w
    inv_d = 1.0 / xhat.shape[1]
    m1 = dxhat.sum(axis=1, keepdims=True)
    m1 *= inv_d
    m2 = np.einsum("ij,ij->i", dxhat, xhat)[:, None]
    m2 *= inv_d
    dxhat -= m1
    xhat *= m2  # xhat is dead after this
    dxhat -= xhat
    dxhat *= rstd
    return dxhat, dw, db


def transformer_value_and_grad(
    x, target, ln1_w, ln1_b, Wq, bq, Wk, bk, Wv, bv, Wo, bo, ln2_w, ln2_b, W1, b1, W2, b2,
    heads=4, eps=1e-5, erf=None,
):  # fmt: skip
    erf = erf or _erf()
    B, T, D = x.shape
    H, hd = heads, D // heads
    M = B * T
    scale = 1.0 / math.sqrt(hd)
    x2 = x.reshape(M, D)

    # attention, Q/K/V in one GEMM
    y1, xhat1, rstd1 = _layer_norm(x2, ln1_w, ln1_b, eps)
    Wqkv = np.concatenate((Wq, Wk, Wv), axis=1)
    qkv = y1 @ Wqkv
    qkv += np.concatenate((bq, bk, bv))
    qkv5 = qkv.reshape(B, T, 3, H, hd)
    q, k, v = (qkv5[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (B, H, T, dh) views
    P = q @ k.transpose(0, 1, 3, 2)
    P *= scale
    P -= P.max(axis=-1, keepdims=True)
    np.exp(P, out=P)
    P /= P.sum(axis=-1, keepdims=True)
    ctx = np.empty((B, T, H, hd), x.dtype)
    np.matmul(P, v, out=ctx.transpose(0, 2, 1, 3))
    ctx2 = ctx.reshape(M, D)
    h = ctx2 @ Wo
    h += bo
    h += x2

    # feed-forward
    y2, xhat2, rstd2 = _layer_norm(h, ln2_w, ln2_b, eps)
    f = y2 @ W1
    f += b1
    cdf = f * _SQRT1_2
    erf(cdf, out=cdf)
    cdf += 1.0
    cdf *= 0.5
    u = f * cdf
    out = u @ W2
    out += b2
    out += h

    # loss
    diff = out
    diff -= target.reshape(M, D)
    loss = np.vdot(diff, diff) / diff.size
    dout = diff
    dout *= 2.0 / diff.size

    # backward: feed-forward
    dW2, db2, du = dense_backward(dout, u, W2)
    pdf = np.square(f)  # gelu'(f) = cdf + f * pdf(f)
    pdf *= -0.5
    np.exp(pdf, out=pdf)
    pdf *= _INV_SQRT_2PI
    pdf *= f
    pdf += cdf
    du *= pdf
    dW1, db1, dy2 = dense_backward(du, y2, W1)
    dh, dln2_w, dln2_b = _layer_norm_backward(dy2, xhat2, rstd2, ln2_w)
    dh += dout  # residual

    # backward: attention
    dWo, dbo, dctx2 = dense_backward(dh, ctx2, Wo)
    dctx = dctx2.reshape(B, T, H, hd).transpose(0, 2, 1, 3)
    dP = dctx @ v.transpose(0, 1, 3, 2)
    dP -= np.einsum("bhij,bhij->bhi", dP, P)[..., None]
    dP *= P
    dP *= scale  # dS
    dqkv = np.empty((B, T, 3, H, hd), x.dtype)
    np.matmul(dP, k, out=dqkv[:, :, 0].transpose(0, 2, 1, 3))
    np.matmul(dP.transpose(0, 1, 3, 2), q, out=dqkv[:, :, 1].transpose(0, 2, 1, 3))
    np.matmul(P.transpose(0, 1, 3, 2), dctx, out=dqkv[:, :, 2].transpose(0, 2, 1, 3))
    dqkv2 = dqkv.reshape(M, 3 * D)
    dWqkv, dbqkv, dy1 = dense_backward(dqkv2, y1, Wqkv)
    dx_ln, dln1_w, dln1_b = _layer_norm_backward(dy1, xhat1, rstd1, ln1_w)
    del dx_ln  # x is an input: its gradient is not asked for
    return loss, {
        "ln1_w": dln1_w,
        "ln1_b": dln1_b,
        "Wq": dWqkv[:, :D],
        "bq": dbqkv[:D],
        "Wk": dWqkv[:, D : 2 * D],
        "bk": dbqkv[D : 2 * D],
        "Wv": dWqkv[:, 2 * D :],
        "bv": dbqkv[2 * D :],
        "Wo": dWo,
        "bo": dbo,
        "ln2_w": dln2_w,
        "ln2_b": dln2_b,
        "W1": dW1,
        "b1": db1,
        "W2": dW2,
        "b2": db2,
    }


# ---- entry points ----------------------------------------------------------------------


def function_for(workload: Workload):
    """The hand-written value_and_grad of `workload`, taking its leaves positionally."""
    family = workload.name.split("-")[0]
    if family == "mlp":
        return mlp_value_and_grad
    if family == "cnn":
        cfg = workload.config
        return lambda *a: cnn_value_and_grad(*a, pad1=cfg["pad1"], pad2=cfg["pad2"])
    if family == "transformer":
        cfg = workload.config
        erf = _erf()
        return lambda *a: transformer_value_and_grad(
            *a, heads=cfg["heads"], eps=cfg["eps"], erf=erf
        )
    raise ValueError(f"no hand-written NumPy for {workload.name}")


def value_and_grad(workload: Workload, inputs: dict) -> tuple:
    return function_for(workload)(*(inputs[n] for n in workload.input_names))


def prepare(workload: Workload, inputs: dict) -> Prepared:
    fn = function_for(workload)
    args = [inputs[n] for n in workload.input_names]
    info = {}
    if workload.name == "transformer":
        info["erf"] = "math.erf (slow)" if getattr(_erf(), "slow", False) else "scipy erf"
    return Prepared(call=lambda: fn(*args), convert=numpy_convert, info=info)
