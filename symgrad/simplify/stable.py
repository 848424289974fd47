"""Numerically stable rewrites, as data: each rule is a pattern, a replacement and a why.

Rules are generic SymPy rewrites (no activation or loss names): they apply to
whatever composition l(f(z), y) or f(z) contains the pattern. Every use is
recorded in the plan as an `Identity` (naive form == stable form) and proven.

>>> z, y = sp.symbols("z y", real=True)
>>> naive = -(y*sp.log(1/(1 + sp.exp(-z))) + (1 - y)*sp.log(1 - 1/(1 + sp.exp(-z))))
>>> stable, notes = stabilise(naive)
>>> stable
-y*z + log(1 + exp(-Abs(z))) + Max(0, z)
>>> [n.name for n in notes]
['softplus']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

_u = sp.Wild("u")


def _logistic_slope(expr: sp.Expr) -> sp.Expr:
    """Every product holding exp(u) * (1 + exp(u))**-2 -> the rest / (4 cosh(u/2)**2)."""
    def rewrite(m: sp.Mul) -> sp.Expr:
        factors = list(m.args)
        for f in factors:
            if isinstance(f, sp.exp):
                u = f.args[0]
                den = (1 + sp.exp(u)) ** -2
                if den in factors:
                    rest = [g for g in factors if g is not f and g != den]
                    return sp.Mul(*rest) / (4 * sp.cosh(u / 2) ** 2)
        return m
    return expr.replace(lambda e: isinstance(e, sp.Mul), rewrite)


@dataclass(frozen=True)
class StableRule:
    """Replace ``pattern`` (with wildcard u) by ``replacement(u)``; ``note`` says why.

    With ``pattern=None`` the replacement is a whole-expression rewrite function.
    """

    name: str
    pattern: sp.Expr | None
    replacement: Callable[..., sp.Expr]
    note: str


RULES: tuple[StableRule, ...] = (
    StableRule(
        "softplus", sp.log(1 + sp.exp(_u)),
        lambda u: sp.Max(u, 0) + sp.log(1 + sp.exp(-sp.Abs(u))),
        r"$\log(1+e^{u})$ is evaluated as $\max(u,0)+\log(1+e^{-|u|})$: the exponent is "
        r"never positive, so $e^{u}$ cannot overflow for large logits and no $\log 0$ "
        "appears for very negative ones.",
    ),
    StableRule(
        "logcosh", sp.log(sp.cosh(_u)),
        lambda u: sp.Abs(u) + sp.log(1 + sp.exp(-2 * sp.Abs(u))) - sp.log(2),
        r"$\log\cosh u$ is evaluated as $|u| + \log(1+e^{-2|u|}) - \log 2$: $\cosh u$ "
        r"itself overflows for $|u| > 710$.",
    ),
    StableRule(
        "logistic slope", None, _logistic_slope,
        r"$e^{u}/(1+e^{u})^2$ is evaluated as $1/(4\cosh^2(u/2))$: no $\infty/\infty$ "
        "for large |u|.",
    ),
    StableRule(
        "logistic", 1 / (1 + sp.exp(_u)),
        lambda u: (1 - sp.tanh(u / 2)) / 2,
        r"$1/(1+e^{u})$ is evaluated as $(1-\tanh(u/2))/2$, which never overflows.",
    ),
)


def expand_logs(expr: sp.Expr) -> sp.Expr:
    """log of a product/quotient/exp -> sum of logs (valid: every argument is positive
    wherever the naive loss is finite); log(exp(u)) -> u."""
    expr = expr.replace(lambda e: isinstance(e, sp.log),
                        lambda e: sp.log(sp.together(e.args[0])))
    return sp.expand(sp.expand_log(expr, force=True))


def stabilise(expr: sp.Expr, rules: tuple[StableRule, ...] = RULES
              ) -> tuple[sp.Expr, tuple[StableRule, ...]]:
    """``expr`` with log expansion and every applicable rule; returns (stable, rules used)."""
    out = expand_logs(expr) if expr.has(sp.log) else expr
    used = []
    for rule in rules:
        if rule.pattern is None:
            new = rule.replacement(out)
        else:
            new = out.replace(rule.pattern, lambda u, rule=rule: rule.replacement(u))
        if new != out:
            used.append(rule)
            out = new
    if used:
        out = sp.expand(out)
    return out, tuple(used)
