"""LLVM, not Numba, inlines the vecmath functions, also when they come from the disk cache.

The functions are compiled once per signature with ``forceinline`` (LLVM's
``alwaysinline``; see `_VM_JIT` in ``vecmath_kernels.py``) and cached like every kernel.
So a later process can load ``vm_erf_f64`` from the cache and then compile a *new* loop
that calls it (a module's kernel compiled for the first time, e.g. a split epoch's): the
cached function must still be inlined there and the loop vectorised. Each step runs in a
process of its own, on one folder. erf, because LLVM's cost model alone would leave it a
call (exp it inlines anyway), so the test fails if ``forceinline`` is lost.
"""

from __future__ import annotations

import json
import subprocess
import sys

from symgrad.codegen import vecmath
from symgrad.codegen.source_text import KERNEL_JIT

_MODULE = vecmath.kernel_source() + f'''

from numba import njit


@njit({KERNEL_JIT})
def first(x, out):
    for i in range(x.shape[0]):
        out[i] = vm_erf_f64(x[i])


@njit({KERNEL_JIT})
def second(x, out):
    for i in range(x.shape[0]):
        out[i] = 2.0 * vm_erf_f64(x[i]) + 3.0
'''

_RUN = r"""
import json, re, sys
import numpy as np
from scipy.special import erf
import cached_loops
name = sys.argv[1]
x = np.linspace(-5.0, 5.0, 1000)   # no 0: erf(0) = 0, a relative error
out = np.empty_like(x)
getattr(cached_loops, name)(x, out)
loop = getattr(cached_loops, name)
ir = "\n".join(loop.inspect_llvm().values())
print(json.dumps({
    "erf_hits": sum(cached_loops.vm_erf_f64.stats.cache_hits.values()),
    "vectorised": bool(re.search(r"^vector\.body\d*:", ir, re.M)),
    "calls": sorted(set(re.findall(r"call [^\n]*@\"?[\w.]*(vm_[a-z0-9_]+?_f(?:32|64))", ir))),
    "max_rel_err": float(np.max(np.abs(out / (erf(x) if name == "first"
                                               else 2 * erf(x) + 3) - 1))),
}))
"""


def _run(folder, name: str) -> dict:
    # ``-c`` puts the working folder first on sys.path: ``cached_loops`` is found there.
    done = subprocess.run([sys.executable, "-c", _RUN, name], cwd=folder,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_new_loop_inlines_a_vecmath_function_loaded_from_the_cache(tmp_path):
    (tmp_path / "cached_loops.py").write_text(_MODULE, encoding="utf-8")
    first = _run(tmp_path, "first")
    assert first["erf_hits"] == 0 and first["vectorised"] and first["calls"] == []
    second = _run(tmp_path, "second")   # vm_erf_f64 now comes from the cache
    assert second["erf_hits"] == 1, second
    assert second["vectorised"], "the loop around a cached vecmath function is not vectorised"
    assert second["calls"] == [], f"not inlined: {second['calls']}"
    assert max(first["max_rel_err"], second["max_rel_err"]) < 1e-14
