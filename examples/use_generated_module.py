"""Train with a module that graphgen generated earlier, with graphgen not imported at all.

The generated module is plain NumPy: this script imports it from its file and trains the
8x8 digits classifier with its `value_and_grad`, reading everything else from the module's
constants (INPUTS, WRT, INPUT_SPECS, INPUT_DOMAINS, OUTPUTS). graphgen cannot even be
imported here: an import hook refuses it, to prove that the module stands alone.

    python examples/mlp.py                          # writes examples/generated/mlp_grad.py
    python examples/use_generated_module.py         # trains with it
    graphgen compile examples/graphs/mlp.json -o mlp_grad.py
    python examples/use_generated_module.py mlp_grad.py --steps 100

When the module file does not exist yet, it is generated first by running the graphgen
command line in a separate process (`python -m graphgen.cli compile ...`); this process
still never imports graphgen.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from datasets import load_digits, split  # noqa: E402

DEFAULT_MODULE = HERE / "generated" / "mlp_grad.py"
GRAPH_FILE = HERE / "graphs" / "mlp.json"


class RefuseGraphgen:
    """An import hook under which `import graphgen` fails."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "graphgen":
            raise ImportError("graphgen is deliberately not importable in this process")
        return None


def generate(path: Path) -> None:
    """Make the module with the graphgen command line, in another process."""
    command = [sys.executable, "-m", "graphgen.cli", "compile", str(GRAPH_FILE), "-o", str(path)]
    print("generating it: python", " ".join(shown(c) for c in command[1:]))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), env.get("PYTHONPATH")) if p)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"could not generate {path}: {done.stderr.strip()}")


def shown(path: str | Path) -> str:
    """`path` relative to the working directory when it lies below it, for printing."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def import_file(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def roles(module) -> tuple[str, str]:
    """The data input and the label input, told apart by the module's own specs."""
    data = [n for n in module.INPUTS if n not in module.WRT and "float" in _dtype(module, n)]
    labels = [n for n in module.INPUTS if _dtype(module, n) == "int64"]
    if len(data) != 1 or len(labels) != 1:
        sys.exit(f"expected one float data input and one int label input, got {module.INPUTS}")
    n_features = module.INPUT_SPECS[data[0]]["shape"][-1]
    domain = getattr(module, "INPUT_DOMAINS", {}).get(labels[0], "int:10")
    if n_features != 64 or domain != "int:10":
        sys.exit(f"this script trains an 8x8 digits classifier; the module wants {domain} labels")
    return data[0], labels[0]


def _dtype(module, name: str) -> str:
    return module.INPUT_SPECS[name]["dtype"]


def init_params(module, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every WRT leaf from its spec: scaled normal matrices, zero vectors."""
    params = {}
    for name in module.WRT:
        shape = tuple(module.INPUT_SPECS[name]["shape"])
        if len(shape) >= 2:
            params[name] = rng.standard_normal(shape) / np.sqrt(shape[0])
        else:
            params[name] = np.zeros(shape)
    return params


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("module", nargs="?", type=Path, default=DEFAULT_MODULE)
    parser.add_argument("--steps", type=int, default=300, help="SGD steps (default 300)")
    parser.add_argument("--batch", type=int, default=64, help="minibatch size (default 64)")
    parser.add_argument("--lr", type=float, default=0.2, help="learning rate (default 0.2)")
    args = parser.parse_args(argv)

    sys.meta_path.insert(0, RefuseGraphgen())
    if not args.module.exists():
        print(f"{shown(args.module)} does not exist yet")
        generate(args.module)
    module = import_file(args.module)
    print(f"imported {shown(args.module)}: inputs {module.INPUTS}, outputs {module.OUTPUTS}")
    data, labels = roles(module)

    x_train, y_train, x_test, y_test = split(*load_digits())
    rng = np.random.default_rng(0)
    params = init_params(module, rng)
    for step in range(1, args.steps + 1):
        batch = rng.choice(len(x_train), args.batch, replace=False)
        values = {data: x_train[batch], labels: y_train[batch], **params}
        outputs, grads = module.value_and_grad(*(values[n] for n in module.INPUTS))
        loss = outputs[0] if len(module.OUTPUTS) > 1 else outputs
        for name in module.WRT:
            params[name] -= args.lr * grads[name]
        if step == 1 or step % 50 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {float(loss):.4f}")

    values = {data: x_test, labels: y_test, **params}
    outputs = module.forward(*(values[n] for n in module.INPUTS))
    accuracy = float("nan")
    if len(module.OUTPUTS) > 1:  # (loss, logits)
        accuracy = float(np.mean(np.argmax(outputs[1], axis=1) == y_test))
        print(f"test loss {float(outputs[0]):.4f}  test accuracy {accuracy:.3f}")
    else:
        print(f"test loss {float(outputs):.4f}")
    print(f"graphgen imported in this process: {'graphgen' in sys.modules}")
    return accuracy


if __name__ == "__main__":
    main()
