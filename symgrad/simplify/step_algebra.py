"""The algebra between a derivative as SymPy returns it and its simplified form, line by line.

Seed 001 does Steps A and B by hand: dl/dp of binary cross-entropy over a
common denominator, the numerator multiplied out, +yp and -py cancelling,
(p - y)/(p(1 - p)) left; and sigma' split into sigma times
e^{-z}/(1 + e^{-z}) = 1 - sigma. Here every such line is a SymPy result on the
user's own formula (`sympy.together`, `sympy.expand` term by term, a search for
terms that sum to 0, `tidy`), and every line is checked equal to the one
before it (`symgrad.simplify.zero`). Nothing is keyed by a loss or activation
name: a loss with nothing to cancel simply yields fewer lines.

>>> p, y = sp.symbols("p y", real=True)
>>> lines = loss_derivative_steps(-(y*sp.log(p) + (1 - y)*sp.log(1 - p)), p)
>>> [line.reason for line in lines]
['differentiated', 'common denominator', 'numerator multiplied out', 'cancelled']
>>> lines[3].cancelled, lines[-1].expr
(((-p*y, p*y),), (p - y)/(p*(1 - p)))
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgrad.definition.convention import differentiate
from symgrad.simplify.saved_output import invert, tidy
from symgrad.simplify.zero import KINKED, zero_method

MAX_ALGEBRA_OPS = 80   # beyond this the lines would fill a page; the result is shown alone


@dataclass(frozen=True)
class AlgebraLine:
    """One line of a derivation: ``expr``, why it follows, and what was used.

    ``reason`` is a few plain words ("common denominator"); ``cancelled`` lists
    the pairs of terms that sum to 0 on this line; ``using`` is a chain of equal
    expressions the step relies on (e.g. e^{-z}/(1 + e^{-z}) = 1 - sigma = 1 - p);
    ``factors``, when given, are the factors of ``expr`` to show one by one (a
    printer would merge 1/(1 + e^{-z}) * e^{-z}/(1 + e^{-z}) into one fraction).
    """

    expr: sp.Expr
    reason: str
    cancelled: tuple[tuple[sp.Expr, sp.Expr], ...] = ()
    using: tuple[sp.Expr, ...] = ()
    factors: tuple[sp.Expr, ...] = ()


def _fraction(num: sp.Expr, den: sp.Expr) -> sp.Expr:
    """num/den kept as written (SymPy would expand or reorder an evaluated quotient)."""
    if den == 1:
        return num
    return sp.Mul(num, sp.Pow(den, -1, evaluate=False), evaluate=False)


def _terms(num: sp.Expr) -> list[sp.Expr]:
    """The numerator's terms, each product multiplied out on its own (nothing cancels yet)."""
    return [t for term in sp.Add.make_args(num) for t in sp.Add.make_args(sp.expand(term))]


def cancelling_pairs(terms: list[sp.Expr]) -> tuple[tuple[sp.Expr, sp.Expr], ...]:
    """Pairs of terms that sum to 0 (each term used once), in order.

    >>> p, y = sp.symbols("p y")
    >>> cancelling_pairs([p, -p*y, -y, p*y])
    ((-p*y, p*y),)
    """
    pairs, used = [], set()
    for i, t in enumerate(terms):
        if i in used:
            continue
        for j in range(i + 1, len(terms)):
            if j not in used and sp.expand(t + terms[j]) == 0:
                pairs.append((t, terms[j]))
                used |= {i, j}
                break
    return tuple(pairs)


def equal(a: sp.Expr, b: sp.Expr, subs: dict | None = None) -> bool:
    """``a == b`` shown by SymPy (bounded zero test), after ``subs`` (saved value -> formula)."""
    diff = (a - b).xreplace(subs or {}) if subs else a - b
    return sp.expand(diff) == 0 or zero_method(diff) is not None


def _checked(lines: list[AlgebraLine], subs: dict | None = None) -> list[AlgebraLine]:
    """Keep the lines up to the first one SymPy cannot show equal to the line before."""
    out = lines[:1]
    for line in lines[1:]:
        if not equal(out[-1].expr, line.expr, subs):
            break
        out.append(line)
    return out


def loss_derivative_steps(loss: sp.Expr, p: sp.Symbol) -> list[AlgebraLine]:
    """Step A line by line: dl/dp as SymPy derives it, down to the simplified form.

    Lines (each only when it changes something): the derivative; over a common
    denominator (`sympy.together`); the numerator with each product multiplied out
    (`sympy.expand` per term, so the terms that will cancel are still visible); the
    cancelled sum; the shortest form (`tidy`, as the fusion stage computes Step A).
    A derivative with branches (Piecewise, sign, ...) is shown as derived and tidied.
    """
    d = differentiate(loss, p, "loss")
    lines = [AlgebraLine(d, "differentiated")]
    if d.has(*KINKED) or sp.count_ops(d) > MAX_ALGEBRA_OPS:
        final = tidy(d)
        if final != d:
            lines.append(AlgebraLine(final, "simplified"))
        return _checked(lines)
    num, den = sp.fraction(sp.together(d))
    if den != 1 and isinstance(d, sp.Add):
        lines.append(AlgebraLine(_fraction(num, den), "common denominator"))
    terms = _terms(num)
    if len(terms) > len(sp.Add.make_args(num)):
        lines.append(AlgebraLine(_fraction(sp.Add(*terms, evaluate=False), den),
                                 "numerator multiplied out"))
    pairs = cancelling_pairs(terms)
    if pairs:
        gone = {id(t) for pair in pairs for t in pair}
        rest = sp.Add(*[t for t in terms if id(t) not in gone])
        lines.append(AlgebraLine(rest / den, "cancelled", pairs))
    final = tidy(d)
    if final != lines[-1].expr.doit():   # doit: the lines above are kept unevaluated
        lines.append(AlgebraLine(final, "factored" if len(lines) > 1 else "simplified"))
    return _checked(lines)


def piecewise_branches(d: sp.Expr) -> list[tuple[sp.Expr, sp.Basic]] | None:
    """``d`` as (value, condition) branches, the last condition written out.

    A Heaviside step H(x, h0) splits into x > 0 and the rest; SymPy's Piecewise is
    taken as it is. The final catch-all ``True`` becomes the negation of the branch
    before it when there are two branches (z <= 0 reads better than "otherwise").
    Returns None when ``d`` has no branches.

    >>> z = sp.Symbol("z", real=True)
    >>> piecewise_branches(sp.Heaviside(z, 0))
    [(1, z > 0), (0, z <= 0)]
    """
    if isinstance(d, sp.Piecewise):
        branches = list(d.args)
    else:
        steps = d.atoms(sp.Heaviside)
        if len(steps) != 1:
            return None
        h = steps.pop()
        x = h.args[0]
        at_zero = h.args[1] if len(h.args) > 1 else sp.S.Half
        branches = [(d.xreplace({h: sp.S.One}), x > 0)]
        if at_zero not in (0, 1):
            branches.append((d.xreplace({h: at_zero}), sp.Eq(x, 0)))
        elif at_zero == 1:
            branches[0] = (branches[0][0], x >= 0)
        branches.append((d.xreplace({h: sp.S.Zero}), sp.true))
    if len(branches) == 2 and branches[1][1] == sp.true:
        branches[1] = (branches[1][0], sp.Not(branches[0][1]))
    return [(sp.sympify(v), c) for v, c in branches]


def saved_output_steps(f: sp.Expr, d: sp.Expr, final: sp.Expr, z: sp.Symbol,
                       out: sp.Symbol) -> list[AlgebraLine]:
    """Step B line by line: f'(z) as derived, rewritten into the saved output ``out`` = f(z).

    Tries, as the saved-output search does (`symgrad.simplify.saved_output`):

    * substitution: every f(z) inside f' is ``out`` (tanh: 1 - tanh^2 = 1 - a^2);
    * a factor f: f' = f * (f'/f), and f'/f written in ``out`` through the inverse
      z = f^-1(out) (sigmoid: e^{-z}/(1 + e^{-z}) = 1 - sigma, so f' = sigma (1 - sigma));
    * the inverse alone: z = f^-1(out) substituted and simplified (softplus).

    Each line is checked equal to the one before (with ``out`` -> f(z)); the last is
    ``final``, the form the simplify stage chose. Empty when ``final`` is still in z
    or f' is constant (nothing to rewrite), or when no route reaches ``final``.
    """
    if not d.has(z) or final.has(z) or d.has(*KINKED):
        return []
    back = {out: f}
    first = AlgebraLine(d, "differentiated")
    for route in (_by_substitution, _by_factor, _by_inverse):
        lines = route(f, d, z, out)
        if not lines:
            continue
        lines = _checked([first, *lines], back)
        if equal(lines[-1].expr, final, back) and len(lines) > 1:
            if lines[-1].expr.doit() != final:
                lines.append(AlgebraLine(final, "simplified"))
            return lines
    return []


def _by_substitution(f: sp.Expr, d: sp.Expr, z: sp.Symbol, out: sp.Symbol) -> list[AlgebraLine]:
    direct = d.subs(f, out)
    if direct.has(z):
        return []
    return [AlgebraLine(direct, "substituted", using=(f, out))]


def _by_factor(f: sp.Expr, d: sp.Expr, z: sp.Symbol, out: sp.Symbol) -> list[AlgebraLine]:
    rest = d / f   # evaluated: SymPy merges the powers of f's denominator
    inv = invert(f, z, out)
    if inv is None or sp.count_ops(rest) >= sp.count_ops(d):
        return []
    rest_out = tidy(rest.subs(z, inv))
    if rest_out.has(z):
        return []
    split = sp.Mul(f, rest, evaluate=False)
    return [AlgebraLine(split, "split off the factor f(z)", factors=(f, rest)),
            AlgebraLine(sp.Mul(out, rest_out, evaluate=False),
                        "second factor written in the output",
                        using=(rest, rest_out.subs(out, f), rest_out))]


def _by_inverse(f: sp.Expr, d: sp.Expr, z: sp.Symbol, out: sp.Symbol) -> list[AlgebraLine]:
    inv = invert(f, z, out)
    if inv is None:
        return []
    substituted = d.subs(z, inv)
    if substituted.has(z):
        return []
    return [AlgebraLine(substituted, "inverse substituted", using=(z, inv)),
            AlgebraLine(tidy(substituted), "simplified")]


@dataclass(frozen=True)
class BranchRewrite:
    """One branch of a piecewise f'(z) rewritten in the saved output (ELU: e^z = a + 1).

    ``forward`` is the branch of f active where ``condition`` holds and ``inverse``
    z in terms of the output on it (None when the value needs no inverse);
    ``boundary`` is (c, f(c)) for a condition z > c, whose image ``condition_out``
    is out > f(c) because f increases through c.
    """

    value: sp.Expr
    condition: sp.Basic
    value_out: sp.Expr
    condition_out: sp.Basic
    forward: sp.Expr | None = None
    inverse: sp.Expr | None = None
    boundary: tuple[sp.Expr, sp.Expr] | None = None


def _active_branch(f: sp.Expr, cond: sp.Basic, z: sp.Symbol) -> sp.Expr | None:
    """The branch of f (as a Piecewise) that holds at sample points where ``cond`` holds."""
    fpw = sp.piecewise_fold(f.rewrite(sp.Piecewise))
    branches = list(fpw.args) if isinstance(fpw, sp.Piecewise) else [(fpw, sp.true)]
    inside = [pt for pt in (sp.Integer(k) / 4 for k in range(-16, 17)) if bool(cond.subs(z, pt))]
    for value, c in branches:
        if inside and all(bool(c.subs(z, pt)) for pt in inside):
            return value
    return None


def _boundary(cond: sp.Basic, f: sp.Expr, d: sp.Expr, z: sp.Symbol
              ) -> tuple[sp.Expr, sp.Expr] | None:
    """(c, f(c)) for a condition z > c (or z <= c) where f increases through c, else None."""
    if not isinstance(cond, sp.core.relational.Relational):
        return None
    sol = sp.solve_linear(cond.lhs - cond.rhs, symbols=[z])
    if not sol or sol[0] != z or sol[1].free_symbols:
        return None
    c, eps = sol[1], sp.Rational(1, 1000)
    if not all(d.subs(z, c + s) > 0 for s in (eps, -eps)):
        return None
    return c, f.subs(z, c)


def branch_rewrite_steps(f: sp.Expr, d: sp.Expr, final: sp.Expr, z: sp.Symbol,
                         out: sp.Symbol) -> list[BranchRewrite]:
    """A piecewise f'(z) and its form in ``out`` = f(z), branch by branch (see `BranchRewrite`).

    The branches of ``final`` (the simplify stage's result) are matched with those of
    ``d`` in order; each value in z is checked to become the value in ``out`` through the
    inverse of the forward branch active there. Empty if ``final`` is not piecewise in
    ``out`` or a branch cannot be shown.

    >>> z, a = sp.symbols("z a", real=True)
    >>> elu = sp.Piecewise((z, z > 0), (sp.exp(z) - 1, True))
    >>> steps = branch_rewrite_steps(elu, sp.diff(elu, z), sp.Piecewise((1, a > 0),
    ...                              (a + 1, True)), z, a)
    >>> [(s.value, s.inverse, s.value_out, s.condition_out) for s in steps]
    [(1, None, 1, a > 0), (exp(z), log(a + 1), a + 1, a <= 0)]
    """
    d_branches, out_branches = piecewise_branches(d), piecewise_branches(final)
    if not d_branches or not out_branches or len(d_branches) != len(out_branches) \
            or final.has(z):
        return []
    steps = []
    for (value, cond), (value_out, cond_out) in zip(d_branches, out_branches, strict=True):
        forward = inverse = None
        if value.has(z):
            forward = _active_branch(f, cond, z)
            inverse = invert(forward, z, out) if forward is not None else None
            if inverse is None or not equal(value.subs(z, inverse), value_out):
                return []
        elif not equal(value, value_out):
            return []
        steps.append(BranchRewrite(value, cond, value_out, cond_out, forward, inverse,
                                   _boundary(cond, f, d.rewrite(sp.Piecewise), z)))
    return steps
