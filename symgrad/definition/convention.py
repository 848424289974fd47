"""Differentiation with symgrad's subgradient convention at kinks.

Where a derivative does not exist (ReLU at 0, |x| at 0, a Piecewise seam)
symgrad uses *the derivative of the branch whose condition holds*, with the
conditions as written. The built-ins use strict inequalities (``z > 0``), so
at a kink the left branch wins: ReLU'(0) = 0, |x|'(0) = sign(0) = 0.

SymPy's ``Heaviside(x)`` defaults to 1/2 at 0; every Heaviside produced by
differentiation is rewritten to ``Heaviside(x, 0)`` so the printed formula,
the NumPy reference (``numpy.heaviside(x, 0)``) and the kernels agree.

A step or sign in the formula itself (``z*Heaviside(z)``, ``sign(z)*z**2``) gives
SymPy's derivative DiracDelta terms. They are zero wherever the step's argument is
not, so they are dropped: the derivative almost everywhere, as PyTorch and JAX give
for ``where``. At a jump of f itself (``Heaviside(z - 1)*z`` at z = 1) no derivative
exists and the gradient, like theirs, carries no impulse.

>>> import sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> differentiate(sp.Max(0, x), x)
Heaviside(x, 0)
>>> differentiate(sp.Abs(x), x)
sign(x)
>>> differentiate(x**2*sp.sign(x), x)
2*x*sign(x)
"""

from __future__ import annotations

import sympy as sp

from symgrad.definition.errors import NotDifferentiableError

HEAVISIDE_AT_ZERO = sp.Integer(0)


def with_heaviside_convention(expr: sp.Expr, keep: frozenset = frozenset()) -> sp.Expr:
    """Pin every ``Heaviside(x)`` (SymPy's default value 1/2 at 0) to ``Heaviside(x, 0)``.

    Heaviside terms listed in ``keep`` (written by the user) are left alone.
    """
    return expr.replace(
        lambda e: isinstance(e, sp.Heaviside) and e not in keep,
        lambda e: sp.Heaviside(e.args[0], HEAVISIDE_AT_ZERO),
    )


def without_impulses(expr: sp.Expr) -> sp.Expr:
    """``expr`` with every DiracDelta term set to 0 (zero wherever its argument is not).

    >>> x = sp.Symbol("x", real=True)
    >>> without_impulses(x*sp.DiracDelta(x - 1) + sp.Heaviside(x - 1))
    Heaviside(x - 1)
    """
    deltas = expr.atoms(sp.DiracDelta)
    return expr.xreplace(dict.fromkeys(deltas, sp.S.Zero)) if deltas else expr


def differentiate(expr: sp.Expr, var: sp.Symbol, where: str = "formula") -> sp.Expr:
    """``sympy.diff(expr, var)`` with the kink convention; error if SymPy cannot finish."""
    d = with_heaviside_convention(sp.diff(expr, var), frozenset(expr.atoms(sp.Heaviside)))
    d = without_impulses(d)
    if d.has(sp.Derivative, sp.Subs):
        raise NotDifferentiableError(
            f"{where}: SymPy cannot differentiate {expr} with respect to {var} "
            f"(result still contains an unevaluated derivative: {d})"
        )
    return d
