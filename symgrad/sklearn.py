"""scikit-learn estimators: `SymgradClassifier` and `SymgradRegressor`.

A multilayer perceptron whose gradients SymPy derived and Numba compiled, in
scikit-learn's clothes: it works in `Pipeline`, `GridSearchCV`,
`cross_val_score`, survives `clone` and `pickle`, and passes scikit-learn's
estimator checks. The derivation is one attribute away: ``est.model_.derivation``.

>>> import numpy as np
>>> from symgrad.sklearn import SymgradClassifier
>>> X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 8)
>>> y = np.array(["no", "yes", "yes", "no"] * 8)       # XOR
>>> clf = SymgradClassifier(hidden_layer_sizes=(8,), activation="tanh", learning_rate=0.05,
...                         epochs=300, batch_size=8, random_state=0).fit(X, y)
>>> clf.predict([[0.0, 1.0], [1.0, 1.0]]).tolist(), clf.score(X, y)
(['yes', 'no'], 1.0)

Kernels are cached per architecture (layer sizes, activations, loss, dtype):
every fit of the same shape in a process reuses one derivation and one compiled
module, and a new process loads them from the on-disk caches. Pickling stores
the hyperparameters and the trained weights, never compiled code; unpickling
rebuilds the model and its kernels come from the disk cache on first use.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from symgrad.definition.activations import REGISTRY, ActivationEntry, ActivationLayer, activation
from symgrad.definition.layers import Dense, Sequential
from symgrad.definition.losses import LossEntry, resolve_loss
from symgrad.derive.plan import NetworkPlan
from symgrad.model import Model, init_params
from symgrad.runtime.optimizers import Optimizer, get_optimizer
from symgrad.runtime.targets import as_dtype
from symgrad.simplify.network import derive_network

__all__ = ["SymgradClassifier", "SymgradRegressor"]

# (layer sizes, activation keys, loss) -> derived plan. A grid search fits the same
# architecture hundreds of times: derive it once per process (kernels follow the plan).
_PLANS: dict[tuple, NetworkPlan] = {}


def _activation_layer(spec: object, what: str) -> ActivationLayer:
    """A registered name, an activation layer class or instance -> a layer instance."""
    if isinstance(spec, str):
        if spec not in REGISTRY:
            raise ValueError(f"{what}={spec!r} is not a registered activation; "
                             f"registered: {sorted(REGISTRY)}")
        layer = REGISTRY[spec]()
    elif isinstance(spec, type) and issubclass(spec, ActivationLayer):
        layer = spec()
    elif isinstance(spec, ActivationLayer):
        layer = spec
    else:
        raise ValueError(f"{what} must be an activation name, class or layer, got {spec!r}")
    if layer.entry.kind != "elementwise":
        raise ValueError(f"{what}={spec!r}: {layer.entry.name} is only valid as an output layer")
    return layer


def _hidden_sizes(sizes: object) -> tuple[int, ...]:
    if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, bool):
        sizes = (sizes,)
    try:
        out = tuple(sizes)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"hidden_layer_sizes must be a tuple of positive ints, got {sizes!r}"
                         ) from None
    for size in out:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"hidden_layer_sizes must hold positive ints, got {sizes!r}")
    return tuple(int(s) for s in out)


def _build_model(n_in: int, hidden: Sequence[int], hidden_act: ActivationLayer, n_out: int,
                 head: ActivationLayer, loss: LossEntry, dtype: np.dtype, seed: int,
                 optimizer: Optimizer) -> Model:
    """A `Model` for this architecture, reusing the process's plan when it has one."""
    layers: list = []
    sizes = [n_in, *hidden, n_out]
    for i in range(len(sizes) - 1):
        layers.append(Dense(sizes[i], sizes[i + 1]))
        layers.append(copy.copy(hidden_act) if i < len(sizes) - 2 else head)
    net = Sequential(*layers)
    key = (tuple(sizes), hidden_act.key, head.key, loss.name, loss.formula, loss.latex,
           tuple(sorted(loss.params.items())))
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = derive_network(net, loss)
    params = init_params(net, seed, None, dtype)
    return Model(net, plan, loss, params, dtype, seed, optimizer)


class _ActivationToken:
    """A picklable stand-in for a (possibly user-defined) activation class or layer."""

    def __init__(self, spec: type[ActivationLayer] | ActivationLayer) -> None:
        self.entry: ActivationEntry = spec.entry
        self.params = dict(spec.params) if isinstance(spec, ActivationLayer) else None

    def restore(self) -> type[ActivationLayer] | ActivationLayer:
        e = self.entry
        cls = REGISTRY.get(e.name)
        if cls is None or cls.entry != e:
            # Unknown in this process (a custom activation of the pickling process): define
            # it again from its formula, the same way the user did.
            cls = activation(e.name, e.formula, e.latex, stable=e.stable, kind=e.kind,
                             **dict(e.defaults))
        return cls if self.params is None else cls(**self.params)


_NETWORK_PARAMS = ("hidden_layer_sizes", "activation", "loss", "dtype")


def _tokenized(act: object) -> object:
    if isinstance(act, ActivationLayer) or (isinstance(act, type)
                                             and issubclass(act, ActivationLayer)):
        return _ActivationToken(act)
    return act


def _restored(act: object) -> object:
    return act.restore() if isinstance(act, _ActivationToken) else act


class _SymgradEstimator(BaseEstimator):
    """Shared parameters, fit loop and pickling of the two estimators.

    ``learning_rate`` is the step size of an optimizer given by name (``"adam"``,
    ``"sgd"``, ...); an `Optimizer` instance keeps its own ``lr`` and ``learning_rate``
    is not used (search over the instance's ``lr`` instead).
    """

    def __init__(self, hidden_layer_sizes: Sequence[int] = (32,), activation: object = "relu",
                 loss: str | LossEntry = "auto", optimizer: str | Optimizer = "adam",
                 learning_rate: float = 0.01, batch_size: int = 32, epochs: int = 100,
                 shuffle: bool = True, dtype: str = "float64", random_state: object = None,
                 verbose: int = 0) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # -- hooks the subclasses fill in -------------------------------------------------
    def _head(self, n_out: int) -> tuple[ActivationLayer, LossEntry]:
        raise NotImplementedError

    def _optimizer(self) -> Optimizer:
        if isinstance(self.optimizer, Optimizer):
            return copy.deepcopy(self.optimizer)   # never share state between estimators
        if not isinstance(self.optimizer, str):
            raise ValueError(f"optimizer must be a name or a symgrad Optimizer, "
                             f"got {self.optimizer!r}")
        cls = type(get_optimizer(self.optimizer))
        return cls(lr=self.learning_rate)

    def _new_model(self, n_in: int, n_out: int, seed: int) -> Model:
        head, loss = self._head(n_out)
        return _build_model(n_in, _hidden_sizes(self.hidden_layer_sizes),
                            _activation_layer(self.activation, "activation"), n_out, head, loss,
                            as_dtype(self.dtype), seed, self._optimizer())

    def _train(self, X: np.ndarray, Y: np.ndarray, n_out: int) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        rng = check_random_state(self.random_state)
        init_seed, fit_seed = (int(s) for s in rng.randint(0, 2**31 - 1, size=2))
        self.model_ = self._new_model(X.shape[1], n_out, init_seed)
        # What the network was built from: set_params after fit must not change what a
        # pickle (or deepcopy) of the fitted estimator rebuilds.
        self.fit_config_ = {k: getattr(self, k) for k in _NETWORK_PARAMS}
        self.history_ = self.model_.fit(X, Y, epochs=int(self.epochs),
                                        batch_size=int(self.batch_size),
                                        shuffle=bool(self.shuffle), seed=fit_seed,
                                        verbose=self.verbose)
        self.n_iter_ = len(self.history_.epochs)
        self.loss_ = self.history_.history["loss"][-1] if self.n_iter_ else float("nan")

    def _outputs(self, X: object) -> np.ndarray:
        check_is_fitted(self, "model_")
        Xa = validate_data(self, X, reset=False, dtype=np.dtype(self.model_.dtype))
        return self.model_.predict_proba(Xa)

    def _n_outputs(self) -> int:
        raise NotImplementedError

    # -- pickling: hyperparameters + weights, never compiled code ------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state["activation"] = _tokenized(state.get("activation"))
        if "fit_config_" in state:
            config = dict(state["fit_config_"])
            config["activation"] = _tokenized(config["activation"])
            state["fit_config_"] = config
        model = state.pop("model_", None)
        if model is not None:
            state["_weights"] = {k: np.array(v) for k, v in model.params.items()}
            state["_seed"] = model.seed
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state["activation"] = _restored(state.get("activation"))
        if "fit_config_" in state:
            config = dict(state["fit_config_"])
            config["activation"] = _restored(config["activation"])
            state["fit_config_"] = config
        weights = state.pop("_weights", None)
        seed = state.pop("_seed", 0)
        super().__setstate__(state)
        if weights is not None:
            # Built as it was fitted, whatever set_params changed since.
            fitted = copy.copy(self)
            for name, value in getattr(self, "fit_config_", {}).items():
                setattr(fitted, name, value)
            self.model_ = fitted._new_model(self.n_features_in_, fitted._n_outputs(), seed)
            self.model_.set_params(weights)


class SymgradClassifier(ClassifierMixin, _SymgradEstimator):
    """A multilayer perceptron classifier trained by symgrad's derived, compiled kernels.

    Two classes: one sigmoid output with binary cross-entropy (``loss="auto"`` or
    ``"bce"``). More: a softmax output with cross-entropy (``"auto"`` or
    ``"cross_entropy"``), or one sigmoid per class with ``"bce"`` (`predict_proba`
    normalises the k one-vs-rest sigmoids so that rows sum to 1). ``activation`` is
    the hidden layers' activation: any registered name (``"relu"``, ``"gelu"``, ...),
    an activation class made with `symgrad.activation`, or a layer such as
    ``LeakyReLU(0.2)``.
    """

    def _head(self, n_out: int) -> tuple[ActivationLayer, LossEntry]:
        loss = self.loss
        if loss not in ("auto", "bce", "cross_entropy"):
            raise ValueError(f"SymgradClassifier: loss must be 'auto', 'bce' or 'cross_entropy', "
                             f"got {loss!r}")
        if loss == "cross_entropy" or (loss == "auto" and n_out > 1):
            return REGISTRY["softmax"](), resolve_loss("cross_entropy")
        return REGISTRY["sigmoid"](), resolve_loss("bce")

    def _n_outputs(self) -> int:
        k = len(self.classes_)
        return 1 if k == 2 and self.loss in ("auto", "bce") else (2 if k == 2 else k)

    def fit(self, X: object, y: object) -> SymgradClassifier:
        """Train on (X, y): y holds class labels of any type (ints, strings, ...)."""
        X, y = validate_data(self, X, y, dtype=as_dtype(self.dtype))
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"SymgradClassifier needs at least 2 classes in y; got only one "
                             f"class: {self.classes_[0]!r}")
        n_out = self._n_outputs()
        if n_out == 1:
            Y = codes.astype(X.dtype)
        else:
            Y = np.eye(n_out, dtype=X.dtype)[codes]   # one-hot: valid for softmax and sigmoids
        self._train(X, Y, n_out)
        return self

    def predict_proba(self, X: object) -> np.ndarray:
        """Class probabilities, one column per entry of ``classes_``."""
        P = self._outputs(X)
        if P.shape[1] == 1:
            return np.column_stack([1.0 - P[:, 0], P[:, 0]])
        if self.model_.plan.output.kind != "softmax":
            # One sigmoid per class ("bce"): one-vs-rest scores, normalised so that each
            # row sums to 1 as a probability must (rows where all underflow: uniform).
            total = P.sum(axis=1, keepdims=True)
            return np.divide(P, total, out=np.full_like(P, 1.0 / P.shape[1]),
                             where=total > 0)
        return P

    def predict(self, X: object) -> np.ndarray:
        """The most probable class of each row (labels as given to fit)."""
        P = self.predict_proba(X)   # first: it raises NotFittedError before classes_ exists
        return self.classes_[np.argmax(P, axis=1)]


class SymgradRegressor(RegressorMixin, _SymgradEstimator):
    """A multilayer perceptron regressor (identity output) trained by symgrad's kernels.

    ``loss`` is any registered elementwise loss (``"mse"`` by default for
    ``"auto"``, ``"mae"``, ``"huber"``, or your own from `symgrad.loss`); y may have
    several columns (one output each).
    """

    def _head(self, n_out: int) -> tuple[ActivationLayer, LossEntry]:
        entry = resolve_loss("mse" if self.loss == "auto" else self.loss)
        if entry.reduction != "elements" or entry.requires_softmax:
            raise ValueError(f"SymgradRegressor: loss {entry.name!r} is a classification loss; "
                             "use an elementwise loss such as 'mse', 'mae' or 'huber'")
        return REGISTRY["identity"](), entry

    def _n_outputs(self) -> int:
        return self.n_outputs_

    def fit(self, X: object, y: object) -> SymgradRegressor:
        """Train on (X, y); y of shape (n,) or (n, k)."""
        X, y = validate_data(self, X, y, dtype=as_dtype(self.dtype), multi_output=True,
                             y_numeric=True)
        y = np.asarray(y, dtype=X.dtype)
        self._y_1d = y.ndim == 1
        Y = y.reshape(len(y), -1)
        self.n_outputs_ = Y.shape[1]
        self._train(X, Y, self.n_outputs_)
        return self

    def predict(self, X: object) -> np.ndarray:
        """Predictions: shape (n,) if fit saw a 1-d y, else (n, k)."""
        # float64 whatever the model computes in, as scikit-learn's regressors return.
        P = self._outputs(X).astype(np.float64, copy=False)
        return P[:, 0] if self._y_1d else P

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
