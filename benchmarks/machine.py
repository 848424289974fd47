"""What machine a benchmark ran on, recorded beside its timings.

The project's machines vary from day to day (AVX-512 one day, AVX2 the next; a Python loop
2.5x slower on one than another), and a table is only comparable with one from a machine of
the same kind. So each report records the CPU model, its widest vector extension and a
single-thread speed probe, and says in its notes when other processes loaded the cores.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

VECTOR_FLAGS = ("avx512f", "avx2", "avx", "sse4_2")   # widest first


def cpu_model_and_vectors(cpuinfo: str | None = None) -> tuple[str, str]:
    """The CPU's model name and widest vector extension, from /proc/cpuinfo.

    >>> cpu_model_and_vectors("model name\\t: AMD EPYC\\nflags\\t\\t: fpu sse4_2 avx avx2 fma\\n")
    ('AMD EPYC', 'avx2')
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    model, flags = platform.processor() or "unknown", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    return model, next((f for f in VECTOR_FLAGS if f in flags), "unknown")


def python_loop_ms(n: int = 1_000_000, repeats: int = 3) -> float:
    """Best time of a plain Python loop of n additions, in ms: a single-thread speed probe
    (compiling and importing scale with it, not with the vector units)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        total = 0
        for i in range(n):
            total += i
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def describe() -> dict:
    """The report's "machine" entry: cores, platform, CPU, vectors, speed probe, load."""
    model, vectors = cpu_model_and_vectors()
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "cpu_model": model, "vectors": vectors,
            "python_loop_ms": round(python_loop_ms(), 1), "loadavg_at_end": os.getloadavg(),
            "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")}}


def add_notes(report: dict, load_start: float) -> None:
    """Record the load at the start, and say in the notes which machine and how busy."""
    machine = report["machine"]
    machine["loadavg_at_start"] = load_start
    report["notes"]["cpu"] = (f"{machine['cpu_model']}, {machine['vectors']}; a Python loop of "
                              f"10^6 additions took {machine['python_loop_ms']} ms")
    busy = max(load_start, machine["loadavg_at_end"][0])
    if busy > 0.5 * (os.cpu_count() or 1):
        # Other processes on the cores make threaded BLAS spin and wait: say so in the output.
        report["notes"]["machine"] = (f"1-min load average reached {busy:.1f} on "
                                      f"{os.cpu_count()} cpus: timings are noisy")
