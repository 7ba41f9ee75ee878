"""One benchmark case in its own process: `python -m benchmarks.worker '<json spec>' OUT`.

spec: {"workload", "dtype", "impl", "budget", "min_calls", "max_calls", "warmup"}. Writes a
JSON result to OUT (never to stdout, which frameworks may print on). Order of work:
make the leaves, compute the hand-written NumPy reference, prepare the implementation, time
its first call, check it against the reference (a mismatch ends the case: not timed),
warm up, take tracemalloc's peak over one call, then the timed loop.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback


def blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl not installed"}]
    keep = ("user_api", "internal_api", "version", "architecture", "num_threads")
    out = []
    for lib in threadpool_info():
        path = lib.get("filepath") or ""
        where = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
        out.append({**{k: lib.get(k) for k in keep}, "library": where})
    return out


def check_case(workload, dtype: str, name: str) -> tuple[dict, object]:
    """Prepare implementation `name` and check it against the hand-written NumPy.

    Returns (result, prepared): result["status"] is "ok", "unavailable" or "mismatch";
    prepared is None unless the implementation may be timed. Used in-process by the tests.
    """
    from .check import compare
    from .impl_numpy import value_and_grad as hand_value_and_grad
    from .impls import Unavailable, load, numpy_convert

    result: dict = {"status": "ok"}
    inputs = workload.make_inputs(dtype)
    if name == "numpy" and dtype == "float32":  # the baseline itself: against float64
        reference = numpy_convert(hand_value_and_grad(workload, workload.make_inputs("float64")))
    elif name == "numpy":
        reference = None
    else:
        reference = numpy_convert(hand_value_and_grad(workload, inputs))
    try:
        module = load(name)
        t0 = time.perf_counter()
        prepared = module.prepare(workload, inputs)
        result["prepare_s"] = time.perf_counter() - t0
    except Unavailable as exc:
        return {**result, "status": "unavailable", "reason": str(exc)}, None
    result["info"] = prepared.info

    t0 = time.perf_counter()
    out = prepared.call()
    result["first_call_s"] = time.perf_counter() - t0
    if not prepared.checked:
        result["check"] = "not checked (not a full value_and_grad)"
    elif reference is None:
        result["check"] = "reference"
    else:
        verdict = compare(prepared.convert(out), reference, dtype)
        result["check"] = verdict.summary()
        result["max_error"] = verdict.max_error
        if not verdict.ok:
            return {**result, "status": "mismatch"}, None
    return result, prepared


def run_case(spec: dict) -> dict:
    from . import measure
    from .impls import NUMPY_BASED
    from .workloads import WORKLOADS

    name = spec["impl"]
    checked, prepared = check_case(WORKLOADS[spec["workload"]], spec["dtype"], name)
    result = {"spec": spec, "env": _env_summary(), **checked}
    if prepared is None:
        if result["status"] == "mismatch":
            result["blas"] = blas_info()
        return result

    per_call = measure.warm_up(prepared.call, spec["warmup"], spec["budget"] / 10)
    if name in NUMPY_BASED:
        result["traced_peak"] = measure.traced_peak(prepared.call)
        measure.warm_up(prepared.call, 2, 0.0)  # back to a steady state after tracemalloc
    n = measure.calls_for(per_call, spec["budget"], spec["min_calls"], spec["max_calls"])
    loop = measure.timed_loop(prepared.call, n)
    times = loop.pop("times")
    result["timing"] = measure.summarize(times)
    if spec.get("rounds", 1) > 1:
        result["times"] = times  # merged with the other rounds' by the parent
    result.update(loop)
    result["blas"] = blas_info()
    return result


def _env_summary() -> dict:
    keys = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    env = {k: os.environ[k] for k in keys if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith("MALLOC_")})
    return env


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec, out_path = json.loads(argv[0]), argv[1]
    try:
        result = run_case(spec)
    except Exception as exc:  # reported as a crash of this case, the run goes on
        result = {
            "spec": spec,
            "status": "error",
            "reason": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    with open(out_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
