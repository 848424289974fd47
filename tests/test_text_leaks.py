"""No LaTeX leaks into the plain-text or Markdown prose of a printout (issue 10, item 2).

Every registered activation and loss is printed inside a network, every scalar op
through its own derivation (limit tables and finite-difference slopes included); the
plain text may hold no backslash command and no ``$``, and Markdown prose (outside
``$...$`` and ``$$`` blocks) no backslash command.
"""

from __future__ import annotations

import re

import pytest

import symgrad as sg
from symgrad.definition.activations import REGISTRY
from symgrad.definition.losses import LOSSES
from symgrad.definition.scalar_ops import SCALAR_OPS
from symgrad.definition.value import apply
from symgrad.render.document import Derivation
from symgrad.render.latex_text import latex_to_text
from symgrad.render.notebook import derivation_markdown

COMMAND = re.compile(r"\\[A-Za-z]+")
INLINE = re.compile(r"\$[^$]+\$")

pytestmark = pytest.mark.usefixtures("scratch_registries")


def text_leaks(doc: Derivation) -> list[str]:
    """Lines of the plain text that still show LaTeX."""
    return [line for line in doc.text().splitlines() if "\\" in line or "$" in line]


def markdown_leaks(markdown: str) -> list[str]:
    """Markdown prose lines (outside math) that show a LaTeX command."""
    leaks, in_display = [], False
    for line in markdown.splitlines():
        if line.strip() == "$$":
            in_display = not in_display
            continue
        if in_display:
            continue
        prose = INLINE.sub("", line)
        if COMMAND.search(prose.replace("\\\\", "")):   # "\\_" is an escaped character
            leaks.append(line)
    return leaks


def _assert_clean(doc: Derivation) -> None:
    assert text_leaks(doc) == []
    assert markdown_leaks(doc.markdown()) == []
    assert markdown_leaks(derivation_markdown(doc)) == []


def _network(*layers, loss) -> Derivation:
    return sg.compile(sg.Sequential(*layers), loss=loss).derivation


@pytest.mark.parametrize("name", sorted(n for n, c in REGISTRY.items()
                                        if c.entry.kind == "elementwise"))
def test_every_activation_prints_without_latex_in_text(name):
    _assert_clean(_network(sg.Dense(2, 3), REGISTRY[name](), sg.Dense(3, 1), loss="mse"))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_prints_without_latex_in_text(name):
    out = sg.Softmax() if LOSSES[name].requires_softmax else sg.Sigmoid()
    _assert_clean(_network(sg.Dense(2, 3), sg.Tanh(), sg.Dense(3, 3), out, loss=name))


def test_a_custom_loss_with_a_stable_form_note_prints_clean():
    # The example: log-cosh's stable-form note says "$\log\cosh u$" in prose.
    yhat, y = sg.var("yhat"), sg.var("y")
    logcosh = sg.loss("leak_logcosh", sg.log(sg.cosh(yhat - y)))
    doc = _network(sg.Dense(2, 3), sg.Tanh(), sg.Dense(3, 1), loss=logcosh)
    assert "log cosh u" in doc.text()
    _assert_clean(doc)


@pytest.mark.parametrize("name", list(SCALAR_OPS.names()))
def test_every_scalar_op_derivation_prints_without_latex_in_text(name):
    op = SCALAR_OPS[name]
    operands = [sg.Value(v, label=label) for v, label in zip((0.7, 1.3, 0.4), "abc",
                                                              strict=False)][:op.arity]
    out = apply(name, *operands, **{p: 2.0 for p in op.params})
    out.label = "r"
    _assert_clean(sg.derivation(out, steps="limit+slope"))


def test_a_display_without_a_plain_form_is_read_as_text():
    doc = Derivation(r"Title with $\alpha$")
    doc.section(r"Section $\sigma(z)$").add(
        text=r"Prose with $\log\cosh u$ and $\sqrt{\frac{2}{\pi}}$.",
        math=r"\frac{\partial L}{\partial w} = \left(\tanh{\left(x \right)}\right)^{2} "
             r"\cdot \mathbf{1}_n \in \mathbb{R}^{n \times 1}")
    text = doc.text()
    assert "Title with alpha" in text and "Section sigma(z)" in text
    assert "Prose with log cosh u and sqrt(2/pi)." in text
    assert "dL/dw = (tanh(x))^2 * 1_n in R^(n x 1)" in text
    assert text_leaks(doc) == []


@pytest.mark.parametrize("latex, text", [
    (r"\sum_{i=1}^{n} x_{i}", "sum_(i=1)^n x_i"),
    (r"\lim_{h \to 0} \frac{f(x + h) - f(x)}{h}", "lim_(h -> 0) (f(x + h) - f(x))/h"),
    (r"p \leftarrow p - \eta \nabla L", "p <- p - eta grad L"),
    (r"A \odot B^{\top}", "A (*) B^T"),
    (r"\begin{cases} z & \text{for}\: z > 0 \\ 0 & \text{otherwise} \end{cases}",
     "{ z for z > 0; 0 otherwise }"),
    (r"\left\{ a \right\}", "{ a }"),
    (r"\operatorname{softplus}{\left(z \right)} \geq 0 \tag{3}", "softplus(z) >= 0 (3)"),
    (r"\hat{y} - \bar{x} \neq 0", "yhat - xbar != 0"),
    (r"\unknowncommand x + \other\third", "unknowncommand x + other third"),
    (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", "(1, 2; 3, 4)"),
])
def test_latex_to_text_reads_the_commands_printers_emit(latex, text):
    assert latex_to_text(latex) == text
    assert "\\" not in latex_to_text(latex)
