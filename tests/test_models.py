"""Whole models: each compiles, passes gg.gradcheck, and matches the same model written with
PyTorch modules (CPU, float64) on the same weights: loss and every parameter gradient.

LeNet-style CNN, a residual conv block with batch norm, a transformer encoder block
(against torch.nn.TransformerEncoderLayer), a GRU unrolled in time (against torch.nn.GRU)
and an embedding + mean-pool text classifier. PyTorch's linear layers keep their weights as
(out, in), graphgen's dense layers as (in, out): the weights are copied transposed.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
from graphs import KERNEL_LOOPS, loop_lines

import graphgen as gg

if os.environ.get("GRAPHGEN_SKIP_ORACLE") == "1":
    pytest.skip("GRAPHGEN_SKIP_ORACLE=1", allow_module_level=True)

import torch  # noqa: E402  (the oracle extra)
import torch.nn.functional as tF  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(1)


def dense(x, W, b):
    return x @ W + b


def init(rng, shapes: dict, scale: float = 1.0) -> dict:
    """Random weights: `scale` / sqrt(fan-in) for matrices and conv kernels, 0.1 for biases."""
    out = {}
    for name, shape in shapes.items():
        fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))
        std = 0.1 if len(shape) == 1 else scale / math.sqrt(fan_in)
        out[name] = rng.standard_normal(shape) * std
    return out


def set_weights(module: nn.Module, weights: dict) -> None:
    """Copy numpy weights into `module`'s parameters, by parameter name."""
    params = dict(module.named_parameters())
    assert sorted(params) == sorted(weights), (sorted(params), sorted(weights))
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(torch.as_tensor(value))


def check_model(g: gg.Graph, inputs: dict, torch_loss, grads_from_torch, rtol=1e-9) -> gg.Model:
    """Compile `g`, gradcheck it, and compare loss and gradients with PyTorch.

    torch_loss() runs the PyTorch model and returns its loss tensor; grads_from_torch() then
    maps each wrt name to PyTorch's gradient, in graphgen's layout.
    """
    model = gg.compile(g)
    loss, grads = model.value_and_grad(**inputs)
    # weights that saturate the model would make every comparison below vacuous
    assert 0.05 < float(loss) < 10
    assert max(np.max(np.abs(grads[n])) for n in model.wrt) > 1e-3
    assert gg.gradcheck(model, inputs, exhaustive_limit=16, directions=6).ok
    expected = torch_loss()
    expected.backward()
    np.testing.assert_allclose(loss, expected.item(), rtol=rtol)
    theirs = grads_from_torch()
    assert sorted(theirs) == sorted(model.wrt)
    for name in model.wrt:
        scale = max(np.max(np.abs(theirs[name])), 1.0)
        np.testing.assert_allclose(
            grads[name], theirs[name], rtol=rtol, atol=1e-12 * scale, err_msg=name
        )
    return model


def grad_of(param: torch.Tensor, transpose: bool = False) -> np.ndarray:
    grad = param.grad.detach().numpy()
    return grad.T if transpose else grad


# ---- LeNet-style CNN ---------------------------------------------------------------------


def lenet(dtype: str = "float64") -> gg.Graph:
    g = gg.Graph("lenet")
    x = g.input("x", ("batch", 1, 12, 12), dtype)
    y = g.input("y", ("batch",), "int64")
    w1, b1 = g.param("w1", (4, 1, 3, 3), dtype), g.param("b1", (4,), dtype)
    w2, b2 = g.param("w2", (6, 4, 2, 2), dtype), g.param("b2", (6,), dtype)
    W3, b3 = g.param("W3", (24, 10), dtype), g.param("b3", (10,), dtype)
    W4, b4 = g.param("W4", (10, 3), dtype), g.param("b4", (3,), dtype)
    h1 = gg.max_pool2d(gg.relu(gg.conv2d(x, w1, b1, name="c1")), 2, name="p1")  # (N, 4, 5, 5)
    h2 = gg.max_pool2d(gg.relu(gg.conv2d(h1, w2, b2, name="c2")), 2, name="p2")  # (N, 6, 2, 2)
    flat = gg.reshape(h2, ("batch", 24), name="flat")
    logits = dense(gg.relu(dense(flat, W3, b3)), W4, b4)
    g.output(gg.softmax_cross_entropy(logits, y, name="loss"))
    return g


LENET_SHAPES = {
    "w1": (4, 1, 3, 3),
    "b1": (4,),
    "w2": (6, 4, 2, 2),
    "b2": (6,),
    "W3": (24, 10),
    "b3": (10,),
    "W4": (10, 3),
    "b4": (3,),
}


def lenet_inputs(rng, batch: int = 3) -> dict:
    return {
        "x": rng.standard_normal((batch, 1, 12, 12)),
        "y": rng.integers(0, 3, batch),
        **init(rng, LENET_SHAPES, scale=1.5),
    }


def test_lenet_cnn_matches_pytorch(rng):
    inputs = lenet_inputs(rng)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 10),
        nn.ReLU(),
        nn.Linear(10, 3),
    ).double()
    p = inputs
    set_weights(
        net,
        {
            "0.weight": p["w1"],
            "0.bias": p["b1"],
            "3.weight": p["w2"],
            "3.bias": p["b2"],
            "7.weight": p["W3"].T,
            "7.bias": p["b3"],
            "9.weight": p["W4"].T,
            "9.bias": p["b4"],
        },
    )

    def torch_loss():
        return tF.cross_entropy(net(torch.tensor(p["x"])), torch.tensor(p["y"]))

    def grads():
        return {
            "w1": grad_of(net[0].weight),
            "b1": grad_of(net[0].bias),
            "w2": grad_of(net[3].weight),
            "b2": grad_of(net[3].bias),
            "W3": grad_of(net[7].weight, transpose=True),
            "b3": grad_of(net[7].bias),
            "W4": grad_of(net[9].weight, transpose=True),
            "b4": grad_of(net[9].bias),
        }

    model = check_model(lenet(), inputs, torch_loss, grads)
    # the symbolic batch binds at call time: the same module runs at batch 1
    one = {**inputs, "x": inputs["x"][:1], "y": inputs["y"][:1]}
    assert np.isfinite(model.forward(**one))


def test_lenet_stays_float32(rng):
    inputs = {
        n: v.astype(np.float32) if v.dtype == np.float64 else v
        for n, v in lenet_inputs(rng).items()
    }
    model = gg.compile(lenet("float32"))
    loss, grads = model.value_and_grad(**inputs)
    assert np.asarray(loss).dtype == np.float32
    assert {n: g.dtype for n, g in grads.items()} == {n: np.float32 for n in LENET_SHAPES}
    loss64, grads64 = gg.compile(lenet()).value_and_grad(
        **lenet_inputs(np.random.default_rng(1234))
    )
    np.testing.assert_allclose(loss, loss64, rtol=1e-5)
    for n in grads:
        np.testing.assert_allclose(
            grads[n], grads64[n], rtol=1e-3, atol=1e-5 * np.abs(grads64[n]).max()
        )


def test_lenet_generated_code_reads_like_numpy():
    source = gg.generate(lenet(), checks=False)
    assert re.search(r"c1 = _conv2d\(\s*x,\s*w1,\s*b1,\s*scratch=scratch,\s*out=_out\(", source)
    assert "d_w1 = _conv2d_weight_grad(" in source
    assert "_max_pool2d_grad(" in source
    # each kernel is defined once, and no kernel loops over the batch or the output pixels
    assert source.count("def _windows(") == 1
    # and the workspace helpers, which loop over the inputs
    assert loop_lines(source) == KERNEL_LOOPS | {"for leaf, d in zip(leaves, dtypes)"}


# ---- a residual conv block with batch norm and average pooling ---------------------------


def test_residual_batch_norm_block_matches_pytorch(rng):
    C = 3
    g = gg.Graph("resblock")
    x = g.input("x", ("batch", C, 6, 6))
    t = g.input("t", ("batch", 1))
    w1, w2 = g.param("w1", (C, C, 3, 3)), g.param("w2", (C, C, 3, 3))
    s1, o1 = g.param("s1", (C,)), g.param("o1", (C,))
    s2, o2 = g.param("s2", (C,)), g.param("o2", (C,))
    W, b = g.param("W", (C * 9, 1)), g.param("b", (1,))
    h = gg.relu(gg.batch_norm(gg.conv2d(x, w1, padding=1), s1, o1))
    h = gg.relu(gg.batch_norm(gg.conv2d(h, w2, padding=1), s2, o2) + x)
    pooled = gg.reshape(gg.avg_pool2d(h, 3, stride=2, padding=1), ("batch", C * 9))
    g.output(gg.binary_cross_entropy_with_logits(dense(pooled, W, b), t))

    p = {
        "x": rng.standard_normal((4, C, 6, 6)),
        "t": rng.uniform(0, 1, (4, 1)),
        **init(rng, {"w1": (C, C, 3, 3), "w2": (C, C, 3, 3), "W": (C * 9, 1)}, 1.5),
        "s1": rng.uniform(0.5, 1.5, C),
        "o1": rng.standard_normal(C) * 0.1,
        "s2": rng.uniform(0.5, 1.5, C),
        "o2": rng.standard_normal(C) * 0.1,
        "b": rng.standard_normal(1) * 0.1,
    }

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(C, C, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(C, track_running_stats=False)
            self.conv2 = nn.Conv2d(C, C, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(C, track_running_stats=False)
            self.pool = nn.AvgPool2d(3, stride=2, padding=1)
            self.head = nn.Linear(C * 9, 1)

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            h = torch.relu(self.bn2(self.conv2(h)) + x)
            return self.head(self.pool(h).flatten(1))

    net = Block().double().train()
    set_weights(
        net,
        {
            "conv1.weight": p["w1"],
            "conv2.weight": p["w2"],
            "bn1.weight": p["s1"],
            "bn1.bias": p["o1"],
            "bn2.weight": p["s2"],
            "bn2.bias": p["o2"],
            "head.weight": p["W"].T,
            "head.bias": p["b"],
        },
    )

    def torch_loss():
        logits = net(torch.tensor(p["x"]))
        return tF.binary_cross_entropy_with_logits(logits, torch.tensor(p["t"]))

    def grads():
        return {
            "w1": grad_of(net.conv1.weight),
            "w2": grad_of(net.conv2.weight),
            "s1": grad_of(net.bn1.weight),
            "o1": grad_of(net.bn1.bias),
            "s2": grad_of(net.bn2.weight),
            "o2": grad_of(net.bn2.bias),
            "W": grad_of(net.head.weight, transpose=True),
            "b": grad_of(net.head.bias),
        }

    check_model(g, p, torch_loss, grads)


# ---- transformer encoder block -------------------------------------------------------------


def gelu(x):
    """GELU: gg.gelu (exact erf form) once the elementwise family provides it; until then the
    tanh approximation composed from existing ops, compared with PyTorch's approximate="tanh"."""
    if hasattr(gg, "gelu"):
        return gg.gelu(x)
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
    return 0.5 * x * (1.0 + gg.tanh(inner))


TORCH_GELU = "gelu" if hasattr(gg, "gelu") else (lambda t: tF.gelu(t, approximate="tanh"))


def encoder_block(B: int, T: int, D: int, H: int, F: int) -> gg.Graph:
    """Post-norm encoder layer (PyTorch's default): LN(x + MHA(x)), then LN(h + FFN(h))."""
    g = gg.Graph("encoder")
    x = g.input("x", (B, T, D))
    keep = g.input("keep", (B, 1, 1, T), "bool")  # key padding: True = attend to this key
    target = g.input("target", (B, T, D))
    P = {n: g.param(n, s) for n, s in encoder_shapes(D, F).items()}

    def heads(t):  # (B, T, D) -> (B, H, T, D / H)
        return gg.transpose(gg.reshape(t, (B, T, H, D // H)), (0, 2, 1, 3))

    q, k, v = (heads(dense(x, P[f"W{n}"], P[f"b{n}"])) for n in "qkv")
    att = gg.scaled_dot_product_attention(q, k, v, keep, name="att")
    merged = gg.reshape(gg.transpose(att, (0, 2, 1, 3)), (B, T, D))
    h = gg.layer_norm(x + dense(merged, P["Wo"], P["bo"]), P["ln1_w"], P["ln1_b"], name="h")
    ffn = dense(gelu(dense(h, P["W1"], P["b1"])), P["W2"], P["b2"])
    out = gg.layer_norm(h + ffn, P["ln2_w"], P["ln2_b"], name="out")
    g.output(gg.mse_loss(out, target, name="loss"))
    return g


def encoder_shapes(D: int, F: int) -> dict:
    shapes = {f"W{n}": (D, D) for n in "qkvo"} | {f"b{n}": (D,) for n in "qkvo"}
    shapes |= {"W1": (D, F), "b1": (F,), "W2": (F, D), "b2": (D,)}
    return shapes | {"ln1_w": (D,), "ln1_b": (D,), "ln2_w": (D,), "ln2_b": (D,)}


def test_transformer_encoder_block_matches_pytorch(rng):
    B, T, D, H, F = 2, 4, 8, 2, 12
    keep = np.ones((B, T), dtype=bool)
    keep[1, 3] = keep[0, 1] = False  # padding keys
    p = {
        n: rng.standard_normal(s) * (0.1 if len(s) == 1 else 0.6 / math.sqrt(s[0]))
        for n, s in encoder_shapes(D, F).items()
    }
    p["ln1_w"] += 1.0
    p["ln2_w"] += 1.0
    inputs = {
        "x": rng.standard_normal((B, T, D)),
        "keep": keep.reshape(B, 1, 1, T),
        "target": rng.standard_normal((B, T, D)),
        **p,
    }
    layer = (
        nn.TransformerEncoderLayer(
            D, H, dim_feedforward=F, dropout=0.0, activation=TORCH_GELU, batch_first=True
        )
        .double()
        .train()
    )
    set_weights(
        layer,
        {
            "self_attn.in_proj_weight": np.concatenate([p["Wq"].T, p["Wk"].T, p["Wv"].T]),
            "self_attn.in_proj_bias": np.concatenate([p["bq"], p["bk"], p["bv"]]),
            "self_attn.out_proj.weight": p["Wo"].T,
            "self_attn.out_proj.bias": p["bo"],
            "linear1.weight": p["W1"].T,
            "linear1.bias": p["b1"],
            "linear2.weight": p["W2"].T,
            "linear2.bias": p["b2"],
            "norm1.weight": p["ln1_w"],
            "norm1.bias": p["ln1_b"],
            "norm2.weight": p["ln2_w"],
            "norm2.bias": p["ln2_b"],
        },
    )

    def torch_loss():
        out = layer(torch.tensor(inputs["x"]), src_key_padding_mask=torch.tensor(~keep))
        return tF.mse_loss(out, torch.tensor(inputs["target"]))

    def grads():
        attn = layer.self_attn
        wq, wk, wv = np.split(grad_of(attn.in_proj_weight), 3)
        bq, bk, bv = np.split(grad_of(attn.in_proj_bias), 3)
        return {
            "Wq": wq.T, "Wk": wk.T, "Wv": wv.T, "bq": bq, "bk": bk, "bv": bv,
            "Wo": grad_of(attn.out_proj.weight, transpose=True),
            "bo": grad_of(attn.out_proj.bias),
            "W1": grad_of(layer.linear1.weight, transpose=True),
            "b1": grad_of(layer.linear1.bias),
            "W2": grad_of(layer.linear2.weight, transpose=True),
            "b2": grad_of(layer.linear2.bias),
            "ln1_w": grad_of(layer.norm1.weight), "ln1_b": grad_of(layer.norm1.bias),
            "ln2_w": grad_of(layer.norm2.weight), "ln2_b": grad_of(layer.norm2.bias),
        }  # fmt: skip

    check_model(encoder_block(B, T, D, H, F), inputs, torch_loss, grads)


SLICING = hasattr(gg.Tensor, "__getitem__")  # x[...] builds a getitem node


# ---- GRU unrolled in time ------------------------------------------------------------------


def test_gru_unrolled_matches_pytorch(rng):
    """A GRU over T steps (PyTorch's gate equations), then a classifier on the last state.

    The sequence x (B, T, I) is cut into steps with tensor slicing `x[:, t]` where the
    builder has it (the shape-and-indexing family); otherwise the steps come in as separate
    inputs x0 .. x{T-1}.
    """
    B, T, In, Hd, C = 3, 4, 3, 5, 2
    g = gg.Graph("gru")
    if SLICING:
        seq = g.input("x", (B, T, In))
        xs = [seq[:, t] for t in range(T)]
    else:
        xs = [g.input(f"x{t}", (B, In)) for t in range(T)]
    h0 = g.input("h0", (B, Hd))
    y = g.input("y", (B,), "int64")
    gates = "rzn"
    Wi = {c: g.param(f"W_i{c}", (In, Hd)) for c in gates}
    Wh = {c: g.param(f"W_h{c}", (Hd, Hd)) for c in gates}
    bi = {c: g.param(f"b_i{c}", (Hd,)) for c in gates}
    bh = {c: g.param(f"b_h{c}", (Hd,)) for c in gates}
    Wc, bc = g.param("Wc", (Hd, C)), g.param("bc", (C,))
    h = h0
    for x in xs:
        r = gg.sigmoid(dense(x, Wi["r"], bi["r"]) + dense(h, Wh["r"], bh["r"]))
        z = gg.sigmoid(dense(x, Wi["z"], bi["z"]) + dense(h, Wh["z"], bh["z"]))
        n = gg.tanh(dense(x, Wi["n"], bi["n"]) + r * dense(h, Wh["n"], bh["n"]))
        h = (1.0 - z) * n + z * h
    g.output(gg.softmax_cross_entropy(dense(h, Wc, bc), y))

    shapes = {f"W_i{c}": (In, Hd) for c in gates} | {f"W_h{c}": (Hd, Hd) for c in gates}
    shapes |= {f"b_i{c}": (Hd,) for c in gates} | {f"b_h{c}": (Hd,) for c in gates}
    p = init(rng, shapes | {"Wc": (Hd, C), "bc": (C,)}, scale=1.5)
    x = rng.standard_normal((B, T, In))
    steps = {"x": x} if SLICING else {f"x{t}": x[:, t] for t in range(T)}
    inputs = {**steps, "h0": rng.standard_normal((B, Hd)) * 0.5}
    inputs |= {"y": rng.integers(0, C, B), **p}

    gru, head = nn.GRU(In, Hd, batch_first=True).double(), nn.Linear(Hd, C).double()
    stack = lambda kind: np.concatenate([p[f"{kind}{c}"].T for c in gates])  # noqa: E731
    set_weights(
        gru,
        {
            "weight_ih_l0": stack("W_i"),
            "weight_hh_l0": stack("W_h"),
            "bias_ih_l0": np.concatenate([p[f"b_i{c}"] for c in gates]),
            "bias_hh_l0": np.concatenate([p[f"b_h{c}"] for c in gates]),
        },
    )
    set_weights(head, {"weight": p["Wc"].T, "bias": p["bc"]})

    def torch_loss():
        _, last = gru(torch.tensor(x), torch.tensor(inputs["h0"])[None])
        return tF.cross_entropy(head(last[0]), torch.tensor(inputs["y"]))

    def grads():
        out = {"Wc": grad_of(head.weight, transpose=True), "bc": grad_of(head.bias)}
        for kind, name in (("W_i", "weight_ih_l0"), ("W_h", "weight_hh_l0")):
            for c, part in zip(gates, np.split(grad_of(getattr(gru, name)), 3)):
                out[f"{kind}{c}"] = part.T
        for kind, name in (("b_i", "bias_ih_l0"), ("b_h", "bias_hh_l0")):
            for c, part in zip(gates, np.split(grad_of(getattr(gru, name)), 3)):
                out[f"{kind}{c}"] = part
        return out

    check_model(g, inputs, torch_loss, grads)


# ---- embedding + mean-pool text classifier -------------------------------------------------


def test_embedding_mean_pool_classifier_matches_pytorch(rng):
    B, T, V, D, C, p_drop = 4, 6, 7, 5, 3, 0.25
    g = gg.Graph("bag_of_embeddings")
    tokens = g.input("tokens", ("batch", T), "int64")
    keep = g.input("keep", ("batch", D), "bool")
    labels = g.input("labels", ("batch",), "int64")
    table = g.param("table", (V, D))
    W, b = g.param("W", (D, C)), g.param("b", (C,))
    pooled = gg.mean(gg.embedding(tokens, table, name="emb"), axis=1, name="pooled")
    logits = dense(gg.dropout(pooled, keep, p_drop), W, b)
    g.output(gg.softmax_cross_entropy(logits, labels, name="loss"))

    inputs = {
        "tokens": rng.integers(0, V, (B, T)),  # 24 draws from 7 rows: repeated rows
        "keep": rng.random((B, D)) >= p_drop,
        "labels": rng.integers(0, C, B),
        "table": rng.standard_normal((V, D)),
        "W": rng.standard_normal((D, C)) * 0.5,
        "b": rng.standard_normal(C) * 0.1,
    }
    emb, head = nn.Embedding(V, D).double(), nn.Linear(D, C).double()
    set_weights(emb, {"weight": inputs["table"]})
    set_weights(head, {"weight": inputs["W"].T, "bias": inputs["b"]})

    def torch_loss():
        pooled = emb(torch.tensor(inputs["tokens"])).mean(dim=1)
        dropped = pooled * torch.tensor(inputs["keep"]) / (1 - p_drop)  # the same mask
        return tF.cross_entropy(head(dropped), torch.tensor(inputs["labels"]))

    def grads():
        return {
            "table": grad_of(emb.weight),
            "W": grad_of(head.weight, transpose=True),
            "b": grad_of(head.bias),
        }

    check_model(g, inputs, torch_loss, grads)
