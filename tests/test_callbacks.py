"""fit(callbacks=..., verbose=...): early stopping, checkpoints, hooks, History's stop record."""

from __future__ import annotations

import io

import numpy as np
import pytest

import symgrad as sg
from symgrad.runtime.callbacks import EarlyStopping, ModelCheckpoint, Progress


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.float64)
    return X, y


def _model(lr: float = 0.05):
    net = sg.Sequential(sg.Dense(3, 6), sg.Tanh(), sg.Dense(6, 1), sg.Sigmoid())
    return sg.compile(net, loss="bce", optimizer=sg.SGD(lr=lr), seed=0)


def test_full_run_records_completion(data) -> None:
    X, y = data
    hist = _model().fit(X, y, epochs=3, seed=0)
    assert hist.stopped_epoch == 3 and not hist.stopped_early
    assert hist.stop_reason == "completed 3 of 3 epochs"


def test_hook_stops_and_sees_logs(data) -> None:
    X, y = data
    seen = []

    def hook(epoch, logs):
        seen.append((epoch, sorted(logs)))
        return "stop" if epoch == 2 else None

    hist = _model().fit(X, y, epochs=10, seed=0, validation_data=(X, y), callbacks=[hook])
    numpy_bool = _model().fit(X, y, epochs=5, callbacks=lambda e, logs: np.float64(e) >= 3)
    assert numpy_bool.stopped_epoch == 3
    assert [e for e, _ in seen] == [1, 2] and len(hist.epochs) == 2
    assert seen[0][1] == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert hist.stopped_early and hist.stopped_epoch == 2 and "hook" in hist.stop_reason


def test_hook_with_a_bad_answer_is_named(data) -> None:
    X, y = data

    def chatty(epoch, logs):
        return 3

    with pytest.raises(TypeError, match="chatty returned 3"):
        _model().fit(X, y, epochs=2, callbacks=chatty)


def test_early_stopping_patience_and_restore(data) -> None:
    """A validation set the model gets worse on: stop after `patience` bad epochs and
    put back the best epoch's weights (checked against a fresh run of that many epochs)."""
    X, y = data
    Xv, yv = X, 1.0 - y      # inverted labels: val_loss rises as training succeeds
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    model = _model(lr=0.5)
    hist = model.fit(X, y, epochs=30, seed=0, shuffle=False, validation_data=(Xv, yv),
                     callbacks=[stop])
    losses = hist.history["val_loss"]
    best = int(np.argmin(losses)) + 1
    assert hist.stopped_early and len(losses) == best + 2   # best, then `patience` worse
    assert "val_loss did not improve" in hist.stop_reason and hist.restored_epoch == best
    again = _model(lr=0.5)
    again.fit(X, y, epochs=best, seed=0, shuffle=False)
    for name, value in again.params.items():
        np.testing.assert_array_equal(model.params[name], value)
    assert model.evaluate(Xv, yv)["loss"] == pytest.approx(losses[best - 1], rel=1e-12)


def test_early_stopping_min_delta_counts_small_gains_as_none(data) -> None:
    X, y = data
    hist = _model(lr=0.01).fit(X, y, epochs=20, seed=0, callbacks=[
        EarlyStopping(monitor="loss", patience=0, min_delta=1.0)])
    assert len(hist.epochs) == 2 and hist.stopped_early   # no epoch gains a whole unit of loss


def test_monitor_that_is_never_logged_fails_before_training(data) -> None:
    X, y = data
    model = _model()
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match="val_loss.*validation_data"):
        model.fit(X, y, epochs=2, callbacks=[EarlyStopping(monitor="val_loss")])
    for name, value in before.items():
        np.testing.assert_array_equal(model.params[name], value)


def test_checkpoint_saves_only_improvements(tmp_path, data) -> None:
    X, y = data
    Xv, yv = X, 1.0 - y
    path = tmp_path / "best.npz"
    ckpt = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    model = _model(lr=0.5)
    hist = model.fit(X, y, epochs=6, seed=0, shuffle=False, validation_data=(Xv, yv),
                     callbacks=[ckpt])
    losses = hist.history["val_loss"]
    improving = [e + 1 for e, v in enumerate(losses) if v <= min(losses[:e + 1])]
    assert len(ckpt.saved) == len(improving)
    best = _model(lr=0.5)
    best.load(path)
    assert best.evaluate(Xv, yv)["loss"] == pytest.approx(min(losses), rel=1e-12)
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"]   # no temp files left


def test_checkpoint_epoch_pattern(tmp_path, data) -> None:
    X, y = data
    ckpt = ModelCheckpoint(tmp_path / "w-{epoch:02d}.npz")
    _model().fit(X, y, epochs=3, callbacks=ckpt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w-01.npz", "w-02.npz", "w-03.npz"]


def test_checkpoint_bad_pattern_is_named(tmp_path, data) -> None:
    X, y = data
    with pytest.raises(ValueError, match="speed"):
        _model().fit(X, y, epochs=1, callbacks=ModelCheckpoint(tmp_path / "w-{speed}.npz"))
    assert list(tmp_path.iterdir()) == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only() -> None:
    tty = _Terminal()
    bar = Progress(1, 3, stream=tty)
    for epoch in (1, 2, 3):
        bar.update(epoch, {"loss": 0.5 / epoch, "val_accuracy": 0.75}, 0.01)
    bar.close()
    text = tty.getvalue()
    assert "3/3" in text and "loss: 0.1667 - val_accuracy: 0.7500" in text
    pipe = io.StringIO()
    quiet = Progress(1, 3, stream=pipe)
    quiet.update(1, {"loss": 0.5}, 0.01)
    quiet.close()
    assert pipe.getvalue() == ""


def test_verbose_levels_in_fit(data, capsys) -> None:
    X, y = data
    model = _model()
    model.fit(X, y, epochs=2, verbose=1)   # captured streams are not terminals: silent
    model.fit(X, y, epochs=2, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    model.fit(X, y, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert out.count("epoch ") == 2 and "epoch 2/2 - loss: " in out and "accuracy: " in out
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2"):
        model.fit(X, y, epochs=1, verbose=3)
