"""exp and erfc of a polynomial argument evaluated by Horner's rule in double-double
(`vm_dd_mad_*`, `vm_exp_poly_*`, `vm_erfc_poly_*`), in ulps.

GELU's tanh form z/(1 + e^(-2c(z + 0.044715 z^3))) rounded its cubic argument in three
steps before the exponential, which turns an absolute error d into a relative one: 551
float64 ulp at z = -21, 41 float32 ulp at z = -9.3. The printer uses these functions for
exp and erfc of any polynomial in one variable with more than one term or a degree above 2
(`simplify.accuracy.polynomial_argument`).

Reference: mpmath at 120 bits. Bounds: 4 ulp float64, 2 ulp float32 (issue 8); the
argument rounded in the dtype (plain Horner) must be clearly worse there.
"""

from __future__ import annotations

import re

import mpmath
import numpy as np
import pytest
import sympy as sp
from numba import njit

from symgrad.codegen import vecmath_kernels as vk
from symgrad.simplify.accuracy import double_double

_SCALAR_MATH = re.compile(r"call [^\n]*@\"?(?:llvm\.exp\.f\d+|expf?\b|erfcf?\b|[\w.]*vm_\w+)")
_z = sp.Symbol("z", real=True)
_GELU_C = sp.sqrt(2) / sp.sqrt(sp.pi)
#: name -> (function, polynomial in z, coefficients leading first)
CASES = {
    "gelu_tanh": ("exp", -2 * _GELU_C * (_z + sp.Rational(8943, 200000) * _z**3)),
    "shifted": ("exp", _z - 1),
    "quadratic": ("exp", -(_z**2) / 3 + _z / 7 - 2),
    "erfc_cubic": ("erfc", _z**3 / 10 + _z / 3),
}


def _coefficients(poly: sp.Expr) -> list[tuple[float, float]]:
    return [double_double(c) if c != 0 else (0.0, 0.0) for c in sp.Poly(poly, _z).all_coeffs()]


def _loop(const, mad, apply):
    """A loop over x of apply(the degree-3 polynomial at x, Horner in double-double).

    Not cached on disk: the IR is inspected, and a cached loop keeps old inlined code.
    Lower degrees pass leading zeros. The coefficients are loop-invariant arguments, as
    the kernels' literals are constants."""
    @njit(error_model="numpy", fastmath={"contract"})
    def loop(x, c0, l0, c1, l1, c2, l2, c3, l3, out):
        for i in range(x.size):
            acc = const(c0, l0)
            acc = mad(acc, x[i], c1, l1)
            acc = mad(acc, x[i], c2, l2)
            acc = mad(acc, x[i], c3, l3)
            out[i] = apply(acc)
    return loop


LOOPS = {(fn, dtype): _loop(getattr(vk, f"vm_dd_const_{sfx}"), getattr(vk, f"vm_dd_mad_{sfx}"),
                            getattr(vk, f"vm_{fn}_poly_{sfx}"))
         for fn in ("exp", "erfc") for dtype, sfx in ((np.float64, "f64"), (np.float32, "f32"))}


def _table(poly: sp.Expr) -> np.ndarray:
    """The coefficients as a (4, 2) table of double-doubles, leading zeros in front: a
    lower degree starts with zero steps (0*z + 0), exactly as the polynomial."""
    rows = _coefficients(poly)
    return np.array([(0.0, 0.0)] * (4 - len(rows)) + rows)


def _run(fn: str, dtype: type, x: np.ndarray, poly: sp.Expr) -> np.ndarray:
    out = np.empty_like(x)
    LOOPS[fn, dtype](x, *_table(poly).ravel(), out)
    return out


def _points(fn: str, poly: sp.Expr, dtype: type, n: int, seed: int) -> np.ndarray:
    """z where the result is a normal number (and a band past it), found on a grid of
    the polynomial's values, plus random z over the same span."""
    rng = np.random.default_rng(seed)
    lo, hi = {("exp", np.float64): (-708.0, 709.0), ("exp", np.float32): (-87.0, 88.0),
              ("erfc", np.float64): (-6.0, 26.5), ("erfc", np.float32): (-4.0, 9.1)}[fn, dtype]
    grid = np.linspace(-1e4, 1e4, 400_001)
    values = sp.lambdify(_z, poly, "numpy")(grid)
    inside = grid[(values > 1.1 * lo) & (values < 1.1 * hi)]
    span = (inside.min(), inside.max())
    return np.concatenate([rng.uniform(*span, n), inside[:: max(1, inside.size // 2000)]]
                          ).astype(dtype)


@pytest.mark.parametrize("dtype, bound", [(np.float64, 4.0), (np.float32, 2.0)])
@pytest.mark.parametrize("case", sorted(CASES))
def test_against_mpmath(case: str, dtype, bound: float) -> None:
    fn, poly = CASES[case]
    x = _points(fn, poly, dtype, 8000, seed=31)
    got = _run(fn, dtype, x, poly)
    f = mpmath.exp if fn == "exp" else mpmath.erfc
    g = sp.lambdify(_z, poly, "mpmath")
    with mpmath.workprec(160):
        exact = [f(g(mpmath.mpf(float(v)))) for v in x]
        ref = np.array([float(e) for e in exact])
        rest = np.array([float(e - float(e)) if abs(e) < 1e300 else 0.0 for e in exact])
    fi = np.finfo(dtype)
    keep = np.isfinite(ref) & (np.abs(ref) >= float(fi.smallest_normal)) \
        & (np.abs(ref) <= float(fi.max))
    unit = np.spacing(np.abs(ref[keep]).astype(dtype)).astype(np.float64)
    err = np.abs((got[keep].astype(np.float64) - ref[keep]) - rest[keep]) / unit
    # the argument rounded in the dtype, step by step (what the kernels did before)
    plain = sp.lambdify(_z, sp.horner(poly), "numpy")(x).astype(dtype)
    naive = _run(fn, dtype, plain, _z)
    naive_err = np.abs(naive[keep].astype(np.float64) - ref[keep]) / unit
    print(f"| {case} | {np.dtype(dtype).name} | {err.max():.3f} ulp |"
          f" rounded argument {naive_err.max():.0f} ulp | {err.size} points |")
    assert keep.sum() > 4000
    assert err.max() <= bound, x[keep][np.argmax(err)]
    assert naive_err.max() > 8


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(dtype) -> None:
    """+-inf and NaN inputs, and polynomials that overflow: the exponential's limits."""
    x = np.array([np.inf, -np.inf, np.nan, 1e30, -1e30, 0.0], dtype=dtype)
    got = _run("exp", dtype, x, -(_z**3) - _z)          # -> -inf, +inf, NaN, ...
    np.testing.assert_array_equal(got[[0, 1, 3, 4, 5]], [0.0, np.inf, 0.0, np.inf, 1.0])
    assert np.isnan(got[2])
    got = _run("erfc", dtype, x, _z**3 + _z)
    np.testing.assert_array_equal(got[[0, 1, 3, 4, 5]], [0.0, 2.0, 0.0, 2.0, 1.0])
    assert np.isnan(got[2])


@pytest.mark.parametrize("fn", ["exp", "erfc"])
@pytest.mark.parametrize("dtype, lane", [(np.float64, "double"), (np.float32, "float")])
def test_loop_is_vectorised_without_calls(fn: str, dtype, lane: str) -> None:
    x = np.linspace(-3, 3, 1001).astype(dtype)
    _run(fn, dtype, x, _z**3 / 10 - _z)
    ir = "\n".join(LOOPS[fn, dtype].inspect_llvm().values())
    assert re.search(r"^vector\.body\d*:", ir, re.M), "the loop is not vectorised"
    assert re.search(rf"<(?:2|4|8|16) x {lane}>", ir)
    assert not _SCALAR_MATH.search(ir), _SCALAR_MATH.findall(ir)[:3]
    if dtype is np.float32 and fn == "exp":   # float32 erfc computes in float64 by design
        assert not re.search(r"<\d+ x double>", ir), "the float32 loop computes in float64"
