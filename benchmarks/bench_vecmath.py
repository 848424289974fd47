"""symgrad's vectorised elementary functions in a fused loop vs NumPy's SIMD ufuncs.

Issue 8's target: a fused elementwise loop of tanh, exp or the logistic function over a
large buffer runs within 1.5x of NumPy's own ufunc on the same buffer. Each loop is
compiled the way the kernels compile theirs (`symgrad.codegen.source_text.KERNEL_JIT`:
``error_model="numpy"``, no zero-division branch, so LLVM vectorises; fastmath
``contract``, so the polynomials run as FMAs) around the `symgrad.codegen.vecmath`
function the printer emits; NumPy gets ``out=`` so neither side allocates. Medians of
``--repeats`` calls over 786 432 values drawn from N(0, 3).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_vecmath.py
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from symgrad.codegen import vecmath
from symgrad.codegen.source_text import KERNEL_JIT

_LOOPS = '''
@njit(KERNEL_JIT)
def tanh_{s}(x, out):
    for i in range(x.size):
        out[i] = vm_tanh_{s}(x[i])


@njit(KERNEL_JIT)
def exp_{s}(x, out):
    for i in range(x.size):
        out[i] = vm_exp_{s}(x[i])


@njit(KERNEL_JIT)
def logistic_{s}(x, out):
    one = x.dtype.type(1.0)
    for i in range(x.size):
        out[i] = one / (one + vm_exp_{s}(-x[i]))
'''


def _module(folder: str):
    """The vecmath source plus the loops, imported from a file (Numba caches by file)."""
    loops = "".join(_LOOPS.format(s=s) for s in ("f32", "f64"))
    source = ("import numpy as np\nfrom numba import njit\n" + vecmath.kernel_source()
              + loops.replace("KERNEL_JIT", KERNEL_JIT))
    path = Path(folder) / "vecmath_bench_loops.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("vecmath_bench_loops", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _median_ms(fn, repeats: int) -> float:
    fn()   # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _cases(loops, s: str, x: np.ndarray):
    """(name, fused loop call, NumPy call) per function, both writing into one buffer."""
    out = np.empty_like(x)
    one = x.dtype.type(1.0)

    def logistic() -> None:
        np.negative(x, out=out)
        np.exp(out, out=out)
        np.add(one, out, out=out)
        np.divide(one, out, out=out)

    return [("tanh", lambda: loops.__dict__[f"tanh_{s}"](x, out), lambda: np.tanh(x, out=out)),
            ("exp", lambda: loops.__dict__[f"exp_{s}"](x, out), lambda: np.exp(x, out=out)),
            ("logistic", lambda: loops.__dict__[f"logistic_{s}"](x, out), logistic)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--size", type=int, default=786_432)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| function | dtype | fused loop ms | NumPy ms | fused / NumPy |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        loops = _module(folder)
        for dtype, s in ((np.float32, "f32"), (np.float64, "f64")):
            x = rng.normal(0.0, 3.0, args.size).astype(dtype)
            for name, fused, ufunc in _cases(loops, s, x):
                ours = _median_ms(fused, args.repeats)
                theirs = _median_ms(ufunc, args.repeats)
                print(f"| {name} | {np.dtype(dtype).name} | {ours:.3f} | {theirs:.3f} | "
                      f"{ours / theirs:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
