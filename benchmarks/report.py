"""Tables of a run: as aligned text for the terminal and as Markdown for results/*.md."""

from __future__ import annotations

import statistics

from .impls import IMPLS

MB = 2**20


def table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 10 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def _mb(nbytes: float | None) -> str:
    return "-" if nbytes is None else f"{nbytes / MB:.1f}"


def baselines(cases: list[dict]) -> dict:
    """(workload, dtype, malloc) -> the hand-written NumPy median of that group."""
    out = {}
    for c in cases:
        s = c["spec"]
        if s["impl"] == "numpy" and c.get("status") == "ok" and "timing" in c:
            out[(s["workload"], s["dtype"], s["malloc"])] = c["timing"]["median"]
    return out


def ratio(case: dict, base: dict) -> float | None:
    s = case["spec"]
    b = base.get((s["workload"], s["dtype"], s["malloc"]))
    if b is None or "timing" not in case:
        return None
    return case["timing"]["median"] / b


def status_text(case: dict) -> str:
    status = case.get("status")
    if status == "ok":
        return case.get("check", "ok")
    if status == "unavailable":
        return "not available: " + case.get("reason", "")
    if status == "mismatch":
        return "!! " + case.get("check", "MISMATCH") + " (not timed)"
    return "!! " + str(status) + ": " + case.get("reason", "")


def cases_table(cases: list[dict], markdown: bool) -> str:
    base = baselines(cases)
    headers = [
        "workload",
        "dtype",
        "malloc",
        "impl",
        "median ms",
        "IQR ms",
        "min ms",
        "vs numpy",
        "faults/call",
        "peak dRSS MB",
        "traced MB",
        "calls",
        "check",
    ]
    rows = []
    for c in cases:
        s, t = c["spec"], c.get("timing")
        r = ratio(c, base)
        rows.append(
            [
                s["workload"],
                s["dtype"],
                s["malloc"],
                s["impl"],
                _ms(t["median"]) if t else "-",
                f"{_ms(t['q1'])}-{_ms(t['q3'])}" if t else "-",
                _ms(t["min"]) if t else "-",
                f"{r:.2f}" if r is not None else "-",
                f"{c['minflt_per_call']:.0f}" if "minflt_per_call" in c else "-",
                _mb(c.get("peak_rss_growth")),
                _mb(c.get("traced_peak")),
                str(t["n"]) if t else "-",
                status_text(c) if markdown else _short_status(c),
            ]
        )
    return table(headers, rows, markdown)


def _short_status(case: dict) -> str:
    text = status_text(case)
    return text if len(text) <= 60 else text[:57] + "..."


def summary_tables(cases: list[dict], markdown: bool) -> str:
    """Issue-6 style: per malloc setting and dtype, a row per workload, a column per impl,
    each cell `ratio (median ms)`."""
    base = baselines(cases)
    return _grids(
        cases,
        markdown,
        lambda dtype, malloc: (
            f"{dtype}, malloc {malloc}: time per call as a ratio to hand NumPy (median ms)"
        ),
        lambda case: _cell(case, base),
    )


def paired_ratios(case: dict, cases: list[dict]) -> list[float] | None:
    """The case's median in each round over hand NumPy's median in the same round (same
    workload, dtype and malloc), or None without rounds. A round runs a group's
    implementations one after another within seconds, so a slow spell of the machine,
    which lasts minutes, mostly hits both sides of each ratio alike."""
    mine = case.get("round_medians")
    base = next(
        (
            c.get("round_medians")
            for c in cases
            if c["spec"]["impl"] == "numpy" and _group(c) == _group(case)
        ),
        None,
    )
    if not mine or not base or len(mine) != len(base):
        return None
    return [a / b for a, b in zip(mine, base)]


def paired_tables(cases: list[dict], markdown: bool) -> str:
    """Like summary_tables, from paired_ratios: each cell the median over the rounds of
    the per-round ratio (lowest-highest); empty without rounds."""
    return _grids(
        cases,
        markdown,
        lambda dtype, malloc: (
            f"{dtype}, malloc {malloc}: per round, median / hand NumPy's median in the same "
            "round; median over rounds (lowest-highest)"
        ),
        lambda case: _paired_cell(paired_ratios(case, cases)),
    )


def _group(case: dict) -> tuple:
    s = case["spec"]
    return s["workload"], s["dtype"], s["malloc"]


def _grids(cases: list[dict], markdown: bool, title, cell) -> str:
    """Per malloc setting and dtype (title(dtype, malloc)), a table with a row per
    workload and a column per impl, each cell cell(case) ("" for no case); a table whose
    cells are all empty is left out."""
    impls = [i for i in IMPLS if any(c["spec"]["impl"] == i for c in cases)]
    workloads = list(dict.fromkeys(c["spec"]["workload"] for c in cases))
    by_key = {(*_group(c), c["spec"]["impl"]): c for c in reversed(cases)}  # first wins
    out = []
    keys = sorted({(c["spec"]["malloc"], c["spec"]["dtype"]) for c in cases}, key=_order)
    for malloc, dtype in keys:
        rows = []
        for w in workloads:
            found = [by_key.get((w, dtype, malloc, impl)) for impl in impls]
            rows.append([w, *("" if c is None else cell(c) for c in found)])
        if all(c == "" for row in rows for c in row[1:]):
            continue
        head = title(dtype, malloc)
        out.append(
            ("**" + head + "**" if markdown else head)
            + "\n\n"
            + table(["workload", *impls], rows, markdown)
        )
    return "\n\n".join(out)


def _paired_cell(ratios: list[float] | None) -> str:
    if not ratios:
        return ""
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def _order(key):
    malloc, dtype = key
    return (0 if malloc == "shipped" else 1, dtype)


def _cell(case: dict, base: dict) -> str:
    status = case.get("status")
    if status == "unavailable":
        return "n/a"
    if status == "mismatch":
        return "MISMATCH"
    if status != "ok":
        return "error"
    r = ratio(case, base)
    ms = _ms(case["timing"]["median"])
    return f"{r:.2f} ({ms})" if r is not None else f"- ({ms})"


def problems(cases: list[dict]) -> list[str]:
    """Lines for every case that was not timed because it disagreed or failed."""
    lines = []
    for c in cases:
        if c.get("status") in ("mismatch", "error", "crashed", "timeout"):
            s = c["spec"]
            lines.append(
                f"!! {s['impl']} on {s['workload']} {s['dtype']} (malloc {s['malloc']}): "
                f"{status_text(c)}"
            )
    return lines


def unavailable(cases: list[dict]) -> list[str]:
    reasons: dict[str, set] = {}
    for c in cases:
        if c.get("status") == "unavailable":
            reasons.setdefault(c.get("reason", "?"), set()).add(c["spec"]["workload"])
    return [f"{reason} ({', '.join(sorted(ws))})" for reason, ws in reasons.items()]


def blas_lines(cases: list[dict]) -> list[str]:
    """Which BLAS / thread pools each implementation's process had loaded."""
    seen: dict[str, set] = {}
    for c in cases:
        for lib in c.get("blas", []):
            if "error" in lib:
                text = lib["error"]
            else:
                text = (
                    f"{lib.get('internal_api')} {lib.get('version')} "
                    f"kernel={lib.get('architecture') or '-'} threads={lib.get('num_threads')} "
                    f"({lib.get('library')})"
                )
            seen.setdefault(c["spec"]["impl"], set()).add(text)
    return [f"{impl}: " + "; ".join(sorted(libs)) for impl, libs in seen.items()]


def info_lines(cases: list[dict]) -> list[str]:
    seen: dict[str, set] = {}
    for c in cases:
        info = c.get("info") or {}
        keep = {k: v for k, v in info.items() if k != "source_lines"}
        if keep:
            seen.setdefault(c["spec"]["impl"], set()).add(
                ", ".join(f"{k}={v}" for k, v in sorted(keep.items()))
            )
    return [f"{impl}: " + "; ".join(sorted(v)) for impl, v in seen.items()]


def compile_tables(
    comp: dict | None, jax_cases: list[dict], jax_depths: dict | None, markdown: bool
) -> str:
    if not comp:
        return ""
    if "error" in comp:
        return f"compile-time run failed: {comp['error']}"
    jax_first = {}
    for c in jax_cases:
        if c.get("status") == "ok" and c["spec"]["malloc"] == "shipped":
            jax_first[(c["spec"]["workload"], c["spec"]["dtype"])] = c.get("first_call_s")
    rows = []
    for r in comp.get("workloads", []):
        w = r["workload"]
        jf = jax_first.get((w, "float32"))
        if "unavailable" in r:
            rows.append([w, "-", "-", r["unavailable"], "-", _ms(jf)])
            continue
        rows.append(
            [
                w,
                str(r["nodes"]),
                _ms(r["build_s"]),
                _ms(r["median_s"]),
                str(r["source_lines"]),
                _ms(jf),
            ]
        )
    parts = [
        table(
            [
                "workload",
                "graph nodes",
                "build ms",
                "graphgen compile ms (median)",
                "source lines",
                "JAX first call ms (f32)",
            ],
            rows,
            markdown,
        )
    ]
    jd = {r["depth"]: r["first_call_s"] for r in (jax_depths or {}).get("depths", [])}
    drows = []
    prev = None
    for r in comp.get("depths", []):
        growth = "-"
        if prev is not None:
            times, nodes = r["median_s"] / prev["median_s"], r["nodes"] / prev["nodes"]
            growth = f"x{times:.1f} for x{nodes:.0f} nodes"
        drows.append(
            [
                str(r["depth"]),
                str(r["nodes"]),
                f"{r['median_s']:.3f}",
                f"{r['median_s'] / r['nodes'] * 1e3:.2f}",
                growth,
                str(r["source_lines"]),
                f"{jd[r['depth']]:.3f}" if r["depth"] in jd else "-",
            ]
        )
        prev = r
    if drows:
        parts.append(
            table(
                [
                    "MLP layers",
                    "graph nodes",
                    "compile s",
                    "ms per node",
                    "growth",
                    "source lines",
                    "JAX first call s",
                ],
                drows,
                markdown,
            )
        )
    for p in comp.get("profiles", []):
        stage_rows = [
            [k, f"{v:.2f}", f"{100 * v / p['profiled_s']:.0f}%"] for k, v in p["stages"].items()
        ]
        other = p["profiled_s"] - sum(p["stages"].values())
        stage_rows.append(["other", f"{other:.2f}", f"{100 * other / p['profiled_s']:.0f}%"])
        head = f"Profile of compiling {p['workload']} ({p['profiled_s']:.1f} s under cProfile):"
        parts.append(head + "\n\n" + table(["stage", "s", "share"], stage_rows, markdown))
        fence = "```" if markdown else ""
        parts.append(f"Top functions by own time:\n\n{fence}\n{p['top']['tottime']}\n{fence}")
        parts.append(
            f"Top functions by cumulative time:\n\n{fence}\n{p['top']['cumulative']}\n{fence}"
        )
    return "\n\n".join(parts)
