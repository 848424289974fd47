"""Bounded zero-testing: does an expression simplify to 0?

Used to verify every rewrite (here in `simplify`) and to prove identities (in
`prove`). Never an unbounded ``simplify`` on a large expression: cheap
targeted tools first (cancel, log expansion, exp rewriting), full
``simplify`` only below an operation-count bound. Even ``cancel`` can blow up
on a large custom formula (expanding powers of sums of exponentials), so each
test also has a time budget: past ``BUDGET_S`` seconds of CPU time the answer
is "not shown" (the rewrite is not used, or the proof reports failure).

The budget mechanism lives here too, for every symbolic step of a compile:
`run_within_budget` gives one compile entry (an activation, an output + loss)
its ``symbolic_budget()`` seconds, and each `bounded_step` (zero tests,
``tidy``, ...) returns its unsimplified fallback once that time is spent.

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

import ctypes
import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sympy as sp
from sympy.core.relational import Relational

from symgrad.derive.seams import closed_form_roots
from symgrad.simplify.series import TaylorPolynomial, remainder_within
from symgrad.simplify.stable import elementary

KINKED = (sp.Piecewise, sp.Heaviside, sp.Max, sp.Min, sp.Abs, sp.sign)
MAX_OPS = 250
BUDGET_S = 10.0   # a zero test on its own; the slowest proof of the built-ins takes 0.5 s
SYMBOLIC_BUDGET_S = 4.0   # one compile entry (an activation, an output + loss); built-ins: < 1 s
SYMBOLIC_BUDGET_ENV = "SYMGRAD_SYMBOLIC_BUDGET"
T = TypeVar("T")


# --- the time budget of symbolic work -------------------------------------------------
#
# SymPy is pure Python, so a long step can be stopped between two bytecodes by an
# exception raised *in* the working thread. A SIGALRM handler can do that only in the
# main thread; Dask or joblib workers compile in other threads. So a watchdog thread
# raises the exception asynchronously (CPython's PyThreadState_SetAsyncExc), which
# works in every thread. The budget counts the working thread's CPU time, not wall
# time: on a loaded machine a built-in derivation must not fall back to the raw form
# just because it waited for a core. Where neither is available (another Python
# implementation, a platform without per-thread CPU clocks) the operation-count bounds
# (MAX_OPS here, tidy's max_ops) alone limit the work, or wall time is counted.

class BudgetExceeded(BaseException):   # noqa: N818 - like KeyboardInterrupt: not an error
    """Raised inside budgeted symbolic work when its time is up.

    A BaseException, so SymPy's own ``except Exception`` handlers cannot swallow it.
    """


class _SoftStop(BudgetExceeded):
    """The deadline: a `bounded_step` returns its fallback, later steps skip their work."""


class _HardStop(BudgetExceeded):
    """Deadline plus grace: whatever still runs is abandoned; the whole entry falls back."""


_RESEND_S = 0.25   # wall seconds between hard stops while the work still runs


_SET_ASYNC_EXC = getattr(getattr(ctypes, "pythonapi", None), "PyThreadState_SetAsyncExc", None)


@dataclass
class Budget:
    """The budget of one entry of symbolic work, and which steps it cut short."""

    seconds: float
    cut: list[str] = field(default_factory=list)   # steps that returned their fallback
    expired: bool = False   # set by the watchdog just before it raises the soft stop


_local = threading.local()   # .budget: the Budget this thread works under, or None


def symbolic_budget(seconds: float | None = None) -> float:
    """Seconds of CPU time per compile entry: ``seconds``, else $SYMGRAD_SYMBOLIC_BUDGET,
    else `SYMBOLIC_BUDGET_S`; a clear error for anything but a positive finite number.

    >>> symbolic_budget(2)
    2.0
    """
    where = "symbolic_budget"
    if seconds is None:
        text = os.environ.get(SYMBOLIC_BUDGET_ENV)
        if text is None or not text.strip():
            return SYMBOLIC_BUDGET_S
        where = f"${SYMBOLIC_BUDGET_ENV}"
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(f"{where} must be a number of seconds, got {text!r}") from None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not 0 < float(seconds) < float("inf"):
        raise ValueError(f"{where} must be a positive finite number of seconds, "
                         f"got {seconds!r}")
    return float(seconds)


def _thread_clock() -> Callable[[], float]:
    """CPU time of the calling thread, readable from any thread (wall time where missing)."""
    try:
        clock_id = time.pthread_getcpuclockid(threading.get_ident())
        time.clock_gettime(clock_id)
    except (AttributeError, OSError):
        return time.monotonic
    return lambda: time.clock_gettime(clock_id)


class _Watchdog(threading.Thread):
    """Raises `_SoftStop` in the thread that made it after ``seconds`` of its CPU time,
    then `_HardStop` after a grace period, repeated until `stop()` cancels it.

    Before the soft stop it marks ``budget.expired``: an asynchronous exception that
    lands in a garbage-collector callback or a ``__del__`` is only reported by Python,
    never propagated, so the steps check the mark as well.
    """

    def __init__(self, budget: Budget) -> None:
        super().__init__(name="symgrad-budget", daemon=True)
        seconds = budget.seconds
        self.budget = budget
        self.target = threading.get_ident()
        self.clock = _thread_clock()
        self.begin = self.clock()
        self.cancelled = threading.Event()
        grace = max(1.0, seconds / 2)   # for the steps after the cut to finish with fallbacks
        self.stops = ((_SoftStop, seconds), (_HardStop, seconds + grace))
        self.raised = False   # whether a stop was sent (and may still be pending)

    def run(self) -> None:
        for exc, after in self.stops:
            while True:
                left = after - (self.clock() - self.begin)
                if left <= 0:
                    break
                if self.cancelled.wait(max(left, 1e-3)):
                    return
            if self.cancelled.is_set():
                return
            self.budget.expired = True
            self.raised = True
            _SET_ASYNC_EXC(ctypes.c_ulong(self.target), ctypes.py_object(exc))
        # A hard stop that landed in a gc callback or a __del__ was dropped and the work
        # runs on, so it is sent again until the work ends (stop() cancels this).
        while not self.cancelled.wait(_RESEND_S):
            _SET_ASYNC_EXC(ctypes.c_ulong(self.target), ctypes.py_object(_HardStop))

    def stop(self) -> None:
        """Cancel, wait for the thread, and drop an exception it raised but not yet delivered.

        Retried if a stop lands here: once ``cancelled`` is set the watchdog sends at most
        one more, so this ends.
        Must run in the working thread (the one `_flush_async_exc` drains).
        """
        while True:
            try:
                self.cancelled.set()
                if self.is_alive():
                    self.join()
                if self.raised:
                    _flush_async_exc(self.target)
                return
            except BudgetExceeded:
                continue


class _Flush(BaseException):
    """Sent to the working thread by itself to take the place of an undelivered stop."""


def _flush_async_exc(target: int) -> None:
    """Drop an asynchronous exception still pending in the calling thread ``target``.

    Why not ``PyThreadState_SetAsyncExc(target, NULL)``: CPython (3.11 at least) then
    leaves its "async exception pending" flag set with nothing to deliver, and that flag
    is only reset by a delivery. The interpreter checks it at every call and loop for the
    rest of the process, and under a profiler or tracer (cProfile, coverage, pdb, an
    IDE's debugger) it never gets past the next call: the process hangs. So a harmless
    exception replaces the pending one and is delivered here, at the loop below, which
    resets the flag. It is raised only between bytecodes of this function, inside the
    ``try``: the call that sends it is inside too.
    """
    try:
        _SET_ASYNC_EXC(ctypes.c_ulong(target), ctypes.py_object(_Flush))
        for _ in range(1_000_000):   # delivered at the first backward jump, in practice
            pass
    except _Flush:
        return
    # Never seen. Clearing with NULL is then the lesser harm: a _Flush left pending
    # would be raised later at a random place in the caller's code.
    _SET_ASYNC_EXC(ctypes.c_ulong(target), None)   # pragma: no cover


def _quiet_swallowed_stops() -> None:
    """Keep Python from printing "Exception ignored in ..." for a stop that landed in a
    gc callback, a weakref callback or a ``__del__``.

    Python drops such an exception and reports it through `sys.unraisablehook`. A stop
    dropped there is expected and handled (`Budget.expired`, the resent hard stop), so
    the report would only alarm the user. Every other report goes to the hook that was
    installed before (a test runner's, say), which is looked up again on each install.
    """
    current = sys.unraisablehook
    if getattr(current, "_symgrad_quiet", False):
        return

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, BudgetExceeded) or (
                isinstance(unraisable.exc_type, type)
                and issubclass(unraisable.exc_type, BudgetExceeded)):
            return
        current(unraisable)

    hook._symgrad_quiet = True   # type: ignore[attr-defined]
    sys.unraisablehook = hook


@dataclass(frozen=True)
class Bounded:
    """What `run_within_budget` got: the result, whether it ran to the end, and the cuts."""

    result: Any
    completed: bool        # False: stopped outright, ``result`` is None
    cut: tuple[str, ...]   # bounded steps that returned their fallback instead of a result


def run_within_budget(work: Callable[[], T], seconds: float) -> Bounded:
    """``work()`` under a budget of ``seconds`` CPU seconds of this thread.

    Past the deadline every `bounded_step` returns its fallback (recorded in ``cut``);
    past a grace period after it, the work is abandoned (``completed`` False). Inside
    another budget, ``work`` simply runs under the outer one.

    >>> run_within_budget(lambda: 6 * 7, 1.0)
    Bounded(result=42, completed=True, cut=())
    """
    outer = getattr(_local, "budget", None)
    if outer is not None:
        return Bounded(work(), True, ())
    budget = Budget(seconds)
    watchdog = _Watchdog(budget) if _SET_ASYNC_EXC is not None else None
    if watchdog is not None:
        _quiet_swallowed_stops()
    result, completed = None, False
    try:
        try:
            _local.budget = budget
            if watchdog is not None:
                watchdog.start()
            result = work()
            completed = True
        finally:
            if watchdog is not None:
                watchdog.stop()
            _local.budget = None
    except BudgetExceeded:
        if watchdog is not None:
            watchdog.stop()
        _local.budget = None
    return Bounded(result, completed, tuple(budget.cut))


def bounded_step(fallback: Callable[..., Any], seconds: Callable[[], float] | None = None):
    """Decorator: a symbolic step that returns ``fallback(*args, **kwargs)`` when out of time.

    Inside a budget (a compile entry) the step shares its deadline; once any step was
    cut, later steps return their fallback at once. Called on its own, the step gets a
    budget of ``seconds()`` (default `BUDGET_S`) for itself.
    """
    def decorate(step: Callable[..., T]) -> Callable[..., T]:
        name = step.__qualname__

        @functools.wraps(step)
        def bounded(*args, **kwargs):
            budget = getattr(_local, "budget", None)
            if budget is None:
                limit = seconds() if seconds is not None else BUDGET_S
                got = run_within_budget(lambda: bounded(*args, **kwargs), limit)
                return got.result if got.completed else fallback(*args, **kwargs)
            if budget.cut:
                return fallback(*args, **kwargs)
            try:
                result = step(*args, **kwargs)
            except _SoftStop:
                budget.cut.append(name)
                return fallback(*args, **kwargs)
            if budget.expired:   # the stop was raised but swallowed (see _Watchdog)
                budget.cut.append(name)
                return fallback(*args, **kwargs)
            return result
        return bounded
    return decorate


def _not_shown(*args: object, **kwargs: object) -> None:
    return None


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
    # again here: a branch substituted for the variable may have fixed a sign that
    # `elementary` needs (atan(1/u) for u > 0)
    expr = elementary(expr)
    if expr == 0:
        return "trivial"
    if sp.cancel(expr) == 0:
        return "cancel"
    logs = _expand_logs(expr)
    if sp.expand(logs) == 0 or sp.cancel(logs) == 0:
        return "expand_log"
    if logs.has(sp.tanh, sp.cosh, sp.sinh):
        in_exp = _expand_logs(logs.rewrite(sp.exp))
        one = _in_one_exponential(in_exp)
        if one is not None and sp.cancel(one) == 0:
            return "rewrite(exp)"
        if sp.cancel(sp.powsimp(sp.expand(in_exp))) == 0:
            return "rewrite(exp)"
    if 0 < sp.count_ops(expr) <= max_ops // 3:
        if sp.simplify(expr) == 0:
            return "simplify"
    return None


def _in_one_exponential(expr: sp.Expr) -> sp.Expr | None:
    """``expr`` with every e^(c g) written w^(c L) for one w = e^(g/L), if the exponents
    are all rational multiples c of one g (L their denominators' lcm): then it is a
    rational function of w, which ``cancel`` decides at once. None otherwise.

    tanh(7u/2) and cosh(7u) of u = p - y: the exponentials of 7p/2 - 7y/2 and 7p - 7y
    made powsimp and cancel take 50 s; in w = e^((7p - 7y)/2) it is a rational function.

    >>> p, y = sp.symbols("p y", real=True)
    >>> one = _in_one_exponential(sp.exp(p - y) * sp.exp(2*y - 2*p) - sp.exp(y - p))
    >>> sp.cancel(one)
    0
    """
    powers = [e for e in sp.preorder_traversal(expr) if isinstance(e, sp.exp)]
    if not powers:
        return None
    base = sp.expand(powers[0].args[0])
    ratios = {}
    for e in powers:
        ratio = sp.cancel(sp.expand(e.args[0]) / base)
        if not isinstance(ratio, sp.Rational):
            return None
        ratios[e] = ratio
    lcm = sp.ilcm(*(int(r.q) for r in ratios.values()))
    w = sp.Dummy("w", positive=True)
    return expr.replace(lambda e: isinstance(e, sp.exp) and e in ratios,
                        lambda e: w ** int(ratios[e] * lcm))


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


# A kink argument that is no polynomial (e^(2z)/2 - 1/2, expm1(2z)) is solved by SymPy only
# when it is this small: solveset on a long one can take seconds and rarely succeeds.
_ROOT_SOLVE_OPS = 12


def _closed_form_roots(g: sp.Expr, var: sp.Symbol) -> list[sp.Expr]:
    """The real roots of a non-polynomial ``g`` in ``var`` alone, where SymPy finds a
    finite set in closed form; else none (the region it bounds stays undecided).

    >>> z = sp.Symbol("z", real=True)
    >>> _closed_form_roots(sp.Rational(1, 2) - sp.exp(2 * z) / 2, z)
    [0]
    """
    if g.free_symbols != {var} or sp.count_ops(g) > _ROOT_SOLVE_OPS:
        return []
    return closed_form_roots(elementary(g), var, most=4)


def breakpoints(expr: sp.Expr, var: sp.Symbol) -> list[sp.Expr] | None:
    """Sorted distinct roots in ``var`` of the kink arguments that are linear in ``var``,
    and the rational roots of those that are polynomials with numeric coefficients (the
    softplus rule on (z + 2/3)(z + 4) puts its kinks at -4 and -2/3).

    >>> z = sp.Symbol("z", real=True)
    >>> breakpoints(sp.Abs((z + sp.Rational(2, 3)) * (z + 4)) + sp.Max(0, z - 1), z)
    [-4, -2/3, 1]
    """
    points: list[sp.Expr] = []
    for g in _kink_arguments(expr):
        if not g.has(var) or g.has(*KINKED):
            continue
        poly = sp.Poly(g, var) if g.is_polynomial(var) else None
        if poly is None:
            points += _closed_form_roots(g, var)
            continue
        if poly.degree() < 1:
            continue
        if poly.degree() > 1:
            if not any(c.free_symbols for c in poly.all_coeffs()):
                # its linear factors over the rationals; an irreducible factor's roots stay
                # unsplit, and a region with one inside cannot be decided (not shown)
                points += [-f.all_coeffs()[1] / f.all_coeffs()[0]
                           for f in (sp.Poly(a, var) for a, _ in sp.factor_list(g, var)[1])
                           if f.degree() == 1]
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


def _decide_steps(expr: sp.Expr, t: sp.Symbol) -> sp.Expr:
    """Replace each Heaviside and sign whose argument keeps one sign over t in (0, oo) by
    its value there (SymPy evaluates H(-t) itself, not H(1/2 - e^(2t)/2)); the others stay.

    >>> t = sp.Symbol("t", real=True)
    >>> _decide_steps(sp.Heaviside(sp.Rational(1, 2) - sp.exp(2 * t) / 2, 0) + sp.sign(t), t)
    1
    """
    region = sp.Interval.open(0, sp.oo)

    def sign_over_region(arg: sp.Expr) -> int | None:
        if arg.free_symbols != {t} or sp.count_ops(arg) > _ROOT_SOLVE_OPS:
            return None
        g = elementary(arg)
        try:
            if sp.solveset(g > 0, t, region) == region:
                return 1
            if sp.solveset(g < 0, t, region) == region:
                return -1
        except (NotImplementedError, ValueError, TypeError):
            return None
        return None

    subs = {}
    for step in expr.atoms(sp.Heaviside, sp.sign):
        side = sign_over_region(step.args[0])
        if side is not None:
            subs[step] = sp.Integer(side) if isinstance(step, sp.sign) else sp.Integer(side > 0)
    return expr.xreplace(subs) if subs else expr


def _decide(expr: sp.Expr, t: sp.Symbol) -> sp.Expr | None:
    """Replace every relational in ``expr`` by True/False over t in (0, oo), or None."""
    rels = [r for r in expr.atoms(Relational) if r not in (sp.true, sp.false)]
    region = sp.Interval.open(0, sp.oo)
    subs = {}
    for rel in rels:
        if rel.free_symbols - {t}:
            return None
        try:
            sol = sp.solveset(rel.func(elementary(rel.lhs - rel.rhs), 0), t, region)
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
            if e.has(sp.Heaviside, sp.sign):
                e = _decide_steps(e.xreplace({t: tr}), tr).xreplace({tr: t})
            e = sp.piecewise_fold(e)
            if isinstance(e, sp.Piecewise) or smooth_zero(e, max_ops) is None:
                return None
        for pt in points:
            e = sp.piecewise_fold(expr.subs(var, pt))
            if smooth_zero(e, max_ops) is None:
                return None
        return "branchwise"
    return None


def opaque_kink_zero(expr: sp.Expr, max_ops: int = MAX_OPS) -> str | None:
    """Prove ``expr == 0`` with a non-linear kink argument u(z) replaced by a real symbol w.

    softplus's stable form log1p(e^-|u|) + max(0, u) of log(1 + e^u) kinks where u = 0;
    for u = 3z/2 + tanh(z/2) that point has no closed form, and for u = z(1 - 2y) (a
    margin loss) it lies at z = 0 or y = 1/2, a root whose coefficient holds the other
    variable, so `branchwise_zero` finds no breakpoint. But if the expression with u
    written as w is 0 for every real w (and z), it is 0 at w = u(z) in particular: a
    stronger claim, proven branch by branch in w.

    >>> z = sp.Symbol("z", real=True)
    >>> u = z + sp.tanh(z)
    >>> opaque_kink_zero(sp.log(1 + sp.exp(u)) - sp.log(1 + sp.exp(-sp.Abs(u)))
    ...                  - sp.Max(0, u))
    'kink argument z + tanh(z) as a symbol: branchwise'
    """
    # u must read the same wherever it occurs: exp(z*(1 - 2y)) beside |2yz - z|
    expr = expr.replace(lambda e: isinstance(e, sp.Function) and not isinstance(e, sp.Piecewise)
                        and any(isinstance(arg, (sp.Add, sp.Mul)) for arg in e.args),
                        lambda e: e.func(*[sp.expand_mul(arg) for arg in e.args]))
    for g in dict.fromkeys(_kink_arguments(expr)):
        if g.is_Symbol or not g.free_symbols or g.has(*KINKED):
            continue
        w = sp.Dummy("w", real=True)
        replaced = expr.xreplace({g: w, -g: -w})
        if replaced.has(w):
            method = branchwise_zero(replaced, max_ops)
            if method is not None:
                return f"kink argument {g} as a symbol: {method}"
    return None


def every_branch_zero(expr: sp.Expr, max_ops: int = MAX_OPS) -> str | None:
    """"every branch" if ``expr`` holds one outermost Piecewise and is 0 with each of its
    branches in its place, whatever the conditions; else None.

    A stable form spliced by magnitude (log cosh u: log1p(2 sinh^2(u/2)) for small |u|,
    |u| + log1p(e^(-2|u|)) - log 2 beyond) has branches that are each equal to the formula
    everywhere, only accurate in different places. Splitting the line into regions would
    substitute expressions such as -16 + 16/(1 + t) for u, which the tools then fail to
    simplify; here each branch is proven in the variable itself.
    """
    every = expr.atoms(sp.Piecewise)
    # the outermost: a splice of two forms that are Piecewise themselves (per sign of z)
    # is proven branch by branch, each branch then by the same rule
    pieces = [p for p in every if not any(q != p and q.has(p) for q in every)]
    if len(pieces) != 1:
        return None
    (piece,) = pieces
    if piece.args[-1].cond != sp.true:
        return None   # undefined outside its conditions: equal branches are not enough
    taylor = False
    for value, cond in piece.args:
        if isinstance(value, TaylorPolynomial):
            # not an equality: T_N[f] claims f within its truncation where it is used
            if not _taylor_branch_holds(expr, piece, value, cond, max_ops):
                return None
            taylor = True
        elif zero_method(expr.xreplace({piece: value}), max_ops) is None:
            return None
    return "every branch (a Taylor branch: remainder measured)" if taylor else "every branch"


def _taylor_branch_holds(expr: sp.Expr, piece: sp.Piecewise, branch: TaylorPolynomial,
                         cond: sp.Basic, max_ops: int) -> bool:
    """The Taylor branch T_N[g] of ``piece`` under ``cond``: g is what the piece's place
    in ``expr`` asks for (proven symbolically), ``cond`` is |z| < r, and within it
    |g - T_N| <= 2^-53 |g| (measured against mpmath, `series.remainder_within`)."""
    if zero_method(expr.xreplace({piece: branch.formula}), max_ops) is None:
        return False
    z = branch.variable
    if not (isinstance(cond, sp.StrictLessThan) and cond.lhs == sp.Abs(z)
            and cond.rhs.is_number and cond.rhs.is_positive):
        return False
    return remainder_within(branch, float(cond.rhs))


@bounded_step(_not_shown)
def zero_method(expr: sp.Expr, max_ops: int = MAX_OPS) -> str | None:
    """How ``expr`` was shown to be identically 0 (a method name), or None if not shown."""
    expr = elementary(sp.sympify(expr))   # log1p, expm1, erfc: by their definitions
    if expr == 0:
        return "trivial"
    if expr.has(TaylorPolynomial):
        # an approximation: only its own claim may be checked (every_branch_zero), never
        # an identity test that would sample it or substitute regions into it
        return every_branch_zero(expr, max_ops)
    if expr.has(*KINKED):
        if sp.cancel(expr) == 0:   # kinked parts cancel as opaque factors
            return "cancel"
        quick = sp.piecewise_fold(expr)
        if quick == 0 or (not quick.has(*KINKED) and smooth_zero(quick, max_ops)):
            return "piecewise_fold"
        return every_branch_zero(expr, max_ops) or branchwise_zero(expr, max_ops) \
            or opaque_kink_zero(expr, max_ops)
    return smooth_zero(expr, max_ops)


@bounded_step(_not_shown)
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
