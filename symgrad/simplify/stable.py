"""Numerically stable rewrites, as data: each rule is a pattern, a replacement and a why.

Rules are generic SymPy rewrites (no activation or loss names): they apply to
whatever composition l(f(z), y) or f(z) contains the pattern. Every use is
recorded in the plan as an `Identity` (naive form == stable form) and proven.

>>> z, y = sp.symbols("z y", real=True)
>>> naive = -(y*sp.log(1/(1 + sp.exp(-z))) + (1 - y)*sp.log(1 - 1/(1 + sp.exp(-z))))
>>> stable, notes = stabilise(naive)
>>> stable
-y*z + log1p(exp(-Abs(z))) + Max(0, z)
>>> [n.name for n in notes]
['softplus', 'log1p']

Rules only propose: which form is evaluated is decided by measuring candidates
against the exact value (`symgrad.simplify.accuracy`), so a rule that helps one
formula and hurts another is never trusted blindly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

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


def _logistic_ratio(expr: sp.Expr) -> sp.Expr:
    """Every product holding exp(m*u) * (1 + exp(u))**-n, 0 < m <= n -> sigmoid powers.

    e^{mu} / (1 + e^u)^n = (1 + e^{-u})^{-m} (1 + e^u)^{m-n}: each factor is at most 1,
    so nothing overflows and nothing cancels (SymPy writes sigmoid'(u)-like products as
    e^u/(1+e^u), which is inf/inf once e^u overflows).
    """
    def denominators(m: sp.Mul):
        for f in m.args:
            if (isinstance(f, sp.Pow) and f.exp.is_Rational and f.exp < 0
                    and isinstance(f.base, sp.Add) and len(f.base.args) == 2
                    and sp.S.One in f.base.args):
                other = f.base.args[0] if f.base.args[1] == 1 else f.base.args[1]
                if isinstance(other, sp.exp):
                    yield f, other.args[0], -f.exp

    def rewrite(m: sp.Mul) -> sp.Expr:
        for den, u, n in denominators(m):
            for f in m.args:
                if isinstance(f, sp.exp):
                    ratio = sp.cancel(f.args[0] / u)
                    if ratio.is_Rational and 0 < ratio <= n:
                        rest = [g for g in m.args if g is not f and g is not den]
                        return sp.Mul(*rest, (1 + sp.exp(-u)) ** -ratio,
                                      (1 + sp.exp(u)) ** (ratio - n))
        return m

    # Repeat: one product may hold several such pairs.
    for _ in range(8):
        new = expr.replace(lambda e: isinstance(e, sp.Mul), rewrite)
        if new == expr:
            return expr
        expr = new
    return expr


def _exp_products(expr: sp.Expr) -> sp.Expr:
    """Every product of exponentials exp(a) * exp(b) * ... -> exp(a + b + ...)."""
    def rewrite(m: sp.Mul) -> sp.Expr:
        exps = [f for f in m.args if isinstance(f, sp.exp)]
        if len(exps) < 2:
            return m
        rest = [f for f in m.args if not isinstance(f, sp.exp)]
        return sp.Mul(*rest, sp.exp(sp.Add(*(e.args[0] for e in exps))))
    return expr.replace(lambda e: isinstance(e, sp.Mul), rewrite)


def _constant_pairs(expr: sp.Expr, head: type | Callable[[sp.Expr], bool],
                    build: Callable[[sp.Expr, sp.Expr, int], sp.Expr | None]) -> sp.Expr:
    """In every sum holding a number c and a term +-c*head(u): replace the two terms by
    ``build(c, u, sign)`` (None: leave them). The pair may sit in a longer sum. ``head``
    is a function class or a test of the term (u is then its first argument)."""
    is_head = head if not isinstance(head, type) else (lambda e: isinstance(e, head))
    def rewrite(add: sp.Add) -> sp.Expr:
        consts = [t for t in add.args if t.is_Number]
        if len(consts) != 1 or consts[0] == 0:
            return add
        c = consts[0]
        for t in add.args:
            coeff, rest = t.as_coeff_Mul()
            if is_head(rest) and abs(coeff) == abs(c):
                new = build(c, rest.args[0], 1 if coeff == c else -1)
                if new is not None:
                    others = [a for a in add.args if a is not t and a is not c]
                    return sp.Add(*others, new)
        return add
    return expr.replace(lambda e: isinstance(e, sp.Add), rewrite)


def _log1p(expr: sp.Expr) -> sp.Expr:
    """log(1 + u) -> log1p(u) for every log of a sum holding the term 1."""
    def rewrite(e: sp.log) -> sp.Expr:
        arg = e.args[0]
        if isinstance(arg, sp.Add) and sp.S.One in arg.args:
            return log1p(arg - 1)
        return e
    return expr.replace(lambda e: isinstance(e, sp.log), rewrite)


def _expm1(expr: sp.Expr) -> sp.Expr:
    """c*exp(u) - c -> c*expm1(u), also inside a longer sum."""
    return _constant_pairs(expr, sp.exp,
                           lambda c, u, sign: -c * expm1(u) if sign < 0 else None)


def _erfc(expr: sp.Expr) -> sp.Expr:
    """c - c*erf(u) -> c*erfc(u); c + c*erf(u) -> c*erfc(-u), written per sign of u.

    SymPy rewrites erfc(-u) to 2 - erfc(u) on sight (which cancels for u < 0 just as
    1 + erf(u) does), so the u < 0 side is spelled erfc(|u|).
    """
    def build(c: sp.Expr, u: sp.Expr, sign: int) -> sp.Expr:
        if sign < 0:
            return c * sp.erfc(u)
        scale, rest = u.as_independent(*u.free_symbols, as_Add=False)
        positive = rest > 0 if scale.is_positive else u > 0   # sqrt(2)*z/2 > 0: z > 0
        return c * sp.Piecewise((2 - sp.erfc(u), positive), (sp.erfc(sp.Abs(u)), True))
    return _constant_pairs(expr, sp.erf, build)


def _cosh_minus_one(expr: sp.Expr) -> sp.Expr:
    """c - c*cosh(u) -> -2c*sinh(u/2)**2: the difference cancels for small |u|."""
    return _constant_pairs(expr, sp.cosh,
                           lambda c, u, sign: -2 * c * sp.sinh(u / 2) ** 2 if sign < 0
                           else None)


def _cos_pair(expr: sp.Expr) -> sp.Expr:
    """c - c*cos(u) -> 2c*sin(u/2)**2 (cancels near u = 0); c + c*cos(u) -> 2c*cos(u/2)**2
    (cancels near u = pi)."""
    return _constant_pairs(expr, sp.cos,
                           lambda c, u, sign: 2 * c * (sp.sin(u / 2) if sign < 0
                                                       else sp.cos(u / 2)) ** 2)


def _sqrt_minus_one(expr: sp.Expr) -> sp.Expr:
    """c - c*sqrt(w) -> c*(1 - w)/(1 + sqrt(w)), with 1 - w expanded: sqrt(1 + z**2) - 1
    cancels for small |z| (0 below 1e-8 in float64), z**2/(sqrt(1 + z**2) + 1) does not.

    >>> z = sp.Symbol("z", real=True)
    >>> _sqrt_minus_one(sp.sqrt(1 + z**2) - 1)
    z**2/(sqrt(z**2 + 1) + 1)
    """
    return _constant_pairs(expr, lambda e: isinstance(e, sp.Pow) and e.exp == sp.S.Half,
                           lambda c, w, sign: c * sp.expand(1 - w) / (1 + sp.sqrt(w))
                           if sign < 0 else None)


def _ramp_difference(expr: sp.Expr) -> sp.Expr:
    """k*Max(0, u) - k*Max(0, u - c) -> k*Min(c, Max(0, u)) for a number c > 0.

    Soft clipping log((1 + e^z)/(1 + e^(z - 1))) expands to a difference of two ramps,
    z - (z - 1) for large z, which is 0 once z - 1 rounds to z (z > 2^24 in float32);
    the clamp is the same number without the difference.

    >>> z = sp.Symbol("z", real=True)
    >>> _ramp_difference(sp.Max(0, z) - sp.Max(0, z - 1))
    Min(1, Max(0, z))
    """
    def ramp(term: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
        k, m = term.as_coeff_Mul()
        if isinstance(m, sp.Max) and len(m.args) == 2 and sp.S.Zero in m.args:
            return k, m.args[0] if m.args[1] == 0 else m.args[1]
        return None

    def rewrite(add: sp.Add) -> sp.Expr:
        ramps = [(t, ramp(t)) for t in add.args if ramp(t) is not None]
        for t1, (k1, u1) in ramps:
            for t2, (k2, u2) in ramps:
                c = sp.simplify(u1 - u2)
                if t1 is not t2 and k2 == -k1 and c.is_number and c.is_positive:
                    others = [t for t in add.args if t is not t1 and t is not t2]
                    return sp.Add(*others, k1 * sp.Min(c, sp.Max(0, u1)))
        return add
    return expr.replace(lambda e: isinstance(e, sp.Add), rewrite)


def _conjugate(expr: sp.Expr) -> sp.Expr:
    """t + k*sqrt(w) -> d/(k*sqrt(w) - t) where it cancels (t < 0 for k > 0), when
    d = k^2 w - t^2 is a number: Squareplus (z + sqrt(z^2 + 4))/2 cancels for z << 0
    (it returned 0 below z = -1e8 in float64), 1/(sqrt(z^2 + 4)/2 - z/2) does not.

    >>> z = sp.Symbol("z", real=True)
    >>> _conjugate(z / 2 + sp.sqrt(z**2 + 4) / 2)
    Piecewise((1/(-z/2 + sqrt(z**2 + 4)/2), z < 0), (z/2 + sqrt(z**2 + 4)/2, True))
    """
    def rewrite(add: sp.Add) -> sp.Expr:
        for term in add.args:
            k, root = term.as_independent(*term.free_symbols, as_Add=False)
            if not (isinstance(root, sp.Pow) and root.exp == sp.S.Half and k.is_number):
                continue
            t = add - term
            if not t.free_symbols:
                continue
            d = sp.expand(term**2 - t**2)
            if d.free_symbols or d == 0:
                continue
            cancels = t < 0 if k.is_positive else t > 0
            return sp.Piecewise((d / (term - t), cancels), (add, True))
        return add
    return expr.replace(lambda e: isinstance(e, sp.Add), rewrite)


def _atan_complement(expr: sp.Expr) -> sp.Expr:
    """c + k*atan(u) with c = +-k*pi/2 -> k*(+-pi/2 + atan(u)), written per sign of u.

    pi/2 + atan(u) cancels for u << 0 (an arctan CDF, atan(z)/pi + 1/2, returned 0 for
    z < -1e16 in float64); there it equals -atan(1/u), from atan(u) + atan(1/u) = -pi/2
    for u < 0 (and pi/2 - atan(u) = atan(1/u) for u > 0).

    >>> z = sp.Symbol("z", real=True)
    >>> _atan_complement(sp.atan(z) / sp.pi + sp.Rational(1, 2))
    Piecewise((-atan(1/z)/pi, z < 0), ((atan(z) + pi/2)/pi, True))
    """
    def rewrite(add: sp.Add) -> sp.Expr:
        consts = [t for t in add.args if t.is_number and not t.has(sp.Symbol)]
        if len(consts) != 1:
            return add
        c = consts[0]
        for t in add.args:
            k, rest = t.as_independent(*t.free_symbols, as_Add=False)
            if not isinstance(rest, sp.atan) or k == 0:
                continue
            sign = 1 if sp.simplify(c - k * sp.pi / 2) == 0 else (
                -1 if sp.simplify(c + k * sp.pi / 2) == 0 else 0)
            if sign == 0:
                continue
            u = rest.args[0]
            # c + k atan(u) = k (sign pi/2 + atan(u)): near 0 for u << 0 (sign +) or
            # u >> 0 (sign -), where it equals -atan(1/u) either way
            small = u < 0 if sign > 0 else u > 0
            # k inside the branches: z*pi/pi would overflow for z near the largest float
            new = sp.Piecewise((-k * sp.atan(1 / u), small),
                               (k * (sign * sp.pi / 2 + sp.atan(u)), True))
            others = [a for a in add.args if a is not t and a is not c]
            return sp.Add(*others, new)
        return add
    return expr.replace(lambda e: isinstance(e, sp.Add), rewrite)


def _tanh_logistic(expr: sp.Expr) -> sp.Expr:
    """c + c*tanh(u) -> 2c/(1 + exp(-2u)); c - c*tanh(u) -> 2c/(1 + exp(2u))."""
    return _constant_pairs(expr, sp.tanh,
                           lambda c, u, sign: 2 * c / (1 + sp.exp(-2 * sign * u)))


def _hyperbolic_of_log(expr: sp.Expr) -> sp.Expr:
    """tanh(log w) -> (w^2 - 1)/(w^2 + 1), sinh(log w) -> (w - 1/w)/2, cosh likewise.

    Mish, z tanh(log(1 + e^z)): its slope tanh(s) + z sigma(z) (1 - tanh(s)^2), s the
    softplus, was 16.7 ulp off at z = 11.4 (float64; 7.2 in float32), 1 - tanh^2 cancelling;
    written in w = 1 + e^z both are rational functions of one exponential, which
    `one_exponential` then evaluates without overflow or cancellation.

    >>> z = sp.Symbol("z", real=True)
    >>> _hyperbolic_of_log(sp.tanh(sp.log(1 + sp.exp(z))))
    ((exp(z) + 1)**2 - 1)/((exp(z) + 1)**2 + 1)
    """
    forms = {sp.tanh: lambda w: (w**2 - 1) / (w**2 + 1),
             sp.sinh: lambda w: (w - 1 / w) / 2, sp.cosh: lambda w: (w + 1 / w) / 2}
    return expr.replace(
        lambda e: type(e) in forms and isinstance(e.args[0], sp.log),
        lambda e: forms[type(e)](e.args[0].args[0]))


def _max_minus_argument(expr: sp.Expr) -> sp.Expr:
    """k*Max(a, b) - k*a -> k*Max(0, b - a) in every sum holding both terms.

    Log-sigmoid written log(1/(1 + e^-z)) expands to z - Max(0, z) - log1p(e^-|z|), and
    z - Max(0, z) cancels for z > 0 (the kernel returned 0 where the value is -e^-z);
    -Max(0, -z) is the same number without the difference.

    >>> z = sp.Symbol("z", real=True)
    >>> _max_minus_argument(z - sp.Max(0, z) - sp.log(2))
    -Max(0, -z) - log(2)
    """
    def rewrite(add: sp.Add) -> sp.Expr:
        for term in add.args:
            k, m = term.as_coeff_Mul()
            if not isinstance(m, sp.Max) or len(m.args) != 2:
                continue
            for a, b in (m.args, m.args[::-1]):
                partner = -k * a
                if partner in add.args:
                    others = [t for t in add.args if t is not term and t != partner]
                    return sp.Add(*others, k * sp.Max(0, b - a))
        return add
    return expr.replace(lambda e: isinstance(e, sp.Add), rewrite)


@dataclass(frozen=True)
class StableRule:
    """Replace ``pattern`` (with wildcard u) by ``replacement(u)``; ``note`` says why.

    With ``pattern=None`` the replacement is a whole-expression rewrite function.
    """

    name: str
    pattern: sp.Expr | None
    replacement: Callable[..., sp.Expr]
    note: str
    # "overflow": without it the value is inf/NaN where it is an ordinary number (every
    # use); "accuracy": it only saves digits, for forms the accuracy check measures.
    purpose: str = "overflow"


RULES: tuple[StableRule, ...] = (
    StableRule(
        "hyperbolic of a log", None, _hyperbolic_of_log,
        r"$\tanh(\log w)$ is evaluated as $(w^2-1)/(w^2+1)$ (and $\sinh$, $\cosh$ of "
        r"$\log w$ as $(w \mp 1/w)/2$): rational in $w$, they go through one exponential "
        r"without cancelling (the slope of Mish, $z\tanh(\log(1+e^z))$, had "
        r"$1-\tanh^2$ cancel: 16.7 ulp off at $z = 11.4$).",
        "accuracy",
    ),
    StableRule(
        "softplus", sp.log(1 + sp.exp(_u)),
        lambda u: sp.Max(u, 0) + sp.log(1 + sp.exp(-sp.Abs(u))),
        r"$\log(1+e^{u})$ is evaluated as $\max(u,0)+\log(1+e^{-|u|})$: the exponent is "
        r"never positive, so $e^{u}$ cannot overflow for large logits and no $\log 0$ "
        "appears for very negative ones.",
    ),
    StableRule(
        "logcosh", sp.log(sp.cosh(_u)),
        # proven branch by branch (`zero.every_branch_zero`); one relation, no And: a
        # Boolean node costs Numba minutes in large fused loss loops
        lambda u: sp.Piecewise((log1p(2 * sp.sinh(u / 2) ** 2), sp.Abs(u) < 16),
                               (sp.Abs(u) + sp.log(1 + sp.exp(-2 * sp.Abs(u))) - sp.log(2),
                                True)),
        r"$\log\cosh u$ is evaluated as $|u| + \log(1+e^{-2|u|}) - \log 2$ for "
        r"$|u| \ge 16$: $\cosh u$ itself overflows for $|u| > 710$; below, as "
        r"$\operatorname{log1p}(2\sinh^2(u/2))$, since $\cosh u = 1 + 2\sinh^2(u/2)$ and "
        r"both other forms cancel for small $|u|$.",
    ),
    StableRule(
        "logistic slope", None, _logistic_slope,
        r"$e^{u}/(1+e^{u})^2$ is evaluated as $1/(4\cosh^2(u/2))$: no $\infty/\infty$ "
        "for large |u|.",
    ),
    StableRule(
        "logistic ratio", None, _logistic_ratio,
        r"$e^{mu}/(1+e^{u})^{n}$ ($0<m\le n$) is evaluated as "
        r"$(1+e^{-u})^{-m}(1+e^{u})^{m-n}$: no $\infty/\infty$ for large $u$, and no "
        r"$e^{u}(1-\tanh(u/2))$ cancellation either.",
    ),
    StableRule(
        "exponential product", None, _exp_products,
        r"$e^{a}e^{b}$ is evaluated as $e^{a+b}$: one factor overflowing while the other "
        r"underflows gives $\infty\cdot 0$, the sum of the exponents does not.",
    ),
    StableRule(
        "log1p", None, _log1p,
        r"$\log(1+u)$ is evaluated as $\operatorname{log1p}(u)$: $1+u$ rounds $u$ away "
        r"when $|u|$ is below the precision (float32 $\log(1+e^{-20})$ would be 0).",
        "accuracy",
    ),
    StableRule(
        "expm1", None, _expm1,
        r"$e^{u}-1$ is evaluated as $\operatorname{expm1}(u)$: the difference cancels "
        r"for small $|u|$.",
        "accuracy",
    ),
    StableRule(
        "erfc", None, _erfc,
        r"$1 \pm \operatorname{erf}(u)$ is evaluated with $\operatorname{erfc}$: "
        r"$1+\operatorname{erf}(u)$ cancels for $u \ll 0$ (GELU at $z=-5$ was 4\% off "
        "in float32).",
        "accuracy",
    ),
    StableRule(
        "cosh minus one", None, _cosh_minus_one,
        r"$\cosh u - 1$ is evaluated as $2\sinh^2(u/2)$: the difference cancels for "
        r"small $|u|$.",
        "accuracy",
    ),
    StableRule(
        "cos pair", None, _cos_pair,
        r"$1 - \cos u$ and $1 + \cos u$ are evaluated as $2\sin^2(u/2)$ and "
        r"$2\cos^2(u/2)$: the sums cancel near $u = 0$ and $u = \pi$.",
        "accuracy",
    ),
    StableRule(
        "sqrt minus one", None, _sqrt_minus_one,
        r"$\sqrt{w} - 1$ is evaluated as $(w - 1)/(\sqrt{w} + 1)$ with $w - 1$ expanded: "
        r"the difference cancels where $w$ is near 1.",
        "accuracy",
    ),
    StableRule(
        "conjugate", None, _conjugate,
        r"$t + k\sqrt{w}$ with $k^2 w - t^2 = d$ a number is evaluated as "
        r"$d/(k\sqrt{w} - t)$ where the sum cancels ($t<0$ for $k>0$): Squareplus "
        r"$(z+\sqrt{z^2+4})/2$ returned 0 below $z = -10^8$ in float64.",
        "accuracy",
    ),
    StableRule(
        "ramp difference", None, _ramp_difference,
        r"$k\max(0,u) - k\max(0,u-c)$ ($c>0$) is evaluated as $k\min(c,\max(0,u))$: "
        r"the difference is $u - (u - c)$ for large $u$, 0 once $u - c$ rounds to $u$.",
        "accuracy",
    ),
    StableRule(
        "max minus its argument", None, _max_minus_argument,
        r"$k\max(a,b) - k a$ is evaluated as $k\max(0, b-a)$: the difference cancels "
        r"where $a$ is the larger (log-sigmoid as $z - \max(0,z) - \ldots$ returned 0 for "
        r"$z > 0$).",
        "accuracy",
    ),
    StableRule(
        "atan complement", None, _atan_complement,
        r"$\pi/2 \pm \arctan u$ is evaluated as $\mp\arctan(1/u)$ where it is small "
        r"($u<0$ resp. $u>0$): the sum cancels there (an arctan CDF returned 0 below "
        r"$z=-10^{16}$ in float64).",
        "accuracy",
    ),
    StableRule(
        "tanh logistic", None, _tanh_logistic,
        r"$1 \pm \tanh u$ is evaluated as $2/(1+e^{\mp 2u})$: the sum cancels once "
        r"$\tanh u$ is near $\mp 1$ (the logistic function via tanh returned 0 at "
        "$z=-20$ in float32).",
        "accuracy",
    ),
)

# For the loss from the logits: a summed, reported value, where lost digits below the
# loss's own size do not matter but inf/NaN does.
OVERFLOW_RULES = tuple(rule for rule in RULES if rule.purpose == "overflow")


def expand_logs(expr: sp.Expr, distribute: bool = True) -> sp.Expr:
    """log of a product/quotient/exp -> sum of logs (valid: every argument is positive
    wherever the naive loss is finite); log(exp(u)) -> u.

    With ``distribute`` products of sums are then multiplied out (losses read best that
    way: -y z + softplus(z)). exp(a + b) always stays one exponential: split into
    exp(a)*exp(b), either factor can overflow where the product is an ordinary number.
    """
    expr = expr.replace(lambda e: isinstance(e, sp.log),
                        lambda e: sp.log(sp.together(e.args[0])))
    expr = sp.expand_log(expr, force=True)
    return sp.expand(expr, power_exp=False) if distribute else expr


def log_near_one(expr: sp.Expr) -> sp.Expr:
    """``expr`` with its logs combined and each log(w) written log1p(w - 1), w - 1
    expanded: a proposal (the rules then apply to w - 1), for logs of numbers near 1.

    A shifted softplus log(e^z + 1) - log 2 is log1p(expm1(z)/2) this way (after the
    expm1 rule); expanded instead, max(z, 0) + log1p(e^-|z|) - log 2 cancels near 0.

    >>> z = sp.Symbol("z", real=True)
    >>> log_near_one(sp.log(sp.exp(z) + 1) - sp.log(2))
    log1p(exp(z)/2 - 1/2)
    """
    combined = sp.logcombine(expr, force=True)
    return combined.replace(lambda e: isinstance(e, sp.log),
                            lambda e: log1p(sp.expand(e.args[0] - 1)))


def stabilise(expr: sp.Expr, rules: tuple[StableRule, ...] = RULES, distribute: bool = True,
              expand: bool = True) -> tuple[sp.Expr, tuple[StableRule, ...]]:
    """``expr`` with log expansion and every applicable rule; returns (stable, rules used).

    Use ``distribute=False`` for derivatives and activations: multiplying out a
    denominator (1 + e^u)(1 + e^v) would re-create the e^u e^v the rules removed.
    ``expand=False`` applies the rules to the logs as written: expanding first can
    cancel (log(1 + e^-z) becomes log(e^z + 1) - z, then z - max(z, 0) - log1p(e^-|z|),
    which is 0 for every z > 0 where the exact log-sigmoid is -e^-z).
    """
    out = expand_logs(expr, distribute) if expand and expr.has(sp.log) else expr
    used = []
    for rule in rules:
        if rule.pattern is None:
            new = rule.replacement(out)
        else:
            new = out.replace(rule.pattern, lambda u, rule=rule: rule.replacement(u))
        if new != out:
            used.append(rule)
            out = new
    if used and distribute:
        # Products of sums only: (p - y)**2 multiplied out cancels for p close to y.
        out = sp.expand(out, power_exp=False, multinomial=False)
    return out, tuple(used)


def elementary(expr: sp.Basic) -> sp.Basic:
    """The special functions the rules introduce, written back in exp/log/erf.

    For proofs: log1p(u) = log(1 + u), expm1(u) = exp(u) - 1, erfc(u) = 1 - erf(u)
    are definitions, and the zero tests know exp, log and erf; tanh(log w) becomes
    (w^2 - 1)/(w^2 + 1) (`_hyperbolic_of_log`, sinh and cosh likewise); atan(1/u) becomes
    +-pi/2 - atan(u) where the sign of u is known (`_atan_of_reciprocal`); atanh(tanh u)
    and asinh(sinh u) become u for real u (SymPy keeps them; a derivative rewritten in the
    saved output a = f(z) holds them once f is substituted back for a).

    >>> u = sp.Symbol("u", real=True)
    >>> elementary(log1p(u) + expm1(u) + sp.erfc(u))
    exp(u) + log(u + 1) - erf(u)
    >>> elementary(sp.atanh(sp.tanh(sp.tanh(u))) + sp.asinh(sp.sinh(u)))
    u + tanh(u)
    """
    expr = _hyperbolic_of_log(expr)   # tanh(log w): rational in w, as the rule writes it
    if expr.has(sp.atanh, sp.asinh):
        expr = expr.replace(_inverse_of_its_function, lambda e: e.args[0].args[0])
    if not expr.has(log1p, expm1, sp.erfc, sp.atan):
        return expr
    return expr.replace(lambda e: isinstance(e, log1p), lambda e: sp.log(1 + e.args[0])) \
        .replace(lambda e: isinstance(e, expm1), lambda e: sp.exp(e.args[0]) - 1) \
        .replace(lambda e: isinstance(e, sp.erfc), lambda e: 1 - sp.erf(e.args[0])) \
        .replace(lambda e: isinstance(e, sp.atan), _atan_of_reciprocal)


_INVERSE_PAIRS = {sp.atanh: sp.tanh, sp.asinh: sp.sinh}   # g(f(u)) = u for every real u


def _inverse_of_its_function(e: sp.Basic) -> bool:
    """e is atanh(tanh(u)) or asinh(sinh(u)) with u real."""
    inner = type(e) in _INVERSE_PAIRS and e.args[0]
    return bool(inner) and type(inner) is _INVERSE_PAIRS[type(e)] \
        and inner.args[0].is_extended_real is True


def _atan_of_reciprocal(e: sp.atan) -> sp.Expr:
    """atan(1/u) = +-pi/2 - atan(u) where u's sign is known (the atan complement rule's
    form, written back for proofs: SymPy does not simplify atan(u) + atan(1/u)).

    >>> t = sp.Symbol("t", positive=True)
    >>> _atan_of_reciprocal(sp.atan(1 / (2*t))), _atan_of_reciprocal(sp.atan(t))
    (-atan(2*t) + pi/2, atan(t))
    """
    num, den = sp.fraction(e.args[0])
    if den == 1 or not num.is_number:
        return e
    u = den / num                        # atan(num/den) = atan(1/u)
    if u.is_positive:
        return sp.pi / 2 - sp.atan(u)
    if u.is_negative:
        return -sp.pi / 2 - sp.atan(u)
    return e
