"""Graphs for the command line: `graphgen <command> examples/graphs/models.py:<function>`.

    graphgen show examples/graphs/models.py:mlp --backward
    graphgen explain examples/graphs/models.py:deep_mlp -o derivation.md
    graphgen show examples/graphs/models.py:mlp --format json -o examples/graphs/mlp.json

Each function takes no arguments and returns a gg.Graph.
"""

import graphgen as gg


def mlp(n_in: int = 64, n_hidden: int = 128, n_out: int = 10) -> gg.Graph:
    """The digits MLP of examples/mlp.py: tanh hidden layer; outputs the loss and the logits."""
    g = gg.Graph("mlp")
    x = g.input("x", ("batch", n_in))
    y = g.input("y", ("batch",), dtype="int64")
    W1, b1 = g.param("W1", (n_in, n_hidden)), g.param("b1", (n_hidden,))
    W2, b2 = g.param("W2", (n_hidden, n_out)), g.param("b2", (n_out,))
    h1 = gg.tanh(gg.add(x @ W1, b1, name="z1"), name="h1")
    logits = gg.add(h1 @ W2, b2, name="logits")
    g.output(gg.softmax_cross_entropy(logits, y, name="loss"), logits)
    return g


def deep_mlp() -> gg.Graph:
    """Three dense layers (tanh, sigmoid), small enough to read its derivation."""
    g = gg.Graph("deep_mlp")
    x = g.input("x", ("batch", 8))
    y = g.input("y", ("batch",), dtype="int64")
    h = x
    sizes = [(8, 16, gg.tanh), (16, 16, gg.sigmoid), (16, 4, None)]
    for layer, (n_in, n_out, activation) in enumerate(sizes, start=1):
        W = g.param(f"W{layer}", (n_in, n_out))
        b = g.param(f"b{layer}", (n_out,))
        z = gg.add(h @ W, b, name=f"z{layer}")
        h = activation(z, name=f"h{layer}") if activation else z
    g.output(gg.softmax_cross_entropy(h, y, name="loss"))
    return g


def tied() -> gg.Graph:
    """A weight used twice (fan-out): its gradient is the sum of both uses' cotangents."""
    g = gg.Graph("tied")
    x = g.input("x", ("batch", 4))
    W = g.param("W", (4, 4))
    h = gg.tanh(gg.matmul(x, W, name="u"), name="h")
    g.output(gg.mean(gg.square(gg.matmul(h, W, name="v")), name="loss"))
    return g
