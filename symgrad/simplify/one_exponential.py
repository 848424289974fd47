"""Rewrite a formula of z through one exponential, t = e^(-|u|), per sign of u.

An elementwise formula built from exp, cosh, sinh and tanh of multiples of z costs one
vectorised exponential per distinct function in the kernel: Swish's slope as the
stable rules write it, z/(4 cosh^2(z/2)) + 1/(1 + e^-z), costs a cosh (two
exponentials) and an exp. Every such function of k*u (u = g*z, k an integer) is a
rational function of the single number t = e^(-|u|) in (0, 1]:

    e^(k u) = t^-k (u >= 0), t^k (u < 0);   cosh(k u) = (t^-k + t^k)/2;
    sinh(k u) = +-(t^-k - t^k)/2;           tanh(k u) = +-(1 - t^2k)/(1 + t^2k).

Per sign of u the formula becomes P(t, z)/Q(t, z) with polynomials P, Q (negative
powers of t cleared): nothing overflows, since t <= 1, and the kernel evaluates one
exponential, shared by both branches of the select. The rewrite only proposes: the
simplify stage measures it against the exact value like every other candidate form
(`symgrad.simplify.accuracy.choose`; cancellation in P or Q, e.g. 1 - t^2 near
u = 0, would fail there), and the plan proves the chosen form equal to the derived one.

>>> z = sp.Symbol("z", real=True)
>>> through_one_exponential(z / (4 * sp.cosh(z / 2)**2) + 1 / (1 + sp.exp(-z)), z)
Piecewise((((z + 1)*exp(-Abs(z)) + 1)/(1 + exp(-Abs(z)))**2, z >= 0), \
((z + 1 + exp(-Abs(z)))*exp(-Abs(z))/(1 + exp(-Abs(z)))**2, True))
>>> through_one_exponential(sp.exp(-z**2), z) is None     # not of multiples of z
True
"""

from __future__ import annotations

from functools import reduce
from math import gcd, lcm

import sympy as sp

_FAMILY = (sp.exp, sp.cosh, sp.sinh, sp.tanh)


def _multiple(arg: sp.Expr, z: sp.Symbol) -> sp.Rational | None:
    """c if ``arg`` is c*z for a nonzero rational c, else None."""
    c = sp.cancel(arg / z)
    return c if c.is_Rational and c != 0 else None


def _in_t(expr: sp.Expr, z: sp.Symbol, u_scale: sp.Rational, t: sp.Symbol,
          sign: int) -> sp.Expr:
    """``expr`` with every family function of k*u replaced by its rational form in t,
    for the sign of u = u_scale*z given (+1: u >= 0, -1: u < 0). k is an integer, or
    half of one for tanh (whose powers of t are 2k)."""
    def replace(f: sp.Function) -> sp.Expr:
        k = _multiple(f.args[0], z) / u_scale   # f's argument is k u
        s = sign * k                             # e^(k u) = t^(-sign k): u = sign |u|
        if isinstance(f, sp.exp):
            return t ** (-s)
        if isinstance(f, sp.cosh):
            return (t ** (-s) + t ** s) / 2
        if isinstance(f, sp.sinh):
            return (t ** (-s) - t ** s) / 2
        return (1 - t ** (2 * s)) / (1 + t ** (2 * s))   # tanh: (e^2ku - 1)/(e^2ku + 1)
    return expr.replace(lambda e: isinstance(e, _FAMILY), replace)


def _horner(expr: sp.Expr, t: sp.Symbol) -> sp.Expr:
    """Each factor of ``expr`` that is a polynomial of degree >= 2 in t, in Horner form."""
    def one(f: sp.Expr) -> sp.Expr:
        base, power = f.as_base_exp()
        if not base.is_polynomial(t):
            return f
        try:
            if sp.degree(base, t) >= 2:
                return sp.horner(sp.expand(base), wrt=t) ** power
        except sp.PolynomialError:
            # a coefficient holds z under a root (sqrt(z^2 + 1) beside tanh z), which
            # SymPy's default domain cannot take: the expression domain can
            poly = sp.Poly(sp.expand(base), t, domain=sp.EX)
            if poly.degree() >= 2:
                return sp.horner(poly) ** power
        return f
    return sp.Mul(*[one(f) for f in sp.Mul.make_args(expr)])


def through_one_exponential(expr: sp.Expr, z: sp.Symbol) -> sp.Expr | None:
    """``expr`` written through t = e^(-|u|), one Piecewise branch per sign; None if it
    holds a function other than exp/cosh/sinh/tanh of a rational multiple of ``z``, or
    none of them."""
    family = [f for f in expr.atoms(sp.Function) if isinstance(f, _FAMILY)]
    if not family or expr.has(sp.Piecewise, sp.Abs, sp.Max, sp.Min, sp.Heaviside):
        return None
    multiples = [_multiple(f.args[0], z) for f in family]
    if any(c is None for c in multiples):
        return None
    # tanh(c z) is a function of e^(2 c z): its step is 2c (tanh(z) -> t = e^(-2|z|))
    steps = [2 * c if isinstance(f, sp.tanh) else c for f, c in zip(family, multiples,
                                                                   strict=True)]
    t = sp.Dummy("t", positive=True)
    # u = g z with g the largest rational step dividing every multiple: each is k*g
    g = sp.Rational(reduce(gcd, [abs(c.p) for c in steps]), reduce(lcm, [c.q for c in steps]))
    branches = []
    for sign in (1, -1):
        in_t = _in_t(expr, z, g, t, sign)
        # A rational function of t and the symbols is left; any function remaining (log,
        # erf, a family function of a constant) is not this rewrite's business.
        if in_t.has(sp.Function):
            return None
        num, den = sp.fraction(sp.factor(sp.cancel(sp.together(in_t)), t))
        # Horner in t: t^2 written out would become a second exponential, e^(-2|u|)
        branch = _horner(num, t) / _horner(den, t)
        branches.append(branch.subs(t, sp.exp(-sp.Abs(g * z))))
    return sp.Piecewise((branches[0], z >= 0), (branches[1], True))
