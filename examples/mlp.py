"""Compile an MLP with graphgen, write the generated module, import it, and train it.

The network is DESIGN.md's MLP sized for the 8x8 digits shipped in examples/data:
x (batch, 64) -> tanh(x @ W1 + b1) -> h1 @ W2 + b2 -> softmax cross-entropy with labels y.

    python examples/mlp.py                 # 300 SGD steps, prints the falling loss
    python examples/mlp.py --steps 20      # a quick run

The loss curve (every step's minibatch loss, and the test loss every 25 steps) is drawn to
examples/generated/mlp_loss.png (--plot PATH) when matplotlib is installed, for instance
with `pip install '.[examples]'`; without it the script says so in one line and goes on.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

import graphgen as gg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import load_digits, split  # noqa: E402


def build_mlp(n_in: int = 64, n_hidden: int = 128, n_out: int = 10) -> gg.Graph:
    g = gg.Graph("mlp")
    x = g.input("x", ("batch", n_in))
    y = g.input("y", ("batch",), dtype="int64")
    W1, b1 = g.param("W1", (n_in, n_hidden)), g.param("b1", (n_hidden,))
    W2, b2 = g.param("W2", (n_hidden, n_out)), g.param("b2", (n_out,))
    z1 = gg.add(x @ W1, b1, name="z1")
    h1 = gg.tanh(z1, name="h1")
    logits = gg.add(h1 @ W2, b2, name="logits")
    g.output(gg.softmax_cross_entropy(logits, y, name="loss"), logits)
    return g


def import_file(path: Path):
    """Import a generated module from its file, like any other Python module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def init_params(n_in: int, n_hidden: int, n_out: int, rng: np.random.Generator) -> dict:
    return {
        "W1": rng.standard_normal((n_in, n_hidden)) / np.sqrt(n_in),
        "b1": np.zeros(n_hidden),
        "W2": rng.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden),
        "b2": np.zeros(n_out),
    }


def plot_losses(path: Path, train: list[float], test: list[tuple[int, float]]) -> None:
    """Draw the loss curves to a PNG at `path`, or say in one line why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no plot written to {path}")
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    steps = np.arange(1, len(train) + 1)
    ax.plot(steps, train, color="tab:blue", alpha=0.35, linewidth=1, label="minibatch loss")
    window = min(25, len(train))
    smooth = np.convolve(train, np.ones(window) / window, mode="valid")
    ax.plot(steps[window - 1 :], smooth, color="tab:blue", label=f"mean of last {window}")
    if test:
        ax.plot(*zip(*test), "o-", color="tab:orange", markersize=4, label="test loss")
    ax.set(xlabel="SGD step", ylabel="softmax cross-entropy", yscale="log")
    ax.set_title("MLP on the 8x8 digits (graphgen-generated value_and_grad)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300, help="SGD steps (default 300)")
    parser.add_argument("--batch", type=int, default=64, help="minibatch size (default 64)")
    parser.add_argument("--lr", type=float, default=0.2, help="learning rate (default 0.2)")
    generated = Path(__file__).resolve().parent / "generated"
    parser.add_argument("--out", type=Path, default=generated / "mlp_grad.py")
    parser.add_argument(
        "--plot",
        type=Path,
        default=generated / "mlp_loss.png",
        help="where to draw the loss curve when matplotlib is installed (default %(default)s)",
    )
    parser.add_argument("--no-plot", action="store_true", help="draw no loss curve")
    args = parser.parse_args(argv)

    graph = build_mlp()
    model = gg.compile(graph)  # wrt defaults to every param
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(f"wrote {args.out} ({len(model.source.splitlines())} lines)")
    mlp = import_file(args.out)

    x_train, y_train, x_test, y_test = split(*load_digits())
    rng = np.random.default_rng(0)
    params = init_params(64, 128, 10, rng)
    train_losses, test_losses = [], []
    for step in range(1, args.steps + 1):
        batch = rng.choice(len(x_train), args.batch, replace=False)
        (loss, _), grads = mlp.value_and_grad(x_train[batch], y_train[batch], **params)
        for name in mlp.WRT:
            params[name] -= args.lr * grads[name]
        train_losses.append(float(loss))
        if step == 1 or step % 25 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {float(loss):.4f}")
            test_losses.append((step, float(mlp.forward(x_test, y_test, **params)[0])))
    test_loss, logits = mlp.forward(x_test, y_test, **params)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y_test))
    print(f"test loss {float(test_loss):.4f}  test accuracy {accuracy:.3f}")
    if not args.no_plot:
        plot_losses(args.plot, train_losses, test_losses)
    return accuracy


if __name__ == "__main__":
    main()
