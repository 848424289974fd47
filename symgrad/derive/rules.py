"""Differentiate an expression rule by rule, as a student does by hand (seed 000).

`rule_derivative` walks a SymPy expression from the outside in and names, at
each sub-expression, the rule a student applies: sum, constant, variable,
coefficient, product, power, exponential, function (a known derivative such as
tanh's) and chain. Nothing is typed in: every step's ``result`` is
``sympy.diff`` of that sub-expression, and the rule's own assembly of its
parts' results (``assembled``, e.g. ``a*1`` for the coefficient rule) is
checked equal to it, so a wrong rule cannot pass silently. Sub-expressions no
rule covers (``Max``, ``Piecewise``, ...) are one honest ``direct`` step:
SymPy's derivative, unexplained.

>>> a, b, c = sp.symbols("a b c", real=True)
>>> step = rule_derivative(a * b + c, b)
>>> step.rule, [p.rule for p in step.parts], step.result
('sum', ['constant', 'coefficient'], a)
>>> coef = step.parts[1]
>>> coef.outer, coef.parts[0].rule, coef.assembled
(a, 'variable', a*1)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sympy as sp

__all__ = ["RULES", "RuleError", "RuleStep", "rule_derivative"]

# Every rule name a step can carry, in the order a course introduces them.
RULES = ("constant", "variable", "sum", "coefficient", "product", "power", "exponential",
         "function", "chain", "direct")

# Bound on the SymPy work of the equality check of one step: larger steps are
# compared at random points instead of simplified.
_MAX_OPS_TO_SIMPLIFY = 80


class RuleError(AssertionError):
    """A rule's assembled derivative disagrees with ``sympy.diff`` (a bug, never user error)."""


@dataclass(frozen=True)
class RuleStep:
    """One rule applied to one sub-expression ``expr``, differentiated w.r.t. ``x``.

    ``parts`` are the sub-derivatives the rule needs, in the order they are
    explained (constant terms of a sum first, as the notes do). ``outer`` is
    the factor the rule multiplies the inner derivative by: the coefficient
    (coefficient rule), ``n*u**(n - 1)`` (power), ``c**u*log(c)`` or ``exp(u)``
    (exponential), ``f'(u)`` (function, chain); None for the other rules.
    ``result`` is ``sympy.diff(expr, x)``; ``assembled`` the rule's formula with
    the parts' results put in, unevaluated where SymPy allows (``a*1``).
    """

    rule: str
    expr: sp.Expr
    x: sp.Symbol
    result: sp.Expr
    assembled: sp.Expr
    parts: tuple[RuleStep, ...] = ()
    outer: sp.Expr | None = None

    def walk(self) -> Iterator[RuleStep]:
        """This step and every step under it, outside in (pre-order)."""
        stack = [self]
        while stack:
            step = stack.pop()
            yield step
            stack.extend(reversed(step.parts))


def rule_derivative(expr: sp.Expr, x: sp.Symbol) -> RuleStep:
    """The derivative of ``expr`` w.r.t. ``x`` as a tree of rule steps (see module doc).

    Raises `RuleError` if a rule's assembly differs from ``sympy.diff`` (checked
    at every step), TypeError if ``x`` is not a SymPy symbol.

    >>> x = sp.Symbol("x", real=True)
    >>> step = rule_derivative(sp.tanh(x * x), x)
    >>> step.rule, step.parts[0].rule, step.result
    ('chain', 'power', 2*x*(1 - tanh(x**2)**2))
    """
    if not isinstance(x, sp.Symbol):
        raise TypeError(f"rule_derivative: differentiate with respect to a symbol, got {x!r}")
    return _step(sp.sympify(expr), x)


def _step(expr: sp.Expr, x: sp.Symbol) -> RuleStep:
    if not expr.has(x):
        return _make("constant", expr, x, sp.Integer(0))
    if expr == x:
        return _make("variable", expr, x, sp.Integer(1))
    if isinstance(expr, sp.Add):
        # Terms free of x are disposed of first (they are 0), then the rest in printed order.
        terms = sorted(expr.as_ordered_terms(), key=lambda t: t.has(x))
        parts = tuple(_step(t, x) for t in terms)
        return _make("sum", expr, x, sp.Add(*(p.result for p in parts)), parts)
    if isinstance(expr, sp.Mul):
        return _product(expr, x)
    if isinstance(expr, sp.Pow):
        return _power(expr, x)
    if isinstance(expr, sp.exp):
        inner = _step(expr.args[0], x)
        rule = "exponential" if inner.rule == "variable" else "chain"
        return _make(rule, expr, x, sp.Mul(expr, inner.result, evaluate=False), (inner,), expr)
    if isinstance(expr, sp.Function) and len(expr.args) == 1:
        return _function(expr, x)
    return _make("direct", expr, x, sp.diff(expr, x))


def _product(expr: sp.Mul, x: sp.Symbol) -> RuleStep:
    free = [f for f in expr.args if not f.has(x)]
    dependent = [f for f in expr.args if f.has(x)]
    if free:
        # a*b w.r.t. b: the factors free of b are a coefficient that stays as it is.
        coeff, rest = sp.Mul(*free), sp.Mul(*dependent)
        inner = _step(rest, x)
        return _make("coefficient", expr, x, sp.Mul(coeff, inner.result, evaluate=False),
                     (inner,), coeff)
    # (u*v)' = u'*v + u*v', with u the first factor and v the product of the others.
    u, v = dependent[0], sp.Mul(*dependent[1:])
    du, dv = _step(u, x), _step(v, x)
    assembled = sp.Add(sp.Mul(du.result, v, evaluate=False), sp.Mul(u, dv.result, evaluate=False),
                       evaluate=False)
    return _make("product", expr, x, assembled, (du, dv))


def _power(expr: sp.Pow, x: sp.Symbol) -> RuleStep:
    base, n = expr.args
    if not n.has(x):
        inner = _step(base, x)
        outer = n * base ** (n - 1)
        return _make("power", expr, x, sp.Mul(outer, inner.result, evaluate=False), (inner,),
                     outer)
    if not base.has(x):
        inner = _step(n, x)
        outer = expr * sp.log(base)
        return _make("exponential", expr, x, sp.Mul(outer, inner.result, evaluate=False),
                     (inner,), outer)
    return _make("direct", expr, x, sp.diff(expr, x))   # u**v: no single rule of the course


def _function(expr: sp.Function, x: sp.Symbol) -> RuleStep:
    # f'(u): SymPy differentiates f at a fresh symbol, then u is put back in.
    t = sp.Dummy("t", real=True)
    (arg,) = expr.args
    outer = sp.diff(expr.func(t), t).xreplace({t: arg})
    if arg == x:
        return _make("function", expr, x, outer, (), outer)
    inner = _step(arg, x)
    return _make("chain", expr, x, sp.Mul(outer, inner.result, evaluate=False), (inner,), outer)


def _make(rule: str, expr: sp.Expr, x: sp.Symbol, assembled: sp.Expr,
          parts: tuple[RuleStep, ...] = (), outer: sp.Expr | None = None) -> RuleStep:
    result = sp.diff(expr, x)
    if not _equal(assembled, result):
        raise RuleError(f"{rule} rule on {expr}: assembled {assembled} but sympy.diff gives "
                        f"{result}")
    return RuleStep(rule, expr, x, result, assembled, parts, outer)


def _equal(a: sp.Expr, b: sp.Expr) -> bool:
    diff = sp.expand(a - b)
    if diff == 0:
        return True
    if sp.count_ops(diff) <= _MAX_OPS_TO_SIMPLIFY and sp.simplify(diff) == 0:
        return True
    # Large or stubborn: compare at a few points (1e-9 relative), like the prove stage does.
    symbols = sorted(diff.free_symbols, key=str)
    f = sp.lambdify(symbols, diff, modules="mpmath")
    g = sp.lambdify(symbols, a, modules="mpmath")
    # A point on a pole or outside the domain says nothing: skip it (it used to count as
    # a disagreement, which would blame a correct rule); at least two points must agree.
    agreed = 0
    for k in range(8):
        point = [0.3 + 0.37 * k + 0.11 * i for i in range(len(symbols))]
        try:
            if abs(complex(f(*point))) > 1e-9 * (1 + abs(complex(g(*point)))):
                return False
        except (ZeroDivisionError, ValueError, TypeError):
            continue
        agreed += 1
        if agreed == 4:
            break
    return agreed >= 2
