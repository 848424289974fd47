"""Fit the float32 erf/erfc coefficients of `symgrad/codegen/vecmath_kernels.py` against mpmath.

Rerun with ``python tools/fit_erf_f32.py`` (a few seconds; needs numpy and mpmath). It
prints the polynomials as the kernel file holds them (`poly_lines.two_chain_lines`) and
the worst error of each approximation with its float32-rounded coefficients, evaluated
exactly (mpmath) on a fine grid: the approximation alone, not float32 arithmetic.

Two polynomials and a rational function:

* ``S(z) = erf(x)/x - 1`` with z = x^2, for |x| <= 1: degree 6, minimax *absolute* error.
  erf(x) = x + x S(x^2) keeps 2/sqrt(pi) (which float32 rounds by 2^-24.2 relative) out of
  the rounded coefficients.
* ``G(t) = x e^(x^2) erfc(x)`` with t = 1/x, for erf's tail, x in [1, 4] (erf rounds to 1
  beyond 3.92): degree 9 in v = t - T1 (|v| <= 3/8). erf = 1 - erfc there needs erfc to a
  few of its own ulps only (erfc/erf < 0.19 and its ulp is at least 4 times finer).
* ``erfcx(a) = e^(a^2) erfc(a) = P(a)/Q(a)`` for a in [0, 10.125], degrees 5 and 6, minimax
  *relative* error, float64 coefficients: erfc for float32 results is evaluated in float64
  (`_vm_erfc_for_f32`) as e^(-a^2) P/Q and rounded once, so 2^-30 is plenty. The fit's
  coefficients come out positive, so Horner's rule cancels nothing for a >= 0.

Method: Lawson's iteratively reweighted least squares (converges to the minimax fit) on
3000 Chebyshev-spaced points, values from mpmath at 40 digits. Polynomials: each
coefficient is then rounded to float32 in turn, lowest degree first, and the remaining
ones are refitted (rounding them all at once would cost ~2^-25, as much as the fit). The
solver's basis is v/max|v| (conditioning); the printed coefficients are in v itself. The
rational function: the linearised problem P - f Q = 0, weighted by 1/(f Q) of the previous
iterate (so the residual is the relative error), in a Chebyshev basis; the result is
converted to powers of a exactly (mpmath) and normalised to Q(0) = 1.
"""

from __future__ import annotations

import mpmath
import numpy as np
from poly_lines import two_chain_lines

mpmath.mp.dps = 40
N_POINTS = 3000
ITERATIONS = 60
ERFC_CUT = 10.125      # erfc(x) is below half the smallest float32 subnormal beyond
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


def fit_poly(f, lo: float, hi: float, deg: int, relative: bool, centre: float = 0.0
             ) -> np.ndarray:
    """Float32 coefficients, lowest degree first, of a polynomial in v = x - centre that
    approximates f(x) on [lo, hi] (minimax relative or absolute error)."""
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
    for i in range(deg + 1):   # round one, refit the others
        known[i] = float(np.float32(theta[i] / powers[i])) * powers[i]
        free.remove(i)
        if free:
            theta = _lawson(basis, y, scale, known, free)
    coef = np.where(np.isin(np.arange(deg + 1), free), theta, known) / powers
    return coef.astype(np.float32)


def erfcx(a: mpmath.mpf) -> mpmath.mpf:
    """e^(a^2) erfc(a), the scaled complementary error function."""
    return mpmath.erfc(a) * mpmath.exp(a * a)


def _chebyshev_to_powers(coef: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """sum c_k T_k(s), s = (2a - lo - hi)/(hi - lo), as coefficients of powers of a
    (`cheb2poly` as in fit_tanh_f32.py, then s substituted; float64, and `worst_error`
    measures the rounded result)."""
    in_s = np.polynomial.Polynomial(np.polynomial.chebyshev.cheb2poly(coef))
    s_of_a = np.polynomial.Polynomial([-(lo + hi) / (hi - lo), 2.0 / (hi - lo)])
    return in_s(s_of_a).coef


def fit_rational(f, lo: float, hi: float, n: int, m: int) -> tuple[list[float], list[float]]:
    """Float64 coefficients (lowest degree first, Q[0] = 1) of P/Q, degrees
    n and m, minimax relative error to f on [lo, hi]."""
    a = _grid(lo, hi)
    y = np.array([float(f(mpmath.mpf(float(v)))) for v in a])
    s = (2 * a - lo - hi) / (hi - lo)
    tp = np.polynomial.chebyshev.chebvander(s, n)
    tq = np.polynomial.chebyshev.chebvander(s, m)
    # unknowns: P's n + 1 coefficients, Q's but the first (fixed to 1)
    lhs = np.hstack([tp, -y[:, None] * tq[:, 1:]])
    q_prev = np.ones_like(a)
    w = np.full(a.size, 1.0 / a.size)
    best = (np.inf, None)
    for _ in range(3 * ITERATIONS):
        weight = np.sqrt(w) / (y * q_prev)
        sol, *_ = np.linalg.lstsq(lhs * weight[:, None], y * tq[:, 0] * weight, rcond=None)
        pc, qc = sol[:n + 1], np.concatenate([[1.0], sol[n + 1:]])
        q_prev = tq @ qc
        err = np.abs((tp @ pc) / q_prev / y - 1)
        if err.max() < best[0]:
            best = (err.max(), (pc, qc))
        w = w * np.sqrt(err)       # Lawson, as `_lawson`
        w /= w.sum()
    pc, qc = best[1]
    p_pow, q_pow = _chebyshev_to_powers(pc, lo, hi), _chebyshev_to_powers(qc, lo, hi)
    return [float(c) for c in p_pow / q_pow[0]], [float(c) for c in q_pow / q_pow[0]]


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
    p, q = fit_rational(erfcx, 0.0, ERFC_CUT, 5, 6)
    e_r = worst_error(erfcx, lambda a: _horner(p, a) / _horner(q, a), 0.0, ERFC_CUT,
                      relative=True)
    print(f"# erfcx(a) = P(a)/Q(a), a in [0, {ERFC_CUT}]: worst relative error {e_r:.3g}"
          f" (2^{np.log2(e_r):.1f}); float64, one chain each")
    for name, coef in (("p", p), ("q", q)):
        print(f"    {name} = {coef[-1]!r}")
        print("\n".join(f"    {name} = {name} * a + {c!r}" for c in coef[-2::-1]))
    g1 = fit_poly(erfc_g, 0.25, 1.0, 9, relative=True, centre=T1)
    e_g1 = worst_error(erfc_g, lambda t: _horner(g1, t - mpmath.mpf(T1)), 0.25, 1.0,
                       relative=True)
    print(f"# G(t) for erf, t in [1/4, 1], v = t - {T1!r}: worst relative error {e_g1:.3g}"
          f" (2^{np.log2(e_g1):.1f})")
    print(_horner_lines("v", g1))


if __name__ == "__main__":
    main()
