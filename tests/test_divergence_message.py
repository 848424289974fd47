"""A diverged fit names what became non-finite first and advises for that cause.

Before, every divergence said "try a smaller learning rate", also when the cause was
an activation's domain or the data. Each case here has one known cause; the message
must name it (layer, activation, loss, parameter) and must not blame another.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg

pytestmark = pytest.mark.usefixtures("scratch_registries")


def _diverge(model, X, y, epochs: int = 3, batch_size: int = 8) -> str:
    start = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(sg.TrainingDivergedError) as err:
        model.fit(X, y, epochs=epochs, batch_size=batch_size, seed=0)
    message = str(err.value)
    assert "restored" in message
    if err.value.epoch == 1:   # nothing trained: the weights are the starting ones
        for name, value in start.items():
            np.testing.assert_array_equal(model.params[name], value)
    return message


def test_activation_outside_its_domain_is_named_not_the_learning_rate() -> None:
    z = sp.Symbol("z")
    root = sg.activation("root_domain_probe", sp.sqrt(z))
    net = sg.Sequential(sg.Dense(3, 4), root(), sg.Dense(4, 1))
    model = sg.compile(net, loss="mse", optimizer=sg.SGD(lr=1e-3), seed=0)
    rng = np.random.default_rng(0)
    message = _diverge(model, rng.normal(size=(32, 3)), rng.normal(size=32))
    assert "activation root_domain_probe of dense0 gave nan" in message
    assert "domain" in message and "from the finite input z = -" in message
    assert "learning rate" not in message


def test_huge_targets_are_named_not_the_learning_rate() -> None:
    net = sg.Sequential(sg.Dense(3, 4), sg.Tanh(), sg.Dense(4, 1))
    model = sg.compile(net, loss="mse", optimizer=sg.Adam(lr=1e-3), seed=0)
    X = np.random.default_rng(1).normal(size=(32, 3))
    message = _diverge(model, X, np.full(32, 1e200))
    assert "the loss mse became inf" in message
    assert "targets are too large" in message and "1e+200" in message
    assert "learning rate" not in message


def test_huge_inputs_are_named_not_the_learning_rate() -> None:
    model = sg.compile(sg.Sequential(sg.Dense(3, 1)), loss="mse", optimizer=sg.SGD(lr=1e-3))
    model.set_params({k: np.ones_like(v) for k, v in model.params.items()})
    message = _diverge(model, np.full((16, 3), 1e308), np.zeros(16))
    assert "pre-activations Z = A W + b of dense0 became inf" in message
    assert "scale X" in message and "1e+308" in message
    assert "learning rate" not in message


def test_too_large_learning_rate_is_named_with_the_parameters() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)) * 10
    y = X @ np.array([1.0, -2.0, 3.0]) * 100
    net = sg.Sequential(sg.Dense(3, 8), sg.Tanh(), sg.Dense(8, 1))
    model = sg.compile(net, loss="mse", optimizer=sg.SGD(lr=1e3))
    message = _diverge(model, X, y, epochs=50)
    assert "try a smaller learning rate (now SGD(lr=1000.0))" in message
    # The first non-finite value is named: grown weights, a gradient or an update.
    assert any(part in message for part in ("largest |W|", "gradient of dense", "update in"))
    assert "domain" not in message and "scale" not in message
