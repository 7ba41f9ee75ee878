"""A LeNet-style CNN on the 8x8 digits: built with the builder API, gradient-checked, trained.

The network (shapes for one 8x8 grey image; "batch" is a symbolic dim bound at call time):

    x (batch, 1, 8, 8)
      -> conv 3x3, 16 channels, padding 1 -> relu -> max-pool 2   (batch, 16, 4, 4)
      -> conv 3x3, 32 channels, padding 1 -> relu -> max-pool 2   (batch, 32, 2, 2)
      -> flatten (batch, 128) -> dense 64 -> relu -> dense 10 (logits)
      -> softmax cross-entropy with the labels y

gg.compile turns it into NumPy forward and backward code (im2col convolutions, the pooling
gradient routed to each window's maximum). The script checks that code once against central
finite differences in float64 on a batch of 4 images, then trains it with minibatch SGD with
momentum on 80% of the 1797 digits in examples/data and reports the accuracy on the other 20%.

    python examples/cnn.py                          # 15 epochs
    python examples/cnn.py --epochs 3 --limit 300   # a smoke run on 300 images

With the defaults (seed 0) the train loss falls from 3.0 to 0.004 and the test accuracy is
98.1% (98.1% and 98.9% with --seed 1 and 2); the whole run (compile, gradient check, 15
epochs of 45 minibatches of 32) takes 2.5 to 4.5 s of wall time on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import graphgen as gg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import load_digits, split  # noqa: E402

C1, C2, HIDDEN, CLASSES = 16, 32, 64, 10

SHAPES = {
    "w1": (C1, 1, 3, 3),
    "b1": (C1,),
    "w2": (C2, C1, 3, 3),
    "b2": (C2,),
    "W3": (C2 * 2 * 2, HIDDEN),
    "b3": (HIDDEN,),
    "W4": (HIDDEN, CLASSES),
    "b4": (CLASSES,),
}


def build_cnn() -> gg.Graph:
    g = gg.Graph("cnn")
    x = g.input("x", ("batch", 1, 8, 8))
    y = g.input("y", ("batch",), dtype="int64")
    p = {name: g.param(name, shape) for name, shape in SHAPES.items()}
    c1 = gg.conv2d(x, p["w1"], p["b1"], padding=1, name="c1")  # (batch, 16, 8, 8)
    h1 = gg.max_pool2d(gg.relu(c1, name="r1"), 2, name="h1")  # (batch, 16, 4, 4)
    c2 = gg.conv2d(h1, p["w2"], p["b2"], padding=1, name="c2")  # (batch, 32, 4, 4)
    h2 = gg.max_pool2d(gg.relu(c2, name="r2"), 2, name="h2")  # (batch, 32, 2, 2)
    flat = gg.reshape(h2, ("batch", C2 * 2 * 2), name="flat")
    h3 = gg.relu(gg.add(flat @ p["W3"], p["b3"], name="z3"), name="h3")
    logits = gg.add(h3 @ p["W4"], p["b4"], name="logits")
    g.output(gg.softmax_cross_entropy(logits, y, name="loss"), logits)
    return g


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Standard normal * sqrt(gain / fan-in) for the weights, with gain 2 (He) for the layers
    followed by a relu and gain 1 for the logits; zeros for the biases."""
    params = {}
    for name, shape in SHAPES.items():
        if len(shape) == 1:
            params[name] = np.zeros(shape)
        else:
            fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))
            gain = 1.0 if name == "W4" else 2.0
            params[name] = rng.standard_normal(shape) * np.sqrt(gain / fan_in)
    return params


def images(x: np.ndarray) -> np.ndarray:
    """(N, 64) rows of pixels -> (N, 1, 8, 8) single-channel images."""
    return x.reshape(-1, 1, 8, 8)


def accuracy(model: gg.Model, x: np.ndarray, y: np.ndarray, params: dict) -> float:
    _, logits = model.forward(x, y, **params)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=15, help="passes over the data (default 15)")
    parser.add_argument("--batch", type=int, default=32, help="minibatch size (default 32)")
    parser.add_argument("--lr", type=float, default=0.02, help="learning rate (default 0.02)")
    parser.add_argument("--momentum", type=float, default=0.9, help="momentum (default 0.9)")
    parser.add_argument(
        "--limit", type=int, default=None, help="use only the first N digits (smoke runs)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()

    model = gg.compile(build_cnn())  # wrt: every param
    print(f"compiled {model.name}: {len(model.source.splitlines())} lines of NumPy")

    rng = np.random.default_rng(args.seed)
    x_all, y_all = load_digits()
    if args.limit is not None:
        x_all, y_all = x_all[: args.limit], y_all[: args.limit]
    x_train, y_train, x_test, y_test = split(images(x_all), y_all)
    params = init_params(rng)

    # The generated gradients against central finite differences, on 4 images, in float64.
    # Not at the initial point: with zero biases every blank 3x3 patch (most of a digit's
    # border) gives c1 = 0 exactly, where relu has a kink and finite differences see a slope
    # of 1/2. Small random biases move the check to a point where the loss is differentiable.
    at = {**params, **{n: 0.1 * rng.standard_normal(s) for n, s in SHAPES.items() if len(s) == 1}}
    report = gg.gradcheck(model, {"x": x_train[:4], "y": y_train[:4], **at})
    print(report)
    worst = max(row["max_abs"] for row in report.rows.values())
    verdict = "ok" if report.ok else "FAILED"
    print(f"gradcheck {verdict}: {len(report.rows)} params, max abs err {worst:.1e}")

    initial_loss, _ = model.forward(x_train, y_train, **params)
    print(f"epoch   0  train loss {float(initial_loss):.4f}  (before training)")
    velocity = {name: np.zeros_like(value) for name, value in params.items()}
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        losses = []
        for first in range(0, len(order), args.batch):
            batch = order[first : first + args.batch]
            (loss, _), grads = model.value_and_grad(x_train[batch], y_train[batch], **params)
            for name in model.wrt:
                velocity[name] = args.momentum * velocity[name] - args.lr * grads[name]
                params[name] += velocity[name]
            losses.append(float(loss))
        print(f"epoch {epoch:3d}  train loss {np.mean(losses):.4f}")
    test_accuracy = accuracy(model, x_test, y_test, params)
    print(
        f"train accuracy {accuracy(model, x_train, y_train, params):.3f}  "
        f"test accuracy {test_accuracy:.3f}  ({len(y_test)} test images)"
    )
    print(f"total time {time.perf_counter() - start:.1f} s")
    return test_accuracy


if __name__ == "__main__":
    main()
