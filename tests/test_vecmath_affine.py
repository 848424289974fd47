"""c*u + d with constants the dtype cannot hold (`vm_affine_*`), in ulps, next to its root.

The printer writes a sum c*u + d whose rational coefficient c is no float through it
(`symgrad.simplify.accuracy.affine_last`): 5z/3 + 1 rounded 5/3 and was 32 float64 ulp
off next to its root -3/5. Reference: mpmath at 200 bits. Bound, at every finite input,
the float nearest the root included: 2 float64 ulp (an FMA of integers and a division,
two roundings), 1 float32 ulp (those in float64, then one more). Low parts of c and d
as double-doubles left 4 float64 ulp at the float nearest the root of z/10 - 1/7.
"""

from __future__ import annotations

import re
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp
from numba import njit

from symgrad.codegen import vecmath_kernels as vk
from symgrad.simplify.accuracy import affine_last, affine_np

_SCALAR_MATH = re.compile(r"call [^\n]*@\"?[\w.]*vm_\w+")


# Not cached on disk: the IR is inspected, and a cached loop keeps old inlined code.
@njit(error_model="numpy", fastmath={"contract"})
def _affine64(u, k, out):
    for i in range(u.size):
        out[i] = vk.vm_affine_f64(u[i], k[0], k[1], k[2], k[3], k[4], k[5])


@njit(error_model="numpy", fastmath={"contract"})
def _affine32(u, k, out):
    for i in range(u.size):
        out[i] = vk.vm_affine_f32(u[i], k[0], k[1], k[2], k[3], k[4], k[5])


LOOPS = {np.float64: _affine64, np.float32: _affine32}
_Z = sp.Symbol("z", real=True)


def _constants(c: Fraction, d: Fraction, dtype: type) -> np.ndarray:
    """The printer's constants for c*z + d (`affine_last`)."""
    rest, u, constants = affine_last(sp.Rational(c) * _Z + sp.Rational(d), np.dtype(dtype).name)
    assert rest == 0 and u == _Z
    return np.array(constants)
CASES = [(Fraction(5, 3), Fraction(1)), (Fraction(-7, 5), Fraction(2, 3)),
         (Fraction(1, 10), Fraction(-1, 7)), (Fraction(1000, 3), Fraction(22, 7))]


def _points(dtype: type, c: Fraction, d: Fraction, seed: int) -> np.ndarray:
    """Random values over the whole range and a few thousand floats around the root."""
    rng = np.random.default_rng(seed)
    root = float(-d / c)
    eps = float(np.finfo(dtype).eps)
    near = root * (1 + np.arange(-2000, 2001) * eps)
    top = np.log10(float(np.finfo(dtype).max))
    mags = 10 ** rng.uniform(-top, top, 4000)
    return np.concatenate([near, mags, -mags, [0.0]]).astype(dtype)


def _exact(u: np.ndarray, c: Fraction, d: Fraction) -> tuple[np.ndarray, np.ndarray]:
    with mpmath.workprec(200):
        cc = mpmath.mpf(c.numerator) / c.denominator
        dd = mpmath.mpf(d.numerator) / d.denominator
        exact = [cc * mpmath.mpf(float(v)) + dd for v in u]
        return (np.array([float(e) for e in exact]),
                np.array([float(e - float(e)) for e in exact]))


@pytest.mark.parametrize("dtype, bound", [(np.float64, 2.0), (np.float32, 1.0)])
@pytest.mark.parametrize("c, d", CASES)
def test_within_its_bound_against_mpmath(dtype, bound: float, c: Fraction, d: Fraction
                                         ) -> None:
    u = _points(dtype, c, d, seed=8)
    constants = _constants(c, d, dtype)
    out = np.empty_like(u)
    LOOPS[dtype](u, constants, out)
    ref, rest = _exact(u, c, d)
    fi = np.finfo(dtype)
    keep = (np.abs(ref) >= float(fi.smallest_normal)) & (np.abs(ref) <= float(fi.max))
    ulp = np.spacing(np.abs(ref[keep]).astype(dtype)).astype(np.float64)
    err = np.abs((out[keep].astype(np.float64) - ref[keep]) - rest[keep]) / ulp
    assert keep.sum() > 8000
    assert err.max() <= bound, u[keep][np.argmax(err)]
    # the NumPy mirror that measures the printed forms agrees with the kernel
    mirror = affine_np(u, tuple(constants), np.dtype(dtype))
    mirror_err = np.abs((mirror[keep].astype(np.float64) - ref[keep]) - rest[keep]) / ulp
    assert mirror_err.max() <= bound


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(dtype) -> None:
    """inf stays inf, NaN stays NaN, and 5u/3 + 1 is finite up to 3/5 of the largest
    number (5u alone would overflow past 1/5 of it) and overflows beyond."""
    top = float(np.finfo(dtype).max)
    u = np.array([np.inf, -np.inf, np.nan, 0.59 * top, -0.59 * top, top], dtype=dtype)
    out = np.empty_like(u)
    LOOPS[dtype](u, _constants(Fraction(5, 3), Fraction(1), dtype), out)
    np.testing.assert_array_equal(out[[0, 1, 5]], [np.inf, -np.inf, np.inf])
    assert np.isnan(out[2])
    np.testing.assert_allclose(out[3:5], [top * (0.59 * 5 / 3), -top * (0.59 * 5 / 3)], rtol=1e-6)


@pytest.mark.parametrize("dtype, lane", [(np.float64, "double"), (np.float32, "double")])
def test_loop_is_vectorised_without_calls(dtype, lane: str) -> None:
    u = np.linspace(-5, 5, 1001).astype(dtype)
    LOOPS[dtype](u, _constants(Fraction(5, 3), Fraction(1), dtype), np.empty_like(u))
    ir = "\n".join(LOOPS[dtype].inspect_llvm().values())
    assert re.search(r"^vector\.body\d*:", ir, re.M), "the loop is not vectorised"
    assert re.search(rf"<(?:2|4|8|16) x {lane}>", ir)
    assert not _SCALAR_MATH.search(ir), _SCALAR_MATH.findall(ir)[:3]
