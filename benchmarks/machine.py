"""A description of the machine and software a run was taken on."""

from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata


def _cpuinfo() -> dict:
    info: dict = {}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and "model" not in info:
            info["model"] = value
        elif key == "cpu cores" and "cores_per_socket" not in info:
            info["cores_per_socket"] = value
        elif key == "flags" and "flags" not in info:
            flags = set(value.split())
            info["simd"] = " ".join(
                f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags
            )
    return info


def _mem_total() -> str:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "?"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def numpy_blas() -> str:
    """The BLAS NumPy was built against, from numpy.show_config (NumPy 2: a dict)."""
    import numpy as np

    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # NumPy 1.x or an unexpected layout
        return "?"


def describe() -> dict:
    import numpy as np

    cpu = _cpuinfo()
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    libc = " ".join(platform.libc_ver())
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu.get("model", platform.processor() or "?"),
        "logical_cpus": os.cpu_count(),
        "cores_per_socket": cpu.get("cores_per_socket", "?"),
        "simd": cpu.get("simd", "?"),
        "memory": _mem_total(),
        "os": f"{platform.system()} {platform.release()}",
        "libc": libc or "?",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": numpy_blas(),
        "loadavg": load,
        "versions": {
            d: _version(d) for d in ("torch", "jax", "jaxlib", "autograd", "scipy", "threadpoolctl")
        },
    }
