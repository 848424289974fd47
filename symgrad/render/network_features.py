"""The image layers of a convolutional network in the printout (Conv2d, pooling, Flatten).

`symgrad.render.network` calls these for a plan with ``features``: the forward rows
with the (n, C, H, W) shape of every tensor up to the flattened features F, each
layer's definition in index form (its kind's ``index_formula``, printed by SymPy)
beside its operator form, and, after the Dense head, the chain on from dF back to the
first layer: each stated backward rule of the layer's kind (index form and operator
form, with the shapes of what it reads and gives), the kind's notes (the max-pool
mask and its tie rule), the derived derivative of an activation after a layer, and
the summary lines. Nothing here knows a particular kind's mathematics: the rules,
formulas and notes are the registry's (`symgrad.definition.layer_kinds`), proven by
`symgrad.prove.layer_rules`; the activation derivatives are the plan's.
"""

from __future__ import annotations

import re

from symgrad.definition.formulas import A, Z
from symgrad.definition.layer_kinds import BackwardRule, layer_kind
from symgrad.derive.plan import ActivationPlan, NetworkPlan, feature_key
from symgrad.render.document import Derivation, Section
from symgrad.render.latex_printer import layer_latex, layer_str

# The kink explanation is the one the Dense head's activations get (same expressions).
from symgrad.render.network_activation import _kink_steps, odot_tex, odot_txt
from symgrad.render.network_feature_names import (
    LayerTensors,
    Name,
    forward_form,
    grad,
    image_tensors,
    index_formula,
    index_text,
    layer_setting,
    plain_shape,
    rule_operands,
    shape_of,
    substitute_latex,
    substitute_text,
    tensor,
)
from symgrad.render.network_names import function_tex
from symgrad.render.prose import latex_safe_prose

PROOF_MODULE = "symgrad.prove.layer_rules"
JOURNEY_PER_ROW = 7   # tensors per display row of the backward journey


def _m(name: Name) -> str:
    """A tensor name as inline math in prose."""
    return f"${name[0]}$"


def architecture(plan: NetworkPlan) -> list[str]:
    """The image layers as the title lists them: Conv2d, relu, MaxPool2d, ..., Flatten.

    Their settings are left to the forward pass: a title of long unbreakable reprs
    overflows the page in LaTeX.
    """
    parts = []
    for feature in plan.features:
        parts.append(type(feature.layer).__name__)
        if feature.activation is not None:
            parts.append(feature.activation.name)
    return parts


def check_features(plan: NetworkPlan) -> tuple[int, str]:
    """Raise `ValueError` unless the image layers chain; return (features, last layer)."""
    shape, where = tuple(plan.input_shape), "the input"
    for pos, feature in enumerate(plan.features):
        if feature.index != pos:
            raise ValueError(f"network_derivation: image layer {feature.name} has index "
                             f"{feature.index}, expected {pos}")
        if tuple(feature.in_shape) != shape:
            raise ValueError(f"network_derivation: {feature.name} expects input shape "
                             f"{tuple(feature.in_shape)} but {where} gives {shape}")
        shape, where = tuple(feature.out_shape), feature.name
    if len(shape) != 1:
        raise ValueError(f"network_derivation: the last image layer {where} gives shape "
                         f"{shape}; the Dense head needs flat features")
    return shape[0], where


# -- forward ------------------------------------------------------------------------------
def forward_intro(plan: NetworkPlan) -> str:
    c, h, w = plan.input_shape
    features = plan.features[-1].out_shape[0]
    first = image_tensors(plan)[0]
    return (f"A batch $X$ holds $n$ images of shape (C, H, W) = ({c}, {h}, {w}), channels "
            "first (NCHW, as PyTorch). The image layers map it to the features $F$, one row of "
            f"{features} values per image; from there Dense layer $j$ computes "
            "$Z_j = A_{j-1} W_j + b_j$ with $W_j$ of shape $\\mathrm{in} \\times \\mathrm{out}$ "
            "and $A_0 = F$; "
            "activations act elementwise. The image layers go by their names, as their "
            f"parameters do, and their tensors too: {_m(first.raw)} is {first.feature.name}'s "
            f"output. Parameters: {', '.join(plan.param_names)}.")


def forward_rows(plan: NetworkPlan) -> list[tuple[str, str]]:
    """(LaTeX row with one ``&``, text) for X and every image layer, ending at F."""
    dims = r" \times ".join(["n", *map(str, plan.input_shape)])
    rows = [(rf"X &\in \mathbb{{R}}^{{{dims}}}", f"X: {shape_of(tuple(plan.input_shape))[1]}")]
    for t in image_tensors(plan):
        f = t.feature
        s_tex, s_txt = shape_of(f.out_shape)
        rows.append((rf"{t.raw[0]} &= \operatorname{{{f.name}}}({t.input[0]}) \quad {s_tex}"
                     rf" \quad {layer_setting(f.layer)[0]}",
                     f"{t.raw[1]} = {f.name}({t.input[1]})    {s_txt}    {f.layer!r}"))
        if f.activation is not None:
            names = {Z: t.raw, A: t.output}
            act = f.activation
            rows.append((rf"{t.output[0]} &= {layer_latex(act.forward, names)} \quad {s_tex}",
                         f"{t.output[1]} = {layer_str(act.forward, names)}    {s_txt}"))
    return rows


def first_trained(plan: NetworkPlan) -> int:
    """Index of the first image layer with parameters (len(features) if none has any).

    The error is needed down to that layer and no further: what lies below it has
    nothing to learn and reads only the data.
    """
    return next((f.index for f in plan.features if f.param_shapes), len(plan.features))


def _needs(rule: BackwardRule, t: LayerTensors, first: int) -> bool:
    """Whether the backward pass evaluates ``rule``: dX only above the first trained layer,
    a parameter's gradient only where the layer has that parameter (Conv2d(bias=False))."""
    if rule.target == "dX":
        return t.feature.index > first
    return rule.target[1:] in {p for p, _ in t.feature.param_shapes}


def journey(plan: NetworkPlan, head: list[Name]) -> tuple[str, str]:
    """The backward journey on from the head's tensors (``head``, ending at F) to the kernel
    of the first layer with parameters (as the Dense journey ends at W_1); nothing flows
    further down.
    """
    chain = list(head)
    first = first_trained(plan)
    for t in reversed(image_tensors(plan)[first:]):
        for name in (t.output, t.raw):
            if name != chain[-1]:
                chain.append(name)
    if first < len(plan.features):
        chain.append(tensor("W", plan.features[first].name))
    rows = [r" \leftarrow ".join(name[0] for name in chain[i:i + JOURNEY_PER_ROW])
            for i in range(0, len(chain), JOURNEY_PER_ROW)]
    return "&" + r" \\ &\leftarrow ".join(rows), " <- ".join(name[1] for name in chain)


# -- definitions (forward order) ------------------------------------------------------------
def _sizes(layer: object) -> str:
    """The sizes a kind's rules use for this layer: s, P, (k_h, k_w), k."""
    parts = []
    for attr, sym in (("stride", "s"), ("padding", "P"), ("kernel", "k")):
        value = getattr(layer, attr, None)
        if value is None:
            continue
        h, w = value
        if attr == "kernel":
            parts.append(f"$(k_h, k_w) = ({h}, {w})$, $k = k_h k_w = {h * w}$")
        elif h == w:
            parts.append(f"${sym} = {h}$")
        else:
            parts.append(f"${sym} = ({sym}_h, {sym}_w) = ({h}, {w})$ for rows and columns")
    return ", ".join(parts)


def _binding(t: LayerTensors) -> str:
    """Which of this layer's tensors the kind's generic letters stand for, with shapes."""
    f = t.feature
    c, h, w = f.in_shape
    source = "the data" if t.input == ("X", "X") else "its input"
    parts = [f"$X$ is {source} {_m(t.input)} of shape (n, C, H, W) = (n, {c}, {h}, {w})"]
    parts.append(f"${t.letter}$ its output {_m(t.raw)} {shape_of(f.out_shape)[1]}")
    parts += [f"${p}$ = {f.name}.{p} {plain_shape(s)}" for p, s in f.param_shapes]
    return "Here " + ", ".join(parts) + "."


def definitions_section(doc: Derivation, plan: NetworkPlan) -> None:
    """Each image layer's definition: index form (SymPy) and operator form, in order."""
    sec = doc.section("The image layers, defined in index notation")
    sec.add(text=(
        "Each layer kind is defined once, as a formula over the indices of its tensors "
        "(n image, c or o channel, i, j output position, p, q offset in the window); the "
        "lines below are that formula printed by SymPy, with this network's sizes, and the "
        "same definition in operator form. Each kind also states its backward rules (below). "
        f"None is trusted: {PROOF_MODULE} proves every rule by SymPy on small concrete "
        "instances (the definition expanded on symbols and differentiated with sympy.diff, "
        "compared element by element with the rule) and proves that the index form equals "
        "the definition."))
    for t in image_tensors(plan):
        f = t.feature
        kind = layer_kind(f.kind)
        sizes = _sizes(f.layer)
        pad = getattr(f.layer, "padding", (0, 0))
        text = (f"{f.name} = ${layer_setting(f.layer)[0]}$: {kind.title}. {_binding(t)}"
                + (f" Sizes: {sizes}." if sizes else "")
                + (" $X$ reads 0 outside the image (zero padding)." if any(pad) else ""))
        rows, formula_txt = index_formula(f)
        op_tex, op_txt = forward_form(f)
        sec.add(text=text,
                math=r" \\ ".join([*rows, rf"{t.letter} &= {op_tex}"]),
                plain=f"{formula_txt}\n{t.letter} = {op_txt}", tag=feature_key(f.name, "fwd"))


# -- backward (after the Dense head, last layer first) ---------------------------------------
def backward_sections(doc: Derivation, plan: NetworkPlan) -> None:
    """From dF back to the first trained image layer: each layer's rules and activation."""
    tensors = image_tensors(plan)
    first = first_trained(plan)
    for t in reversed(tensors[first:]):
        if t.feature.activation is not None:
            _activation_section(doc, t, t.feature.activation)
        _layer_section(doc, t, first)
    if first > 0:
        _untrained_section(doc, tensors[:first], tensors[first] if first < len(tensors) else None)


def _untrained_section(doc: Derivation, below: list[LayerTensors],
                       stop: LayerTensors | None) -> None:
    """The image layers under the first trained one: no parameters, only data below."""
    names = ", ".join(t.feature.name for t in below)
    verb = "has" if len(below) == 1 else "have"
    if stop is None:
        sec = doc.section("No image layer has parameters")
        sec.add(text=(f"{names} {verb} no parameters, so no gradient is needed below the "
                      "Dense head: $dF$ is not used further."))
        return
    sec = doc.section(f"Below {stop.feature.name}: {names}")
    sec.add(text=(f"{names} {verb} no parameters, and below them lies only the data $X$, so "
                  f"no gradient is needed there: the backward pass ends at "
                  f"{stop.feature.name}'s gradients."))


def _layer_section(doc: Derivation, t: LayerTensors, first: int) -> None:
    f = t.feature
    kind = layer_kind(f.kind)
    params = [p for p, _ in f.param_shapes]
    what = (f"gradients of {' and '.join(params)}" if params else "the error passed back")
    # Plain words: the text rendering prints headings as they are (the layer's settings,
    # with their arrows, are in the text below).
    sec = doc.section(f"Back through {f.name} ({_inert(kind.title)}): {what}")
    dy = grad(t.raw)
    arrives = ("from the Dense head" if t.raw == ("F", "F") else
               "through the activation above" if f.activation is not None else
               "from the layer above")
    sizes = _sizes(f.layer)
    sec.add(text=(f"{_binding(t)} The error arriving {arrives} is "
                  f"${dy[0]} = dL/d{t.raw[0]}$, shape {shape_of(f.out_shape)[1]}; below, "
                  f"$d{t.letter}$ stands for it and $dX$ for the error at the input."
                  + (f" Sizes in the rules: {sizes}." if sizes else "")))
    for rule in kind.rules:
        if rule.target != "dX" and not _needs(rule, t, first):
            continue      # a parameter this layer does not have
        if not _needs(rule, t, first):
            sec.add(text=("$dX$ is not needed: $X$ is data, not a parameter, so the backward "
                          "pass stops here." if f.index == 0 else
                          f"$dX$ = {_m(grad(t.input))} is not needed: the layers below have "
                          "no parameters, so the backward pass stops here."))
            continue
        _rule_step(sec, t, rule)
    for note in kind.notes:
        sec.add(text=_inert(note))
    inst = kind.proof_instances
    how = (" (max is piecewise: SymPy's derivative is compared with the rule at random points, "
           "ties included)" if kind.piecewise else "")
    example = (f", e.g. ${layer_setting(inst[0][0])[0]}$ on an input of shape {inst[0][1]}"
               if inst else "")
    sec.add(text=(f"Each rule above is proven by SymPy on {len(inst)} small instance"
                  f"{'s' if len(inst) != 1 else ''}{example}{how}: {PROOF_MODULE}."))


def _rule_step(sec: Section, t: LayerTensors, rule: BackwardRule) -> None:
    """One stated rule: index form, operator form, and the shapes it gives and reads."""
    shapes, bound = t.shapes(), t.bind()
    target = bound.get(rule.target, (rule.target, rule.target))
    given = shapes.get(rule.target, ("?", "?"))
    reads = [(bound[op], shapes[op]) for op in _operands(rule, t) if op in shapes]
    shape_tex = (rf"{target[0]}\colon {given[0]}"
                 + (r" \text{ from } " + r",\ ".join(rf"{name[0]}\colon {s[0]}"
                                                      for name, s in reads) if reads else ""))
    shape_txt = (f"{target[1]}: {given[1]}"
                 + (" from " + ", ".join(f"{name[1]}: {s[1]}" for name, s in reads)
                    if reads else ""))
    forms = [rule.index_latex]
    if _normal(rule.latex) != _normal(rule.index_latex):   # db is the same in both forms
        forms.append(rule.latex)
    sec.add(text=f"{_what(rule, t)} In words: {_inert(rule.text)}.",
            math=r" \\ ".join([*map(_lhs_rows, forms), rf"&\text{{shapes: }} {shape_tex}"]),
            plain=f"{index_text(rule.index_latex)}\nshapes: {shape_txt}",
            tag=feature_key(t.feature.name, rule.target))


def _operands(rule: BackwardRule, t: LayerTensors) -> list[str]:
    """What a rule reads; a piecewise kind (max) also reads its input, to find the maxima."""
    ops = rule_operands(rule, t.shapes())
    if layer_kind(t.feature.kind).piecewise and "X" not in ops:
        ops.append("X")
    return ops


def _normal(latex: str) -> str:
    return re.sub(r"_\{(\w)\}", r"_\1", latex.replace(" ", ""))


def _inert(text: str) -> str:
    """Prose from the registry, safe in the LaTeX prose ('$' would open math)."""
    return latex_safe_prose(text.replace("$", ""))


def _what(rule: BackwardRule, t: LayerTensors) -> str:
    if rule.target == "dX":
        return (f"The error passed back to the input $X$ = {_m(t.input)}, in index form and "
                "in operator form.")
    param = rule.target[1:]
    return (f"The gradient of ${param}$ = {t.feature.name}.{param}, in index form and in "
            "operator form.")


def _lhs_rows(latex: str) -> str:
    """A rule as an aligned row: ``lhs &= rhs`` (also for ``+=``)."""
    for op in (r"\mathrel{+}=", "="):
        if op in latex:
            lhs, rhs = latex.split(op, 1)
            return f"{lhs.rstrip()} &{op} {rhs.lstrip()}"
    return "&" + latex


def _activation_section(doc: Derivation, t: LayerTensors, act: ActivationPlan) -> None:
    """The activation after an image layer: f, SymPy's f', its rewrite, dZ = dA (.) f'."""
    f = t.feature
    names = {Z: t.raw, A: t.output}
    canon = {Z: ("z", "z"), A: ("a", "a")}
    shape_tex, shape_txt = shape_of(f.out_shape)
    # Plain words: the text rendering prints headings as they are.
    sec = doc.section(f"The activation after {f.name}: {latex_safe_prose(act.name)}")
    fn = function_tex(act.latex_name, act.name)
    formula_tex, formula_txt = layer_latex(act.forward, canon), layer_str(act.forward, canon)
    same = formula_txt == f"{act.name}(z)"
    sec.add(text=f"Forward, elementwise, with the formula of '{latex_safe_prose(act.name)}':",
            math=(rf"{t.output[0]} = f({t.raw[0]}), \qquad f(z) = {fn}(z)"
                  + ("" if same else f" = {formula_tex}")),
            plain=(f"{t.output[1]} = f({t.raw[1]}),   f(z) = {act.name}(z)"
                   + ("" if same else f" = {formula_txt}")),
            tag=feature_key(f.name, "act"))
    raw_tex, raw_txt = layer_latex(act.derivative_raw, names), layer_str(act.derivative_raw, names)
    new_tex, new_txt = layer_latex(act.derivative, names), layer_str(act.derivative, names)
    rewritten = new_txt != raw_txt
    sec.add(text=("SymPy differentiates the formula"
                  + (f"; the rewrite is identity '{latex_safe_prose(act.identity.name)}', "
                     "proven by sg.check:" if rewritten else ":")),
            math=(f"f'(z) = {layer_latex(act.derivative_raw, canon)}, \\qquad "
                  f"f'({t.raw[0]}) = {new_tex}" if not rewritten else
                  f"f'(z) &= {layer_latex(act.derivative_raw, canon)} \\\\ "
                  # the rewrite on a line of its own: beside the raw form it overflows
                  f"f'({t.raw[0]}) &= {raw_tex} \\\\ &= {new_tex}"),
            plain=(f"f'(z) = {layer_str(act.derivative_raw, canon)}\n"
                   f"f'({t.raw[1]}) = {raw_txt}" + (f" = {new_txt}" if rewritten else "")))
    free = act.derivative.free_symbols
    if A in free and Z not in free:
        sec.add(text=f"It reads only the saved output {_m(t.output)}; {_m(t.raw)} need not be "
                     "saved.")
    elif Z in free:
        sec.add(text=f"SymPy found no form in $a = f(z)$ alone, so {_m(t.raw)} is saved in the "
                     "forward pass.")
    _kink_steps(sec, act.derivative, names)
    da, dz = grad(t.output), grad(t.raw)
    sec.add(text=(f"The error {_m(da)} {shape_txt} arrives from the layer above and passes "
                  "through the activation as an elementwise product:"),
            math=f"{dz[0]} = {odot_tex(da[0], act.derivative, new_tex)} \\quad {shape_tex}",
            plain=f"{dz[1]} = {odot_txt(da[1], act.derivative, new_txt)}    {shape_txt}",
            tag=feature_key(f.name, "dZ"))


# -- summary ------------------------------------------------------------------------------
def summary_rows(plan: NetworkPlan) -> list[tuple[str, str]]:
    """The image layers' backward lines, after dF, with this network's tensor names."""
    rows = []
    first = first_trained(plan)
    for t in reversed(image_tensors(plan)[first:]):
        act = t.feature.activation
        if act is not None:
            names = {Z: t.raw, A: t.output}
            da, dz = grad(t.output), grad(t.raw)
            d_tex = layer_latex(act.derivative, names)
            d_txt = layer_str(act.derivative, names)
            rows.append((f"{dz[0]} &= {odot_tex(da[0], act.derivative, d_tex)}",
                         f"{dz[1]} = {odot_txt(da[1], act.derivative, d_txt)}"))
        bound = t.bind()
        for rule in layer_kind(t.feature.kind).rules:
            if _needs(rule, t, first):
                rows.append((_lhs_rows(substitute_latex(rule.latex, bound)),
                             substitute_text(rule.text, bound)))
    return rows


def saved_values(plan: NetworkPlan) -> list[str]:
    """What the image layers' backward pass reads from the forward pass (prose items)."""
    reasons: dict[Name, list[str]] = {}
    first = first_trained(plan)
    for t in image_tensors(plan)[first:]:
        f = t.feature
        ops = {op for rule in layer_kind(f.kind).rules for op in _operands(rule, t)
               if _needs(rule, t, first)}
        if "X" in ops:
            reasons.setdefault(t.input, []).append(f"input of {f.name}, read by its rules")
        act = f.activation
        if act is not None:
            for letter, name in (("z", t.raw), ("a", t.output)):
                if letter in act.saved:
                    reasons.setdefault(name, []).append(f"read by $f'$ after {f.name}")
    return [f"{_m(name)} ({'; '.join(why)})" for name, why in reasons.items()]
