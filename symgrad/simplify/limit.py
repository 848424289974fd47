"""A local derivative derived from the limit definition, every line computed by SymPy.

Starting from ``(f(x+h) - f(x))/h`` the derivation substitutes, combines
fractions, expands, cancels and lets ``h -> 0`` exactly as the lecture notes
do by hand for ``+``, ``*`` and ``tanh``. Each displayed expression is the
output of a SymPy call on the previous one (expand, cancel, series, subs);
nothing is a template with the answer filled in. When the expanded quotient
does not reduce this way (e.g. ``Max(0, x)``, not smooth at 0) the derivation
says so and shows what SymPy's ``limit`` (or, failing that, ``diff``) gives.

>>> a, b = sp.symbols("a b", real=True)
>>> [s.text for s in limit_steps(a * b, a)][1:]
['((b*(a + h)) - (a*b))/h', '(a*b + b*h - a*b)/h', '(b*h)/h', 'b', 'b']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from symgrad.definition.convention import differentiate
from symgrad.derive.scalar import in_terms_of_output

# Quotients larger than this are not expanded step by step (SymPy's expand and
# series grow fast); the derivation then falls back to sympy.limit / diff.
_MAX_OPS = 120

Printer = Callable[[sp.Basic], str]


@dataclass(frozen=True)
class LimitStep:
    """One line: what was done (``label``), the expression in LaTeX and in text."""

    label: str
    latex: str
    text: str
    expr: sp.Basic | None = None
    relation: str = "="  # "=" continues the chain; "->" is the limit h -> 0; "" stands alone


def _terms(expr: sp.Expr) -> list[sp.Expr]:
    return list(sp.Add.make_args(expr))


def _join(terms: list[sp.Expr], show: Printer) -> str:
    # An unevaluated sum "t1 + t2 - t3" so the reader sees what cancels.
    out = ""
    for i, t in enumerate(terms):
        neg = t.could_extract_minus_sign()
        body = show(-t if neg else t)
        if isinstance(-t if neg else t, sp.Add):
            body = f"({body})"
        out += (" - " if neg else (" + " if i else "")) + body
        if i == 0 and neg:
            out = "-" + body
    return out


def _frac(num: str, den: str, latex: bool) -> str:
    if latex:
        return rf"\frac{{{num}}}{{{den}}}"
    return f"({num})/{den}" if den.isidentifier() else f"({num})/({den})"


def limit_steps(
    formula: sp.Expr,
    x: sp.Symbol,
    output: sp.Symbol | None = None,
    latex: Printer = sp.latex,
    text: Printer = sp.sstr,
) -> list[LimitStep]:
    """Derive d(formula)/dx from the limit definition, one SymPy-computed line per step.

    ``output`` (a symbol naming the node's own value) enables the last line:
    the derivative in terms of the output, found by substitution. The final
    result is checked against ``sympy.diff``; a mismatch raises RuntimeError.
    """
    h = sp.Symbol("h", real=True)
    if h in formula.free_symbols:  # a node labelled "h" must not collide with the step
        h = sp.Symbol("h_0", real=True)
    derivative = differentiate(formula, x)
    fname = text(output) if output is not None else "f"
    lname = latex(output) if output is not None else "f"
    steps = [LimitStep(
        "difference quotient",
        rf"\frac{{{lname}({latex(x)} + {latex(h)}) - {lname}({latex(x)})}}{{{latex(h)}}}",
        f"({fname}({text(x)} + {h}) - {fname}({text(x)}))/{h}",
        relation="",
    )]
    f = formula
    exp_form = formula.rewrite(sp.exp)
    if exp_form != formula and not exp_form.has(sp.Piecewise) and (
            formula.has(sp.log) or not exp_form.has(sp.log)):
        # tanh & co. only cancel once written with exponentials, as in the notes.
        f = exp_form
        steps.insert(0, LimitStep("exponential form", rf"{latex(formula)} = {latex(f)}",
                                  f"{text(formula)} = {text(f)}", f, relation=""))
    if sp.count_ops(f) > _MAX_OPS:
        return steps + _fallback(formula, x, h, derivative, output, latex, text)

    fh = f.xreplace({x: x + h})
    steps.append(LimitStep(
        "substitute",
        _frac(rf"\left({latex(fh)}\right) - \left({latex(f)}\right)", latex(h), True),
        _frac(f"({text(fh)}) - ({text(f)})", text(h), False),
        (fh - f) / h,
    ))
    num_h, den_h = sp.fraction(sp.together(fh))
    num, den = sp.fraction(sp.together(f))
    if den_h.has(h):
        # Over a common denominator: (n_h*d - n*d_h) / (h*d_h*d).
        plus, minus, denom = num_h * den, num * den_h, h * den_h * den
        steps.append(LimitStep(
            "common denominator",
            _frac(rf"{latex(plus)} - \left({latex(minus)}\right)", latex(denom), True),
            _frac(f"{text(plus)} - ({text(minus)})", text(denom), False),
        ))
    else:
        plus, minus, denom = fh, f, h
    expanded = _terms(sp.expand(plus)) + [-t for t in _terms(sp.expand(minus))]
    steps.append(LimitStep(
        "expand",
        _frac(_join(expanded, latex), latex(denom), True),
        _frac(_join(expanded, text), text(denom), False),
    ))
    numer = sp.expand(plus - minus)
    if len(_terms(numer)) < len(expanded):  # only worth a line when terms cancelled
        steps.append(LimitStep(
            "cancel",
            _frac(latex(numer), latex(denom), True),
            _frac(text(numer), text(denom), False),
            numer / denom,
        ))
    top = sp.cancel(numer / h)
    if numer.has(h) and not sp.denom(top).has(h):
        # h is a factor of the numerator: divide it out, then h = 0 is allowed.
        quotient = top / sp.cancel(denom / h)
        steps.append(LimitStep("divide by h", latex(quotient), text(quotient), quotient))
        result = quotient.subs(h, 0)
    else:
        # Transcendental numerator: keep the term proportional to h (its series).
        try:
            series = sp.series(numer, h, 0, 2).removeO()
        except Exception:  # noqa: BLE001 - SymPy raises many types for non-analytic input
            series = None
        if series is None or sp.simplify(series.coeff(h, 0)) != 0 or not series.has(h):
            return steps + _fallback(formula, x, h, derivative, output, latex, text)
        slope = sp.simplify(series.coeff(h, 1))
        steps.append(LimitStep(
            "first order in h",
            _frac(rf"{latex(slope * h)} + O\left({latex(h)}^{{2}}\right)", latex(denom), True),
            _frac(f"{text(slope * h)} + O({h}**2)", text(denom), False),
        ))
        result = (slope * h / denom).subs(h, 0)
    result = sp.factor(result)
    steps.append(LimitStep(f"limit as {h} goes to 0", latex(result), text(result), result,
                           relation="->"))
    return steps + _closing(result, formula, x, derivative, output, latex, text)


def _closing(result, formula, x, derivative, output, latex, text) -> list[LimitStep]:
    # The limit must be SymPy's derivative; say so, in SymPy's own form when it differs.
    if sp.simplify((result - derivative).rewrite(sp.exp)) != 0:
        raise RuntimeError(f"limit {result} disagrees with diff {derivative} for {formula}")
    steps = []
    if sp.srepr(result) != sp.srepr(derivative):
        steps.append(LimitStep("equals SymPy's derivative", latex(derivative), text(derivative),
                               derivative))
    if output is not None:
        # A fresh symbol: a leaf may itself be labelled "o".
        fresh = sp.Dummy("o", real=True)
        in_out = in_terms_of_output(derivative, formula, x, out=fresh)
        if in_out is not None:
            in_out = in_out.xreplace({fresh: output})
            steps.append(LimitStep(
                f"in terms of the output {output} = {text(formula)}", latex(in_out),
                text(in_out), in_out,
            ))
    return steps


def _fallback(formula, x, h, derivative, output, latex, text) -> list[LimitStep]:
    # Honest: the step-by-step route does not reduce; show what SymPy computes instead.
    q = (formula.xreplace({x: x + h}) - formula) / h
    try:
        value = sp.limit(q, h, 0) if sp.count_ops(q) <= _MAX_OPS else None
    except Exception:  # noqa: BLE001
        value = None
    if value is not None and not value.has(sp.Limit) and value.is_finite is not False \
            and sp.simplify((value - derivative).rewrite(sp.exp)) == 0:
        steps = [LimitStep("SymPy evaluates the limit directly", latex(value), text(value), value)]
        return steps + _closing(value, formula, x, derivative, output, latex, text)
    note = (f"The quotient does not cancel for a general {x} and SymPy cannot take the limit "
            f"symbolically (the formula need not be smooth everywhere); differentiating it gives")
    return [LimitStep(note, latex(derivative), text(derivative), derivative)] + _closing(
        derivative, formula, x, derivative, output, latex, text)
