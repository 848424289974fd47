"""The output layer of the network printout: Steps A, B and C, as seed 001 does them.

Step A is dl/dp of the loss, line by line from SymPy's derivative to the
simplified form (common denominator, numerator multiplied out, the terms that
cancel); Step B is dp/dz of the output activation, derived and rewritten in
terms of p line by line; Step C their product and its cancellation to the
error the backward pass starts from. The expressions are the `OutputPlan`'s
and `symgrad.simplify.step_algebra`'s; the identities sg.check proves and the
stable forms the kernel evaluates go to the appendices. The section ends with
the textbook-vs-simplified comparison of every activation of the network
(`symgrad.render.textbook`).
"""

from __future__ import annotations

import sympy as sp

from symgrad.definition.convention import differentiate
from symgrad.definition.formulas import P, Y, Z
from symgrad.derive.plan import Identity, NetworkPlan
from symgrad.render.document import Derivation, Section
from symgrad.render.latex_printer import SymbolNames, layer_latex, layer_str
from symgrad.render.network_activation import (
    EVALUATION_APPENDIX,
    algebra_rows,
    appendix_identity,
    branch_rewrites,
    branch_steps,
    name_math,
    using_sentences,
)
from symgrad.render.network_names import layer_names, mat
from symgrad.render.prose import latex_safe_prose
from symgrad.render.textbook import textbook_section
from symgrad.simplify.step_algebra import loss_derivative_steps, saved_output_steps

IDENTITY_OPS_SHOWN = 24   # longer raw sides are summarised: a page of exp() helps nobody


def _shown(ident: Identity) -> bool:
    # The plan may keep a product with 1 unevaluated (x*1); that is no identity worth a line.
    raw = ident.raw
    if isinstance(raw, sp.Mul) and sp.S.One in raw.args:
        raw = sp.Mul(*[f for f in raw.args if f != 1])
    return raw != ident.simplified


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
    _step_a(sec, plan, names)
    _step_b(doc, sec, plan, names)
    if isinstance(out.step_b, sp.MatrixBase):
        _step_c_vector(sec, plan, names)
    else:
        _step_c_elementwise(sec, plan, names)
    where = (f"Output layer ({latex_safe_prose(out.activation_name)} + "
             f"{latex_safe_prose(out.loss_name)})")
    shown = [ident for ident in out.identities if _shown(ident)]
    if shown:
        sec.add(text=("Each equality above is proven by sg.check, symbolically and numerically "
                      "at random points (listed in the appendix)."))
    for ident in shown:
        appendix_identity(doc, where, ident, names, IDENTITY_OPS_SHOWN)
    doc.appendix(EVALUATION_APPENDIX).add(
        text=(f"{where}: the loss is computed from the logits in a stable form. "
              + latex_safe_prose(out.stable_note)),
        math=rf"l = {layer_latex(out.loss_from_logits, names)}",
        plain=f"l = {layer_str(out.loss_from_logits, names)}")
    if out.kind == "elementwise" and out.stable_loss is not None:
        # simplify.fusion.choose_loss: that form misses the accuracy bound somewhere
        doc.appendix(EVALUATION_APPENDIX).add(
            text=(f"{where}: that form is inf, NaN or inaccurate for some logits, so the "
                  "kernels evaluate the equal form below (the most accurate measured, proven "
                  "equal by sg.check):"),
            math=rf"l = {layer_latex(out.stable_loss, names)}",
            plain=f"l = {layer_str(out.stable_loss, names)}")
    textbook_section(doc, plan)


def _step_a(sec: Section, plan: NetworkPlan, names: SymbolNames) -> None:
    """The loss, then dl/dp line by line as SymPy computes it (`loss_derivative_steps`)."""
    out = plan.output
    lines = loss_derivative_steps(out.loss_formula, P)
    loss = name_math(out.loss_latex, out.loss_name)
    if len(lines) == 1:
        how = "as SymPy returns it, already as short as it gets:"
    else:
        how = "first as SymPy returns it, then each line computed by SymPy from the one before:"
    sec.add(text=f"Step A: the loss {loss} as written.",
            math=rf"l(p, y) = {layer_latex(out.loss_formula, names)}",
            plain=f"l(p, y) = {layer_str(out.loss_formula, names)}")
    math, plain = algebra_rows((_dd("l", "p"), "dl/dp"), lines, names)
    sec.add(text=f"Its derivative in $p$, {how}", math=math, plain=plain)
    cancelled = [pair for line in lines for pair in line.cancelled]
    if cancelled:
        pairs = ", ".join(f"${layer_latex(a, names)}$ and ${layer_latex(b, names)}$"
                          for a, b in cancelled)
        sec.add(text=(f"Over the common denominator the numerator is multiplied out term by term; "
                      f"{pairs} sum to zero and cancel. Step A is"),
                math=rf"{_dd('l', 'p')} = {layer_latex(lines[-1].expr, names)}",
                plain=f"dl/dp = {layer_str(lines[-1].expr, names)}")
    elif len(lines) > 1:
        sec.add(text="No terms cancel in this derivative; SymPy only writes it in a shorter form.")


def _step_b(doc: Derivation, sec: Section, plan: NetworkPlan, names: SymbolNames) -> None:
    out, L = plan.output, len(plan.layers)
    z_tex = mat("Z", L)[0]
    act = name_math(out.activation_latex, out.activation_name)
    rows_tex = [rf"p &= {layer_latex(out.prediction, names)}"]
    rows_txt = [f"p = {layer_str(out.prediction, names)}"]
    text = (f"Step B: the output activation {act}, differentiated and written in terms of its "
            "own output $p$")
    if out.kind == "softmax":
        rows_tex.insert(0, rf"\operatorname{{lse}}({z_tex})_i &= \log \sum_{{m}} "
                           rf"e^{{({z_tex})_{{im}}}}")
        rows_txt.insert(0, f"lse(Z{L})_i = log(sum_m exp(Z{L}[i, m]))")
        text += (". Every $p_c$ of a row depends on every logit of the row through lse, the "
                 "log-sum-exp of the row")
    stable = out.stable_prediction
    if stable is not None and stable != out.prediction:
        doc.appendix(EVALUATION_APPENDIX).add(
            text=f"Output layer, {act}: the prediction is evaluated in the equal form",
            math=rf"p = {layer_latex(stable, names)}", plain=f"p = {layer_str(stable, names)}")
    if isinstance(out.step_b, sp.MatrixBase):
        k = out.step_b.shape[0]
        text += (f"; SymPy derives the Jacobian on an explicit row of K = {k} logits "
                 "($p_c$, $z_m$ for classes $c$, $m$)")
        rows_tex.append(rf"\left({_dd('p_c', 'z_m')}\right)_{{c,m}} &= "
                        f"{layer_latex(out.step_b, names)}")
        rows_txt.append(f"dp_c/dz_m = {layer_str(out.step_b, names)}")
        sec.add(text=text + ":", math=r" \\ ".join(rows_tex), plain="\n".join(rows_txt))
    else:
        sec.add(text=text + ":", math=r" \\ ".join(rows_tex), plain="\n".join(rows_txt))
        _step_b_lines(sec, plan, names)


def _step_b_lines(sec: Section, plan: NetworkPlan, names: SymbolNames) -> None:
    """dp/dz derived from the activation's formula and rewritten in p, line by line."""
    out, L = plan.output, len(plan.layers)
    z_tex, z_txt = mat("Z", L)
    derived = differentiate(out.prediction, Z)
    branch_steps(sec, out.prediction, derived, names, ("p", "p"),
                 (_dd("p", z_tex), f"dp/dZ{L}"))
    lines = saved_output_steps(out.prediction, derived, out.step_b, Z, P)
    lhs = (_dd("p", z_tex), f"dp/dZ{L}")
    if lines:
        math, plain = algebra_rows(lhs, lines, names)
        sec.add(text="SymPy differentiates the formula, and each line after is computed from the "
                     "one before:", math=math, plain=plain)
        for sentence in using_sentences(lines, names):
            sec.add(text=sentence)
        return
    if branch_rewrites(sec, out.prediction, derived, out.step_b, P, lhs, names):
        return
    raw_tex, new_tex = layer_latex(derived, names), layer_latex(out.step_b, names)
    raw_txt, new_txt = layer_str(derived, names), layer_str(out.step_b, names)
    if raw_txt == new_txt:
        sec.add(text="SymPy differentiates the formula:", math=f"{lhs[0]} = {raw_tex}",
                plain=f"{lhs[1]} = {raw_txt}")
    else:
        sec.add(text="SymPy differentiates the formula, and the simplify stage rewrites it:",
                math=f"{lhs[0]} &= {raw_tex} \\\\ &= {new_tex}",
                plain=f"{lhs[1]} = {raw_txt}\n{' ' * len(lhs[1])} = {new_txt}")


def _logs_of_p(expr: sp.Expr) -> bool:
    """Whether ``expr`` takes a log of something in the prediction p."""
    return any(log.has(P) for log in expr.atoms(sp.log))


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
    elif _logs_of_p(product) and not _logs_of_p(out.delta):
        # simplify.fusion.from_logits: the form chosen has its logs in the logits
        text = (f"Step C: multiply A and B. As written, a log of $p$ is $-\\infty$ where $p$ "
                f"rounds to 0 or 1, beside a factor that is 0 there (NaN, where the exact "
                f"slope is an ordinary number); so the kernel evaluates every log, and every "
                f"sum of $p$ alone, in the logits ${z_tex}$, where they stay finite:")
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
