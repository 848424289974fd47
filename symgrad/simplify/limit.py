"""A local derivative derived from the limit definition, every line computed by SymPy.

Starting from ``(f(x+h) - f(x))/h`` the derivation substitutes, combines
fractions, expands, cancels and lets ``h -> 0`` exactly as the lecture notes
do by hand for ``+``, ``*`` and ``tanh``. Each displayed expression is the
output of a SymPy call on the previous one (expand, cancel, series, subs);
nothing is a template with the answer filled in. Sines and cosines follow
seed 003: the angle-sum formula (``expand_trig``), the terms grouped by what
does not depend on ``h``, and the standard limits ``sin h/h -> 1`` and
``(cos h - 1)/h -> 0``, each computed by ``sympy.limit``. When the expanded
quotient does not reduce this way (e.g. ``Max(0, x)``, not smooth at 0) the
derivation says so and shows what SymPy's ``limit`` (or, failing that,
``diff``) gives.

Each `LimitStep` carries a short ``label``, a one-line ``note`` for the reader
(prose, with ``$h$`` as its only math, so it reads the same in every
rendering) and the expression in LaTeX and text. Long LaTeX quotients are
broken over several lines so that the printout fits the page.

>>> a, b = sp.symbols("a b", real=True)
>>> for s in limit_steps(a * b, a):
...     print(f"{s.lead_text:3}{s.text:34}[{s.label}]")
   (f(a + h) - f(a))/h,  f(a) = a*b  [difference quotient]
=  ((a + h)*b - a*b)/h               [substitute]
=  (a*b + b*h - a*b)/h               [expand]
=  (b*h)/h                           [cancel]
=  b                                 [divide by h]
-> b                                 [limit as h goes to 0]
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from symgrad.definition.convention import differentiate
from symgrad.derive.scalar import in_terms_of_output

# Quotients larger than this are not expanded step by step (SymPy's expand and
# series grow fast); the derivation then falls back to sympy.limit / diff.
_MAX_OPS = 120
# Width (in em of the body font) a displayed LaTeX line may take before a
# quotient's numerator is broken over several lines. An 11pt article with 2cm
# margins is about 44em wide; the estimate below is rough, so keep a margin.
LINE_EM = 36.0

Printer = Callable[[sp.Basic], str]


@dataclass(frozen=True)
class LimitStep:
    """One line: what was done (``label``, ``note``), the expression in LaTeX and in text.

    ``relation`` says how the line follows the one before: ``"="`` continues the
    chain, ``"->"`` is the limit ``h -> 0``, ``""`` stands alone (a definition
    or an identity). ``lead_latex``/``lead_text`` print that relation.
    """

    label: str
    latex: str
    text: str
    expr: sp.Basic | None = None
    relation: str = "="
    note: str = ""
    lead_latex: str = ""
    lead_text: str = ""


class _Show:
    """The two printers, the step symbol ``h`` and the line width: how steps are printed."""

    def __init__(self, latex: Printer, text: Printer, h: sp.Symbol, width: float) -> None:
        self.latex, self.text, self.h, self.width = latex, text, h, width

    def step(self, label: str, note: str, latex: str, text: str, expr: sp.Basic | None = None,
             relation: str = "=") -> LimitStep:
        lead_latex, lead_text = {
            "=": ("= ", "= "),
            "->": (rf"\xrightarrow{{{self.latex(self.h)} \to 0}} ", "-> "),
            "": ("", ""),
        }[relation]
        return LimitStep(label, latex, text, expr, relation, note, lead_latex, lead_text)

    def quotient(self, terms: list[tuple[bool, sp.Expr | tuple[str, str, bool]]], den: sp.Expr,
                 label: str, note: str, expr: sp.Basic | None = None) -> LimitStep:
        """``(t1 + t2 - t3)/den`` from signed terms; the LaTeX numerator wraps when too wide.

        A term is an expression, or ``(latex, text, is_sum)`` already printed.
        """
        lat, txt = [], []
        for neg, t in terms:
            if isinstance(t, tuple):
                lat.append((neg, t[0], t[2]))
                txt.append((neg, t[1], t[2]))
            else:
                lat.append((neg, self.latex(t), _needs_parens(t)))
                txt.append((neg, self.text(t), _needs_parens(t)))
        return self.step(label, note, latex_quotient(lat, self.latex(den), self.width),
                         _frac(_signed_join(txt), self.text(den)), expr)


def _signed_join(terms: list[tuple[bool, str, bool]]) -> str:
    # An unevaluated sum "t1 + t2 - t3" so the reader sees what cancels.
    out = ""
    for i, (neg, body, is_sum) in enumerate(terms):
        body = f"({body})" if is_sum and (neg or i) else body
        out += ("-" if i == 0 else " - ") + body if neg else (" + " if i else "") + body
    return out or "0"


def _signed_terms(expr: sp.Expr) -> list[tuple[bool, sp.Expr]]:
    """The terms of a sum in printing order, each as (is it subtracted, its size)."""
    out = []
    for t in sp.Add.make_args(expr) if expr.is_Add else [expr]:
        neg = t.could_extract_minus_sign()
        out.append((neg, -t if neg else t))
    if expr.is_Add:
        order = {t: i for i, t in enumerate(expr.as_ordered_terms())}
        out.sort(key=lambda nt: order.get(-nt[1] if nt[0] else nt[1], 0))
    return out


def _frac(num: str, den: str) -> str:
    return f"({num})/{den}" if den.isidentifier() else f"({num})/({den})"


def latex_quotient(terms: list[tuple[bool, str, bool]], den: str, width: float = LINE_EM) -> str:
    r"""``\frac{num}{den}``; a numerator wider than ``width`` em is split over lines.

    A numerator holding fractions is written ``\frac{1}{den}(num)`` instead: a
    fraction inside a fraction's numerator would be set in a smaller size.

    >>> latex_quotient([(False, "a", False), (True, "b", False)], "h")
    '\\frac{a - b}{h}'
    >>> latex_quotient([(False, r"\frac{a}{b}", False)], "h")
    '\\frac{1}{h} \\left(\\frac{a}{b}\\right)'
    >>> print(latex_quotient([(False, "x_{%d}" % i, False) for i in range(40)], "h", 20.0)[:40])
    \frac{\begin{aligned}&x_{0} + x_{1} + x_
    """
    num = _signed_join(terms)
    outside = any(r"\frac" in body for _, body, _ in terms)
    if latex_em(num) > width:
        rows: list[str] = []
        row = ""
        for i, (neg, body, is_sum) in enumerate(terms):
            piece = _signed_join([(neg, body, is_sum)]) if i == 0 else \
                _signed_join([(False, "", False), (neg, body, is_sum)])
            if row and latex_em(row + piece) > width - (1.0 if rows else 0.0):
                rows.append(row)
                row = piece.strip()
            else:
                row += piece
        rows.append(row)
        lines = " \\\\ ".join([f"&{rows[0]}"] + [rf"&\quad {r}" for r in rows[1:]])
        num = rf"\begin{{aligned}}{lines}\end{{aligned}}"
    if outside:
        return rf"\frac{{1}}{{{den}}} \left({num}\right)"
    return rf"\frac{{{num}}}{{{den}}}"


# -- a rough width of LaTeX math, to decide where to break lines --------------
_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[{}^_]|[^\s]")
_ZERO = {r"\left", r"\right", r"\Bigl", r"\Bigr", r"\bigl", r"\bigr", r"\displaystyle",
         "&", "."}
_BINARY = {"+": 1.2, "-": 1.2, "=": 1.35, r"\cdot": 0.8, r"\to": 1.5, r"\times": 1.2,
           ",": 0.45, r"\quad": 1.0, r"\qquad": 2.0, r"\,": 0.17, r"\;": 0.28}


def latex_em(math: str) -> float:
    r"""A rough width of LaTeX math in em (letters about half an em; scripts smaller).

    Used only to decide where a long line breaks; the tests compile the
    tables with pdflatex and check that nothing is overfull.

    >>> round(latex_em(r"\frac{a + b}{h}"), 1), round(latex_em("e^{a + h}"), 1)
    (2.6, 2.2)
    """
    tokens = _TOKEN.findall(math)
    width, _ = _em(tokens, 0, len(tokens))
    return width


def _group(tokens: list[str], i: int) -> tuple[int, int]:
    """(start, end) of the argument at ``i``: a braced group or a single token."""
    if i < len(tokens) and tokens[i] == "{":
        depth, j = 0, i
        while j < len(tokens):
            depth += {"{": 1, "}": -1}.get(tokens[j], 0)
            if depth == 0:
                return i + 1, j
            j += 1
        return i + 1, len(tokens)
    return i, min(i + 1, len(tokens))


def _em(tokens: list[str], i: int, end: int) -> tuple[float, int]:
    width = 0.0
    while i < end:
        tok = tokens[i]
        if tok in ("^", "_"):
            a, b = _group(tokens, i + 1)
            width += 0.7 * _em(tokens, a, b)[0]
            i = b + (1 if b < end and tokens[b] == "}" else 0)
            continue
        if tok == r"\frac":
            a1, b1 = _group(tokens, i + 1)
            j = b1 + (1 if b1 < end and tokens[b1] == "}" else 0)
            a2, b2 = _group(tokens, j)
            top, bottom = _em(tokens, a1, b1)[0], _em(tokens, a2, b2)[0]
            width += max(top, bottom) + 0.3
            i = b2 + (1 if b2 < end and tokens[b2] == "}" else 0)
            continue
        if tok in (r"\text", r"\operatorname", r"\mathrm", r"\xrightarrow"):
            a, b = _group(tokens, i + 1)
            inner = sum(len(t) for t in tokens[a:b]) * 0.5 if tok != r"\xrightarrow" else \
                _em(tokens, a, b)[0] * 0.7 + 1.0
            width += inner
            i = b + (1 if b < end and tokens[b] == "}" else 0)
            continue
        if tok == r"\begin":
            w, i = _environment(tokens, i, end)
            width += w
            continue
        if tok == r"\end":   # a stray one (its \begin is outside this range)
            a, b = _group(tokens, i + 1)
            i = b + 1
            continue
        if tok in _ZERO or tok in "{}":
            width += 0.0
        elif tok in _BINARY:
            width += _BINARY[tok]
        elif tok.startswith("\\") and len(tok) > 2:   # \sin is three letters, \theta one
            width += 0.5 * len(tok[1:]) if tok[1:] in _FUNCTIONS else 0.6
        elif tok in "()[]|":
            width += 0.4
        else:
            width += 0.55
        i += 1
    return width, i


# The room an environment's layout adds to its widest row: a column gap per & (cases and
# matrices set their columns 1 em apart; aligned joins them), and the brace or brackets
# (pdflatex measured cases blocks at 11.9 pt per estimated em, other math at 11.3-11.5).
_ENV_GAP = {"cases": 1.0, "matrix": 1.0, "pmatrix": 1.0, "bmatrix": 1.0, "array": 1.0}
_ENV_FRAME = {"cases": 1.3, "pmatrix": 0.8, "bmatrix": 0.8}


def _environment(tokens: list[str], i: int, end: int) -> tuple[float, int]:
    r"""(width, index after it) of the environment whose ``\begin`` is ``tokens[i]``: its
    widest row, not the sum of its rows (each row's cells and the gaps between them).

    >>> round(latex_em(r"\begin{cases} 0 & z < 0 \\ z + z + z & z > 0 \end{cases}"), 1)
    8.0
    """
    a, b = _group(tokens, i + 1)
    name = "".join(tokens[a:b])
    j = b + (1 if b < end and tokens[b] == "}" else 0)
    if j < end and tokens[j] == "[":   # an optional argument: aligned[t]
        while j < end and tokens[j] != "]":
            j += 1
        j += 1
    rows, cells, start, depth, brace = [], [], j, 0, 0
    k = j
    while k < end:
        tok = tokens[k]
        brace += {"{": 1, "}": -1}.get(tok, 0)
        if brace == 0 and tok in (r"\begin", r"\end"):
            if tok == r"\end" and depth == 0:
                break
            depth += 1 if tok == r"\begin" else -1
        elif brace == 0 and depth == 0 and tok in ("&", "\\\\"):
            cells.append(_em(tokens, start, k)[0])
            start = k + 1
            if tok != "&":
                rows.append(cells)
                cells = []
        k += 1
    cells.append(_em(tokens, start, k)[0])
    rows.append(cells)
    gap = _ENV_GAP.get(name, 0.0)
    width = max(sum(row) + gap * (len(row) - 1) for row in rows) + _ENV_FRAME.get(name, 0.0)
    a, b = _group(tokens, k + 1)   # past \end{name}
    return width, b + (1 if b < end and tokens[b] == "}" else 0)


_FUNCTIONS = {"sin", "cos", "tan", "tanh", "log", "exp", "lim", "max", "min", "sinh", "cosh"}


# -- the steps ----------------------------------------------------------------
def function_name(*exprs: sp.Basic | None) -> str:
    """The letter that names the function in ``(f(x + h) - f(x))/h``: one no symbol uses.

    The notes write ``f``; a node may itself be called ``f`` (L = d * f), and
    ``f(f + h)`` would then read as that node applied to something.

    >>> d, f = sp.symbols("d f", real=True)
    >>> function_name(d * f, d), function_name(d + 1)
    ('g', 'f')
    """
    used = {s.name for e in exprs if e is not None for s in e.free_symbols}
    names = itertools.chain(("f", "g", "F", "G"), (f"f_{k}" for k in itertools.count(1)))
    return next(n for n in names if n not in used)


def _dot_latex(expr: sp.Basic) -> str:
    return sp.latex(expr, mul_symbol="dot")


def limit_steps(
    formula: sp.Expr,
    x: sp.Symbol,
    output: sp.Symbol | None = None,
    latex: Printer | None = None,
    text: Printer = sp.sstr,
    name: str | None = None,
    width: float = LINE_EM,
) -> list[LimitStep]:
    """Derive d(formula)/dx from the limit definition, one SymPy-computed line per step.

    ``output`` (a symbol naming the node's own value) enables the last line:
    the derivative in terms of the output, found by substitution. ``name`` is
    what the difference quotient calls the function (default: `function_name`).
    The final result is checked against ``sympy.diff``; a mismatch raises
    RuntimeError.
    """
    if latex is None:   # products with a dot, as the notes write them: (d + h) \cdot f
        latex = _dot_latex
    h = sp.Symbol("h", real=True)
    if h in formula.free_symbols:  # a node labelled "h" must not collide with the step
        h = sp.Symbol("h_0", real=True)
    show = _Show(latex, text, h, width)
    derivative = differentiate(formula, x)
    lx, lh = latex(x), latex(h)
    fn = name if name is not None else function_name(formula, x, output)
    steps = [show.step(
        "difference quotient",
        f"The derivative is the limit of the difference quotient as ${lh}$ goes to 0:",
        rf"\frac{{{fn}({lx} + {lh}) - {fn}({lx})}}{{{lh}}}, \qquad {fn}({lx}) = {latex(formula)}",
        f"({fn}({text(x)} + {h}) - {fn}({text(x)}))/{h},  {fn}({text(x)}) = {text(formula)}",
        relation="",
    )]
    f = formula
    exp_form = formula.rewrite(sp.exp)
    if exp_form != formula and not exp_form.has(sp.Piecewise, sp.I) and (
            formula.has(sp.log) or not exp_form.has(sp.log)):
        # tanh & co. only cancel once written with exponentials, as in the notes.
        f = exp_form
        steps.append(show.step(
            "exponential form", "Written with exponentials, the form that cancels:",
            rf"{latex(formula)} = {latex(f)}", f"{text(formula)} = {text(f)}", f, relation=""))
    if sp.count_ops(f) > _MAX_OPS:
        return steps + _fallback(formula, x, h, derivative, output, show)

    fh = f.xreplace({x: x + h})
    # As in the notes, both values in parentheses when they are sums: (e + (c + h)) - (e + c).
    moved = [_shifted(f, x, h, latex, True), _shifted(f, x, h, text, False)]
    if isinstance(f, sp.Add):
        moved = [rf"\left({moved[0]}\right)", f"({moved[1]})"]
    steps.append(show.quotient(
        [(False, (*moved, False)), (True, f)], h, "substitute",
        f"Put in the formula, at the point moved by ${lh}$ and at the point itself:", (fh - f) / h))
    angle = _angle_sum(formula, x, h, show, derivative, output)
    if angle is not None:
        return steps + angle
    num_h, den_h = sp.fraction(sp.together(fh))
    num, den = sp.fraction(sp.together(f))
    if den_h.has(h):
        # Over a common denominator: (n_h*d - n*d_h) / (h*d_h*d).
        plus, minus, denom = num_h * den, num * den_h, h * den_h * den
        steps.append(show.quotient(
            [(False, plus), (True, minus)], denom, "common denominator",
            "Bring both fractions over one denominator:"))
    else:
        plus, minus, denom = fh, f, h
    expanded = _signed_terms(sp.expand(plus)) + [(not n, t)
                                                 for n, t in _signed_terms(sp.expand(minus))]
    opened = show.quotient(expanded, denom, "expand", "Multiply out the numerator:")
    if opened.text != steps[-1].text:   # log(a + h) - log(a): nothing to multiply out
        steps.append(opened)
    numer = sp.expand(plus - minus)
    if len(sp.Add.make_args(numer)) < len(expanded):  # only worth a line when terms cancelled
        steps.append(show.quotient(_signed_terms(numer), denom, "cancel",
                                   "Terms that appear with both signs cancel:", numer / denom))
    top = sp.cancel(numer / h)
    if numer.has(h) and not sp.denom(top).has(h):
        # h is a factor of the numerator: divide it out, then h = 0 is allowed.
        quotient = top / sp.cancel(denom / h)
        steps.append(show.step("divide by h", f"Divide numerator and denominator by ${lh}$:",
                               latex(quotient), text(quotient), quotient))
        result = quotient.subs(h, 0)
    else:
        # Transcendental numerator: keep the term proportional to h (its series).
        try:
            series = sp.series(numer, h, 0, 2).removeO()
        except Exception:  # noqa: BLE001 - SymPy raises many types for non-analytic input
            series = None
        if series is None or sp.simplify(series.coeff(h, 0)) != 0 or not series.has(h):
            return steps + _fallback(formula, x, h, derivative, output, show)
        slope = sp.simplify(series.coeff(h, 1))
        big_o = (rf"O\left({lh}^{{2}}\right)", f"O({h}**2)", False)
        steps.append(show.quotient([(False, slope * h), (False, big_o)], denom, "first order in h",
                                   f"Only the numerator's term of first order in ${lh}$ survives "
                                   f"the limit (SymPy's series):"))
        result = (slope * h / denom).subs(h, 0)
    result = sp.factor(result)
    steps.append(show.step(f"limit as {h} goes to 0", f"Let ${lh}$ go to 0:", latex(result),
                           text(result), result, relation="->"))
    return steps + _closing(result, formula, x, derivative, output, show)


def _needs_parens(expr: sp.Expr) -> bool:
    return isinstance(expr, sp.Add) or expr.could_extract_minus_sign()


def _shifted(expr: sp.Expr, x: sp.Symbol, h: sp.Symbol, show: Printer, latex: bool) -> str:
    r"""``expr`` printed with ``x`` replaced by ``x + h``, factors kept in ``expr``'s order.

    SymPy would print ``(d + h)*f`` as ``f*(d + h)``; the notes keep the
    product as written, ``(d + h) \cdot f - d \cdot f``, so the term that
    cancels is visible. Inside other functions SymPy prints the shifted argument.
    """
    if not expr.has(x):
        return show(expr)
    if expr == x:
        return f"{show(x)} + {show(h)}"
    dot = r" \cdot " if latex else "*"
    paren = (r"\left({}\right)" if latex else "({})").format
    if expr.is_Add:
        out = ""
        for i, (neg, t) in enumerate(_signed_terms(expr)):
            body = _shifted(t, x, h, show, latex)
            body = paren(body) if t == x else body
            out += ("-" if i == 0 else " - ") + body if neg else (" + " if i else "") + body
        return out
    if expr.is_Mul and sp.denom(expr) == 1:
        coeff, rest = expr.as_coeff_Mul()
        parts = []
        for factor in rest.as_ordered_factors():
            body = _shifted(factor, x, h, show, latex)
            parts.append(paren(body) if factor == x or factor.is_Add else body)
        lead = "-" if coeff == -1 else ("" if coeff == 1 else show(coeff) + dot)
        return lead + dot.join(parts)
    if expr.is_Pow and expr.base == x and expr.exp.is_positive:
        power = (r"^{{{}}}" if latex else "**{}").format(show(expr.exp))
        return paren(f"{show(x)} + {show(h)}") + power
    if isinstance(expr, sp.Function) and all(arg == x or not arg.has(x) for arg in expr.args):
        # sin(x + h), not SymPy's sin(h + x): print with a stand-in for x, then put x + h
        # in its place; safe because the stand-in is a whole argument, never a term.
        stand_in = sp.Symbol("zshiftz", **x.assumptions0)
        return show(expr.xreplace({x: stand_in})).replace(show(stand_in),
                                                            f"{show(x)} + {show(h)}")
    return show(expr.xreplace({x: x + h}))


def _angle_sum(formula: sp.Expr, x: sp.Symbol, h: sp.Symbol, show: _Show, derivative: sp.Expr,
               output: sp.Symbol | None) -> list[LimitStep] | None:
    """Seed 003's route for sines and cosines, or None where it does not apply.

    The angle-sum formula splits ``sin(x + h)`` and ``cos(x + h)``; grouped by
    what does not depend on ``h`` the quotient is a sum of ``g(x) * q(h)/h``,
    and each ``q(h)/h`` is a standard limit, computed by ``sympy.limit``.
    """
    if not formula.has(sp.sin, sp.cos) or sp.count_ops(formula) > _MAX_OPS:
        return None
    fh = formula.xreplace({x: x + h})
    shifted = sorted({t for t in fh.atoms(sp.sin, sp.cos) if t.has(h)}, key=sp.default_sort_key)
    split = {t: sp.expand_trig(t) for t in shifted}
    if not shifted or all(split[t] == t for t in shifted):
        return None
    opened = sp.expand(fh.xreplace(split))
    base = sp.expand(sp.expand_trig(formula))
    # Group by the factor free of h: sin(x)*cos(h) - sin(x) -> sin(x) * (cos(h) - 1).
    groups: dict[sp.Expr, sp.Expr] = {}
    for term in sp.Add.make_args(sp.expand(opened - base)):
        of_x, of_h = term.as_independent(h, as_Add=False)
        coeff, of_x = of_x.as_coeff_Mul()
        groups[of_x] = groups.get(of_x, sp.Integer(0)) + coeff * of_h
    parts = []   # (subtracted?, factor of x, its part in h shown with a leading plus sign)
    for of_x, q in groups.items():
        lead = q.as_ordered_terms()[0] if q.is_Add else q
        neg = lead.could_extract_minus_sign()
        parts.append((neg, of_x, -q if neg else q))
    limits: dict[sp.Expr, sp.Expr] = {}
    for _, _, q in parts:
        ratio = q / h
        if ratio.free_symbols - {h}:
            return None
        if ratio not in limits:
            limits[ratio] = sp.limit(ratio, h, 0)
            if not limits[ratio].is_finite:
                return None
    latex, text, lh = show.latex, show.text, show.latex(h)
    identity = show.step(
        "angle-sum formula", "The angle-sum formula (SymPy's expand_trig):",
        r",\quad ".join(f"{_shifted(t.subs(h, 0), x, h, latex, True)} = {latex(split[t])}"
                         for t in shifted),
        ",  ".join(f"{_shifted(t.subs(h, 0), x, h, text, False)} = {text(split[t])}"
                   for t in shifted),
        sp.Tuple(*(sp.Eq(t, split[t], evaluate=False) for t in shifted)), relation="")
    minus = [(not n, t) for n, t in _signed_terms(base)]
    opened_step = show.quotient(_signed_terms(opened) + minus, h, "use the angle-sum formula",
                                "With it the numerator reads:", (opened - base) / h)
    grouped_t, grouped_p, limit_t, limit_p = [], [], [], []
    for neg, of_x, q in parts:
        frac_t = rf"\frac{{{latex(q)}}}{{{lh}}}"
        frac_p = _frac(text(q), text(h)) if q.is_Add else f"{text(q)}/{text(h)}"
        value = limits[q / h]
        if of_x == 1:
            grouped_t.append((neg, frac_t, False))
            grouped_p.append((neg, frac_p, False))
            limit_t.append((neg, latex(value), False))
            limit_p.append((neg, text(value), False))
            continue
        grouped_t.append((neg, rf"{_factor(of_x, latex)} \cdot {frac_t}", False))
        grouped_p.append((neg, f"{_factor(of_x, text)}*{frac_p}", False))
        limit_t.append((neg, rf"{_factor(of_x, latex)} \cdot {latex(value)}", False))
        limit_p.append((neg, f"{_factor(of_x, text)}*{text(value)}", False))
    grouped = show.step(
        "group by the part without h",
        f"Group the terms by the factor that does not depend on ${lh}$:",
        _signed_join(grouped_t), _signed_join(grouped_p),
        sp.Add(*((-1 if n else 1) * g * q / h for n, g, q in parts)))
    standard = show.step(
        "standard limits", f"The limits of the parts in ${lh}$, each computed by sympy.limit:",
        r",\qquad ".join(rf"\lim_{{{lh} \to 0}} {latex(r)} = {latex(v)}"
                         for r, v in limits.items()),
        ",  ".join(f"lim_({h}->0) {text(r)} = {text(v)}" for r, v in limits.items()),
        sp.Tuple(*(sp.Eq(sp.Limit(r, h, 0), v, evaluate=False) for r, v in limits.items())),
        relation="")
    result = sp.Add(*((-1 if n else 1) * g * limits[q / h] for n, g, q in parts))
    limit = show.step(f"limit as {h} goes to 0", f"Let ${lh}$ go to 0, with these limits:",
                      f"{_signed_join(limit_t)} = {latex(result)}",
                      f"{_signed_join(limit_p)} = {text(result)}", result, relation="->")
    return [identity, opened_step, grouped, standard, limit] + _closing(
        result, formula, x, derivative, output, show)


def _factor(expr: sp.Expr, show: Printer) -> str:
    body = show(expr)
    return f"({body})" if isinstance(expr, sp.Add) else body


def _closing(result, formula, x, derivative, output, show: _Show) -> list[LimitStep]:
    # The limit must be SymPy's derivative; say so, in SymPy's own form when it differs.
    if sp.simplify((result - derivative).rewrite(sp.exp)) != 0:
        raise RuntimeError(f"limit {result} disagrees with diff {derivative} for {formula}")
    latex, text = show.latex, show.text
    steps = []
    if sp.srepr(result) != sp.srepr(derivative):
        steps.append(show.step("equals SymPy's derivative",
                               "The same function, as SymPy's derivative writes it:",
                               latex(derivative), text(derivative), derivative))
    if output is not None:
        # A fresh symbol: a leaf may itself be labelled "o".
        fresh = sp.Dummy("o", real=True)
        in_out = in_terms_of_output(derivative, formula, x, out=fresh)
        if in_out is not None:
            in_out = in_out.xreplace({fresh: output})
            steps.append(show.step(
                f"in terms of the output {output} = {text(formula)}",
                "In terms of the node's own output (SymPy substitutes it back):",
                rf"{latex(in_out)} \qquad \left({latex(output)} = {latex(formula)}\right)",
                f"{text(in_out)}    ({text(output)} = {text(formula)})", in_out))
    return steps


def _fallback(formula, x, h, derivative, output, show: _Show) -> list[LimitStep]:
    # Honest: the step-by-step route does not reduce; show what SymPy computes instead.
    q = (formula.xreplace({x: x + h}) - formula) / h
    try:
        value = sp.limit(q, h, 0) if sp.count_ops(q) <= _MAX_OPS else None
    except Exception:  # noqa: BLE001
        value = None
    lh = show.latex(h)
    if value is not None and not value.has(sp.Limit) and value.is_finite is not False \
            and sp.simplify((value - derivative).rewrite(sp.exp)) == 0:
        steps = [show.step("SymPy evaluates the limit directly",
                           f"The quotient does not simplify further by hand; SymPy's limit "
                           f"as ${lh}$ goes to 0 gives:", show.latex(value), show.text(value),
                           value, relation="->")]
        return steps + _closing(value, formula, x, derivative, output, show)
    note = (f"The quotient does not cancel for a general ${show.latex(x)}$ and SymPy cannot take "
            f"the limit symbolically (the formula need not be smooth everywhere); "
            f"differentiating it gives")
    return [show.step("SymPy differentiates", note + ":", show.latex(derivative),
                      show.text(derivative), derivative, relation="")] + _closing(
        derivative, formula, x, derivative, output, show)
