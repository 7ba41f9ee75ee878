"""The implementations, looked up by name, and the interface each one provides.

An implementation module has `prepare(workload, inputs) -> Prepared` and raises
`Unavailable` (with a one-line reason) when its framework or a graphgen op is missing.
`Prepared.call()` is what is timed: one value_and_grad on inputs already converted to the
framework's arrays; `Prepared.convert(result)` turns its result into (float loss, {param:
ndarray}) for the agreement check, outside the timed loop.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

# name -> (module, description); the order is the order of the tables
IMPLS: dict[str, tuple[str, str]] = {
    "numpy": ("benchmarks.impl_numpy", "hand-written NumPy backprop (the baseline)"),
    "graphgen": ("benchmarks.impl_graphgen", "graphgen-generated value_and_grad"),
    "graphgen-ws": (
        "benchmarks.impl_graphgen_ws",
        "the same, given a workspace it keeps its buffers in between calls",
    ),
    "torch": ("benchmarks.impl_torch", "PyTorch eager, torch.autograd.grad"),
    "jax": ("benchmarks.impl_jax", "JAX jit(value_and_grad), block_until_ready"),
    "autograd": ("benchmarks.impl_autograd", "HIPS autograd value_and_grad"),
    "floor": ("benchmarks.impl_floor", "matmul-only floor: the MLP's GEMMs into fixed buffers"),
}

# implementations whose arrays are NumPy's, so tracemalloc sees their allocations
NUMPY_BASED = ("numpy", "graphgen", "graphgen-ws", "autograd", "floor")


class Unavailable(Exception):
    """The implementation cannot run here (framework not installed, op missing, ...)."""


@dataclass
class Prepared:
    call: Callable[[], Any]
    convert: Callable[[Any], tuple[float, dict[str, np.ndarray]]]
    info: dict = field(default_factory=dict)
    checked: bool = True  # False: not a full value_and_grad (the matmul floor)


def numpy_convert(result: Any) -> tuple[float, dict[str, np.ndarray]]:
    loss, grads = result
    return float(loss), {k: np.asarray(v) for k, v in grads.items()}


def load(name: str):
    """The implementation module `name` (ImportError of a framework becomes Unavailable)."""
    if name not in IMPLS:
        raise SystemExit(f"unknown implementation {name!r}; known: {', '.join(IMPLS)}")
    return importlib.import_module(IMPLS[name][0])


def select(patterns: str | None) -> list[str]:
    if not patterns:
        return list(IMPLS)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in IMPLS]
    if unknown:
        raise SystemExit(f"unknown implementation(s) {unknown}; known: {', '.join(IMPLS)}")
    return [name for name in IMPLS if name in wanted]


def loss_for(workload, framework: str, mlp_loss, cnn_loss, transformer_loss):
    """A framework's loss(params, *data) for `workload`, bound to the workload's config."""
    family = workload.name.split("-")[0]
    cfg = workload.config
    if family == "mlp":
        return mlp_loss
    if family == "cnn":
        return lambda p, x, y: cnn_loss(p, x, y, cfg["pad1"], cfg["pad2"])
    if family == "transformer":
        return lambda p, x, t: transformer_loss(p, x, t, cfg["heads"], cfg["eps"])
    raise Unavailable(f"no {framework} version of {workload.name}")
