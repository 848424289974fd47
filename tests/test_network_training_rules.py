"""Seed 002 in the network printout: the model's own optimizer step, batch / stochastic /
minibatch gradient descent with the model's loss, the Jacobian view with the layer sizes
and the fan-out sum (render/network_training.py)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.render.network import network_derivation
from symgrad.render.network_training import (
    HYPER,
    G,
    M,
    T,
    V,
    W,
    jacobian_chain,
    update_rule,
)

OPTIMIZERS = [
    sg.SGD(lr=0.1),
    sg.SGD(lr=0.05, weight_decay=0.01),
    sg.SGD(lr=0.05, momentum=0.9),
    sg.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.001),
    sg.Adam(lr=0.01),
    sg.Adam(lr=0.01, weight_decay=0.1),
    sg.AdamW(lr=0.02, weight_decay=0.05),
]


def _run_rule(opt, w0: np.ndarray, grads: list[np.ndarray]) -> np.ndarray:
    """Apply the printed SymPy rule step by step, as a reader would by hand."""
    rule = update_rule(opt)
    values = {HYPER[k]: v for k, v in rule.settings.items()}
    w = w0.copy()
    state = {M: np.zeros_like(w), V: np.zeros_like(w)}
    for t, g in enumerate(grads, start=1):
        for e in range(w.size):
            env = {W: w[e], G: g[e], M: state[M][e], V: state[V][e], T: t, **values}
            for lhs, rhs, _ in rule.steps:
                env[lhs] = float(rhs.subs(env))
            w[e] = env[W]
            state[M][e], state[V][e] = env[M], env[V]
    return w


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_printed_rule_is_the_optimizers_step(opt):
    # The oracle is the optimizer's own NumPy step (what the kernels are tested against).
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=3)
    grads = [rng.normal(size=3) for _ in range(3)]
    params = {"w": w0.copy()}
    state = opt.init_state(params)
    for g in grads:
        opt.step_numpy(params, {"w": g}, state)
    np.testing.assert_allclose(_run_rule(opt, w0, grads), params["w"], rtol=1e-12)


def _model(opt, loss="bce", k=1):
    net = sg.Sequential(sg.Dense(2, 8), sg.ReLU(), sg.Dense(8, k),
                        sg.Sigmoid() if loss == "bce" else sg.Identity())
    return sg.compile(net, loss=loss, optimizer=opt)


def test_sgd_line_carries_the_models_learning_rate():
    text = _model(sg.SGD(lr=0.05)).derivation.text()
    assert "The update rule of this model's optimizer: SGD" in text
    assert "w <- w - g*lr" in text and "lr = 0.05" in text
    assert "w <- w - 0.05 * dl_i(w)/dw" in text   # the SGD step with the model's eta


def test_momentum_and_nesterov_lines():
    text = _model(sg.SGD(lr=0.05, momentum=0.9)).derivation.text()
    assert "v <- g + momentum*v" in text and "w <- w - lr*v" in text
    assert "lr = 0.05, momentum = 0.9" in text
    nesterov = _model(sg.SGD(lr=0.05, momentum=0.7, nesterov=True)).derivation
    assert "Nesterov" in nesterov.text() and "w <- w - lr*(g + momentum*v)" in nesterov.text()
    assert r"w &\leftarrow w - \eta \left(g + \mu v\right)" in nesterov.latex()


def test_adam_lines_with_bias_correction_and_eps():
    doc = _model(sg.Adam(lr=0.003, beta1=0.8, beta2=0.99, eps=1e-7)).derivation
    text, latex = doc.text(), doc.latex()
    for line in ("m <- beta1*m + g*(1 - beta1)", "v <- beta2*v + g**2*(1 - beta2)",
                 "m_hat = m/(1 - beta1**t)", "v_hat = v/(1 - beta2**t)",
                 "w <- w - lr*m_hat/(eps + sqrt(v_hat))",
                 "lr = 0.003, beta1 = 0.8, beta2 = 0.99, eps = 1e-07"):
        assert line in text, line
    assert r"\hat{m} &= \frac{m}{1 - \beta_1^{t}}" in latex
    assert r"\epsilon = 10^{-7}" in latex


def test_weight_decay_lines():
    l2 = _model(sg.SGD(lr=0.1, weight_decay=0.01)).derivation.text()
    assert "g = g + w*weight_decay" in l2 and "weight_decay = 0.01" in l2
    decoupled = _model(sg.AdamW(weight_decay=0.05)).derivation.text()
    assert "AdamW" in decoupled and "w <- w - lr*w*weight_decay" in decoupled
    assert "g = g + w*weight_decay" not in decoupled


def test_no_optimizer_no_update_section():
    plan = _model(None).plan
    doc = network_derivation(plan)
    assert not any("update rule" in s.title for s in doc.sections)
    assert "w <- w - lr * dl_i(w)/dw" in doc.text()   # symbolic step size


def test_batch_sgd_minibatch_use_the_models_loss():
    bce = network_derivation(_model(sg.SGD(lr=0.1)).plan, optimizer=sg.SGD(lr=0.1),
                             batch_size=32).text()
    assert "l_i(w) = -y_i*log(p_i) - (1 - y_i)*log(1 - p_i)" in bce
    assert "L(S, w) = 1/N * sum_i l_i(w),   w <- w - 0.1 * dL(S, w)/dw" in bce
    assert "w <- w - 0.1 * dl_i(w)/dw" in bce
    assert "w <- w - 0.1 * 1/32 * sum_(i in B) dl_i(w)/dw" in bce
    mse = _model(sg.SGD(), loss="mse").derivation.text()
    assert "l_i(w) = (p_i - y_i)**2" in mse
    assert "1/|B| * sum_(i in B)" in mse   # batch size unknown: symbolic
    many = _model(sg.SGD(), loss="mse", k=3).derivation.text()
    assert "l_i(w) = 1/3 * sum_c l(p_ic, y_ic)" in many


@pytest.fixture(scope="module")
def three_layers():
    net = sg.Sequential(sg.Dense(4, 16), sg.Tanh(), sg.Dense(16, 8), sg.ReLU(),
                        sg.Dense(8, 3), sg.Softmax())
    return sg.compile(net, loss="cross_entropy", optimizer=sg.Adam())


def test_jacobian_shapes_follow_the_layer_sizes(three_layers):
    chain = jacobian_chain(three_layers.plan)
    assert [(s.target, s.source) for s in chain] == [("A2", "Z3"), ("Z2", "A2"),
                                                     ("A1", "Z2"), ("Z1", "A1")]
    shapes = [s.shapes for s in chain]
    assert shapes == [((1, 8), (1, 3), (3, 8)), ((1, 8), (1, 8), (8, 8)),
                      ((1, 16), (1, 8), (8, 16)), ((1, 16), (1, 16), (16, 16))]
    for (res, row, jac) in shapes:   # [1 x d_f] = [1 x d_g] . [d_g x d_f]
        assert row[1] == jac[0] and res[1] == jac[1]
    text = three_layers.derivation.text()
    assert "dl/da2 = dl/dz3 . dz3/da2    [1 x 8] = [1 x 3] . [3 x 8]" in text
    assert "dl/da1 = dl/dz2 . dz2/da1    [1 x 16] = [1 x 8] . [8 x 16]" in text


def test_jacobian_of_a_dense_layer_is_its_weights_transposed(three_layers):
    # The stated Jacobian shape is what SymPy's jacobian gives for layer 3's formula.
    layer = three_layers.plan.layers[2]
    a = sp.Matrix(1, layer.in_dim, sp.symbols(f"a0:{layer.in_dim}"))
    Wm = sp.Matrix(layer.in_dim, layer.out_dim, lambda r, c: sp.Symbol(f"w{r}_{c}"))
    jac = (a * Wm).jacobian(a)
    assert jac.shape == jacobian_chain(three_layers.plan)[0].shapes[2]
    assert jac == Wm.T


def test_fan_out_sum(three_layers):
    text = three_layers.derivation.text()
    assert "dl/da2[r] = sum_c dl/dz3[c] * W3[r, c],   c = 1..3, r = 1..8" in text
    assert "dl/da1[r] = sum_c dl/dz2[c] * W2[r, c],   c = 1..8, r = 1..16" in text
    single = _model(sg.SGD()).derivation
    assert "dl/da1[r] = dl/dz2[1] * W2[r, 1],   r = 1..8" in single.text()
    assert r"\sum_{c=1}^{1}" not in single.latex()

