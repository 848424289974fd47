"""Where branches meet with one slope, f' there is that slope, not the kink convention's.

CELU written as max(0, z) + min(0, a(e^(z/a) - 1)) is differentiable at 0 with slope 1;
each step at its left value gave 0 + 0 (helper-33's fuzzing, bug 5), which is not even a
subgradient. True kinks (ReLU, |z|, max(z, z/10)) keep the convention.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.convention import differentiate
from symgrad.derive.seams import pinned_seams, smooth_seams
from symgrad.simplify.zero import zero_method

z = sp.Symbol("z", real=True)
HALF = sp.Rational(1, 2)

SMOOTH = {   # formula: (seam, slope there)
    "celu": (sp.Max(0, z) + sp.Min(0, HALF * (sp.exp(z / HALF) - 1)), 0, 1),
    "shifted": (sp.Max(1, z) + sp.Min(0, z - 1), 1, 1),
    "two maxima": (sp.Max(0, z**3) + sp.Max(0, -z**3) + sp.Max(z, 0) + sp.Min(z, 0), 0, 1),
}
KINKED = {   # the convention's value is a side's slope (or between them): unchanged
    "relu": sp.Max(0, z),
    "abs": sp.Abs(z),
    "elu": sp.Piecewise((z, z > 0), (HALF * (sp.exp(z) - 1), True)),
    "a jump": sp.Heaviside(z - 1) * z,
}
LEFT = {   # steps reading 0 + 0 at a kink, neither side's slope: the left slope is used
    "leaky": (sp.Max(z, z / 10), {0: sp.Rational(1, 10)}),
    "max of cubic": (sp.Max(z, z**3), {-1: 1, 1: 1}),
    "min + 2 max": (sp.Min(z, 0) + 2 * sp.Max(z, 0), {0: 1}),
}


@pytest.mark.parametrize("name", SMOOTH)
def test_a_smooth_seam_gets_its_slope(name):
    f, seam, slope = SMOOTH[name]
    d = differentiate(f, z)
    pinned = smooth_seams(f, d, z)
    assert pinned.subs(z, seam) == slope != d.subs(z, seam)
    sympy_slope, seams = pinned_seams(pinned)
    assert sympy_slope == d and seams == ((seam, slope),)
    for side in (-1, 1):   # the slope is the limit from both sides, numerically too
        near = seam + side * 1e-9
        assert float(d.subs(z, near)) == pytest.approx(slope, abs=1e-6)


@pytest.mark.parametrize("name", KINKED)
def test_a_true_kink_keeps_the_convention(name):
    d = differentiate(KINKED[name], z)
    assert smooth_seams(KINKED[name], d, z) == d


@pytest.mark.parametrize("name", LEFT)
def test_a_kink_whose_steps_read_no_slope_gets_the_left_one(name):
    """max(z, z/10) at 0: its steps gave 0 + 0, outside the subdifferential [1/10, 1];
    the built-in LeakyReLU gives alpha there (its left slope), and so does this now."""
    f, expected = LEFT[name]
    d = differentiate(f, z)
    pinned = smooth_seams(f, d, z)
    for c, slope in expected.items():
        assert pinned.subs(z, c) == slope != d.subs(z, c)
        assert float(d.subs(z, c - 1e-9)) == pytest.approx(float(slope), rel=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_celu_as_a_formula_has_slope_one_at_zero(scratch_registries, dtype):
    """Kernels and the NumPy reference: 1 at z = 0 and beside it; sg.check proves the
    derivative's rewrite with its pinned seam (a region bounded by e^(2z) = 1 was beyond
    the prover: breakpoints took polynomial arguments only)."""
    celu = sg.activation("seam_celu", "Max(0, x) + Min(0, alpha*(exp(x/alpha) - 1))",
                         alpha=0.5)
    zs = np.array([-1e-30, 0.0, 1e-30, -0.5, 0.5])
    k = zs.size
    model = sg.compile(sg.Sequential(sg.Dense(1, k), celu(), sg.Dense(k, k)), loss="mse",
                       dtype=dtype)
    model.set_params({"dense0.W": np.zeros((1, k)), "dense0.b": zs,
                      "dense1.W": np.eye(k), "dense1.b": np.zeros(k)})
    X = np.ones((1, 1))
    y = model.predict_proba(X) - 1
    exact = np.where(zs > 0, 1.0, np.exp(2 * zs))
    for loss_and_grads in (model.compiled_backward, model.backward):
        _, g = loss_and_grads(X, y)
        slopes = g["dense0.b"] / g["dense1.b"]
        np.testing.assert_allclose(slopes, exact, rtol=1e-6 if dtype == "float32" else 1e-14)
    if dtype == "float64":
        model.check()


def _printout(name: str, formula: str) -> str:
    act = sg.activation(name, formula)
    return sg.compile(sg.Sequential(sg.Dense(2, 3), act(), sg.Dense(3, 1)),
                      loss="mse").derivation.text()


def test_the_printout_says_why_a_kink_takes_its_left_slope(scratch_registries):
    text = _printout("seam_leaky", "Max(x, x/10)")
    assert "At z = 0 f has a kink, slope 1/10 on the left and 1 on the right" in text
    assert "f'(0) = lim_(z -> 0-) f'(z) = 1/10" in text


def test_the_printout_says_where_the_slope_is_pinned(scratch_registries):
    text = _printout("seam_print", "Max(0, x) + Min(0, exp(x) - 1)")
    assert "At z = 0 the branches meet with the same slope from both sides, 1" in text
    assert "would give 0" in text
    assert "f'(0) = lim_(z -> 0) f'(z) = 1" in text
    # no "the derivative does not exist" for the steps that switch at that seam
    assert "derivative does not exist" not in text


def test_the_prover_splits_regions_at_closed_form_roots():
    """A kink argument e^(2z)/2 - 1/2 bounds regions at z = 0 now (solved in closed form),
    and steps are decided over each region."""
    from sympy.codegen.cfunctions import expm1

    a = sp.exp(2 * z) * sp.Heaviside(HALF - sp.exp(2 * z) / 2, 0)
    b = sp.Piecewise((0, expm1(2 * z) >= 0), (sp.exp(2 * z) * sp.Heaviside(-expm1(2 * z) / 2, 0),
                                               True))
    assert zero_method(a - b) == "branchwise"
    assert zero_method(a - b + sp.Heaviside(-z, 0) * z**2) is None   # a real difference
