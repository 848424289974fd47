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
    assert "dL/dd = f = -2" in text and "    x^2" in text  # no plain: the LaTeX read as text
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


def test_numbered_document_numbers_every_equation_in_every_rendering():
    from symgrad.render.notebook import derivation_html, derivation_markdown

    doc = Derivation("T", numbered=True)
    late = doc.appendix("Proofs")
    late.add(math="c = 3", plain="c = 3", tag="c")
    sec = doc.section("S")
    sec.add(text="first", math="a = 1", plain="a = 1")
    sec.add(math="b = 2", plain="b = 2", tag="b")
    # The appendix was made first but is read last, so its equation is (3).
    assert doc.equation_numbers() == {"b": 2, "c": 3}
    assert [s.heading for s in doc.ordered()] == ["S", "Appendix: Proofs"]
    assert r"b = 2\tag{2}" in doc.latex() and r"c = 3\tag{3}" in doc.latex()
    assert r"b = 2\tag{2}" in doc.markdown() and r"\tag{3}" in derivation_markdown(doc)
    assert r"\tag{1}" in derivation_html(doc)
    text = doc.text()
    assert "(1) a = 1" in text and "(2) b = 2" in text and "(3) c = 3" in text
    assert text.index("Appendix: Proofs") > text.index("(2) b = 2")


def test_unnumbered_document_has_no_tags():
    doc = Derivation("T")
    doc.section("S").add(math="a = 1", tag="a")
    assert doc.equation_numbers() == {} and r"\tag" not in doc.latex()


@pytest.mark.latex_unchecked   # the document is too wide on purpose
def test_overfull_boxes_are_read_from_the_log_with_their_source(tmp_path, pdflatex):
    from symgrad.render.document import OverfullBoxError, overfull_boxes

    doc = Derivation("Too wide")
    # one brace group: no top-level + where `break_rows` could break it
    doc.section("S").add(text="fine", math="{" + " + ".join(f"y_{{{k}}}" for k in range(90)) + "}")
    tex = doc.to_tex(tmp_path / "wide.tex")
    compile_tex(tex)                      # compiles: not an error unless strict
    boxes = overfull_boxes(tmp_path / "wide.log")
    assert len(boxes) == 1 and boxes[0].startswith("Overfull \\hbox (")
    assert "| {y_{0} + y_{1}" in boxes[0]  # the display it came from
    with pytest.raises(OverfullBoxError, match="1 overfull box") as err:
        doc.to_tex(tmp_path / "wide2.tex", strict=True)
    assert err.value.boxes == overfull_boxes(tmp_path / "wide2.log")


def test_a_long_sum_is_broken_into_rows_that_fit_the_page(tmp_path, pdflatex):
    """A display of 90 terms (a user's long derivative) is broken at its top-level + signs,
    also inside one \\left( ... \\right), and compiles without an overfull box."""
    doc = Derivation("Long")
    terms = " + ".join(rf"\frac{{y_{{{k}}}}}{{2}}" for k in range(90))
    doc.section("S").add(math="f'(z) = " + terms)
    doc.section("T").add(math=r"dZ = dA \odot \left(" + terms + r"\right)")
    latex = doc.latex()
    assert r"f'(z) &= \frac{y_{0}}{2}" in latex and latex.count(r"&\quad ") >= 6
    assert latex.count(r"\right.") == latex.count(r"\left. ") >= 3
    tex = doc.to_tex(tmp_path / "long.tex")
    compile_tex(tex, strict=True)


def test_a_display_taller_than_the_page_breaks_across_pages(tmp_path, pdflatex):
    """600 long terms make about 70 rows: as one aligned block they ran off the bottom of
    the page (a loss's expanded slope: 983 pt, fuzz_formulas --random-losses seed 50);
    as align* they continue on the next page, and the tag stays."""
    doc = Derivation("Tall")
    terms = " + ".join(rf"\frac{{y_{{{k}}} z^{{2}}}}{{z + {k}}}" for k in range(600))
    doc.section("S").add(math="f'(z) = " + terms)
    latex = doc.latex()
    assert latex.count(r"\begin{align*}") == 1 and r"\begin{aligned}" not in latex
    pdf = compile_tex(doc.to_tex(tmp_path / "tall.tex"), strict=True)
    assert pdf.exists()


def test_wide_equations_side_by_side_fit_the_page(tmp_path, pdflatex):
    """Two fractions joined by \\qquad, each narrower than the page but not both."""
    frac = r"\frac{" + " ".join([r"\tan{\left(\frac{z}{2} \right)}"] * 8) + "}{3 z}"
    doc = Derivation("Side by side")
    doc.section("S").add(math=rf"f'(z) = {frac}, \qquad f'(Z_{{1}}) = {frac}")
    assert doc.latex().count("&= ") == 2
    compile_tex(doc.to_tex(tmp_path / "side.tex"), strict=True)


def test_a_wide_fraction_of_products_fits_the_page(tmp_path, pdflatex):
    """\\frac{2 z (...)(...)(...)}{D}, each factor a sum: broken between the factors."""
    factor = r"\left(" + " + ".join([r"\tanh{\left(\frac{z}{2} \right)}"] * 5) + r"\right)"
    doc = Derivation("Fraction")
    doc.section("S").add(math=rf"f'(z) = \frac{{2 z {factor} {factor} {factor}}}{{4 - z^{{2}}}}")
    assert r"\cdot \left(" in doc.latex()
    compile_tex(doc.to_tex(tmp_path / "fraction.tex"), strict=True)


def test_the_suite_fails_a_test_whose_document_runs_off_the_page(tmp_path, pdflatex):
    """conftest.py compiles every to_tex of a test: a wide document fails its test."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_wide.py").write_text(
        "from symgrad.render.document import Derivation\n\n"
        "def _doc(n):\n"
        "    d = Derivation('Wide')\n"
        "    d.section('S').add(math='{' + ' + '.join(f'y_{{{k}}}' for k in range(n)) + '}')\n"
        "    return d\n\n"
        "def test_wide(tmp_path):\n"
        "    _doc(90).to_tex(tmp_path / 'w.tex')\n\n"
        "def test_narrow(tmp_path):\n"
        "    _doc(3).to_tex(tmp_path / 'n.tex')\n"
        "    assert sorted(p.name for p in tmp_path.iterdir()) == ['n.tex']\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_wide.py")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    assert "1 overfull box(es) in the LaTeX of 'Wide' (w.tex)" in proc.stdout
