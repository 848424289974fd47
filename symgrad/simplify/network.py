"""The network plan: derive, then simplify every elementwise part within a budget.

`derive_network` is the entry `sg.compile` uses. It validates the network and the
loss (before any symbolic work), takes SymPy's derivatives from the derive stage
(`symgrad.derive.elementwise`, `symgrad.derive.network`), simplifies each one here
(`saved_output.activation_plan`, `fusion.fuse_output`) and assembles the
`NetworkPlan` with the matrix equations and the image layers' plans. Symbolic work
is per activation *entry* and cached: ten identical tanh layers are derived once,
and a later process finds the result on disk (`derive.memo`).

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

from symgrad.definition.activations import ActivationLayer
from symgrad.definition.activations import Identity as IdentityLayer
from symgrad.definition.errors import PairingError
from symgrad.definition.layer_kinds import FeatureLayer
from symgrad.definition.layers import Sequential, layer_names
from symgrad.definition.losses import LossEntry, resolve_loss
from symgrad.derive.elementwise import derive_elementwise
from symgrad.derive.memo import remembered
from symgrad.derive.network import (
    feature_gradients,
    matrix_backward,
    raw_activation_plan,
    raw_output_plan,
)
from symgrad.derive.plan import (
    ActivationPlan,
    DensePlan,
    FeaturePlan,
    Identity,
    NetworkPlan,
    OutputPlan,
)
from symgrad.simplify.fusion import check_pairing, fuse_output
from symgrad.simplify.saved_output import activation_plan
from symgrad.simplify.zero import run_within_budget
from symgrad.simplify.zero import symbolic_budget as budget_seconds

__all__ = ["derive_network"]

# In-process memory: key -> (plan, note); note is None for a complete plan.
_ACTIVATIONS: dict[tuple, tuple[tuple[ActivationPlan, tuple[Identity, ...]], str | None]] = {}
_OUTPUTS: dict[tuple, tuple[OutputPlan, str | None]] = {}


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


def _activation(layer: ActivationLayer, seconds: float
                ) -> tuple[tuple[ActivationPlan, tuple[Identity, ...]], str | None]:
    return _within_budget(
        "activation", layer.key, _ACTIVATIONS,
        lambda: activation_plan(derive_elementwise(layer)),
        lambda: raw_activation_plan(derive_elementwise(layer, seams=False)), seconds,
        f"activation {layer.entry.name!r}",
        "its derivative is used exactly as SymPy derived it, in z, unsimplified.")


def _output(layer: ActivationLayer, loss: LossEntry, seconds: float
            ) -> tuple[OutputPlan, str | None]:
    key = (layer.key, loss.name, loss.formula, loss.latex, tuple(sorted(loss.params.items())))
    if layer.entry.kind == "softmax":
        # Fixed-size algebra on exp(z) (no user formula to blow up), and no raw form to
        # fall back to: the per-element p - y only exists after the fusion.
        if key not in _OUTPUTS:
            _OUTPUTS[key] = (remembered("output", key, lambda: fuse_output(layer, loss)), None)
        return _OUTPUTS[key]
    return _within_budget(
        "output", key, _OUTPUTS, lambda: fuse_output(layer, loss),
        lambda: raw_output_plan(layer, loss), seconds,
        f"output {layer.entry.name!r} + loss {loss.name!r}",
        "dl/dz is used as the chain rule gives it, l'(p) f'(z) as SymPy derived both, "
        "and the loss as written (no stable rewrite).")


def derive_network(net: Sequential, loss: str | LossEntry,
                   symbolic_budget: float | None = None) -> NetworkPlan:
    """Derive, simplify and record every identity for ``net`` trained with ``loss``.

    ``symbolic_budget``: CPU seconds of SymPy work per entry (each distinct hidden
    activation, the output + loss); default $SYMGRAD_SYMBOLIC_BUDGET or 4 s.
    """
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
            for said in (note, plan.accuracy_note):   # budget, accuracy
                if said:
                    notes[said] = None
        features.append(FeaturePlan(i, names[i], layer.kind, layer, in_shape, out_shape,
                                    tuple(layer.param_shapes(in_shape).items()), plan))
    for i, (dense, act) in enumerate(blocks):
        plan = None
        if i < len(blocks) - 1:
            (plan, extra), note = _activation(act or IdentityLayer(), seconds)
            for ident in (plan.identity, *extra):
                identities.setdefault(ident.name, ident)
            for said in (note, plan.accuracy_note):   # budget, accuracy
                if said:
                    notes[said] = None
        layers.append(DensePlan(i, f"dense{i}", dense.in_dim, dense.out_dim, dense.bias, plan))
    output, note = _output(out_act, entry, seconds)
    for said in (note, output.accuracy_note):   # budget, accuracy
        if said:
            notes[said] = None
    for ident in output.identities:
        identities.setdefault(ident.name, ident)
    grads, eqs = matrix_backward([(d.in_dim, d.out_dim, d.bias) for d, _ in blocks],
                                 output.reduction, "F" if features else "X", bool(features))
    grads = {**feature_gradients(features), **grads}
    input_dim = math.prod(net.input_shape)
    return NetworkPlan(tuple(layers), output, input_dim, blocks[-1][0].out_dim, grads,
                       tuple(identities.values()), eqs, tuple(notes), tuple(features),
                       net.input_shape if features else ())
