"""The training loop: validate once, then one compiled whole-epoch kernel call per epoch.

Python runs once per epoch (never per batch): it picks the batch order,
calls the generated ``_epoch`` kernel, checks the loss is finite, evaluates
the validation data and records the `History`. A loss that turns NaN or inf
stops training with `TrainingDivergedError` naming the epoch and what became
non-finite first (`symgrad.runtime.divergence`), after putting back the
weights (and optimizer state) from the end of the last good epoch.

Arguments are checked by `symgrad.codegen.checks`, the functions every
generated module also carries; the trainer then calls the module's
unchecked entry points (``_train_epoch``, ``_predict_rows``, ...) so nothing
is checked twice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cached_property

import numpy as np

from symgrad.codegen import checks
from symgrad.codegen.cache import load_source
from symgrad.codegen.checks import check_params
from symgrad.codegen.kernels import generate_module_source, kernel_sources
from symgrad.codegen.layout import is_classification
from symgrad.definition.errors import InputShapeError
from symgrad.derive.plan import NetworkPlan
from symgrad.runtime.callbacks import CallbackList, Progress
from symgrad.runtime.data import check_batch_size, check_order, labels_from_output, prepare_xy
from symgrad.runtime.divergence import TrainingDivergedError, explain_divergence
from symgrad.runtime.history import History
from symgrad.runtime.optimizers import Optimizer, get_optimizer
from symgrad.runtime.targets import as_dtype, prepare_inputs

__all__ = ["Trainer", "TrainingDivergedError", "trainer_for"]


class Trainer:
    """Generated kernels for one (plan, dtype, optimizer) plus the optimizer state."""

    def standalone_source(self) -> str:
        """The kernel module with the GEMM helpers inline (what `export` writes)."""
        return generate_module_source(self.plan, self.dtype.name, self.optimizer)

    def __init__(self, plan: NetworkPlan, dtype: str | np.dtype, optimizer: Optimizer | str | None
                 ) -> None:
        self.plan = plan
        self.dtype = as_dtype(dtype)
        self.optimizer = get_optimizer(optimizer)
        # Shared modules first (GEMM, image loops, activations, output, optimizer), then
        # the model's driver and its API module: each imports the ones before it.
        self.sources = kernel_sources(plan, self.dtype.name, self.optimizer)
        self._module = None
        self.state: dict[str, np.ndarray] | None = None
        self._state_owner: tuple[int, ...] = ()
        # The parameter arrays the last full check accepted (held, so their ids stay
        # theirs), and the buffers that hold their values: the flat Dense buffer once,
        # the other parameters each.
        self._prepared: tuple[np.ndarray, ...] = ()
        self._param_buffers: list[np.ndarray] = []
        # (live, copy) pairs of the rollback snapshot, and what they were built for.
        self._snapshot: list[tuple[np.ndarray, np.ndarray]] = []
        self._snapshot_of: tuple[object, object] = (None, None)

    @property
    def module(self):
        """The imported kernel module (written to the cache and compiled on first use)."""
        if self._module is None:
            for stem, source in self.sources:
                module = load_source(source, stem=stem)
            self._module = module   # the last one: the API module
            # Its compiled finite test and one-hot rows, for every check from now on
            # (fit tests X and every parameter at each call).
            checks.install_compiled(module)
        return self._module

    @property
    def source(self) -> str:
        """The whole generated trainer as one readable module (as `export` writes it)."""
        return self.standalone_source()

    # -- parameters ------------------------------------------------------
    def prepare_params(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Make every parameter a C-contiguous array of the kernel dtype, in place in ``params``.

        The kernels update these arrays in place, so the dict keeps the
        trained values. Raises naming the parameter on a missing name, a
        wrong shape or a NaN/inf value (the checks of the generated module).
        """
        if self._unchanged(params):
            return params
        names, shapes = self.module.PARAM_NAMES, self.module.PARAM_SHAPES
        for name, arr in check_params(params, names, shapes, self.dtype).items():
            if arr is not params[name] or not arr.flags.writeable:
                params[name] = arr.copy()   # a converted (or read-only) array: own a copy
        flat = self.module._flat_buffer(params)
        if flat is None:
            # The kernels take the Dense parameters as one flat buffer: hold them as views
            # of one (once), so that no training call has to pack and unpack them.
            for name, arr in self.module.flat_params(params).items():
                params[name] = arr
            flat = self.module._flat_buffer(params)
        owner = tuple(id(params[name]) for name in names)
        if self.state is None or owner != self._state_owner:
            # New parameter arrays (set_params, assignment, dtype change): fresh optimizer state.
            self.state = self.module.init_state(params)
            self._state_owner = owner
        self._prepared = tuple(params[name] for name in names)
        dense = {name for name, _, _ in self.module.DENSE_SLOTS}
        self._param_buffers = [flat] + [params[name] for name in names if name not in dense]
        return params

    def _unchanged(self, params: dict[str, np.ndarray]) -> bool:
        """True if ``params`` are the arrays the last call prepared, all finite.

        Then nothing needs converting and the checks above can only pass: the same array
        objects (held since, so an id cannot name a new one), the Dense ones views of
        the flat buffer they were views of then (a view's base never changes), tested
        for NaN/inf once through it. Their shape, strides and writeable flag can be
        set in place, so those are compared. Anything else takes the full path, whose
        errors name the parameter.
        """
        if self.state is None or not isinstance(params, dict):
            return False
        try:
            if not all(params[name] is arr for name, arr in
                       zip(self.module.PARAM_NAMES, self._prepared, strict=True)):
                return False
        except (KeyError, ValueError):   # a name gone, or nothing prepared yet
            return False
        for arr, (shape, strides) in zip(self._prepared, self._layouts, strict=True):
            if arr.dtype != self.dtype or arr.shape != shape or arr.strides != strides \
                    or not arr.flags.writeable:
                return False
        return all(map(checks.all_finite, self._param_buffers))

    @cached_property
    def _layouts(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """Each parameter's shape and C-order strides in the kernel dtype (NumPy's own for
        a new array: the canonical ones `c_array` gives)."""
        return [(tuple(shape), np.empty(shape, self.dtype).strides)
                for shape in self.module.PARAM_SHAPES]

    def reset_state(self) -> None:
        self.state = None

    # -- passes ----------------------------------------------------------
    def predict_proba(self, params: dict[str, np.ndarray], X: object) -> np.ndarray:
        try:
            Xa = prepare_inputs(X, self.plan.input_layout, self.dtype, self.plan.first_layer)
        except InputShapeError as err:   # named like fit:/evaluate: errors
            raise InputShapeError(f"predict: {err}") from None
        return self.module._predict_rows(Xa, self.prepare_params(params))

    def evaluate(self, params: dict[str, np.ndarray], X: object, y: object) -> dict[str, float]:
        Xa, Ya = prepare_xy(self.plan, X, y, self.dtype, "evaluate")
        loss, acc = self.module._evaluate_rows(Xa, Ya, self.prepare_params(params))
        out = {"loss": float(loss)}
        if is_classification(self.plan):
            out["accuracy"] = float(acc)
        return out

    def loss_and_grads(self, params: dict[str, np.ndarray], X: object, y: object
                       ) -> tuple[float, dict[str, np.ndarray]]:
        """Mean loss and gradients of (X, y) as one batch, by the compiled kernels."""
        Xa, Ya = prepare_xy(self.plan, X, y, self.dtype, "compiled_backward")
        return self.module._loss_and_grads_rows(Xa, Ya, self.prepare_params(params))

    def _take_snapshot(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Copy the parameters and optimizer state as they are now, to restore if the
        epoch diverges; returns the (live array, copy) pairs.

        Into buffers kept from call to call (a fresh copy of a medium float64 MLP with
        Adam, 5.6 MB, cost 1.4 ms per epoch, mostly page faults, against 0.16 ms), one
        per buffer that holds values: the flat Dense buffer once, not each of its views,
        and likewise the optimizer state's rows (the tiny CNN with Adam: 9 copies, not 13).
        Rebuilt when `prepare_params` accepted other arrays or made a new state.
        """
        prepared, state = self._snapshot_of
        if prepared is not self._prepared or state is not self.state:
            live = {id(a): a for a in self._param_buffers}
            rows, packed = self.module._states(self.state)   # the Dense state's rows
            for value in self.state.values():
                held = rows if not packed and value.base is rows else value
                live.setdefault(id(held), held)
            self._snapshot = [(a, np.empty_like(a)) for a in live.values()]
            self._snapshot_of = (self._prepared, self.state)
        for value, copy in self._snapshot:
            np.copyto(copy, value)
        return self._snapshot

    def _restore(self, snapshot: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Put the snapshot's values back into the live arrays (after a diverged epoch)."""
        for value, copy in snapshot:
            value[...] = copy

    # -- training --------------------------------------------------------
    def fit(self, params: dict[str, np.ndarray], X: object, y: object, *, epochs: int = 1,
            batch_size: int = 32, shuffle: bool = True, seed: int | None = None,
            validation_data: tuple[object, object] | None = None, verbose: int = 0,
            order: object = None, callbacks: CallbackList | None = None) -> History:
        """Train ``params`` in place; see `symgrad.model.Model.fit`."""
        # Every check happens here, before the first kernel call.
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
        Xa, Ya = prepare_xy(self.plan, X, y, self.dtype, "fit")
        n = Xa.shape[0]
        bs = check_batch_size(batch_size, n)
        orders = check_order(order, n, int(epochs))
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            Xv, Yv = prepare_xy(self.plan, *validation_data, self.dtype, "validation_data")
        if seed is None:
            # Fresh OS entropy only when a shuffle needs it (it costs ~50 us per fit call).
            seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1) if (
                shuffle and orders is None) else 0
        elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        params = self.prepare_params(params)
        mod = self.module
        hyper = self.optimizer.hyper_array()
        classify = is_classification(self.plan)
        history = History()
        hooks = callbacks if callbacks is not None else CallbackList()
        names = ["loss"] + ["accuracy"] * classify
        names += [f"val_{m}" for m in names] if validation_data is not None else []
        hooks.on_train_begin(names)   # a monitor that will never be logged fails here
        progress = Progress(verbose, int(epochs))
        empty = np.empty(0, dtype=np.int64)
        # Numba compiles (or loads from its cache) on the first call: say so in the log.
        compiles_first = not mod.epoch_compiled(bs)   # (.signatures costs ~10 us a call)
        for epoch in range(int(epochs)):
            if epoch:   # a callback may have assigned or changed parameters: check again
                params = self.prepare_params(params)
            snapshot = self._take_snapshot()
            start = time.perf_counter()
            if orders is not None:
                ep_order, ep_seed = orders[min(epoch, orders.shape[0] - 1)], -1
            else:
                ep_order = empty
                ep_seed = (int(seed) * 1_000_003 + epoch) % (2**31 - 1) if shuffle else -1
            loss, acc = mod._train_epoch(Xa, Ya, bs, hyper, ep_order, ep_seed, params,
                                         self.state)
            elapsed = time.perf_counter() - start
            # the buffers prepare_params found for these arrays: the flat one for all Dense
            finite = np.isfinite(loss) and all(map(checks.all_finite, self._param_buffers))
            if not finite:
                self._restore(snapshot)   # the values from before this epoch, replayed:
                cause = explain_divergence(mod, self.plan, self.optimizer, params, self.state,
                                           Xa, Ya, bs, hyper, ep_order, ep_seed)
                if cause is None:   # the replay stayed finite: only the generic advice is left
                    cause = f"try a smaller learning rate (now {self.optimizer!r})"
                message = (
                    f"training diverged in epoch {epoch + 1}/{epochs}: the loss became {loss}. "
                    f"First non-finite value: {cause}. The weights from the end of epoch "
                    f"{epoch} were restored")
                history.record_stop(message, early=True)   # the History says why it stopped
                progress.close()                           # no half-drawn bar left behind
                raise TrainingDivergedError(message, epoch + 1, history)
            metrics = {"loss": loss}
            if classify:
                metrics["accuracy"] = acc
            if validation_data is not None:
                v_loss, v_acc = mod._evaluate_rows(Xv, Yv, params)
                metrics["val_loss"] = v_loss
                if classify:
                    metrics["val_accuracy"] = v_acc
            history.append(**metrics)
            progress.update(epoch + 1, metrics, elapsed, epoch == 0 and compiles_first)
            reason = hooks.on_epoch_end(epoch + 1, metrics)
            if reason:
                history.record_stop(reason, early=True)
                break
        else:
            history.record_stop(f"completed {int(epochs)} of {int(epochs)} epochs")
        progress.close()
        hooks.on_train_end(history)
        return history


def trainer_for(model) -> Trainer:
    """The model's trainer for its current plan, dtype and optimizer (built once, reused)."""
    opt = get_optimizer(model.optimizer)
    if not isinstance(model.optimizer, Optimizer):
        model.optimizer = opt   # a name or None resolved once, so its state persists
    # model.dtype as it is: np.dtype(...).name cost 2-3 us a call, and fit runs this each time
    key = (id(model.plan), model.dtype, opt.key, id(opt))
    cached = getattr(model, "_trainer", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    trainer = Trainer(model.plan, model.dtype, opt)
    model._trainer = (key, trainer)
    return trainer


def predict_labels(model, X: object) -> np.ndarray:
    """Class labels for classification models, raw predictions otherwise."""
    trainer = trainer_for(model)
    P = trainer.predict_proba(model.params, X)
    return labels_from_output(model.plan, P) if is_classification(model.plan) else P


def set_params(model, values: Mapping[str, np.ndarray]) -> None:
    """Replace the model's parameters by copies of ``values`` (names and shapes must match)."""
    names = list(model.plan.param_names)
    missing = [n for n in names if n not in values]
    extra = sorted(set(values) - set(names))
    if missing or extra:
        raise KeyError(f"set_params: missing {missing}, unexpected {extra}")
    new = {}
    for name in names:
        arr = np.asarray(values[name])
        if arr.shape != model.params[name].shape:
            raise ValueError(f"set_params: parameter {name} has shape {arr.shape}, "
                             f"the model expects {model.params[name].shape}")
        new[name] = np.ascontiguousarray(arr, dtype=model.dtype).copy()
    for name in names:   # the same mapping, every entry replaced (each one checked)
        model.params[name] = new[name]
