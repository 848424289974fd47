"""Taylor coefficients by truncated power series (`simplify.power_series`), against SymPy's
exact series where SymPy is quick and against mpmath's numerical Taylor coefficients
where SymPy takes minutes."""

from __future__ import annotations

import mpmath
import pytest
import sympy as sp

from symgrad.simplify.power_series import taylor_coefficients

z = sp.Symbol("z", real=True)

# Every function with a series rule, and quotients whose leading terms cancel.
AGAINST_SYMPY = [
    z - sp.tanh(z), sp.sin(z) / z, sp.exp(z) - 1 - z, (z - sp.sin(z)) / z**3, sp.atan(2 * z),
    sp.erf(z / 3), sp.erfc(2 * z + 1), sp.erfc(z + 20), sp.sqrt(1 + z**2) - 1, sp.log(1 + z) / z,
    sp.cosh(z) ** 2 - sp.sinh(z) ** 2, (1 + z) ** sp.pi, 2**z, 1 / sp.tanh(z) - 1 / z,
    sp.cos(3 * z) * sp.exp(-z**2), z / (1 + sp.exp(-z)), sp.log(1 + sp.exp(z)) - sp.log(2),
    sp.atan(sp.sinh(z)) - z,
]


@pytest.mark.parametrize("f", AGAINST_SYMPY, ids=str)
def test_coefficients_equal_sympys_exact_series(f) -> None:
    got = taylor_coefficients(f, z, 14)
    exact = sp.series(f, z, 0, 15).removeO()
    with mpmath.workprec(200):
        for k in range(15):
            want = mpmath.mpf(str(sp.N(exact.coeff(z, k) if k else exact.subs(z, 0), 50)))
            if want == 0:   # exactly: what a cancellation left is flushed
                assert got[k] == 0, (k, got[k])
            else:
                assert abs(got[k] - want) <= mpmath.mpf(1e-35) * abs(want), k


# SymPy's series of these took more than a minute at degree 16 (each nests an exponential):
# a user's activation built like this stalled sg.compile when it asked for a Taylor branch.
NESTED = [sp.exp(sp.exp(3 * z)), sp.tanh(sp.exp(z) + sp.exp(z) ** 3 / 5),
          sp.exp(1 / (1 + sp.exp(z) ** 2)), sp.exp(sp.log(1 + sp.exp(2 * z)) ** 3)]


@pytest.mark.parametrize("f", NESTED, ids=str)
def test_nested_formulas_against_mpmaths_taylor(f) -> None:
    got = taylor_coefficients(f, z, 20)
    g = sp.lambdify(z, f, "mpmath")
    with mpmath.workdps(60):
        want = mpmath.taylor(g, 0, 20)
    for k in range(21):
        assert abs(got[k] - want[k]) <= mpmath.mpf(1e-30) * abs(want[k]), (k, got[k], want[k])


@pytest.mark.parametrize("f", [sp.sqrt(z), sp.log(z), 1 / z + z, z**sp.pi, sp.log(z - 1),
                               sp.sqrt(z**2), sp.exp(1 / z), sp.Abs(z)], ids=str)
def test_no_series_where_f_has_none_at_zero(f) -> None:
    assert taylor_coefficients(f, z, 8) is None


def test_quotients_that_cancel_deeply_still_reach_the_degree() -> None:
    """(z - sin z - z^3/6 ... ) / z^9 loses nine degrees to the quotient: the margin grows."""
    f = (sp.sin(z) - z + z**3 / 6 - z**5 / 120 + z**7 / 5040) / z**9
    got = taylor_coefficients(f, z, 40)
    exact = sp.series(f, z, 0, 41).removeO()
    assert float(got[0]) == pytest.approx(float(exact.subs(z, 0)), rel=1e-15)
    assert float(got[40]) == pytest.approx(float(exact.coeff(z, 40)), rel=1e-15)
