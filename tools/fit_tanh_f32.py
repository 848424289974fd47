"""Fit the float32 tanh coefficients of `symgrad/codegen/vecmath_kernels.py` against mpmath.

Rerun with ``python tools/fit_tanh_f32.py`` (a second; needs numpy and mpmath). It prints
the coefficients as the kernel file holds them (lowest degree first) and the worst error of
each approximation in float64 arithmetic on a fine grid (the approximation alone, before
float32 rounding).

Two polynomials, both Chebyshev least-squares fits on 200 Chebyshev nodes (values from
mpmath at 40 digits), converted to the power basis of the variable the kernel evaluates in:

* ``g(u) = (tanh(x)/x - 1)/u`` with u = x^2 in [0, 1], degree 7 in v = 2u - 1:
  tanh(x) = x + x u g(u) below |x| = 1. The error of g is scaled by |u g| < 0.24 in the
  result; 2e-9 relative is far below float32's 6e-8.
* ``q(r) = (e^r - 1 - r)/r^2`` for |r| <= ln2/2, degree 4 in r: e^r = 1 + r + r^2 q(r)
  (degree 6). tanh's branch from |x| = 1 on is 1 - 2/(e^2|x| + 1), which scales the
  exponential's relative error by 1/sinh(2|x|) <= 0.28: 1e-8 relative is enough, so it is
  shorter than `vm_exp_f32`'s degree 8.
"""

from __future__ import annotations

import mpmath
import numpy as np

mpmath.mp.dps = 40
NODES = 200


def chebyshev_fit(f, a: float, b: float, degree: int) -> np.ndarray:
    """Power-basis coefficients in s = (2x - a - b)/(b - a) of a least-squares fit of f."""
    s = np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES)
    x = (a + b) / 2 + (b - a) / 2 * s
    y = np.array([float(f(mpmath.mpf(float(v)))) for v in x])
    return np.polynomial.chebyshev.cheb2poly(np.polynomial.chebyshev.chebfit(s, y, degree))


def g(u):
    if u == 0:
        return mpmath.mpf(-1) / 3
    x = mpmath.sqrt(u)
    return (mpmath.tanh(x) / x - 1) / u


def q(r):
    if r == 0:
        return mpmath.mpf(1) / 2
    return (mpmath.exp(r) - 1 - r) / r**2


def main() -> None:
    small = chebyshev_fit(g, 0.0, 1.0, 7)                     # in v = 2u - 1
    u = np.linspace(1e-6, 1.0, 4001)
    x = np.sqrt(u)
    approx = x + x * u * np.polynomial.polynomial.polyval(2 * u - 1, small)
    exact = np.array([float(mpmath.tanh(mpmath.mpf(float(v)))) for v in x])
    print("tanh small branch, g(v) low to high:", [float(c) for c in small])
    print(f"  worst relative error of tanh: {np.max(np.abs(approx / exact - 1)):.2e}")

    half = float(mpmath.log(2) / 2)
    in_s = chebyshev_fit(q, -half, half, 4)                   # in s = r / half
    in_r = in_s / half ** np.arange(len(in_s))
    r = np.linspace(-half, half, 4001)
    approx = 1 + r + r * r * np.polynomial.polynomial.polyval(r, in_r)
    exact = np.array([float(mpmath.exp(mpmath.mpf(float(v)))) for v in r])
    print("e^r, q(r) low to high:", [float(c) for c in in_r])
    print(f"  worst relative error of e^r: {np.max(np.abs(approx / exact - 1)):.2e}")


if __name__ == "__main__":
    main()
