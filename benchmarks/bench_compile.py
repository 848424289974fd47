"""Time `sg.compile` + `sg.check` of a 10-hidden-layer MLP (goal: under 5 s).

Each run starts from empty derivation caches (in memory, and the on-disk one
is switched off), so it measures the symbolic work of a first compile.
Run: ``python benchmarks/bench_compile.py``.
"""

from __future__ import annotations

import os
import statistics
import time

import symgrad as sg
from symgrad.derive import network


def build(width: int = 32) -> sg.Sequential:
    layers: list = [sg.Dense(8, width)]
    hidden = [sg.Tanh, sg.ReLU, sg.ELU, sg.Sigmoid, sg.GELU]
    for i in range(10):
        layers += [hidden[i % len(hidden)](), sg.Dense(width, width if i < 9 else 3)]
    layers.append(sg.Softmax())
    return sg.Sequential(*layers)


def run_once() -> tuple[float, float]:
    network._ACTIVATIONS.clear()
    network._OUTPUTS.clear()
    t0 = time.perf_counter()
    model = sg.compile(build(), loss="cross_entropy")
    t1 = time.perf_counter()
    sg.check(model)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main(runs: int = 5) -> None:
    os.environ["SYMGRAD_DERIVATION_CACHE"] = "0"   # derive from scratch every run
    results = [run_once() for _ in range(runs)]
    derive = statistics.median(r[0] for r in results)
    prove = statistics.median(r[1] for r in results)
    print(f"10-hidden-layer MLP (5 activation kinds, softmax + cross-entropy), {runs} runs")
    print(f"  compile (derive + simplify): median {derive:.2f} s")
    print(f"  check (identities, matrix rules, finite differences): median {prove:.2f} s")
    print(f"  total: median {statistics.median(sum(r) for r in results):.2f} s (goal < 5 s)")


if __name__ == "__main__":
    main()
