"""The four workloads of issue 6: their exact shapes, parameters and deterministic inputs.

Every implementation computes the same scalar loss of the same leaves, in the order given
here, and returns its gradient with respect to every param (a dict keyed by param name).

- mlp-b32 / mlp-b512: x (B, 784) -> relu(x @ W1 + b1) (B, 256) -> relu(. @ W2 + b2) (B, 256)
  -> . @ W3 + b3 (B, 10) -> softmax cross-entropy with int64 labels y (B,), mean over B.
- cnn (LeNet-style, batch 32), NCHW activations, OIHW kernels as in PyTorch:
  x (32, 1, 28, 28) -> conv 5x5, 8 filters, padding 2 -> relu -> max-pool 2 -> (32, 8, 14, 14)
  -> conv 5x5, 16 filters, no padding -> relu -> max-pool 2 -> (32, 16, 5, 5)
  -> flatten (C, H, W order) (32, 400) -> dense (400, 10) -> softmax cross-entropy.
- transformer: one pre-LN encoder block, batch 8, seq 64, d 128, 4 heads of 32, ffn 512:
  h = x + attn(layer_norm1(x)); out = h + W2 @ gelu(W1 @ layer_norm2(h)) (biases
  everywhere, exact erf GELU, layer norm eps 1e-5 with biased variance, no mask);
  loss = mean((out - target) ** 2) over all 8 * 64 * 128 elements.

Weights are drawn once in float64 from a fixed seed and cast, so the float32 and float64
variants see the same values (rounded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Leaf:
    """One input or param: its name, shape and how its values are drawn."""

    name: str
    shape: tuple[int, ...]
    kind: str  # "input" (data, not differentiated) or "param" (differentiated)
    init: str  # "normal", "fan_in" (normal / sqrt(shape[0] or prod(shape[1:]))), "small",
    # "one" (1 + small noise: layer-norm scales), "labels:<classes>", "fan_in_conv"


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    leaves: tuple[Leaf, ...]
    config: dict = field(default_factory=dict)

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(leaf.name for leaf in self.leaves if leaf.kind == "param")

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(leaf.name for leaf in self.leaves)

    def make_inputs(self, dtype: str = "float64", seed: int = 0) -> dict[str, np.ndarray]:
        """Deterministic leaves, in declaration order; floats in `dtype`, labels int64."""
        rng = np.random.default_rng(seed)
        out = {}
        for leaf in self.leaves:
            out[leaf.name] = draw(leaf, rng, dtype)
        return out


def draw(leaf: Leaf, rng: np.random.Generator, dtype: str) -> np.ndarray:
    if leaf.init.startswith("labels:"):
        return rng.integers(0, int(leaf.init.split(":")[1]), size=leaf.shape, dtype=np.int64)
    values = rng.standard_normal(leaf.shape)
    if leaf.init == "fan_in":
        values /= np.sqrt(leaf.shape[0])
    elif leaf.init == "fan_in_conv":  # OIHW kernel: fan-in is C * kh * kw
        values /= np.sqrt(int(np.prod(leaf.shape[1:])))
    elif leaf.init == "small":
        values *= 0.1
    elif leaf.init == "one":
        values = 1.0 + 0.1 * values
    elif leaf.init != "normal":
        raise ValueError(f"unknown init {leaf.init!r} for {leaf.name}")
    return values.astype(dtype)


def mlp(batch: int, sizes: tuple[int, ...] = (784, 256, 256, 10)) -> Workload:
    """relu MLP with softmax cross-entropy; the name says the batch (mlp-b32)."""
    leaves = [
        Leaf("x", (batch, sizes[0]), "input", "normal"),
        Leaf("y", (batch,), "input", f"labels:{sizes[-1]}"),
    ]
    for i in range(1, len(sizes)):
        leaves.append(Leaf(f"W{i}", (sizes[i - 1], sizes[i]), "param", "fan_in"))
        leaves.append(Leaf(f"b{i}", (sizes[i],), "param", "small"))
    return Workload(
        f"mlp-b{batch}",
        f"MLP {'-'.join(map(str, sizes))} (relu), batch {batch}",
        tuple(leaves),
        {"batch": batch, "sizes": sizes},
    )


def cnn(batch: int = 32) -> Workload:
    leaves = (
        Leaf("x", (batch, 1, 28, 28), "input", "normal"),
        Leaf("y", (batch,), "input", "labels:10"),
        Leaf("conv1_w", (8, 1, 5, 5), "param", "fan_in_conv"),
        Leaf("conv1_b", (8,), "param", "small"),
        Leaf("conv2_w", (16, 8, 5, 5), "param", "fan_in_conv"),
        Leaf("conv2_b", (16,), "param", "small"),
        Leaf("fc_w", (400, 10), "param", "fan_in"),
        Leaf("fc_b", (10,), "param", "small"),
    )
    return Workload(
        "cnn",
        f"LeNet-style CNN, batch {batch}: 1x28x28, conv5x5 8 pad 2, pool 2, "
        "conv5x5 16, pool 2, dense 400-10",
        leaves,
        {"batch": batch, "pad1": 2, "pad2": 0, "pool": 2},
    )


def transformer(batch: int = 8, seq: int = 64, d: int = 128, heads: int = 4, ffn: int = 512):
    leaves = [
        Leaf("x", (batch, seq, d), "input", "normal"),
        Leaf("target", (batch, seq, d), "input", "normal"),
        Leaf("ln1_w", (d,), "param", "one"),
        Leaf("ln1_b", (d,), "param", "small"),
    ]
    for p in ("q", "k", "v", "o"):
        leaves += [Leaf(f"W{p}", (d, d), "param", "fan_in"), Leaf(f"b{p}", (d,), "param", "small")]
    leaves += [
        Leaf("ln2_w", (d,), "param", "one"),
        Leaf("ln2_b", (d,), "param", "small"),
        Leaf("W1", (d, ffn), "param", "fan_in"),
        Leaf("b1", (ffn,), "param", "small"),
        Leaf("W2", (ffn, d), "param", "fan_in"),
        Leaf("b2", (d,), "param", "small"),
    ]
    return Workload(
        "transformer",
        f"pre-LN transformer encoder block: batch {batch}, seq {seq}, d {d}, "
        f"{heads} heads, ffn {ffn}, GELU (erf), MSE loss",
        tuple(leaves),
        {"batch": batch, "seq": seq, "d": d, "heads": heads, "ffn": ffn, "eps": 1e-5},
    )


WORKLOADS: dict[str, Workload] = {w.name: w for w in (mlp(32), mlp(512), cnn(), transformer())}


def mlp_stack(depth: int, width: int = 64, n_in: int = 64, n_out: int = 10) -> Workload:
    """A deep tanh MLP (depth matmul+add layers), for compile-time scaling only."""
    sizes = (n_in,) + (width,) * (depth - 1) + (n_out,)
    leaves = [
        Leaf("x", (32, n_in), "input", "normal"),
        Leaf("y", (32,), "input", f"labels:{n_out}"),
    ]
    for i in range(1, len(sizes)):
        leaves.append(Leaf(f"W{i}", (sizes[i - 1], sizes[i]), "param", "fan_in"))
        leaves.append(Leaf(f"b{i}", (sizes[i],), "param", "small"))
    return Workload(
        f"mlp-depth{depth}", f"tanh MLP, {depth} layers of width {width}", tuple(leaves)
    )


def select(patterns: str | None) -> list[Workload]:
    """Workloads whose name contains any comma-separated pattern (all when None)."""
    if not patterns:
        return list(WORKLOADS.values())
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [w for w in WORKLOADS.values() if any(p in w.name for p in wanted)]
    if not chosen:
        raise SystemExit(f"no workload matches {patterns!r}; workloads: {', '.join(WORKLOADS)}")
    return chosen
