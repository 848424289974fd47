"""The exact reference (`symgrad.definition.exact`) where a term cancels inside the formula.

Every accuracy verdict rests on `converged`: a form is as good as its distance from
this value. A cancellation inside one term of a sum does not show in the sum's value:
at z = 1e-300, 2z + (e^z - 1) reads 2z at 50 and at 100 digits alike, so doubling
the precision "converged" to a value off by a third, and the correct form (with
expm1) was reported 2e15 ulp off (found by `tools/fuzz_formulas.py --cnn`, seed 4).
The expected values here are worked out by hand from each formula's Taylor series.
"""

from __future__ import annotations

import math

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.exact import converged, mp_function, start_bits

z = sp.Symbol("z", real=True)
TINY = (5e-324, 2.2250738585072014e-308, 1e-300, 1e-60)


@pytest.mark.parametrize("t", TINY + tuple(-t for t in TINY))
@pytest.mark.parametrize("formula, expected", [
    (2 * z + sp.exp(z) - 1, lambda t: 3 * t),                  # e^z - 1 = z + z^2/2 + ...
    (z + sp.cos(z) - 1, lambda t: t),                          # cos z - 1 = -z^2/2 + ...
    (z + sp.log(1 + z), lambda t: 2 * t),                      # log(1 + z) = z - ...
    (2 * z + (sp.exp(z) - 1) * sp.erfc(z), lambda t: 3 * t),   # the fuzzer's activation
])
def test_a_cancelled_term_of_a_sum_is_seen_at_tiny_z(formula, expected, t):
    got = float(converged(mp_function(formula, (z,)), [t]))
    assert got == expected(t) or math.isclose(got, expected(t), rel_tol=1e-15)


@pytest.mark.parametrize("t", [1e30, 1e150, 1e300])
def test_a_cancelled_square_is_seen_at_huge_z(t):
    """sqrt(z^2 + 1) - z = 1/(sqrt(z^2 + 1) + z) ~ 1/(2z): 2000 bits at z = 1e300."""
    got = float(converged(mp_function(z + 2 * (sp.sqrt(z**2 + 1) - z) * z**2, (z,)), [t]))
    assert math.isclose(got, 2 * t, rel_tol=1e-15)


def test_start_bits_grow_with_the_arguments_scale():
    assert start_bits([1.0]) < start_bits([1e-20]) < start_bits([1e-300])
    assert start_bits([1e300]) == start_bits([1e-300]) + 1   # frexp exponents 997 and -996
    assert start_bits([0.0, math.inf, math.nan]) == start_bits([1.0]) - 1


def test_an_accurate_form_is_not_reported_off_at_tiny_z(scratch_registries):
    """The fuzzer's formula: 2z + ELU(z)·erfc(z), evaluated with expm1, meets the bound."""
    x = sg.var("x")
    formula = 2 * x + sp.Piecewise((x, x > 0), (sp.exp(x) - 1, True)) * sp.erfc(x)
    act = sg.activation("exact_ref_elu_erfc", formula, replace=True)
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), act(), sg.Dense(3, 1)), loss="mse")
    assert not [n for n in model.plan.notes if "accuracy bound" in n], model.plan.notes
