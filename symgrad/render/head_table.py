"""Two output heads side by side, as seed 004 tabulates binary vs multiclass classification.

`head_table` reads each compiled model's plan -- its output activation, loss,
Steps A, B and C, output shape -- and lays them out as one table (a LaTeX
``array``, the same in Markdown, a fixed-width table in text). Every cell is
printed from the plan's SymPy expressions; the prediction rule and the label
format follow from the output's kind and range, not from the loss's name.

>>> import symgrad as sg
>>> a = sg.compile(sg.Sequential(sg.Dense(4, 1), sg.Sigmoid()), loss="bce")
>>> b = sg.compile(sg.Sequential(sg.Dense(4, 3), sg.Softmax()), loss="cross_entropy")
>>> [(c.row, c.texts) for c in head_cells(a, b) if c.row == "Step C: dl/dz"]
[('Step C: dl/dz', ('p - y', 'p - y'))]
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgrad.definition.formulas import Z
from symgrad.derive.plan import LSE, NetworkPlan, OutputPlan
from symgrad.render.document import Derivation
from symgrad.render.latex_printer import layer_latex, layer_str
from symgrad.render.network_names import function_tex
from symgrad.render.prose import escape_latex_text

NAMES = {LSE: (r"\operatorname{lse}(z)", "lse(z)")}


@dataclass(frozen=True)
class HeadCell:
    """One row of the table: its label and one (LaTeX, text) cell per model."""

    row: str
    cells: tuple[tuple[str, str], ...]

    @property
    def texts(self) -> tuple[str, ...]:
        """The plain-text cells."""
        return tuple(txt for _, txt in self.cells)


def _plan(model: object) -> NetworkPlan:
    plan = model if isinstance(model, NetworkPlan) else getattr(model, "plan", None)
    if not isinstance(plan, NetworkPlan):
        raise TypeError(f"head_table needs compiled models or NetworkPlans, got "
                        f"{type(model).__name__}")
    return plan


def probability_output(out: OutputPlan) -> bool:
    """True when the output is a probability: softmax, or f(z) -> 0 and 1 at -oo and +oo."""
    if out.kind == "softmax":
        return True
    f = out.prediction
    try:
        ends = {sp.limit(f, Z, -sp.oo), sp.limit(f, Z, sp.oo)}
    except (NotImplementedError, ValueError):
        return False
    return ends == {sp.S.Zero, sp.S.One}


def _classifies(out: OutputPlan) -> bool:
    # A probability scored by a log-likelihood is a classifier; a sigmoid scored by
    # squared error is a bounded regression and predicts p itself.
    return probability_output(out) and out.loss_formula.has(sp.log)


def _prediction_rule(plan: NetworkPlan) -> tuple[str, str]:
    out = plan.output
    if out.kind == "softmax":
        return r"\hat{y} = \arg\max_{c}\, p_{c}", "yhat = argmax_c p_c"
    if _classifies(out):
        return r"\hat{y} = \left[p > \tfrac{1}{2}\right]", "yhat = (p > 1/2)"
    return r"\hat{y} = p", "yhat = p"


def _label_format(plan: NetworkPlan) -> tuple[str, str]:
    out, k = plan.output, plan.output_dim
    if out.kind == "softmax":
        return (rf"y \in \{{0, \dots, {k - 1}\}}^{{n}} \text{{ or one-hot }} "
                rf"\{{0, 1\}}^{{n \times {k}}}",
                f"y in {{0..{k - 1}}}^n or one-hot {{0, 1}}^(n x {k})")
    if _classifies(out):
        return rf"y \in \{{0, 1\}}^{{n \times {k}}}", f"y in {{0, 1}}^(n x {k})"
    return rf"y \in \mathbb{{R}}^{{n \times {k}}}", f"y real, (n x {k})"


def _column(plan: NetworkPlan) -> list[tuple[str, str]]:
    out = plan.output
    act = function_tex(out.activation_latex, out.activation_name)
    loss = function_tex(out.loss_latex, out.loss_name)
    tex, txt = (lambda e: layer_latex(e, NAMES)), (lambda e: layer_str(e, NAMES))
    return [
        (rf"{act}:\; p = {tex(out.prediction)}",
         f"{out.activation_name}: p = {txt(out.prediction)}"),
        (rf"{loss}:\; l = {tex(out.loss_formula)}",
         f"{out.loss_name}: l = {txt(out.loss_formula)}"),
        (tex(out.step_a), txt(out.step_a)),
        (tex(out.step_b), txt(out.step_b)),
        (tex(out.delta), txt(out.delta)),
        (rf"n \times {plan.output_dim}", f"n x {plan.output_dim}"),
        _prediction_rule(plan),
        _label_format(plan),
    ]


ROWS = ("output activation", "loss", "Step A: dl/dp", "Step B: dp/dz", "Step C: dl/dz",
        "output shape", "prediction rule", "label format")


def head_cells(*models: object) -> list[HeadCell]:
    """The table's rows, each with one cell per model (from each model's plan)."""
    columns = [_column(_plan(m)) for m in models]
    return [HeadCell(row, tuple(col[i] for col in columns)) for i, row in enumerate(ROWS)]


def _heading(plan: NetworkPlan) -> str:
    return f"{plan.output.activation_name} + {plan.output.loss_name}"


def _text_table(headings: list[str], cells: list[HeadCell]) -> str:
    rows = [["", *headings]] + [[c.row, *c.texts] for c in cells]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def head_table(model_a: object, model_b: object, title: str = "Two output heads side by side"
               ) -> Derivation:
    """Seed 004's binary-vs-multiclass table, every cell from the two models' plans.

    Returns a `Derivation` (LaTeX, Markdown, text). Raises `TypeError` if a
    model has no plan.
    """
    plans = [_plan(model_a), _plan(model_b)]
    headings = [_heading(p) for p in plans]
    cells = head_cells(*plans)
    doc = Derivation(title, intro=("Each column is one compiled model; every formula is printed "
                                   "from the expressions SymPy derived for it."))
    sec = doc.section("Output head, loss and Steps A, B, C")
    head_tex = " & ".join(rf"\text{{{escape_latex_text(h)}}}" for h in headings)
    body = [rf"& {head_tex} \\ \hline"]
    for cell in cells:
        label = escape_latex_text(cell.row)
        # Display style: the fractions of Steps A and B read as in the printout, not shrunk.
        body.append(rf"\text{{{label}}} & "
                    + " & ".join(rf"\displaystyle {t}" for t, _ in cell.cells) + r" \\[2pt]")
    math = r"\begin{array}{l|l|l} " + " ".join(body) + r" \end{array}"
    sec.add(text="Both heads, row by row (Step B of a softmax is the Jacobian of one row of "
                 "logits):", math=math, plain=_text_table(headings, cells))
    deltas = [p.output.delta for p in plans]
    if sp.simplify(deltas[0] - deltas[1]) == 0:
        sec.add(text=("Step C is the same for both heads: the backward pass starts from the "
                      f"same error ${layer_latex(deltas[0], NAMES)}$, only its shape differs."))
    else:
        sec.add(text="Step C differs between the heads: each backward pass starts from its own "
                     "error.")
    return doc
