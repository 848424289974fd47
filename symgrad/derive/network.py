"""Reverse mode over the layer graph: a `Sequential` + a loss -> `NetworkPlan`.

The network is a chain Dense -> activation -> ... -> Dense -> output
activation. Reverse mode walks it from the loss back to the input:

    dZ_L = scale * delta(P, Y)                 (output fusion, Steps A-C)
    dW_j = A_{j-1}^T dZ_j,  db_j = 1^T dZ_j    (matrix rules, proven in prove.linalg)
    dA_{j-1} = dZ_j W_j^T
    dZ_{j-1} = dA_{j-1} o f'_{j-1}             (elementwise, in saved a or z)

Every elementwise derivative comes from SymPy (`derive.elementwise`) and is
rewritten by the simplify stage. `derive_network` is the convenience entry that
runs both, so it imports `symgrad.simplify` lazily; the reverse-mode bookkeeping
(`matrix_backward`) is pure derive-stage work. Symbolic work is per activation
*entry* and cached: ten identical tanh layers are derived once, and a later
process finds the result on disk (`derive.memo`).

>>> from symgrad.definition.activations import Sigmoid, Tanh
>>> from symgrad.definition.layers import Dense, Sequential
>>> plan = derive_network(Sequential(Dense(2, 3), Tanh(), Dense(3, 1), Sigmoid()), "bce")
>>> plan.layers[0].activation.derivative, plan.output.delta
(1 - a**2, p - y)
>>> plan.gradients["dense1.W"]
A1.T*dZ2
"""

from __future__ import annotations

import sympy as sp

from symgrad.definition.activations import ActivationLayer
from symgrad.definition.activations import Identity as IdentityLayer
from symgrad.definition.errors import PairingError
from symgrad.definition.layers import Sequential
from symgrad.definition.losses import LossEntry, resolve_loss
from symgrad.derive.elementwise import derive_elementwise
from symgrad.derive.memo import remembered
from symgrad.derive.plan import ActivationPlan, DensePlan, Identity, NetworkPlan, OutputPlan

N = sp.Symbol("n", integer=True, positive=True)   # batch size
ONES = sp.MatrixSymbol("1_n", 1, N)   # row of n ones: 1_n * dZ sums dZ over the rows

_ACTIVATIONS: dict[tuple, tuple[ActivationPlan, tuple[Identity, ...]]] = {}
_OUTPUTS: dict[tuple, OutputPlan] = {}


def matrix_backward(dims: list[tuple[int, int, bool]], reduction: str
                    ) -> tuple[dict[str, sp.Expr], tuple[tuple[sp.Expr, sp.Expr], ...]]:
    """Matrix-form backward equations for Dense layers ``(in, out, bias)``; 1-based names."""
    L = len(dims)
    k = dims[-1][1]
    scale = 1 / N if reduction == "rows" else 1 / (N * k)
    grads: dict[str, sp.Expr] = {}
    eqs: list[tuple[sp.Expr, sp.Expr]] = []
    dZ = sp.MatrixSymbol(f"dZ{L}", N, k)
    eqs.append((dZ, scale * sp.MatrixSymbol("Delta", N, k)))
    for j in range(L, 0, -1):
        h, out, bias = dims[j - 1]
        prev = sp.MatrixSymbol("X" if j == 1 else f"A{j - 1}", N, h)
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
    order = [f"dense{j}.{w}" for j in range(L) for w in ("W", "b")]
    return {name: grads[name] for name in order if name in grads}, tuple(eqs)


def _activation(layer: ActivationLayer) -> tuple[ActivationPlan, tuple[Identity, ...]]:
    from symgrad.simplify.saved_output import activation_plan  # derive -> simplify hand-off

    if layer.key not in _ACTIVATIONS:
        _ACTIVATIONS[layer.key] = remembered(
            "activation", layer.key, lambda: activation_plan(derive_elementwise(layer)))
    return _ACTIVATIONS[layer.key]


def _output(layer: ActivationLayer, loss: LossEntry) -> OutputPlan:
    from symgrad.simplify.fusion import fuse_output  # derive -> simplify hand-off

    key = (layer.key, loss.name, loss.formula, tuple(sorted(loss.params.items())))
    if key not in _OUTPUTS:
        _OUTPUTS[key] = remembered("output", key, lambda: fuse_output(layer, loss))
    return _OUTPUTS[key]


def derive_network(net: Sequential, loss: str | LossEntry) -> NetworkPlan:
    """Derive, simplify and record every identity for ``net`` trained with ``loss``."""
    from symgrad.simplify.fusion import check_pairing

    if not isinstance(net, Sequential):
        raise TypeError(f"derive_network expects a symgrad Sequential, got {type(net).__name__}")
    entry = resolve_loss(loss)
    blocks = net.blocks()
    out_act = blocks[-1][1] or IdentityLayer()
    for i, (dense, act) in enumerate(blocks[:-1]):
        if act is not None and act.entry.kind == "softmax":
            raise PairingError(f"layer dense{i} ({dense}) is followed by {act!r}: softmax is "
                               "only valid as the output activation, with cross-entropy")
    check_pairing(out_act, entry)   # before any symbolic work

    layers: list[DensePlan] = []
    identities: dict[str, Identity] = {}
    for i, (dense, act) in enumerate(blocks):
        plan = None
        if i < len(blocks) - 1:
            plan, extra = _activation(act or IdentityLayer())
            for ident in (plan.identity, *extra):
                identities.setdefault(ident.name, ident)
        layers.append(DensePlan(i, f"dense{i}", dense.in_dim, dense.out_dim, dense.bias, plan))
    output = _output(out_act, entry)
    for ident in output.identities:
        identities.setdefault(ident.name, ident)
    grads, eqs = matrix_backward([(d.in_dim, d.out_dim, d.bias) for d, _ in blocks],
                                 output.reduction)
    return NetworkPlan(tuple(layers), output, blocks[0][0].in_dim, blocks[-1][0].out_dim, grads,
                       tuple(identities.values()), eqs)
