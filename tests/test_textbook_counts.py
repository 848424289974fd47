"""Textbook vs simplified, with operation counts (issue 10, item 15).

The textbook side is SymPy's derivative of the user's formulas (sigma'(z) =
e^{-z}/(1 + e^{-z})^2, Step A times Step B unsimplified), the simplified side the
plan's form (p(1 - p), p - y); counts are `sympy.count_ops`, split by kind.
"""

from __future__ import annotations

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.activations import REGISTRY
from symgrad.definition.formulas import A, P, Y, Z
from symgrad.render.textbook import TEXTBOOK_TITLE, textbook_vs_simplified
from symgrad.simplify.network import derive_network
from symgrad.simplify.op_count import op_counts


def test_counts_by_hand():
    # p*(1 - p): one subtraction, one multiplication.
    c = op_counts(P * (1 - P))
    assert (c.total, c.by_kind) == (2, {"add/sub": 1, "mul": 1})
    # p - y: one subtraction.
    assert op_counts(P - Y).total == 1
    # 1 - tanh(z)**2: a subtraction, a square, a tanh (transcendental).
    c = op_counts(1 - sp.tanh(Z) ** 2)
    assert (c.total, c.transcendental, c.arithmetic) == (3, 1, 2)
    # 1 - a**2: the same without the tanh.
    assert (op_counts(1 - A**2).total, op_counts(1 - A**2).transcendental) == (2, 0)
    # exp(z)/(1 + exp(z)): two exps, one addition, one division.
    c = op_counts(sp.exp(Z) / (1 + sp.exp(Z)))
    assert (c.total, c.by_kind) == (4, {"exp": 2, "add/sub": 1, "div": 1})


def test_totals_are_sympy_count_ops():
    for expr in (sp.exp(-Z) / (1 + sp.exp(-Z)) ** 2, sp.Heaviside(Z, 0), sp.log(1 + sp.exp(Z)),
                 sp.Matrix([[P * (1 - P), -P * Y]])):
        c = op_counts(expr)
        expected = sum(sp.count_ops(e) for e in expr) if isinstance(expr, sp.MatrixBase) \
            else sp.count_ops(expr)
        assert c.total == expected and sum(c.by_kind.values()) == expected


@pytest.fixture(scope="module")
def seed001():
    net = sg.Sequential(sg.Dense(2, 8), sg.ReLU(), sg.Dense(8, 1), sg.Sigmoid())
    return sg.compile(net, loss="bce")


def test_sigmoid_bce_textbook_costs_more(seed001):
    rows = {(r.where, r.quantity): r for r in textbook_vs_simplified(seed001)}
    step_b = rows[("output layer (sigmoid + bce)", "dp/dz")]
    assert sp.simplify(step_b.textbook - sp.exp(-Z) / (1 + sp.exp(-Z)) ** 2) == 0
    assert step_b.simplified == P * (1 - P)
    assert step_b.textbook_ops.total > step_b.simplified_ops.total == 2
    assert step_b.textbook_ops.by_kind["exp"] == 2 and step_b.saved_transcendental == 2
    delta = rows[("output layer (sigmoid + bce)", "dl/dz")]
    # The textbook product is Step A times Step B, each as differentiated, not multiplied out.
    step_a = -Y / P + (1 - Y) / (1 - P)
    assert len(delta.textbook.args) == 2
    assert sp.simplify(delta.textbook - step_a * sp.exp(-Z) / (1 + sp.exp(-Z)) ** 2) == 0
    assert delta.simplified == P - Y and delta.simplified_ops.total == 1
    assert delta.saved == delta.textbook_ops.total - 1 > 10
    relu = rows[("layer 1 (relu)", "f'(z)")]
    assert relu.textbook == sp.Heaviside(Z, 0)


def test_every_registered_activation_gets_a_row():
    acts = [cls() for _, cls in sorted(REGISTRY.items()) if cls.entry.kind == "elementwise"]
    layers: list = [sg.Dense(2, 3)]
    for act in acts:
        layers += [act, sg.Dense(3, 3)]
    plan = derive_network(sg.Sequential(*layers), "mse")
    rows = textbook_vs_simplified(plan)
    forms = {(act.entry.name, act.forward) for act in acts}
    hidden = {r.where.split("(")[1].rstrip(")") for r in rows if r.quantity == "f'(z)"}
    assert {name for name, _ in forms} <= hidden
    for row in rows:
        assert row.textbook_ops.total == sp.count_ops(row.textbook)
        assert row.simplified_ops.total == sp.count_ops(row.simplified)
    # Softmax is an output-only activation: its row is the output error.
    soft = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Softmax()), loss="cross_entropy")
    [row] = textbook_vs_simplified(soft)
    p1, y1 = sp.Symbol("p1", positive=True), sp.Symbol("y1", real=True)
    assert row.quantity == "dl/dz" and row.simplified == p1 - y1
    # Sum over the 3 classes of Step A times the Jacobian's first column, not cancelled.
    assert len(row.textbook.args) == 3 and sp.simplify(row.textbook - (p1 - y1)) != 0
    assert row.textbook_ops.total > row.simplified_ops.total


def test_an_identity_output_has_no_product_with_one():
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Identity()), loss="mse")
    [row] = textbook_vs_simplified(model)
    assert row.textbook == 2 * P - 2 * Y   # SymPy's dl/dp; dp/dz = 1 adds nothing
    assert (row.textbook_ops.total, row.simplified_ops.total) == (3, 2)


def test_tanh_row_saves_the_transcendental_call():
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Tanh(), sg.Dense(3, 1)), loss="mse")
    [row] = [r for r in textbook_vs_simplified(model) if r.quantity == "f'(z)"]
    assert row.simplified == 1 - A**2
    assert (row.textbook_ops.total, row.simplified_ops.total) == (3, 2)
    assert row.saved_transcendental == 1


def test_the_section_is_in_the_printout_in_every_rendering(seed001, tmp_path, pdflatex):
    doc = seed001.derivation
    [sec] = [s for s in doc.ordered() if s.title == TEXTBOOK_TITLE]
    text = doc.text()
    assert "textbook:   dp/dZ2 = exp(-Z2)/(1 + exp(-Z2))**2" in text
    assert "simplified: dp/dZ2 = p*(1 - p)" in text
    assert "the simplification saves 5 of 7 operations, 2 of them transcendental" in text
    assert r"\qquad \text{vs} \qquad p \left(1 - p\right)" in doc.latex()
    assert "$$" in doc.markdown()
    pdf = doc.to_tex(tmp_path / "net.tex", compile_pdf=True)
    assert pdf.exists()
    assert "Overfull \\hbox" not in (tmp_path / "net.log").read_text(errors="replace")


def test_bad_input():
    with pytest.raises(TypeError, match="compiled model or a NetworkPlan"):
        textbook_vs_simplified("model")
