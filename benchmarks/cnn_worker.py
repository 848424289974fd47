"""Run one framework's CNN trainer over the requested sizes and dtypes, in its own process.

As worker.py does for the MLP benchmark: a fresh interpreter per framework (thread
pools and JAX's x64 switch cannot leak), results in ``<out>/<framework>.json``, the
weights after the first epoch in ``<out>/<framework>_<size>_<dtype>.npz``.

Usage (bench_cnn.py does this for you)::

    python benchmarks/cnn_worker.py numpy --sizes tiny --dtypes float64 --repeats 5 --out /tmp/b
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from pathlib import Path

import numpy as np
from cnn_setup import make_problem
from mlp_setup import WARMUP_S, median_ms, warm_up
from worker import load_runner

# framework -> (module, trainer class)
RUNNERS = {
    "numpy": ("run_cnn_numpy", "NumpyCnnTrainer"),
    "symgrad": ("run_cnn_symgrad", "SymgradCnnTrainer"),
    "torch": ("run_cnn_torch", "TorchCnnTrainer"),
    "jax": ("run_cnn_jax", "JaxCnnTrainer"),
}


def bench_one(cls, size: str, dtype: str, repeats: int, out: Path, name: str,
              warmup_s: float = WARMUP_S) -> dict:
    """First epoch (compile included) for the sanity check, ``warmup_s`` seconds of
    untimed epochs (`mlp_setup.warm_up`), then ``repeats`` timed."""
    problem = make_problem(size, dtype)
    t0 = time.perf_counter()
    trainer = cls(problem)
    setup_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    loss1 = trainer.epoch()
    first_ms = (time.perf_counter() - t0) * 1e3
    np.savez(out / f"{name}_{problem.tag}.npz", **trainer.weights())
    warmup_epochs = warm_up(trainer.epoch, warmup_s)   # caches, thread pools, clocks
    med, times = median_ms(trainer.epoch, repeats)
    res = {
        "size": size, "dtype": dtype, "setup_ms": setup_ms, "first_epoch_ms": first_ms,
        "median_ms": med, "times_ms": times, "warmup_epochs": warmup_epochs,
        "loss_epoch1": loss1,
        # Compile (or tracing) cost: what the first epoch and setup cost beyond a warm epoch.
        "compile_ms": max(setup_ms + first_ms - med, 0.0),
    }
    if name == "numpy":
        from run_cnn_numpy import gemm_floor_ms
        res["floor_ms"] = gemm_floor_ms(problem, repeats, warmup_s)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("framework", choices=sorted(RUNNERS))
    ap.add_argument("--sizes", default="tiny,lenet")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=float, default=WARMUP_S,
                    help="seconds of untimed epochs before the timed ones")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.framework
    report: dict = {"framework": name, "results": [], "pid": os.getpid()}
    _, cls = load_runner(RUNNERS, name, report)
    if cls is not None:
        for size in args.sizes.split(","):
            for dtype in args.dtypes.split(","):
                try:
                    report["results"].append(bench_one(cls, size, dtype, args.repeats, args.out,
                                                       name, args.warmup))
                except Exception as exc:
                    report["results"].append({"size": size, "dtype": dtype,
                                              "error": f"{type(exc).__name__}: {exc}",
                                              "traceback": traceback.format_exc()})
                print(f"[{name}] {size} {dtype}: done", flush=True)
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
