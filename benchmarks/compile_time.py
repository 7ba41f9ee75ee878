"""Compile time: graph -> loaded module (validation, autodiff, passes, codegen, black, exec).

Run in its own process: `python -m benchmarks.compile_time '<json spec>' OUT`, spec
{"workloads": [...], "depths": [...], "repeats": int, "profile_over": seconds}. Each
graphgen compile is timed as `gg.compile(graph)` on an already built graph (the build is
timed apart). A tiny graph is compiled first, so one-time costs (imports, black's and
Jinja's first use) are not charged to the first workload. When the deepest MLP's compile
takes longer than `profile_over` seconds, it is compiled once more under cProfile: the time
per pipeline stage and the top functions are reported.

`jax_first_call` (a separate process, `--jax`) times JAX's first call of
jit(value_and_grad) for the same deep MLPs, to compare growth with graph size.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import statistics
import sys
import time
import traceback

# (label, file suffix, function name): pipeline stages, as cProfile names them; none of
# them calls another, so their cumulative times add up (the rest is "other").
STAGES = (
    ("validate + infer", "graphgen/ir.py", "validate"),
    ("autodiff (build_joint)", "graphgen/autodiff.py", "build_joint"),
    ("simplify", "graphgen/passes/simplify.py", "simplify"),
    ("prune / DCE", "graphgen/passes/dce.py", "prune"),
    ("codegen (emit bodies)", "graphgen/codegen.py", "body"),
    ("template render", "jinja2/environment.py", "render"),
    ("black (format_source)", "graphgen/codegen.py", "format_source"),
    ("exec (load_module)", "graphgen/api.py", "load_module"),
)


def _graph_for(workload, dtype="float32"):
    from .impl_graphgen import build

    t0 = time.perf_counter()
    graph = build(workload, dtype)
    return graph, time.perf_counter() - t0


def time_compile(workload, repeats: int) -> dict:
    import graphgen as gg

    graph, build_s = _graph_for(workload)
    times, model = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        model = gg.compile(graph)
        times.append(time.perf_counter() - t0)
    return {
        "workload": workload.name,
        "build_s": build_s,
        "compile_s": times,
        "median_s": statistics.median(times),
        "nodes": graph.nx.number_of_nodes(),
        "source_lines": len(model.source.splitlines()),
    }


def profile_compile(workload, top: int = 15) -> dict:
    import graphgen as gg

    graph, _ = _graph_for(workload)
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    gg.compile(graph)
    profiler.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(profiler)
    stages = {}
    for label, suffix, func in STAGES:
        stages[label] = sum(
            value[3]
            for (filename, _, name), value in stats.stats.items()
            if name == func and filename.replace("\\", "/").endswith(suffix)
        )
    text = {}
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        text[key] = _trim_pstats(buf.getvalue())
    return {"workload": workload.name, "profiled_s": total, "stages": stages, "top": text}


def _trim_pstats(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join(line.rstrip() for line in lines[start:] if line.strip())


def run(spec: dict) -> dict:
    import graphgen as gg

    from .impls import Unavailable
    from .workloads import WORKLOADS, mlp_stack

    gg.compile(_graph_for(mlp_stack(2))[0])  # one-time costs
    out: dict = {"workloads": [], "depths": [], "profiles": [], "graphgen": gg.__file__}
    for name in spec["workloads"]:
        try:
            out["workloads"].append(time_compile(WORKLOADS[name], spec["repeats"]))
        except Unavailable as exc:
            out["workloads"].append({"workload": name, "unavailable": str(exc)})
    for depth in spec["depths"]:
        # every depth the same way (median of the same number of compiles): a single cold
        # compile of the largest against warm medians of the others overstated the growth
        result = time_compile(mlp_stack(depth), spec["repeats"])
        result["depth"] = depth
        out["depths"].append(result)
    if out["depths"] and out["depths"][-1]["median_s"] > spec["profile_over"]:
        out["profiles"].append(profile_compile(mlp_stack(out["depths"][-1]["depth"])))
    return out


def jax_first_call(spec: dict) -> dict:
    """JAX: first call (trace + compile + run) of jit(value_and_grad) of the deep MLPs."""
    import os

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as exc:
        return {"unavailable": f"jax not installed ({exc})"}
    from .workloads import mlp_stack

    def loss(p, x, y, depth):
        h = x
        for i in range(1, depth + 1):
            h = h @ p[f"W{i}"] + p[f"b{i}"]
            if i < depth:
                h = jnp.tanh(h)
        logp = jax.nn.log_softmax(h, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    rows = []
    for depth in spec["depths"]:
        w = mlp_stack(depth)
        inputs = w.make_inputs("float32")
        params = {n: jax.device_put(inputs[n]) for n in w.params}
        step = jax.jit(jax.value_and_grad(lambda p, x, y, d=depth: loss(p, x, y, d)))
        t0 = time.perf_counter()
        jax.block_until_ready(step(params, inputs["x"], inputs["y"]))
        rows.append({"depth": depth, "first_call_s": time.perf_counter() - t0})
    return {"jax": jax.__version__, "depths": rows}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec, out_path = json.loads(argv[0]), argv[1]
    try:
        result = jax_first_call(spec) if spec.get("jax") else run(spec)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    with open(out_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
