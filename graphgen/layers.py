"""Recognizing a multilayer perceptron in a graph, for `graphgen explain`.

A dense layer is z = h @ W (+ b) with W a 2-D leaf and b a 1-D leaf; between layers an
elementwise activation h = sigma(z) (an op whose LaTeX rule has a derivative). `find_layers`
follows such a chain from the loss's first operand (the logits) back to a leaf input.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from .latex import rule_for
from .schedule import operands


@dataclass
class Layer:
    """z = h_in @ W (+ b); h = act(z) except for the last layer (whose z are the logits)."""

    z: str
    matmul: str
    W: str
    b: str | None
    h_in: str
    h: str | None = None  # the activation node of this layer


def find_layers(graph: nx.MultiDiGraph, loss: str) -> list[Layer]:
    """The dense layers feeding `loss`, first to last, or [] when it is not an MLP (L >= 2)."""
    args = operands(graph, loss)
    if not args:
        return []
    layers: list[Layer] = []
    z = args[0]
    while True:
        layer = _dense(graph, z)
        if layer is None:
            return []
        layers.append(layer)
        h = layer.h_in
        if graph.nodes[h]["op"] in ("input", "param"):
            break
        if not _is_activation(graph, h) or graph.out_degree(h) != 1:
            return []
        z_prev = operands(graph, h)[0]
        if graph.out_degree(z_prev) != 1:
            return []
        z = z_prev
    layers.reverse()
    for below, above in zip(layers, layers[1:]):
        below.h = above.h_in
    return layers if len(layers) >= 2 else []


def _dense(graph: nx.MultiDiGraph, z: str) -> Layer | None:
    data = graph.nodes[z]
    m, b = z, None
    if data["op"] == "add":
        a0, a1 = operands(graph, z)
        m, b = (a0, a1) if graph.nodes[a0]["op"] == "matmul" else (a1, a0)
        if graph.nodes[b]["op"] not in ("input", "param") or len(graph.nodes[b]["shape"]) != 1:
            return None
        if graph.out_degree(m) != 1:
            return None
    if graph.nodes[m]["op"] != "matmul":
        return None
    h_in, W = operands(graph, m)
    wdata = graph.nodes[W]
    if wdata["op"] not in ("input", "param") or len(wdata["shape"]) != 2:
        return None
    if len(graph.nodes[h_in]["shape"]) != 2:
        return None
    return Layer(z=z, matmul=m, W=W, b=b, h_in=h_in)


def _is_activation(graph: nx.MultiDiGraph, node: str) -> bool:
    rule = rule_for(graph.nodes[node]["op"])
    return rule.kind == "hadamard" and rule.derivative is not None
