"""Validate training data against a network plan before any kernel runs.

Builds on the shared checks in `symgrad.runtime.targets` (shape, numeric
dtype, finite values, class labels in range) and adds what only the trainer
needs: targets in [0, 1] for logistic losses, a usable batch size and
validation data of the same form.

>>> import numpy as np
>>> from symgrad.runtime.data import check_batch_size
>>> check_batch_size(0, 10)
Traceback (most recent call last):
...
ValueError: batch_size must be a positive int, got 0
"""

from __future__ import annotations

import numpy as np

from symgrad.definition.errors import InputShapeError
from symgrad.derive.plan import NetworkPlan
from symgrad.runtime.targets import one_hot, prepare_inputs, prepare_targets

__all__ = ["prepare_xy", "check_batch_size", "check_order", "labels_from_output"]

_LOGISTIC_LOSSES = {"bce", "binary_cross_entropy"}


def prepare_xy(plan: NetworkPlan, X: object, y: object, dtype: np.dtype,
               what: str = "training data") -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) as C-contiguous arrays of ``dtype``; Y as (n, output_dim) rows.

    Raises `InputShapeError` (a ValueError) naming the shapes or the bad value.
    """
    Xa_raw = np.asarray(X)
    ya_raw = np.asarray(y)
    if Xa_raw.ndim >= 1 and ya_raw.ndim >= 1 and Xa_raw.shape[0] != ya_raw.shape[0]:
        raise InputShapeError(f"{what}: X has {Xa_raw.shape[0]} rows (shape {Xa_raw.shape}) "
                              f"but y has {ya_raw.shape[0]} (shape {ya_raw.shape})")
    try:
        Xa = prepare_inputs(Xa_raw, plan.input_dim, dtype)
        if (plan.output.reduction == "rows" and ya_raw.ndim == 1 and ya_raw.dtype.kind in "iu"
                and ya_raw.size and 0 <= ya_raw.min() and ya_raw.max() < plan.output_dim):
            # Fast path for in-range integer labels (fit is called once per epoch
            # in benchmarks): one-hot rows are valid targets by construction.
            Ya = one_hot(ya_raw, plan.output_dim, dtype)
        else:
            Ya = prepare_targets(ya_raw, plan.output_dim, plan.output.reduction, Xa.shape[0],
                                 dtype)
    except InputShapeError as err:
        raise InputShapeError(f"{what}: {err}") from None
    if plan.output.loss_name.lower() in _LOGISTIC_LOSSES:
        bad = np.argwhere((Ya < 0) | (Ya > 1))
        if bad.size:
            row, col = bad[0]
            raise InputShapeError(f"{what}: targets for {plan.output.loss_name} must lie in "
                                  f"[0, 1]; got {Ya[row, col]} at row {row}, column {col}")
    return Xa, Ya


def check_batch_size(batch_size: object, n: int) -> int:
    """A positive int batch size (values above n mean one batch of n)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(min(batch_size, n))


def check_order(order: object, n: int, epochs: int) -> np.ndarray | None:
    """A given batch order: one permutation of range(n) (every epoch) or one per epoch."""
    if order is None:
        return None
    arr = np.asarray(order)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"order must hold integer row indices, got dtype {arr.dtype}")
    rows = arr[None, :] if arr.ndim == 1 else arr
    if rows.ndim != 2 or rows.shape[1] != n or rows.shape[0] not in (1, epochs):
        raise ValueError(f"order must have shape ({n},) or ({epochs}, {n}), got {arr.shape}")
    expect = np.arange(n)
    for e, row in enumerate(rows):
        if not np.array_equal(np.sort(row), expect):
            raise ValueError(f"order[{e}] is not a permutation of range({n})")
    return np.ascontiguousarray(rows, dtype=np.int64)


def labels_from_output(plan: NetworkPlan, P: np.ndarray) -> np.ndarray:
    """Class labels from predictions (argmax over classes, or p > 0.5 for one logistic output)."""
    if P.shape[1] > 1:
        return np.argmax(P, axis=1)
    return (P[:, 0] > 0.5).astype(np.int64)
