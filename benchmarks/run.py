"""The benchmark command: every case in its own process, then the tables.

    python -m benchmarks [--quick] [--workload mlp,cnn] [--impl numpy,graphgen] [--dtype float32]
                         [--malloc shipped,notrim] [--budget 2] [--rounds 1] [--threads N]
                         [--no-compile] [--compile-only] [--note TEXT] [--out FILE]

A case is (workload, dtype, malloc setting, implementation). Each runs in a fresh Python
(`benchmarks.worker`) with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from the child's
environment only (they force an older, slower OpenBLAS kernel on this kind of machine) and
with glibc malloc either as shipped or tuned not to give memory back (MALLOC_SETTINGS).
Then the compile-time process (`benchmarks.compile_time`) and, unless --quick, JAX's
first call on the deep MLPs. Results: printed, and written as Markdown with the machine.
With --rounds N the whole list of cases runs N times, each case with budget / N, and each
case's calls are pooled: on a shared machine a slow spell then hits every implementation a
little instead of one of them a lot.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import impls, machine, measure, report, workloads

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# glibc malloc. "shipped": no tuning. "notrim": never hand freed memory back to the kernel:
# no mmap for blocks below 32 MiB (the largest threshold glibc accepts on 64-bit) and no
# trimming of the heap top below 4 GiB. Both are needed: setting either one turns off
# glibc's dynamic thresholds, and the other then keeps unmapping (measured here: the
# transformer's ~2,900 minor faults per call stay with either alone, vanish with both).
MALLOC_SETTINGS = {
    "shipped": {},
    "notrim": {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(4 * 2**30)},
}
# removed from the children's environment only
UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def child_env(malloc: str, threads: int | None, graphgen_dir: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in UNSET and not k.startswith("MALLOC_")}
    env.update(MALLOC_SETTINGS[malloc])
    first = [str(graphgen_dir)] if graphgen_dir else []
    env["PYTHONPATH"] = os.pathsep.join(p for p in (*first, str(ROOT), env.get("PYTHONPATH")) if p)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONHASHSEED"] = "0"
    if threads:
        for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[key] = str(threads)
        if threads == 1:
            env["XLA_FLAGS"] = (
                env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
            ).strip()
    return env


def run_child(module: str, spec: dict, env: dict, timeout: float) -> dict:
    """Run `python -m module spec out.json` and return the JSON it wrote (or the failure).

    The child starts in a temporary folder, so that PYTHONPATH alone decides which graphgen
    it imports (`-m` would put the working folder first).
    """
    with tempfile.TemporaryDirectory(prefix="graphgen-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", module, json.dumps(spec), str(out)]
        try:
            proc = subprocess.run(
                cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"spec": spec, "status": "timeout", "reason": f"no result after {timeout:.0f} s"}
        if out.exists():
            return json.loads(out.read_text())
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        return {
            "spec": spec,
            "status": "crashed",
            "reason": f"exit {proc.returncode}: " + " | ".join(tail),
        }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smoke run: a few calls per case")
    p.add_argument(
        "--workload", help=f"comma-separated name parts of: {', '.join(workloads.WORKLOADS)}"
    )
    p.add_argument("--impl", help=f"comma-separated: {', '.join(impls.IMPLS)}")
    p.add_argument("--dtype", help="float32, float64 or both (default both)")
    p.add_argument("--malloc", help=f"comma-separated: {', '.join(MALLOC_SETTINGS)} (default both)")
    p.add_argument("--budget", type=float, help="seconds of timed calls per case (default 2)")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every case this many times, interleaved, each with budget / rounds, and "
        "pool the calls (default 1): a slow spell of a shared machine then hits every "
        "implementation instead of one",
    )
    p.add_argument("--threads", type=int, help="BLAS/OpenMP/XLA threads (default: libraries')")
    p.add_argument("--no-compile", action="store_true", help="skip the compile-time part")
    p.add_argument("--compile-only", action="store_true", help="only the compile-time part")
    p.add_argument(
        "--depths", default=None, help="deep-MLP layer counts (default 10,100,1000; 0: none)"
    )
    p.add_argument("--note", default="", help="a line put at the top of the results file")
    p.add_argument(
        "--out", type=Path, help="Markdown file (default results/latest.md; quick.md with --quick)"
    )
    p.add_argument(
        "--graphgen",
        type=Path,
        help="a source tree whose graphgen package is measured instead of the one next to "
        "benchmarks/ (another branch, e.g. exported with git archive)",
    )
    p.add_argument("--timeout", type=float, default=900, help="seconds per case (default 900)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = workloads.select(args.workload)
    impl_names = impls.select(args.impl)
    dtypes = [d.strip() for d in (args.dtype or ",".join(workloads.DTYPES)).split(",")]
    mallocs = [m.strip() for m in (args.malloc or ",".join(MALLOC_SETTINGS)).split(",")]
    for d in dtypes:
        if d not in workloads.DTYPES:
            raise SystemExit(f"unknown dtype {d!r}")
    for m in mallocs:
        if m not in MALLOC_SETTINGS:
            raise SystemExit(f"unknown malloc setting {m!r}")
    budget = args.budget if args.budget is not None else (0.05 if args.quick else 2.0)
    default_depths = "10,100" if args.quick else "10,100,1000"
    depths = [
        int(d) for d in (args.depths or default_depths).split(",") if d.strip() not in ("", "0")
    ]
    out_path = args.out or HERE / "results" / ("quick.md" if args.quick else "latest.md")
    described = machine.describe()
    started = time.time()

    cases: list[dict] = []
    if not args.compile_only:
        todo = [
            (w, d, m, i)
            for w in chosen
            for d in dtypes
            for m in mallocs
            for i in impl_names
            if not (i == "floor" and not w.name.startswith("mlp"))
        ]
        rounds = max(1, args.rounds)
        by_round: list[list[dict]] = []
        for r in range(rounds):
            done: list[dict] = []
            for k, (w, d, m, i) in enumerate(todo, 1):
                spec = {
                    "workload": w.name,
                    "dtype": d,
                    "malloc": m,
                    "impl": i,
                    "budget": budget / rounds,
                    "rounds": rounds,
                    "warmup": 2 if args.quick else 5,
                    "min_calls": 3 if args.quick else max(5, 20 // rounds),
                    "max_calls": 50 if args.quick else 5000,
                }
                result = run_child(
                    "benchmarks.worker",
                    spec,
                    child_env(m, args.threads, args.graphgen),
                    args.timeout,
                )
                result["spec"] = spec
                done.append(result)
                where = f"round {r + 1}/{rounds} " if rounds > 1 else ""
                print(f"[{where}{k}/{len(todo)}] {_progress(result, done)}", flush=True)
            by_round.append(done)
        cases = [merge_rounds(list(results)) for results in zip(*by_round)]

    comp, jax_depths = None, None
    if not args.no_compile:
        names = [w.name for w in chosen]
        spec = {"workloads": names, "depths": depths, "profile_over": 1.0}
        spec["repeats"] = 1 if args.quick else 3
        print("compile time: graphgen ...", flush=True)
        comp = run_child(
            "benchmarks.compile_time", spec, child_env("shipped", args.threads, args.graphgen), 3600
        )
        if not args.quick and "jax" in impl_names and depths:
            print("compile time: JAX first call on the deep MLPs ...", flush=True)
            jax_depths = run_child(
                "benchmarks.compile_time",
                {"jax": True, "depths": depths},
                child_env("shipped", args.threads, args.graphgen),
                3600,
            )

    described["loadavg_end"] = machine.describe()["loadavg"]
    described["elapsed_s"] = round(time.time() - started)
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    text = render(cases, comp, jax_depths, described, args, command, markdown=False)
    print("\n" + text)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(render(cases, comp, jax_depths, described, args, command, markdown=True))
    print(f"\nwrote {out_path}")
    bad = report.problems(cases)
    if bad:
        print("\n" + "\n".join(bad), file=sys.stderr)
    return 1 if bad else 0


def merge_rounds(results: list[dict]) -> dict:
    """One case's results from several rounds as one: its calls pooled (median, quartiles
    over all of them), faults per call averaged, peaks the largest; the first round's
    result when any round did not time (a mismatch, an error, unavailable)."""
    if len(results) == 1 or any("timing" not in r for r in results):
        return results[0]
    merged = dict(results[0])
    times = [t for r in results for t in r.pop("times", [])]
    merged.pop("times", None)
    merged["timing"] = measure.summarize(times)
    merged["round_medians"] = [r["timing"]["median"] for r in results]
    merged["minflt_per_call"] = statistics.fmean(r["minflt_per_call"] for r in results)
    for key in ("peak_rss_growth", "traced_peak"):
        values = [r[key] for r in results if r.get(key) is not None]
        if values:
            merged[key] = max(values)
    merged["spec"] = {**results[0]["spec"], "budget": sum(r["spec"]["budget"] for r in results)}
    return merged


def _progress(result: dict, cases: list[dict]) -> str:
    s = result["spec"]
    head = f"{s['workload']} {s['dtype']} malloc={s['malloc']} {s['impl']}: "
    if result.get("status") != "ok":
        return head + report.status_text(result)
    base = report.baselines(cases)
    r = report.ratio(result, base)
    t = result["timing"]
    ratio = f" x{r:.2f} vs numpy" if r is not None else ""
    return (
        f"{head}{t['median'] * 1e3:.3f} ms median{ratio}, "
        f"{result['minflt_per_call']:.0f} faults/call"
    )


def render(cases, comp, jax_depths, described, args, command, markdown: bool) -> str:
    h = (lambda s: f"## {s}") if markdown else (lambda s: f"== {s} ==")
    parts = []
    if markdown:
        parts.append(f"# graphgen benchmarks: {described['date']}")
    if args.note:
        parts.append(f"**{args.note}**" if markdown else args.note)
    v = described["versions"]
    parts.append(
        h("Machine")
        + "\n\n"
        + "\n".join(
            f"- {line}"
            for line in (
                f"CPU: {described['cpu']} ({described['logical_cpus']} logical CPUs, "
                f"{described['cores_per_socket']} cores per socket; {described['simd']})",
                f"memory {described['memory']}; {described['os']}; {described['libc']}",
                f"Python {described['python']}, NumPy {described['numpy']} "
                f"(built with {described['numpy_blas']})",
                ", ".join(f"{k} {val}" for k, val in v.items()),
                f"load average at start {described['loadavg']}, at end "
                f"{described['loadavg_end']}; run took {described['elapsed_s']} s",
                f"command: `{command}`" if markdown else f"command: {command}",
                "threads: " + (str(args.threads) if args.threads else "libraries' defaults"),
                "graphgen measured: " + (str(args.graphgen) if args.graphgen else "this tree"),
            )
        )
    )
    if cases:
        blas = report.blas_lines(cases)
        infos = report.info_lines(cases)
        parts.append(
            h("BLAS and runtimes seen by each implementation (threadpoolctl, in its process)")
            + "\n\n"
            + "\n".join(f"- {line}" for line in blas + infos)
        )
        parts.append(h("Summary") + "\n\n" + report.summary_tables(cases, markdown))
        paired = report.paired_tables(cases, markdown)
        if paired:
            parts.append(h("Summary, round by round") + "\n\n" + paired)
        parts.append(h("All cases") + "\n\n" + report.cases_table(cases, markdown))
        missing = report.unavailable(cases)
        if missing:
            parts.append(h("Not available") + "\n\n" + "\n".join(f"- {m}" for m in missing))
        bad = report.problems(cases)
        if bad:
            parts.append(
                h("NOT TIMED: disagreement or failure") + "\n\n" + "\n".join(f"- {b}" for b in bad)
            )
    if comp:
        jax_cases = [c for c in cases if c["spec"]["impl"] == "jax"]
        parts.append(
            h("Compile time")
            + "\n\n"
            + report.compile_tables(comp, jax_cases, jax_depths, markdown)
        )
    parts.append(h("How it is measured") + "\n\n" + METHOD)
    return "\n\n".join(parts) + "\n"


METHOD = """\
- Each case (workload, dtype, malloc setting, implementation) runs in a fresh process with
  OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment. Before timing, the
  implementation's loss and every gradient are checked against the hand-written NumPy on
  the same leaves (error = max abs difference / max abs of the reference array, floored at
  1% of the largest gradient entry; tolerance 2e-4 for float32, 1e-10 for float64); a
  disagreement is reported and the case is not timed. The hand-written NumPy in float32 is
  checked against itself in float64.
- Time: each call timed alone (perf_counter_ns) after warm-up, GC off during the loop;
  median, interquartile range (q1-q3) and minimum over `calls` calls (about `--budget`
  seconds of calls). "vs numpy": median / the hand-written NumPy's median in the same run,
  same dtype and malloc setting.
- With `--rounds N`, each case's calls from all rounds are pooled for the summary above.
  "Round by round" pairs instead: in each round, a case's median over hand NumPy's median
  in that round (a round runs one workload, dtype and malloc setting's implementations
  back to back, within seconds), then the median of those N ratios and their range. This
  machine's slow spells last minutes, so the pairing cancels most of them, where pooling
  lets a spell that hit one implementation's rounds more than another's move its median.
- faults/call: minor page faults (getrusage ru_minflt) over the timed loop / calls.
- peak dRSS MB: VmHWM at the end of the timed loop minus VmRSS before it, after resetting
  the high-water mark (/proc/self/clear_refs): memory the calls needed beyond what the
  process already held (a framework's cached buffers count only if they grew).
- traced MB (NumPy-based implementations): tracemalloc's peak during one call: the largest
  total of live NumPy arrays and Python objects, independent of the allocator.
- malloc "shipped": glibc defaults. "notrim": MALLOC_MMAP_THRESHOLD_=32 MiB and
  MALLOC_TRIM_THRESHOLD_=4 GiB (both needed; either alone disables glibc's dynamic
  thresholds and freed blocks keep going back to the kernel).
- floor: the MLP's eight GEMMs alone into preallocated buffers (not checked: not a
  value_and_grad); the lower bound for the MLP with these BLAS calls.
- Compile time: `gg.compile(graph)` (validation, autodiff, passes, codegen, black, exec) on a
  built graph, after one warm-up compile of a tiny graph; JAX: the first call of
  jit(value_and_grad) (trace, XLA compile, one run), from the JAX case's process.
"""


if __name__ == "__main__":
    sys.exit(main())
