"""`symgrad.compile`: derive, simplify and prove a network once; the `Model` it returns.

>>> import symgrad as sg
>>> net = sg.Sequential(sg.Dense(2, 4), sg.Tanh(), sg.Dense(4, 1), sg.Sigmoid())
>>> model = sg.compile(net, loss="bce")
>>> list(model.params)
['dense0.W', 'dense0.b', 'dense1.W', 'dense1.b']
>>> model.plan.output.delta
p - y
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from functools import cached_property

import numpy as np
import sympy as sp

from symgrad.definition.errors import DefinitionError
from symgrad.definition.layer_kinds import FeatureLayer
from symgrad.definition.layers import Dense, Sequential, layer_names
from symgrad.definition.losses import LossEntry, resolve_loss
from symgrad.derive.plan import NetworkPlan
from symgrad.runtime.reference import ReferenceEvaluator
from symgrad.runtime.targets import as_dtype, prepare_inputs, prepare_targets
from symgrad.runtime.weights_io import check_finite_param
from symgrad.simplify.network import derive_network


def init_params(net: Sequential, seed: int = 0, init: str | None = None,
                dtype: str | np.dtype = "float64") -> OrderedDict[str, np.ndarray]:
    """Seeded initial parameters: weights by each layer's init (or ``init`` for all), b = 0.

    Image layers come first (``conv0.W`` of shape (out_ch, in_ch, kh, kw)), then the
    Dense layers; fan-in and fan-out of a convolution count the kernel window.
    """
    rng = np.random.default_rng(seed)
    dt = as_dtype(dtype)
    params: OrderedDict[str, np.ndarray] = OrderedDict()
    names = layer_names(net.layers)
    shapes = iter(net.feature_shapes)
    for name, layer in zip(names, net.layers, strict=True):
        if isinstance(layer, Dense):
            shape = {"W": (layer.in_dim, layer.out_dim)}
            if layer.bias:
                shape["b"] = (layer.out_dim,)
            fan_in, fan_out = layer.in_dim, layer.out_dim
        elif isinstance(layer, FeatureLayer):
            in_shape, _ = next(shapes)
            shape = layer.param_shapes(in_shape)
            if not shape:
                continue
            window = int(np.prod(shape["W"][2:]))
            fan_in, fan_out = shape["W"][1] * window, shape["W"][0] * window
        else:
            continue
        how = init or layer.init
        if how not in ("he", "xavier", "uniform"):
            raise DefinitionError(f"{name}: init must be 'he', 'xavier' or 'uniform', "
                                  f"got {how!r}")
        try:
            if how == "he":
                W = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape["W"])
            elif how == "xavier":
                W = rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), shape["W"])
            else:
                bound = 1.0 / np.sqrt(fan_in)
                W = rng.uniform(-bound, bound, shape["W"])
            params[f"{name}.W"] = np.ascontiguousarray(W, dtype=dt)
            if "b" in shape:
                params[f"{name}.b"] = np.zeros(shape["b"], dtype=dt)
        except (ValueError, MemoryError) as err:   # e.g. Dense(10**20, 4)
            count = int(np.prod([int(d) for d in shape["W"]], dtype=object))
            raise DefinitionError(f"{name}: its weights of shape {shape['W']} ({count:.3g} "
                                  f"values) cannot be allocated: {err}") from None
    return params


class Parameters(OrderedDict):
    """A model's parameters by name; an array assigned to a name must be one of the
    model's parameters, of its shape, of numbers, and finite in the model's dtype.

    ``model.params["dense0.W"] = W`` with a NaN or inf in ``W`` (also 1e300 in a float32
    model), a wrong shape, strings, or a name the network does not have raises
    ``ValueError`` naming the parameter (as `fit` refuses NaN data), before anything is
    replaced; a parameter cannot be deleted (``save`` would write a file ``load``
    refuses). Writes into an array in place (``model.params["dense0.W"][0, 0] = nan``)
    are not seen here.
    """

    def __init__(self, values: Mapping[str, np.ndarray], shapes: Mapping[str, tuple],
                 dtype: object = "float64") -> None:
        self.shapes, self.dtype = dict(shapes), np.dtype(dtype)
        missing = [name for name in self.shapes if name not in values]
        if missing:
            raise ValueError(f"params: parameter {missing[0]!r} is missing; the network's "
                             f"parameters are {list(self.shapes)}")
        super().__init__()
        for name, value in values.items():
            self._check(name, value)
        super().update(values)

    def _check(self, name: str, value: np.ndarray) -> None:
        if name not in self.shapes:
            raise ValueError(f"params: {name!r} is not a parameter of this network; its "
                             f"parameters are {list(self.shapes)}")
        if np.shape(value) != tuple(self.shapes[name]):
            raise ValueError(f"params: {name!r} must have shape {tuple(self.shapes[name])}, "
                             f"got {np.shape(value)}")
        kind = np.asarray(value).dtype.kind
        if kind not in "iuf":
            raise ValueError(f"params: {name!r} must hold real numbers, got an array of dtype "
                             f"{np.asarray(value).dtype}")
        _check_finite_values({name: value}, self.dtype, "params: ")

    def __setitem__(self, name: str, value: np.ndarray) -> None:
        self._check(name, value)
        super().__setitem__(name, value)

    def _refuse_removal(self, *args: object) -> None:
        raise ValueError("params: a parameter cannot be removed (the network needs every one; "
                         "save would write a file load refuses); assign a new array of the "
                         "same shape instead")

    __delitem__ = pop = popitem = clear = _refuse_removal

    def __reduce__(self):
        # Pickled with its shapes (OrderedDict's own reduce would call Parameters()).
        return (Parameters, (OrderedDict(self), self.shapes, self.dtype))


def _check_finite_values(values: Mapping[str, object], dtype: np.dtype, where: str) -> None:
    """Refuse NaN/inf in ``values``, also once cast to ``dtype`` (1e300 is inf in float32)."""
    for name, value in values.items():
        arr = np.asarray(value)
        check_finite_param(name, arr, where)
        if arr.dtype.kind in "iuf":
            with np.errstate(over="ignore"):
                cast = arr.astype(dtype)
            if not np.isfinite(cast).all():
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(cast))[0])
                raise ValueError(f"{where}parameter {name} holds {arr[bad]:g} at index {bad}, "
                                 f"which overflows the model's {dtype} (largest "
                                 f"{np.finfo(dtype).max:.4g}); weights must be finite")


class Model:
    """A compiled network: its plan, parameters and the NumPy reference passes."""

    def __init__(self, net: Sequential, plan: NetworkPlan, loss: LossEntry,
                 params: OrderedDict[str, np.ndarray], dtype: np.dtype, seed: int,
                 optimizer: object = None) -> None:
        self.net, self.plan, self.loss_entry = net, plan, loss
        self.dtype, self.seed, self.optimizer = dtype, seed, optimizer
        self._param_shapes = {name: np.shape(value) for name, value in params.items()}
        self.params = params   # after dtype and shapes: the setter checks the values in it
        self.reference = ReferenceEvaluator(plan)

    def __repr__(self) -> str:
        return f"Model({self.net!r}, loss={self.loss_entry.name!r}, dtype={self.dtype.name})"

    def _repr_html_(self) -> str:
        # Jupyter: layers, loss, optimizer, parameter shapes and derived gradients.
        from symgrad.render.notebook import model_html  # render is a later stage

        return model_html(self)

    @property
    def gradients(self) -> dict[str, sp.Expr]:
        """Parameter name -> derived backward formula (matrix form)."""
        return self.plan.gradients

    @cached_property
    def derivation(self):
        """The step-by-step derivation document (built on first access).

        It prints this model's optimizer's update rule and ends with each equation
        beside the line of `source` that implements it (the kernel's source text is
        generated for that, nothing is compiled).
        """
        # Later stages, imported here only: render and codegen never import each other.
        from symgrad.codegen.kernels import generate_module_source
        from symgrad.render.network import network_derivation
        from symgrad.runtime.optimizers import get_optimizer

        optimizer = get_optimizer(self.optimizer)
        source = generate_module_source(self.plan, self.dtype.name, optimizer)
        return network_derivation(self.plan, optimizer=optimizer, source=source)

    def _params(self, params: Mapping[str, np.ndarray] | None) -> Mapping[str, np.ndarray]:
        if params is None:
            return self.params
        missing = [n for n in self.plan.param_names if n not in params]
        if missing:
            raise KeyError(f"params lack {missing}")
        return params

    def _xy(self, X: object, y: object) -> tuple[np.ndarray, np.ndarray]:
        Xa = prepare_inputs(X, self.plan.input_layout, self.dtype, self.plan.first_layer)
        Ya = prepare_targets(y, self.plan.output_dim, self.plan.output.reduction, Xa.shape[0],
                             self.dtype)
        return Xa, Ya

    def forward(self, X: object, params: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Predictions P of shape (n, output_dim) by the NumPy reference."""
        Xa = prepare_inputs(X, self.plan.input_layout, self.dtype, self.plan.first_layer)
        return self.reference.forward(self._params(params), Xa)["P"]

    def loss(self, X: object, y: object, params: Mapping[str, np.ndarray] | None = None
             ) -> float:
        """Mean loss of (X, y), from the logits in the plan's stable form."""
        Xa, Ya = self._xy(X, y)
        return self.reference.loss(self._params(params), Xa, Ya)

    def backward(self, X: object, y: object, params: Mapping[str, np.ndarray] | None = None
                 ) -> tuple[float, dict[str, np.ndarray]]:
        """(loss, gradients keyed like ``params``) by the derived backward pass."""
        Xa, Ya = self._xy(X, y)
        return self.reference.backward(self._params(params), Xa, Ya)

    def check(self, **kwargs):
        """Prove every identity of the plan and check gradients numerically (see sg.check)."""
        from symgrad.prove.check import check

        return check(self, **kwargs)

    # --- training methods (runtime) ---
    def fit(self, X: object, y: object, epochs: int = 1, batch_size: int = 32,
            shuffle: bool = True, seed: int | None = None, validation_data=None,
            verbose: int = 0, order: object = None, callbacks: object = None):
        """Train in place with the compiled whole-epoch kernel; returns a `History`.

        ``order``: a fixed batch order (a permutation of the rows, or one per epoch).
        ``verbose``: 0 quiet, 1 a progress bar over epochs (on a terminal), 2 a line per epoch.
        ``callbacks``: `EarlyStopping`, `ModelCheckpoint` or plain ``hook(epoch, logs)``
        functions, called after every epoch (see `symgrad.runtime.callbacks`).
        """
        from symgrad.runtime.callbacks import CallbackList
        from symgrad.runtime.training import trainer_for

        return trainer_for(self).fit(self.params, X, y, epochs=epochs, batch_size=batch_size,
                                     shuffle=shuffle, seed=seed, verbose=verbose,
                                     validation_data=validation_data, order=order,
                                     callbacks=CallbackList(callbacks, self))

    def predict_proba(self, X: object) -> np.ndarray:
        """Output-layer predictions (probabilities for sigmoid/softmax) by the kernels."""
        from symgrad.runtime.training import trainer_for

        return trainer_for(self).predict_proba(self.params, X)

    def predict(self, X: object) -> np.ndarray:
        """Class labels for classification losses, raw outputs otherwise."""
        from symgrad.runtime.training import predict_labels

        return predict_labels(self, X)

    def evaluate(self, X: object, y: object) -> dict[str, float]:
        """{"loss": ..., "accuracy": ...} (accuracy for classification losses)."""
        from symgrad.runtime.training import trainer_for

        return trainer_for(self).evaluate(self.params, X, y)

    def compiled_backward(self, X: object, y: object) -> tuple[float, dict[str, np.ndarray]]:
        """(loss, gradients) of (X, y) as one batch by the compiled kernels (cf. `backward`)."""
        from symgrad.runtime.training import trainer_for

        return trainer_for(self).loss_and_grads(self.params, X, y)

    @property
    def source(self) -> str:
        """The generated kernel module source (readable Python)."""
        from symgrad.runtime.training import trainer_for

        return trainer_for(self).source

    def export(self, path: str) -> str:
        """Write a standalone trainer module (numpy + numba only); see its usage note."""
        from symgrad.codegen.export import export_source
        from symgrad.runtime.training import trainer_for

        trainer = trainer_for(self)
        return export_source(trainer.standalone_source(), path,
                             tuple(trainer.optimizer.hyper_array()))

    @property
    def params(self) -> Parameters:
        """Parameter name -> array (trained in place); assigned arrays must be finite."""
        return self._param_store

    @params.setter
    def params(self, values: Mapping[str, np.ndarray]) -> None:
        self._param_store = Parameters(values, self._param_shapes, self.dtype)

    def to_onnx(self, path: str, dtype: str | None = None) -> str:
        """Write the network and its current weights as an ONNX model (needs ``onnx``).

        ``dtype`` ("float32" or "float64"; default the model's): the file's input,
        weights and output type. onnxruntime's CPU provider has no float64 Conv,
        pooling or Erf: export a float64 CNN with ``dtype="float32"`` to run it there.
        """
        from symgrad.codegen.onnx_export import to_onnx

        return to_onnx(self, path, dtype)

    def set_params(self, values: Mapping[str, np.ndarray]) -> None:
        """Replace the parameters by copies of ``values`` (same names and shapes, finite)."""
        from symgrad.runtime.training import set_params

        if isinstance(values, Mapping):   # before any parameter is replaced
            _check_finite_values(values, self.dtype, "set_params: ")
        set_params(self, values)

    def save(self, path: str) -> None:
        """Save the parameters to an .npz file atomically."""
        from symgrad.runtime.weights_io import save_weights

        save_weights(path, self.params)

    def load(self, path: str) -> None:
        """Load parameters saved by `save`; refuses pickles, wrong names and shapes."""
        from symgrad.runtime.weights_io import load_weights

        shapes = {name: arr.shape for name, arr in self.params.items()}
        self.set_params(load_weights(path, shapes, self.dtype))


def compile(net: Sequential, loss: str | LossEntry = "mse", optimizer: object = None,
            dtype: str = "float64", seed: int = 0, init: str | None = None,
            symbolic_budget: float | None = None) -> Model:
    """Derive, simplify and record the proofs of ``net`` + ``loss``; returns a `Model`.

    ``loss`` is a registry name ("mse", "mae", "bce", "cross_entropy", "huber") or a
    loss entry from `symgrad.loss`. ``symbolic_budget``: CPU seconds of SymPy work per
    entry (each distinct activation, the output + loss; default $SYMGRAD_SYMBOLIC_BUDGET
    or 4); past it the unsimplified derivative is used and ``model.plan.notes`` (and the
    derivation) say so. Bad input raises before any symbolic work.
    """
    from symgrad.runtime.optimizers import get_optimizer
    from symgrad.simplify.zero import symbolic_budget as budget_seconds

    if not isinstance(net, Sequential):
        raise TypeError(f"compile expects a symgrad Sequential, got {type(net).__name__}")
    entry = resolve_loss(loss)
    dt = as_dtype(dtype)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more (it seeds NumPy's generator), got {seed}")
    get_optimizer(optimizer)   # a typo fails here, not at fit after the derivation
    seconds = budget_seconds(symbolic_budget)
    params = init_params(net, int(seed), init, dt)
    plan = derive_network(net, entry, seconds)
    return Model(net, plan, entry, params, dt, int(seed), optimizer)
