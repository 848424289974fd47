"""Cold and warm kernel compile times of a 3-layer MLP (goal: warm < 1 s, cold < 10 s).

Each measurement is a fresh Python process with ``SYMGRAD_CACHE_DIR`` pointing
at one temporary directory: the first process starts from an empty cache
(cold: generate, write, compile with Numba), the second finds the kernel file
and Numba's cached machine code (warm: load only). The time reported as
"kernels" is the first ``fit`` epoch on 256 rows plus the first ``predict``
(the one-off cost), minus nothing; import and symbolic derivation are shown
apart.

Run: ``python benchmarks/bench_compile_cache.py [--dtype float32] [--runs 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

CHILD = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import numpy as np
    import symgrad as sg
    t1 = time.perf_counter()
    net = sg.Sequential(sg.Dense(784, 256), sg.ReLU(), sg.Dense(256, 128), sg.ReLU(),
                        sg.Dense(128, 10), sg.Softmax())
    model = sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.05), dtype=sys.argv[1])
    t2 = time.perf_counter()
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(256, 784)), rng.integers(0, 10, 256)
    model.fit(X, y, epochs=1, batch_size=128, shuffle=False)
    t3 = time.perf_counter()
    model.predict(X)
    t4 = time.perf_counter()
    from symgrad.runtime.training import trainer_for
    mod = trainer_for(model).module
    hits = sum(sum(getattr(mod, f).stats.cache_hits.values()) for f in ("_epoch", "_predict"))
    print(json.dumps({"import": t1 - t0, "derive": t2 - t1, "fit": t3 - t2, "predict": t4 - t3,
                      "cache_hits": hits}))
""")


def run(cache: str, dtype: str) -> dict:
    env = {**os.environ, "SYMGRAD_CACHE_DIR": cache}
    proc = subprocess.run([sys.executable, "-c", CHILD, dtype], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--runs", type=int, default=2, help="cold/warm pairs (fresh cache each)")
    args = ap.parse_args()
    print(f"3-layer MLP 784-256-128-10 (ReLU, softmax CE, SGD), {args.dtype}; seconds")
    print("| run | kind | import symgrad | derive | first fit | first predict | kernels total "
          "| Numba cache hits |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in range(args.runs):
        with tempfile.TemporaryDirectory() as cache:
            for kind in ("cold", "warm"):
                t = run(cache, args.dtype)
                print(f"| {r + 1} | {kind} | {t['import']:.2f} | {t['derive']:.2f} | "
                      f"{t['fit']:.2f} | {t['predict']:.2f} | {t['fit'] + t['predict']:.2f} | "
                      f"{t['cache_hits']} |")
    print("goal: kernels warm < 1 s, cold < 10 s (load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus)")


if __name__ == "__main__":
    main()
