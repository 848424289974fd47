"""Textbook vs simplified: each derivative as the chain rule gives it, beside the form evaluated.

A textbook evaluates sigma'(z) as e^{-z}/(1 + e^{-z})^2 and the output error as
Step A times Step B, each as differentiated; symgrad evaluates p(1 - p) and
p - y. `textbook_vs_simplified` lists, for every activation of a network and
for its output layer, both forms and what one element of each costs
(`symgrad.simplify.op_count`: every operation as written, transcendental
functions counted apart); `textbook_section` prints that list in the network
printout. The textbook side is SymPy's own derivative of the user's formulas,
the simplified side the plan's expression: nothing is keyed by name.

>>> import symgrad as sg
>>> model = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Sigmoid()), loss="bce")
>>> rows = textbook_vs_simplified(model)
>>> [(r.quantity, r.textbook_ops.total, r.simplified_ops.total) for r in rows]
[('dp/dz', 7, 2), ('dl/dz', 13, 1)]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import sympy as sp

from symgrad.definition.convention import differentiate
from symgrad.definition.formulas import A, P, Y, Z
from symgrad.derive.plan import ActivationPlan, NetworkPlan, OutputPlan
from symgrad.render.document import Derivation
from symgrad.render.latex_printer import SymbolNames, layer_latex, layer_str
from symgrad.render.network_names import layer_names
from symgrad.render.prose import latex_safe_prose
from symgrad.simplify.op_count import OpCount, op_counts

SIDE_BY_SIDE_CHARS = 70   # longer pairs go on two rows, or the line runs off the page
TEXTBOOK_TITLE = "Textbook vs simplified: what one element costs"


@dataclass(frozen=True)
class TextbookRow:
    """One derivative in its textbook form and in the form the kernel evaluates."""

    where: str                 # "output layer (sigmoid + bce)", "layer 1 (relu)"
    quantity: str              # "dp/dz", "dl/dz", "f'(z)"
    textbook: sp.Expr
    simplified: sp.Expr
    textbook_ops: OpCount
    simplified_ops: OpCount
    names: SymbolNames         # how the printout names the symbols (z -> Z_2)
    lhs: tuple[str, str] = ("", "")   # the quantity as printed (LaTeX, text): dp/dZ_2

    @property
    def saved(self) -> int:
        """Operations per element the simplification saves (negative: it costs more)."""
        return self.textbook_ops.total - self.simplified_ops.total

    @property
    def saved_transcendental(self) -> int:
        """exp/log/tanh/... calls per element the simplification saves."""
        return self.textbook_ops.transcendental - self.simplified_ops.transcendental


def _row(where: str, quantity: str, textbook: sp.Expr, simplified: sp.Expr,
         names: SymbolNames) -> TextbookRow:
    z_tex, z_txt = names.get(Z, ("z", "z"))
    if quantity == "f'(z)":
        lhs = (f"f'({z_tex})", f"f'({z_txt})")
    else:
        num = quantity.split("/")[0][1:]
        lhs = (rf"\frac{{\partial {num}}}{{\partial {z_tex}}}", f"d{num}/d{z_txt}")
    return TextbookRow(where, quantity, textbook, simplified, op_counts(textbook),
                       op_counts(simplified), names, lhs)


def _activation_row(where: str, act: ActivationPlan, names: SymbolNames) -> TextbookRow:
    return _row(f"{where} ({act.name})", "f'(z)", act.derivative_raw, act.derivative, names)


def _hidden_rows(plan: NetworkPlan) -> list[TextbookRow]:
    """One row per hidden activation, the first layer that uses each (same formula, same row)."""
    rows, seen = [], set()
    canon = {Z: ("z", "z"), A: ("a", "a")}
    acts = [(f"image layer {f.name}", f.activation, canon) for f in plan.features
            if f.activation is not None]
    acts += [(f"layer {layer.index + 1}", layer.activation, layer_names(layer.index + 1, False))
             for layer in plan.layers if layer.activation is not None]
    for where, act, names in acts:
        key = (act.name, act.forward)
        if key not in seen:
            seen.add(key)
            rows.append(_activation_row(where, act, names))
    return rows


def _output_rows(plan: NetworkPlan) -> list[TextbookRow]:
    """Step B alone (elementwise outputs) and the output error, Step A times Step B."""
    out = plan.output
    names = layer_names(len(plan.layers), last=True)
    where = f"output layer ({out.activation_name} + {out.loss_name})"
    if isinstance(out.step_b, sp.MatrixBase):
        return [_softmax_row(out, names, where)]
    step_a = differentiate(out.loss_formula, P)
    step_b = differentiate(out.prediction, Z)
    rows = []
    if step_b != out.step_b:
        rows.append(_row(where, "dp/dz", step_b, out.step_b, names))
    # A factor 1 (identity output) is no operation anyone would evaluate.
    product = step_a if step_b == 1 else sp.Mul(step_a, step_b, evaluate=False)
    rows.append(_row(where, "dl/dz", product, out.delta, names))
    return rows


def _softmax_row(out: OutputPlan, names: SymbolNames, where: str) -> TextbookRow:
    """Softmax: the textbook sums Step A times the Jacobian's column over the row's classes.

    Written for the first logit of a row of K classes (the plan's Jacobian), with p_c
    and y_c per class; the simplified side is the plan's error for that logit, p_1 - y_1.
    """
    jac = out.step_b
    k = jac.shape[0]
    p = sp.symbols(f"p1:{k + 1}", positive=True)
    y = sp.symbols(f"y1:{k + 1}", real=True)
    terms = [sp.Mul(out.step_a.xreplace({P: p[c], Y: y[c]}), jac[c, 0], evaluate=False)
             for c in range(k)]
    first = {P: p[0], Y: y[0]}
    row = _row(where, "dl/dz", sp.Add(*terms, evaluate=False), out.delta.xreplace(first), names)
    return dataclasses.replace(row, lhs=(r"\frac{\partial l}{\partial z_1}", "dl/dz1"))


def textbook_vs_simplified(model: object) -> list[TextbookRow]:
    """Every derivative of ``model`` (a compiled model or a `NetworkPlan`), textbook vs simplified.

    Rows: the output layer's dp/dz (when simplified) and dl/dz = Step A * Step B as
    differentiated, then each distinct hidden activation's f'(z) as SymPy derived it,
    each beside the form the kernel evaluates, with operation counts per element.
    Raises `TypeError` for anything without a plan.
    """
    plan = model if isinstance(model, NetworkPlan) else getattr(model, "plan", None)
    if not isinstance(plan, NetworkPlan):
        raise TypeError("textbook_vs_simplified needs a compiled model or a NetworkPlan, got "
                        f"{type(model).__name__}")
    return _output_rows(plan) + _hidden_rows(plan)


def _saving(row: TextbookRow) -> str:
    if row.saved > 0:
        text = f"the simplification saves {row.saved} of {row.textbook_ops.total} operations"
        if row.saved_transcendental > 0:
            text += f", {row.saved_transcendental} of them transcendental"
        return text + "."
    if row.saved == 0:
        return "the simplified form costs the same; it is chosen for accuracy or for what it reads."
    return (f"the evaluated form costs {-row.saved} operations more; it is chosen because it "
            "stays accurate where the shorter one overflows or cancels.")


def textbook_section(doc: Derivation, plan: NetworkPlan) -> None:
    """A section of the printout: every row of `textbook_vs_simplified`, side by side."""
    rows = textbook_vs_simplified(plan)
    sec = doc.section(TEXTBOOK_TITLE)
    sec.add(text=("On the left each derivative as the textbook chain rule gives it, on the right "
                  "the form the kernel evaluates, with the operations one element costs (every "
                  "occurrence counted, as written; exp, log and the other special functions "
                  "count as transcendental and cost far more than a multiplication)."))
    for row in rows:
        lhs, lhs_txt = row.lhs
        old_tex, new_tex = layer_latex(row.textbook, row.names), layer_latex(row.simplified,
                                                                            row.names)
        old_txt, new_txt = layer_str(row.textbook, row.names), layer_str(row.simplified,
                                                                         row.names)
        if len(old_tex) + len(new_tex) < SIDE_BY_SIDE_CHARS:
            math = rf"{lhs} = {old_tex} \qquad \text{{vs}} \qquad {new_tex}"
        else:
            math = (rf"\text{{textbook: }} {lhs} &= {old_tex} \\ "
                    rf"\text{{simplified: }} {lhs} &= {new_tex}")
        sec.add(text=(f"{latex_safe_prose(row.where).capitalize()}: textbook "
                      f"{row.textbook_ops.summary()}; simplified {row.simplified_ops.summary()}; "
                      + _saving(row)),
                math=math,
                plain=(f"textbook:   {lhs_txt} = {old_txt}\n"
                       f"simplified: {lhs_txt} = {new_txt}"))
