"""The output layer of the network printout: Steps A, B and C, as seed 001 does them.

Step A is dl/dp of the loss, Step B is dp/dz of the output activation (in
terms of p), Step C their product and its cancellation to the error the
backward pass starts from. All are the `OutputPlan`'s SymPy expressions.
"""

from __future__ import annotations

import sympy as sp

from symgrad.derive.plan import Identity, NetworkPlan
from symgrad.render.document import Derivation, Section
from symgrad.render.latex_printer import SymbolNames, layer_latex, layer_str
from symgrad.render.network_names import layer_names, mat
from symgrad.render.prose import latex_safe_prose


def identity_step(sec: Section, ident: Identity, names: SymbolNames) -> None:
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

def output_section(doc: Derivation, plan: NetworkPlan) -> None:
    out = plan.output
    L = len(plan.layers)
    names = layer_names(L, last=True)
    z_tex, _ = mat("Z", L)
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

    a_tex, a_txt = layer_latex(out.step_a, names), layer_str(out.step_a, names)
    b_tex, b_txt = layer_latex(out.step_b, names), layer_str(out.step_b, names)
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
        identity_step(sec, ident, names)
    sec.add(text=("Stable forward form: " + latex_safe_prose(out.stable_note)
                  + " In formulas, from the logits:"),
            math=rf"l = {layer_latex(out.loss_from_logits, names)}",
            plain=f"l = {layer_str(out.loss_from_logits, names)}")
