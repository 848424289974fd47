"""Validate and shape inputs and targets before any numeric work.

Used by the NumPy reference and the Numba trainer alike, so both reject the
same bad data with the same message.

>>> one_hot(np.array([0, 2]), 3)
array([[1., 0., 0.],
       [0., 0., 1.]])
>>> prepare_targets(np.array([1, 5]), 3, "rows")
Traceback (most recent call last):
...
symgrad.definition.errors.InputShapeError: class labels must lie in [0, 3): got 5 at row 1
"""

from __future__ import annotations

import numpy as np

from symgrad.definition.errors import InputShapeError


def as_dtype(dtype: str | np.dtype) -> np.dtype:
    """float32 or float64, else a clear error."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def prepare_inputs(X: object, input_dim: int, dtype: str | np.dtype = "float64") -> np.ndarray:
    """X as a C-contiguous (n, input_dim) float array; (n,) allowed when input_dim == 1."""
    arr = np.asarray(X)
    if arr.dtype.kind not in "biuf":
        raise InputShapeError(f"X must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1 and input_dim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != input_dim:
        raise InputShapeError(f"X must have shape (n, {input_dim}) for the first Dense layer "
                              f"(dense0: in_dim={input_dim}), got {arr.shape}")
    if arr.shape[0] == 0:
        raise InputShapeError("X has no rows")
    arr = np.ascontiguousarray(arr, dtype=as_dtype(dtype))
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputShapeError(f"X contains a non-finite value {arr[tuple(bad)]} at {tuple(bad)}")
    return arr


def one_hot(labels: np.ndarray, k: int, dtype: str | np.dtype = "float64") -> np.ndarray:
    """Integer labels (n,) -> one-hot rows (n, k)."""
    out = np.zeros((labels.shape[0], k), dtype=as_dtype(dtype))
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def prepare_targets(y: object, output_dim: int, reduction: str, n: int | None = None,
                    dtype: str | np.dtype = "float64") -> np.ndarray:
    """Targets as an (n, output_dim) float array.

    ``reduction == "rows"`` (softmax cross-entropy): integer labels in [0, k) or one-hot
    rows (any rows summing to 1 are accepted as soft labels). Otherwise (n,) is allowed
    when ``output_dim == 1``.
    """
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise InputShapeError(f"targets must be numeric, got dtype {arr.dtype}")
    if reduction == "rows" and arr.ndim == 1:
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise InputShapeError("1-D targets for cross-entropy must be integer class "
                                      "labels")
            arr = arr.astype(np.int64)
        bad = np.flatnonzero((arr < 0) | (arr >= output_dim))
        if bad.size:
            raise InputShapeError(f"class labels must lie in [0, {output_dim}): got "
                                  f"{arr[bad[0]]} at row {bad[0]}")
        arr = one_hot(arr, output_dim, dtype)
    elif arr.ndim == 1 and output_dim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != output_dim:
        raise InputShapeError(f"targets must have shape (n, {output_dim}) to match the last "
                              f"Dense layer's out_dim={output_dim}, got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InputShapeError(f"X has {n} rows but the targets have {arr.shape[0]}")
    arr = np.ascontiguousarray(arr, dtype=as_dtype(dtype))
    if not np.all(np.isfinite(arr)):
        raise InputShapeError("targets contain non-finite values")
    if reduction == "rows":
        sums = arr.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1) > 1e-3)
        if bad.size or np.any(arr < 0):
            row = bad[0] if bad.size else int(np.argwhere(arr < 0)[0][0])
            raise InputShapeError(f"cross-entropy targets must be one-hot rows (non-negative, "
                                  f"summing to 1): row {row} is {arr[row]}")
    return arr
