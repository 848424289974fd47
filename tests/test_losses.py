"""Every loss registry entry: derivative vs finite differences, fusion, stability, errors."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.errors import DefinitionError, NotElementwiseError, PairingError
from symgrad.definition.formulas import P, Y
from symgrad.definition.losses import LOSSES
from symgrad.definition.supported import LAMBDIFY_MODULES
from symgrad.prove.identity import prove_identity

# An output activation each loss is meaningful on (the pairing itself is derived, not listed).
OUTPUT_FOR = {"mse": sg.Identity, "mae": sg.Identity, "huber": sg.Identity, "bce": sg.Sigmoid,
              "cross_entropy": sg.Softmax}


def _net(loss_name, k=1):
    k = 3 if loss_name == "cross_entropy" else k
    return sg.Sequential(sg.Dense(2, 3), sg.Tanh(), sg.Dense(3, k), OUTPUT_FOR[loss_name]())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_step_a_matches_finite_differences(name):
    entry = LOSSES[name]
    model = sg.compile(_net(name) if name in OUTPUT_FOR else _net("mse"), loss=entry)
    step_a = model.plan.output.step_a
    fl = sp.lambdify([P, Y], entry.bound(), modules=LAMBDIFY_MODULES)
    fd_fn = sp.lambdify([P, Y], step_a, modules=LAMBDIFY_MODULES)
    p = np.array([0.13, 0.31, 0.62, 0.87])
    y = np.array([0.0, 1.0, 0.25, 0.5]) if name != "cross_entropy" else np.array([1.0, 0, 1, 0])
    eps = 1e-6
    fd = (fl(p + eps, y) - fl(p - eps, y)) / (2 * eps)
    np.testing.assert_allclose(np.broadcast_to(fd_fn(p, y), p.shape), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", sorted(OUTPUT_FOR))
def test_fusion_identities_proven(name):
    plan = sg.compile(_net(name), loss=name).plan
    assert plan.output.identities
    for ident in plan.output.identities:
        assert prove_identity(ident).max_error < 1e-8


def test_closed_forms_emerge():
    assert sg.compile(_net("bce"), loss="bce").plan.output.delta == P - Y
    assert sg.compile(_net("cross_entropy"), loss="cross_entropy").plan.output.delta == P - Y
    mse = sg.compile(_net("mse"), loss="mse").plan.output.delta
    assert sp.expand(mse - 2 * (P - Y)) == 0


@pytest.mark.parametrize("name", sorted(OUTPUT_FOR))
def test_logits_of_1000_give_finite_loss_and_gradients(name):
    model = sg.compile(_net(name), loss=name)
    W_big = {k: v.copy() for k, v in model.params.items()}
    last = [k for k in W_big if k.endswith(".W")][-1]
    W_big[last][:] = 0.0
    W_big[last.replace(".W", ".b")][:] = 1000.0 * np.resize([1, -1, 1], W_big[last].shape[1])
    X = np.array([[0.5, -0.2], [0.1, 0.3]])
    y = np.array([0, 1]) if name == "cross_entropy" else np.array([0.0, 1.0])
    for sign in (1.0, -1.0):
        W_big[last.replace(".W", ".b")] *= sign
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            loss, grads = model.backward(X, y, W_big)
        assert np.isfinite(loss) and loss > 100, loss   # confidently wrong on one row
        assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_stable_note_explains_the_form():
    bce = sg.compile(_net("bce"), loss="bce").plan.output
    assert "max(u,0)" in bce.stable_note and "overflow" in bce.stable_note
    ce = sg.compile(_net("cross_entropy"), loss="cross_entropy").plan.output
    assert "lse" in ce.stable_note


def test_huber_parameter_and_reduction():
    huber = LOSSES["huber"](delta=0.5)
    assert huber.params == {"delta": 0.5}
    model = sg.compile(_net("huber"), loss=huber)
    X = np.zeros((2, 2))
    y = np.array([10.0, -10.0])
    p = model.forward(X)[:, 0]
    expected = np.mean(0.5 * (np.abs(p - y) - 0.25))   # linear branch for |r| > delta
    assert model.loss(X, y) == pytest.approx(expected)


def test_cross_entropy_sums_classes_and_means_rows():
    model = sg.compile(_net("cross_entropy"), loss="cross_entropy")
    X = np.random.default_rng(1).normal(size=(4, 2))
    labels = np.array([0, 2, 1, 2])
    p = model.forward(X)
    expected = -np.mean(np.log(p[np.arange(4), labels]))
    assert model.loss(X, labels) == pytest.approx(expected)
    assert model.loss(X, np.eye(3)[labels]) == pytest.approx(expected)


def test_custom_logcosh_end_to_end():
    yhat, y = sg.var("yhat"), sg.var("y")
    LogCosh = sg.loss("logcosh_test", sg.log(sg.cosh(yhat - y)))
    model = sg.compile(sg.Sequential(sg.Dense(3, 4), sg.Tanh(), sg.Dense(4, 1)), loss=LogCosh)
    assert model.plan.output.delta == sp.tanh(P - Y)
    report = sg.check(model)
    assert any("logcosh_test" in name for name in report.names("identity"))
    # cosh overflows past 710; the stable rewrite keeps the loss and gradient finite.
    params = {k: v.copy() for k, v in model.params.items()}
    params["dense1.b"][:] = 1000.0
    loss, grads = model.backward(np.zeros((2, 3)), np.array([0.0, -5.0]), params)
    assert np.isfinite(loss) and loss > 900
    assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_loss_definition_errors():
    a, b, c = sg.var("a"), sg.var("b"), sg.var("y")
    with pytest.raises(NotElementwiseError, match="a, b, y"):
        sg.loss("three", a * b - c)
    with pytest.raises(NotElementwiseError):
        sg.loss("no_target", (a - b) ** 2)
    with pytest.raises(DefinitionError, match="unknown loss 'nope'"):
        sg.compile(_net("mse"), loss="nope")
    with pytest.raises(sg.definition.errors.UnsupportedFunctionError, match="zeta"):
        sg.loss("z", sp.zeta(a - c))
    p, y = sg.var("p"), sg.var("y")
    with pytest.raises(DefinitionError, match="piecewise constant.*never move"):
        sg.loss("zero_one", sp.Heaviside(-p * y))   # dl/dp = 0 wherever it exists


def test_a_step_in_a_loss_gives_its_derivative_almost_everywhere(tmp_path, monkeypatch):
    """An asymmetric square (twice the weight above the target): SymPy's dl/dp carries
    DiracDelta(p - y), zero off p = y; the loss compiles and passes sg.check."""
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    p, y = sg.var("p"), sg.var("y")
    sg.loss("test_asym_square", (p - y)**2 * (1 + sp.Heaviside(p - y)), replace=True)
    try:
        model = sg.compile(_net("mse"), loss="test_asym_square")
        rng = np.random.default_rng(2)
        X = rng.normal(size=(30, 2))
        model.fit(X, X[:, 0] - X[:, 1], epochs=2, verbose=0)
        assert sg.check(model).ok
    finally:
        sg.definition.losses.LOSSES.pop("test_asym_square", None)


def test_softmax_needs_cross_entropy_and_vice_versa():
    with pytest.raises(PairingError, match="cross-entropy"):
        sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Softmax()), loss="mse")
    with pytest.raises(PairingError, match="Softmax output"):
        sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Sigmoid()), loss="cross_entropy")
    with pytest.raises(PairingError, match="only valid as the output"):
        sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Softmax(), sg.Dense(3, 3), sg.Softmax()),
                   loss="cross_entropy")


def test_loss_undefined_on_activation_range_is_refused():
    with pytest.raises(PairingError, match="'bce' is not defined on the outputs of 'relu'"):
        sg.compile(sg.Sequential(sg.Dense(2, 1), sg.ReLU()), loss="bce")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_builtin_passes_the_checks_a_user_definition_gets(name):
    # Built-ins skip `check_loss` at import; here every one of them gets it.
    from symgrad.definition.losses import check_loss
    check_loss(LOSSES[name])
