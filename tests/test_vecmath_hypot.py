"""hypot(x, y) = sqrt(x^2 + y^2) without overflow of the squares (`vm_hypot_*`), in ulps.

The printer writes sqrt(u^2 + c) (and log(u^2 + c)) through it: ISRU's z/sqrt(z^2 + 1)
was z/inf = 0 past |z| = 1.3e154 in float64 (1.8e19 in float32), where it is +-1.
Reference: mpmath at 120 bits. Bound: 4 ulp float64, 2 ulp float32 (issue 8).
"""

from __future__ import annotations

import re

import mpmath
import numpy as np
import pytest
from numba import njit

from symgrad.codegen import vecmath_kernels as vk

_SCALAR_MATH = re.compile(r"call [^\n]*@\"?(?:hypotf?\b|[\w.]*vm_\w+)")


# Not cached on disk: the IR is inspected, and a cached loop keeps old inlined code.
@njit(error_model="numpy", fastmath={"contract"})
def _hypot64(x, y, out):
    for i in range(x.size):
        out[i] = vk.vm_hypot_f64(x[i], y)


@njit(error_model="numpy", fastmath={"contract"})
def _hypot32(x, y, out):
    for i in range(x.size):
        out[i] = vk.vm_hypot_f32(x[i], y)


LOOPS = {np.float64: _hypot64, np.float32: _hypot32}


def _points(dtype: type, n: int, seed: int) -> np.ndarray:
    """Random bit patterns (every exponent), log-spaced magnitudes, both signs."""
    rng = np.random.default_rng(seed)
    itype = np.int64 if dtype is np.float64 else np.int32
    info = np.iinfo(itype)
    bits = rng.integers(info.min, info.max, n, dtype=itype, endpoint=True).view(dtype)
    top = np.log10(float(np.finfo(dtype).max))
    mags = 10 ** np.linspace(-top, top, 2001)
    x = np.concatenate([bits[np.isfinite(bits)], mags, -mags, [0.0, -0.0]]).astype(dtype)
    return x


@pytest.mark.parametrize("dtype, bound", [(np.float64, 4.0), (np.float32, 2.0)])
@pytest.mark.parametrize("y", [1.0, 2.0, 0.5, 3e-20])
def test_against_mpmath(dtype, bound: float, y: float) -> None:
    x = _points(dtype, 20_000, seed=21)
    out = np.empty_like(x)
    LOOPS[dtype](x, dtype(y), out)
    yy = float(dtype(y))
    with mpmath.workprec(120):
        exact = [mpmath.sqrt(mpmath.mpf(float(v)) ** 2 + mpmath.mpf(yy) ** 2) for v in x]
        ref = np.array([float(e) for e in exact])
        rest = np.array([float(e - float(e)) for e in exact])
    fi = np.finfo(dtype)
    keep = (ref >= float(fi.smallest_normal)) & (ref <= float(fi.max))
    ulp = np.spacing(ref[keep].astype(dtype)).astype(np.float64)
    err = np.abs((out[keep].astype(np.float64) - ref[keep]) - rest[keep]) / ulp
    print(f"| hypot(x, {y}) | {np.dtype(dtype).name} | {err.max():.3f} ulp | {err.size} points |")
    assert keep.sum() > 15_000
    assert err.max() <= bound, x[keep][np.argmax(err)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(dtype) -> None:
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0], dtype=dtype)
    out = np.empty_like(x)
    LOOPS[dtype](x, dtype(1.0), out)
    np.testing.assert_array_equal(out[[0, 1, 3, 4]], [np.inf, np.inf, 1.0, 1.0])
    assert np.isnan(out[2])
    LOOPS[dtype](x[:2], dtype(np.nan), out[:2])   # C99: hypot(inf, NaN) = inf
    np.testing.assert_array_equal(out[:2], [np.inf, np.inf])


@pytest.mark.parametrize("dtype, lane", [(np.float64, "double"), (np.float32, "float")])
def test_loop_is_vectorised_without_calls(dtype, lane: str) -> None:
    x = np.linspace(-5, 5, 1001).astype(dtype)
    LOOPS[dtype](x, dtype(1.0), np.empty_like(x))
    ir = "\n".join(LOOPS[dtype].inspect_llvm().values())
    assert re.search(r"^vector\.body\d*:", ir, re.M), "the loop is not vectorised"
    assert re.search(rf"<(?:2|4|8|16) x {lane}>", ir)
    assert not _SCALAR_MATH.search(ir), _SCALAR_MATH.findall(ir)[:3]
