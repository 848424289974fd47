"""Jupyter display: a notebook executed by nbconvert renders derivations with headings and math."""

import re

import nbformat
from nbconvert import HTMLExporter
from nbconvert.filters import markdown2html
from nbconvert.preprocessors import ExecutePreprocessor

import symgrad as sg
from symgrad.render.notebook import derivation_html, escape_markdown

_CELLS = [
    # the user's own scalar graph; a title with Markdown/HTML specials must stay text
    "import symgrad as sg\n"
    "a, b, c = sg.Value(2.0, label='a'), sg.Value(-3.0, label='b'), sg.Value(10.0, label='c')\n"
    "e = a * b; e.label = 'e'\n"
    "d = e + c; d.label = 'd'\n"
    "d.backward()\n"
    "doc = sg.derivation(d)\n"
    "doc.title = 'Seed 000: d = a*b + c <by hand>'\n"
    "doc",
    "d",
    "net = sg.Sequential(sg.Dense(2, 3), sg.Tanh(), sg.Dense(3, 1), sg.Sigmoid())\n"
    "model = sg.compile(net, loss='bce')\n"
    "model",
]


def _run_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in _CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    ExecutePreprocessor(timeout=300, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(tmp_path)}})
    return nb


def test_executed_notebook_renders_headings_and_math(tmp_path):
    nb = _run_notebook(tmp_path)
    derivation_out, value_out, model_out = (cell.outputs[-1]["data"] for cell in nb.cells)

    # the kernel sent HTML, Markdown and real LaTeX (no Markdown headings in text/latex)
    assert set(derivation_out) >= {"text/html", "text/markdown", "text/latex", "text/plain"}
    assert derivation_out["text/latex"].startswith(r"\section*")
    assert "# " not in derivation_out["text/latex"]
    assert derivation_out["text/markdown"].startswith("# Seed 000")

    page, _ = HTMLExporter().from_notebook_node(nb)
    h1 = re.findall(r"<h1[^>]*>(.*?)</h1>", page, re.S)
    h2 = re.findall(r"<h2[^>]*>(.*?)</h2>", page, re.S)
    assert any("Seed 000: d = a*b + c &lt;by hand&gt;" in h for h in h1), h1
    assert any("Forward pass" in h for h in h2) and len(h2) >= 4
    # display math reaches MathJax intact: the chain rule for dd/da with its number
    maths = re.findall(r"\\\[(.*?)\\\]", page, re.S)
    assert any(r"\frac{\partial d}{\partial a}" in m for m in maths), maths[:5]
    assert "MathJax" in page

    # the Value: its graph as a table, with the node's own numbers (d = 4, dd/da = b = -3)
    assert "<table>" in value_out["text/html"]
    assert r"\(a \cdot b\)" in value_out["text/html"]
    assert "<td>4</td><td>1</td>" in value_out["text/html"]
    assert "<td>2</td><td>-3</td>" in value_out["text/html"]
    # the Model: its parameters and SymPy's gradient formulas
    assert "dense0.W" in model_out["text/html"] and "(2, 3)" in model_out["text/html"]
    assert "A_{1}^{T}" in model_out["text/html"]


def test_markdown_repr_renders_headings_and_math():
    a, b = sg.Value(2.0, label="x_1"), sg.Value(-3.0, label="w*")
    y = a * b
    y.label = "y"
    md = sg.derivation(y)._repr_markdown_()
    page = markdown2html(md)
    assert re.search(r"<h1[^>]*>Backpropagation through", page)
    assert len(re.findall(r"<h2", page)) >= 3
    assert "$$" in page and r"\frac{\partial y}" in page
    # prose specials are escaped, math is not
    assert escape_markdown("a_1 * b") == r"a\_1 \* b"


def test_html_escapes_prose_and_keeps_inline_math():
    doc = sg.Derivation("x < y & z")
    doc.section("Step").add(text="if $a < b$ then <b>", math=r"a \le b")
    page = derivation_html(doc)
    assert "<h1>x &lt; y &amp; z</h1>" in page
    assert r"\(a &lt; b\)" in page and "then &lt;b&gt;" in page
    assert r"\[a \le b\]" in page


def test_large_graph_value_repr_lists_only_its_root():
    x = sg.Value(0.5, label="x")
    y = x
    for _ in range(80):
        y = y * 1.01
    html = y._repr_html_()
    assert html.count("<tr>") == 2  # header row + the root
    assert "only its root" in html

