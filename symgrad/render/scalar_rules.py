"""Print a derivative rule by rule (sum, constant, coefficient, ...), as seed 000 does by hand.

For the output of a scalar graph, written in its inputs (``d = a*b + c``), and
each input in turn, the rule tree of `symgrad.derive.rules` is printed the way
the notes work it: the sum rule splits the expression, the constant rule sends
``c`` to 0, the coefficient rule keeps ``a`` and differentiates ``b`` to 1,
and the parts are added up: ``dd/db = a + 0 = a``. Every result on the page is
SymPy's derivative of that sub-expression (checked against the rule's own
assembly in the derive stage); this module only lays the steps out.

>>> import sympy as sp
>>> a, b, c, d = sp.symbols("a b c d", real=True)
>>> from symgrad.render.document import Derivation
>>> doc = Derivation("T")
>>> rule_section(doc, d, a * b + c, b, {a: 2, b: -3, c: 10})
>>> print("\\n".join(s.plain for s in doc.sections[0].steps if s.plain))
d = a*b + c
dd/db = d/db[a*b + c] = d/db[a*b] + d/db[c]
d/db[c] = 0
d/db[a*b] = a * d/db[b] = a * 1 = a
dd/db = a + 0 = a = 2
"""

from __future__ import annotations

import re

import sympy as sp

from symgrad.definition.latex_input import check_value_label
from symgrad.definition.value import Value
from symgrad.derive.rules import RuleStep, rule_derivative
from symgrad.derive.scalar import _number as as_number
from symgrad.derive.scalar import node_symbols, symbolic
from symgrad.graph.scalar import graph_order
from symgrad.render.document import Derivation, Section
from symgrad.render.scalar import ScalarDerivation, fmt, plain, tex

__all__ = ["MAX_OPS", "rule_derivation", "rule_section", "rule_sections"]

# Larger outputs (a whole MLP) would print pages of rules nobody reads: one note instead.
MAX_OPS = 40
# Display equations longer than this (visible characters, roughly) are broken into rows.
_ROW_CHARS = 70

_PROSE = {
    "sum": "Sum rule: the derivative of a sum is the sum of the derivatives of its terms.",
    "product": "Product rule: both factors depend on ${x}$, "
               "$(u \\cdot v)' = u' \\cdot v + u \\cdot v'$.",
    "power": "Power rule: $(u^{{n}})' = n \\cdot u^{{n - 1}} \\cdot u'$, here with $n = {n}$.",
    "exp": "Exponential rule: $(e^{{u}})' = e^{{u}} \\cdot u'$.",
    "exponential": "Exponential rule: $(c^{{u}})' = c^{{u}} \\ln c \\cdot u'$, here with "
                   "$c = {c}$.",
    "function": "Derivative of a known function (SymPy differentiates it):",
    "chain": "Chain rule: the derivative of the outer function, taken at the inner "
             "expression (SymPy differentiates the function), times the derivative of the "
             "inner expression.",
    "direct": "No single rule of the course covers this term; SymPy differentiates it "
              "directly:",
}


def rule_derivation(root: Value) -> Derivation:
    """Only the rule-by-rule part: d(root)/d(input) for every input, as its own document.

    ``derivation(root, steps="rules")`` prints the same sections before the
    backward pass.

    >>> a, b, c = Value(2.0, label="a"), Value(-3.0, label="b"), Value(10.0, label="c")
    >>> d = a * b + c; d.label = "d"
    >>> doc = rule_derivation(d)
    >>> [s.title for s in doc]
    ['Rule by rule: $dd / da$', 'Rule by rule: $dd / db$', 'Rule by rule: $dd / dc$']
    >>> doc.sections[2].steps[-1].plain
    'dd/dc = 0 + 1 = 1'
    """
    order = graph_order(root)
    for n in order:   # labels may be set after construction: check them before printing
        if n.label:
            check_value_label(n.label)
    names = node_symbols(root)

    def sym(n: Value) -> sp.Expr:
        return as_number(n.data) if n._const else names[id(n)]

    out_t, out_p = tex(sym(root)), plain(sym(root))
    doc = ScalarDerivation(
        f"The derivatives of ${out_t}$, rule by rule",
        intro="Each step names the rule it applies; every result is SymPy's derivative of "
              "that part of the expression.",
        plain_title=f"The derivatives of {out_p}, rule by rule")
    rule_sections(doc, root, order, sym)
    return doc


def rule_sections(doc: Derivation, root: Value, order: list[Value], sym) -> None:
    """One section per input of ``root``'s graph: d(root)/d(input), rule by rule.

    ``sym`` maps a node to its symbol (the derivation's names). The expression
    is ``root`` written in its inputs; beyond `MAX_OPS` operations one note
    says so instead.
    """
    inputs = [n for n in order if n.op is None and not n._const and n is not root]
    if not inputs:
        return
    expr = symbolic(root)
    if sp.count_ops(expr) > MAX_OPS:
        doc.section("Rule by rule").add(
            text=f"${tex(sym(root))}$ written in its inputs has {sp.count_ops(expr)} "
                 f"operations; rule-by-rule derivations are printed up to {MAX_OPS}.")
        return
    values = {sym(n): as_number(n.data) for n in inputs}
    for n in inputs:
        rule_section(doc, sym(root), expr, sym(n), values)


def rule_section(doc: Derivation, out: sp.Symbol, expr: sp.Expr, x: sp.Symbol,
                 values: dict[sp.Symbol, sp.Expr] | None = None) -> None:
    """Add the section "Rule by rule: d out/d x" for ``out = expr`` to ``doc``.

    ``values`` (inputs -> numbers) adds the derivative's value at the end.
    """
    top = rule_derivative(expr, x)
    lhs_t = rf"\frac{{d{tex(out)}}}{{d{tex(x)}}}"
    lhs_p = f"d{plain(out)}/d{plain(x)}"
    # Headings take the slash form: a \\frac there prints too small to read.
    title_t = f"Rule by rule: $d{tex(out)} / d{tex(x)}$"
    title_p = f"Rule by rule: {lhs_p}"
    # A ScalarDerivation keeps a plain heading for the text rendering.
    sec = (doc.section(title_t, plain=title_p) if isinstance(doc, ScalarDerivation)
           else doc.section(title_t))
    others = sorted((s for s in expr.free_symbols if s != x), key=str)
    const = (f"; {_names(others)} {'is a constant' if len(others) == 1 else 'are constants'}"
             if others else "")
    sec.add(text=f"Differentiate with respect to ${tex(x)}${const}:",
            math=f"{tex(out)} = {tex(expr)}", plain=f"{plain(out)} = {plain(expr)}")
    value = ""
    if values:
        at = top.result.xreplace({k: sp.sympify(v) for k, v in values.items()})
        if at.is_number and at.is_real:
            value = fmt(float(at))
    _emit(sec, top, (lhs_t, lhs_p), value)


def _names(symbols: list[sp.Symbol]) -> str:
    shown = [f"${tex(s)}$" for s in symbols]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def _d(x: sp.Symbol, e: sp.Expr) -> tuple[str, str]:
    return (rf"\frac{{d}}{{d{tex(x)}}}\left({tex(e)}\right)", f"d/d{plain(x)}[{plain(e)}]")


def _folded(parent: RuleStep, part: RuleStep) -> bool:
    # d/db(b) = 1 inside a coefficient, power or chain is shown in place, as the notes do.
    return parent.rule != "sum" and part.rule == "variable"


def _wrap(e: sp.Expr) -> tuple[str, str]:
    # A factor that is a sum, or negative, goes in parentheses.
    t, p = tex(e), plain(e)
    if isinstance(e, sp.Add) or e.could_extract_minus_sign():
        return rf"\left({t}\right)", f"({p})"
    return t, p


def _placeholder(step: RuleStep, part: RuleStep) -> tuple[str, str]:
    t, p = _d(step.x, part.expr)
    if _folded(step, part):
        return rf"\underbrace{{{t}}}_{{1}}", p
    return t, p


def _form(step: RuleStep, parts: list[tuple[str, str]]) -> tuple[str, str]:
    """The rule's right-hand side with ``parts`` (placeholders or results) put in."""
    if step.rule == "sum":
        order = step.expr.as_ordered_terms()   # printed order, as in the expression above
        by_term = dict(zip((p.expr for p in step.parts), parts, strict=True))
        shown = [by_term[t] for t in order]
        return (_join([t for t, _ in shown], " + "), _join([p for _, p in shown], " + "))
    if step.rule == "product":
        (du_t, du_p), (dv_t, dv_p) = parts
        (u_t, u_p), (v_t, v_p) = _wrap(step.parts[0].expr), _wrap(step.parts[1].expr)
        return (rf"{du_t} \cdot {v_t} + {u_t} \cdot {dv_t}", f"{du_p} * {v_p} + {u_p} * {dv_p}")
    (inner_t, inner_p), = parts
    if step.outer == -1:
        return f"-{inner_t}", f"-{inner_p}"
    o_t, o_p = _wrap(step.outer)
    return rf"{o_t} \cdot {inner_t}", f"{o_p} * {inner_p}"


def _join(terms: list[str], sep: str) -> str:
    out = terms[0]
    for t in terms[1:]:
        out += f" - {t[1:].lstrip()}" if t.startswith("-") else f"{sep}{t}"
    return out


def _results(step: RuleStep) -> list[tuple[str, str]]:
    if step.rule == "sum":
        return [(tex(p.result), plain(p.result)) for p in step.parts]
    return [_wrap(p.result) for p in step.parts]


def _emit(sec: Section, step: RuleStep, top: tuple[str, str] | None = None,
          value: str = "") -> None:
    """Print ``step`` and the steps under it; ``top`` is the left side d out/d x of the root."""
    d_t, d_p = _d(step.x, step.expr)
    lhs_t, lhs_p = ([top[0], d_t], [top[1], d_p]) if top else ([d_t], [d_p])
    tail_t = [tex(step.result)] + ([value] if value else [])
    tail_p = [plain(step.result)] + ([value] if value else [])
    prose = _prose(step)
    if not step.parts:
        rhs_t = [] if step.rule in ("constant", "variable", "direct") else [tex(step.outer)]
        rhs_p = [] if step.rule in ("constant", "variable", "direct") else [plain(step.outer)]
        _equation(sec, prose, lhs_t + _dedupe(rhs_t, tail_t), lhs_p + _dedupe(rhs_p, tail_p))
        return
    holders = [_placeholder(step, p) for p in step.parts]
    form_t, form_p = _form(step, holders)
    res_t, res_p = _form(step, _results(step))
    if all(_folded(step, p) for p in step.parts):
        # One line: the rule, the 1 in place, the result (the plain text spells "* 1" out).
        _equation(sec, prose, lhs_t + _dedupe([form_t], tail_t),
                  lhs_p + _dedupe([form_p, res_p], tail_p))
        return
    _equation(sec, prose, lhs_t + [form_t], lhs_p + [form_p])
    for part in step.parts:
        if not _folded(step, part):
            _emit(sec, part)
    together = "Adding up:" if step.rule == "sum" else "Putting the parts together:"
    first_t, first_p = (top[0], top[1]) if top else (d_t, d_p)
    _equation(sec, together, [first_t] + _dedupe([res_t], tail_t),
              [first_p] + _dedupe([res_p], tail_p))


def _dedupe(members: list[str], tail: list[str]) -> list[str]:
    # "= a = a" says nothing twice: drop a member equal to the one after it.
    out: list[str] = []
    for m in members + tail:
        if not out or re.sub(r"\s", "", out[-1]) != re.sub(r"\s", "", m):
            out.append(m)
    return out


def _prose(step: RuleStep) -> str:
    x = tex(step.x)
    if step.rule == "constant":
        what = f"${tex(step.expr)}$" if _short(step.expr) else "This term"
        return f"Constant rule: {what} does not depend on ${x}$, so its derivative is 0."
    if step.rule == "variable":
        return f"Variable rule: the derivative of ${x}$ with respect to itself is 1."
    if step.rule == "coefficient":
        coeff = f"${tex(step.outer)}$" if _short(step.outer) else "The factor free of it"
        rest = (f", and the derivative of ${x}$ is 1" if _folded(step, step.parts[0])
                else "")
        return (f"Coefficient rule: {coeff} does not depend on ${x}$; it stays as a factor, "
                f"times the derivative of the rest{rest}.")
    if step.rule == "power":
        return _PROSE["power"].format(n=tex(step.expr.args[1]))
    if step.rule in ("exponential", "chain") and isinstance(step.expr, sp.exp):
        return _PROSE["exp"] if step.rule == "exponential" else _PROSE["chain"]
    if step.rule == "exponential":
        return _PROSE["exponential"].format(c=tex(step.expr.args[0]))
    return _PROSE[step.rule].format(x=x)


def _short(e: sp.Expr) -> bool:
    # Inline math in prose must read well in the text rendering too: small expressions only.
    return len(tex(e)) <= 30 and "\\frac" not in tex(e) and "\\left" not in tex(e)


def _visible(latex: str) -> int:
    return len(re.sub(r"\\[A-Za-z]+|[{}_^]", "", latex))


def _equation(sec: Section, text: str, members_t: list[str], members_p: list[str]) -> None:
    """``m0 = m1 = m2 ...`` as one display line, or aligned rows when it is long."""
    if _visible(" = ".join(members_t)) <= _ROW_CHARS:
        math = " = ".join(members_t)
    else:
        # The left side on a row of its own, each "= ..." indented below it: the widest
        # row is one member, not the left side plus a member.
        math = f"&{members_t[0]}" + "".join(f" \\\\\n&\\quad = {m}" for m in members_t[1:])
    sec.add(text=text, math=math, plain=" = ".join(members_p))
