"""Limit-definition tables (steps="limit"): every op's table fits the page, products are
written with a dot as the notes write them, and the text and Markdown carry no LaTeX."""

from __future__ import annotations

import random
import re

import pytest
import sympy as sp
from seed_graphs import seed000_loss

import symgrad as sg
from symgrad.definition.convention import differentiate
from symgrad.definition.scalar_ops import BUILTIN_NAMES, SCALAR_OPS
from symgrad.definition.value import apply
from symgrad.render.document import overfull_boxes
from symgrad.simplify.limit import function_name, latex_em, latex_quotient, limit_steps

BUILTIN_OPS = ("add", "sub", "mul", "div", "neg", "pow", "exp", "log", "tanh", "sin", "cos",
               "relu", "sigmoid")
# Short names, the notes' names, and long words (printed upright, so wider).
LABELS = {"short": ("a", "b"), "notes": ("x1", "w1"), "words": ("hidden", "weight")}


def _every_op(names: tuple[str, str]) -> sg.Value:
    """A graph holding each built-in op once, its inputs named ``names``; the root sums them."""
    x, y = sg.Value(0.8, label=names[0]), sg.Value(1.3, label=names[1])
    nodes = []
    for k, name in enumerate(BUILTIN_OPS):
        op = SCALAR_OPS[name]
        node = apply(name, *[x, y][:op.arity], **{p: 3.0 for p in op.params})
        node.label = f"o{k}"
        nodes.append(node)
    root = nodes[0]
    for node in nodes[1:]:
        root = root + node
    root.label = "L"
    return root


def test_the_graph_holds_every_builtin_op():
    # a new built-in op must join BUILTIN_OPS, and with it the page check below
    assert set(BUILTIN_OPS) == BUILTIN_NAMES


@pytest.mark.parametrize("style", sorted(LABELS))
def test_every_ops_limit_table_fits_the_page(style, tmp_path, pdflatex):
    doc = sg.derivation(_every_op(LABELS[style]), steps="limit")
    tex = doc.latex()
    # a table per op and operand, tables equal up to names shown once: x - y twice, x + y once
    assert tex.count("the limit of the difference quotient") == len(BUILTIN_OPS) + 2
    doc.to_tex(tmp_path / "ops.tex", compile_pdf=True)
    assert overfull_boxes(tmp_path / "ops.log") == []


def test_a_long_numerator_is_split_over_lines_that_each_fit():
    terms = [(k % 3 == 0, f"e^{{{k} a}} \\cdot e^{{- h}}", False) for k in range(1, 30)]
    out = latex_quotient(terms, "h", width=30.0)
    assert out.startswith(r"\frac{\begin{aligned}&") and out.endswith(r"\end{aligned}}{h}")
    rows = out[len(r"\frac{\begin{aligned}"):-len(r"\end{aligned}}{h}")].split(r" \\ ")
    assert len(rows) > 2
    assert all(latex_em(row) <= 30.0 for row in rows)
    # nothing lost: the rows joined are the one-line numerator
    one_line = latex_quotient(terms, "h", width=1e9)[len(r"\frac{"):-len("}{h}")]
    joined = " ".join(r.replace("&\\quad ", "").lstrip("&") for r in rows)
    assert joined.replace("  ", " ") == one_line




def test_products_are_dotted_and_keep_their_order_as_in_the_notes():
    doc = sg.derivation(seed000_loss(), steps="limit")
    tex, text = doc.latex(), doc.text()
    # (d + h) * f - d * f: the moved factor where it stood, products with a dot
    assert r"\frac{\left(d + h\right) \cdot f - d \cdot f}{h}" in tex
    assert "((d + h)*f - d*f)/h" in text
    assert r"d \cdot f + f \cdot h - d \cdot f" in tex
    # no juxtaposition that reads as a function applied: f(d + h), (df)
    assert not re.search(r"f\s*\\left\(d \+ h", tex) and "f(d + h)" not in text
    assert "(df)" not in tex.replace(" ", "")
    # the node is called f, so the quotient's function is not: g(f + h), never f(f + h)
    assert "(g(f + h) - g(f))/h = d" in text and "f(f + h)" not in text
    assert "(g(d + h) - g(d))/h,  g(d) = d*f" in text


def test_sums_show_the_moved_operand_in_parentheses():
    e, c = sp.symbols("e c", real=True)
    # as the notes write (e + (c + h)) - (e + c), in SymPy's order of the terms
    assert limit_steps(e + c, c)[1].text == "(((c + h) + e) - (c + e))/h"
    assert limit_steps(e + c, e)[1].text == "((c + (e + h)) - (c + e))/h"


def test_the_function_letter_avoids_every_name_in_the_line():
    f, g, d = sp.symbols("f g d", real=True)
    assert function_name(d * f, d) == "g"
    assert function_name(f * g, d) == "F"
    steps = limit_steps(f * g, f)
    assert steps[0].text.startswith("(F(f + h) - F(f))/h")


@pytest.mark.parametrize("root", [seed000_loss, lambda: _every_op(("x1", "w1"))],
                         ids=["seed000", "every_op"])
def test_text_and_markdown_of_the_tables_carry_no_latex(root):
    # The tables' own lines: what steps="limit" adds to the chain-rule printout.
    graph = root()
    limit, chain = (sg.derivation(graph, steps=s) for s in ("limit", "chain"))
    text = _added(limit.text(), chain.text())
    assert any("difference quotient" in line for line in text)
    assert not [line for line in text if "\\" in line]
    assert not [line for line in text if "[" in line]   # labels are prose, not [tags]
    md = _added("\n".join(_outside_display_math(limit.markdown())),
                "\n".join(_outside_display_math(chain.markdown())))
    assert any("difference quotient" in line for line in md)
    # prose: inline $h$ only and Markdown's escapes (expand\_trig), no command outside them
    bare = [_MD_ESCAPE.sub("", re.sub(r"\$[^$]*\$", "", line)) for line in md]
    assert not [line for line in bare if "\\" in line]
    assert not [line for line in _added(limit.markdown(), chain.markdown()) if "\\text{" in line]


_MD_ESCAPE = re.compile(r"\\[\\`*_{}\[\]<>#+!|~]")


def _added(longer: str, shorter: str) -> list[str]:
    have = set(shorter.splitlines())
    return [line for line in longer.splitlines() if line not in have]


def _outside_display_math(md: str) -> list[str]:
    out, inside = [], False
    for line in md.splitlines():
        if line.strip() == "$$":
            inside = not inside
            continue
        if not inside:
            out.append(line)
    return out


@pytest.mark.parametrize("name", BUILTIN_OPS)
def test_every_equals_line_is_the_difference_quotient(name):
    # The chain of '=' lines is one value: each line with an expression equals the quotient.
    op = SCALAR_OPS[name]
    xs = sp.symbols("a b", real=True)[:op.arity]
    formula = op.formula.xreplace({**dict(zip(op.operands, xs, strict=True)),
                                   **{p: 3 for p in op.param_symbols}})
    x = xs[0]
    steps = limit_steps(formula, x, output=sp.Symbol("o", real=True) if op.arity == 1 else None)
    h = sp.Symbol("h", real=True)
    quotient = (formula.xreplace({x: x + h}) - formula) / h
    rng = random.Random(5)
    checked = 0
    for s in steps:
        if s.relation != "=" or s.expr is None or s.label.startswith(("equals", "in terms")):
            continue
        for _ in range(3):
            at = {sym: rng.uniform(0.2, 1.5) for sym in quotient.free_symbols}
            assert float(sp.N(s.expr.subs(at))) == pytest.approx(float(sp.N(quotient.subs(at))),
                                                                 rel=1e-9), (name, s.label)
        checked += 1
    assert checked >= 1
    final = [s for s in steps if s.relation == "->" or s.label == "SymPy differentiates"]
    assert len(final) == 1
    assert sp.simplify((final[0].expr - differentiate(formula, x)).rewrite(sp.exp)) == 0


def test_nodes_named_h_f_and_g_do_not_collide_with_the_tables_letters():
    h, f = sg.Value(0.7, label="h"), sg.Value(1.2, label="f")
    p = h * f
    p.label = "p"
    q = f * h * 2.0    # the same product again: its table refers back to p's
    q.label = "q"
    root = (p + q).sin()
    root.label = "g"
    text = sg.derivation(root, steps="limit").text()
    # the step is h_0 and the function g wherever a node is called h or f
    assert "(g(f + h_0) - g(f))/h_0,  g(f) = f*h" in text
    assert "lim_(h_0->0) (g(h + h_0) - g(h))/h_0 = f" in text
    assert not re.search(r"\b[fg]\((f|h) \+ h\)", text)
