"""The output layer of the network printout: Steps A, B and C, as seed 001 does them.

Step A is dl/dp of the loss, Step B is dp/dz of the output activation (in
terms of p), Step C their product and its cancellation to the error the
backward pass starts from. All are the `OutputPlan`'s SymPy expressions.
"""

from __future__ import annotations

import sympy as sp

from symgrad.definition.formulas import P, Y
from symgrad.derive.plan import Identity, NetworkPlan
from symgrad.render.document import Derivation, Section
from symgrad.render.latex_printer import SymbolNames, layer_latex, layer_str
from symgrad.render.network_names import layer_names, mat
from symgrad.render.prose import latex_safe_prose

IDENTITY_OPS_SHOWN = 24   # longer raw sides are summarised: a page of exp() helps nobody


def _shown(ident: Identity) -> bool:
    # The plan may keep a product with 1 unevaluated (x*1); that is no identity worth a line.
    raw = ident.raw
    if isinstance(raw, sp.Mul) and sp.S.One in raw.args:
        raw = sp.Mul(*[f for f in raw.args if f != 1])
    return raw != ident.simplified


def identity_step(sec: Section, ident: Identity, names: SymbolNames) -> None:
    """Print an identity the prove stage checks: raw == simplified (skipped if trivial)."""
    if not _shown(ident):
        return
    text = f"'{latex_safe_prose(ident.name)}'"
    text += f", assuming {latex_safe_prose(ident.assumptions)}:" if ident.assumptions else ":"
    new_tex, new_txt = layer_latex(ident.simplified, names), layer_str(ident.simplified, names)
    ops = sp.count_ops(ident.raw)
    if ops > IDENTITY_OPS_SHOWN:
        sec.add(text=text + f" the raw chain-rule side ({ops} operations) reduces to",
                math=new_tex, plain=new_txt)
        return
    sec.add(text=text, math=f"{layer_latex(ident.raw, names)} = {new_tex}",
            plain=f"{layer_str(ident.raw, names)} == {new_txt}")


def _dd(num: str, den: str) -> str:
    return rf"\frac{{\partial {num}}}{{\partial {den}}}"


def output_section(doc: Derivation, plan: NetworkPlan) -> None:
    """Steps A, B, C for the output activation fused with the loss, then the stable form."""
    out = plan.output
    L = len(plan.layers)
    names = layer_names(L, last=True)
    z_tex, _ = mat("Z", L)
    sec = doc.section(f"Output layer: Steps A, B, C ({latex_safe_prose(out.activation_name)} "
                      f"+ {latex_safe_prose(out.loss_name)})")
    sec.add(text=f"We want the error at the output logits, $dl/d{z_tex}$ per element. "
                 "The chain rule splits it in two:",
            math=(rf"{_dd('l', z_tex)} = \underbrace{{{_dd('l', 'p')}}}_{{\text{{Step A}}}}"
                  rf" \cdot \underbrace{{{_dd('p', z_tex)}}}_{{\text{{Step B}}}}"),
            plain=f"dl/dZ{L} = dl/dp (Step A) * dp/dZ{L} (Step B)")
    sec.add(text=(f"Step A: the loss '{latex_safe_prose(out.loss_name)}' as written, and its "
                  "derivative in $p$ as SymPy derived it:"),
            math=rf"l(p, y) &= {layer_latex(out.loss_formula, names)} \\ "
                 rf"{_dd('l', 'p')} &= {layer_latex(out.step_a, names)}",
            plain=f"l(p, y) = {layer_str(out.loss_formula, names)}\n"
                  f"dl/dp = {layer_str(out.step_a, names)}")
    _step_b(sec, plan, names)
    if isinstance(out.step_b, sp.MatrixBase):
        _step_c_vector(sec, plan, names)
    else:
        _step_c_elementwise(sec, plan, names)
    if any(_shown(ident) for ident in out.identities):
        sec.add(text=("The identities behind these steps, each proven by sg.check symbolically "
                      "and numerically at random points:"))
    for ident in out.identities:
        identity_step(sec, ident, names)
    sec.add(text=("Stable forward form: " + latex_safe_prose(out.stable_note)
                  + " In formulas, from the logits:"),
            math=rf"l = {layer_latex(out.loss_from_logits, names)}",
            plain=f"l = {layer_str(out.loss_from_logits, names)}")


def _step_b(sec: Section, plan: NetworkPlan, names: SymbolNames) -> None:
    out, L = plan.output, len(plan.layers)
    z_tex = mat("Z", L)[0]
    rows_tex = [rf"p &= {layer_latex(out.prediction, names)}"]
    rows_txt = [f"p = {layer_str(out.prediction, names)}"]
    text = (f"Step B: the output activation '{latex_safe_prose(out.activation_name)}', "
            "differentiated and written in terms of its own output $p$")
    if out.kind == "softmax":
        rows_tex.insert(0, rf"\operatorname{{lse}}({z_tex})_i &= \log \sum_{{m}} "
                           rf"e^{{({z_tex})_{{im}}}}")
        rows_txt.insert(0, f"lse(Z{L})_i = log(sum_m exp(Z{L}[i, m]))")
        text += (". Every $p_c$ of a row depends on every logit of the row through lse, the "
                 "log-sum-exp of the row")
    stable = out.stable_prediction
    if stable is not None and stable != out.prediction:
        rows_tex.append(rf"&= {layer_latex(stable, names)} \quad \text{{(evaluated so)}}")
        rows_txt.append(f"  = {layer_str(stable, names)}    (evaluated so)")
    if isinstance(out.step_b, sp.MatrixBase):
        k = out.step_b.shape[0]
        text += (f"; SymPy derives the Jacobian on an explicit row of K = {k} logits "
                 "($p_c$, $z_m$ for classes $c$, $m$)")
        rows_tex.append(rf"\left({_dd('p_c', 'z_m')}\right)_{{c,m}} &= "
                        f"{layer_latex(out.step_b, names)}")
        rows_txt.append(f"dp_c/dz_m = {layer_str(out.step_b, names)}")
    else:
        rows_tex.append(rf"{_dd('p', z_tex)} &= {layer_latex(out.step_b, names)}")
        rows_txt.append(f"dp/dZ{L} = {layer_str(out.step_b, names)}")
    sec.add(text=text + ":", math=r" \\ ".join(rows_tex), plain="\n".join(rows_txt))


def _step_c_elementwise(sec: Section, plan: NetworkPlan, names: SymbolNames) -> None:
    out, L = plan.output, len(plan.layers)
    z_tex = mat("Z", L)[0]
    a_tex, a_txt = layer_latex(out.step_a, names), layer_str(out.step_a, names)
    b_tex, b_txt = layer_latex(out.step_b, names), layer_str(out.step_b, names)
    rows_tex = [rf"{_dd('l', z_tex)} &= \left({a_tex}\right) \cdot \left({b_tex}\right)"]
    rows_txt = [f"dl/dZ{L} = ({a_txt}) * ({b_txt})"]
    # The plan keeps the product unevaluated; print it again only if it is something else.
    product = sp.Mul(out.step_a, out.step_b, evaluate=False)
    if out.delta_raw not in (product, out.step_a * out.step_b, out.delta):
        rows_tex.append(rf"&= {layer_latex(out.delta_raw, names)}")
        rows_txt.append(f"      = {layer_str(out.delta_raw, names)}")
    rows_tex.append(rf"&= {layer_latex(out.delta, names)}")
    rows_txt.append(f"      = {layer_str(out.delta, names)}")
    # Judge the cancellation against the product as written: SymPy merges equal factors
    # as soon as it evaluates a product, which would hide what cancelled.
    trivial = out.step_a == 1 or out.step_b == 1
    if trivial:
        text = "Step C: multiply A and B; one factor is 1, so the other is the error:"
    elif sp.count_ops(out.delta) < sp.count_ops(product):
        text = ("Step C: multiply A and B. The common factors cancel, and what is left is "
                "the error the backward pass starts from:")
    else:
        text = "Step C: multiply A and B. Nothing cancels here; the product is used as derived:"
    sec.add(text=text, math=r" \\ ".join(rows_tex), plain="\n".join(rows_txt))


def _step_c_vector(sec: Section, plan: NetworkPlan, names: SymbolNames) -> None:
    """Step C when Step B is a Jacobian: the chain rule sums over the classes of the row."""
    out, L = plan.output, len(plan.layers)
    k = out.step_b.shape[0]
    first = {**names, P: ("p_{1}", "p1"), Y: ("y_{1}", "y1")}
    each = {**names, P: ("p_c", "p_c"), Y: ("y_c", "y_c")}
    sec.add(text=("Step C: for the first logit of a row (the others follow by symmetry) the "
                  "chain rule sums over the classes; SymPy cancels the sum, written with "
                  "$p = p_1$ and $y = y_1$:"),
            math=(rf"{_dd('l', 'z_1')} &= \sum_{{c=1}}^{{{k}}} "
                  rf"\left({layer_latex(out.step_a, each)}\right) {_dd('p_c', 'z_1')} \\ "
                  rf"&= {layer_latex(out.delta_raw, first)} \\ "
                  rf"&= {layer_latex(out.delta, first)}"),
            plain=(f"dl/dz1 = sum_c ({layer_str(out.step_a, each)}) * dp_c/dz1\n"
                   f"       = {layer_str(out.delta_raw, first)}\n"
                   f"       = {layer_str(out.delta, first)}"))
    sec.add(text=("This needs $y$ to be one-hot: the $y_c$ of every row sum to 1. The terms of "
                  "the other classes add up to $p_1$ times their targets' sum, and only because "
                  "all targets sum to 1 does it collapse. Per element, for every class of "
                  "every row:"),
            math=rf"{_dd('l', mat('Z', L)[0])} = {layer_latex(out.delta, names)}",
            plain=f"dl/dZ{L} = {layer_str(out.delta, names)}")
