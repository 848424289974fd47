"""The NumPy reference evaluator: forward values, losses, gradients, input validation."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.definition.errors import InputShapeError
from symgrad.prove.check import check_gradients
from symgrad.runtime.targets import one_hot, prepare_targets

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 2))


def test_forward_matches_plain_numpy():
    model = sg.compile(sg.Sequential(sg.Dense(2, 4), sg.Tanh(), sg.Dense(4, 1), sg.Sigmoid()),
                       loss="bce", seed=3)
    W0, b0, W1, b1 = model.params.values()
    expected = 1 / (1 + np.exp(-(np.tanh(X @ W0 + b0) @ W1 + b1)))
    np.testing.assert_allclose(model.forward(X), expected, rtol=1e-12)


def test_bce_loss_matches_naive_formula_in_safe_range():
    model = sg.compile(sg.Sequential(sg.Dense(2, 1), sg.Sigmoid()), loss="bce")
    y = np.array([0, 1, 1, 0, 1, 0], dtype=float)
    p = model.forward(X)[:, 0]
    naive = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert model.loss(X, y) == pytest.approx(naive, rel=1e-12)


def test_softmax_rows_sum_to_one_even_for_huge_logits():
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Softmax()), loss="cross_entropy")
    params = dict(model.params)
    params["dense0.W"] = params["dense0.W"] * 1e4
    p = model.forward(X, params)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_seed_001_gradients_match_finite_differences():
    model = sg.compile(sg.Sequential(sg.Dense(2, 4), sg.ReLU(), sg.Dense(4, 1), sg.Sigmoid()),
                       loss="bce")
    entries = check_gradients(model, seed=1)
    assert max(e.max_error for e in entries) < 1e-6


def test_relu_gradient_at_exact_kink_follows_convention():
    # dense0 output exactly 0 for every row: ReLU'(0) = 0 so nothing reaches dense0.
    model = sg.compile(sg.Sequential(sg.Dense(1, 1), sg.ReLU(), sg.Dense(1, 1)), loss="mse")
    params = {"dense0.W": np.array([[0.0]]), "dense0.b": np.array([0.0]),
              "dense1.W": np.array([[1.0]]), "dense1.b": np.array([0.5])}
    _, grads = model.backward(np.array([[1.0], [2.0]]), np.array([0.0, 0.0]), params)
    assert grads["dense0.W"][0, 0] == 0.0 and grads["dense0.b"][0] == 0.0
    assert grads["dense1.b"][0] != 0.0


def test_mae_gradient_at_zero_residual_is_zero():
    model = sg.compile(sg.Sequential(sg.Dense(1, 1)), loss="mae")
    params = {"dense0.W": np.array([[1.0]]), "dense0.b": np.array([0.0])}
    _, grads = model.backward(np.array([[2.0]]), np.array([2.0]), params)
    assert grads["dense0.W"][0, 0] == 0.0   # sign(0) = 0


def test_backward_twice_gives_the_same_gradients():
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.ELU(), sg.Dense(3, 2)), loss="huber")
    y = RNG.normal(size=(6, 2))
    l1, g1 = model.backward(X, y)
    l2, g2 = model.backward(X, y)
    assert l1 == l2 and all(np.array_equal(g1[k], g2[k]) for k in g1)
    assert list(g1) == list(model.params)


def test_float32_model_computes_in_float32():
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.GELU(), sg.Dense(3, 1)), loss="mse",
                       dtype="float32")
    _, grads = model.backward(X, np.zeros(6))
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.forward(X).dtype == np.float32


def test_seeded_initialisation():
    net = sg.Sequential(sg.Dense(4, 3, init="xavier"), sg.Tanh(), sg.Dense(3, 2, bias=False))
    a, b, c = (sg.compile(net, loss="mse", seed=s).params for s in (0, 0, 1))
    assert list(a) == ["dense0.W", "dense0.b", "dense1.W"]
    assert np.array_equal(a["dense0.W"], b["dense0.W"])
    assert not np.array_equal(a["dense0.W"], c["dense0.W"])
    assert np.all(a["dense0.b"] == 0)
    u = sg.compile(net, loss="mse", init="uniform").params["dense0.W"]
    assert np.all(np.abs(u) <= 1 / np.sqrt(4))


@pytest.mark.parametrize("Xbad, match", [
    (np.zeros((3, 5)), r"shape \(n, 2\)"),
    (np.array([[np.nan, 0.0]]), "non-finite"),
    (np.array([["a", "b"]]), "numeric"),
])
def test_bad_inputs(Xbad, match):
    model = sg.compile(sg.Sequential(sg.Dense(2, 1)), loss="mse")
    with pytest.raises(InputShapeError, match=match):
        model.forward(Xbad)


def test_bad_targets():
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Softmax()), loss="cross_entropy")
    with pytest.raises(InputShapeError, match=r"\[0, 3\): got 3 at row 1"):
        model.backward(X[:2], np.array([0, 3]))
    with pytest.raises(InputShapeError, match="6 rows but the targets have 2"):
        model.backward(X, np.array([0, 1]))
    with pytest.raises(InputShapeError, match="one-hot"):
        model.backward(X[:1], np.array([[0.5, 0.0, 0.0]]))
    reg = sg.compile(sg.Sequential(sg.Dense(2, 2)), loss="mse")
    with pytest.raises(InputShapeError, match=r"shape \(n, 2\)"):
        reg.backward(X, np.zeros(6))


def test_target_helpers():
    np.testing.assert_array_equal(one_hot(np.array([1, 0]), 2), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(prepare_targets(np.array([1.0, 2.0]), 1, "elements"),
                                  [[1.0], [2.0]])


@pytest.mark.parametrize("dtype, z", [("float64", 1e300), ("float32", 1e20)])
@pytest.mark.parametrize("name, formula", [
    ("root_minus_one", "sqrt(1 + x**2) - 1"), ("log_square", "log(1 + x**2)"),
    ("cube_root", "(x**2 + 1)**(1/3)"), ("isru_half", "x/sqrt(1 + x**2/2)")])
def test_reference_evaluates_a_root_of_a_square_like_the_kernels(name, formula, dtype, z,
                                                                 scratch_registries) -> None:
    """The kernels print sqrt(u^2 + c), (u^2 + c)^r and log(u^2 + c) through hypot; the
    reference did not, and was inf (or 0) where the kernels are finite and right: no
    oracle there. f(z) as the output of Dense(1, 1) -> f -> Dense(1, 1) with unit weights,
    f'(z) as the ratio of the two biases' gradients."""
    act = sg.activation(f"ref_hypot_{name}", formula, replace=True)
    model = sg.compile(sg.Sequential(sg.Dense(1, 1), act(), sg.Dense(1, 1)), loss="mae",
                       dtype=dtype)
    dt = np.dtype(dtype)
    model.params = {"dense0.W": np.zeros((1, 1), dt), "dense0.b": np.array([z], dt),
                    "dense1.W": np.ones((1, 1), dt), "dense1.b": np.zeros(1, dt)}
    one = np.ones((1, 1), dt)
    f_kernel, f_ref = model.predict_proba(one)[0, 0], model.forward(one)[0, 0]
    assert np.isfinite(f_kernel) and f_kernel != 0, f_kernel
    rtol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(f_ref, f_kernel, rtol=rtol)
    target = np.array([[float(f_kernel) * 0.5]], dt)
    grads = [g for _, g in (model.compiled_backward(one, target), model.backward(one, target))]
    slopes = [g["dense0.b"][0] / g["dense1.b"][0] for g in grads]
    np.testing.assert_allclose(slopes[1], slopes[0], rtol=rtol, atol=0)
