"""The NumPy reference evaluator of a `NetworkPlan`: the oracle for the kernels.

Plain NumPy, no Numba. It evaluates exactly the plan's SymPy expressions,
each turned into a NumPy function by ``sympy.lambdify`` once per plan:

- forward: Z_j = A_{j-1} W_j + b_j by the Dense kind's array rule
  (`symgrad.definition.dense`), A_j = f_j(Z_j) with the activation's stable form,
  saving Z_j and A_j (the plan says which the backward reads);
- image layers first (convolutional networks): each layer kind's forward array rule
  on NCHW arrays (`symgrad.definition.layer_kinds`), then its activation, then the
  Dense head on the flattened features;
- loss from the logits in the plan's stable form (softmax: from the row's
  largest logit zmax and sumexp = sum exp(z - zmax), never through
  lse = zmax + log(sumexp), which rounds log(sumexp) away for large logits);
- backward: dZ_L = scale * delta(P, Y[, Z]); dW = A^T dZ, db = sum_rows dZ and
  dA = dZ W^T by the Dense kind's stated (and proven) rules; dZ = dA * f'(a or z);
  then back through the image layers by each kind's rules.

Heaviside and Piecewise print as ``numpy.select`` with the conditions as
written, so the kink convention (derivative of the branch whose condition
holds: ReLU'(0) = 0) is the same here as in the printout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import sympy as sp

from symgrad.definition.dense import DENSE
from symgrad.definition.formulas import A, P, Y, Z
from symgrad.definition.layer_kinds import layer_kind
from symgrad.definition.supported import LAMBDIFY_MODULES
from symgrad.derive.plan import LSE, SUMEXP, ZMAX, NetworkPlan
from symgrad.simplify.accuracy import hypot_argument


class Hypot(sp.Function):
    """hypot(u, v) = sqrt(u^2 + v^2) without forming u^2: lambdify prints it as np.hypot."""

    nargs = 2


def through_hypot(expr: sp.Expr) -> sp.Expr:
    """``expr`` with (u^2 + v^2)^(n/2) as Hypot(u, v)^n and log(u^2 + v^2) as 2 log Hypot(u, v).

    The kernels print these shapes so (`symgrad.simplify.accuracy.hypot_argument`): u^2
    overflows long before the root or the log does. The reference must evaluate the same
    function where the kernels are finite, or it is no oracle there
    (sqrt(1 + z^2) - 1 was inf at z = 1e300, where the kernels give 1e300).

    >>> z = sp.Symbol("z", real=True)
    >>> through_hypot(z / sp.sqrt(z**2 + 1)), through_hypot(sp.log(z**2 + 4))
    (z/Hypot(z, 1), 2*log(Hypot(z, 2)))
    """
    def as_hypot(e: sp.Expr) -> sp.Expr:
        if isinstance(e, sp.log):
            hyp = hypot_argument(sp.sqrt(e.args[0]))
            return e if hyp is None or hyp[2] != 1 else 2 * sp.log(Hypot(hyp[0], hyp[1]))
        hyp = hypot_argument(e)
        return e if hyp is None else Hypot(hyp[0], hyp[1]) ** hyp[2]

    return expr.replace(lambda e: isinstance(e, (sp.Pow, sp.log)), as_hypot)


def vectorise(expr: sp.Expr, args: list[sp.Symbol]) -> Callable[..., np.ndarray]:
    """``lambdify`` with results broadcast to the first argument's shape and dtype."""
    fn = sp.lambdify(args, through_hypot(expr), modules=[{"Hypot": np.hypot}, *LAMBDIFY_MODULES])

    def call(*values: np.ndarray) -> np.ndarray:
        first = values[0]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            # np.select evaluates every branch; overflow in an unselected one is harmless.
            out = fn(*values)
        return np.broadcast_to(np.asarray(out, dtype=first.dtype), first.shape)

    return call


def row_max_and_sum(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row max m and sum exp(z - m) (>= 1, no overflow), each of shape (n, 1)."""
    m = z.max(axis=1, keepdims=True)
    return m, np.exp(z - m).sum(axis=1, keepdims=True)


class ReferenceEvaluator:
    """Forward, loss and backward of one plan, with its expressions compiled once."""

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self._act: list[tuple[Callable, Callable] | None] = []
        self._feature_act: list[tuple[Callable, Callable] | None] = []
        cache: dict[int, tuple[Callable, Callable]] = {}
        for feature in plan.features:
            act = feature.activation
            if act is not None and id(act) not in cache:
                cache[id(act)] = (vectorise(act.stable_forward, [Z]),
                                  vectorise(act.kernel_derivative, [Z, A]))
            self._feature_act.append(None if act is None else cache[id(act)])
        for layer in plan.layers:
            act = layer.activation
            if act is None:
                self._act.append(None)
                continue
            if id(act) not in cache:
                cache[id(act)] = (vectorise(act.stable_forward, [Z]),
                                  vectorise(act.kernel_derivative, [Z, A]))
            self._act.append(cache[id(act)])
        out = plan.output
        self.softmax = out.kind == "softmax"
        self._pred = vectorise(out.evaluated_prediction, [Z, LSE, ZMAX, SUMEXP])
        # the loss as evaluated may read the prediction p (simplify.fusion.choose_loss)
        self._loss = vectorise(out.evaluated_loss, [Z, Y, LSE, ZMAX, SUMEXP, P])
        self._delta = vectorise(out.delta, [Z, P, Y])

    @staticmethod
    def _dense_params(params: Mapping[str, np.ndarray], layer) -> dict[str, np.ndarray]:
        return {p: params[f"{layer.name}.{p}"] for p in DENSE.params if p != "b" or layer.bias}

    def _feature_params(self, params: Mapping[str, np.ndarray], feature) -> dict:
        return {p: params[f"{feature.name}.{p}"] for p, _ in feature.param_shapes}

    def features_forward(self, params: Mapping[str, np.ndarray], X: np.ndarray
                         ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Image layers: (outputs before activation, inputs of each layer + the last output).

        X arrives flat (n, C*H*W) and is read as (n, C, H, W).
        """
        acts = [X.reshape(X.shape[0], *self.plan.input_shape)]
        zs = []
        for feature, fns in zip(self.plan.features, self._feature_act, strict=True):
            kind = layer_kind(feature.kind)
            z = kind.forward(feature.layer, acts[-1], self._feature_params(params, feature))
            z = np.asarray(z, dtype=X.dtype)
            zs.append(z)
            acts.append(z if fns is None else fns[0](z))
        return zs, acts

    def features_backward(self, params: Mapping[str, np.ndarray], cache: dict,
                          dF: np.ndarray, grads: dict[str, np.ndarray]) -> np.ndarray:
        """Back through the image layers from dF (the flattened features' gradient); dX."""
        zs, acts = cache["feature_Z"], cache["feature_A"]
        da = dF
        for j in range(len(self.plan.features) - 1, -1, -1):
            feature, fns = self.plan.features[j], self._feature_act[j]
            da = da.reshape(zs[j].shape)
            dz = da if fns is None else da * fns[1](zs[j], acts[j + 1])
            kind = layer_kind(feature.kind)
            da, layer_grads = kind.backward(feature.layer, acts[j],
                                            self._feature_params(params, feature), dz)
            for p, g in layer_grads.items():
                grads[f"{feature.name}.{p}"] = np.asarray(g, dtype=dF.dtype)
        return da

    def forward(self, params: Mapping[str, np.ndarray], X: np.ndarray) -> dict[str, list]:
        """Z_j and A_j of every layer (A_0 = X), the logits' lse (softmax) and P."""
        feature_z, feature_a = [], []
        if self.plan.features:
            feature_z, feature_a = self.features_forward(params, X)
            X = feature_a[-1].reshape(X.shape[0], -1)
        zs, acts = [], [X]
        for layer, fns in zip(self.plan.layers, self._act, strict=True):
            z = DENSE.forward(layer, acts[-1], self._dense_params(params, layer))
            zs.append(z)
            if fns is not None:
                acts.append(fns[0](z))
        z = zs[-1]
        if self.softmax:
            m, s = row_max_and_sum(z)
            row = [np.broadcast_to(v, z.shape) for v in (m + np.log(s), m, s)]
        else:
            row = [np.zeros_like(z)] * 3
        lse, zmax, sumexp = row
        return {"Z": zs, "A": acts, "lse": lse, "zmax": zmax, "sumexp": sumexp,
                "P": self._pred(z, lse, zmax, sumexp), "feature_Z": feature_z,
                "feature_A": feature_a}

    def scale(self, n: int) -> float:
        k = self.plan.output_dim
        return 1.0 / n if self.plan.output.reduction == "rows" else 1.0 / (n * k)

    def loss(self, params: Mapping[str, np.ndarray], X: np.ndarray, Yt: np.ndarray,
             cache: dict | None = None) -> float:
        """Mean loss of the batch, computed from the logits in the stable form."""
        cache = cache or self.forward(params, X)
        elems = self._loss(cache["Z"][-1], Yt, cache["lse"], cache["zmax"], cache["sumexp"],
                           cache["P"])
        return float(elems.sum(dtype=np.float64) * self.scale(X.shape[0]))

    def backward(self, params: Mapping[str, np.ndarray], X: np.ndarray, Yt: np.ndarray
                 ) -> tuple[float, dict[str, np.ndarray]]:
        """(loss, gradients keyed like params) by the plan's backward equations."""
        cache = self.forward(params, X)
        loss = self.loss(params, X, Yt, cache)
        zs, acts = cache["Z"], cache["A"]
        dz = (self._delta(zs[-1], cache["P"], Yt) * self.scale(X.shape[0])).astype(X.dtype)
        grads: dict[str, np.ndarray] = {}
        for j in range(len(self.plan.layers) - 1, -1, -1):
            layer = self.plan.layers[j]
            da, layer_grads = DENSE.backward(layer, acts[j], self._dense_params(params, layer),
                                             dz)
            for p, g in layer_grads.items():
                grads[f"{layer.name}.{p}"] = g
            if j > 0:
                derivative = self._act[j - 1][1]
                dz = da * derivative(zs[j - 1], acts[j])
            elif self.plan.features:
                self.features_backward(params, cache, da, grads)
        return loss, {name: grads[name] for name in self.plan.param_names}
