"""Serial vs split epochs of symgrad's MLPs, side by side in one process.

A Dense-only model runs its serial ``_epoch`` (GEMMs threaded by BLAS, every loop on
one core, SGD fused into the GEMMs) or ``_epoch_split`` (each batch in parts, one per
core, single-threaded GEMMs); the API picks the split where a batch has at least
``DENSE_SPLIT_MACS`` multiply-adds of forward GEMM work and parts of
``DENSE_PART_ROWS`` rows (`dense_parts`). This probe times both paths on the benchmark's
problems (plus extra shapes given with --shapes) by forcing ``dense_parts``, alternating
the two within each round, and prints the medians and their ratio, with the batch's
multiply-adds, so the threshold can be read off.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/dense_split_probe.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from mlp_setup import SIZES, Size, make_problem
from run_symgrad import SymgradTrainer

from symgrad.runtime.training import trainer_for


def _parse_shapes(text: str) -> list[Size]:
    """``784-256-10:2048:64,...`` (dims:n:batch) as extra sizes."""
    out = []
    for k, item in enumerate(filter(None, text.split(","))):
        dims, n, batch = item.split(":")
        out.append(Size(f"x{k}", tuple(int(d) for d in dims.split("-")), int(n), int(batch)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="small,medium")
    ap.add_argument("--shapes", default="", help="extra dims:n:batch, comma list")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--activations", default="relu,gelu")
    ap.add_argument("--optimizers", default="sgd,adam")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sizes = [SIZES[s] for s in filter(None, args.sizes.split(","))] + _parse_shapes(args.shapes)
    print("| size | dtype | activation | optimizer | batch MACs | serial ms | split ms |"
          " serial/split |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for size in sizes:
        for dtype in args.dtypes.split(","):
            for act in args.activations.split(","):
                for opt in args.optimizers.split(","):
                    trainer = SymgradTrainer(make_problem(size, dtype, act, opt))
                    module = trainer_for(trainer.model).module
                    auto = module.dense_parts
                    split = max(2, auto(size.batch))
                    times = {1: [], split: []}
                    for parts in (1, split) * (args.rounds + 1):   # first round: compile
                        module.dense_parts = lambda batch_size, parts=parts: parts
                        runs = []
                        for _ in range(args.repeats):
                            t0 = time.perf_counter()
                            trainer.epoch()
                            runs.append(time.perf_counter() - t0)
                        times[parts].append(runs)
                    module.dense_parts = auto
                    med = {p: statistics.median(x for r in runs[1:] for x in r) * 1e3
                           for p, runs in times.items()}
                    macs = size.batch * int(np.dot(size.dims[:-1], size.dims[1:]))
                    print(f"| {size.name} {size.arch} b{size.batch} | {dtype} | {act} | {opt} |"
                          f" {macs:,} | {med[1]:.3g} | {med[split]:.3g} |"
                          f" {med[1] / med[split]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
