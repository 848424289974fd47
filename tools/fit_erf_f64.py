"""Fit the float64 erf/erfc polynomials of `symgrad/codegen/vecmath_kernels.py` against mpmath.

Rerun with ``python tools/fit_erf_f64.py`` (about a minute; needs mpmath). It prints each
polynomial as the kernel file holds it and its worst error with the float64-rounded
coefficients, evaluated exactly (mpmath) on a fine grid: the approximation alone, not
float64 arithmetic.

* ``S(z) = erf(x)/x`` with z = x^2 in [0, 1] (`_vm_erf_small`, |x| <= 1): relative error.
* ``H(x) = e^(x^2) erfc(x)`` (erfcx) for x in [0, 2.5], in u = 0.8 x - 1 (`_vm_erfc_pos`):
  erfc(x) = e^(-x^2) H(x) needs no division and no erf below x = 1/2.
* ``G(t) = x e^(x^2) erfc(x)`` with t = 1/x in [1/27.5, 0.4], in v = 5.5 t - 1.2
  (`_vm_erfc_pos` beyond x = 2.5).
* H again for erf's tail, x in [1, 6], in u = 0.4 x - 1.4 (`_vm_erf_tail`): erf = 1 -
  e^(-x^2) H(x) there (1 beyond 6: erfc(6) < 2^-55), one polynomial and no division.

Method: `mpmath.chebyfit`, the Chebyshev interpolant at 200 bits (near-minimax), in a
variable on [-1, 1] (z on [0, 1]) so the monomial coefficients stay small; the degrees
are the smallest with an interpolation error below 2^-56 (erf's tail: 2^-54, as erf = 1 -
erfc needs erfc to 2^-52.3 relative at x = 1 and less beyond); then rounded to float64 (the
rounding of the constant term, up to 2^-54, is the larger error). The printed lines are
the kernel's: two Horner chains (`poly_lines.two_chain_lines`).
"""

from __future__ import annotations

import mpmath
from poly_lines import two_chain_lines

mpmath.mp.prec = 200


def erf_s(z):
    """erf(x)/x as a function of z = x^2 (2/sqrt(pi) at 0)."""
    if z == 0:
        return 2 / mpmath.sqrt(mpmath.pi)
    x = mpmath.sqrt(z)
    return mpmath.erf(x) / x


def erfcx_u(u):
    """e^(x^2) erfc(x) at x = (u + 1) / 0.8."""
    x = (u + 1) * mpmath.mpf(5) / 4
    return mpmath.exp(x * x) * mpmath.erfc(x)


def erfcx_erf_u(u):
    """e^(x^2) erfc(x) at x = (u + 1.4) / 0.4 (x in [1, 6] for u in [-1, 1])."""
    x = (u + mpmath.mpf(7) / 5) * mpmath.mpf(5) / 2
    return mpmath.exp(x * x) * mpmath.erfc(x)


def erfc_g_v(v):
    """x e^(x^2) erfc(x) at t = 1/x = (v + 1.2) / 5.5."""
    x = mpmath.mpf(55) / (10 * v + 12)
    return x * mpmath.exp(x * x) * mpmath.erfc(x)


def fit(f, lo: float, hi: float, degree: int) -> list:
    """Coefficients (mpmath, lowest degree first) of the Chebyshev interpolant of f."""
    return mpmath.chebyfit(f, [lo, hi], degree + 1)[::-1]   # chebyfit: highest first


def worst_relative_error(f, coefs: list, lo: float, hi: float, n: int = 4001) -> float:
    """max |p/f - 1| on n equally spaced points, p evaluated exactly."""
    worst = mpmath.mpf(0)
    for i in range(n):
        x = mpmath.mpf(lo) + (mpmath.mpf(hi) - lo) * i / (n - 1)
        worst = max(worst, abs(mpmath.polyval(coefs[::-1], x) / f(x) - 1))
    return float(worst)


FITS = (
    ("S(z) = erf(x)/x, z = x^2 in [0, 1]", erf_s, 0.0, 1.0, 12, "p", "z"),
    ("H(x) = e^(x^2) erfc(x), x in [0, 2.5], u = 0.8 x - 1", erfcx_u, -1.0, 1.0, 25, "gx", "u"),
    ("G(t) = x e^(x^2) erfc(x), t = 1/x in [1/27.5, 0.4], v = 5.5 t - 1.2", erfc_g_v, -1.0,
     1.0, 20, "gt", "v"),
    ("H(x) for erf, x in [1, 6], u = 0.4 x - 1.4", erfcx_erf_u, -1.0, 1.0, 28, "p", "u"),
)


def log2(x: float) -> float:
    return float(mpmath.log(x, 2))


def main() -> None:
    for title, f, lo, hi, degree, var, x in FITS:
        exact = fit(f, lo, hi, degree)
        rounded = [float(c) for c in exact]
        errors = [worst_relative_error(f, c, lo, hi) for c in (exact, rounded)]
        print(f"# {title}: degree {degree}, worst relative error 2^{log2(errors[0]):.1f}"
              f" (2^{log2(errors[1]):.1f} with the coefficients rounded to float64)")
        print("\n".join(two_chain_lines(var, x, [repr(c) for c in rounded])))
        print()


if __name__ == "__main__":
    main()
