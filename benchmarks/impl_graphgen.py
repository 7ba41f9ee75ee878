"""graphgen: each workload as a graph built with the builder API, compiled with `gg.compile`,
timed as `model.module.value_and_grad(*leaves)` (the generated function itself, leaves
positionally in INPUTS order, so the Model's keyword handling is not timed).

The CNN and the transformer use ops that are landing in other branches: conv2d(x, w, b,
stride, padding), max_pool2d(x, kernel_size), layer_norm(x, weight, bias, axis, eps) and
gelu(x, approximate). When the installed graphgen lacks one, `prepare` raises
Unavailable("graphgen: op X not available") instead of failing.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np

from .impls import Prepared, Unavailable, numpy_convert
from .workloads import Workload

try:
    import graphgen as gg
    from graphgen.ops import REGISTRY
except ImportError as exc:  # pragma: no cover - the benchmarks live in graphgen's repo
    raise Unavailable(f"graphgen not importable ({exc})") from None

# the ops each graph needs beyond the core set
NEEDS = {
    "mlp": ("matmul", "add", "relu", "softmax_cross_entropy"),
    "cnn": ("conv2d", "relu", "max_pool2d", "reshape", "matmul", "softmax_cross_entropy"),
    "transformer": (
        "layer_norm",
        "matmul",
        "reshape",
        "transpose",
        "softmax",
        "gelu",
        "mse_loss",
    ),
    "mlp_stack": ("matmul", "add", "tanh", "softmax_cross_entropy"),
}


def require_ops(family: str) -> None:
    missing = [op for op in NEEDS[family] if op not in REGISTRY]
    if missing:
        raise Unavailable(f"graphgen: op {', '.join(missing)} not available")


def _leaves(g, workload: Workload, dtype: str) -> dict:
    out = {}
    for leaf in workload.leaves:
        ldtype = "int64" if leaf.init.startswith("labels:") else dtype
        make = g.param if leaf.kind == "param" else g.input
        out[leaf.name] = make(leaf.name, leaf.shape, dtype=ldtype)
    return out


def build_mlp(workload: Workload, dtype: str, activation: str = "relu"):
    g = gg.Graph(workload.name.replace("-", "_"))
    t = _leaves(g, workload, dtype)
    act = getattr(gg, activation)
    n_layers = sum(1 for name in t if name.startswith("W"))
    h = t["x"]
    for i in range(1, n_layers + 1):
        z = gg.add(h @ t[f"W{i}"], t[f"b{i}"], name=f"z{i}")
        h = act(z, name=f"h{i}") if i < n_layers else z
    g.output(gg.softmax_cross_entropy(h, t["y"], name="loss"))
    return g


def build_cnn(workload: Workload, dtype: str):
    cfg = workload.config
    g = gg.Graph("cnn")
    t = _leaves(g, workload, dtype)
    z1 = gg.conv2d(t["x"], t["conv1_w"], t["conv1_b"], stride=1, padding=cfg["pad1"], name="z1")
    p1 = gg.max_pool2d(gg.relu(z1, name="a1"), kernel_size=cfg["pool"], name="p1")
    z2 = gg.conv2d(p1, t["conv2_w"], t["conv2_b"], stride=1, padding=cfg["pad2"], name="z2")
    p2 = gg.max_pool2d(gg.relu(z2, name="a2"), kernel_size=cfg["pool"], name="p2")
    n = p2.shape[0]
    flat = gg.reshape(p2, (n, -1), name="flat")
    logits = gg.add(flat @ t["fc_w"], t["fc_b"], name="logits")
    g.output(gg.softmax_cross_entropy(logits, t["y"], name="loss"))
    return g


def build_transformer(workload: Workload, dtype: str):
    cfg = workload.config
    B, T, D, H = cfg["batch"], cfg["seq"], cfg["d"], cfg["heads"]
    hd = D // H
    g = gg.Graph("transformer")
    t = _leaves(g, workload, dtype)
    x = t["x"]
    y1 = gg.layer_norm(x, t["ln1_w"], t["ln1_b"], axis=-1, eps=cfg["eps"], name="y1")

    def heads(name: str):  # (B, T, D) -> (B, H, T, hd)
        proj = gg.add(y1 @ t[f"W{name}"], t[f"b{name}"], name=name)
        return gg.transpose(gg.reshape(proj, (B, T, H, hd)), (0, 2, 1, 3), name=f"{name}_heads")

    q, k, v = heads("q"), heads("k"), heads("v")
    scores = gg.multiply(q @ gg.transpose(k, (0, 1, 3, 2)), 1.0 / math.sqrt(hd), name="scores")
    att = gg.softmax(scores, axis=-1, name="att")
    ctx = gg.reshape(gg.transpose(att @ v, (0, 2, 1, 3)), (B, T, D), name="ctx")
    h = gg.add(x, gg.add(ctx @ t["Wo"], t["bo"]), name="h")
    y2 = gg.layer_norm(h, t["ln2_w"], t["ln2_b"], axis=-1, eps=cfg["eps"], name="y2")
    f = gg.gelu(gg.add(y2 @ t["W1"], t["b1"]), approximate="none", name="f")
    out = gg.add(h, gg.add(f @ t["W2"], t["b2"]), name="out")
    g.output(gg.mse_loss(out, t["target"], name="loss"))
    return g


def build(workload: Workload, dtype: str):
    """The workload's graph (gg.Graph), after checking that graphgen has its ops."""
    family = workload.name.split("-")[0]
    if workload.name.startswith("mlp-depth"):
        require_ops("mlp_stack")
        return build_mlp(workload, dtype, activation="tanh")
    require_ops(family)
    return {"mlp": build_mlp, "cnn": build_cnn, "transformer": build_transformer}[family](
        workload, dtype
    )


def prepare(workload: Workload, inputs: dict, workspace: dict | None = None) -> Prepared:
    """The generated value_and_grad; with `workspace`, every call is given that dict."""
    dtype = next(str(v.dtype) for v in inputs.values() if v.dtype.kind == "f")
    model = gg.compile(build(workload, dtype))
    args = [inputs[name] for name in model.inputs]
    fn = model.module.value_and_grad
    if workspace is not None:
        fn = functools.partial(fn, workspace=workspace)
    info = {
        "graphgen": f"{gg.__version__} from {os.path.dirname(os.path.dirname(gg.__file__))}",
        "source_lines": len(model.source.splitlines()),
    }
    if workspace is not None:  # what the workspace holds between calls, after one call
        fn(*args)
        # its arrays; the views of them it keeps too (in dicts) hold no memory of their own
        kept = [b for slots in workspace.values() for b in slots.values()]
        arrays = [b for b in kept if isinstance(b, np.ndarray)]
        held = sum(b.nbytes for b in arrays)
        info["workspace"] = f"{held / 2**20:.2f} MB in {len(arrays)} buffers"
    return Prepared(call=lambda: fn(*args), convert=numpy_convert, info=info)
