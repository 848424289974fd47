"""Worksheets (issue 10, item 16): chosen results blanked, an answer key that holds each."""

from __future__ import annotations

import re

import pytest
from seed_graphs import neuron

import symgrad as sg
from symgrad.render.document import Derivation
from symgrad.render.worksheet import _blank_latex

BLANK_TEXT = re.compile(r"____\((\d+)\)")
BLANK_TEX = re.compile(r"\\underline\{\\hspace\{[\d.]+em\}\}_\{\((\d+)\)\}")




def _network_doc() -> Derivation:
    net = sg.Sequential(sg.Dense(2, 3), sg.ReLU(), sg.Dense(3, 1), sg.Sigmoid())
    return sg.compile(net, loss="bce").derivation


def _step_pairs(doc: Derivation, sheet: Derivation):
    for sec, sheet_sec in zip(doc.ordered(), sheet.ordered(), strict=True):
        assert sec.heading == sheet_sec.heading
        yield from zip(sec.steps, sheet_sec.steps, strict=True)


def _fill(sheet_step, blanks):
    """The sheet's step with every blank filled from the key: math and plain."""
    answers = {b.number: b for b in blanks}
    math = BLANK_TEX.sub(lambda m: answers[int(m.group(1))].latex, sheet_step.math)
    plain = BLANK_TEXT.sub(lambda m: answers[int(m.group(1))].plain, sheet_step.plain)
    return math, plain


def _assert_blanks_hide_exactly_their_answers(doc: Derivation, ws) -> None:
    """Filling the blanks gives the original back; each blanked line lost its answer."""
    numbers = [b.number for b in ws.blanks]
    assert numbers == list(range(1, len(numbers) + 1))
    # Blanks appear in reading order, once each, in the text and in the LaTeX.
    text = ws.sheet.text()
    assert [int(n) for n in BLANK_TEXT.findall(text)] == numbers
    assert [int(n) for n in BLANK_TEX.findall(ws.sheet.latex())] == numbers
    for step, sheet_step in _step_pairs(doc, ws.sheet):
        assert sheet_step.text == step.text   # prose is never touched
        if sheet_step.math == step.math:
            assert sheet_step.plain == step.plain
            continue
        math, plain = _fill(sheet_step, ws.blanks)
        assert math == step.math
        # A plain form that pairs with the display refills exactly (otherwise the plain
        # line is the blanked LaTeX read as text).
        assert plain == step.plain or plain != sheet_step.plain
        for b in ws.blanks:
            if f"____({b.number})" in sheet_step.plain:
                tail = sheet_step.plain.split(f"____({b.number})")[0].rsplit(" = ", 1)[-1]
                assert not tail.endswith(b.plain)
    # The key holds each answer under its number, in every rendering.
    key_text, key_tex, key_md = ws.key.text(), ws.key.latex(), ws.key.markdown()
    for b in ws.blanks:
        assert f"({b.number}) {b.plain}" in key_text
        assert rf"\text{{({b.number})}}\quad {b.latex}" in key_tex
        assert rf"\text{{({b.number})}}\quad {b.latex}" in key_md


def test_scalar_worksheet_blanks_derived_numbers_and_keeps_the_inputs():
    o = neuron()
    doc = sg.derivation(o)
    ws = doc.worksheet("numbers")
    _assert_blanks_hide_exactly_their_answers(doc, ws)
    text = ws.sheet.text()
    # The given inputs stay (the student starts there); every derived number is blanked.
    assert "    x1 = 2" in text and "    w1 = -3" in text
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", b.plain) for b in ws.blanks)
    forward = {b.plain for b in ws.blanks if b.section == "Forward pass"}
    assert forward == {"-6", "0", "0.8814", "0.7071"}
    # Values that only the forward pass and its results show are gone from the sheet.
    for answer in ("0.8814", "0.7071", "-1.5"):
        assert answer in doc.text() and answer not in text, answer
    # Every gradient of the inputs is asked for.
    grads = [b for b in ws.blanks if b.section == "Gradients of the inputs"]
    assert [b.plain for b in grads] == ["-1.5", "1", "0.5", "0", "0.5"]


def test_symbolic_blanks_in_a_limit_derivation():
    doc = sg.derivation(neuron(), steps="limit")
    ws = doc.worksheet("symbolic")
    _assert_blanks_hide_exactly_their_answers(doc, ws)
    answers = [b.plain for b in ws.blanks]
    assert "1 - o**2" in answers                 # the end of tanh's limit table
    assert not any(re.fullmatch(r"-?[\d.]+", a) for a in answers)


def test_network_worksheet_blanks_step_c_and_the_relu_mask():
    doc = _network_doc()
    ws = doc.worksheet("symbolic")
    _assert_blanks_hide_exactly_their_answers(doc, ws)
    answers = [b.plain for b in ws.blanks]
    assert "p - y" in answers and "(A1 > 0)" in answers
    sections = {b.section for b in ws.blanks}
    assert any(s.startswith("Output layer: Steps A, B, C") for s in sections)
    # The printout numbers its equations: the sheet keeps every number, the key cites them.
    assert doc.numbered and ws.sheet.equation_numbers() == doc.equation_numbers()
    numbers = doc.numbers()
    blanked = [numbers[id(step)] for step, sheet_step in _step_pairs(doc, ws.sheet)
               for _ in BLANK_TEXT.findall(sheet_step.plain)]
    assert [b.equation for b in ws.blanks] == blanked
    assert f"Blank {ws.blanks[0].number} (equation {ws.blanks[0].equation}):" in ws.key.text()
    # A result's plain answer carries no trailing note ("    (cancelled)").
    assert not any(re.search(r"\s{3,}", b.plain) for b in ws.blanks)
    # Definitions stay: Z_1 = X W_1 + b_1 is the question, not an answer.
    assert re.search(r"Z_\{?1\}? &?= X W_\{?1\}? \+ b_\{?1\}?", ws.sheet.latex())


def test_blank_by_tag_or_section_keeps_equation_numbers():
    doc = Derivation("Numbered", numbered=True)
    sec = doc.section("Forward")
    sec.add(math="a = 2", plain="a = 2")
    sec.add(math=r"b = a \cdot 3 = 6", plain="b = a * 3 = 6", tag="b")
    back = doc.section("Backward")
    back.add(math=r"\frac{\partial b}{\partial a} = 3", plain="db/da = 3", tag="dbda")
    ws = doc.worksheet({"b", "Backward"})
    assert ws.sheet.equation_numbers() == doc.equation_numbers() == {"b": 2, "dbda": 3}
    assert [(b.number, b.equation, b.plain) for b in ws.blanks] == [(1, 2, "6"), (2, 3, "3")]
    text = ws.sheet.text()
    assert "(1) a = 2" in text and "(2) b = a * 3 = ____(1)" in text
    assert "(3) db/da = ____(2)" in text
    key = ws.key.text()
    assert "Blank 1 (equation 2):" in key and "(1) 6" in key and "(2) 3" in key
    # A predicate chooses too; a given value (single relation of a bare name) can be chosen.
    only_a = doc.worksheet(lambda section, step: step.math.startswith("a ="))
    assert [b.plain for b in only_a.blanks] == ["2"]


def test_markdown_and_notebook_show_the_blanks_not_the_answers():
    from symgrad.render.notebook import derivation_html, derivation_markdown

    doc = Derivation("T")
    doc.section("S").add(math=r"y = 3 \cdot 7 = 21", plain="y = 3 * 7 = 21")
    ws = doc.worksheet()
    for rendering in (ws.sheet.markdown(), derivation_markdown(ws.sheet),
                      derivation_html(ws.sheet)):
        assert "21" not in rendering and r"\underline{\hspace{" in rendering
    assert _blank_latex(1, "21") in ws.sheet.latex()


def test_a_document_without_results_gives_an_empty_key():
    doc = Derivation("T")
    doc.section("S").add(text="Only prose.", math="x = 1", plain="x = 1")
    ws = doc.worksheet()
    assert ws.blanks == () and ws.sheet.text().count("____") == 0
    assert "no blanks" in ws.key.text()


def test_bad_choice_is_rejected():
    with pytest.raises(ValueError, match="blank must be"):
        Derivation("T").worksheet("everything")


@pytest.mark.parametrize("which", ["scalar", "network"])
def test_worksheet_and_key_compile_without_overfull_boxes(which, tmp_path, pdflatex):
    doc = sg.derivation(neuron()) if which == "scalar" else _network_doc()
    ws = doc.worksheet("results")
    assert ws.blanks
    for name, part in (("sheet", ws.sheet), ("key", ws.key)):
        pdf = part.to_tex(tmp_path / f"{which}_{name}.tex", strict=True)
        assert pdf.read_bytes().startswith(b"%PDF")
