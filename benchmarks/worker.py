"""Run one framework over the requested sizes and dtypes, in its own process.

Each framework gets a fresh interpreter so that thread pools (OpenMP, XLA,
OpenBLAS) and global switches (JAX x64) cannot disturb the others. Results go
to ``<out>/<framework>.json``; the weights after the first epoch go to
``<out>/<framework>_<size>_<dtype>_<activation>_<optimizer>.npz`` for the
sanity comparison (and, for float32, NumPy's first epoch in float64 from the same start
to ``numpy64_...npz`` and in float32 with its sums reordered to ``numpy32r_...npz``).

Usage (bench_mlp.py does this for you)::

    python benchmarks/worker.py numpy --sizes tiny --dtypes float64 --activations relu,gelu \
        --optimizers sgd,adam --repeats 5 --out /tmp/b
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
import traceback
from pathlib import Path

import numpy as np
from mlp_setup import WARMUP_S, full_loss, make_problem, median_ms, warm_up

# framework -> (module, trainer class)
RUNNERS = {
    "numpy": ("run_numpy", "NumpyTrainer"),
    "symgrad": ("run_symgrad", "SymgradTrainer"),
    "torch": ("run_torch", "TorchTrainer"),
    "jax": ("run_jax", "JaxTrainer"),
}


def save_weights(path: Path, weights: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """The weights after the first epoch as W0, b0, W1, ... (the sanity comparison's files)."""
    np.savez(path, **{f"W{i}": W for i, (W, _) in enumerate(weights)},
             **{f"b{i}": b for i, (_, b) in enumerate(weights)})


def bench_one(module, cls, size: str, dtype: str, repeats: int, out: Path, name: str,
              activation: str = "relu", optimizer: str = "sgd", warmup_s: float = WARMUP_S
              ) -> dict:
    """First epoch (compile included) for the sanity check, ``warmup_s`` seconds of
    untimed epochs (`warm_up`), then ``repeats`` timed."""
    problem = make_problem(size, dtype, activation, optimizer)
    t0 = time.perf_counter()
    trainer = cls(problem)
    setup_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    loss1 = trainer.epoch()
    first_ms = (time.perf_counter() - t0) * 1e3
    weights = trainer.weights()
    save_weights(out / f"{name}_{problem.tag}.npz", weights)
    if name == "numpy" and problem.dtype == np.float32:
        # The same first epoch without float32 rounding, and in float32 with every sum
        # in another order: how far the second strays from the first is this cell's
        # yardstick for rounding (bench_mlp's `_agrees`).
        for label, run in (("numpy64", cls(problem.in_float64())),
                           ("numpy32r", cls(problem, reordered=True))):
            run.epoch()
            save_weights(out / f"{label}_{problem.tag}.npz", run.weights())
    warmup_epochs = warm_up(trainer.epoch, warmup_s)   # caches, thread pools, clocks
    med, times = median_ms(trainer.epoch, repeats)
    res = {
        "size": size, "dtype": dtype, "activation": activation, "optimizer": optimizer,
        "setup_ms": setup_ms, "first_epoch_ms": first_ms,
        "median_ms": med, "times_ms": times, "warmup_epochs": warmup_epochs,
        "loss_epoch1": loss1, "full_loss_after_epoch1": full_loss(problem, weights),
        # Compile (or tracing) cost: what the first epoch and setup cost beyond a warm epoch.
        "compile_ms": max(setup_ms + first_ms - med, 0.0),
    }
    if name == "numpy":
        from run_numpy import matmul_floor_ms
        res["floor_ms"] = matmul_floor_ms(problem, repeats, warmup_s)
    extra = getattr(trainer, "extra_info", None)
    if callable(extra):
        res.update(extra())
    return res


def load_runner(runners: dict, name: str, report: dict):
    """(module, runner class) of framework ``name``; (None, None) with ``report["missing"]``."""
    mod_name, cls_name = runners[name]
    try:
        module = importlib.import_module(mod_name)
        cls = getattr(module, cls_name)
        report["version"] = getattr(module, "VERSION", None) or _version(name)
        return module, cls
    except Exception as exc:  # a missing peer is reported, never fatal for the run
        report["missing"] = f"{type(exc).__name__}: {exc}"
        return None, None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("framework", choices=sorted(RUNNERS))
    ap.add_argument("--sizes", default="tiny,small,medium")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--activations", default="relu")
    ap.add_argument("--optimizers", default="sgd")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=float, default=WARMUP_S,
                    help="seconds of untimed epochs before the timed ones")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.framework
    report: dict = {"framework": name, "results": [], "pid": os.getpid()}
    module, cls = load_runner(RUNNERS, name, report)
    if cls is not None:
        cases = [(size, dtype, act, opt) for size in args.sizes.split(",")
                 for dtype in args.dtypes.split(",") for act in args.activations.split(",")
                 for opt in args.optimizers.split(",")]
        for size, dtype, act, opt in cases:
            try:
                report["results"].append(
                    bench_one(module, cls, size, dtype, args.repeats, args.out, name, act, opt,
                              args.warmup))
            except Exception as exc:
                report["results"].append({"size": size, "dtype": dtype, "activation": act,
                                          "optimizer": opt,
                                          "error": f"{type(exc).__name__}: {exc}",
                                          "traceback": traceback.format_exc()})
            print(f"[{name}] {size} {dtype} {act} {opt}: done", flush=True)
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=1))
    return 0


def _version(name: str) -> str | None:
    try:
        return importlib.import_module(name).__version__
    except Exception:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
