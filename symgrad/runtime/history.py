"""Per-epoch training record: ``History.history`` and a matplotlib plot.

>>> h = History()
>>> h.append(loss=0.5, accuracy=0.8)
>>> h.history["loss"], h.epochs
([0.5], [1])
>>> h.record_stop("completed 1 of 1 epochs")
>>> h.stopped_epoch, h.stop_reason
(1, 'completed 1 of 1 epochs')
"""

from __future__ import annotations

import os

__all__ = ["History"]


class History:
    """Metric name -> list of per-epoch values (``loss``, ``accuracy``, ``val_loss``, ...).

    ``stopped_epoch`` and ``stop_reason`` say when and why training ended (all
    epochs done, a callback such as `EarlyStopping`, or divergence);
    ``restored_epoch`` is the epoch whose weights were put back, if any.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epochs: list[int] = []
        self.stopped_epoch: int | None = None
        self.stop_reason: str = ""
        self.restored_epoch: int | None = None
        self.stopped_early = False

    def record_stop(self, reason: str, early: bool = False) -> None:
        """Note that training ended after the last recorded epoch, and why."""
        self.stopped_epoch = len(self.epochs)
        self.stop_reason = reason
        self.stopped_early = bool(early)

    def append(self, **metrics: float) -> None:
        self.epochs.append(len(self.epochs) + 1)
        for name, value in metrics.items():
            self.history.setdefault(name, []).append(float(value))

    def __repr__(self) -> str:
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        why = f", stop_reason={self.stop_reason!r}" if self.stop_reason else ""
        return f"History(epochs={len(self.epochs)}, last={last}{why})"

    def plot(self, path: str | os.PathLike) -> str:
        """Save loss (and accuracy, if recorded) curves to ``path``; returns the path."""
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt

        panels = [m for m in ("loss", "accuracy") if m in self.history]
        if not panels:
            raise ValueError("History.plot: nothing recorded yet (call fit first)")
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
        for ax, metric in zip(axes[0], panels, strict=False):
            for key in (metric, f"val_{metric}"):
                if key in self.history:
                    ax.plot(self.epochs[:len(self.history[key])], self.history[key], label=key)
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric)
            ax.legend()
        fig.tight_layout()
        fig.savefig(os.fspath(path))
        plt.close(fig)
        return os.fspath(path)
