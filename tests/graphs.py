"""Graphs shared by several tests."""

import graphgen as gg


def mlp(n_in: int = 6, n_hidden: int = 5, n_out: int = 4, dtype: str = "float64") -> gg.Graph:
    """DESIGN.md's MLP: tanh hidden layer, softmax cross-entropy, symbolic batch."""
    g = gg.Graph("mlp")
    x = g.input("x", ("batch", n_in), dtype)
    y = g.input("y", ("batch",), dtype="int64")
    W1, b1 = g.param("W1", (n_in, n_hidden), dtype), g.param("b1", (n_hidden,), dtype)
    W2, b2 = g.param("W2", (n_hidden, n_out), dtype), g.param("b2", (n_out,), dtype)
    h1 = gg.tanh(gg.add(x @ W1, b1, name="z1"), name="h1")
    logits = gg.add(h1 @ W2, b2, name="logits")
    g.output(gg.softmax_cross_entropy(logits, y, name="loss"))
    return g


def mlp_inputs(rng, batch: int = 7, n_in: int = 6, n_hidden: int = 5, n_out: int = 4) -> dict:
    return {
        "x": rng.standard_normal((batch, n_in)),
        "y": rng.integers(0, n_out, batch),
        "W1": rng.standard_normal((n_in, n_hidden)) * 0.5,
        "b1": rng.standard_normal(n_hidden) * 0.1,
        "W2": rng.standard_normal((n_hidden, n_out)) * 0.5,
        "b2": rng.standard_normal(n_out) * 0.1,
    }


# the only Python loops in the conv and pool kernels: over kernel positions and taps (and
# the sum kernel's over a shape's dims, the input gradient's over candidate row lengths,
# the workspace's over the views of a buffer it grows), never over the batch or the pixels
KERNEL_LOOPS = frozenset(
    {
        "for d in dims:",
        "for i in range(kh):",
        "for j in range(kw):",
        "for i in range(1, kh):",
        "for j in range(1, kw):",
        "for padded in range(length, length + 16):",
        "for key in views:",
        "for i, hit in enumerate(hits):",
        "for t in range(kh * kw):",
        "for tap, dtap in zip(taps[::-1], dtaps[::-1]):",
        "for t in range(1, kh * kw):",
        "for tap in taps[1:]:",
        "for tap, dtap in zip(taps, dtaps):",
    }
)


def loop_lines(source: str) -> set[str]:
    """The `for` statements of a module, stripped."""
    return {line.strip() for line in source.splitlines() if line.strip().startswith("for ")}
