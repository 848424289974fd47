"""Argument checks shared by `Model.fit`/`predict`/`evaluate` and every generated module.

One source of truth: `symgrad.runtime` imports these functions, and
`symgrad.codegen.kernels` copies their source text (`checks_source`) into
each generated kernel module, so an exported standalone trainer (numpy +
numba only) refuses bad input with the same messages as `Model.fit`, before
any compiled code reads memory through its raw indices. That is why this
module lives in codegen (codegen must not import runtime) and why the
emitted functions use only ``np``, ``InputShapeError`` and each other:
no other imports, no module-level constants.

>>> check_batch_size(0, 10)
Traceback (most recent call last):
...
ValueError: batch_size must be a positive int, got 0
>>> check_order([2, 0, 2], 3)
Traceback (most recent call last):
...
ValueError: order is not a permutation of range(3) or a subset of it: row 2 appears 2 times
"""

from __future__ import annotations

import inspect

import numpy as np

from symgrad.definition.errors import InputShapeError

__all__ = ["as_dtype", "all_finite", "one_hot_labels", "install_compiled", "first_nonfinite",
           "check_finite", "check_inputs", "one_hot", "check_targets", "check_xy",
           "check_batch_size", "check_order", "check_seed", "check_hyper", "check_params",
           "check_state", "checks_source", "LOGISTIC_LOSSES"]

# Losses whose targets must lie in [0, 1] (the generated module gets a bool instead).
LOGISTIC_LOSSES = frozenset({"bce", "binary_cross_entropy"})


def as_dtype(dtype: object) -> np.dtype:
    """float32 or float64, else a clear error."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def all_finite(arr: np.ndarray) -> bool:
    """True if no value of the float array ``arr`` is NaN or inf, by NumPy's reductions.

    Allocates nothing beyond 4 KB: an array of up to 4096 values is tested through its
    mask (np.errstate's context alone cost twice that: 4.0 -> 2.0 us for the 16 values
    of a bias); a larger one by one reduction (a sum is NaN/inf if any term is; a sum
    that overflows answers False, and `first_nonfinite`'s scan then finds nothing). Not
    BLAS's dot product of the values with themselves: its threads, woken outside the
    kernels, spun beside a split epoch's parts (LeNet float64 took 218-238 ms an epoch
    instead of 125-153).

    This module imports no Numba (``import symgrad`` stays fast); a generated module
    defines a compiled ``all_finite``, 3-9x faster (`install_compiled`).

    >>> all_finite(np.array([1.0, np.nan]))
    False
    """
    if arr.size <= 4096:
        return bool(np.isfinite(arr).all())
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(arr.sum()))


def one_hot_labels(labels: np.ndarray, k: int, dtype: object) -> np.ndarray | None:
    """One-hot rows (n, k) of the 1-D integer ``labels``, or None if one lies outside
    [0, k) (`check_targets` then names it). A generated module defines a compiled one.

    >>> one_hot_labels(np.array([1, 0]), 2, "float64")
    array([[0., 1.],
           [1., 0.]])
    """
    if labels.min() < 0 or labels.max() >= k:
        return None
    return one_hot(labels, k, dtype)


def install_compiled(module) -> None:
    """Make the checks here use ``module``'s compiled `all_finite` and `one_hot_labels`.

    A generated module (which imports Numba, as this one must not) defines both, with
    the same answers, faster: for the tiny CNN's X 8.5-9.4 -> 2.0-2.3 us, a bias
    1.2 -> 0.4 us, its 512 labels' one-hot rows 8.0 -> 2.1 us. With the leaner
    parameter checks and rollback copy of `symgrad.runtime.training`, its `fit` spent
    38-55 us of a 0.23-0.30 ms epoch in Python, against 80 us before (one run each).
    """
    global all_finite, one_hot_labels
    all_finite, one_hot_labels = module.all_finite, module.one_hot_labels


def first_nonfinite(arr: np.ndarray, chunk: int = 32768) -> tuple[int, ...] | None:
    """Index tuple of the first NaN/inf in ``arr`` (C order), or None if all are finite.

    `all_finite` answers first; only a non-finite answer (a bad value, or an overflow
    of finite values in NumPy's sum) scans ``chunk``-element blocks to find it.

    >>> first_nonfinite(np.array([[1.0, 2.0], [np.inf, 0.0]]))
    (1, 0)
    """
    if arr.size == 0 or arr.dtype.kind not in "fc":
        return None
    if all_finite(arr):
        return None
    flat = arr.reshape(-1)   # a view for the C-contiguous arrays checked here
    ok = np.empty(min(chunk, flat.size), dtype=bool)   # one chunk's mask, reused
    for start in range(0, flat.size, chunk):
        block = flat[start:start + chunk]
        mask = np.isfinite(block, out=ok[:block.size])
        if not mask.all():
            first = start + int(np.argmin(mask))   # the first False
            return tuple(int(i) for i in np.unravel_index(first, arr.shape))
    return None


def check_finite(arr: np.ndarray, what: str, error: type = InputShapeError,
                 original: np.ndarray | None = None) -> None:
    """Raise ``error`` naming ``what``, the value and its row (and column) if any is NaN/inf.

    ``original``: the values before the cast to ``arr``'s dtype; a value finite there
    is named as an overflow of the dtype (1e39 in float32), not as a NaN/inf.
    """
    bad = first_nonfinite(arr)
    if bad is None:
        return
    if len(bad) == 1:
        where = f"row {bad[0]}"
    elif len(bad) == 2:
        where = f"row {bad[0]}, column {bad[1]}"
    elif len(bad) == 4:   # an image batch
        where = f"image {bad[0]}, (channel, row, column) = {tuple(int(i) for i in bad[1:])}"
    else:
        where = f"index {bad}"
    if original is not None and np.isfinite(original[bad]):
        raise error(f"{what} holds {original[bad]:g} at {where}, which overflows {arr.dtype} "
                    f"(largest {np.finfo(arr.dtype).max:.4g}): scale the data or use float64")
    raise error(f"{what} has a non-finite value {arr[bad]} at {where}")


def c_array(arr: np.ndarray, dtype: object) -> np.ndarray:
    """``arr`` as a C-ordered array with the canonical strides (a copy only if needed).

    `np.ascontiguousarray` is not enough: NumPy calls ``x[None, :]`` C-contiguous although
    its length-1 axis has stride 0, and the kernels hand BLAS the row stride as the
    leading dimension (0: "DGEMM parameter number 10 had an illegal value", then garbage).

    >>> x = np.arange(3.0)[None, :]
    >>> x.strides, c_array(x, "float64").strides
    ((0, 8), (24, 8))
    """
    out = np.ascontiguousarray(arr, dtype=as_dtype(dtype))
    if out.size and 1 not in out.shape:   # only an axis of length 1 (or 0) can have odd strides
        return out
    step, canonical = out.itemsize, []
    for size in reversed(out.shape):
        canonical.append(step)
        step *= size
    if out.strides != tuple(reversed(canonical)):
        out = out.copy(order="C")
    return out


def check_inputs(X: object, input_dim: int | tuple[int, ...], dtype: object = "float64",
                 first_layer: str = "dense0") -> np.ndarray:
    """X as a C-contiguous (n, input_dim) float array; (n,) allowed when input_dim == 1.

    For a network reading images ``input_dim`` is the sample shape (C, H, W): X must
    be (n, C, H, W) (NCHW) and comes back flattened to (n, C*H*W) (a view when it can).
    """
    arr = np.asarray(X)
    if arr.dtype.kind not in "biuf":
        raise InputShapeError(f"X must be numeric, got dtype {arr.dtype}")
    images = isinstance(input_dim, tuple)
    if images:
        if arr.ndim != 1 + len(input_dim) or arr.shape[1:] != input_dim:
            c, h, w = input_dim
            hint = ""
            if arr.shape[1:] == (h, w, c) and c != h:
                hint = " (channels last: pass X.transpose(0, 3, 1, 2))"
            elif c == 1 and arr.shape[1:] == (h, w):
                hint = " (no channel axis: pass X[:, None])"
            raise InputShapeError(
                f"X must have shape (n, {', '.join(map(str, input_dim))}) (NCHW images) for "
                f"the first layer {first_layer}, whose input is (C, H, W) = {input_dim}; got "
                f"{arr.shape}{hint}")
    else:
        if arr.ndim == 1 and input_dim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != input_dim:
            raise InputShapeError(f"X must have shape (n, {input_dim}) for the first Dense "
                                  f"layer (dense0: in_dim={input_dim}), got {arr.shape}")
    if arr.shape[0] == 0:
        raise InputShapeError("X has no rows")
    given = arr
    if arr.dtype == dtype:
        arr = c_array(arr, dtype)
    else:
        with np.errstate(over="ignore"):   # an overflow is reported below, naming the value
            arr = c_array(arr, dtype)
    # Images are checked before flattening, so a NaN is located as (image, c, h, w).
    check_finite(arr, "X", original=given)
    return arr.reshape(arr.shape[0], -1) if images else arr


def one_hot(labels: np.ndarray, k: int, dtype: object = "float64") -> np.ndarray:
    """Integer labels (n,) -> one-hot rows (n, k)."""
    out = np.zeros((labels.shape[0], k), dtype=as_dtype(dtype))
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def check_targets(y: object, output_dim: int, reduction: str, n: int | None = None,
                  dtype: object = "float64") -> np.ndarray:
    """Targets as an (n, output_dim) float array.

    ``reduction == "rows"`` (softmax cross-entropy): integer (or bool) labels in
    [0, k) or one-hot rows (any rows summing to 1 are accepted as soft labels).
    Otherwise (n,) is allowed when ``output_dim == 1``.
    """
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise InputShapeError(f"targets must be numeric, got dtype {arr.dtype}")
    if reduction == "rows" and arr.ndim == 1:
        if arr.dtype.kind == "f":
            check_finite(arr, "targets (class labels for cross-entropy)")
            frac = np.flatnonzero(arr != np.round(arr))
            if frac.size:
                raise InputShapeError(f"1-D targets for cross-entropy must be integer class "
                                      f"labels: got {arr[frac[0]]} at row {frac[0]}")
        if arr.size and (arr.min() < 0 or arr.max() >= output_dim):
            bad = np.flatnonzero((arr < 0) | (arr >= output_dim))
            raise InputShapeError(f"class labels must lie in [0, {output_dim}): got "
                                  f"{arr[bad[0]]} at row {bad[0]}")
        # int64 first: bool labels would index one_hot's columns as a mask.
        arr = one_hot(arr.astype(np.int64), output_dim, dtype)
    elif arr.ndim == 1 and output_dim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != output_dim:
        raise InputShapeError(f"targets must have shape (n, {output_dim}) to match the last "
                              f"Dense layer's out_dim={output_dim}, got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InputShapeError(f"X has {n} rows but the targets have {arr.shape[0]}")
    given = arr
    with np.errstate(over="ignore"):
        arr = c_array(arr, dtype)
    check_finite(arr, "targets", original=given)
    if reduction == "rows" and arr.size:
        sums = arr.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1) > 1e-3)
        if bad.size or arr.min() < 0:
            row = bad[0] if bad.size else int(np.argmin(arr.min(axis=1)))
            raise InputShapeError(f"cross-entropy targets must be one-hot rows (non-negative, "
                                  f"summing to 1): row {row} is {arr[row]}")
    return arr


def check_xy(X: object, y: object, input_dim: int | tuple[int, ...], output_dim: int,
             reduction: str, logistic: bool, dtype: object, what: str = "training data",
             first_layer: str = "dense0") -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) as C-contiguous arrays of ``dtype``; Y as (n, output_dim) rows.

    ``logistic``: the targets must lie in [0, 1] (binary cross-entropy).
    Raises `InputShapeError` (a ValueError) prefixed by ``what``.
    """
    Xa_raw = np.asarray(X)
    ya_raw = np.asarray(y)
    if Xa_raw.ndim >= 1 and ya_raw.ndim >= 1 and Xa_raw.shape[0] != ya_raw.shape[0]:
        raise InputShapeError(f"{what}: X has {Xa_raw.shape[0]} rows (shape {Xa_raw.shape}) "
                              f"but y has {ya_raw.shape[0]} (shape {ya_raw.shape})")
    try:
        Xa = check_inputs(Xa_raw, input_dim, dtype, first_layer)
        Ya = None
        if reduction == "rows" and ya_raw.ndim == 1 and ya_raw.dtype.kind in "iu" \
                and ya_raw.size:
            # Fast path for integer labels (fit is called once per epoch in benchmarks):
            # one-hot rows of in-range labels are valid targets by construction.
            Ya = one_hot_labels(ya_raw, output_dim, dtype)
        if Ya is None:
            Ya = check_targets(ya_raw, output_dim, reduction, Xa.shape[0], dtype)
    except InputShapeError as err:
        raise InputShapeError(f"{what}: {err}") from None
    if logistic and Ya.size and (Ya.min() < 0 or Ya.max() > 1):
        row, col = np.argwhere((Ya < 0) | (Ya > 1))[0]
        raise InputShapeError(f"{what}: targets for binary cross-entropy must lie in [0, 1]; "
                              f"got {Ya[row, col]} at row {row}, column {col}")
    return Xa, Ya


def check_batch_size(batch_size: object, n: int) -> int:
    """A positive int batch size (values above n mean one batch of n)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(min(batch_size, n))


def check_order(order: object, n: int, epochs: int | None = None) -> np.ndarray | None:
    """A batch order as int64 rows of distinct row indices in [0, n), or None.

    With ``epochs`` (`Model.fit`): shape (n,) or (epochs, n), every row a
    permutation of range(n). Without (a generated module's ``train_epoch``):
    one 1-D row, a permutation of range(n) or a subset of it.
    """
    if order is None:
        return None
    arr = np.asarray(order)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"order must hold integer row indices, got dtype {arr.dtype}")
    if epochs is None:
        if arr.ndim != 1 or not 1 <= arr.shape[0] <= n:
            raise ValueError(f"order must be a 1-D array of 1 to {n} row indices, "
                             f"got shape {arr.shape}")
        rows = arr[None, :]
    else:
        rows = arr[None, :] if arr.ndim == 1 else arr
        if rows.ndim != 2 or rows.shape[1] != n or rows.shape[0] not in (1, epochs):
            raise ValueError(f"order must have shape ({n},) or ({epochs}, {n}), got {arr.shape}")
    subset = " or a subset of it" if epochs is None else ""
    for e, row in enumerate(rows):
        label = "order" if arr.ndim == 1 else f"order[{e}]"
        if row.min() < 0 or row.max() >= n:
            i = int(np.flatnonzero((row < 0) | (row >= n))[0])
            raise ValueError(f"{label}[{i}] = {row[i]} is not a row index of X: indices must "
                             f"lie in [0, {n})")
        counts = np.bincount(row.astype(np.int64), minlength=n)
        if counts.max() > 1:
            dup = int(np.argmax(counts > 1))
            raise ValueError(f"{label} is not a permutation of range({n}){subset}: row {dup} "
                             f"appears {counts[dup]} times")
    return np.ascontiguousarray(rows if epochs is not None else rows[0], dtype=np.int64)


def check_seed(seed: object) -> int:
    """A shuffle seed: an int in [0, 2**32), or -1 for batches in order."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not -1 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32), or -1 for batches in order, "
                         f"got {seed!r}")
    return int(seed)


def check_hyper(hyper: object, names: tuple[str, ...], default: object = None) -> np.ndarray:
    """Optimizer hyperparameters (a sequence in the order of ``names``, or a dict) as float64.

    Same bounds and messages as the optimizer classes: lr and eps > 0,
    beta1, beta2 and momentum in [0, 1), every other value >= 0; all finite.
    """
    if hyper is None:
        if default is None:
            raise ValueError(f"pass hyper=(...) with values for {tuple(names)}")
        hyper = default
    if isinstance(hyper, dict):
        missing = [k for k in names if k not in hyper]
        extra = sorted(str(k) for k in hyper if k not in names)
        if missing or extra:
            raise ValueError(f"hyper must give {tuple(names)}: missing {missing}, "
                             f"unexpected {extra}")
        hyper = [hyper[k] for k in names]
    if isinstance(hyper, (str, bytes)) or not hasattr(hyper, "__len__") \
            or len(hyper) != len(names):
        raise ValueError(f"hyper must give {len(names)} value(s) for {tuple(names)}, "
                         f"got {hyper!r}")
    values = []
    for name, value in zip(names, hyper, strict=True):
        if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)):
            raise TypeError(f"optimizer {name} must be a number, got {value!r}")
        value = float(value)
        positive = name in ("lr", "eps")
        if not np.isfinite(value) or value < 0 or (value == 0 and positive):
            raise ValueError(f"optimizer {name} must be finite and {'> 0' if positive else '>= 0'}"
                             f", got {value!r}")
        if name in ("beta1", "beta2", "momentum") and value >= 1:
            raise ValueError(f"optimizer {name} must be in [0, 1), got {value}")
        values.append(value)
    return np.array(values, dtype=np.float64)


def check_params(params: object, names: tuple[str, ...], shapes: tuple[tuple[int, ...], ...],
                 dtype: object, in_place: bool = False) -> dict[str, np.ndarray]:
    """Every parameter present, numeric, of its shape and finite; returns name -> array.

    ``in_place`` (training): each must already be a writeable C-contiguous
    array of ``dtype``, because the kernels update it through raw pointers
    and a converted copy would leave the caller's array untouched. Otherwise
    converted copies are returned where needed.
    """
    if not hasattr(params, "keys") or not hasattr(params, "__getitem__"):
        raise TypeError(f"params must be a dict of arrays keyed by {list(names)}, "
                        f"got {type(params).__name__}")
    dt = as_dtype(dtype)
    out = {}
    for name, shape in zip(names, shapes, strict=True):
        if name not in params:
            raise KeyError(f"parameter {name} is missing (model has {list(names)})")
        arr = np.asarray(params[name])
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"parameter {name} must be a float array, got dtype {arr.dtype}")
        if arr.shape != tuple(shape):
            raise ValueError(f"parameter {name} has shape {arr.shape}, expected {tuple(shape)}")
        if in_place:
            problems = [f"a {type(params[name]).__name__}, not a NumPy array"
                        if arr is not params[name] else "",
                        f"dtype {arr.dtype}" if arr.dtype != dt else "",
                        "not C-contiguous" if not arr.flags.c_contiguous else "",
                        "read-only" if not arr.flags.writeable else ""]
            if any(problems):
                raise ValueError(f"parameter {name} must be a writeable C-contiguous {dt.name} "
                                 f"array (training updates it in place); it is "
                                 f"{', '.join(p for p in problems if p)}")
        if not in_place:
            arr = c_array(arr, dt)
        check_finite(arr, f"parameter {name}", ValueError)
        out[name] = arr
    return out


def check_state(state: object, params: dict[str, np.ndarray], names: tuple[str, ...],
                state_names: tuple[str, ...]) -> object:
    """Optimizer state for ``params``: every ``"<state>:<param>"`` array and the counter ``t``."""
    if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
        raise TypeError(f"state must be a dict of arrays, got {type(state).__name__}")
    for name in names:
        ref = params[name]
        for s in state_names:
            key = f"{s}:{name}"
            if key not in state:
                raise KeyError(f"optimizer state {key} is missing (use init_state(params))")
            arr = state[key]
            if not isinstance(arr, np.ndarray) or arr.shape != ref.shape \
                    or arr.dtype != ref.dtype or not arr.flags.c_contiguous \
                    or not arr.flags.writeable:
                raise ValueError(f"optimizer state {key} must be a writeable C-contiguous "
                                 f"{ref.dtype} array of shape {ref.shape}, got "
                                 f"{getattr(arr, 'dtype', type(arr).__name__)} "
                                 f"{getattr(arr, 'shape', '')}")
            check_finite(arr, f"optimizer state {key}", ValueError)
    t = state.get("t") if hasattr(state, "get") else None
    if not isinstance(t, np.ndarray) or t.shape != (1,) or t.dtype != np.int64 \
            or not t.flags.writeable or t[0] < 0:
        raise ValueError(f"optimizer state t must be a writeable int64 array of shape (1,) "
                         f"holding the step count >= 0, got {t!r}")
    return state


# What a generated module carries, in dependency order (each uses only np,
# InputShapeError and the functions above it; and all_finite and one_hot_labels,
# which the module defines itself, compiled).
_EMITTED = (as_dtype, c_array, first_nonfinite, check_finite, check_inputs, one_hot, check_targets,
            check_xy, check_batch_size, check_order, check_seed, check_hyper, check_params,
            check_state)


def checks_source() -> str:
    """Source text of the checks, for a generated module (which defines InputShapeError)."""
    return "\n\n".join(inspect.getsource(fn) for fn in _EMITTED)
