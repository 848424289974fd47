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

Each entry gets a budget of symbolic work (`symgrad.simplify.zero.symbolic_budget`,
CPU seconds): past it the simplify steps keep the unsimplified form SymPy derived,
and an entry that still runs is replaced by the raw chain-rule form. Either way the
plan's ``notes`` say so, the printout shows them, and sg.check proves the result
(the raw form trivially symbolically, every gradient by finite differences).

>>> from symgrad.definition.activations import Sigmoid, Tanh
>>> from symgrad.definition.layers import Dense, Sequential
>>> plan = derive_network(Sequential(Dense(2, 3), Tanh(), Dense(3, 1), Sigmoid()), "bce")
>>> plan.layers[0].activation.derivative, plan.output.delta
(1 - a**2, p - y)
>>> plan.gradients["dense1.W"]
A1.T*dZ2
"""

from __future__ import annotations

import math

import sympy as sp

from symgrad.definition.activations import ActivationLayer
from symgrad.definition.activations import Identity as IdentityLayer
from symgrad.definition.convention import differentiate
from symgrad.definition.errors import PairingError
from symgrad.definition.formulas import P, Z
from symgrad.definition.layer_kinds import FeatureLayer
from symgrad.definition.layers import Sequential, layer_names
from symgrad.definition.losses import LossEntry, resolve_loss
from symgrad.derive.elementwise import RawActivation, derive_elementwise
from symgrad.derive.memo import remembered
from symgrad.derive.plan import (
    ActivationPlan,
    DensePlan,
    FeaturePlan,
    Identity,
    NetworkPlan,
    OutputPlan,
)

N = sp.Symbol("n", integer=True, positive=True)   # batch size
ONES = sp.MatrixSymbol("1_n", 1, N)   # row of n ones: 1_n * dZ sums dZ over the rows

# In-process memory: key -> (plan, note); note is None for a complete plan.
_ACTIVATIONS: dict[tuple, tuple[tuple[ActivationPlan, tuple[Identity, ...]], str | None]] = {}
_OUTPUTS: dict[tuple, tuple[OutputPlan, str | None]] = {}


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


class _Miss(Exception):
    """No fallback plan remembered for this budget."""


class _Cut(Exception):
    """The budget ran out: the result must not be remembered as the complete plan."""

    def __init__(self, got) -> None:
        super().__init__("symbolic budget ran out")
        self.got = got


def _no_fallback_remembered():
    raise _Miss


def _within_budget(kind: str, key: tuple, memory: dict, compute, raw_plan, seconds: float,
                   what: str, raw_note: str):
    """``(plan, note)``: ``compute()`` within ``seconds`` of symbolic work, else a fallback.

    A complete plan is remembered under ``key`` (what a larger budget would find too);
    a plan cut short under ``key`` + the budget, so the next compile with the same
    budget does not spend it again, and a larger budget derives afresh.
    """
    from symgrad.simplify.zero import run_within_budget  # derive -> simplify hand-off

    cut_key = (*key, "symbolic budget", str(seconds))
    for k in (key, cut_key):
        if k in memory:
            return memory[k]
    # On disk too a complete plan wins over one cut short by an earlier, smaller budget.
    for k, k_kind in ((key, kind), (cut_key, kind + "_cut")):
        try:
            found = remembered(k_kind, k, _no_fallback_remembered)
        except _Miss:
            continue
        memory[k] = (found, None) if k is key else found
        return memory[k]

    def attempt():
        got = run_within_budget(compute, seconds)
        if got.completed and not got.cut:
            return got.result
        raise _Cut(got)

    try:
        memory[key] = (remembered(kind, key, attempt), None)
        return memory[key]
    except _Cut as cut:
        got = cut.got
    budget = f"the symbolic budget of {seconds:g} s (CPU) ran out"
    if got.completed:
        steps = ", ".join(dict.fromkeys(got.cut))
        result = got.result
        note = (f"{what}: {budget}; what it had not simplified yet ({steps}) is used as "
                "SymPy derived it.")
    else:
        result = raw_plan()
        note = (f"{what}: {budget}; {raw_note} sg.check proves it numerically (finite "
                "differences).")
    memory[cut_key] = remembered(kind + "_cut", cut_key, lambda: (result, note))
    return memory[cut_key]


def _raw_activation(raw: RawActivation) -> tuple[ActivationPlan, tuple[Identity, ...]]:
    """The activation plan without any symbolic work beyond SymPy's derivative."""
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


def _raw_output(layer: ActivationLayer, loss: LossEntry) -> OutputPlan:
    """Output plan as the chain rule gives it: dl/dz = l'(p) * f'(z), loss as written."""
    raw = derive_elementwise(layer)
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


def _activation(layer: ActivationLayer, seconds: float
                ) -> tuple[tuple[ActivationPlan, tuple[Identity, ...]], str | None]:
    from symgrad.simplify.saved_output import activation_plan  # derive -> simplify hand-off

    return _within_budget(
        "activation", layer.key, _ACTIVATIONS,
        lambda: activation_plan(derive_elementwise(layer)),
        lambda: _raw_activation(derive_elementwise(layer)), seconds,
        f"activation {layer.entry.name!r}",
        "its derivative is used exactly as SymPy derived it, in z, unsimplified.")


def _output(layer: ActivationLayer, loss: LossEntry, seconds: float
            ) -> tuple[OutputPlan, str | None]:
    from symgrad.simplify.fusion import fuse_output  # derive -> simplify hand-off

    key = (layer.key, loss.name, loss.formula, tuple(sorted(loss.params.items())))
    if layer.entry.kind == "softmax":
        # Fixed-size algebra on exp(z) (no user formula to blow up), and no raw form to
        # fall back to: the per-element p - y only exists after the fusion.
        if key not in _OUTPUTS:
            _OUTPUTS[key] = (remembered("output", key, lambda: fuse_output(layer, loss)), None)
        return _OUTPUTS[key]
    return _within_budget(
        "output", key, _OUTPUTS, lambda: fuse_output(layer, loss),
        lambda: _raw_output(layer, loss), seconds,
        f"output {layer.entry.name!r} + loss {loss.name!r}",
        "dl/dz is used as the chain rule gives it, l'(p) f'(z) as SymPy derived both, "
        "and the loss as written (no stable rewrite).")


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


def derive_network(net: Sequential, loss: str | LossEntry,
                   symbolic_budget: float | None = None) -> NetworkPlan:
    """Derive, simplify and record every identity for ``net`` trained with ``loss``.

    ``symbolic_budget``: CPU seconds of SymPy work per entry (each distinct hidden
    activation, the output + loss); default $SYMGRAD_SYMBOLIC_BUDGET or 4 s.
    """
    from symgrad.simplify.fusion import check_pairing
    from symgrad.simplify.zero import symbolic_budget as budget_seconds

    seconds = budget_seconds(symbolic_budget)

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
    k = blocks[-1][0].out_dim
    if out_act.entry.kind == "softmax" and k < 2:
        raise PairingError(
            f"layer dense{len(blocks) - 1} ({blocks[-1][0]}) has {k} output, followed by "
            f"{out_act!r}: a softmax over one output is always 1, so the cross-entropy is 0 "
            "and its gradient 0 whatever the data, and the network never learns. For two "
            "classes use one output with Sigmoid() and loss='bce', or Dense(..., 2) with "
            "Softmax()")

    layers: list[DensePlan] = []
    identities: dict[str, Identity] = {}
    notes: dict[str, None] = {}   # ordered set: ten identical layers say it once
    features: list[FeaturePlan] = []
    names = [name for name, layer in zip(layer_names(net.layers), net.layers, strict=True)
             if isinstance(layer, FeatureLayer)]
    for i, ((layer, act), (in_shape, out_shape)) in enumerate(
            zip(net.features(), net.feature_shapes, strict=True)):
        plan = None
        if act is not None:
            (plan, extra), note = _activation(act, seconds)
            for ident in (plan.identity, *extra):
                identities.setdefault(ident.name, ident)
            if note:
                notes[note] = None
        features.append(FeaturePlan(i, names[i], layer.kind, layer, in_shape, out_shape,
                                    tuple(layer.param_shapes(in_shape).items()), plan))
    for i, (dense, act) in enumerate(blocks):
        plan = None
        if i < len(blocks) - 1:
            (plan, extra), note = _activation(act or IdentityLayer(), seconds)
            for ident in (plan.identity, *extra):
                identities.setdefault(ident.name, ident)
            if note:
                notes[note] = None
        layers.append(DensePlan(i, f"dense{i}", dense.in_dim, dense.out_dim, dense.bias, plan))
    output, note = _output(out_act, entry, seconds)
    if note:
        notes[note] = None
    for ident in output.identities:
        identities.setdefault(ident.name, ident)
    grads, eqs = matrix_backward([(d.in_dim, d.out_dim, d.bias) for d, _ in blocks],
                                 output.reduction, "F" if features else "X", bool(features))
    grads = {**feature_gradients(features), **grads}
    input_dim = math.prod(net.input_shape)
    return NetworkPlan(tuple(layers), output, input_dim, blocks[-1][0].out_dim, grads,
                       tuple(identities.values()), eqs, tuple(notes), tuple(features),
                       net.input_shape if features else ())
