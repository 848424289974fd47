"""Bounded zero-testing: does an expression simplify to 0?

Used to verify every rewrite (here in `simplify`) and to prove identities (in
`prove`). Never an unbounded ``simplify`` on a large expression: cheap
targeted tools first (cancel, log expansion, exp rewriting), full
``simplify`` only below an operation-count bound. Even ``cancel`` can blow up
on a large custom formula (expanding powers of sums of exponentials), so each
top-level test also has a wall-clock budget: past ``BUDGET_S`` seconds the
answer is "not shown" (the rewrite is not used, or the proof reports failure).

Expressions with kinks (Piecewise, Heaviside, Max, Min, Abs, sign) are proven
*branch by branch*: the breakpoints of one variable are collected, and the
expression is checked on every open interval between them (parametrised by a
positive symbol, so SymPy decides the conditions) and at every breakpoint.

>>> z = sp.Symbol("z", real=True)
>>> zero_method(sp.tanh(z)**2 - 1 + 1/sp.cosh(z)**2)
'rewrite(exp)'
>>> zero_method(sp.Heaviside(sp.Max(0, z), 0) - sp.Heaviside(z, 0))
'branchwise'
>>> zero_method(z - 1) is None
True
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sympy as sp
from sympy.core.relational import Relational

KINKED = (sp.Piecewise, sp.Heaviside, sp.Max, sp.Min, sp.Abs, sp.sign)
MAX_OPS = 250
BUDGET_S = 10.0   # the slowest proof of the built-ins and tests takes 0.5 s


class _OutOfTime(Exception):
    pass


_budget_running = False   # True while the outermost budgeted call runs


@contextmanager
def _time_budget(seconds: float) -> Iterator[None]:
    """Raise `_OutOfTime` inside the block after ``seconds`` (SymPy is pure Python, so a
    SIGALRM interrupts it). Only in the main thread and when no other timer is set;
    elsewhere the operation-count bounds alone apply.
    """
    if (threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "setitimer") or signal.getitimer(signal.ITIMER_REAL)[0]):
        yield
        return

    def on_alarm(signum, frame):
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _within_budget(test):
    """``test(...)``, or None ("not shown") if the outermost call's budget runs out.

    Nested calls (congruent -> zero_method) run inside the outer call's budget.
    """
    @functools.wraps(test)
    def bounded(*args, **kwargs):
        global _budget_running
        if _budget_running:
            return test(*args, **kwargs)
        _budget_running = True
        try:
            with _time_budget(BUDGET_S):
                return test(*args, **kwargs)
        except _OutOfTime:
            return None
        finally:
            _budget_running = False
    return bounded


def _expand_logs(expr: sp.Expr) -> sp.Expr:
    # log(a/b) -> log a - log b needs the argument as one fraction first.
    expr = expr.replace(lambda e: isinstance(e, sp.log), lambda e: sp.log(sp.together(e.args[0])))
    return sp.expand_log(expr, force=True)


def smooth_zero(expr: sp.Expr, max_ops: int = MAX_OPS) -> str | None:
    """Method name if ``expr`` (no kinks expected) reduces to 0 with bounded effort.

    Cheap rational tools first: hyperbolic functions are rewritten in exp and
    logs expanded, after which ``cancel`` treats each exp/log as a generator.
    Full ``simplify`` only runs below an operation-count bound.
    """
    if expr == 0:
        return "trivial"
    if sp.cancel(expr) == 0:
        return "cancel"
    logs = _expand_logs(expr)
    if sp.expand(logs) == 0 or sp.cancel(logs) == 0:
        return "expand_log"
    if logs.has(sp.tanh, sp.cosh, sp.sinh):
        in_exp = _expand_logs(logs.rewrite(sp.exp))
        if sp.cancel(sp.powsimp(sp.expand(in_exp))) == 0:
            return "rewrite(exp)"
    if 0 < sp.count_ops(expr) <= max_ops // 3:
        if sp.simplify(expr) == 0:
            return "simplify"
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


@_within_budget
def zero_method(expr: sp.Expr, max_ops: int = MAX_OPS) -> str | None:
    """How ``expr`` was shown to be identically 0 (a method name), or None if not shown."""
    expr = sp.sympify(expr)
    if expr == 0:
        return "trivial"
    if expr.has(*KINKED):
        if sp.cancel(expr) == 0:   # kinked parts cancel as opaque factors
            return "cancel"
        quick = sp.piecewise_fold(expr)
        if quick == 0 or (not quick.has(*KINKED) and smooth_zero(quick, max_ops)):
            return "piecewise_fold"
        return branchwise_zero(expr, max_ops)
    return smooth_zero(expr, max_ops)


@_within_budget
def congruent(a: sp.Basic, b: sp.Basic, max_ops: int = MAX_OPS) -> str | None:
    """How ``a == b`` is shown part by part, or None.

    Same head (Piecewise, Abs, a relation, ...) with equal parts; |u| = |v| from
    u = +-v; ``zero_method(a - b)`` for the rest. Sound because equal arguments
    give equal results; it proves stable rewrites *inside* an Abs or a Piecewise
    condition, where splitting into regions cannot decide conditions on several
    variables.

    >>> y, z = sp.symbols("y z", real=True)
    >>> congruent(sp.Abs(y - sp.log(sp.exp(z) + 1)),
    ...           sp.Abs(sp.Max(z, 0) + sp.log(1 + sp.exp(-sp.Abs(z))) - y))
    'congruence'
    """
    if a == b:
        return "trivial"
    atomic = (sp.Add, sp.Mul, sp.Pow, sp.Symbol, sp.Number)
    if type(a) is type(b) and a.args and len(a.args) == len(b.args) \
            and not isinstance(a, atomic):
        if isinstance(a, sp.Abs):
            u, v = a.args[0], b.args[0]
            for level in (0, max_ops):   # cheap tools on both signs before simplify
                if zero_method(u - v, level) is not None or zero_method(u + v, level):
                    return "congruence"
        elif all(congruent(x, y, max_ops) for x, y in zip(a.args, b.args, strict=True)):
            return "congruence"
    if not (isinstance(a, sp.Expr) and isinstance(b, sp.Expr)):
        return None
    method = zero_method(a - b, max_ops)
    if method is None and (a.has(*KINKED) or b.has(*KINKED)) \
            and not isinstance(a, KINKED) and not isinstance(b, KINKED):
        method = _abstract_kinks(a, b, max_ops)
    return method


def _outer_kinks(expr: sp.Basic) -> list[sp.Basic]:
    if isinstance(expr, KINKED):
        return [expr]
    return [k for arg in expr.args for k in _outer_kinks(arg)]


def _abstract_kinks(a: sp.Expr, b: sp.Expr, max_ops: int) -> str | None:
    """Pair up congruent kinked parts of a and b, name each pair by one fresh symbol, and
    show the smooth remainders equal."""
    subs_a, subs_b = {}, {}
    pool = list(dict.fromkeys(_outer_kinks(b)))
    for ka in dict.fromkeys(_outer_kinks(a)):
        for kb in pool:
            if congruent(ka, kb, max_ops):
                d = sp.Dummy("k", real=True)
                subs_a[ka], subs_b[kb] = d, d
                pool.remove(kb)
                break
        else:
            return None
    if not subs_a:
        return None
    rest = a.xreplace(subs_a) - b.xreplace(subs_b)
    return "congruence" if zero_method(rest, max_ops) is not None else None
