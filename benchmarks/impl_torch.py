"""PyTorch eager: the loss built from torch.nn.functional, gradients by torch.autograd.grad.

Inputs are converted once (torch.from_numpy shares the memory); a call is one forward and
one `torch.autograd.grad` over every param, which returns fresh gradient tensors (no
`.grad` accumulation to reset). Threads: PyTorch's default (one per core).
"""

from __future__ import annotations

import math

from .impls import Prepared, Unavailable
from .impls import loss_for as shared_loss_for
from .workloads import Workload

try:
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # reported, not crashed on
    raise Unavailable(f"torch not installed ({exc})") from None


def mlp_loss(p, x, y):
    h = torch.relu(x @ p["W1"] + p["b1"])
    h = torch.relu(h @ p["W2"] + p["b2"])
    return F.cross_entropy(h @ p["W3"] + p["b3"], y)


def cnn_loss(p, x, y, pad1=2, pad2=0):
    a = F.max_pool2d(torch.relu(F.conv2d(x, p["conv1_w"], p["conv1_b"], padding=pad1)), 2)
    a = F.max_pool2d(torch.relu(F.conv2d(a, p["conv2_w"], p["conv2_b"], padding=pad2)), 2)
    return F.cross_entropy(a.flatten(1) @ p["fc_w"] + p["fc_b"], y)


def transformer_loss(p, x, target, heads=4, eps=1e-5):
    B, T, D = x.shape
    hd = D // heads
    y = F.layer_norm(x, (D,), p["ln1_w"], p["ln1_b"], eps)

    def split(t):  # (B, T, D) -> (B, H, T, hd)
        return t.reshape(B, T, heads, hd).transpose(1, 2)

    q = split(y @ p["Wq"] + p["bq"])
    k = split(y @ p["Wk"] + p["bk"])
    v = split(y @ p["Wv"] + p["bv"])
    att = torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(hd)), dim=-1)
    ctx = (att @ v).transpose(1, 2).reshape(B, T, D)
    h = x + ctx @ p["Wo"] + p["bo"]
    y2 = F.layer_norm(h, (D,), p["ln2_w"], p["ln2_b"], eps)
    out = h + F.gelu(y2 @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    return F.mse_loss(out, target)


def loss_for(workload: Workload):
    return shared_loss_for(workload, "PyTorch", mlp_loss, cnn_loss, transformer_loss)


def prepare(workload: Workload, inputs: dict) -> Prepared:
    loss_fn = loss_for(workload)
    names = workload.params
    params = {n: torch.from_numpy(inputs[n].copy()).requires_grad_(True) for n in names}
    data = [torch.from_numpy(inputs[leaf.name]) for leaf in workload.leaves if leaf.kind != "param"]
    plist = [params[n] for n in names]

    def call():
        loss = loss_fn(params, *data)
        grads = torch.autograd.grad(loss, plist)
        return loss, grads

    def convert(result):
        loss, grads = result
        return float(loss.detach()), {n: g.detach().numpy() for n, g in zip(names, grads)}

    info = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "mkl": bool(torch.backends.mkl.is_available()),
    }
    return Prepared(call=call, convert=convert, info=info)
