"""Finite-difference checking of generated gradients (the end product is what is checked).

Central differences in float64: every element of small tensors, random directions for
large ones (the directional derivative <grad, v> against (f(x + eps v) - f(x - eps v)) / 2eps).
A non-scalar first output is checked through vjp with a random cotangent u, i.e. on
f(x) = <u, output(x)>.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import GradcheckError


@dataclass
class GradcheckReport:
    """Per wrt name: the largest absolute and relative error, and whether it passed."""

    rows: dict[str, dict] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r["ok"] for r in self.rows.values())

    def __str__(self) -> str:
        head = f"{'wrt':<16} {'checks':>7} {'max abs err':>12} {'max rel err':>12}  result"
        lines = [head]
        for name, r in self.rows.items():
            verdict = "ok" if r["ok"] else "FAIL"
            lines.append(
                f"{name:<16} {r['checks']:>7} {r['max_abs']:>12.3e} {r['max_rel']:>12.3e}"
                f"  {verdict}"
            )
        return "\n".join(lines)


def gradcheck(
    model: Any,
    inputs: dict[str, Any],
    *,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    exhaustive_limit: int = 64,
    directions: int = 12,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> GradcheckReport:
    """Compare `model`'s gradients with central finite differences, in float64.

    inputs: every input by name. A check passes when |analytic - numeric| <=
    atol + rtol * |numeric|. Raises GradcheckError (with the report) on failure unless
    raise_on_failure is False.
    """
    rng = np.random.default_rng(seed)
    values = {n: _as_float64(v) for n, v in inputs.items()}
    f, analytic = _objective(model, values, rng)
    report = GradcheckReport()
    for name in model.wrt:
        grad = np.asarray(analytic[name], dtype=np.float64)
        x = values[name]
        if grad.shape != x.shape:
            raise GradcheckError(
                f"gradient of {name!r} has shape {grad.shape}, input has {x.shape}"
            )
        probes = _probes(x.shape, exhaustive_limit, directions, rng)
        worst_abs = worst_rel = 0.0
        ok = True
        for v in probes:
            numeric = (f({**values, name: x + eps * v}) - f({**values, name: x - eps * v})) / (
                2 * eps
            )
            exact = float(np.sum(grad * v))
            err = abs(exact - numeric)
            worst_abs = max(worst_abs, err)
            worst_rel = max(worst_rel, err / max(abs(numeric), abs(exact), 1e-12))
            ok &= bool(err <= atol + rtol * abs(numeric))
        report.rows[name] = {
            "checks": len(probes),
            "max_abs": worst_abs,
            "max_rel": worst_rel,
            "ok": ok,
        }
    if raise_on_failure and not report.ok:
        raise GradcheckError("gradients disagree with finite differences:\n" + str(report))
    return report


def _as_float64(v: Any) -> Any:
    a = np.asarray(v)
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def _objective(model: Any, values: dict, rng) -> tuple[Callable[[dict], float], dict]:
    """The scalar function checked, and its analytic gradients at `values`."""
    first = model.forward(**values)
    first = first[0] if len(model.outputs) > 1 else first
    if np.ndim(first) == 0:
        _, grads = model.value_and_grad(**values)

        def f(vals: dict) -> float:
            out = model.forward(**vals)
            return float(out[0] if len(model.outputs) > 1 else out)

        return f, grads
    u = rng.standard_normal(np.shape(first))
    _, grads = model.vjp(**values, cotangent=u)

    def f_dot(vals: dict) -> float:
        out = model.forward(**vals)
        return float(np.sum(u * (out[0] if len(model.outputs) > 1 else out)))

    return f_dot, grads


def _probes(shape: tuple, limit: int, directions: int, rng) -> list[np.ndarray]:
    size = int(np.prod(shape))
    if size <= limit:
        basis = np.eye(size).reshape((size, *shape)) if size else np.zeros((0, *shape))
        return list(basis)
    return [rng.standard_normal(shape) for _ in range(directions)]


def sample(shape: tuple, dtype: str, domain: str, rng: np.random.Generator) -> np.ndarray:
    """A random array of `shape` and `dtype` inside an op's input domain.

    domain: "real" (standard normal), "positive" (in [0.5, 2]), "nonzero" (|x| in [0.5, 2]),
    "distinct" (well-separated values, so max/min have no ties within a finite-difference
    step), "unit" (in (0.05, 0.95)), "bool", "keep" (bool with a True in every last-axis
    row: an attention mask), or "int:N" (integers in [0, N)).
    """
    shape = tuple(shape)
    if domain.startswith("int:"):
        return rng.integers(0, int(domain[4:]), size=shape).astype(np.int64)
    if domain == "keep":  # an attention mask: bool, at least one True along the last axis
        x = rng.random(shape) < 0.5
        if shape and shape[-1]:
            np.put_along_axis(x, rng.integers(0, shape[-1], (*shape[:-1], 1)), True, axis=-1)
        return x
    if domain == "bool" or dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "int64":
        return rng.integers(-3, 4, size=shape).astype(np.int64)
    if domain == "positive":
        x = rng.uniform(0.5, 2.0, shape)
    elif domain == "nonzero":
        x = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    elif domain == "distinct":
        n = int(np.prod(shape))
        x = (rng.permutation(n) * 0.25 - n * 0.125 + rng.uniform(-0.05, 0.05, n)).reshape(shape)
    elif domain == "unit":
        x = rng.uniform(0.05, 0.95, shape)
    else:
        x = rng.standard_normal(shape)
    return np.asarray(x, dtype=dtype)
