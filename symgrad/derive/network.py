"""Reverse mode over the layer graph: the backward equations of a network, as derived.

The network is image layers (convolutional networks), then a chain Dense ->
activation -> ... -> Dense -> output activation. Reverse mode walks it from the
loss back to the input:

    dZ_L = scale * delta(P, Y)                 (output fusion, Steps A-C)
    dW_j = A_{j-1}^T dZ_j,  db_j = 1^T dZ_j    (the Dense kind's rules, proven in
                                               prove.layer_rules)
    dA_{j-1} = dZ_j W_j^T
    dZ_{j-1} = dA_{j-1} o f'_{j-1}             (elementwise, in saved a or z)
    then each image layer's stated rules (proven in prove.layer_rules)

This module holds the derive-stage part: the matrix equations (`matrix_backward`),
the image layers' gradient formulas, and the plans made of SymPy's derivatives with
no simplification (the fallback when a symbolic budget runs out). The simplify
stage (`symgrad.simplify.network.derive_network`) rewrites every elementwise
derivative and assembles the `NetworkPlan`; it imports this module, never the
other way round.

>>> matrix_backward([(2, 3, True), (3, 1, True)], "elements")[0]["dense1.W"]
A1.T*dZ2
"""

from __future__ import annotations

import sympy as sp

from symgrad.definition.activations import ActivationLayer
from symgrad.definition.convention import differentiate
from symgrad.definition.formulas import P, Z
from symgrad.definition.losses import LossEntry
from symgrad.derive.elementwise import RawActivation, derive_elementwise
from symgrad.derive.plan import ActivationPlan, FeaturePlan, Identity, OutputPlan

__all__ = ["N", "ONES", "matrix_backward", "feature_gradients", "raw_activation_plan",
           "raw_output_plan", "CORRELATE", "SUM_NIJ"]

N = sp.Symbol("n", integer=True, positive=True)   # batch size
ONES = sp.MatrixSymbol("1_n", 1, N)   # row of n ones: 1_n * dZ sums dZ over the rows


def matrix_backward(dims: list[tuple[int, int, bool]], reduction: str, input_name: str = "X",
                    to_input: bool = False
                    ) -> tuple[dict[str, sp.Expr], tuple[tuple[sp.Expr, sp.Expr], ...]]:
    """Matrix-form backward equations for Dense layers ``(in, out, bias)``; 1-based names.

    ``input_name`` names the first layer's input; ``to_input`` also gives its gradient
    (the flattened features F of a convolutional network pass it on to the image layers).
    """
    L = len(dims)
    k = dims[-1][1]
    scale = 1 / N if reduction == "rows" else 1 / (N * k)
    grads: dict[str, sp.Expr] = {}
    eqs: list[tuple[sp.Expr, sp.Expr]] = []
    dZ = sp.MatrixSymbol(f"dZ{L}", N, k)
    eqs.append((dZ, scale * sp.MatrixSymbol("Delta", N, k)))
    for j in range(L, 0, -1):
        h, out, bias = dims[j - 1]
        prev = sp.MatrixSymbol(input_name if j == 1 else f"A{j - 1}", N, h)
        W = sp.MatrixSymbol(f"W{j}", h, out)
        dW = sp.MatrixSymbol(f"dW{j}", h, out)
        grads[f"dense{j - 1}.W"] = prev.T * dZ
        eqs.append((dW, prev.T * dZ))
        if bias:
            grads[f"dense{j - 1}.b"] = ONES * dZ
            eqs.append((sp.MatrixSymbol(f"db{j}", 1, out), ONES * dZ))
        if j > 1:
            dA = sp.MatrixSymbol(f"dA{j - 1}", N, h)
            eqs.append((dA, dZ * W.T))
            dZ = sp.MatrixSymbol(f"dZ{j - 1}", N, h)
            eqs.append((dZ, sp.HadamardProduct(dA, sp.MatrixSymbol(f"D{j - 1}", N, h))))
        elif to_input:
            eqs.append((sp.MatrixSymbol(f"d{input_name}", N, h), dZ * W.T))
    order = [f"dense{j}.{w}" for j in range(L) for w in ("W", "b")]
    return {name: grads[name] for name in order if name in grads}, tuple(eqs)


def raw_activation_plan(raw: RawActivation) -> tuple[ActivationPlan, tuple[Identity, ...]]:
    """The activation plan without any symbolic work beyond SymPy's derivative (the fallback)."""
    d = raw.derivative_raw
    ident = Identity(f"{raw.name}: derivative used as derived (symbolic budget)", d, d, {},
                     {Z: (-4.0, 4.0)})
    stable = raw.stable_given if raw.stable_given is not None else raw.forward
    extra: tuple[Identity, ...] = ()
    if stable != raw.forward:
        extra = (Identity(f"{raw.name}: stable forward form", raw.forward, stable, {},
                          {Z: (-10.0, 10.0)}),)
    uses = ("z",) if d.has(Z) else ()
    return ActivationPlan(raw.name, raw.latex, raw.forward, stable, d, d, uses, ident), extra


def raw_output_plan(layer: ActivationLayer, loss: LossEntry) -> OutputPlan:
    """Output plan as the chain rule gives it: dl/dz = l'(p) * f'(z), loss as written."""
    raw = derive_elementwise(layer, seams=False)   # the budget ran out: no solveset now
    l_py = loss.bound()
    step_a = differentiate(l_py, P, f"loss {loss.name!r}")
    step_b = raw.derivative_raw
    delta = step_a * step_b
    uses = tuple(s for s in ("p", "y", "z") if delta.has(sp.Symbol(s, real=True)))
    identities = [Identity(f"{raw.name} + {loss.name}: Step C used as derived (symbolic budget)",
                           sp.Mul(step_a, step_b, evaluate=False), delta, {}, {})]
    stable_p = raw.stable_given
    if stable_p is not None and stable_p != raw.forward:
        identities.append(Identity(f"{raw.name}: stable forward form", raw.forward, stable_p,
                                   {}, {Z: (-10.0, 10.0)}))
    note = ("The symbolic budget ran out before a stable form was sought; the loss is "
            "evaluated as written.")
    return OutputPlan(raw.name, raw.latex, "elementwise", raw.forward, loss.name, loss.latex,
                      l_py, l_py.subs(P, raw.forward), note, step_a, step_b,
                      sp.Mul(step_a, step_b, evaluate=False), delta, uses, loss.reduction,
                      tuple(identities), stable_prediction=stable_p)


CORRELATE = sp.Function("corr")      # dW of a convolution: input correlated with dZ
SUM_NIJ = sp.Function("sum_nij")     # db of a convolution: dZ summed over n, i, j


def feature_gradients(features: list[FeaturePlan]) -> dict[str, sp.Expr]:
    """Gradient formulas of the image layers' parameters (their kind's stated rules)."""
    grads: dict[str, sp.Expr] = {}
    for i, feature in enumerate(features):
        dz = sp.Symbol(f"dZ_{feature.name}")
        prev = sp.Symbol("X" if i == 0 else f"A_{features[i - 1].name}")
        for param, _ in feature.param_shapes:
            grads[f"{feature.name}.{param}"] = CORRELATE(prev, dz) if param == "W" else SUM_NIJ(dz)
    return grads
