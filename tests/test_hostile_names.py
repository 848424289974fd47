"""Hostile names and labels: refused at definition with a clear error, and inert if they
ever get past it (generated kernel source, exported trainer, derivation printout).

Every kind of user-named thing is covered: activation name / latex / parameter names,
loss name / latex / parameter names, scalar op name / latex / text / symbol / parameter
names, and `Value` labels (at construction and when set later).
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad.definition.activations import ActivationLayer
from symgrad.definition.errors import DefinitionError
from symgrad.definition.losses import LOSSES
from symgrad.definition.scalar_ops import SCALAR_OPS, ScalarOpRegistry

pytestmark = pytest.mark.usefixtures("scratch_registries")

x, yhat, y = sg.var("x"), sg.var("yhat"), sg.var("y")

# One piece per way a string can escape its context: Python string/comment syntax,
# newlines, LaTeX specials and primitives, format fields, and Unicode that hides
# (zero-width) or reorders (RTL override) text.
HOSTILE = ['"', "'", '"""', "'''", "\\", "\n", "\r", "#", "{", "}", "%", "$", "&", "^",
           ";", " ", "\\input{/etc/passwd}", "\\write18{touch pwned}", "{0.__class__}",
           "\u202e", "\u200b", "\u200d", "\u2028", "\x00", "\u00e9", "\u03c3", "-", "."]


def _first_bad(name: str) -> str:
    return next(ch for ch in name if not (ch.isascii() and (ch.isalnum() or ch == "_")))


def _assert_names_char(exc: pytest.ExceptionInfo, bad: str) -> None:
    assert f"U+{ord(bad):04X}" in str(exc.value), str(exc.value)


@pytest.mark.parametrize("piece", HOSTILE, ids=ascii)
def test_activation_loss_and_op_names_refuse_every_hostile_character(piece):
    name = f"a{piece}b"
    bad = _first_bad(name)
    with pytest.raises(DefinitionError, match="activation name") as exc:
        sg.activation(name, sg.tanh(x))
    _assert_names_char(exc, bad)
    with pytest.raises(DefinitionError, match="loss name") as exc:
        sg.loss(name, (yhat - y) ** 2)
    _assert_names_char(exc, bad)
    with pytest.raises(DefinitionError, match="scalar op name") as exc:
        sg.register_scalar_op(name, lambda x0: x0**3, latex="{0}^{{3}}",
                              registry=ScalarOpRegistry())
    _assert_names_char(exc, bad)


@pytest.mark.parametrize("piece", HOSTILE, ids=ascii)
def test_parameter_names_refuse_every_hostile_character(piece):
    pname = f"k{piece}"
    bad = _first_bad(pname)
    with pytest.raises(DefinitionError, match="activation 'act_p'.*parameter") as exc:
        sg.activation("act_p", sg.tanh(x), **{pname: 1.0})
    _assert_names_char(exc, bad)
    with pytest.raises(DefinitionError, match="loss 'loss_p'.*parameter") as exc:
        sg.loss("loss_p", (yhat - y) ** 2, **{pname: 1.0})
    _assert_names_char(exc, bad)
    with pytest.raises(DefinitionError, match="scalar op 'op_p'.*parameter") as exc:
        sg.register_scalar_op("op_p", "x0", latex="{0}", params=(pname,),
                              registry=ScalarOpRegistry())
    _assert_names_char(exc, bad)


# LaTeX that can read/write files, run the shell, redefine TeX or break the document.
DANGEROUS_LATEX = [
    r"\input{/etc/passwd}", r"\include{x}", r"\write18{touch pwned}",
    r"\immediate\write18{id}", r"\openout5=x", r"\catcode`\@=11", r"\def\f{x}",
    r"\csname input\endcsname{x}", r"\begin{filecontents}{x}", r"\end{document}",
    r"\newcommand{\x}{y}", r"\usepackage{shellesc}", r"\directlua{os.execute('id')}",
    r"\pdfprimitive\input", r"\everyeof{x}", r"\^^69nput{x}", "a{b", "a}b{", "}{",
    # expl3 reads files with names a deny-list missed; conditionals and a lone \left or
    # \right unbalance the document (fuzzing, 2026-12-03)
    r"\ExplSyntaxOn\file_input:n{/etc/passwd}\ExplSyntaxOff", r"\iffalse", r"\fi",
    r"\ifx ab\else c\fi", r"\left(", r"x\right)", r"{\left(}\right)", r"\newline x",
    r"\relax", r"\show\x", r"\@", r"\/",
    r"50% off", r"a#1", r"$x$", r"a&b", r"a\\b", "\\sigma\n\\input{x}", "\u03c3",
    "\u202e\\sigma", "\\", r"\lowercase{\INPUT}", r"\string\input",
]


@pytest.mark.parametrize("latex", DANGEROUS_LATEX, ids=ascii)
def test_latex_arguments_refuse_primitives_specials_and_unbalanced_braces(latex):
    with pytest.raises(DefinitionError, match="activation 'act_l'.*latex"):
        sg.activation("act_l", sg.tanh(x), latex=latex)
    with pytest.raises(DefinitionError, match="loss 'loss_l'.*latex"):
        sg.loss("loss_l", (yhat - y) ** 2, latex=latex)
    # A scalar op's latex is a str.format template: double its braces so the filled-in
    # text is exactly the dangerous LaTeX.
    template = latex.replace("{", "{{").replace("}", "}}") + "{0}"
    with pytest.raises(DefinitionError, match="scalar op 'op_l'"):
        sg.register_scalar_op("op_l", "x0", latex=template, registry=ScalarOpRegistry())


@pytest.mark.parametrize("latex", [r"\operatorname{Mish}", r"\mathrm{sw}", r"\sigma",
                                   r"\widetilde{\tanh}", r"\sigma_{\text{my}}", r"\{x\}",
                                   r"\operatorname{log\,cosh}", r"f^{(2)}",
                                   r"\left(\tfrac{1}{2}\right)^{\prime}", r"\big|x\big|"])
def test_ordinary_latex_names_are_accepted(latex):
    Act = sg.activation("act_ok", sg.tanh(x), latex=latex, replace=True)
    assert Act.entry.latex == latex
    assert sg.loss("loss_ok", (yhat - y) ** 2, latex=latex, replace=True).latex == latex


@pytest.mark.parametrize("piece", ["\n", "\r", "\u202e", "\u200b", "\u2028", "\x00", "\x1b"],
                         ids=ascii)
def test_op_text_and_symbol_refuse_invisible_and_line_breaking_characters(piece):
    with pytest.raises(DefinitionError, match="text") as exc:
        sg.register_scalar_op("op_t", "x0", latex="{0}", text=f"t({{0}}){piece}",
                              registry=ScalarOpRegistry())
    _assert_names_char(exc, piece)
    with pytest.raises(DefinitionError, match="symbol") as exc:
        sg.register_scalar_op("op_s", "x0", latex="{0}", symbol=f"s{piece}",
                              registry=ScalarOpRegistry())
    _assert_names_char(exc, piece)


@pytest.mark.parametrize("template", ["{0.__class__}", "{0!r}", "{0:>9}", "{1}", "{k}",
                                      "{__import__}", "{", "}"], ids=ascii)
def test_op_templates_allow_only_operand_and_parameter_fields(template):
    for part in ("latex", "text"):
        with pytest.raises(DefinitionError, match=f"{part} template"):
            sg.register_scalar_op("op_f", "x0", **{"latex": "{0}", part: template},
                                  registry=ScalarOpRegistry())


@pytest.mark.parametrize("part", ["text", "symbol"])
def test_plain_text_op_templates_refuse_dollars(part):
    # text lands in derivation titles ($...$ is math there), symbol in matplotlib mathtext.
    with pytest.raises(DefinitionError, match=f"{part} template.*'\\$'"):
        sg.register_scalar_op("op_d", "x0", latex="{0}", registry=ScalarOpRegistry(),
                              **{part: "$\\input{{x}}$ {0}" if part == "text" else "$\\input$"})


def _use(command: str) -> str:
    """``command`` as it is written in a formula: with a delimiter, after a sum, with
    arguments (extra braces are harmless to a command that takes none)."""
    if command in ("left", "right"):
        return r"\left( x \right)"
    if command.startswith(("big", "Big")):
        return rf"\{command}( x \{command})" if command[-1] not in "lr" else \
            rf"\{command[:-1]}l( x \{command[:-1]}r)"
    if command in ("limits", "nolimits"):
        return rf"\sum\{command}_{{i}} x"
    return rf"\{command}{{x}}{{y}}"


def test_every_allowed_latex_command_compiles_in_the_documents_math(pdflatex, tmp_path):
    """The allow-list holds only commands that typeset in the documents' math mode, with
    their preamble: a name the user is allowed to write never breaks the document."""
    from symgrad.definition.latex_input import ALLOWED_COMMANDS, ALLOWED_SYMBOLS, check_latex
    from symgrad.render.document import compile_tex, standalone_tex

    rows = [_use(c) for c in sorted(ALLOWED_COMMANDS)]
    rows += [rf"x\{c}y" for c in sorted(ALLOWED_SYMBOLS)]
    for row in rows:
        check_latex(row, "row")
    body = "\n".join([r"\begin{align*}", " \\\\\n".join(f"&{r}" for r in rows),
                      r"\end{align*}"])
    tex = tmp_path / "allowed.tex"
    tex.write_text(standalone_tex(body))
    compile_tex(tex)    # raises with pdflatex's log on any error
    assert tex.with_suffix(".pdf").stat().st_size > 0


@pytest.mark.parametrize("label", ["a\nb", "a\u202eb", "a\u200bb", "x$\\input{y}$",
                                   "\\input{/etc/passwd}", "\\write18{id}", "\\sigma{",
                                   "a\x00", "\u2028"], ids=ascii)
def test_value_labels_refuse_invisible_characters_dollars_and_unsafe_latex(label):
    with pytest.raises(DefinitionError, match="label"):
        sg.Value(1.0, label=label)
    # A label set after construction is checked before anything prints it.
    v = sg.Value(2.0, label="v")
    w = v * v
    w.label = label
    with pytest.raises(DefinitionError, match="label"):
        sg.derivation(w)
    with pytest.raises(DefinitionError, match="label"):
        sg.draw(w, "never_written.png")
    assert not Path("never_written.png").exists()


def test_labels_with_dollars_are_refused_and_other_specials_print_escaped():
    # '$' would open inline math in the printed prose (section titles): refused.
    with pytest.raises(DefinitionError, match=r"label 'cost in \$'.*'\$'"):
        sg.Value(1.0, label="cost in $")
    a = sg.Value(2.0, label='a"b#c%d{e}\\input{f}_g~h^')
    b = sg.Value(3.0, label="\\theta")   # LaTeX by intent: allowed, printed as LaTeX
    doc = sg.derivation(a * b)
    tex = doc.latex()
    assert r"\input" not in tex
    assert r"\#c\%d\{e\}\textbackslash{}input\{f\}\_g\textasciitilde{}h\textasciicircum{}" in tex
    assert r"\theta" in tex
    assert 'a"b#c%d{e}\\input{f}_g~h^' in doc.text()   # the plain text shows the label as is


# --- defence in depth: an entry that skipped validation still cannot inject code --------
PAYLOAD = ('x"""; open({marker!r}, "w").write("pwned"); """\n'
           'import os; os.system("touch {marker}")  # \\u202e {{ $\\input{{x}}$')


def _smuggled(marker: Path):
    """An activation and a loss whose names carry the payload (bypassing `activation()`)."""
    payload = PAYLOAD.format(marker=str(marker))
    act_entry = dataclasses.replace(sg.Tanh.entry, name=payload)
    Smuggled = type("Smuggled", (ActivationLayer,), {"entry": act_entry})

    loss = dataclasses.replace(LOSSES["mse"], name=payload)
    return Smuggled, loss


def _assert_payload_is_not_code(source: str) -> None:
    # One valid module in which the payload is at most text: no call of open() or
    # os.system, whatever the docstrings and comments say.
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            assert not (isinstance(func, ast.Name) and func.id == "open")
            assert not (isinstance(func, ast.Attribute) and func.attr == "system")


def test_names_that_skip_validation_are_inert_in_kernel_source_fit_export_and_render(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    Smuggled, loss = _smuggled(marker)
    net = sg.Sequential(sg.Dense(2, 3), Smuggled(), sg.Dense(3, 1))
    model = sg.compile(net, loss=loss, seed=0)
    source = model.source
    _assert_payload_is_not_code(source)
    X = np.random.default_rng(0).normal(size=(16, 2))
    Y = X[:, :1] * 0.5
    model.fit(X, Y, epochs=1, batch_size=8)
    exported = Path(model.export(str(tmp_path / "trainer.py")))
    _assert_payload_is_not_code(exported.read_text(encoding="utf-8"))
    model.derivation.latex()
    model.derivation.text()
    assert not marker.exists(), "a name reached generated source as code"


def test_builtin_ops_and_registries_hold_only_safe_names():
    # Every entry that exists (built-ins included) passes the same checks users face.
    from symgrad.definition.activations import REGISTRY
    from symgrad.definition.latex_input import check_latex
    from symgrad.definition.names import check_name

    for name, cls in REGISTRY.items():
        check_name(name, "activation")
        check_latex(cls.entry.latex, name)
    for name, entry in LOSSES.items():
        check_name(name, "loss")
        check_latex(entry.latex, name)
    for op in SCALAR_OPS:
        check_name(op.name, "scalar op")


def test_string_formula_identifiers_cannot_reach_private_names():
    # Dunder names in a string formula are refused, not turned into symbols.
    with pytest.raises(DefinitionError, match="attribute access 'x.__class__' is not allowed"):
        sg.activation("act_d", "x.__class__")
    with pytest.raises(DefinitionError, match="name '_x' is not allowed"):
        sg.activation("act_u", "_x + 1")
    assert sg.activation("act_ok_str", "x_1**2 + x_1").entry.variable.name == "x_1"


def test_default_latex_of_a_user_name_escapes_underscores():
    Act = sg.activation("my_act", x**3)
    assert Act.entry.latex == r"\operatorname{my\_act}"
