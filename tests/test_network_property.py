"""Hypothesis: random architectures, activations and losses; gradients vs finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.definition.activations import REGISTRY
from symgrad.prove.check import check_gradients

# Random custom activations are registered by name: drop them when this module is done.
pytestmark = pytest.mark.usefixtures("scratch_registries")

HIDDEN = sorted(n for n, cls in REGISTRY.items() if cls.entry.kind == "elementwise")
# (output activation, loss) pairs whose loss is defined on the activation's range.
HEADS = [("identity", "mse"), ("identity", "mae"), ("identity", "huber"), ("sigmoid", "bce"),
         ("sigmoid", "mse"), ("tanh", "mse"), ("softmax", "cross_entropy")]


@st.composite
def networks(draw):
    depth = draw(st.integers(1, 4))
    widths = [draw(st.integers(1, 8)) for _ in range(depth)]
    head, loss = draw(st.sampled_from(HEADS))
    out_dim = draw(st.integers(2, 4)) if head == "softmax" else draw(st.integers(1, 3))
    layers = []
    dims = widths + [out_dim]
    for i in range(depth):
        layers.append(sg.Dense(dims[i], dims[i + 1], bias=draw(st.booleans())))
        if i < depth - 1:
            layers.append(REGISTRY[draw(st.sampled_from(HIDDEN))]())
    layers.append(REGISTRY[head]())
    return sg.Sequential(*layers), loss, draw(st.integers(0, 2**16))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_reference_gradients_match_finite_differences(case):
    net, loss, seed = case
    model = sg.compile(net, loss=loss, seed=seed)
    entries = check_gradients(model, seed=seed, attempts=3)
    assert max(e.max_error for e in entries) < 1e-5
    X = np.random.default_rng(seed).normal(size=(3, model.plan.input_dim))
    assert np.all(np.isfinite(model.forward(X)))


# --- random custom activations: the saved-output search must never accept a wrong form ---
_x = sg.var("x")
LEAVES = [_x, 2 * _x, _x / 3, -_x]
UNARY = [sg.tanh, sg.sigmoid, sg.softplus, sg.exp, lambda e: e**3, lambda e: e + e**3 / 5,
         lambda e: 1 / (1 + e**2)]


@st.composite
def formulas(draw):
    expr = draw(st.sampled_from(LEAVES))
    for _ in range(draw(st.integers(1, 3))):
        expr = draw(st.sampled_from(UNARY))(expr)
    return expr


def _exact_slope(forward):
    """f'(z) as a central difference of ``forward`` in 60-digit arithmetic (mpmath)."""
    import mpmath
    import sympy as sp

    from symgrad.definition.formulas import Z

    f_mp = sp.lambdify([Z], forward, modules="mpmath")

    def slope(points):
        with mpmath.workdps(60):
            h = mpmath.mpf("1e-25")
            return np.array([float((f_mp(mpmath.mpf(p) + h) - f_mp(mpmath.mpf(p) - h)) / (2 * h))
                             for p in points])
    return slope


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formulas())
def test_random_custom_activation_derivative_is_right(formula):
    import sympy as sp

    from symgrad.definition.formulas import A, Z
    from symgrad.definition.supported import LAMBDIFY_MODULES
    from symgrad.derive.elementwise import derive_elementwise
    from symgrad.prove.identity import prove_numeric
    from symgrad.simplify.saved_output import activation_plan

    layer = sg.activation("random_custom", formula, replace=True)()  # a new formula each example
    plan, _ = activation_plan(derive_elementwise(layer))
    z = np.linspace(-1.5, 1.5, 31)
    f = sp.lambdify([Z], plan.forward, modules=LAMBDIFY_MODULES)
    d = sp.lambdify([Z, A], plan.derivative, modules=LAMBDIFY_MODULES)
    # Oracle independent of SymPy's diff: a central difference of the forward formula
    # in 60-digit arithmetic (float64 differences lose 5+ digits on steep formulas).
    exact_slope = _exact_slope(plan.forward)
    with np.errstate(all="ignore"):
        got = np.broadcast_to(d(z, f(z)), z.shape)
    np.testing.assert_allclose(got, exact_slope(z), rtol=1e-7, atol=1e-12)
    # Far outside the sampled range the engine's form must be no worse than the
    # derivative exactly as SymPy returned it: right wherever that one is right.
    far = np.array([-40.0, -20.0, 20.0, 40.0])
    naive_d = sp.lambdify([Z], plan.derivative_raw, modules=LAMBDIFY_MODULES)
    with np.errstate(all="ignore"):
        got_far = np.broadcast_to(d(far, f(far)), far.shape)
        naive = np.broadcast_to(naive_d(far), far.shape)
    # (Only where the naive slope is finite: mpmath would need ~1e17-bit arithmetic for
    # e.g. exp(exp(exp(40))), and such points are not compared anyway.)
    far, got_far, naive = far[np.isfinite(naive)], got_far[np.isfinite(naive)], naive[
        np.isfinite(naive)]
    want_far = exact_slope(far)
    naive_ok = np.isclose(naive, want_far, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(got_far[naive_ok], want_far[naive_ok], rtol=1e-6, atol=1e-12)
    assert prove_numeric(plan.identity) < 1e-8


# Formulas whose derivative, as SymPy writes it, overflows to inf/inf or inf*0 at
# large |z| (all found by the test above): the stable rules must make them right.
_x3 = _x**3
OVERFLOWING = [sg.log(sg.exp(_x3) + 1), sg.log(sg.exp(sg.exp(_x)) + 1),
               sg.tanh(sg.log(sg.exp(sg.exp(2 * _x)) + 1)), sg.log(sg.exp(8 * _x3) + 1)**3,
               sg.tanh(sg.softplus(_x + _x3 / 5)), sg.log(sg.exp(sg.softplus(2 * _x)**3) + 1)]


@pytest.mark.parametrize("formula", OVERFLOWING, ids=str)
def test_stable_rules_keep_derivatives_finite_far_out(formula):
    import sympy as sp

    from symgrad.definition.formulas import A, Z
    from symgrad.definition.supported import LAMBDIFY_MODULES
    from symgrad.derive.elementwise import derive_elementwise
    from symgrad.simplify.saved_output import activation_plan

    plan, _ = activation_plan(derive_elementwise(sg.activation("overflowing", formula,
                                                                replace=True)()))
    f = sp.lambdify([Z], plan.stable_forward, modules=LAMBDIFY_MODULES)
    d = sp.lambdify([Z, A], plan.derivative, modules=LAMBDIFY_MODULES)
    naive_d = sp.lambdify([Z], plan.derivative_raw, modules=LAMBDIFY_MODULES)
    far = np.array([-40.0, -20.0, 20.0, 40.0])
    want = _exact_slope(plan.forward)(far)
    fits = np.abs(want) < 1e300
    with np.errstate(all="ignore"):
        got = np.broadcast_to(d(far, f(far)), far.shape)
        naive = np.broadcast_to(naive_d(far), far.shape)
    assert not np.all(np.isfinite(naive[fits])), "the naive form was fine: not a regression case"
    np.testing.assert_allclose(got[fits], want[fits], rtol=1e-6, atol=1e-12)
