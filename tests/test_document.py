"""The Derivation document renders the same steps as LaTeX, Markdown and text."""


import pytest

from symgrad.render.document import Derivation, compile_tex, escape_latex_prose


def _example() -> Derivation:
    d = Derivation("Chain rule for $L$", intro="Weights_1 & bias: 100% derived")
    s = d.section("Node d_1")
    s.add(text="Upstream times local:", math=r"\frac{\partial L}{\partial d} &= f \\ &= -2",
          plain="dL/dd = f = -2")
    s.add(math=r"x^{2}")
    return d


def test_all_renderings_carry_every_step():
    d = _example()
    assert r"\frac{\partial L}{\partial d}" in d.latex()
    assert r"\begin{aligned}" in d.latex()  # multi-line math is aligned
    assert "$$" in d.markdown() and "## Node d_1" in d.markdown()
    text = d.text()
    assert "dL/dd = f = -2" in text and "x^{2}" in text  # plain falls back to the LaTeX
    assert d._repr_latex_() == d.latex()  # text/latex carries LaTeX, not Markdown


def test_prose_is_escaped_but_inline_math_is_not():
    assert escape_latex_prose("a_b & $c_d$") == r"a\_b \& $c_d$"
    assert r"Weights\_1 \& bias: 100\% derived" in _example().latex()


def test_to_tex_writes_atomically_without_leftovers(tmp_path):
    path = _example().to_tex(tmp_path / "doc.tex")
    assert path.read_text().startswith(r"\documentclass")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.tex"]


def test_standalone_document_compiles_with_pdflatex(tmp_path, pdflatex):
    pdf = _example().to_tex(tmp_path / "doc.tex", compile_pdf=True)
    assert pdf.suffix == ".pdf" and pdf.read_bytes().startswith(b"%PDF")


def test_broken_latex_raises_with_the_log(tmp_path, pdflatex):
    bad = tmp_path / "bad.tex"
    bad.write_text(r"\documentclass{article}\begin{document}$\frac{1}$\end{document}")
    with pytest.raises(RuntimeError, match="pdflatex failed"):
        compile_tex(bad)
