"""x^y for a constant y carried as a double-double (`vm_pow_exact_*`), in ulps.

A rounded exponent costs |log x| times its rounding: x^(2/3) with 2/3 rounded to float64
is ~250 ulp off at x = 1e304, and with 2/3 rounded to float32 ~30 float32 ulp at 1e38.
The printer passes every exponent that is not a float64 exactly this way (1/3, 2/3, pi).
Reference: mpmath at 120 bits. Bounds: 4 ulp float64, 2 ulp float32 (issue 8).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp
from numba import njit

from symgrad.codegen import vecmath_kernels as vk
from symgrad.simplify.accuracy import double_double

EXPONENTS = [sp.Rational(1, 3), sp.Rational(2, 3), sp.Rational(-1, 3), sp.pi,
             sp.Rational(1, 7)]


@njit(error_model="numpy", fastmath={"contract"})
def _exact64(x, y_hi, y_lo, out):
    for i in range(x.size):
        out[i] = vk.vm_pow_exact_f64(x[i], y_hi, y_lo)


@njit(error_model="numpy", fastmath={"contract"})
def _exact32(x, y_hi, y_lo, out):
    for i in range(x.size):
        out[i] = vk.vm_pow_exact_f32(x[i], y_hi, y_lo)


@njit(error_model="numpy", fastmath={"contract"})
def _plain64(x, y, out):
    for i in range(x.size):
        out[i] = vk.vm_pow_f64(x[i], y)


def _pair(c) -> tuple[float, float]:
    return double_double(c)


@pytest.mark.parametrize("dtype, bound", [(np.float64, 4.0), (np.float32, 2.0)])
@pytest.mark.parametrize("y", EXPONENTS, ids=lambda y: f"{float(y):.4g}")
def test_against_mpmath(y, dtype, bound: float) -> None:
    rng = np.random.default_rng(41)
    top = float(np.log10(np.finfo(dtype).max))
    x = (10 ** rng.uniform(-top, top, 6000)).astype(dtype)
    hi, lo = _pair(y)
    out = np.empty_like(x)
    (_exact64 if dtype is np.float64 else _exact32)(x, hi, lo, out)
    with mpmath.workprec(160):
        ye = mpmath.mpf(str(sp.N(y, 60)))
        exact = [mpmath.power(mpmath.mpf(float(v)), ye) for v in x]
        ref = np.array([float(e) for e in exact])
        rest = np.array([float(e - float(e)) if abs(e) < 1e300 else 0.0 for e in exact])
    fi = np.finfo(dtype)
    keep = (ref >= float(fi.smallest_normal)) & (ref <= float(fi.max))
    unit = np.spacing(ref[keep].astype(dtype)).astype(np.float64)
    err = np.abs((out[keep].astype(np.float64) - ref[keep]) - rest[keep]) / unit
    name = np.dtype(dtype).name
    print(f"| x^{float(y):.4g} | {name} | {err.max():.3f} ulp | {err.size} points |")
    assert keep.sum() > 1500   # x^pi overflows past 1e98
    assert err.max() <= bound, x[keep][np.argmax(err)]
    if dtype is np.float64:   # the rounded exponent is clearly worse at large |log x|
        naive = np.empty_like(x)
        _plain64(x, hi, naive)
        assert (np.abs((naive[keep] - ref[keep]) - rest[keep]) / unit).max() > 20


def test_special_values_as_pow() -> None:
    x = np.array([0.0, -0.0, np.inf, np.nan, 1.0, -8.0])
    out, ref = np.empty_like(x), np.empty_like(x)
    hi, lo = _pair(sp.Rational(1, 3))
    _exact64(x, hi, lo, out)
    _plain64(x, hi, ref)
    np.testing.assert_array_equal(out, ref)   # NaN where pow is NaN, 0, inf, 1 likewise
