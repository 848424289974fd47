"""Scalar derivation printouts, limit-definition steps and graph drawings."""

from __future__ import annotations

import random

import pytest
import sympy as sp
from seed_graphs import leaf, neuron, seed000_loss

import symgrad as sg
from symgrad.definition.formulas import sigmoid
from symgrad.definition.scalar_ops import SCALAR_OPS
from symgrad.definition.value import apply
from symgrad.simplify.limit import limit_steps


def _seed_expression():
    L = seed000_loss()
    return L, leaf(L, "a")




def test_chain_derivation_walks_the_graph_in_reverse_order_with_numbers():
    L, a = _seed_expression()
    text = sg.derivation(L).text()
    assert "dL/dL = 1" in text
    # Reverse topological order: L's node, then d, then e.
    where = [text.index(f"Node {node}") for node in ("L = d * f", "d = e + c", "e = a * b")]
    assert where == sorted(where)
    assert "(dL/dd)_local = d/dd[d*f] = f = -2" in text   # the local derivative SymPy derived
    assert "dL/da = dL/de * (de/da)_local = (-2) * (-3) = 6" in text  # upstream x local
    assert "dL/db = dL/de * (de/db)_local = (-2) * (2) = -4" in text
    assert a.grad == 0.0  # printing does not touch .grad


def test_renderings_share_the_steps():
    L, _ = _seed_expression()
    d = sg.derivation(L)
    assert r"\frac{\partial L}{\partial a}" in d.latex()
    assert "$$" in d.markdown() and d._repr_latex_() == d.latex()
    with pytest.raises(ValueError, match="'tangent'"):
        sg.derivation(L, steps="tangent")


def test_a_node_with_several_consumers_shows_the_sum():
    a = sg.Value(3.0, label="a")
    b = a * a
    b.label = "b"
    y = b + a
    y.label = "y"
    text = sg.derivation(y).text()
    assert "(db/da)_local = d/da[a**2] = 2*a = 6" in text  # reused operand: one local 2a
    assert "dy/da = (dy/da)_{via y} + (dy/da)_{via b}" in text   # the parts, then the sum
    assert "    = (1) + (6) = 7" in text
    y.backward()
    assert a.grad == 7.0


def test_tanh_limit_steps_end_in_the_output_and_come_from_sympy():
    o = neuron()
    text = sg.derivation(o, steps="limit").text()
    block = text[text.index("Node o = tanh(n)"):text.index("Node n =")]
    # wording-free: the exponential form, a limit line, then SymPy's form and the output's
    assert "(exp(n) - exp(-n))/(exp(n) + exp(-n))" in block
    lines = [line.strip() for line in block.splitlines() if line.strip().startswith(("=", "->"))]
    assert any(line.startswith("->") for line in lines)
    assert lines[-2].startswith("= 1 - tanh(n)**2")
    assert lines[-1].startswith("= 1 - o**2")


def _quotient_matches(steps, formula, x):
    """Every '=' line carrying an expression equals the difference quotient at random points."""
    h = sp.Symbol("h", real=True)
    q = (formula.xreplace({x: x + h}) - formula) / h
    rng = random.Random(3)
    checked = 0
    for s in steps:
        if s.relation != "=" or s.expr is None or s.label.startswith(("equals", "in terms")):
            continue
        for _ in range(3):
            at = {sym: rng.uniform(0.2, 1.5) for sym in q.free_symbols}
            assert float(sp.N(s.expr.subs(at))) == pytest.approx(float(sp.N(q.subs(at))),
                                                                 rel=1e-9), s.label
        checked += 1
    return checked


@pytest.mark.parametrize("make", [
    lambda x, y: x * y, lambda x, y: x + y, lambda x, y: x / y, lambda x, y: sp.tanh(x),
    lambda x, y: sigmoid(x), lambda x, y: x**3 - 2 * x * y, lambda x, y: sp.log(x),
])
def test_limit_lines_are_equalities_sympy_computed(make):
    x, y = sp.symbols("x y", real=True)
    formula = make(x, y)
    steps = limit_steps(formula, x, output=sp.Symbol("o", real=True))
    assert _quotient_matches(steps, formula, x) >= 1
    final = [s for s in steps if s.relation == "->"]
    assert len(final) == 1
    assert sp.simplify((final[0].expr - sp.diff(formula, x)).rewrite(sp.exp)) == 0


def test_limit_of_a_polynomial_divides_h_out():
    x = sp.Symbol("x", real=True)
    steps = limit_steps(x**3, x)
    by_label = {s.label: s for s in steps}
    assert by_label["divide by h"].expr == sp.expand(3 * x**2 + 3 * x * sp.Symbol("h", real=True)
                                                     + sp.Symbol("h", real=True) ** 2)
    assert by_label["limit as h goes to 0"].expr == 3 * x**2


def test_limit_of_a_kink_falls_back_honestly():
    r = sg.Value(-1.0, label="r")
    q = r.relu()
    q.label = "q"
    text = sg.derivation(q, steps="limit").text()
    assert "SymPy cannot take the limit" in text
    assert "divide by h" not in text and "first order in h" not in text


def test_limit_derivation_compiles_with_pdflatex(tmp_path, pdflatex):
    a = sg.Value(0.5, label="my input")  # a label needing \text{} in LaTeX
    y = (a * 2.0).sigmoid() + a.relu() ** 2
    y.label = "y"
    pdf = sg.derivation(neuron(), steps="limit").to_tex(tmp_path / "neuron.tex", compile_pdf=True)
    assert pdf.exists() and pdf.read_bytes().startswith(b"%PDF")
    pdf2 = sg.derivation(y, steps="limit").to_tex(tmp_path / "mixed.tex", compile_pdf=True)
    assert pdf2.read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize("label", ["α", "hidden_layer_bias_01", "θ_1", "naïve x"])
def test_unusual_labels_compile_in_every_kind_of_step_without_overfull_boxes(
        tmp_path, pdflatex, label):
    # Greek letters transliterate to \ensuremath{\alpha}, never $...$ (which would close the
    # surrounding math); a long label in prose may break after an underscore.
    a, b = sg.Value(0.5, label=label), sg.Value(1.5, label="b")
    y = (a * b).tanh() + a.relu()
    y.label = "y"
    doc = sg.derivation(y, steps="rules+limit+slope")
    assert "textbackslash" not in doc.latex()
    pdf = doc.to_tex(tmp_path / "labels.tex", strict=True)
    assert pdf.read_bytes().startswith(b"%PDF")
    log = (tmp_path / "labels.log").read_text(encoding="latin-1")
    assert "invalid in math mode" not in log


def test_draw_writes_png_and_svg(tmp_path):
    o = neuron()
    o.backward()
    png = sg.draw(o, tmp_path / "g.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = sg.draw(o, tmp_path / "sub" / "g.svg")
    text = svg.read_text()
    assert "<svg" in text and "tanh" in text


def test_draw_handles_every_op_and_rejects_unknown_suffixes(tmp_path):
    x = sg.Value(0.8, label="x")
    nodes = [apply(op.name, *([x] * op.arity), **{p: 2.0 for p in op.params})
             for op in SCALAR_OPS]
    total = nodes[0]
    for n in nodes[1:]:
        total = total + n
    assert sg.draw(total, tmp_path / "all.png").stat().st_size > 1000
    with pytest.raises(ValueError, match=r"'\.pdf'.*\.png"):
        sg.draw(total, tmp_path / "g.pdf")
    assert not (tmp_path / "g.pdf").exists()


@pytest.mark.parametrize("x", [0.0, 1.5])
def test_slope_at_a_kink_says_it_is_a_kink_not_a_float_error(x):
    c = sg.Value(x, label="c")
    y = (c * 2).relu() + c
    y.label = "y"
    text = sg.derivation(y, steps="slope").text()
    assert ("has a kink at c = 0.0" in text) == (x == 0.0)
    if x == 0.0:
        # One step to the right measures the right-hand slope 2 + 1; the convention gives 0 + 1.
        assert "= 3.0\n    exact dy/dc = 1.0; error 2" in text


def test_the_quotient_appendix_names_every_operand_of_its_output_form():
    a, b = sg.Value(3.0, label="a"), sg.Value(2.0, label="b")
    y = a / b
    y.label = "y"
    text = sg.derivation(y).text()
    assert "(dy/db)_local = d/db[a/b] = -a/b**2 = -y/b = -0.75" in text
    assert "-a/b**2 = -y/b\n" in text and "x1" not in text
