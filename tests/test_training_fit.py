"""fit / predict / evaluate / save / load through the real compile: behaviour and bad input."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

import symgrad as sg
from symgrad.definition import activations as acts
from symgrad.definition.errors import InputShapeError
from symgrad.definition.layers import Dense, Sequential
from symgrad.model import compile as sg_compile


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.3).astype(int)
    return X, y


@pytest.fixture(scope="module")
def net():
    return Sequential(Dense(4, 8), acts.Tanh(), Dense(8, 3), acts.Softmax())


@pytest.fixture()
def model(net):
    # Same plan, dtype and optimizer every time: the kernels come from the cache.
    return sg_compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.5), seed=1)


def test_fit_learns_and_reports_history(model, data, capsys) -> None:
    X, y = data
    before = model.evaluate(X, y)
    hist = model.fit(X, y, epochs=8, batch_size=16, seed=0, validation_data=(X, y), verbose=2)
    after = model.evaluate(X, y)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(hist.history["loss"]) == 8 and hist.epochs == list(range(1, 9))
    assert after["loss"] < 0.5 * before["loss"] and after["accuracy"] > 0.9
    # The last validation numbers are exactly evaluate() on the final weights.
    assert hist.history["val_loss"][-1] == pytest.approx(after["loss"], rel=1e-12)
    out = capsys.readouterr().out
    assert out.count("epoch ") == 8 and "epoch 8/8" in out and "val_loss" in out


def test_predict_and_proba_agree_with_reference(model, data) -> None:
    X, y = data
    model.fit(X, y, epochs=2, batch_size=32, seed=1)
    P = model.predict_proba(X)
    np.testing.assert_allclose(P, model.forward(X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), P.argmax(axis=1))
    ev = model.evaluate(X, y)
    assert ev["loss"] == pytest.approx(model.loss(X, y), rel=1e-12)
    assert ev["accuracy"] == pytest.approx(np.mean(model.predict(X) == y))


def test_given_order_and_seed_are_reproducible(net, data) -> None:
    X, y = data
    order = np.random.default_rng(5).permutation(len(X))
    runs = []
    for kwargs in ({"order": order}, {"order": order}, {"seed": 3}, {"seed": 3}, {"seed": 4}):
        m = sg_compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.5), seed=1)
        m.fit(X, y, epochs=2, batch_size=16, **kwargs)
        runs.append(m.params["dense0.W"].copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[2], runs[3])
    assert not np.array_equal(runs[2], runs[4]) and not np.array_equal(runs[0], runs[2])


def test_in_order_batches_equal_identity_order(net, data) -> None:
    X, y = data
    a = sg_compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.5))
    b = sg_compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.5))
    a.fit(X, y, epochs=1, batch_size=24, shuffle=False)         # row slices, no gather
    b.fit(X, y, epochs=1, batch_size=24, order=np.arange(len(X)))  # gathered copies
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])


def test_set_params_and_assignment_are_used(model, data) -> None:
    X, y = data
    start = {k: np.full_like(v, 0.01) for k, v in model.params.items()}
    model.set_params(start)
    assert model.params["dense0.W"] is not start["dense0.W"]  # copied
    first = model.evaluate(X, y)["loss"]
    model.params = {k: v.copy() for k, v in start.items()}
    assert model.evaluate(X, y)["loss"] == pytest.approx(first, rel=1e-14)
    model.fit(X, y, epochs=1, batch_size=50, shuffle=False)
    assert model.evaluate(X, y)["loss"] < first
    with pytest.raises(ValueError, match="dense1.W"):
        model.set_params({**start, "dense1.W": np.zeros((3, 8))})
    with pytest.raises(KeyError, match="dense1.b"):
        model.set_params({k: v for k, v in start.items() if k != "dense1.b"})


@pytest.mark.parametrize(("X", "y", "match"), [
    (np.zeros((10, 4)), np.zeros(9, int), "10 rows.*9"),
    (np.zeros((10, 5)), np.zeros(10, int), r"\(n, 4\).*\(10, 5\)"),
    (np.zeros((10, 4)), np.full(10, 3), r"\[0, 3\).*3"),
    (np.zeros((10, 4)), np.full(10, -1), r"\[0, 3\).*-1"),
    (np.array([["a"] * 4] * 10), np.zeros(10, int), "numeric"),
    (np.zeros((10, 4)), np.array(["x"] * 10), "numeric"),
    (np.full((10, 4), np.nan), np.zeros(10, int), "non-finite"),
    (np.full((10, 4), np.inf), np.zeros(10, int), "non-finite"),
])
def test_bad_training_data_is_refused_before_training(model, X, y, match) -> None:
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(InputShapeError, match=match):
        model.fit(X, y, epochs=1)
    for name, value in before.items():
        np.testing.assert_array_equal(model.params[name], value)


def test_bad_fit_arguments(model, data) -> None:
    X, y = data
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(X, y, batch_size=0)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(X, y, epochs=-1)
    with pytest.raises(ValueError, match="permutation"):
        model.fit(X, y, order=np.zeros(len(X), int))
    with pytest.raises(InputShapeError, match="validation_data"):
        model.fit(X, y, validation_data=(X[:, :2], y))


def test_bce_targets_outside_unit_interval_are_refused() -> None:
    m = sg_compile(Sequential(Dense(2, 3), acts.Tanh(), Dense(3, 1), acts.Sigmoid()), loss="bce")
    with pytest.raises(InputShapeError, match=r"\[0, 1\].*2\.0"):
        m.fit(np.zeros((4, 2)), np.array([0, 1, 2, 1]))


def test_diverging_loss_stops_and_keeps_last_finite_weights() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)) * 10
    y = X @ np.array([1.0, -2.0, 3.0]) * 100
    net = Sequential(Dense(3, 8), acts.Tanh(), Dense(8, 1))
    m = sg_compile(net, loss="mse", optimizer=sg.SGD(lr=1e3))
    start = {k: v.copy() for k, v in m.params.items()}
    with pytest.raises(sg.TrainingDivergedError, match=r"epoch \d+/50.*restored") as err:
        m.fit(X, y, epochs=50, batch_size=8, seed=0)
    done = len(err.value.history.epochs)
    assert err.value.epoch == done + 1
    for v in m.params.values():
        assert np.isfinite(v).all()
    # The kept weights are exactly those after the last finite epoch: replay it.
    twin = sg_compile(net, loss="mse", optimizer=sg.SGD(lr=1e3))
    twin.set_params(start)
    twin.fit(X, y, epochs=done, batch_size=8, seed=0)
    for name, value in twin.params.items():
        np.testing.assert_array_equal(m.params[name], value)


def test_divergence_restores_the_optimizer_state_with_the_weights() -> None:
    """After a diverged epoch the optimizer state (momentum velocities, step count) is the
    one from the end of the last good epoch too, as the weights are: equal to a twin's
    that trained just those epochs."""
    from symgrad.runtime.training import trainer_for

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)) * 10
    y = X @ np.array([1.0, -2.0, 3.0]) * 100
    net = Sequential(Dense(3, 8), acts.Tanh(), Dense(8, 1))
    m = sg_compile(net, loss="mse", optimizer=sg.SGD(lr=10.0, momentum=0.9))
    start = {k: v.copy() for k, v in m.params.items()}
    with pytest.raises(sg.TrainingDivergedError, match="restored") as err:
        m.fit(X, y, epochs=50, batch_size=8, seed=0)
    done = len(err.value.history.epochs)
    assert done >= 1   # a good epoch to go back to, and a state that is not zeros
    twin = sg_compile(net, loss="mse", optimizer=sg.SGD(lr=10.0, momentum=0.9))
    twin.set_params(start)
    twin.fit(X, y, epochs=done, batch_size=8, seed=0)
    state, twin_state = trainer_for(m).state, trainer_for(twin).state
    assert sorted(state) == sorted(twin_state) and int(state["t"][0]) == 8 * done
    assert any(np.abs(v).max() > 0 for k, v in state.items() if k != "t")
    for name, value in twin_state.items():
        np.testing.assert_array_equal(state[name], value, err_msg=name)
    for name, value in twin.params.items():
        np.testing.assert_array_equal(m.params[name], value, err_msg=name)


def test_save_load_round_trip(model, data, tmp_path) -> None:
    X, y = data
    model.fit(X, y, epochs=1, batch_size=32, seed=0)
    path = tmp_path / "w.npz"
    model.save(str(path))
    saved = {k: v.copy() for k, v in model.params.items()}
    model.set_params({k: np.zeros_like(v) for k, v in saved.items()})
    model.load(str(path))
    for name, value in saved.items():
        np.testing.assert_array_equal(model.params[name], value)
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temp file left behind


def test_save_is_atomic(model, tmp_path, monkeypatch) -> None:
    path = tmp_path / "w.npz"
    model.save(str(path))
    original = path.read_bytes()

    def broken_savez(handle, **arrays):
        handle.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(str(path))
    assert path.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["w.npz"]


def test_load_refuses_pickles_mismatches_and_strangers(model, tmp_path) -> None:
    good = {k: v.copy() for k, v in model.params.items()}
    pickled = tmp_path / "p.npz"
    np.savez(pickled, **{**good, "dense0.W": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(sg.WeightsFileError, match="dense0.W"):
        model.load(str(pickled))
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(good))
    with pytest.raises(sg.WeightsFileError, match="plain-array"):
        model.load(str(raw))
    wrong = tmp_path / "shape.npz"
    np.savez(wrong, **{**good, "dense1.W": np.zeros((8, 4))})
    with pytest.raises(sg.WeightsFileError, match=r"dense1.W.*\(8, 4\).*\(8, 3\)"):
        model.load(str(wrong))
    extra = tmp_path / "extra.npz"
    np.savez(extra, **good, other=np.zeros(2))
    with pytest.raises(sg.WeightsFileError, match="unexpected.*other"):
        model.load(str(extra))
    missing = tmp_path / "missing.npz"
    np.savez(missing, **{k: v for k, v in good.items() if k != "dense0.b"})
    with pytest.raises(sg.WeightsFileError, match="missing.*dense0.b"):
        model.load(str(missing))
    for name, value in good.items():   # nothing was half-loaded
        np.testing.assert_array_equal(model.params[name], value)


def test_history_plot_writes_png(model, data, tmp_path) -> None:
    X, y = data
    hist = model.fit(X, y, epochs=2, batch_size=64, seed=0, validation_data=(X, y))
    out = hist.plot(str(tmp_path / "loss.png"))
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="nothing recorded"):
        sg.History().plot(str(tmp_path / "empty.png"))


def test_params_changed_between_fits_are_checked_again(net, data) -> None:
    """`fit` skips re-checking parameters it prepared itself (one NaN test over the flat
    Dense buffer); a value, an array or a layout changed in between takes the full
    checks again, with errors that name the parameter."""
    X, y = data
    model = sg_compile(net, loss="cross_entropy", seed=0)
    model.fit(X, y, epochs=1)
    trainer = model._trainer[1]
    assert trainer._unchanged(model.params)           # the fast path is really taken
    W = model.params["dense0.W"]
    W[0, 0] = np.nan                                  # in place: same array object
    assert not trainer._unchanged(model.params)
    with pytest.raises(ValueError, match=r"dense0\.W.*non-finite"):
        model.fit(X, y, epochs=1)
    W[0, 0] = 0.5
    with pytest.raises(ValueError, match=r"dense0\.W' must have shape"):
        model.params["dense0.W"] = np.zeros(W.shape[::-1])   # a new array, wrong shape
    model.params["dense0.W"] = np.asfortranarray(np.ones(W.shape))   # other layout: copied
    model.fit(X, y, epochs=1)
    assert model.params["dense0.W"].flags.c_contiguous and trainer._unchanged(model.params)
