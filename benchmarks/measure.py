"""Timing, page faults and memory of one prepared implementation, inside its own process.

- Time: every call timed alone with perf_counter_ns after warm-up, the garbage collector
  off during the timed loop (as timeit does); the median and the quartiles are reported.
  The number of calls is chosen from the warm-up so the loop lasts about `budget` seconds.
- Minor page faults per call: `resource.getrusage(RUSAGE_SELF).ru_minflt` over the timed
  loop, divided by the calls (after warm-up, so first-touch faults of setup are excluded).
- Peak RSS growth: the kernel's high-water mark is reset (`/proc/self/clear_refs` "5")
  after warm-up; VmHWM at the end of the timed loop minus VmRSS just before it is what
  the calls needed on top of the steady state. Falls back to ru_maxrss when clear_refs is
  not writable (the value is then a whole-process peak, and marked so).
- Traced peak (NumPy-based implementations only): tracemalloc's peak over one call after
  warm-up; NumPy reports its data buffers to tracemalloc, so this is the largest total of
  live arrays and Python objects during a call, independent of the allocator.
"""

from __future__ import annotations

import gc
import resource
import statistics
import time
import tracemalloc
from typing import Callable


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def traced_peak(call: Callable[[], object]) -> int:
    """Bytes: tracemalloc's peak during one call."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def warm_up(call: Callable[[], object], min_calls: int, min_seconds: float) -> float:
    """Run until both minima are met; returns the median seconds per warm-up call."""
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - t0) * 1e-9)
        if len(times) > 10_000:
            break
    return statistics.median(times)


def timed_loop(call: Callable[[], object], n: int) -> dict:
    """n timed calls: times (s), minor faults per call and the peak RSS growth (bytes)."""
    times = [0.0] * n
    gc.collect()
    rss0 = _status_kb("VmRSS")
    reset = _reset_peak_rss()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    gc.disable()
    try:
        for i in range(n):
            t0 = time.perf_counter_ns()
            call()
            times[i] = (time.perf_counter_ns() - t0) * 1e-9
    finally:
        gc.enable()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    hwm = _status_kb("VmHWM") if reset else ru1.ru_maxrss
    peak = None if hwm is None or rss0 is None else max(hwm - rss0, 0) * 1024
    return {
        "times": times,
        "minflt_per_call": (ru1.ru_minflt - ru0.ru_minflt) / n,
        "majflt": ru1.ru_majflt - ru0.ru_majflt,
        "peak_rss_growth": peak,
        "peak_rss_method": "VmHWM after clear_refs" if reset else "ru_maxrss (whole process)",
        "rss_before": None if rss0 is None else rss0 * 1024,
    }


def summarize(times: list[float]) -> dict:
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else times * 3
    return {
        "n": len(times),
        "median": statistics.median(times),
        "q1": q[0],
        "q3": q[2],
        "min": min(times),
        "max": max(times),
    }


def calls_for(per_call: float, budget: float, min_calls: int, max_calls: int) -> int:
    return int(min(max_calls, max(min_calls, budget / max(per_call, 1e-7))))
