"""Hypothesis: random architectures, activations and losses; gradients vs finite differences."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.definition.activations import REGISTRY
from symgrad.prove.check import check_gradients

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


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formulas())
def test_random_custom_activation_derivative_is_right(formula):
    import sympy as sp

    from symgrad.definition.formulas import A, Z
    from symgrad.definition.supported import LAMBDIFY_MODULES
    from symgrad.derive.elementwise import derive_elementwise
    from symgrad.prove.identity import prove_numeric
    from symgrad.simplify.saved_output import activation_plan

    layer = sg.activation("random_custom", formula)()
    plan, _ = activation_plan(derive_elementwise(layer))
    z = np.linspace(-1.5, 1.5, 31)
    f = sp.lambdify([Z], plan.forward, modules=LAMBDIFY_MODULES)
    d = sp.lambdify([Z, A], plan.derivative, modules=LAMBDIFY_MODULES)
    eps = 1e-6
    fd = (f(z + eps) - f(z - eps)) / (2 * eps)
    got = np.broadcast_to(d(z, f(z)), z.shape)
    np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-7)
    assert prove_numeric(plan.identity) < 1e-8
