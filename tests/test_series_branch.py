"""Taylor branches (`simplify.series`): proposed only for analytic formulas, proven by
what they claim, refused where the claim fails."""

from __future__ import annotations

import sympy as sp

from symgrad.simplify.accuracy import evaluate
from symgrad.simplify.series import TaylorPolynomial, remainder_within, taylor_candidates
from symgrad.simplify.zero import zero_method

z = sp.Symbol("z", real=True)


def test_candidates_are_lazy_and_lowest_degree_first():
    got = taylor_candidates(z - sp.tanh(z), z)
    first = next(got)[1]
    assert isinstance(first, TaylorPolynomial) and first.degree == 16
    exact = sp.series(z - sp.tanh(z), z, 0, 17).removeO()
    assert sp.Poly(first.polynomial, z).monoms() == sp.Poly(exact, z).monoms()
    for k in range(17):
        assert abs(first.polynomial.coeff(z, k) - exact.coeff(z, k)) <= \
            1e-35 * abs(exact.coeff(z, k))


def test_no_candidates_where_the_series_is_not_a_polynomial():
    for f in (sp.sqrt(z) + z, sp.log(z), sp.Abs(z) - sp.tanh(z), 1 / z + z,
              sp.Max(0, z) - sp.tanh(z)):
        assert list(taylor_candidates(f, z)) == [], f


def test_horner_form_evaluates_the_polynomial():
    node = TaylorPolynomial(sp.exp(z) - 1 - z, z, 12)
    import numpy as np
    x = np.linspace(-0.5, 0.5, 11)
    got = evaluate(node, {z: x}, "float64")
    want = sp.lambdify(z, node.polynomial)(x)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-300)


def test_remainder_within_its_radius_only():
    node = TaylorPolynomial(z - sp.tanh(z), z, 64)
    assert remainder_within(node, 0.8)
    assert not remainder_within(node, 1.4)   # past where 64 terms converge to 2^-53


def _splice(branch: sp.Expr, cond: sp.Basic, rest: sp.Expr) -> sp.Piecewise:
    return sp.Piecewise((branch, cond), (rest, True))


def test_the_proof_checks_formula_condition_and_radius():
    f = z - sp.tanh(z)
    node = TaylorPolynomial(f, z, 64)
    assert "Taylor" in zero_method(f - _splice(node, sp.Abs(z) < sp.Rational(3, 4), f))
    # the branch's formula is not the one in its place
    other = TaylorPolynomial(z - sp.sin(z), z, 64)
    assert zero_method(f - _splice(other, sp.Abs(z) < sp.Rational(3, 4), f)) is None
    # a condition that is not |z| < r, or a radius past the series' reach
    assert zero_method(f - _splice(node, z < sp.Rational(3, 4), f)) is None
    assert zero_method(f - _splice(node, sp.Abs(z) < 2, f)) is None
