"""The step-by-step derivation of a network's backward pass, as seed 001 writes it.

`network_derivation` turns a `NetworkPlan` (the derive stage's output) into a
`Derivation`: the forward chain with shapes, Steps A/B/C of the output layer,
dW / db / dA with the shape of every factor for each Dense layer, each hidden
activation's derived derivative and its rewrite in terms of saved values, and
a closing summary of the backward pass as code.

Every formula is printed from the plan's SymPy expressions (symbols renamed
per layer by `symgrad.render.latex_printer`); nothing here knows any
particular activation or loss. The linear-algebra lines (dW = A^T dZ, ...) are
the stated matrix rules, with shapes computed from the Dense dimensions.
"""

from __future__ import annotations

import sympy as sp
from sympy.core.relational import Relational

from symgrad.definition.formulas import A, P, Y, Z
from symgrad.derive.plan import LSE, ActivationPlan, DensePlan, Identity, NetworkPlan
from symgrad.render.document import Derivation, Section
from symgrad.render.latex_printer import (
    SymbolNames,
    indicator_condition,
    layer_latex,
    layer_str,
)
from symgrad.render.prose import latex_safe_prose

N = sp.Symbol("n", positive=True, integer=True)  # batch size, for the loss scale


# -- naming: layer j (1-based, as the seed) ---------------------------------
def _mat(letter: str, j: int) -> tuple[str, str]:
    """(LaTeX, text) name of a layer matrix; A_0 is the input X."""
    if letter == "A" and j == 0:
        return "X", "X"
    sub = str(j) if j < 10 else f"{{{j}}}"
    return f"{letter}_{sub}", f"{letter}{j}"


def _m(letter: str, j: int) -> str:
    """LaTeX name only (for inline math in prose)."""
    return _mat(letter, j)[0]


def _d(letter: str, j: int) -> tuple[str, str]:
    tex, txt = _mat(letter, j)
    return f"d{tex}", f"d{txt}"


def _shape(rows: object, cols: object) -> tuple[str, str]:
    return rf"({rows} \times {cols})", f"({rows} x {cols})"


def _layer_names(j: int, last: bool) -> SymbolNames:
    """Symbol renaming for formulas of layer j (activation, or output when last)."""
    names: dict[sp.Symbol, tuple[str, str]] = {Z: _mat("Z", j), A: _mat("A", j)}
    if last:
        names[LSE] = (rf"\operatorname{{lse}}({_m('Z', j)})", f"lse(Z{j})")
    return names


def _matrix_names(last: int) -> SymbolNames:
    """Names for the output formulas in the matrix summary: P, Y, Z_L."""
    names = dict(_layer_names(last, last=True))
    names.update({P: ("P", "P"), Y: ("Y", "Y")})
    return names


def _fn_tex(latex_name: str, name: str) -> str:
    # The registry's LaTeX name may be a macro (\tanh) or a bare word.
    if latex_name.startswith("\\"):
        return latex_name
    return rf"\operatorname{{{latex_name or name}}}"


def _wrap(tex: str, txt: str, expr: sp.Expr) -> tuple[str, str]:
    """Parenthesise a factor that is a sum, for products like dA (.) f'."""
    if isinstance(expr, sp.Add):
        return rf"\left({tex}\right)", f"({txt})"
    return tex, txt


def _identity_step(sec: Section, ident: Identity, names: SymbolNames) -> None:
    """Print an identity the prove stage checks: raw == simplified (skipped if trivial)."""
    if ident.raw == ident.simplified:
        return
    text = (f"Identity '{latex_safe_prose(ident.name)}' (proven by sg.check: symbolically, "
            "and numerically at random points):")
    if ident.assumptions:
        text += f" assuming {latex_safe_prose(ident.assumptions)}."
    sec.add(text=text,
            math=f"{layer_latex(ident.raw, names)} = {layer_latex(ident.simplified, names)}",
            plain=f"{layer_str(ident.raw, names)} == {layer_str(ident.simplified, names)}")


# -- sections -----------------------------------------------------------------
def _forward_section(doc: Derivation, plan: NetworkPlan) -> None:
    sec = doc.section("Forward pass with shapes")
    L = len(plan.layers)
    sec.add(text=(f"A batch $X$ holds $n$ rows of {plan.input_dim} features. Dense layer $j$ "
                  "computes $Z_j = A_{j-1} W_j + b_j$ with $W_j$ of shape (in x out) and "
                  "$A_0 = X$; activations act elementwise. Layer 1 holds the parameters "
                  f"dense0.W and dense0.b, and so on ({', '.join(plan.param_names)})."))
    tex_rows, txt_rows = [rf"X &\in \mathbb{{R}}^{{n \times {plan.input_dim}}}"], [
        f"X: (n x {plan.input_dim})"]
    for layer in plan.layers:
        j = layer.index + 1
        z_tex, z_txt = _mat("Z", j)
        a_tex, a_txt = _mat("A", j - 1)
        bias_tex, bias_txt = (rf" + {_m('b', j)}", f" + b{j}") if layer.bias else ("", "")
        s_tex, s_txt = _shape("n", layer.out_dim)
        tex_rows.append(rf"{z_tex} &= {a_tex} {_m('W', j)}{bias_tex} \quad {s_tex}")
        txt_rows.append(f"{z_txt} = {a_txt} @ W{j}{bias_txt}    {s_txt}")
        names = _layer_names(j, last=layer.index == L - 1)
        if layer.activation is not None:
            act = layer.activation
            out_tex, out_txt = _mat("A", j)
            tex_rows.append(rf"{out_tex} &= {layer_latex(act.forward, names)} \quad {s_tex}")
            txt_rows.append(f"{out_txt} = {layer_str(act.forward, names)}    {s_txt}")
        elif layer.index == L - 1:
            tex_rows.append(rf"P &= {layer_latex(plan.output.prediction, names)} \quad {s_tex}")
            txt_rows.append(f"P = {layer_str(plan.output.prediction, names)}    {s_txt}")
    sec.add(math=r" \\ ".join(tex_rows), plain="\n".join(txt_rows))

    out = plan.output
    k = plan.output_dim
    if out.reduction == "rows":
        scale, how = 1 / N, "the mean over the $n$ rows of the sum over the"
    else:
        scale, how = 1 / (N * k), "the mean over all $n$ x"
    sec.add(text=(f"The loss '{latex_safe_prose(out.loss_name)}' is {how} {k} outputs of the "
                  "elementwise loss $l(p, y)$:"),
            math=(rf"L = {sp.latex(scale)} \sum_{{i=1}}^{{n}} \sum_{{c=1}}^{{{k}}} "
                  rf"l(p_{{ic}}, y_{{ic}}), \qquad l(p, y) = {layer_latex(out.loss_formula)}"),
            plain=(f"L = {sp.sstr(scale)} * sum_ic l(p_ic, y_ic),   "
                   f"l(p, y) = {layer_str(out.loss_formula)}"))

    chain_tex, chain_txt = ["L", "p"], ["L", "p"]
    for j in range(L, 0, -1):
        chain_tex += [_mat("Z", j)[0]] + ([_mat("A", j - 1)[0]] if j > 1 else [rf"{_m('W', j)}"])
        chain_txt += [_mat("Z", j)[1]] + ([_mat("A", j - 1)[1]] if j > 1 else [f"W{j}"])
    sec.add(text=("The backward journey runs the other way; each $W_j$ and $b_j$ branches off "
                  "its $Z_j$:"),
            math=r" \leftarrow ".join(chain_tex), plain=" <- ".join(chain_txt))


def _output_section(doc: Derivation, plan: NetworkPlan) -> None:
    out = plan.output
    L = len(plan.layers)
    names = _layer_names(L, last=True)
    z_tex, _ = _mat("Z", L)
    sec = doc.section(f"Output layer: Steps A, B, C ({latex_safe_prose(out.activation_name)} "
                      f"+ {latex_safe_prose(out.loss_name)})")

    def dd(num: str, den: str) -> str:
        return rf"\frac{{\partial {num}}}{{\partial {den}}}"

    sec.add(text=f"We want the error at the output logits, $dl/d{z_tex}$ per element. "
                 "The chain rule splits it in two:",
            math=(rf"{dd('l', z_tex)} = \underbrace{{{dd('l', 'p')}}}_{{\text{{Step A}}}}"
                  rf" \cdot \underbrace{{{dd('p', z_tex)}}}_{{\text{{Step B}}}}"),
            plain=f"dl/dZ{L} = dl/dp (Step A) * dp/dZ{L} (Step B)")
    sec.add(text=(f"Step A: the loss '{latex_safe_prose(out.loss_name)}' as written, and its "
                  "derivative in $p$ as SymPy derived it:"),
            math=rf"l(p, y) &= {layer_latex(out.loss_formula, names)} \\ "
                 rf"{dd('l', 'p')} &= {layer_latex(out.step_a, names)}",
            plain=f"l(p, y) = {layer_str(out.loss_formula, names)}\n"
                  f"dl/dp = {layer_str(out.step_a, names)}")
    b_text = (f"Step B: the output activation '{latex_safe_prose(out.activation_name)}', "
              "differentiated and written in terms of its own output $p$:")
    if out.kind == "softmax":
        b_text += (" for softmax every $p_c$ of a row depends on every logit of the row through "
                   "lse, the log-sum-exp of the row; the derived form is:")
    lse_tex = (rf"\operatorname{{lse}}({z_tex})_i &= \log \sum_{{m}} e^{{({z_tex})_{{im}}}} \\ "
               if out.kind == "softmax" else "")
    lse_txt = f"lse(Z{L})_i = log(sum_m exp(Z{L}[i, m]))\n" if out.kind == "softmax" else ""
    sec.add(text=b_text,
            math=lse_tex + rf"p &= {layer_latex(out.prediction, names)} \\ "
                 rf"{dd('p', z_tex)} &= {layer_latex(out.step_b, names)}",
            plain=lse_txt + f"p = {layer_str(out.prediction, names)}\n"
                  f"dp/dZ{L} = {layer_str(out.step_b, names)}")

    a_tex, a_txt = _wrap(layer_latex(out.step_a, names), layer_str(out.step_a, names), out.step_a)
    b_tex, b_txt = _wrap(layer_latex(out.step_b, names), layer_str(out.step_b, names), out.step_b)
    rows_tex = [rf"{dd('l', z_tex)} &= \left({a_tex}\right) \cdot \left({b_tex}\right)"]
    rows_txt = [f"dl/dZ{L} = ({a_txt}) * ({b_txt})"]
    if sp.sympify(out.delta_raw) != sp.sympify(out.step_a * out.step_b):
        rows_tex.append(rf"&= {layer_latex(out.delta_raw, names)}")
        rows_txt.append(f"      = {layer_str(out.delta_raw, names)}")
    rows_tex.append(rf"&= {layer_latex(out.delta, names)}")
    rows_txt.append(f"      = {layer_str(out.delta, names)}")
    # Compare with the product as written: SymPy may already have merged equal factors in
    # delta_raw, which would hide the cancellation the reader should see.
    product = sp.Mul(out.step_a, out.step_b, evaluate=False)
    trivial = out.step_a == 1 or out.step_b == 1
    cancels = not trivial and sp.count_ops(out.delta) < sp.count_ops(product)
    if trivial:
        c_text = "Step C: multiply A and B; one factor is 1, so the other is the error:"
    elif cancels:
        c_text = ("Step C: multiply A and B. The common factors cancel, and what is left is "
                  "the error the backward pass starts from:")
    else:
        c_text = "Step C: multiply A and B. Nothing cancels here; the product is used as derived:"
    sec.add(text=c_text, math=r" \\ ".join(rows_tex), plain="\n".join(rows_txt))
    if out.kind == "softmax":
        sec.add(text=("This needs $y$ to be one-hot: the $y_c$ of every row sum to 1. The sum over "
                      "the row that Step B brings in is multiplied by $\\sum_c y_c$, and only "
                      "because that sum is 1 does it collapse to the line above."))
    for ident in out.identities:
        _identity_step(sec, ident, names)
    sec.add(text=("Stable forward form: " + latex_safe_prose(out.stable_note)
                  + " In formulas, from the logits:"),
            math=rf"l = {layer_latex(out.loss_from_logits, names)}",
            plain=f"l = {layer_str(out.loss_from_logits, names)}")


def _dense_section(doc: Derivation, plan: NetworkPlan, layer: DensePlan) -> None:
    j = layer.index + 1
    h, k = layer.in_dim, layer.out_dim
    a_tex, a_txt = _mat("A", j - 1)
    dz_tex, dz_txt = _d("Z", j)
    sec = doc.section(f"Layer {j} ({layer.name}: Dense {h} -> {k}): gradients of W_{j}"
                      + (f" and b_{j}" if layer.bias else ""))
    sec.add(text=(f"The error arriving from above is ${dz_tex} = dL/d{_m('Z', j)}$, "
                  f"shape (n x {k}). Per element, each weight is multiplied by one input, so "
                  "its derivative is that input, and the rows of the batch add up:"),
            math=(rf"({_m('Z', j)})_{{ic}} = \sum_{{r}} ({a_tex})_{{ir}} "
                  rf"({_m('W', j)})_{{rc}} + \dots "
                  rf"\quad\Rightarrow\quad \frac{{\partial L}}{{\partial ({_m('W', j)})_{{rc}}}} = "
                  rf"\sum_{{i=1}}^{{n}} ({a_tex})_{{ir}} \, ({dz_tex})_{{ic}}"),
            plain=(f"Z{j}[i, c] = sum_r {a_txt}[i, r] * W{j}[r, c] + ...  =>  "
                   f"dL/dW{j}[r, c] = sum_i {a_txt}[i, r] * {dz_txt}[i, c]"))
    s1, s1t = _shape(h, "n")
    s2, s2t = _shape("n", k)
    sec.add(text=(f"In matrix form the sum over the batch index $i$ is a product with a transpose. "
                  f"The transpose appears so that the shapes match: ${_m('W', j)}$ is (in x out) = "
                  f"({h} x {k}), ${a_tex}$ is (n x {h}) and ${dz_tex}$ is (n x {k}); only "
                  f"${a_tex}^T$ times ${dz_tex}$ pairs up the $n$ rows and gives ({h} x {k})."),
            math=(rf"d{_m('W', j)} = {a_tex}^{{T}} \cdot {dz_tex} \qquad {s1} \cdot {s2} "
                  rf"\to {h} \times {k}"),
            plain=f"dW{j} = {a_txt}.T @ {dz_txt}    {s1t} . {s2t} -> {h} x {k}")
    if layer.bias:
        sec.add(text=(f"The bias ${_m('b', j)}$ is added to every row, so its gradient sums "
                      f"${dz_tex}$ over the rows (a product with a row of ones):"),
                math=(rf"d{_m('b', j)} = \sum_{{i=1}}^{{n}} ({dz_tex})_{{i,:}} = "
                      rf"\mathbf{{1}}_n^{{T}} {dz_tex} \qquad {_shape(1, 'n')[0]} \cdot {s2} "
                      rf"\to 1 \times {k}"),
                plain=f"db{j} = {dz_txt}.sum(axis=0)    (1 x n) . {s2t} -> 1 x {k}")
    else:
        sec.add(text=f"Layer {j} has no bias, so there is no ${_m('db', j)}$.")
    if j > 1:
        da_tex, da_txt = _d("A", j - 1)
        sec.add(text=(f"The error flows back to ${a_tex}$ through the same weights. Now "
                      f"${_m('W', j)}^T$ ({k} x {h}) appears, so that (n x {k}) times ({k} x {h}) "
                      f"has the shape (n x {h}) of ${a_tex}$:"),
                math=(rf"{da_tex} = {dz_tex} \cdot {_m('W', j)}^{{T}} \qquad {s2} \cdot "
                      rf"{_shape(k, h)[0]} \to n \times {h}"),
                plain=f"{da_txt} = {dz_txt} @ W{j}.T    {s2t} . {_shape(k, h)[1]} -> n x {h}")
    else:
        sec.add(text=("$dX = dZ_1 W_1^T$ is not needed: $X$ is data, not a parameter, so the "
                      "backward pass stops here and the kernel skips that product."))


def _activation_section(doc: Derivation, layer: DensePlan, act: ActivationPlan) -> None:
    j = layer.index + 1
    names = _layer_names(j, last=False)
    canon = {Z: ("z", "z"), A: ("a", "a")}
    a_tex, a_txt = _mat("A", j)
    z_tex, z_txt = _mat("Z", j)
    da_tex, da_txt = _d("A", j)
    dz_tex, dz_txt = _d("Z", j)
    f = _fn_tex(act.latex_name, act.name)
    sec = doc.section(f"Activation of layer {j}: A_{j} = {act.name}(Z_{j})")
    sec.add(text=f"Forward, elementwise, with the formula of '{latex_safe_prose(act.name)}':",
            math=rf"{a_tex} = f({z_tex}), \qquad f(z) = {f}(z) = {layer_latex(act.forward, canon)}",
            plain=f"{a_txt} = f({z_txt}),   f(z) = {act.name}(z) = {layer_str(act.forward, canon)}")
    if act.stable_forward != act.forward:
        sec.add(text="It is evaluated in the numerically stable form",
                math=f"f(z) = {layer_latex(act.stable_forward, canon)}",
                plain=f"f(z) = {layer_str(act.stable_forward, canon)}")
    sec.add(text="SymPy differentiates the formula:",
            math=f"f'(z) = {layer_latex(act.derivative_raw, canon)}",
            plain=f"f'(z) = {layer_str(act.derivative_raw, canon)}")
    free = act.derivative.free_symbols
    raw_tex, raw_txt = layer_latex(act.derivative_raw, names), layer_str(act.derivative_raw, names)
    new_tex, new_txt = layer_latex(act.derivative, names), layer_str(act.derivative, names)
    if A in free:
        text = (f"Rewritten in terms of the saved output $a = f(z)$, i.e. ${a_tex}$ "
                f"(identity '{latex_safe_prose(act.identity.name)}', proven by sg.check):")
    elif act.derivative != act.derivative_raw:
        text = (f"Simplified (identity '{latex_safe_prose(act.identity.name)}', proven by "
                "sg.check):")
    else:
        text = "The derivative is used as derived:"
    math = f"f'({z_tex}) = {raw_tex}" + (f" = {new_tex}" if new_tex != raw_tex else "")
    plain = f"f'({z_txt}) = {raw_txt}" + (f" = {new_txt}" if new_txt != raw_txt else "")
    sec.add(text=text, math=math, plain=plain)
    sec.add(text=_saved_sentence(act, j))
    _kink_steps(sec, act.derivative, names)
    sec.add(text="The error passes through the activation as an elementwise product:",
            math=f"{dz_tex} = " + _odot_tex(da_tex, act.derivative, new_tex),
            plain=f"{dz_txt} = " + _odot_txt(da_txt, act.derivative, new_txt))


def _saved_sentence(act: ActivationPlan, j: int) -> str:
    free = act.derivative.free_symbols
    if A in free and Z not in free:
        return (f"So the backward pass reads only ${_m('A', j)}$, which is kept anyway as the "
                f"input of layer {j + 1}; ${_m('Z', j)}$ need not be saved.")
    if Z in free and A not in free:
        return (f"SymPy found no form of $f'$ in $a = f(z)$ alone, so ${_m('Z', j)}$ is saved "
                "in the forward pass and $f'$ is evaluated from it.")
    if not free:
        return "The derivative is constant, so no forward value is needed for it."
    return (f"The derivative reads both ${_m('A', j)}$ and ${_m('Z', j)}$ "
            f"(saved: {', '.join(act.saved)}).")


def _kinks(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]]:
    """(step term, variable, point, value used) wherever a step in ``expr`` jumps.

    Found from the expression itself: Heaviside terms, and Piecewise terms
    whose branches disagree where a condition ``x > c`` switches.
    """
    found = []
    for hv in sorted(expr.atoms(sp.Heaviside), key=sp.default_sort_key):
        h0 = hv.args[1] if len(hv.args) > 1 else sp.S.Half
        found.append((hv, hv.args[0], sp.S.Zero, h0))
    for pw in sorted(expr.atoms(sp.Piecewise), key=sp.default_sort_key):
        for _, cond in pw.args:
            if not isinstance(cond, Relational):
                continue
            x, c = (cond.lhs, cond.rhs) if cond.rhs.is_number else (cond.rhs, cond.lhs)
            if not (x.is_Symbol and c.is_number):
                continue
            values = {sp.nsimplify(e.subs(x, c)) for e, _ in pw.args}
            if len(values) > 1:
                found.append((pw, x, c, pw.subs(x, c)))
    return found


def _kink_steps(sec: Section, expr: sp.Expr, names: SymbolNames) -> None:
    """Explain each step in f': a mask, and the value used where f' does not exist."""
    for term, x, c, used in _kinks(expr):
        t_tex, t_txt = layer_latex(term, names), layer_str(term, names)
        x_tex, x_txt = layer_latex(x, names), layer_str(x, names)
        mask = isinstance(term, sp.Heaviside) or indicator_condition(term) is not None
        text = ("This step is a mask: 1 lets the error through, 0 blocks it. " if mask else
                "This term has branches. ")
        text += (f"It switches at ${x_tex} = {sp.latex(c)}$. At the kink of $f$ the derivative "
                 "does not exist; symgrad uses the branch whose condition holds, the same in "
                 "this printout and in the numbers:")
        sec.add(text=text,
                math=rf"\left.{t_tex}\right|_{{{x_tex} = {sp.latex(c)}}} = "
                     f"{layer_latex(used, names)}",
                plain=f"at {x_txt} = {sp.sstr(c)}: {t_txt} = {layer_str(used, names)}")


def _odot_tex(da: str, deriv: sp.Expr, deriv_tex: str) -> str:
    """``dA (.) f'`` in LaTeX; just ``dA`` when f' is 1 (identity activation)."""
    if deriv == 1:
        return da
    return rf"{da} \odot {_wrap(deriv_tex, '', deriv)[0]}"


def _odot_txt(da: str, deriv: sp.Expr, deriv_txt: str) -> str:
    if deriv == 1:
        return da
    return f"{da} * {_wrap('', deriv_txt, deriv)[1]}"


def _summary_section(doc: Derivation, plan: NetworkPlan) -> None:
    L = len(plan.layers)
    out = plan.output
    scale = 1 / N if out.reduction == "rows" else 1 / (N * plan.output_dim)
    start = scale * out.delta
    mnames = _matrix_names(L)
    tex = [rf"{_m('dZ', L)} &= {layer_latex(start, mnames)}"]
    txt = [f"dZ{L} = {layer_str(start, mnames)}"]
    for layer in reversed(plan.layers):
        j = layer.index + 1
        a_tex, a_txt = _mat("A", j - 1)
        tex.append(rf"d{_m('W', j)} &= {a_tex}^{{T}} {_m('dZ', j)}")
        txt.append(f"dW{j} = {a_txt}.T @ dZ{j}")
        if layer.bias:
            tex.append(rf"d{_m('b', j)} &= \textstyle\sum_{{\text{{rows}}}} {_m('dZ', j)}")
            txt.append(f"db{j} = dZ{j}.sum(axis=0)")
        if j == 1:
            break
        prev = plan.layers[layer.index - 1]
        tex.append(rf"{_m('dA', j - 1)} &= {_m('dZ', j)} {_m('W', j)}^{{T}}")
        txt.append(f"dA{j - 1} = dZ{j} @ W{j}.T")
        deriv = prev.activation.derivative if prev.activation else sp.S.One
        names = _layer_names(j - 1, last=False)
        tex.append(rf"{_m('dZ', j - 1)} &= " + _odot_tex(_m("dA", j - 1), deriv,
                                                       layer_latex(deriv, names)))
        txt.append(f"dZ{j - 1} = " + _odot_txt(f"dA{j - 1}", deriv, layer_str(deriv, names)))
    sec = doc.section("Summary: the backward pass as code")
    sec.add(text=(f"With $dZ_j = dL/dZ_j$ and the loss scale {sp.sstr(scale)} of the batch "
                  "mean, the backward pass is these lines, in this order (the plain-text "
                  "version is NumPy):"),
            math=r" \\ ".join(tex), plain="\n".join(txt))
    sec.add(text="Saved from the forward pass: " + ", ".join(_saved_values(plan)) + ".")


def _saved_values(plan: NetworkPlan) -> list[str]:
    """Forward values the backward pass reads, from the plan's `saved` fields."""
    L = len(plan.layers)
    saved = ["$X$ (input of layer 1, for $dW_1$)"]
    for layer in plan.layers[:-1]:
        j = layer.index + 1
        act = layer.activation
        reads = act.saved if act is not None else ()
        if "z" in reads:
            saved.append(f"${_m('Z', j)}$ (read by $f'$ of layer {j})")
        why = f"input of layer {j + 1}" + (f", read by $f'$ of layer {j}" if "a" in reads else "")
        saved.append(f"${_m('A', j)}$ ({why})")
    uses = plan.output.delta_uses
    if "p" in uses:
        saved.append("$P$ (read by the output error)")
    if "z" in uses:
        saved.append(f"${_m('Z', L)}$ (read by the output error)")
    return saved


def _architecture(plan: NetworkPlan) -> str:
    parts = []
    for layer in plan.layers:
        parts.append(f"Dense({layer.in_dim}, {layer.out_dim})")
        parts.append(layer.activation.name if layer.activation else plan.output.activation_name)
    return " -> ".join(parts)


def network_derivation(plan: NetworkPlan, title: str | None = None) -> Derivation:
    """The backward pass of ``plan`` derived step by step, as seed 001 does by hand.

    Raises `TypeError` if ``plan`` is not a `NetworkPlan` and `ValueError` if
    it has no layers or its layer sizes do not chain.
    """
    if not isinstance(plan, NetworkPlan):
        raise TypeError(f"network_derivation needs a NetworkPlan, got {type(plan).__name__}")
    _check_plan(plan)
    doc = Derivation(
        title or f"Backpropagation: {_architecture(plan)} with {plan.output.loss_name} loss",
        intro=("Every formula below is printed from the SymPy expressions the compiler derived "
               "and the kernel evaluates; none is typed by hand. Layers are numbered from 1 as "
               "in the lecture notes."),
    )
    _forward_section(doc, plan)
    _output_section(doc, plan)
    for layer in reversed(plan.layers):
        _dense_section(doc, plan, layer)
        if layer.index > 0:
            prev = plan.layers[layer.index - 1]
            if prev.activation is not None:
                _activation_section(doc, prev, prev.activation)
    _summary_section(doc, plan)
    return doc


def _check_plan(plan: NetworkPlan) -> None:
    if not plan.layers:
        raise ValueError("network_derivation: the plan has no Dense layers")
    prev_dim, prev_name = plan.input_dim, "input"
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
