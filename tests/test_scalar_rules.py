"""Rule-by-rule derivatives (seed 000's d = a*b + c): the rules come out of SymPy, every
step's result is sympy.diff of its sub-expression, and the printout names them."""

from __future__ import annotations

import pytest
import sympy as sp

import symgrad as sg
from symgrad.derive import rules
from symgrad.derive.rules import RuleError, rule_derivative
from symgrad.derive.scalar import node_symbols, symbolic
from symgrad.render.scalar_rules import MAX_OPS

a, b, c, f = sp.symbols("a b c f", real=True)


def _seed_d():
    va, vb, vc = sg.Value(2.0, label="a"), sg.Value(-3.0, label="b"), sg.Value(10.0, label="c")
    d = va * vb + vc
    d.label = "d"
    return d, (va, vb, vc)


def _section(text: str, title: str) -> str:
    start = text.index(title)
    nxt = text.find("\nRule by rule:", start + 1)
    stop = nxt if nxt != -1 else text.index("\nStart:", start)
    return text[start:stop]


def _named_rules(section: str) -> list[str]:
    return [line.split(" rule")[0] for line in section.splitlines() if " rule" in line
            and line.split(" rule")[0] in {"Sum", "Constant", "Variable", "Coefficient",
                                            "Product", "Power", "Exponential", "Chain"}]


def test_seed_dd_db_is_sum_constant_coefficient_and_ends_at_a():
    step = rule_derivative(a * b + c, b)
    assert step.rule == "sum" and step.result == a
    assert [p.rule for p in step.parts] == ["constant", "coefficient"]   # constants first
    constant, coefficient = step.parts
    assert constant.expr == c and constant.result == 0
    assert coefficient.expr == a * b and coefficient.outer == a
    assert [p.rule for p in coefficient.parts] == ["variable"]
    assert str(coefficient.assembled) == "a*1"          # a times d/db(b), before evaluating
    assert rule_derivative(a * b + c, c).result == 1
    assert [p.rule for p in rule_derivative(a * b + c, c).parts] == ["constant", "variable"]
    assert rule_derivative(a * b + c, a).result == b


def test_seed_printout_rule_by_rule(tmp_path, pdflatex):
    d, (va, vb, vc) = _seed_d()
    doc = sg.derivation(d, steps="rules")
    text = doc.text()
    db = _section(text, "Rule by rule: dd/db")
    assert _named_rules(db) == ["Sum", "Constant", "Coefficient"]
    assert "dd/db = d/db[a*b + c] = d/db[a*b] + d/db[c]" in db
    assert "d/db[c] = 0" in db
    assert "d/db[a*b] = a * d/db[b] = a * 1 = a" in db
    assert "dd/db = a + 0 = a = 2" in db
    dc = _section(text, "Rule by rule: dd/dc")
    assert _named_rules(dc) == ["Sum", "Constant", "Variable"]
    assert "dd/dc = 0 + 1 = 1" in dc
    assert "dd/da = b + 0 = b = -3" in _section(text, "Rule by rule: dd/da")
    # the rules come before the backward pass, which ends at the same numbers
    assert text.index("Rule by rule: dd/da") < text.index("Start: dd/dd = 1")
    d.backward()
    assert (va.grad, vb.grad, vc.grad) == (-3.0, 2.0, 1.0)
    latex = doc.latex()
    assert r"\frac{d}{db}\left(a \cdot b\right) = a \cdot \underbrace{" in latex
    assert r"\frac{dd}{db} = a + 0 = a = 2" in latex
    doc.to_tex(tmp_path / "rules.tex", compile_pdf=True)
    assert "Overfull \\hbox" not in (tmp_path / "rules.log").read_text(errors="replace")


@pytest.mark.parametrize("expr, x, top, names", [
    (a * sp.tanh(a), a, "product", {"product", "variable", "function"}),
    (a * b * sp.exp(a), a, "coefficient", {"coefficient", "product", "variable", "exponential"}),
    (a**3, a, "power", {"power", "variable"}),
    ((a * b + c)**2, b, "power", {"power", "sum", "constant", "coefficient", "variable"}),
    (sp.sqrt(a), a, "power", {"power", "variable"}),
    (sp.tanh(a * b), b, "chain", {"chain", "coefficient", "variable"}),
    (sp.exp(a), a, "exponential", {"exponential", "variable"}),
    (sp.exp(a * b), a, "chain", {"chain", "coefficient", "variable"}),
    (2**a, a, "exponential", {"exponential", "variable"}),
    (sp.log(a), a, "function", {"function"}),
    (a / b, b, "coefficient", {"coefficient", "power", "variable"}),
    (a - b, b, "sum", {"sum", "constant", "coefficient", "variable"}),
    (f * (a * b + c), a, "coefficient", {"coefficient", "sum", "constant", "variable"}),
    (sp.Max(a, 0), a, "direct", {"direct"}),
    (a**a, a, "direct", {"direct"}),
])
def test_rule_names_and_every_result_is_sympys_diff(expr, x, top, names):
    step = rule_derivative(expr, x)
    assert step.rule == top
    assert {s.rule for s in step.walk()} == names
    for s in step.walk():   # each step: sympy.diff of its own sub-expression
        assert sp.simplify(s.result - sp.diff(s.expr, x)) == 0, s.rule
        assert sp.simplify(sp.expand(s.assembled) - s.result) == 0, s.rule
    assert sp.simplify(step.result - sp.diff(expr, x)) == 0


def test_a_rule_that_disagrees_with_sympy_is_refused():
    with pytest.raises(RuleError, match="sum rule on a\\*b"):
        rules._make("sum", a * b, b, sp.Integer(0))
    with pytest.raises(TypeError, match="symbol"):
        rule_derivative(a * b, a * b)


def _neuron_loss():
    x1, x2 = sg.Value(2.0, label="x1"), sg.Value(0.0, label="x2")
    w1, w2 = sg.Value(-3.0, label="w1"), sg.Value(1.0, label="w2")
    b0 = sg.Value(6.8813735870195432, label="b")
    o = (x1 * w1 + x2 * w2 + b0).tanh()
    loss = (o - 1.0) ** 2
    loss.label = "L"
    return loss, (x1, x2, w1, w2, b0)


def test_rule_results_equal_the_backward_pass_on_a_neuron_loss(tmp_path, pdflatex):
    loss, leaves = _neuron_loss()
    loss.backward()
    names = node_symbols(loss)
    expr = symbolic(loss)
    at = {names[id(v)]: v.data for v in leaves}
    for v in leaves:
        step = rule_derivative(expr, names[id(v)])
        assert step.rule == "power" and step.parts[0].rule == "sum"
        assert float(step.result.subs(at)) == pytest.approx(v.grad, rel=1e-12, abs=1e-15)
    doc = sg.derivation(loss, steps="rules+slope")
    text = doc.text()
    assert "Chain rule" in text and "Power rule" in text and "Finite differences" in text
    doc.to_tex(tmp_path / "loss.tex", compile_pdf=True)
    assert "Overfull \\hbox" not in (tmp_path / "loss.log").read_text(errors="replace")


def test_rules_on_hostile_labels_are_escaped(tmp_path, pdflatex):
    x = sg.Value(2.0, label='q\\input{f}#_~^%')
    t = sg.Value(3.0, label="\\theta")
    y = (x * t).tanh()
    y.label = "my out"
    doc = sg.derivation(y, steps="rules")
    latex = doc.latex()
    assert r"\input" not in latex
    assert r"q\textbackslash{}input\{f\}\#\_\textasciitilde{}\textasciicircum{}\%" in latex
    assert r"\theta" in latex and 'q\\input{f}#_~^%' in doc.text()
    assert "Rule by rule: dmy out/d\\theta" in doc.text()
    doc.to_tex(tmp_path / "hostile.tex", compile_pdf=True)
    assert "Overfull \\hbox" not in (tmp_path / "hostile.log").read_text(errors="replace")


def test_rules_option_joins_with_others_and_large_outputs_get_a_note():
    d, _ = _seed_d()
    with pytest.raises(ValueError, match="'rules'"):
        sg.derivation(d, steps="rule")
    assert "Rule by rule" in sg.derivation(d, steps="limit+rules").text()
    assert "Rule by rule" not in sg.derivation(d).text()
    x = sg.Value(0.5, label="x")
    total = x
    for k in range(MAX_OPS):
        total = total * x + float(k + 1)
    total.label = "y"
    text = sg.derivation(total, steps="rules").text()
    assert f"rule-by-rule derivations are printed up to {MAX_OPS}" in text
    assert "Rule by rule: dy/dx" not in text


def test_seed000_example_prints_the_rules_first(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "seed000_expression.py"
    spec = importlib.util.spec_from_file_location("seed000_expression", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    grads = module.main(tmp_path)
    out = capsys.readouterr().out
    assert out.index("dd/db = a + 0 = a = 2") < out.index("Backpropagation through L")
    assert "dd/dc = 0 + 1 = 1" in out and "dd/da = b + 0 = b = -3" in out
    assert grads["a"] == 6.0 and grads["b"] == -4.0
