"""Time symgrad's CNN compile in a fresh process: import, symbolic derivation, kernel build.

Run with the same ``SYMGRAD_CACHE_DIR`` several times (bench_cnn.py does this):
on an empty directory it is the cold compile; a second run finds the derived
plans, the generated modules and Numba's machine code there (warm); ``--resized``
compiles the same layer kinds with other channel counts (`cnn_setup.RESIZED`),
which is what a user changing a width sees on a warm cache. Prints one JSON object.

    SYMGRAD_CACHE_DIR=$(mktemp -d) python benchmarks/cnn_compile_probe.py lenet float32
"""

from __future__ import annotations

import json
import sys
import time

from cnn_setup import RESIZED, make_problem


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--resized"]
    if len(args) != 2:
        raise SystemExit("usage: cnn_compile_probe.py SIZE DTYPE [--resized]")
    size, dtype = args
    problem = make_problem(RESIZED[size] if "--resized" in argv else size, dtype)
    t0 = time.perf_counter()
    import symgrad  # noqa: F401  (timed on its own: the issue's target includes it)

    t1 = time.perf_counter()
    from run_cnn_symgrad import compile_model

    model = compile_model(problem.size, dtype, problem.lr)
    t2 = time.perf_counter()

    def fit() -> None:
        model.fit(problem.X, problem.labels, epochs=1, batch_size=problem.size.batch,
                  shuffle=False)

    fit()
    t3 = time.perf_counter()
    epochs = []
    for _ in range(2):
        t = time.perf_counter()
        fit()
        epochs.append(time.perf_counter() - t)
    # The first fit pays for generating, writing and compiling (or loading) the
    # kernels; later fits are plain epochs (the faster of two: less disturbed),
    # so the difference is the kernel build.
    kernel_s = max((t3 - t2) - min(epochs), 0.0)
    print(json.dumps({"import_s": t1 - t0, "derive_s": t2 - t1, "kernel_s": kernel_s,
                      "first_epoch_s": t3 - t2, "epoch_s": min(epochs),
                      "compile_s": (t2 - t1) + kernel_s,
                      "ready_s": (t1 - t0) + (t2 - t1) + kernel_s}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
