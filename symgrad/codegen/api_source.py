"""The NumPy-level API of a generated kernel module, as source text.

A trainer's last module (and the tail of an exported file) is plain Python: the model's
constants (written by `symgrad.codegen.kernels`), the argument checks copied from
`symgrad.codegen.checks`, and the entry points below -- ``train_epoch``, ``predict``,
``evaluate``, ``loss_and_grads``, ``load_weights``, ``init_state`` -- which check their
arguments and call the compiled driver. The Dense parameters travel to the driver as one
flat buffer (``theta``) and the layout table ``DENSE_LAYOUT``
(`symgrad.codegen.dense_layers`).
"""

from __future__ import annotations

from symgrad.codegen.checks import checks_source

__all__ = ["API"]

_API_HEAD = '''
# ---------------------------------------------------------------------------
# Argument checks: the same functions (copied from the library's codegen/checks.py)
# and messages as Model.fit. Every public function below runs them before
# any compiled code, because the kernels index memory without bounds checks.
# ---------------------------------------------------------------------------
class InputShapeError(ValueError):
    """Data (X or targets) whose shape or values do not fit the network."""


class WeightsFileError(ValueError):
    """A weights file that cannot be read, or whose arrays do not fit the network."""


'''

API = _API_HEAD + checks_source() + '''


# The checks above call these two; the library's checks.py has NumPy versions.
def all_finite(arr):
    """True if no value of the float array arr is NaN or inf (one compiled loop for
    float32 and float64; NumPy's mask for the others, float16 labels say)."""
    if arr.dtype.char in "fd":
        return _count_nonfinite(arr.reshape(-1)) == 0
    return bool(np.isfinite(arr).all())


def one_hot_labels(labels, k, dtype):
    """One-hot rows of the integer labels, or None if one lies outside [0, k)."""
    out = np.zeros((labels.shape[0], k), dtype=as_dtype(dtype))
    return out if _fill_one_hot(labels, out) else None


# ---------------------------------------------------------------------------
# NumPy-level API (also the API of an exported standalone module).
# ---------------------------------------------------------------------------
WEIGHTS = {}
STATE = {}


def _as_data(X, Y=None, what="data"):
    """Checked (X, Y) as C-contiguous DTYPE arrays; Y may be class labels or target rows."""
    if Y is None:
        try:
            return check_inputs(X, INPUT_DIM, DTYPE, FIRST_LAYER), None
        except InputShapeError as err:
            raise InputShapeError(f"{what}: {err}") from None
    return check_xy(X, Y, INPUT_DIM, OUTPUT_DIM, REDUCTION, LOGISTIC_TARGETS, DTYPE, what,
                    FIRST_LAYER)


def _params(params, in_place=False):
    """Checked parameters (default: WEIGHTS), keyed like PARAM_NAMES."""
    return check_params(WEIGHTS if params is None else params, PARAM_NAMES, PARAM_SHAPES,
                        DTYPE, in_place)


# The Dense parameters travel to the kernels as one flat buffer, theta (DENSE_SLOTS:
# name, offset, shape), and their optimizer state as the rows of one (states, size)
# array. Arrays that are already views of such a buffer (what flat_params and
# init_state make) are passed without a copy; others are packed, and written back
# after a training call.
def _address(arr):
    return arr.__array_interface__["data"][0]


import weakref  # noqa: E402

_OWNERS = {}   # (shape, ids) -> weak references to (the arrays, their buffer)


def _owner(arrays, shape, row_of):
    """The C-contiguous DTYPE buffer of ``shape`` the arrays are consecutive views of, or
    None. ``row_of(i)`` is array i's row in it (its offset is DENSE_SLOTS[i][1])."""
    key = (shape, tuple(map(id, arrays)))
    known = _OWNERS.get(key)
    # An array's buffer and place in it never change, so the same array objects need no
    # second look (weak references: an id reused by a new array does not match).
    if known is not None and all(ref() is a for ref, a in zip(known[0], arrays)):
        base = known[1]()
        if base is not None:
            return base
    base = _owner_of(arrays, shape, row_of)
    if base is not None:
        if len(_OWNERS) >= 8:
            _OWNERS.clear()
        _OWNERS[key] = (tuple(weakref.ref(a) for a in arrays), weakref.ref(base))
    return base


def _owner_of(arrays, shape, row_of):
    base = arrays[0].base if arrays else None
    if not isinstance(base, np.ndarray) or base.shape != shape or base.dtype != DTYPE \\
            or not base.flags.c_contiguous or not base.flags.writeable:
        return None
    start, item = _address(base), base.itemsize
    for i, (arr, (_, at, _)) in enumerate(zip(arrays, DENSE_SLOTS)):
        if arr.base is not base or \\
                _address(arr) != start + (row_of(i) * DENSE_SIZE + at) * item:
            return None
    return base


def flat_params(params):
    """A copy of ``params`` whose Dense arrays are views of one flat buffer (no packing
    at each call)."""
    theta = np.empty(DENSE_SIZE, dtype=DTYPE)
    out = {name: np.array(params[name], dtype=DTYPE) for name in PARAM_NAMES}
    for name, at, shape in DENSE_SLOTS:
        view = theta[at:at + int(np.prod(shape))].reshape(shape)
        view[...] = out[name]
        out[name] = view
    return out


def _flat_buffer(params):
    """The flat Dense buffer the parameters are views of, or None (they need packing)."""
    return _owner([params[name] for name, _, _ in DENSE_SLOTS], (DENSE_SIZE,), lambda i: 0)


def _theta(params):
    """(theta, packed): the flat Dense buffer, and whether it is a packed copy."""
    arrays = [params[name] for name, _, _ in DENSE_SLOTS]
    theta = _flat_buffer(params)
    if theta is not None:
        return theta, False
    theta = np.empty(DENSE_SIZE, dtype=DTYPE)
    for arr, (_, at, _) in zip(arrays, DENSE_SLOTS):
        theta[at:at + arr.size] = arr.reshape(-1)
    return theta, True


def _states(state):
    """(S, packed): the Dense optimizer state as rows of one array, and whether packed."""
    count = len(STATE_NAMES)
    arrays = [state[f"{s}:{name}"] for s in STATE_NAMES for name, _, _ in DENSE_SLOTS]
    per = len(DENSE_SLOTS)
    owned = _owner(arrays[:per], (count, DENSE_SIZE), lambda i: 0) if count else None
    if owned is not None and all(
            _owner(arrays[k * per:(k + 1) * per], (count, DENSE_SIZE), lambda i, k=k: k)
            is owned for k in range(1, count)):
        return owned, False
    S = np.empty((count, DENSE_SIZE), dtype=DTYPE)
    for k in range(count):
        for arr, (_, at, _) in zip(arrays[k * per:(k + 1) * per], DENSE_SLOTS):
            S[k, at:at + arr.size] = arr.reshape(-1)
    return S, True


def _unpack(flat, arrays):
    """Write the flat buffer's slots back into the arrays (a packed copy was trained)."""
    for arr, (_, at, _) in zip(arrays, DENSE_SLOTS):
        arr.reshape(-1)[...] = flat[at:at + arr.size]


def init_state(params):
    """Zeroed optimizer state for ``params`` (plus the step counter ``t``); the Dense
    entries are rows of one array, as the kernels take them."""
    state = {f"{s}:{name}": np.zeros_like(params[name]) for name in FEATURE_NAMES
             for s in STATE_NAMES}
    S = np.zeros((len(STATE_NAMES), DENSE_SIZE), dtype=DTYPE)
    for k, s in enumerate(STATE_NAMES):
        for name, at, shape in DENSE_SLOTS:
            state[f"{s}:{name}"] = S[k, at:at + int(np.prod(shape))].reshape(shape)
    state["t"] = np.zeros(1, dtype=np.int64)
    return state


def load_weights(path_or_dict):
    """Load weights (an .npz path or a dict) into this module's WEIGHTS; resets STATE."""
    src = path_or_dict
    if isinstance(src, str) or hasattr(src, "__fspath__"):
        path = src
        try:   # no pickles: an object array is refused, nothing in the file can run
            with np.load(path, allow_pickle=False) as archive:
                src = {name: archive[name] for name in archive.files}
        except Exception as err:   # a .npy (no archive), a damaged zip, object arrays...
            raise WeightsFileError(f"{path}: not a weights archive this trainer can read "
                                   f"({type(err).__name__}: {err})") from None
        extra = sorted(set(src) - set(PARAM_NAMES))
        if extra:
            raise WeightsFileError(f"{path}: parameter names do not match the model: "
                                   f"unexpected {extra} (model has {list(PARAM_NAMES)})")
    checked = check_params(src, PARAM_NAMES, PARAM_SHAPES, DTYPE)
    WEIGHTS.clear()
    WEIGHTS.update(flat_params(checked))
    STATE.clear()
    STATE.update(init_state(WEIGHTS))
    return WEIGHTS


def train_epoch(X, Y, batch_size=32, hyper=None, order=None, seed=-1,
                params=None, state=None):
    """Train one epoch in place; returns (mean loss, accuracy or nan).

    ``hyper``: optimizer hyperparameters in the order of HYPER_NAMES (or a dict).
    ``order``: the rows in batch order, a permutation of range(n) or a subset
    of it (then only those rows train); else ``seed`` >= 0 shuffles, and
    -1 keeps the rows in order. ``params``/``state`` default to WEIGHTS/STATE
    and are updated in place (float arrays of DTYPE, C-contiguous).
    """
    X, Y = _as_data(X, Y, "train_epoch")
    n = X.shape[0]
    batch_size = check_batch_size(batch_size, n)
    hyper = check_hyper(hyper, HYPER_NAMES, HYPER_DEFAULT)
    order = check_order(order, n)
    seed = check_seed(seed)
    params = _params(params, in_place=True)
    state = STATE if state is None else state
    if hasattr(state, "keys") and not state:
        state.update(init_state(params))
    check_state(state, params, PARAM_NAMES, STATE_NAMES)
    if order is not None and order.size < n:
        # A subset: its rows, gathered once, train in the given order (no seed: a
        # shuffle now would lose that order).
        X, Y, order, seed = X[order], Y[order], None, -1
        batch_size = min(batch_size, X.shape[0])
    return _train_epoch(X, Y, batch_size, hyper, order, seed, params, state)


def _train_epoch(X, Y, batch_size, hyper, order, seed, params, state):
    """One epoch on checked arguments (train_epoch and Model.fit check them first)."""
    if order is None or order.size == 0:
        # A seeded shuffle; without a seed an empty order: batches are row slices, in order.
        order = _permutation(X.shape[0], seed) if seed >= 0 else np.empty(0, np.int64)
    theta, packed = _theta(params)
    S, packed_state = _states(state)
    args = [params[name] for name in FEATURE_NAMES] + [theta]
    args += [state[f"{s}:{name}"] for name in FEATURE_NAMES for s in STATE_NAMES]
    tail = (*args, S, hyper, state["t"], DENSE_LAYOUT)
    if SPLITS_BATCHES:
        loss, correct = _epoch(X, Y, GEOMETRY, order, batch_size, batch_parts(batch_size), *tail)
    elif (parts := dense_parts(batch_size)) > 1:
        _ensure_split()
        loss, correct = _epoch_split(X, Y, GEOMETRY, order, batch_size, parts, *tail)
    else:
        loss, correct = _epoch(X, Y, GEOMETRY, order, batch_size, *tail)
    if packed:
        _unpack(theta, [params[name] for name, _, _ in DENSE_SLOTS])
    if packed_state:
        for k, s in enumerate(STATE_NAMES):
            _unpack(S[k], [state[f"{s}:{name}"] for name, _, _ in DENSE_SLOTS])
    n = X.shape[0]
    return loss / n, (correct / n if CLASSIFICATION else float("nan"))


# A part of a split batch has at least this many rows, so that a part's work outweighs
# the parallel launch per batch. Not tuned: the tiny CNN's 32-row parts still gain
# (epoch 1.2-1.3 -> 1.0-1.1 ms); smaller parts were not measured.
MIN_PART_ROWS = 16


def batch_parts(batch_size):
    """Into how many parts _epoch splits each batch (drivers with SPLITS_BATCHES): one per
    Numba thread, while each part keeps MIN_PART_ROWS rows.

    Only in the main thread: a split epoch sets OpenBLAS's process-wide thread count
    to 1 and restores it after (see BLAS_PINNED), and two epochs doing so at once in
    two threads could leave it at 1. Fits running in worker threads (Dask, joblib)
    use the cores side by side anyway.
    """
    import threading

    import numba

    if not BLAS_PINNED or threading.current_thread() is not threading.main_thread():
        return 1
    return max(1, min(numba.get_num_threads(), batch_size // MIN_PART_ROWS))


# A Dense-only model splits its batches (_epoch_split) only where it pays: the split runs
# the activation loops on every core, but its GEMMs single-threaded, its SGD step no
# longer fused into them, and it adds a pass summing the parts' gradients. Measured
# (benchmarks/dense_split_probe.py; benchmarks/README.md, "Split MLP batches"),
# serial/split: GELU at 784-256-128-10, batch 128, 0.99-1.17; tanh and Swish there
# 0.86-1.07; every activation on batches of 1-3 M multiply-adds down to 0.40. So: parts
# of at least DENSE_PART_ROWS rows, at least DENSE_SPLIT_MACS multiply-adds of forward
# GEMM work a batch, and loop work (ROW_LOOP_COST: special-function evaluations a row)
# of DENSE_SPLIT_SHARE of it.
DENSE_PART_ROWS = 32
DENSE_SPLIT_MACS = 8_000_000
DENSE_SPLIT_SHARE = 0.01
ROW_MACS = int((DENSE_LAYOUT[:, 0] * DENSE_LAYOUT[:, 1]).sum())   # per row, all Dense layers
ROW_LOOP_COST = sum(int(n_out) * ACTIVATION_COST[code]
                    for n_out, code in DENSE_LAYOUT[:, [1, 4]] if code >= 0)


def dense_parts(batch_size):
    """Into how many parts _epoch_split splits each batch of a Dense-only model: 1 (the
    serial _epoch) unless the batch's work is worth a split (see DENSE_SPLIT_MACS)."""
    if (not SPLIT_EPOCH or batch_size * ROW_MACS < DENSE_SPLIT_MACS
            or ROW_LOOP_COST < DENSE_SPLIT_SHARE * ROW_MACS):
        return 1
    return max(1, min(batch_parts(batch_size), batch_size // DENSE_PART_ROWS))


def epoch_compiled(batch_size):
    """Whether the epoch function that batches of this size run is compiled (or loaded)."""
    split = not SPLITS_BATCHES and dense_parts(batch_size) > 1
    return bool((_epoch_split if split else _epoch).overloads)


def _permutation(n, seed):
    """The batch order of an epoch shuffled with ``seed``: NumPy's Mersenne Twister, the
    generator (and order) Numba's np.random gives for the same seed, without compiling."""
    return np.random.RandomState(seed).permutation(n)


def _arguments(params):
    """The kernels' parameter arguments: image-layer arrays, theta and the layout."""
    return [params[name] for name in FEATURE_NAMES] + [_theta(params)[0], DENSE_LAYOUT]


def predict(X, params=None):
    """Output-layer predictions (probabilities for sigmoid/softmax outputs)."""
    return _predict_rows(_as_data(X, None, "predict")[0], _params(params))


def _predict_rows(X, params):
    dummy = np.empty((0, OUTPUT_DIM), dtype=DTYPE)
    out, _, _ = _predict(X, dummy, GEOMETRY, False, PREDICT_CHUNK, *_arguments(params))
    return out


def evaluate(X, Y, params=None):
    """(mean loss, accuracy or nan) without updating anything."""
    X, Y = _as_data(X, Y, "evaluate")
    return _evaluate_rows(X, Y, _params(params))


def _evaluate_rows(X, Y, params):
    _, loss, correct = _predict(X, Y, GEOMETRY, True, PREDICT_CHUNK, *_arguments(params))
    n = X.shape[0]
    return loss / n, (correct / n if CLASSIFICATION else float("nan"))


def loss_and_grads(X, Y, params=None):
    """Mean loss of X as one batch and the gradients, keyed like PARAM_NAMES."""
    X, Y = _as_data(X, Y, "loss_and_grads")
    return _loss_and_grads_rows(X, Y, _params(params))


def _loss_and_grads_rows(X, Y, params):
    loss, grads = _loss_and_grads(X, Y, GEOMETRY, *_arguments(params))
    out = dict(zip(FEATURE_NAMES, grads[:-1]))
    gtheta = grads[-1]
    for name, at, shape in DENSE_SLOTS:
        out[name] = gtheta[at:at + int(np.prod(shape))].reshape(shape).copy()
    return loss, {name: out[name] for name in PARAM_NAMES}
'''
