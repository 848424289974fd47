"""Time symgrad's compile in a fresh process: import, symbolic derivation, kernel build.

Run twice with the same ``SYMGRAD_CACHE_DIR`` (bench_mlp.py does this): the
first run, on an empty directory, is the cold compile (code generation plus
Numba compiling to machine code); the second finds the generated module and
Numba's on-disk cache and is the warm compile. Prints one JSON object.

    SYMGRAD_CACHE_DIR=$(mktemp -d) python benchmarks/compile_probe.py small float64
"""

from __future__ import annotations

import json
import sys
import time

from mlp_setup import make_problem


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 4):
        raise SystemExit("usage: compile_probe.py SIZE DTYPE [ACTIVATION OPTIMIZER]")
    problem = make_problem(*argv)
    t0 = time.perf_counter()
    from run_symgrad import build_net, make_optimizer

    import symgrad as sg

    t1 = time.perf_counter()
    model = sg.compile(build_net(problem.size.dims, problem.activation), loss="cross_entropy",
                       optimizer=make_optimizer(problem), dtype=problem.dtype.name)
    t2 = time.perf_counter()

    def fit() -> None:
        model.fit(problem.X, problem.labels, epochs=1, batch_size=problem.size.batch,
                  shuffle=False)

    fit()
    t3 = time.perf_counter()
    epochs = []
    for _ in range(3):
        t = time.perf_counter()
        fit()
        epochs.append(time.perf_counter() - t)
    # The first fit pays for generating, writing and compiling (or loading) the
    # kernels; later fits are plain epochs (the fastest of three: least disturbed),
    # so the difference is the kernel build.
    kernel_s = max((t3 - t2) - min(epochs), 0.0)
    print(json.dumps({"import_s": t1 - t0, "derive_s": t2 - t1, "kernel_s": kernel_s,
                      "compile_s": (t2 - t1) + kernel_s}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
