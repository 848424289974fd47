"""The step-by-step derivation of a network's backward pass, as seed 001 writes it.

`network_derivation` turns a `NetworkPlan` (the derive stage's output) into a
`Derivation`: the forward chain with shapes, Steps A/B/C of the output layer,
dW / db / dA with the shape of every factor for each Dense layer, each hidden
activation's derived derivative and its rewrite in terms of saved values, and
a closing summary of the backward pass as code. A convolutional network's image
layers (Conv2d, pooling, Flatten) get their shapes, index-form definitions and
stated backward rules from `symgrad.render.network_features`; its Dense head reads
the flattened features F and passes dF back to them. Seed 002 follows
(`symgrad.render.network_training`): the Jacobian view and the fan-out sum with the
layer sizes, batch / stochastic / minibatch gradient descent with the model's loss,
and the update rule of the model's optimizer.

Every displayed equation is numbered. An equation the kernel implements carries its
plan key (`symgrad.derive.plan.dense_key`, ...) as its tag; the kernel generator cites
the same key in a comment at the implementing line, and with the kernel's source the
printout ends with an appendix listing each equation number beside its kernel lines.

Every formula is printed from the plan's SymPy expressions (symbols renamed
per layer by `symgrad.render.latex_printer`); nothing here knows any
particular activation or loss. The linear-algebra lines (dW = A^T dZ, ...) are
the stated matrix rules, with shapes computed from the Dense dimensions.
"""

from __future__ import annotations

import sympy as sp

from symgrad.derive.plan import (
    FEATURES_GRAD_KEY,
    LOSS_KEY,
    PREDICTION_KEY,
    DensePlan,
    NetworkPlan,
    dense_key,
)
from symgrad.render import network_features as features
from symgrad.render.document import Derivation, Section
from symgrad.render.latex_printer import layer_latex, layer_str
from symgrad.render.network_activation import activation_section
from symgrad.render.network_backward import BackwardEquations, kernel_appendix, summary_section
from symgrad.render.network_names import (
    N,
    add_rows,
    dmat,
    layer_names,
    mat,
    mtex,
    shape,
)
from symgrad.render.network_output import output_section
from symgrad.render.network_training import jacobian_section, optimizer_section, training_section
from symgrad.render.prose import latex_safe_prose

# Built-in losses by name, as the prose says them; any other loss goes by its own name.
LOSS_WORDS = {"mse": "mean squared error", "mae": "mean absolute error",
              "bce": "binary cross-entropy", "cross_entropy": "cross-entropy",
              "huber": "Huber"}


def loss_words(name: str) -> str:
    """The loss as prose: "binary cross-entropy" for "bce", a user's loss by its name."""
    return LOSS_WORDS.get(name, latex_safe_prose(name))


def _forward_section(doc: Derivation, plan: NetworkPlan) -> None:
    sec = doc.section("Forward pass with shapes")
    L = len(plan.layers)
    if plan.features:
        sec.add(text=features.forward_intro(plan))
        image_rows = features.forward_rows(plan)
        tex_rows, txt_rows = [t for t, _ in image_rows], [t for _, t in image_rows]
    else:
        sec.add(text=(f"A batch $X$ holds $n$ rows of {plan.input_dim} features. Dense layer "
                      "$j$ computes $Z_j = A_{j-1} W_j + b_j$ with $W_j$ of shape "
                      r"$\mathrm{in} \times \mathrm{out}$ and $A_0 = X$; activations act "
                      "elementwise. Layer 1 holds the parameters dense0.W and dense0.b, and "
                      f"so on ({', '.join(plan.param_names)})."))
        tex_rows, txt_rows = [rf"X &\in \mathbb{{R}}^{{n \times {plan.input_dim}}}"], [
            f"X: (n x {plan.input_dim})"]   # parallel lists: LaTeX rows and their text twins
    add_rows(sec, list(zip(tex_rows, txt_rows, strict=True)))
    for layer in plan.layers:
        j = layer.index + 1
        z_tex, z_txt = mat("Z", j)
        a_tex, a_txt = _head_input(plan, j)
        bias_tex, bias_txt = (rf" + {mtex('b', j)}", f" + b{j}") if layer.bias else ("", "")
        s_tex, s_txt = shape("n", layer.out_dim)
        # One display per layer, tagged with its plan key: the kernel's forward GEMM and
        # its bias + activation pass cite it.
        tex_rows = [rf"{z_tex} &= {a_tex} {mtex('W', j)}{bias_tex} \quad {s_tex}"]
        txt_rows = [f"{z_txt} = {a_txt} @ W{j}{bias_txt}    {s_txt}"]
        names = layer_names(j, last=layer.index == L - 1)
        if layer.activation is not None:
            act = layer.activation
            out_tex, out_txt = mat("A", j)
            tex_rows.append(rf"{out_tex} &= {layer_latex(act.forward, names)} \quad {s_tex}")
            txt_rows.append(f"{out_txt} = {layer_str(act.forward, names)}    {s_txt}")
        sec.add(math=r" \\ ".join(tex_rows), plain="\n".join(txt_rows), tag=dense_key("Z", j))
        if layer.activation is None and layer.index == L - 1:
            sec.add(math=rf"P = {layer_latex(plan.output.prediction, names)} \quad {s_tex}",
                    plain=f"P = {layer_str(plan.output.prediction, names)}    {s_txt}",
                    tag=PREDICTION_KEY)

    out = plan.output
    k = plan.output_dim
    if k == 1:   # one output: no sum over it
        scale, how = 1 / N, "the mean over the $n$ rows of"
        sums_tex, sums_txt, args = r"\sum_{i=1}^{n}", "sum_i", ("p_{i}", "y_{i}", "p_i, y_i")
    elif out.reduction == "rows":
        scale, how = 1 / N, f"the mean over the $n$ rows of the sum over the {k} outputs of"
        sums_tex, sums_txt = rf"\sum_{{i=1}}^{{n}} \sum_{{c=1}}^{{{k}}}", "sum_ic"
        args = ("p_{ic}", "y_{ic}", "p_ic, y_ic")
    else:
        scale, how = 1 / (N * k), rf"the mean over all $n \times {k}$ outputs of"
        sums_tex, sums_txt = rf"\sum_{{i=1}}^{{n}} \sum_{{c=1}}^{{{k}}}", "sum_ic"
        args = ("p_{ic}", "y_{ic}", "p_ic, y_ic")
    sec.add(text=(f"The loss, {loss_words(out.loss_name)}, is {how} the elementwise loss "
                  "$l(p, y)$:"),
            math=(rf"L = {sp.latex(scale)} {sums_tex} l({args[0]}, {args[1]}), \qquad "
                  rf"l(p, y) = {layer_latex(out.loss_formula)}"),
            plain=(f"L = {sp.sstr(scale)} * {sums_txt} l({args[2]}),   "
                   f"l(p, y) = {layer_str(out.loss_formula)}"),
            tag=LOSS_KEY)

    if plan.features:
        _image_journey(sec, plan)
        return
    chain_tex, chain_txt = ["L", "p"], ["L", "p"]
    for j in range(L, 0, -1):
        chain_tex += [mat("Z", j)[0]] + ([mat("A", j - 1)[0]] if j > 1 else [rf"{mtex('W', j)}"])
        chain_txt += [mat("Z", j)[1]] + ([mat("A", j - 1)[1]] if j > 1 else [f"W{j}"])
    if len(chain_tex) > 12:   # keep a deep net's journey on one line of the page
        chain_tex = chain_tex[:6] + [r"\cdots"] + chain_tex[-4:]
    sec.add(text=("The backward journey runs the other way; each $W_j$ and $b_j$ branches off "
                  "its $Z_j$:"),
            math=r" \leftarrow ".join(chain_tex), plain=" <- ".join(chain_txt))


def _head_input(plan: NetworkPlan, j: int) -> tuple[str, str]:
    """What Dense layer j reads: A_{j-1}; for layer 1 the data X, or F after image layers."""
    if j == 1 and plan.features:
        return "F", "F"
    return mat("A", j - 1)


def _image_journey(sec: Section, plan: NetworkPlan) -> None:
    """The backward journey of a convolutional network: the head, then the image layers."""
    head = [("L", "L"), ("p", "p")]
    for j in range(len(plan.layers), 0, -1):
        head += [mat("Z", j), _head_input(plan, j)]
    tex, txt = features.journey(plan, head)
    sec.add(text=("The backward journey runs the other way, through the Dense head to the "
                  "flattened features $F$ and on through the image layers; each weight and "
                  "bias branches off the output it makes:"),
            math=tex, plain=txt)


def _chain_step(sec: Section, j: int, L: int) -> None:
    """The whole chain from the loss down to W_j, one factor per gate (as seed 001 shows)."""
    def dd(num: str, den: str, m_num: int, m_den: int, label: str) -> tuple[str, str, str]:
        tex = rf"\frac{{\partial {mtex(num, m_num)}}}{{\partial {mtex(den, m_den)}}}"
        return tex, f"d{mat(num, m_num)[1]}/d{mat(den, m_den)[1]}", label

    parts = [(rf"\frac{{\partial L}}{{\partial {mtex('Z', L)}}}", f"dL/dZ{L}", "output error")]
    for m in range(L, j, -1):
        parts.append(dd("Z", "A", m, m - 1, f"back through $W_{{{m}}}$"))
        parts.append(dd("A", "Z", m - 1, m - 1, f"activation {m - 1}"))
    parts.append(dd("Z", "W", j, j, "input"))
    if len(parts) > 6:   # deep nets: keep both ends, elide the gates in between
        parts = parts[:3] + [(r"\cdots", "...", "")] + parts[-3:]
    tex = r" \cdot ".join(rf"\underbrace{{{t}}}_{{\text{{{label}}}}}" if label else t
                          for t, _, label in parts)
    sec.add(text=f"The whole chain from the loss to ${mtex('W', j)}$, one factor per gate:",
            math=rf"\frac{{\partial L}}{{\partial {mtex('W', j)}}} = {tex}",
            plain=f"dL/dW{j} = " + " * ".join(t for _, t, _ in parts))


def _dense_section(doc: Derivation, plan: NetworkPlan, layer: DensePlan,
                   eqs: BackwardEquations) -> None:
    """dW, db, dA of one Dense layer: the plan's equations with the shape of every factor."""
    j = layer.index + 1
    L = len(plan.layers)
    h, k = layer.in_dim, layer.out_dim
    a_tex, a_txt = _head_input(plan, j)
    dz_tex, dz_txt = dmat("Z", j)
    # Headings are plain words: the text rendering prints them as they are.
    sec = doc.section(f"Layer {j} ({layer.name}, Dense from {h} to {k} features): gradient of "
                      + ("its weights and bias" if layer.bias else "its weights"))
    _chain_step(sec, j, L)
    sec.add(text=(f"The error arriving from above is ${dz_tex} = dL/d{mtex('Z', j)}$, "
                  rf"shape $n \times {k}$. Per element, each weight is multiplied by one input, so "
                  "its derivative is that input, and the rows of the batch add up:"),
            math=(rf"({mtex('Z', j)})_{{ic}} = \sum_{{r}} ({a_tex})_{{ir}} "
                  rf"({mtex('W', j)})_{{rc}} + \dots "
                  rf"\quad\Rightarrow\quad "
                  rf"\frac{{\partial L}}{{\partial ({mtex('W', j)})_{{rc}}}} = "
                  rf"\sum_{{i=1}}^{{n}} ({a_tex})_{{ir}} \, ({dz_tex})_{{ic}}"),
            plain=(f"Z{j}[i, c] = sum_r {a_txt}[i, r] * W{j}[r, c] + ...  =>  "
                   f"dL/dW{j}[r, c] = sum_i {a_txt}[i, r] * {dz_txt}[i, c]"))
    s1, s1t = shape(h, "n")
    s2, s2t = shape("n", k)
    sec.add(text=(f"In matrix form the sum over the batch index $i$ is a product with a "
                  f"transpose. The transpose appears so that the shapes match: ${mtex('W', j)}$ "
                  rf"is $\mathrm{{in}} \times \mathrm{{out}} = {h} \times {k}$, ${a_tex}$ is "
                  rf"$n \times {h}$ and ${dz_tex}$ is $n \times {k}$; only ${a_tex}^T$ times "
                  rf"${dz_tex}$ pairs up the $n$ rows and gives ${h} \times {k}$."),
            math=rf"{eqs.line(f'dW{j}')[0]} \qquad {s1} \cdot {s2} \to {h} \times {k}",
            plain=f"{eqs.line(f'dW{j}')[1]}    {s1t} . {s2t} -> {h} x {k}",
            tag=dense_key("dW", j))
    if layer.bias:
        sec.add(text=(f"The bias ${mtex('b', j)}$ is added to every row, so its gradient sums "
                      f"${dz_tex}$ over the rows (a product with a row of ones):"),
                math=(rf"{eqs.line(f'db{j}')[0]} \qquad {shape(1, 'n')[0]} \cdot {s2} "
                      rf"\to 1 \times {k}"),
                plain=f"{eqs.line(f'db{j}')[1]}    (1 x n) . {s2t} -> 1 x {k}",
                tag=dense_key("db", j))
    else:
        sec.add(text=f"Layer {j} has no bias, so there is no ${mtex('db', j)}$.")
    if j > 1:
        sec.add(text=(f"The error flows back to ${a_tex}$ through the same weights. Now "
                      rf"${mtex('W', j)}^T$, ${k} \times {h}$, appears, so that "
                      rf"$n \times {k}$ times ${k} \times {h}$ has the shape "
                      rf"$n \times {h}$ of ${a_tex}$:"),
                math=(rf"{eqs.line(f'dA{j - 1}')[0]} \qquad {s2} \cdot "
                      rf"{shape(k, h)[0]} \to n \times {h}"),
                plain=f"{eqs.line(f'dA{j - 1}')[1]}    {s2t} . {shape(k, h)[1]} -> n x {h}",
                tag=dense_key("dA", j - 1))
    elif plan.features:
        sec.add(text=(f"The error flows back to the flattened features $F$ through the same "
                      rf"weights. Now ${mtex('W', j)}^T$, ${k} \times {h}$, appears, so that "
                      rf"$n \times {k}$ times ${k} \times {h}$ has the shape $n \times {h}$ "
                      "of $F$; from $dF$ the error continues through the image layers (below):"),
                math=(rf"{eqs.line('dF')[0]} \qquad {s2} \cdot "
                      rf"{shape(k, h)[0]} \to n \times {h}"),
                plain=f"{eqs.line('dF')[1]}    {s2t} . {shape(k, h)[1]} -> n x {h}",
                tag=FEATURES_GRAD_KEY)
    else:
        sec.add(text=("$dX = dZ_1 W_1^T$ is not needed: $X$ is data, not a parameter, so the "
                      "backward pass stops here and the kernel skips that product."))


def _architecture(plan: NetworkPlan) -> str:
    """The layers as inline math, one ``$...$`` per layer (a line may break between them)."""
    parts = []
    for feature in plan.features:   # class names are ours; activation names are data
        parts.append(rf"$\mathrm{{{type(feature.layer).__name__}}}$")
        if feature.activation is not None:
            parts.append(latex_safe_prose(feature.activation.name))
    for layer in plan.layers:
        parts.append(rf"$\mathrm{{Dense}}({layer.in_dim}, {layer.out_dim})$")
        act = layer.activation.name if layer.activation else plan.output.activation_name
        parts.append(latex_safe_prose(act))
    return ", ".join(parts)


def _title(plan: NetworkPlan) -> str:
    # Plain words: every rendering prints the title as it is (no inline math there).
    kind = "convolutional network" if plan.features else f"{len(plan.layers)}-layer network"
    return f"Backpropagation through a {kind} with {loss_words(plan.output.loss_name)} loss"


def network_derivation(plan: NetworkPlan, title: str | None = None, optimizer: object = None,
                       batch_size: int | None = None, source: str | None = None
                       ) -> Derivation:
    """The backward pass of ``plan`` derived step by step, as seeds 001 and 002 do by hand.

    ``optimizer`` (the model's, e.g. ``sg.Adam()``) adds its update rule with its
    settings; ``batch_size`` the minibatch size the model trains with (else |B|);
    ``source`` the kernel module's text (``model.source``): an appendix lists each
    numbered equation beside the kernel lines that cite it. Every displayed equation
    is numbered. Raises `TypeError` if ``plan`` is not a `NetworkPlan` and `ValueError`
    if it has no layers or its layer sizes do not chain.
    """
    if not isinstance(plan, NetworkPlan):
        raise TypeError(f"network_derivation needs a NetworkPlan, got {type(plan).__name__}")
    _check_plan(plan)
    doc = Derivation(
        title or _title(plan),
        intro=("The layers of this network, in order: " + _architecture(plan) + ". Every "
               "formula below is printed "
               "from the SymPy expressions the compiler derived and the kernel evaluates; "
               "none is typed by hand. "
               + ("The Dense layers of the head are numbered from 1 as in the lecture notes; "
                  "the image layers before it go by their names (conv0, maxpool0, ...)."
                  if plan.features else
                  "Layers are numbered from 1 as in the lecture notes.")),
        numbered=True,
    )
    eqs = BackwardEquations(plan)
    notes = getattr(plan, "notes", ())   # what the compile left undone (symbolic budget)
    if notes:
        sec = doc.section("Note: not every step was simplified")
        for note in notes:
            sec.add(text=latex_safe_prose(note))
    _forward_section(doc, plan)
    if plan.features:
        features.definitions_section(doc, plan)
    output_section(doc, plan)
    for layer in reversed(plan.layers):
        _dense_section(doc, plan, layer, eqs)
        if layer.index > 0:
            prev = plan.layers[layer.index - 1]
            if prev.activation is not None:
                activation_section(doc, prev, prev.activation)
    if plan.features:
        features.backward_sections(doc, plan)
    jacobian_section(doc, plan)
    summary_section(doc, plan, eqs)
    training_section(doc, plan, optimizer, batch_size)
    if optimizer is not None:
        optimizer_section(doc, optimizer)
    if source is not None:
        kernel_appendix(doc, source, len(plan.layers))
    return doc


def _check_plan(plan: NetworkPlan) -> None:
    if not plan.layers:
        raise ValueError("network_derivation: the plan has no Dense layers")
    prev_dim, prev_name = plan.input_dim, "input"
    if plan.features:
        prev_dim, prev_name = features.check_features(plan)
    for pos, layer in enumerate(plan.layers):
        if layer.index != pos:
            raise ValueError(f"network_derivation: layer {layer.name} has index {layer.index}, "
                             f"expected {pos}")
        if layer.in_dim != prev_dim:
            raise ValueError(f"network_derivation: {layer.name} expects {layer.in_dim} inputs but "
                             f"{prev_name} gives {prev_dim}")
        prev_dim, prev_name = layer.out_dim, layer.name
    if prev_dim != plan.output_dim:
        raise ValueError(f"network_derivation: last layer {prev_name} gives {prev_dim} outputs, "
                         f"plan.output_dim is {plan.output_dim}")
