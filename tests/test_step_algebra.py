"""Steps A and B line by line (issue 10, item 8): every line is SymPy's, and equal to the last.

Seed 001 takes dl/dp of binary cross-entropy over a common denominator, multiplies the
numerator out, cancels +yp and -py and is left with (p - y)/(p(1 - p)); it splits sigma'
into sigma times e^{-z}/(1 + e^{-z}) = 1 - sigma. The lines here come from the user's own
formulas (`symgrad.simplify.step_algebra`), and the printout shows them.
"""

from __future__ import annotations

import pytest
import sympy as sp

import symgrad as sg
from symgrad.definition.activations import REGISTRY
from symgrad.definition.formulas import A, P, Y, Z
from symgrad.definition.losses import LOSSES
from symgrad.derive.elementwise import derive_elementwise
from symgrad.render.latex_printer import layer_str
from symgrad.render.network import network_derivation
from symgrad.simplify.fusion import fuse_output
from symgrad.simplify.network import derive_network
from symgrad.simplify.saved_output import activation_plan
from symgrad.simplify.step_algebra import (
    branch_rewrite_steps,
    loss_derivative_steps,
    piecewise_branches,
    saved_output_steps,
)

_x = sg.var("x")


def _assert_chain(lines, subs=None):
    """Each line equals the one before it, symbolically (simplify of the difference is 0)."""
    for before, after in zip(lines, lines[1:], strict=False):
        diff = (before.expr - after.expr).xreplace(subs or {})
        assert sp.simplify(diff) == 0, (before, after)


def _plan(layer):
    return activation_plan(derive_elementwise(layer))[0]


def test_bce_step_a_cancels_yp_against_py():
    lines = loss_derivative_steps(LOSSES["bce"].bound(), P)
    reasons = [line.reason for line in lines]
    assert reasons[:4] == ["differentiated", "common denominator", "numerator multiplied out",
                           "cancelled"]
    # The derivative SymPy returns is the sum of the two fractions, as in the notes.
    assert sp.simplify(lines[0].expr - (-Y / P + (1 - Y) / (1 - P))) == 0
    # Common denominator p(1 - p) (up to sign), numerator not yet multiplied out.
    num, den = sp.fraction(sp.together(lines[1].expr))
    assert sp.simplify(den / (P * (1 - P))) in (1, -1)
    # Multiplied out term by term, y*p and -p*y are both still there...
    terms = sp.Add.make_args(lines[2].expr.args[0])
    assert {P * Y, -P * Y} <= set(terms)
    # ...and they are the pair that cancels.
    [(a, b)] = lines[3].cancelled
    assert {a, b} == {P * Y, -P * Y}
    assert sp.simplify(lines[-1].expr - (P - Y) / (P * (1 - P))) == 0
    # The last line is Step A exactly as the fusion stage keeps it in the plan.
    assert lines[-1].expr == fuse_output(sg.Sigmoid(), LOSSES["bce"]).step_a
    _assert_chain(lines)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_gets_a_chain_of_equal_lines(name):
    lines = loss_derivative_steps(LOSSES[name].bound(), P)
    assert lines[0].reason == "differentiated"
    assert sp.simplify(lines[0].expr - sp.diff(LOSSES[name].bound(), P)) == 0
    _assert_chain(lines)


def test_mse_has_nothing_to_cancel():
    lines = loss_derivative_steps(LOSSES["mse"].bound(), P)
    assert not any(line.cancelled for line in lines)
    assert sp.simplify(lines[-1].expr - 2 * (P - Y)) == 0


def test_sigmoid_step_b_splits_off_sigma():
    sig = _plan(sg.Sigmoid())
    lines = saved_output_steps(sig.forward, sig.derivative_raw, sig.derivative, Z, A)
    assert [line.reason for line in lines] == [
        "differentiated", "split off the factor f(z)", "second factor written in the output"]
    e = sp.exp(-Z)
    assert sp.simplify(lines[0].expr - e / (1 + e) ** 2) == 0
    first, second = lines[1].factors
    assert sp.simplify(first - 1 / (1 + e)) == 0 and sp.simplify(second - e / (1 + e)) == 0
    # e^{-z}/(1 + e^{-z}) = 1 - sigma = 1 - a, each link SymPy's.
    rest, in_f, in_a = lines[2].using
    assert sp.simplify(rest - in_f) == 0 and in_a == 1 - A
    assert sp.simplify(lines[-1].expr - A * (1 - A)) == 0
    _assert_chain(lines, {A: sig.forward})


def test_tanh_step_b_substitutes_the_output():
    th = _plan(sg.Tanh())
    lines = saved_output_steps(th.forward, th.derivative_raw, th.derivative, Z, A)
    assert lines[1].reason == "substituted" and lines[1].using == (sp.tanh(Z), A)
    assert lines[-1].expr == 1 - A**2
    _assert_chain(lines, {A: th.forward})


def test_a_custom_activation_goes_through_its_inverse():
    Cubic = sg.activation("h3_cubic_exp", sp.exp(3 * _x))
    try:
        act = _plan(Cubic())
        lines = saved_output_steps(act.forward, act.derivative_raw, act.derivative, Z, A)
        assert lines, "exp(3z) has a form in a: 3a"
        assert sp.simplify(lines[-1].expr - 3 * A) == 0
        _assert_chain(lines, {A: act.forward})
    finally:
        REGISTRY.pop("h3_cubic_exp", None)


def test_activations_kept_in_z_have_no_lines():
    sw = _plan(sg.Swish())
    assert sw.derivative.has(Z)
    assert saved_output_steps(sw.forward, sw.derivative_raw, sw.derivative, Z, A) == []


def test_relu_and_leaky_relu_derivatives_are_piecewise():
    relu = _plan(sg.ReLU())
    assert piecewise_branches(relu.derivative_raw) == [(1, Z > 0), (0, Z <= 0)]
    leaky = _plan(sg.LeakyReLU(0.2))
    assert piecewise_branches(leaky.derivative_raw) == [(1, Z > 0), (sp.Rational(1, 5), Z <= 0)]
    assert piecewise_branches(_plan(sg.Tanh()).derivative_raw) is None


@pytest.fixture(scope="module")
def seed001():
    net = sg.Sequential(sg.Dense(2, 8), sg.ReLU(), sg.Dense(8, 1), sg.Sigmoid())
    return sg.compile(net, loss="bce").derivation


def test_the_printout_shows_step_a_line_by_line(seed001):
    text = seed001.text()
    assert "dl/dp = (1 - y)/(1 - p) - y/p" in text
    assert "= (p*(1 - y) - y*(1 - p))/(p*(1 - p))    (common denominator)" in text
    assert "= (-p*y + p*y + p - y)/(p*(1 - p))    (numerator multiplied out)" in text
    assert "= (p - y)/(p*(1 - p))    (cancelled)" in text
    assert "sum to zero and cancel" in text


def test_the_printout_derives_step_b_and_the_relu_cases(seed001):
    text, latex = seed001.text(), seed001.latex()
    assert "dp/dZ2 = exp(-Z2)/(1 + exp(-Z2))**2" in text
    assert "= (1/(1 + exp(-Z2))) * (exp(-Z2)/(1 + exp(-Z2)))" in text
    assert "= p*(1 - p)    (second factor written in the output)" in text
    # ReLU: f and f' as cases before the mask.
    assert "f'(z) = 1  if z > 0" in text and "0  if z <= 0" in text
    assert r"\begin{cases} 1 & z > 0 \\ 0 & z \leq 0 \end{cases}" in latex


def test_internal_names_moved_to_the_appendix(seed001):
    main = [s for s in seed001.ordered() if not s.appendix]
    words = " ".join(step.text for s in main for step in s.steps)
    for raw in ("identity '", "(evaluated so)", "Stable forward form", "'bce'", "'sigmoid'"):
        assert raw not in words
    titles = [s.title for s in seed001.ordered() if s.appendix]
    assert "Identities proven by sg.check" in titles and "How the kernel evaluates it" in titles
    proofs = seed001.appendix("Identities proven by sg.check")
    assert any("Step B" in step.text for step in proofs.steps)


@pytest.mark.parametrize("act", ["leaky_relu", "elu"])
def test_every_piecewise_activation_shows_cases(act):
    net = sg.Sequential(sg.Dense(2, 3), REGISTRY[act](), sg.Dense(3, 1))
    text = sg.compile(net, loss="mse").derivation.text()
    section = text[text.index("Activation of layer 1"):]
    assert "Branch by branch" in section[:section.index("\n\n")]
    assert "if z > 0" in section


def test_printed_lines_use_the_layer_names():
    net = sg.Sequential(sg.Dense(2, 3), sg.Tanh(), sg.Dense(3, 1))
    text = sg.compile(net, loss="mse").derivation.text()
    assert f"f'(Z1) = {layer_str(1 - sp.tanh(Z)**2, {Z: ('Z_1', 'Z1')})}" in text
    assert "= 1 - A1**2    (substituted)" in text


def _registry_docs():
    """One printout with every elementwise activation hidden, one per loss (and log-cosh)."""
    acts = [cls() for _, cls in sorted(REGISTRY.items()) if cls.entry.kind == "elementwise"]
    layers: list = [sg.Dense(2, 3)]
    for act in acts:
        layers += [act, sg.Dense(3, 3)]
    docs = {"activations": network_derivation(derive_network(sg.Sequential(*layers), "mse"))}
    yhat, y = sg.var("yhat"), sg.var("y")
    losses = {**LOSSES, "h3_logcosh": sg.loss("h3_logcosh", sg.log(sg.cosh(yhat - y)))}
    for name, entry in losses.items():
        if entry.requires_softmax:
            head = sg.Softmax()
        elif entry.formula.has(sp.log) and not entry.formula.has(sp.cosh):
            head = sg.Sigmoid()
        else:
            head = sg.Identity()
        net = sg.Sequential(sg.Dense(2, 3), sg.Tanh(), sg.Dense(3, 2), head)
        docs[name] = network_derivation(derive_network(net, entry))
    return docs


@pytest.mark.usefixtures("scratch_registries")
def test_no_latex_leaks_and_no_overfull_box_for_any_registry_entry(tmp_path, pdflatex):
    import re

    for name, doc in _registry_docs().items():
        text = doc.text()
        assert "\\" not in text and "$" not in text, (name, [
            line for line in text.splitlines() if "\\" in line or "$" in line][:3])
        for line in doc.markdown().splitlines():
            if not line.startswith(("$$", "#", r"\begin")):
                assert line.count("$") % 2 == 0, (name, line)
        doc.to_tex(tmp_path / f"{name}.tex", compile_pdf=True)
        log = (tmp_path / f"{name}.log").read_text(errors="replace")
        assert not re.findall(r"Overfull \\hbox.*", log), name


def test_elu_is_rewritten_branch_by_branch_through_the_inverse():
    elu = _plan(sg.ELU())
    steps = branch_rewrite_steps(elu.forward, elu.derivative_raw, elu.derivative, Z, A)
    assert [(st.value, st.value_out) for st in steps] == [(1, 1), (sp.exp(Z), A + 1)]
    negative = steps[1]
    assert negative.forward == sp.exp(Z) - 1 and negative.inverse == sp.log(A + 1)
    assert sp.simplify(negative.value.subs(Z, negative.inverse) - negative.value_out) == 0
    assert negative.boundary == (0, 0) and negative.condition_out == (A <= 0)
    text = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.ELU(), sg.Dense(3, 1)),
                      loss="mse").derivation.text()
    assert "Rewritten in terms of the saved output, branch by branch:" in text
    assert "A1 + 1  if A1 <= 0" in text and "Z_1 = log(A_1 + 1)" in text
