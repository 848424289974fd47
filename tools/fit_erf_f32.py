"""Fit the float32 erf/erfc coefficients of `symgrad/codegen/vecmath_kernels.py` against mpmath.

Rerun with ``python tools/fit_erf_f32.py`` (a few seconds; needs numpy and mpmath). It
prints the polynomials as the kernel file holds them (`poly_lines.two_chain_lines`) and
the worst error of each approximation with its float32-rounded coefficients, evaluated
exactly (mpmath) on a fine grid: the approximation alone, not float32 arithmetic.

Three polynomials:

* ``S(z) = erf(x)/x - 1`` with z = x^2, for |x| <= 1: degree 6, minimax *absolute* error.
  erf(x) = x + x S(x^2) keeps 2/sqrt(pi) (which float32 rounds by 2^-24.2 relative) out of
  the rounded coefficients; erfc(x) = (1 - x) - x S for |x| <= 1/2.
* ``G(t) = x e^(x^2) erfc(x)`` with t = 1/x, for x in [1/2, 10.125]: degree 18 in
  v = t - T0 (|v| < 0.96), minimax *relative* error. G is smooth and tends to 1/sqrt(pi),
  so erfc(x) = e^(-x^2) t G(t) has its steep parts (e^(-x^2), 1/x) outside the polynomial.
  The constant term is a float32 pair (high, low): at v = 0 the value is the constant
  alone, so its rounding (up to 2^-25 relative) could not be refitted away.
* The same G for erf's tail, x in [1, 4] (erf rounds to 1 beyond 3.92): degree 9 in
  v = t - T1 (|v| <= 3/8). erf = 1 - erfc there needs erfc to a few of its own ulps only
  (erfc/erf < 0.19 and its ulp is at least 4 times finer), so erf takes this short one.

Method: Lawson's iteratively reweighted least squares (converges to the minimax fit) on
3000 Chebyshev-spaced points, values from mpmath at 40 digits. Then each coefficient is
rounded to float32 in turn, lowest degree first, and the remaining ones are refitted
(rounding them all at once would cost ~2^-25, as much as the fit). The solver's basis is
v/max|v| (conditioning); the printed coefficients are in v itself.
"""

from __future__ import annotations

import mpmath
import numpy as np
from poly_lines import two_chain_lines

mpmath.mp.dps = 40
N_POINTS = 3000
ITERATIONS = 60
ERFC_CUT = 10.125      # erfc(x) is below half the smallest float32 subnormal beyond
T0 = float(np.float32(1.05))   # centre of t = 1/x in [1/10.125, 2]
T1 = float(np.float32(0.625))  # centre of t = 1/x in [1/4, 1]


def erf_s(z: mpmath.mpf) -> mpmath.mpf:
    """erf(x)/x - 1 as a function of z = x^2 (2/sqrt(pi) - 1 at 0)."""
    if z == 0:
        return 2 / mpmath.sqrt(mpmath.pi) - 1
    x = mpmath.sqrt(z)
    return mpmath.erf(x) / x - 1


def erfc_g(t: mpmath.mpf) -> mpmath.mpf:
    """x e^(x^2) erfc(x) as a function of t = 1/x."""
    x = 1 / t
    return x * mpmath.erfc(x) * mpmath.exp(x * x)


def _grid(lo: float, hi: float, n: int = N_POINTS) -> np.ndarray:
    """Chebyshev-spaced points on [lo, hi] (dense at the ends, where fits go wrong)."""
    v = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    return lo + (v + 1.0) * (hi - lo) / 2.0


def _lawson(basis: np.ndarray, y: np.ndarray, scale: np.ndarray, known: np.ndarray,
            free: list[int]) -> np.ndarray:
    """Coefficients minimising max |basis @ c - y| / scale, with c[i] = known[i] off ``free``."""
    w = np.full(y.size, 1.0 / y.size)
    best = (np.inf, known)
    for _ in range(ITERATIONS):
        weight = np.sqrt(w) / scale
        sol, *_ = np.linalg.lstsq(basis[:, free] * weight[:, None],
                                  (y - basis @ known) * weight, rcond=None)
        theta = known.copy()
        theta[free] = sol
        err = np.abs(basis @ theta - y) / scale
        if err.max() < best[0]:
            best = (err.max(), theta)
        w = w * np.sqrt(err)       # Lawson: weight up where the error is large
        w /= w.sum()
    return best[1]


def fit_poly(f, lo: float, hi: float, deg: int, relative: bool, centre: float = 0.0,
             split_constant: bool = False) -> np.ndarray:
    """Float32 coefficients, lowest degree first, of a polynomial in v = x - centre that
    approximates f(x) on [lo, hi] (minimax relative or absolute error). With
    ``split_constant`` the constant term comes back as two float32 (high, low), first."""
    x = _grid(lo, hi)
    y = np.array([float(f(mpmath.mpf(float(v)))) for v in x])
    v = x - centre
    vmax = float(np.abs(v).max())
    basis = np.vander(v / vmax, deg + 1, increasing=True)
    powers = vmax ** np.arange(deg + 1)
    scale = np.abs(y) if relative else np.ones_like(y)
    known = np.zeros(deg + 1)
    free = list(range(deg + 1))
    theta = _lawson(basis, y, scale, known, free)
    for i in range(1 if split_constant else 0, deg + 1):   # round one, refit the others
        known[i] = float(np.float32(theta[i] / powers[i])) * powers[i]
        free.remove(i)
        if free:
            theta = _lawson(basis, y, scale, known, free)
    coef = np.where(np.isin(np.arange(deg + 1), free), theta, known) / powers
    if not split_constant:
        return coef.astype(np.float32)
    c0 = np.float32(coef[0])
    return np.concatenate([[c0, np.float32(coef[0] - float(c0))], coef[1:]]).astype(np.float32)


def _horner(coef, v: mpmath.mpf) -> mpmath.mpf:
    out = mpmath.mpf(0)
    for c in coef[::-1]:
        out = out * v + mpmath.mpf(float(c))
    return out


def worst_error(f, approx, lo: float, hi: float, relative: bool, n: int = 20001) -> float:
    """max |approx/f - 1| (or |approx - f|) on n equally spaced points, in exact arithmetic."""
    points = (mpmath.mpf(lo) + (hi - lo) * mpmath.mpf(i) / (n - 1) for i in range(n))
    return max(float(abs(approx(x) / f(x) - 1) if relative else abs(approx(x) - f(x)))
               for x in points)


def _horner_lines(var: str, coef) -> str:
    """The kernel's lines for the polynomial (`poly_lines.two_chain_lines`)."""
    return "\n".join(two_chain_lines("p", var, [f"_VM_F({float(c)!r})" for c in coef]))


def main() -> None:
    s = fit_poly(erf_s, 0.0, 1.0, 6, relative=False)
    e_s = worst_error(erf_s, lambda z: _horner(s, z), 0.0, 1.0, relative=False)
    print(f"# S(z) = erf(x)/x - 1, z = x^2 in [0, 1]: worst absolute error {e_s:.3g}"
          f" (2^{np.log2(e_s):.1f})")
    print(_horner_lines("z", s))
    g = fit_poly(erfc_g, 1 / ERFC_CUT, 2.0, 18, relative=True, centre=T0, split_constant=True)
    c0 = mpmath.mpf(float(g[0])) + mpmath.mpf(float(g[1]))
    e_g = worst_error(erfc_g, lambda t: _horner([c0, *g[2:]], t - mpmath.mpf(T0)),
                      1 / ERFC_CUT, 2.0, relative=True)
    print(f"# G(t) = x e^(x^2) erfc(x), t = 1/x in [1/{ERFC_CUT}, 2], v = t - {T0!r}:"
          f" worst relative error {e_g:.3g} (2^{np.log2(e_g):.1f})")
    print(_horner_lines("v", g[2:]) + "   # times v, then + c0")
    print(f"c0 = _VM_F({float(g[0])!r}), c0_lo = _VM_F({float(g[1])!r})")
    g1 = fit_poly(erfc_g, 0.25, 1.0, 9, relative=True, centre=T1)
    e_g1 = worst_error(erfc_g, lambda t: _horner(g1, t - mpmath.mpf(T1)), 0.25, 1.0,
                       relative=True)
    print(f"# G(t) for erf, t in [1/4, 1], v = t - {T1!r}: worst relative error {e_g1:.3g}"
          f" (2^{np.log2(e_g1):.1f})")
    print(_horner_lines("v", g1))


if __name__ == "__main__":
    main()
