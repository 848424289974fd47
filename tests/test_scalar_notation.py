"""Scalar printouts a student cannot misread: local vs part vs gradient, typeset headings,
the drawing's names equal to the derivation's, multi-letter labels upright."""

from __future__ import annotations

import re

import sympy as sp
from seed_graphs import seed000_loss

import symgrad as sg
from symgrad.derive.scalar import node_symbols
from symgrad.render.draw import node_names
from symgrad.render.scalar import tex


def _fan_out():
    # seed 000's "a node used several times": b = a + a, c = a * b, y = c + a (unlabelled)
    a = sg.Value(2.0, label="a")
    b = a + a
    c = a * b
    return c + a, a


def _neuron():
    # the lecture-style labels: every intermediate node named by its inputs (x1w1, ...)
    x1, x2 = sg.Value(2.0, label="x1"), sg.Value(0.0, label="x2")
    w1, w2 = sg.Value(-3.0, label="w1"), sg.Value(1.0, label="w2")
    b = sg.Value(6.8813735870195432, label="b")
    x1w1, x2w2 = x1 * w1, x2 * w2
    x1w1.label, x2w2.label = "x1w1", "x2w2"
    s = x1w1 + x2w2
    s.label = "x1w1x2w2"
    n = s + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return o


def _lines(text: str, start: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(start)]


def test_local_derivative_and_gradient_have_different_symbols():
    text = sg.derivation(seed000_loss()).text()
    assert "(dL/dd)_local = d/dd[d*f] = f = -2" in text
    assert "dL/dd = dL/dL * (dL/dd)_local = (1) * (-2) = -2" in text
    assert "dL/da = dL/de * (de/da)_local = (-2) * (-3) = 6" in text
    # the old reading "dL/dd = dL/dL * dL/dd" (one symbol for two things) is gone
    assert not re.search(r"dL/dd = dL/dL \* dL/dd", text)
    latex = sg.derivation(seed000_loss()).latex()
    assert (r"\frac{\partial L}{\partial d} = \frac{\partial L}{\partial L} \cdot "
            r"\left(\frac{\partial L}{\partial d}\right)_{\text{local}}") in latex


def test_fan_out_shows_each_part_and_the_sum_once_with_its_numbers():
    y, a = _fan_out()
    text = sg.derivation(y).text()
    parts = _lines(text, "(dv_3/da)_{via")
    assert parts == ["(dv_3/da)_{via v_3} = dv_3/dv_3 * (dv_3/da)_local = (1) * (1) = 1",
                     "(dv_3/da)_{via v_2} = dv_3/dv_2 * (dv_2/da)_local = (1) * (4) = 4",
                     "(dv_3/da)_{via v_1} = dv_3/dv_1 * (dv_1/da)_local = (2) * (2) = 4"]
    # the gradient dv_3/da appears once: the sum of the parts, then its numbers
    sums = _lines(text, "dv_3/da =")
    assert sums == ["dv_3/da = (dv_3/da)_{via v_3} + (dv_3/da)_{via v_2} + (dv_3/da)_{via v_1}"]
    assert "= (1) + (4) + (4) = 9" in text
    y.backward()
    assert a.grad == 9.0
    latex = sg.derivation(y).latex()
    assert r"\left(\frac{\partial v_{3}}{\partial a}\right)_{\text{via } v_{2}}" in latex
    assert latex.count(r"&= (1) + (4) + (4) = 9") == 1


def test_an_intermediate_node_used_twice_sums_before_it_passes_its_gradient_on():
    a, b = sg.Value(2.0, label="a"), sg.Value(-1.0, label="b")
    t = a * b
    t.label = "t"
    y = t * t + t          # t reaches y through t*t and through the sum
    y.label = "y"
    text = sg.derivation(y).text()
    node_t = text[text.index("Node t = a * b"):]
    first = [line for line in node_t.splitlines()[2:] if line.strip()][:2]
    assert first[0].startswith("t is used by")
    # d(t*t)/dt = 2t = -4 and d(v + t)/dt = 1: parts -4 and 1, gradient -3
    assert re.search(r"= \((-4|1)\) \+ \((1|-4)\) = -3", node_t)
    y.backward()
    assert a.grad == -3.0 * -1.0 and b.grad == -3.0 * 2.0


def test_headings_are_typeset_in_latex_and_plain_in_text(tmp_path, pdflatex):
    doc = sg.derivation(seed000_loss())
    latex, text, md = doc.latex(), doc.text(), doc.markdown()
    assert r"\subsection*{Node $L = d \cdot f$}" in latex
    assert r"\section*{Backpropagation through $L$}" in latex
    assert r"\subsection*{Start: $\partial L / \partial L = 1$}" in latex
    assert "## Node $L = d \\cdot f$" in md
    assert "\nNode L = d * f\n--------------\n" in text
    assert "Start: dL/dL = 1" in text and "$" not in text
    pdf = doc.to_tex(tmp_path / "seed.tex", compile_pdf=True)
    assert pdf.read_bytes().startswith(b"%PDF")
    assert "Overfull \\hbox" not in (tmp_path / "seed.log").read_text(errors="replace")


def test_products_print_with_cdot_and_numbers_beside_their_factor():
    a, b, n = sp.symbols("a b n", real=True)
    assert tex(a * b) == r"a \cdot b"
    assert tex(sp.exp(2 * n)) == "e^{2 n}"
    assert tex(-2 * a * b) == r"- 2 a \cdot b"


def test_multi_letter_labels_are_upright_single_letters_italic():
    x1w1, x1, w_1, out, alpha, theta2, ab_1 = sp.symbols(
        "x1w1 x1 w_1 out alpha theta2 ab_1", real=True)
    assert tex(x1w1) == r"\mathrm{x1w1}"
    assert tex(out) == r"\mathrm{out}"
    assert tex(ab_1) == r"\mathrm{ab}_{1}"
    assert tex(x1) == "x_{1}" and tex(w_1) == "w_{1}"
    assert tex(alpha) == r"\alpha" and tex(theta2) == r"\theta_{2}"
    latex = sg.derivation(_neuron()).latex()
    assert r"\mathrm{x1w1x2w2} = \mathrm{x1w1} + \mathrm{x2w2}" in latex
    assert r"\mathrm{x1w1} = x_{1} \cdot w_{1}" in latex
    # never the product of italic letters x 1 w 1 x 2 w 2
    assert not re.search(r"(?<!\\mathrm\{)x1w1", latex)


def test_drawing_and_derivation_name_nodes_alike(tmp_path):
    y, _ = _fan_out()
    y.backward()
    names = node_names(y)
    assert names == {k: s.name for k, s in node_symbols(y).items()}
    assert sorted(names.values()) == ["a", "v_1", "v_2", "v_3"]
    svg = sg.draw(y, tmp_path / "g.svg").read_text()
    text = sg.derivation(y).text()
    for name in names.values():
        assert f"{name} | data" in svg          # matplotlib keeps each text as a comment
        assert f"\n    {name} = " in text       # the forward pass names the same node
    assert " | data 4.0000" in svg and "v_1 | data 4.0000" in svg   # v_1 = a + a = 4


def test_repeated_labels_get_the_same_suffix_in_drawing_and_derivation(tmp_path):
    a, b = sg.Value(1.0, label="p"), sg.Value(2.0, label="p")
    y = a * b
    y.label = "y"
    svg = sg.draw(y, tmp_path / "g.svg").read_text()
    assert "p_2 | data 2.0000" in svg and "p_2 = 2" in sg.derivation(y).text()


def test_internal_facts_go_to_an_appendix_at_the_end(tmp_path, pdflatex):
    doc = sg.derivation(_neuron())
    heads = [s.heading for s in doc.ordered()]
    assert heads[-1] == "Appendix: How backward() evaluates the local derivatives"
    assert heads.index("Gradients of the inputs") < len(heads) - 1
    appendix = doc.ordered()[-1].steps
    assert [s.plain for s in appendix] == ["1 - tanh(n)**2 = 1 - o**2"]
    assert "random points" in appendix[0].text
    main = "\n".join(s.text for sec in doc.ordered()[:-1] for s in sec.steps)
    assert "identity" not in main and "evaluated so" not in main
    # no rewrite in the graph (only + and *): no appendix at all
    assert not any(s.appendix for s in sg.derivation(seed000_loss()))
    doc.to_tex(tmp_path / "neuron.tex", compile_pdf=True)
    assert "Overfull \\hbox" not in (tmp_path / "neuron.log").read_text(errors="replace")
