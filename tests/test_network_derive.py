"""derive_network: structure of the plan, caching, seed-001 network, bad input."""

from __future__ import annotations

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.errors import DefinitionError, LayerSizeError
from symgrad.definition.formulas import A, P, Y, Z
from symgrad.simplify.network import derive_network


def seed001():
    return sg.Sequential(sg.Dense(2, 4), sg.ReLU(), sg.Dense(4, 1), sg.Sigmoid())


def test_seed_001_network_plan():
    plan = derive_network(seed001(), "bce")
    hidden = plan.layers[0].activation
    assert hidden.saved == ("a",)
    assert hidden.derivative.subs(A, 2) == 1 and hidden.derivative.subs(A, 0) == 0
    out = plan.output
    assert (out.step_b, out.delta) == (P * (1 - P), P - Y)
    assert sp.simplify(out.step_a - (P - Y) / (P * (1 - P))) == 0
    assert out.delta_uses == ("p", "y")
    assert plan.param_names == ("dense0.W", "dense0.b", "dense1.W", "dense1.b")
    assert list(plan.gradients) == list(plan.param_names)
    assert (plan.input_dim, plan.output_dim) == (2, 1)


def test_seed_001_network_printed_and_checked():
    model = sg.compile(seed001(), loss="bce")
    text = model.derivation.text()
    assert "p - y" in text
    assert "Step A" in text and "Step B" in text and "Step C" in text
    report = sg.check(model)
    assert any("Step C" in name for name in report.names("identity"))



def test_check_names_a_misplaced_argument():
    """check(model) draws its own batches: data passed as the seed is a clear TypeError."""
    import numpy as np

    model = sg.compile(seed001(), loss="bce")
    with pytest.raises(TypeError, match="seed must be an int, got ndarray"):
        sg.check(model, np.zeros((4, 2)))
    with pytest.raises(TypeError, match="got bool"):
        sg.check(model, True)

def test_gradients_are_matrix_rules_with_consistent_shapes():
    plan = derive_network(sg.Sequential(sg.Dense(3, 5), sg.Tanh(), sg.Dense(5, 2)), "mse")
    n = sp.Symbol("n", integer=True, positive=True)
    assert plan.gradients["dense0.W"].shape == (3, 5)
    assert plan.gradients["dense1.W"].shape == (5, 2)
    assert plan.gradients["dense1.b"].shape == (1, 2)
    assert str(plan.gradients["dense1.W"]) == "A1.T*dZ2"
    lhs = [str(eq[0]) for eq in plan.backward]
    assert lhs == ["dZ2", "dW2", "db2", "dA1", "dZ1", "dW1", "db1"]
    assert plan.backward[0][1].shape == (n, 2)


def test_identical_layers_derive_once():
    layers = [sg.Dense(3, 3)]
    for _ in range(10):
        layers += [sg.Tanh(), sg.Dense(3, 3)]
    plan = derive_network(sg.Sequential(*layers), "mse")
    acts = {id(layer.activation) for layer in plan.layers[:-1]}
    assert len(acts) == 1
    assert len([i for i in plan.identities if i.name.startswith("tanh:")]) == 1


def test_parameterised_activations_are_distinct_plans():
    plan = derive_network(sg.Sequential(sg.Dense(2, 2), sg.LeakyReLU(0.1), sg.Dense(2, 2),
                                        sg.LeakyReLU(0.2), sg.Dense(2, 1)), "mse")
    d0, d1 = (layer.activation.derivative for layer in plan.layers[:2])
    assert d0.subs(A, -1) == sp.Rational(1, 10) and d1.subs(A, -1) == sp.Rational(1, 5)


def test_last_dense_without_activation_is_identity_output():
    plan = derive_network(sg.Sequential(sg.Dense(2, 3), sg.Dense(3, 1)), "mse")
    assert plan.output.activation_name == "identity"
    assert plan.layers[0].activation.name == "identity"
    assert plan.output.prediction == Z


def test_mismatched_sizes_name_both_layers_and_shapes():
    with pytest.raises(LayerSizeError) as err:
        sg.Sequential(sg.Dense(2, 16), sg.Tanh(), sg.Dense(8, 1))
    msg = str(err.value)
    assert "layer 2 Dense(8 -> 1)" in msg and "layer 0 Dense(2 -> 16)" in msg
    assert "(2, 16)" in msg and "(8, 1)" in msg


@pytest.mark.parametrize("bad, match", [
    (lambda: sg.Sequential(), "at least one Dense"),
    (lambda: sg.Sequential(sg.Tanh(), sg.Dense(2, 1)), "must start with Dense"),
    (lambda: sg.Sequential(sg.Dense(2, 2), sg.Tanh(), sg.ReLU()), "directly follows"),
    (lambda: sg.Sequential(sg.Dense(2, 2), sg.Tanh), "instantiate it"),
    (lambda: sg.Dense(0, 2), "positive int"),
    (lambda: sg.Dense(2, 2, init="zeros"), "init must be one of"),
    (lambda: sg.Sequential(sg.Dense(2, 2), "relu"), "expected Dense"),
])
def test_bad_networks(bad, match):
    with pytest.raises(DefinitionError, match=match):
        bad()


def test_compile_rejects_bad_arguments_before_work():
    with pytest.raises(TypeError, match="Sequential"):
        sg.compile([sg.Dense(2, 1)], loss="mse")
    with pytest.raises(ValueError, match="float32 or float64"):
        sg.compile(seed001(), loss="bce", dtype="int8")


def test_api_example_custom_swish_and_logcosh_end_to_end():
    import numpy as np

    x = sg.var("x")
    Swish2 = sg.activation("swish2_e2e", x * sg.sigmoid(x))
    yhat, y = sg.var("yhat"), sg.var("y")
    LogCosh = sg.loss("logcosh_e2e", sg.log(sg.cosh(yhat - y)))
    model = sg.compile(sg.Sequential(sg.Dense(3, 4), Swish2(), sg.Dense(4, 1)), loss=LogCosh)
    hidden = model.plan.layers[0].activation
    assert hidden.name == "swish2_e2e" and hidden.saved == ("z",)
    assert model.plan.output.activation_name == "identity"
    X = np.random.default_rng(2).normal(size=(5, 3))
    loss, grads = model.backward(X, np.zeros(5))
    assert np.isfinite(loss) and set(grads) == set(model.params)
    report = sg.check(model)
    assert any(name.startswith("swish2_e2e") for name in report.names("identity"))
    assert "swish2" in model.derivation.text()
