"""Bounded zero-testing: does an expression simplify to 0?

Used to verify every rewrite (here in `simplify`) and to prove identities (in
`prove`). Never an unbounded ``simplify`` on a large expression: cheap
targeted tools first (cancel, log expansion, exp rewriting), full
``simplify`` only below an operation-count bound.

Expressions with kinks (Piecewise, Heaviside, Max, Min, Abs, sign) are proven
*branch by branch*: the breakpoints of one variable are collected, and the
expression is checked on every open interval between them (parametrised by a
positive symbol, so SymPy decides the conditions) and at every breakpoint.

>>> z = sp.Symbol("z", real=True)
>>> zero_method(sp.tanh(z)**2 - 1 + 1/sp.cosh(z)**2)
'simplify'
>>> zero_method(sp.Heaviside(sp.Max(0, z), 0) - sp.Heaviside(z, 0))
'branchwise'
>>> zero_method(z - 1) is None
True
"""

from __future__ import annotations

import sympy as sp
from sympy.core.relational import Relational

KINKED = (sp.Piecewise, sp.Heaviside, sp.Max, sp.Min, sp.Abs, sp.sign)
MAX_OPS = 250


def _expand_logs(expr: sp.Expr) -> sp.Expr:
    # log(a/b) -> log a - log b needs the argument as one fraction first.
    expr = expr.replace(lambda e: isinstance(e, sp.log), lambda e: sp.log(sp.together(e.args[0])))
    return sp.expand_log(expr, force=True)


def smooth_zero(expr: sp.Expr, max_ops: int = MAX_OPS) -> str | None:
    """Method name if ``expr`` (no kinks expected) reduces to 0 with bounded effort."""
    if expr == 0:
        return "trivial"
    if sp.cancel(expr) == 0:
        return "cancel"
    logs = _expand_logs(expr)
    if sp.expand(logs) == 0 or sp.cancel(logs) == 0:
        return "expand_log"
    if sp.count_ops(expr) <= max_ops:
        if sp.simplify(expr) == 0:
            return "simplify"
        if sp.count_ops(logs) <= max_ops and sp.simplify(logs) == 0:
            return "simplify"
        rewritten = logs.rewrite(sp.exp)
        if sp.count_ops(rewritten) <= max_ops and sp.simplify(rewritten) == 0:
            return "simplify(exp)"
    return None


def _kink_arguments(expr: sp.Expr) -> list[sp.Expr]:
    """Expressions whose sign changes where ``expr`` may have a kink or a branch seam."""
    out: list[sp.Expr] = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Heaviside, sp.Abs, sp.sign)):
            out.append(node.args[0])
        elif isinstance(node, (sp.Max, sp.Min)):
            args = node.args
            out.extend(args[i] - args[j] for i in range(len(args)) for j in range(i))
        elif isinstance(node, Relational):
            out.append(node.lhs - node.rhs)
    return out


def breakpoints(expr: sp.Expr, var: sp.Symbol) -> list[sp.Expr] | None:
    """Sorted distinct roots in ``var`` of the kink arguments that are linear in ``var``."""
    points: list[sp.Expr] = []
    for g in _kink_arguments(expr):
        if not g.has(var) or g.has(*KINKED):
            continue
        poly = sp.Poly(g, var) if g.is_polynomial(var) else None
        if poly is None or poly.degree() != 1:
            continue
        c1, c0 = poly.all_coeffs()
        if c1.free_symbols:
            continue
        points.append(sp.simplify(-c0 / c1))
    distinct: list[sp.Expr] = []
    for pt in points:
        if not any(sp.simplify(pt - q) == 0 for q in distinct):
            distinct.append(pt)
    try:
        return sorted(distinct, key=lambda pt: float(pt - distinct[0]))
    except TypeError:
        return None  # breakpoints not ordered by constants: cannot split regions


def _decide(expr: sp.Expr, t: sp.Symbol) -> sp.Expr | None:
    """Replace every relational in ``expr`` by True/False over t in (0, oo), or None."""
    rels = [r for r in expr.atoms(Relational) if r not in (sp.true, sp.false)]
    region = sp.Interval.open(0, sp.oo)
    subs = {}
    for rel in rels:
        if rel.free_symbols - {t}:
            return None
        try:
            sol = sp.solveset(rel, t, region)
        except (NotImplementedError, ValueError, TypeError):
            return None
        if sol == region:
            subs[rel] = sp.true
        elif sol is sp.S.EmptySet:
            subs[rel] = sp.false
        else:
            return None
    return expr.xreplace(subs) if subs else expr


def branchwise_zero(expr: sp.Expr, max_ops: int = MAX_OPS) -> str | None:
    """Prove ``expr == 0`` on every interval between breakpoints and at each breakpoint."""
    variables = sorted(expr.free_symbols, key=lambda s: s.name)
    for var in variables:
        points = breakpoints(expr, var)
        if not points:
            continue
        t = sp.Dummy("t", positive=True)
        tr = sp.Dummy("t", real=True)
        pieces = [points[0] - t, points[-1] + t]
        pieces += [lo + (hi - lo) / (1 + t) for lo, hi in zip(points, points[1:], strict=False)]
        for piece in pieces:
            e = expr.subs(var, piece)
            if e.atoms(Relational) - {sp.true, sp.false}:
                e2 = _decide(e.xreplace({t: tr}), tr)
                if e2 is None:
                    return None
                e = e2.xreplace({tr: t})
            e = sp.piecewise_fold(e)
            if isinstance(e, sp.Piecewise) or smooth_zero(e, max_ops) is None:
                return None
        for pt in points:
            e = sp.piecewise_fold(expr.subs(var, pt))
            if smooth_zero(e, max_ops) is None:
                return None
        return "branchwise"
    return None


def zero_method(expr: sp.Expr, max_ops: int = MAX_OPS) -> str | None:
    """How ``expr`` was shown to be identically 0 (a method name), or None if not shown."""
    expr = sp.sympify(expr)
    if expr == 0:
        return "trivial"
    if expr.has(*KINKED):
        quick = sp.piecewise_fold(expr)
        if quick == 0 or (not quick.has(*KINKED) and smooth_zero(quick, max_ops)):
            return "piecewise_fold"
        return branchwise_zero(expr, max_ops)
    return smooth_zero(expr, max_ops)
