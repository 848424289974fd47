"""Seed 004's binary-vs-multiclass table from two compiled models (issue 10, item 11)."""

from __future__ import annotations

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.formulas import P, Y
from symgrad.render.head_table import ROWS, head_cells, head_table
from symgrad.render.latex_printer import layer_latex, layer_str


@pytest.fixture(scope="module")
def heads():
    binary = sg.compile(sg.Sequential(sg.Dense(4, 8), sg.ReLU(), sg.Dense(8, 1), sg.Sigmoid()),
                        loss="bce")
    multi = sg.compile(sg.Sequential(sg.Dense(4, 8), sg.ReLU(), sg.Dense(8, 3), sg.Softmax()),
                       loss="cross_entropy")
    return binary, multi


def test_cells_come_from_each_plan(heads):
    binary, multi = heads
    cells = {c.row: c for c in head_cells(binary, multi)}
    assert tuple(cells) == ROWS
    for k, model in enumerate(heads):
        out = model.plan.output
        assert cells["Step A: dl/dp"].texts[k] == layer_str(out.step_a)
        assert cells["Step C: dl/dz"].texts[k] == layer_str(out.delta)
        assert layer_latex(out.step_b) in cells["Step B: dp/dz"].cells[k][0]
    assert cells["Step B: dp/dz"].texts[0] == "p*(1 - p)"
    assert cells["Step B: dp/dz"].texts[1].startswith("[[p1*(1 - p1), -p1*p2, -p1*p3]")
    assert cells["output shape"].texts == ("n x 1", "n x 3")
    assert cells["prediction rule"].texts == ("yhat = (p > 1/2)", "yhat = argmax_c p_c")
    assert cells["label format"].texts[1].startswith("y in {0..2}^n or one-hot")
    assert all(sp.simplify(m.plan.output.delta - (P - Y)) == 0 for m in heads)


def test_a_changed_plan_changes_the_table(heads):
    import dataclasses

    binary, multi = heads
    plan = binary.plan
    changed = dataclasses.replace(plan, output=dataclasses.replace(plan.output, delta=2 * P))
    cells = {c.row: c for c in head_cells(changed, multi)}
    assert cells["Step C: dl/dz"].texts == ("2*p", "p - y")
    text = head_table(changed, multi).text()
    assert "Step C differs between the heads" in text


def test_regression_head_predicts_p_itself():
    reg = sg.compile(sg.Sequential(sg.Dense(2, 1), sg.Sigmoid()), loss="mse")
    lin = sg.compile(sg.Sequential(sg.Dense(2, 2), sg.Identity()), loss="mse")
    cells = {c.row: c for c in head_cells(reg, lin)}
    assert cells["prediction rule"].texts == ("yhat = p", "yhat = p")
    assert cells["label format"].texts == ("y real, (n x 1)", "y real, (n x 2)")


def test_three_renderings_and_pdflatex(heads, tmp_path, pdflatex):
    doc = head_table(*heads)
    text, md, latex = doc.text(), doc.markdown(), doc.latex()
    assert "sigmoid + bce" in text and "softmax + cross_entropy" in text
    assert "Step C is the same for both heads" in text
    assert "\\" not in text and "$" not in text
    assert r"\begin{array}{l|l|l}" in md and md.count("$$") % 2 == 0
    assert r"\text{softmax + cross\_entropy}" in latex
    pdf = doc.to_tex(tmp_path / "heads.tex", compile_pdf=True)
    assert pdf.exists()
    assert "Overfull \\hbox" not in (tmp_path / "heads.log").read_text(errors="replace")


def test_public_and_rejects_non_models(heads):
    assert sg.head_table is head_table
    with pytest.raises(TypeError, match="compiled models or NetworkPlans"):
        head_table(heads[0], object())
