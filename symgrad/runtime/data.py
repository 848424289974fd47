"""Validate training data against a network plan before any kernel runs.

The checks themselves (shape, numeric dtype, finite values, class labels in
range, targets in [0, 1] for logistic losses, batch size, batch order) live
in `symgrad.codegen.checks`, whose source every generated kernel module
carries too, so an exported trainer says the same; this module binds them
to a network plan.

>>> import numpy as np
>>> from symgrad.runtime.data import check_batch_size
>>> check_batch_size(0, 10)
Traceback (most recent call last):
...
ValueError: batch_size must be a positive int, got 0
"""

from __future__ import annotations

import numpy as np

from symgrad.codegen.checks import LOGISTIC_LOSSES, check_batch_size, check_xy
from symgrad.codegen.checks import check_order as _check_order
from symgrad.derive.plan import NetworkPlan

__all__ = ["prepare_xy", "check_batch_size", "check_order", "labels_from_output",
           "has_logistic_targets"]


def has_logistic_targets(plan: NetworkPlan) -> bool:
    """True if the plan's loss needs targets in [0, 1] (binary cross-entropy)."""
    return plan.output.loss_name.lower() in LOGISTIC_LOSSES


def prepare_xy(plan: NetworkPlan, X: object, y: object, dtype: np.dtype,
               what: str = "training data") -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) as C-contiguous arrays of ``dtype``; Y as (n, output_dim) rows.

    Raises `InputShapeError` (a ValueError) naming the shapes or the bad value.
    """
    return check_xy(X, y, plan.input_layout, plan.output_dim, plan.output.reduction,
                    has_logistic_targets(plan), dtype, what, plan.first_layer)


def check_order(order: object, n: int, epochs: int) -> np.ndarray | None:
    """A given batch order: one permutation of range(n) (every epoch) or one per epoch."""
    return _check_order(order, n, epochs)


def labels_from_output(plan: NetworkPlan, P: np.ndarray) -> np.ndarray:
    """Class labels from predictions (argmax over classes, or p > 0.5 for one logistic output)."""
    if P.shape[1] > 1:
        return np.argmax(P, axis=1)
    return (P[:, 0] > 0.5).astype(np.int64)
