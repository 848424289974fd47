"""Seams where a formula switches branches but stays smooth: the slope there is the slope.

The kink convention (`symgrad.definition.convention`) gives each step its left value at
its switch point: ReLU'(0) = 0, as PyTorch. Where two branches meet with the same slope
the function is differentiable there, and that value can be wrong: CELU written as
max(0, z) + min(0, a(e^(z/a) - 1)) gets 0 + 0 at z = 0, where its slope is 1 (both
sides are 1; a slope of 0 is not even a subgradient). `smooth_seams` finds every point
where a step of f' switches, takes f' just left and just right of it with each step
resolved, and where f is continuous and the two sides agree, pins f' there to that
common value. True kinks (ReLU, |z|) keep the convention; where the steps' value at a kink
is neither side's slope nor between them (max(z, z/10) at 0: 0 + 0), the left slope is
used, as the convention gives ReLU'(0) = 0 and LeakyReLU'(0) = alpha.

>>> z = sp.Symbol("z", real=True)
>>> f = sp.Max(0, z) + sp.Min(0, sp.exp(z) - 1)
>>> d = sp.Heaviside(z, 0) + sp.exp(z) * sp.Heaviside(-z, 0)
>>> d.subs(z, 0)
0
>>> smooth_seams(f, d, z)
Piecewise((1, Eq(z, 0)), (exp(z)*Heaviside(-z, 0) + Heaviside(z, 0), True))
>>> smooth_seams(sp.Max(0, z), sp.Heaviside(z, 0), z)   # a true kink: unchanged
Heaviside(z, 0)
>>> smooth_seams(sp.Max(z, z / 10), sp.Heaviside(z, 0) + sp.Heaviside(-z, 0) / 10, z)
Piecewise((1/10, Eq(z, 0)), (Heaviside(-z, 0)/10 + Heaviside(z, 0), True))
"""

from __future__ import annotations

import mpmath
import sympy as sp
from sympy.core.relational import Relational

# How far beside a seam its sides are read (with this many digits): far below any
# branch's own scale, far above the working precision.
_SIDE_STEP = sp.Rational(1, 10**30)
_DIGITS = 60
_MAX_SEAMS = 8   # switch points examined per formula (a periodic step has infinitely many)


def _switch_arguments(expr: sp.Expr, var: sp.Symbol) -> list[sp.Expr]:
    """The expressions whose sign a step of ``expr`` reads: Heaviside and sign arguments,
    lhs - rhs of each Piecewise condition."""
    found = [h.args[0] for h in expr.atoms(sp.Heaviside)]
    found += [s.args[0] for s in expr.atoms(sp.sign)]
    for pw in expr.atoms(sp.Piecewise):
        for _, cond in pw.args:
            found += [r.lhs - r.rhs for r in ([cond] if isinstance(cond, Relational)
                                              else cond.atoms(Relational))]
    return [a for a in found if a.has(var) and a.free_symbols == {var}]


def closed_form_roots(g: sp.Expr, var: sp.Symbol, most: int | None = None) -> list[sp.Expr]:
    """The real roots of ``g`` in ``var`` where SymPy's solveset finds a finite set in
    closed form (of at most ``most`` roots); else none. Shared with the prover's region
    split (`symgrad.simplify.zero.breakpoints`).

    >>> z = sp.Symbol("z", real=True)
    >>> closed_form_roots(sp.Rational(1, 2) - sp.exp(2 * z) / 2, z)
    [0]
    """
    try:
        roots = sp.solveset(g, var, sp.S.Reals)
    except (NotImplementedError, ValueError, TypeError):
        return []
    if not isinstance(roots, sp.FiniteSet) or (most is not None and len(roots) > most):
        return []
    return [r for r in sorted(roots, key=sp.default_sort_key) if r.is_real and r.is_finite]


def _points(arguments: list[sp.Expr], var: sp.Symbol) -> list[sp.Expr]:
    """The real zeros of ``arguments`` SymPy finds in closed form (at most _MAX_SEAMS)."""
    points: list[sp.Expr] = []
    for arg in arguments:
        for c in closed_form_roots(arg, var):
            if c not in points:
                points.append(c)
            if len(points) >= _MAX_SEAMS:
                return points
    return points


def _sign_at(arg: sp.Expr, var: sp.Symbol, at: sp.Expr) -> int:
    with mpmath.workdps(_DIGITS):
        value = sp.N(arg.subs(var, at), _DIGITS)
    if not value.is_real:
        raise ValueError("not a real value")
    return 0 if value == 0 else (1 if value > 0 else -1)


def _resolved(expr: sp.Expr, var: sp.Symbol, at: sp.Expr) -> sp.Expr:
    """``expr`` with every step replaced by its value at ``at`` (a point beside a seam,
    where no step argument is 0): what ``expr`` is on that side."""
    def heaviside(h: sp.Heaviside) -> sp.Expr:
        return sp.S.One if _sign_at(h.args[0], var, at) > 0 else sp.S.Zero

    def sign(s: sp.sign) -> sp.Expr:
        return sp.Integer(_sign_at(s.args[0], var, at))

    def holds(cond: sp.Basic) -> bool:
        cond = cond.subs(var, at)
        if cond in (sp.true, sp.false):
            return bool(cond)
        if isinstance(cond, Relational):   # too close to call for SymPy's own evaluation
            return bool(cond.func(sp.N(cond.lhs - cond.rhs, _DIGITS), 0))
        raise ValueError("a condition that is not a comparison")

    def piecewise(pw: sp.Piecewise) -> sp.Expr:
        for value, cond in pw.args:
            if holds(cond):
                return value
        raise ValueError("no branch holds")

    expr = expr.replace(lambda e: isinstance(e, sp.Heaviside), heaviside)
    expr = expr.replace(lambda e: isinstance(e, sp.sign) and e.args[0].has(var), sign)
    return expr.replace(lambda e: isinstance(e, sp.Piecewise), piecewise)


def _side_value(expr: sp.Expr, var: sp.Symbol, c: sp.Expr, side: int) -> sp.Expr | None:
    """The limit of ``expr`` at ``c`` from one side, or None where it is not a number."""
    branch = _resolved(expr, var, c + side * _SIDE_STEP)
    value = sp.simplify(branch.subs(var, c))
    return value if value.is_number and value.is_finite else None


def _same(a: sp.Expr, b: sp.Expr) -> bool:
    return sp.simplify(a - b) == 0


def side_values(expr: sp.Expr, var: sp.Symbol, c: sp.Expr) -> tuple[sp.Expr | None, ...]:
    """(limit from the left, limit from the right) of ``expr`` at ``c``; None where one
    is not a finite number."""
    return _side_value(expr, var, c, -1), _side_value(expr, var, c, 1)


def _between(value: sp.Expr, a: sp.Expr, b: sp.Expr) -> bool:
    lo, hi = sorted((sp.N(a, _DIGITS), sp.N(b, _DIGITS)))
    v = sp.N(value, _DIGITS)
    return bool(lo <= v <= hi)


def smooth_seams(forward: sp.Expr, derivative: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """``derivative`` pinned at each switch point of its steps where f is continuous and
    the steps' value there is no slope of f: to the slope where both sides agree (a seam,
    see module doc), else to the left slope, the convention's value for ReLU'(0) = 0 and
    LeakyReLU'(0) = alpha (max(z, z/10) read 0 + 0 at 0: neither side's slope, and no
    subgradient). A value between the two sides (sign(0) = 0 for |z|) stays."""
    points = _points(_switch_arguments(derivative, var), var)
    pinned = []
    for c in points:
        try:
            left, right = side_values(derivative, var, c)
            if left is None or right is None:
                continue
            f_sides = side_values(forward, var, c)
            f_at = sp.simplify(forward.subs(var, c))
            if any(v is None or not _same(v, f_at) for v in f_sides):
                continue   # f jumps here: no slope exists
            at = sp.simplify(derivative.subs(var, c))
            if _same(left, right) and not _same(at, left) or not _between(at, left, right):
                pinned.append((left, sp.Eq(var, c)))
        except (ValueError, TypeError, ZeroDivisionError):
            continue   # a side SymPy cannot evaluate: the convention stays
    return sp.Piecewise(*pinned, (derivative, True)) if pinned else derivative


def pinned_seams(derivative: sp.Expr) -> tuple[sp.Expr, tuple[tuple[sp.Expr, sp.Expr], ...]]:
    """(the derivative as SymPy gave it, ((point, slope), ...)): `smooth_seams` undone, for
    printouts that show SymPy's result and then each pinned seam.

    >>> z = sp.Symbol("z", real=True)
    >>> pinned_seams(sp.Piecewise((1, sp.Eq(z, 0)), (sp.Heaviside(z, 0), True)))
    (Heaviside(z, 0), ((0, 1),))
    """
    if not isinstance(derivative, sp.Piecewise) or derivative.args[-1].cond is not sp.true:
        return derivative, ()
    seams = []
    for value, cond in derivative.args[:-1]:
        if not (isinstance(cond, sp.Eq) and cond.lhs.is_Symbol and cond.rhs.is_number):
            return derivative, ()
        seams.append((cond.rhs, value))
    return derivative.args[-1].expr, tuple(seams)
