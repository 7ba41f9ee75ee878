"""Agreement with the hand-written NumPy before anything is timed.

The error of an array is max|got - want| / scale, where scale is max|want| (relative to the
array's own scale, so that entries near zero, where summation order decides the last bits,
do not make a correct result fail), but at least 1% of the largest gradient entry of the
whole set: a gradient that is zero in exact arithmetic (the key bias of attention: softmax
ignores a per-row constant) is rounding noise in every implementation. The loss and every
gradient must be within the dtype's tolerance; names and shapes must match exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# float32: a few thousand ulps of headroom for a different summation order in long sums
# (GEMMs of K=784, means over 65k elements); float64: the same in float64 ulps.
TOLERANCE = {"float32": 2e-4, "float64": 1e-10}


@dataclass
class CheckResult:
    ok: bool
    max_error: float
    worst: str  # the name (loss or param) with the largest error
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.ok:
            return f"ok (max rel err {self.max_error:.1e} at {self.worst})"
        return "MISMATCH: " + "; ".join(self.problems)


def scaled_error(got: np.ndarray, want: np.ndarray, floor: float = 0.0) -> float:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if not np.all(np.isfinite(got)):
        return float("inf")
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, floor)
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    return diff / scale if scale > 0 else diff


def compare(got: tuple, want: tuple, dtype: str) -> CheckResult:
    """got, want: (float loss, {param: ndarray}); dtype picks the tolerance."""
    tol = TOLERANCE[dtype]
    got_loss, got_grads = got
    want_loss, want_grads = want
    problems = []
    floor = 0.01 * max((float(np.max(np.abs(w))) for w in want_grads.values()), default=0.0)
    errors = {"loss": scaled_error(np.array(got_loss), np.array(want_loss))}
    if set(got_grads) != set(want_grads):
        problems.append(
            f"gradient names differ: got {sorted(got_grads)}, want {sorted(want_grads)}"
        )
    for name, w in want_grads.items():
        if name not in got_grads:
            continue
        g = np.asarray(got_grads[name])
        if g.shape != np.shape(w):
            problems.append(f"{name}: shape {g.shape}, want {np.shape(w)}")
            continue
        errors[name] = scaled_error(g, w, floor)
    worst = max(errors, key=errors.get)
    for name, err in errors.items():
        if not err <= tol:
            problems.append(f"{name}: rel err {err:.2e} > {tol:.0e}")
    return CheckResult(not problems, errors[worst], worst, problems)
