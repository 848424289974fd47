"""sg.check's finite-difference tolerance follows the magnitudes involved.

A central difference with step h has its own error, eps |L| / h from the rounding
of the loss and h^2 |L'''| from truncation. Right gradients of a loss near 1e53, or
of the expanded (x^2 + 1)^40 activation, were called wrong ("relative error 1")
because that error was ignored; a wrong gradient must still fail.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.activations import REGISTRY
from symgrad.prove.check import check_gradients, check_kernel
from symgrad.prove.identity import ProofError

x = sp.Symbol("x", real=True)


@pytest.fixture(scope="module")
def poly40():
    name = "test_check_tolerance_poly40"
    cls = sg.activation(name, sp.expand((x**2 + 1) ** 40))
    yield cls
    REGISTRY.pop(name, None)


def _huge_loss_model():
    # One output column far from its target (loss ~1e53), the other an ordinary one:
    # the slopes of the ordinary column's parameters drown in the rounding of L.
    model = sg.compile(sg.Sequential(sg.Dense(3, 2)), loss="mse")
    model.params["dense0.b"][:] = [4e26, 0.0]
    return model


def _poly_model(poly40):
    return sg.compile(sg.Sequential(sg.Dense(3, 4), poly40(), sg.Dense(4, 2)), loss="mse")


class _Scaled:
    """A reference whose gradients are off by a factor: a wrong gradient formula."""

    def __init__(self, ref, factor):
        self.ref, self.factor = ref, factor

    def loss(self, params, X, Y):
        return self.ref.loss(params, X, Y)

    def backward(self, params, X, Y):
        loss, grads = self.ref.backward(params, X, Y)
        return loss, {k: v * self.factor for k, v in grads.items()}


def _wrong(model, factor=1.001):
    return SimpleNamespace(plan=model.plan, params=model.params,
                           reference=_Scaled(model.reference, factor))


def test_right_gradients_of_a_loss_near_1e53_pass():
    model = _huge_loss_model()
    X = np.random.default_rng(0).normal(size=(5, 3))
    assert 1e52 < model.loss(X, np.zeros((5, 2))) < 1e54
    entries = check_gradients(model)
    assert max(e.max_error for e in entries) <= 1e-5


def test_right_gradients_of_the_expanded_degree_80_polynomial_pass(poly40):
    entries = check_gradients(_poly_model(poly40))
    assert max(e.max_error for e in entries) <= 1e-5


@pytest.mark.parametrize("which", ["huge", "poly", "plain"])
def test_a_gradient_off_by_a_tenth_of_a_percent_still_fails(which, poly40):
    if which == "huge":
        model = _huge_loss_model()
    elif which == "poly":
        model = _poly_model(poly40)
    else:
        model = sg.compile(sg.Sequential(sg.Dense(3, 4), sg.Tanh(), sg.Dense(4, 2)), "mse")
    check_gradients(model)   # the model itself is right
    with pytest.raises(ProofError, match="disagrees with central finite differences"):
        check_gradients(_wrong(model))


def test_an_activation_outside_its_domain_is_named_not_called_a_wrong_gradient() -> None:
    """log(z) of a standard normal z is NaN: sg.check says where, as fit does."""
    log_act = sg.activation("check_log_domain", "log(x)")
    model = sg.compile(sg.Sequential(sg.Dense(3, 4), log_act(), sg.Dense(4, 1)), loss="mse")
    with pytest.raises(ProofError, match=r"activation check_log_domain of dense0 gives nan "
                                         r"at z = -[0-9.e-]+, outside its domain"):
        check_gradients(model)


def test_a_float32_reference_that_overflows_is_named_not_compared() -> None:
    """A float32 network whose loss overflows on the check's batch (found by the CNN fuzzer:
    e^(3z) layers): the kernel check says what overflows, instead of "relative error nan >
    inf", and the float64 model of the same weights still checks."""
    exp3 = sg.activation("check_exp3", "exp(3*x)", replace=True)
    net = sg.Sequential(sg.Dense(3, 4), exp3(), sg.Dense(4, 1))
    model = sg.compile(net, loss="mse", dtype="float32")
    model.params["dense0.b"][:] = 0.0
    model.params["dense1.b"][:] = 0.0
    model.params["dense0.W"][:] = 10.0     # e^(3z) past float32's 3.4e38 at z = 30
    model.params["dense1.W"][:] = 1.0
    with pytest.raises(ProofError, match=r"the float32 reference's 'loss'.* is not finite "
                                         r"there: .*overflows"):
        check_kernel(model)
    wide = sg.compile(net, loss="mse", dtype="float64")
    wide.set_params({k: v.astype(np.float64) for k, v in model.params.items()})
    assert all(e.max_error <= 1e-12 for e in check_kernel(wide))


@pytest.fixture(scope="module")
def oscillating_cnn(fuzz):
    """fuzz_formulas --cnn seed 152, rebuilt by the fuzzer's own code: sin(e^(3z + 1)) after
    a convolution, trained two epochs. Its loss oscillates faster than the step 1e-6 in one
    conv weight: the central difference read 89353 for a slope of -146345, and
    Richardson's truncation estimate (33828) missed that, so sg.check failed a right
    model."""
    rng = np.random.default_rng(152)
    formula = fuzz.random_formula(rng, int(rng.integers(1, 4)))
    assert formula == sp.sin(sp.exp(3 * fuzz.x + 1))   # else the generator changed: rebuild
    act = sg.activation("check_fuzz152", formula, replace=True)
    rng = np.random.default_rng(10_152)
    net, loss, shape = fuzz.random_cnn(rng, act)
    images = rng.normal(size=(48, *shape))
    rng.integers(0, 3, 48), rng.integers(0, 2, 48)   # the fuzzer's other heads' targets
    y = rng.normal(size=(48, 2))
    model = sg.compile(net, loss=loss, optimizer=sg.Adam(lr=0.01), dtype="float64")
    model.fit(images, y, epochs=2, batch_size=16, seed=0)
    yield model
    REGISTRY.pop("check_fuzz152", None)


def test_a_loss_that_oscillates_faster_than_the_step_is_checked_with_shorter_steps(
        oscillating_cnn):
    assert max(e.max_error for e in check_gradients(oscillating_cnn)) <= 1e-5
    with pytest.raises(ProofError, match="disagrees with central finite differences"):
        check_gradients(_wrong(oscillating_cnn))
