"""The frame of a network printout (issue 10, item 2): typeset title, intro and headings,
loss names as words, no sum over a single index value, numbered equations, and three
renderings that each show their own notation (no LaTeX in the plain text)."""

from __future__ import annotations

import re

import pytest

import symgrad as sg


@pytest.fixture(scope="module")
def mlp():
    net = sg.Sequential(sg.Dense(2, 8), sg.ReLU(), sg.Dense(8, 1), sg.Sigmoid())
    return sg.compile(net, loss="bce", optimizer=sg.Adam())


@pytest.fixture(scope="module")
def multi():
    net = sg.Sequential(sg.Dense(4, 6), sg.Tanh(), sg.Dense(6, 3), sg.Sigmoid())
    return sg.compile(net, loss="mse", optimizer=sg.SGD(lr=0.1))


@pytest.fixture(scope="module")
def cnn():
    net = sg.Sequential(sg.Conv2d(1, 2, 3), sg.ReLU(), sg.MaxPool2d(2), sg.Flatten(),
                        sg.Dense(2 * 3 * 3, 3), sg.Softmax(), input_shape=(1, 8, 8))
    return sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.1, momentum=0.9))


# Sections written by render/network_output.py and network_activation.py (another part of
# the printout, checked by their own tests) are left out of the heading checks.
def _own_headings(doc) -> list[str]:
    return [s.heading for s in doc.ordered()
            if not s.title.startswith(("Output layer", "Activation of layer"))
            and not s.appendix or s.title.startswith("each equation")]


def test_title_is_words_and_the_intro_typesets_the_layers(mlp):
    doc = mlp.derivation
    assert doc.title == "Backpropagation through a 2-layer network with binary cross-entropy loss"
    for raw in ("->", "Dense(", "'bce'", "_"):
        assert raw not in doc.title
    latex = doc.latex()
    assert r"$\mathrm{Dense}(2, 8)$, relu, $\mathrm{Dense}(8, 1)$, sigmoid" in latex
    assert "Dense(2, 8), relu, Dense(8, 1), sigmoid" in doc.text()


def test_headings_have_no_raw_math(mlp, cnn):
    for doc in (mlp.derivation, cnn.derivation):
        headings = _own_headings(doc)
        assert any(h.startswith("Layer 1 (dense0, Dense from") for h in headings)
        for heading in headings:
            assert not re.search(r"[_$\\^]|->|\(in x out\)", heading), heading
    assert "The activation after conv0: relu" in _own_headings(cnn.derivation)


def test_shapes_in_prose_are_math(mlp):
    latex = mlp.derivation.latex()
    assert r"$\mathrm{in} \times \mathrm{out}$" in latex
    assert r"$n \times 8$" in latex
    assert "(in x out)" not in latex and "(n x 8)" not in latex.replace(r"\left", "")


def test_the_loss_is_named_in_words(mlp, multi):
    assert "The loss, binary cross-entropy, is the mean over the $n$ rows of" in \
        mlp.derivation.markdown()
    assert "The loss, mean squared error, is the mean over all $n \\times 3$ outputs" in \
        multi.derivation.markdown()


def test_no_sum_over_a_single_output(mlp, multi):
    one, three = mlp.derivation.latex(), multi.derivation.latex()
    assert not re.search(r"\\sum_\{\w=1\}\^\{1\}", one)
    assert r"L = \frac{1}{n} \sum_{i=1}^{n} l(p_{i}, y_{i})" in one
    # With three outputs the sum over them stays.
    assert r"\sum_{i=1}^{n} \sum_{c=1}^{3} l(p_{ic}, y_{ic})" in three
    assert "L = 1/n * sum_i l(p_i, y_i)" in mlp.derivation.text()


def test_every_display_is_numbered_in_every_rendering(mlp):
    doc = mlp.derivation
    displays = [step for sec in doc.ordered() for step in sec.steps if step.math]
    assert doc.numbered and len(doc.numbers()) == len(displays)
    last = len(displays)
    assert f"\\tag{{{last}}}" in doc.latex() and f"\\tag{{{last}}}" in doc.markdown()
    assert re.search(rf"^\({last}\)", doc.text(), re.M)


def test_plain_text_shows_no_latex(mlp, multi, cnn):
    for model in (mlp, multi, cnn):
        text = model.derivation.text()
        assert "$" not in text
        assert "\\" not in text, [line for line in text.splitlines() if "\\" in line][:3]


def test_markdown_math_is_balanced(mlp, cnn):
    for model in (mlp, cnn):
        md = model.derivation.markdown()
        assert md.count("$$") % 2 == 0
        prose = [line for line in md.splitlines() if line and not line.startswith(("$$", "#"))]
        for line in prose:
            assert line.count("$") % 2 == 0, line


def test_latex_compiles_without_overfull_boxes(mlp, cnn, tmp_path, pdflatex):
    # The suite's conftest fails the test on any overfull box of the compiled document.
    for name, model in (("mlp", mlp), ("cnn", cnn)):
        pdf = model.derivation.to_tex(tmp_path / f"{name}.tex", compile_pdf=True)
        log = (tmp_path / f"{name}.log").read_text(errors="replace")
        assert pdf.exists() and "Overfull \\hbox" not in log


def test_cnn_layer_settings_are_typeset(cnn):
    doc = cnn.derivation
    latex, text = doc.latex(), doc.text()
    assert r"\mathrm{Conv2d}(1 \to 2,\ \text{kernel } 3 \times 3)" in latex
    assert r"\mathrm{MaxPool2d}(2 \times 2)" in latex
    assert "->" not in latex and not re.search(r"\d+x\d+", latex)
    # The plain text keeps the layer's repr, as Python prints it.
    assert "Conv2d(1 -> 2, kernel 3x3)" in text


def test_cnn_intro_typesets_the_head_shapes(cnn):
    latex = cnn.derivation.latex()
    assert r"Dense layer $j$ computes $Z_j = A_{j-1} W_j + b_j$ with $W_j$ of shape " \
        r"$\mathrm{in} \times \mathrm{out}$" in latex
    assert "(in x out)" not in latex
