"""Between-epoch callbacks and the progress display of `Model.fit`.

Python runs once per epoch (the kernels train a whole epoch per call), so a
callback sees the epoch's metrics, e.g. ``{"loss": ..., "val_loss": ...}``, and
may stop training. Epochs are numbered from 1, as in `History.epochs`.

- `EarlyStopping`: stop when a monitored metric stops improving (Keras's rule).
- `ModelCheckpoint`: save the weights after an epoch (atomic, through `Model.save`).
- any callable ``hook(epoch, logs)``: return ``True`` or ``"stop"`` to stop.

>>> calls = []
>>> hooks = CallbackList([lambda epoch, logs: calls.append(epoch) or epoch == 2])
>>> hooks.on_train_begin(["loss"])
>>> hooks.on_epoch_end(1, {"loss": 0.5}), calls
(None, [1])
>>> hooks.on_epoch_end(2, {"loss": 0.4})
'callback <lambda> asked to stop after epoch 2'
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

import numpy as np

__all__ = ["Callback", "CallbackList", "EarlyStopping", "ModelCheckpoint", "LambdaCallback",
           "Progress"]

StopSignal = bool | str | None


class Callback:
    """Base class: override the hooks you need; ``self.model`` is the model being trained."""

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, metric_names: Sequence[str]) -> None:
        """Called once before the first epoch with the metric names every epoch will log."""

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float]) -> str | None:
        """Called after each epoch; return a reason (a non-empty string) to stop training."""
        return None

    def on_train_end(self, history: Any) -> None:
        """Called once after the last epoch (also after an early stop)."""


def _mode(monitor: str, mode: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        # Keras's rule: accuracies improve upwards, everything else (losses) downwards.
        return "max" if "acc" in monitor else "min"
    return mode


def _check_monitor(monitor: str, names: Sequence[str], who: str) -> None:
    if monitor not in names:
        hint = " (pass validation_data= to fit)" if monitor.startswith("val_") else ""
        raise ValueError(f"{who}: monitor={monitor!r} is not logged by this fit{hint}; "
                         f"logged metrics: {list(names)}")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights=True`` the weights of the best epoch are put back
    when training ends (after an early stop or not).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        who = "EarlyStopping"
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"{who}: monitor must be a metric name, got {monitor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"{who}: patience must be a non-negative int, got {patience!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) \
                or not math.isfinite(min_delta):
            raise ValueError(f"{who}: min_delta must be a finite number, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(float(min_delta))
        self.mode = _mode(monitor, mode, who)
        self.restore_best_weights = bool(restore_best_weights)
        self.best: float = math.nan
        self.best_epoch = 0
        self.wait = 0
        self._best_params: dict[str, np.ndarray] | None = None

    def on_train_begin(self, metric_names: Sequence[str]) -> None:
        _check_monitor(self.monitor, metric_names, "EarlyStopping")
        self.best, self.best_epoch, self.wait, self._best_params = math.nan, 0, 0, None

    def _improved(self, value: float) -> bool:
        if math.isnan(self.best):
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float]) -> str | None:
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights and self.model is not None:
                self._best_params = {k: v.copy() for k, v in self.model.params.items()}
            return None
        self.wait += 1
        if self.wait >= self.patience:   # Keras's count: `patience` epochs without a gain
            return (f"EarlyStopping: {self.monitor} did not improve by more than "
                    f"{self.min_delta:g} for {self.wait} epochs (best {self.best:.6g} at epoch "
                    f"{self.best_epoch})")
        return None

    def on_train_end(self, history: Any) -> None:
        if self._best_params is not None:
            # In place: the trainer and the optimizer state hold these very arrays.
            for name, value in self._best_params.items():
                self.model.params[name][...] = value
            if history is not None:
                history.restored_epoch = self.best_epoch


class ModelCheckpoint(Callback):
    """Save the weights to ``path`` after each epoch, or only when ``monitor`` improves.

    ``path`` may hold ``{epoch}`` and metric fields (``"w-{epoch:03d}.npz"``). Each
    write goes through `Model.save`: a temporary file renamed over the target, so
    a crash never leaves a half-written checkpoint.
    """

    def __init__(self, path: str | os.PathLike, monitor: str = "val_loss",
                 save_best_only: bool = False, mode: str = "auto") -> None:
        self.path = os.fspath(path)
        self.monitor, self.save_best_only = monitor, bool(save_best_only)
        self.mode = _mode(monitor, mode, "ModelCheckpoint")
        self.best = math.nan
        self.saved: list[str] = []

    def on_train_begin(self, metric_names: Sequence[str]) -> None:
        if self.save_best_only:
            _check_monitor(self.monitor, metric_names, "ModelCheckpoint")
        try:
            self.path.format(epoch=1, **dict.fromkeys(metric_names, 0.0))
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"ModelCheckpoint: path {self.path!r} has a field that is not "
                             f"'epoch' or a logged metric {list(metric_names)}: {err}") from None
        folder = os.path.dirname(os.path.abspath(self.path.format(
            epoch=1, **dict.fromkeys(metric_names, 0.0))))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"ModelCheckpoint: folder {folder!r} does not exist")
        self.best = math.nan

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float]) -> str | None:
        if self.save_best_only:
            value = float(logs[self.monitor])
            better = value < self.best if self.mode == "min" else value > self.best
            if not (math.isnan(self.best) or better):
                return None
            self.best = value
        path = self.path.format(epoch=epoch, **logs)
        self.model.save(path)
        self.saved.append(path)
        return None


class LambdaCallback(Callback):
    """A plain function ``hook(epoch, logs)``; ``True`` or ``"stop"`` stops training."""

    def __init__(self, hook: Callable[[int, Mapping[str, float]], StopSignal]) -> None:
        if not callable(hook):
            raise TypeError(f"a callback must be a Callback or a callable, got {hook!r}")
        self.hook = hook
        self.name = getattr(hook, "__name__", type(hook).__name__)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float]) -> str | None:
        answer = self.hook(epoch, dict(logs))
        flag = isinstance(answer, (bool, np.bool_))   # `logs[k] > x` may be a NumPy bool
        if answer is None or (flag and not answer):
            return None
        if (flag and answer) or (isinstance(answer, str) and answer == "stop"):
            return f"callback {self.name} asked to stop after epoch {epoch}"
        raise TypeError(f"callback {self.name} returned {answer!r}; return None/False to go on, "
                        "True or 'stop' to stop")


class CallbackList:
    """The callbacks of one `fit`, called in order; the first stop reason wins."""

    def __init__(self, callbacks: Iterable[Callback | Callable] | Callback | None = None,
                 model: Any = None) -> None:
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback) or callable(callbacks):
            callbacks = [callbacks]
        self.callbacks: list[Callback] = [
            cb if isinstance(cb, Callback) else LambdaCallback(cb) for cb in callbacks]
        for cb in self.callbacks:
            cb.set_model(model)

    def on_train_begin(self, metric_names: Sequence[str]) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(list(metric_names))

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float]) -> str | None:
        reason = None
        for cb in self.callbacks:   # every callback sees every epoch (checkpoints still save)
            said = cb.on_epoch_end(epoch, logs)
            reason = reason or said
        return reason

    def on_train_end(self, history: Any) -> None:
        for cb in self.callbacks:
            cb.on_train_end(history)


def format_metrics(metrics: Mapping[str, float]) -> str:
    """Keras's look: ``loss: 0.1234 - accuracy: 0.9500``.

    >>> format_metrics({"loss": 0.5, "val_loss": 0.25})
    'loss: 0.5000 - val_loss: 0.2500'
    """
    return " - ".join(f"{k}: {v:.4f}" for k, v in metrics.items())


class Progress:
    """What ``fit(verbose=...)`` shows: 0 nothing, 1 one tqdm bar over the epochs, 2 a line each.

    The bar is drawn only when ``stream`` (default stderr) is a terminal, so logs
    and pipes stay clean; ``verbose=2`` prints one line per epoch anywhere.
    """

    def __init__(self, verbose: int, epochs: int, stream: IO[str] | None = None) -> None:
        if not isinstance(verbose, (int, np.integer)) or verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        self.verbose, self.epochs = int(verbose), epochs
        self.bar = None
        if self.verbose == 1:
            stream = stream if stream is not None else sys.stderr
            # Notebooks: stderr is no terminal, but tqdm.auto draws a widget there.
            if getattr(stream, "isatty", lambda: False)() or "ipykernel" in sys.modules:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=epochs, unit="epoch", file=stream, leave=True,
                                dynamic_ncols=True, desc="fit")

    def update(self, epoch: int, metrics: Mapping[str, float], seconds: float,
               compiled: bool = False) -> None:
        """Show the metrics of ``epoch`` (1-based) that took ``seconds``."""
        if self.bar is not None:
            self.bar.set_postfix_str(format_metrics(metrics), refresh=False)
            self.bar.update(1)
        elif self.verbose == 2:
            note = " (includes JIT compile)" if compiled else ""
            print(f"epoch {epoch}/{self.epochs} - {format_metrics(metrics)} - "
                  f"{seconds * 1e3:.1f} ms{note}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
