"""Every optimizer: a few compiled training steps give the same weights as the NumPy path
(reference gradients from ``model.backward`` + the optimizer's ``step_numpy``)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy_steps import reference_epochs

from symgrad.definition import activations as acts
from symgrad.definition.layers import Dense, Sequential
from symgrad.model import compile as sg_compile
from symgrad.runtime.optimizers import REGISTRY, SGD, Adam, AdamW, get_optimizer

CONFIGS = {
    "sgd": lambda: SGD(lr=0.3),
    "sgd-momentum-l2": lambda: SGD(lr=0.1, momentum=0.9, weight_decay=0.01),
    "sgd-nesterov": lambda: SGD(lr=0.1, momentum=0.8, nesterov=True),
    "adam-l2": lambda: Adam(lr=0.01, weight_decay=0.001),
    "adamw": lambda: AdamW(lr=0.01, weight_decay=0.05),
}
N, BATCH = 26, 8   # 26 rows: the last batch is a 2-row remainder


def _data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y, rng.permutation(N)


# Every optimizer in float64; float32 for one plain and one stateful optimizer.
CASES = [(name, "float64") for name in sorted(CONFIGS)] + [("sgd", "float32"),
                                                          ("adamw", "float32")]


@pytest.mark.parametrize(("name", "dtype"), CASES)
def test_compiled_steps_equal_numpy_steps(name: str, dtype: str) -> None:
    net = Sequential(Dense(3, 5), acts.Tanh(), Dense(5, 3), acts.Softmax())
    model = sg_compile(net, loss="cross_entropy", optimizer=CONFIGS[name](), dtype=dtype, seed=3)
    X, y, order = _data()
    start = {k: v.copy() for k, v in model.params.items()}
    want = reference_epochs(net, "cross_entropy", CONFIGS[name](), model.params, X, y, order,
                            BATCH, epochs=2)
    model.fit(X, y, epochs=2, batch_size=BATCH, order=order)
    for key, value in want.items():
        assert not np.allclose(model.params[key], start[key])     # training moved it
        if dtype == "float64":
            np.testing.assert_allclose(model.params[key], value, rtol=1e-12, atol=1e-12,
                                       err_msg=key)
        else:
            np.testing.assert_allclose(model.params[key], value, rtol=1e-5,
                                       atol=1e-5 * np.abs(value).max(), err_msg=key)


def test_optimizer_registry_and_validation() -> None:
    # Every registered optimizer is exercised by the step-equality test above.
    assert set(REGISTRY.values()) <= {type(make()) for make in CONFIGS.values()}
    assert isinstance(get_optimizer("adamw"), AdamW)
    with pytest.raises(ValueError, match="unknown optimizer"):
        get_optimizer("rmsprop")
    with pytest.raises(ValueError, match=r"the class Adam, not an instance; pass Adam\(\)"):
        get_optimizer(Adam)


@pytest.mark.parametrize("bad, match", [
    (dict(optimizer="adma"), "unknown optimizer 'adma'"),
    (dict(optimizer=3), "unknown optimizer 3"),
    (dict(optimizer=Adam), "class Adam"),
    (dict(seed=-1), "seed must be 0 or more"),
])
def test_compile_refuses_a_bad_optimizer_or_seed_before_any_symbolic_work(bad, match,
                                                                          monkeypatch):
    import symgrad as sg
    from symgrad import model

    def never(*args, **kwargs):
        raise AssertionError("derived before the arguments were checked")
    monkeypatch.setattr(model, "derive_network", never)
    with pytest.raises(ValueError, match=match):
        sg.compile(sg.Sequential(sg.Dense(2, 1)), **bad)
    with pytest.raises(ValueError, match="lr"):
        SGD(lr=-1.0)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta1"):
        Adam(beta1=1.0)
    with pytest.raises(TypeError, match="lr"):
        Adam(lr="fast")


def test_optimizer_by_name_keeps_its_state_across_fits() -> None:
    net = Sequential(Dense(3, 5), acts.Tanh(), Dense(5, 3), acts.Softmax())
    model = sg_compile(net, loss="cross_entropy", optimizer="adam")
    X, y, order = _data()
    model.fit(X, y, epochs=1, batch_size=BATCH, order=order)
    assert isinstance(model.optimizer, Adam)
    from symgrad.runtime.training import trainer_for

    trainer = trainer_for(model)
    model.fit(X, y, epochs=1, batch_size=BATCH, order=order)
    assert trainer_for(model) is trainer and trainer.state["t"][0] == 2 * -(-N // BATCH)


def test_changing_lr_needs_no_recompile() -> None:
    # Hyperparameters travel as a runtime array: same source for any lr.
    net = Sequential(Dense(3, 5), acts.Tanh(), Dense(5, 3), acts.Softmax())
    a = sg_compile(net, loss="cross_entropy", optimizer=SGD(lr=0.1))
    b = sg_compile(net, loss="cross_entropy", optimizer=SGD(lr=0.5))
    assert a.source == b.source
    assert a.source != sg_compile(net, loss="cross_entropy", optimizer=Adam()).source


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.2, weight_decay=0.01),
                                  lambda: SGD(lr=0.05, momentum=0.9)], ids=["fused", "momentum"])
def test_wide_layers_use_blas_and_match_numpy_steps(make) -> None:
    # Wide enough that every product goes through GEMM: the fused path writes the
    # SGD step straight into W (alpha = -lr, beta = 1 - lr*wd) inside the GEMM.
    net = Sequential(Dense(40, 48), acts.ReLU(), Dense(48, 36), acts.Tanh(), Dense(36, 3),
                     acts.Softmax())
    model = sg_compile(net, loss="cross_entropy", optimizer=make(), seed=5)
    rng = np.random.default_rng(9)
    n, batch = 70, 32                      # a 6-row remainder batch
    X = rng.normal(size=(n, 40))
    y = rng.integers(0, 3, n)
    order = rng.permutation(n)
    params = {k: v.copy() for k, v in model.params.items()}
    opt, ref = make(), sg_compile(net, loss="cross_entropy")
    state = opt.init_state(params)
    for _ in range(2):
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            opt.step_numpy(params, ref.backward(X[rows], y[rows], params)[1], state)
    model.fit(X, y, epochs=2, batch_size=batch, order=order)
    for key, value in params.items():
        np.testing.assert_allclose(model.params[key], value, rtol=1e-12, atol=1e-12, err_msg=key)


def test_repr_shows_every_setting() -> None:
    assert repr(SGD(lr=0.1, momentum=0.9, nesterov=True)) == \
        "SGD(lr=0.1, momentum=0.9, nesterov=True)"
