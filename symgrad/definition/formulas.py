"""Building blocks for writing activations, losses and ops as SymPy formulas.

Everything here returns plain SymPy expressions: ``sigmoid(x)`` *is*
``1/(1 + exp(-x))``, not an opaque function with a hand-written derivative,
so SymPy differentiates the formula itself.

>>> x = var("x")
>>> sigmoid(x)
1/(1 + exp(-x))
>>> relu(x)
Max(0, x)
"""

from __future__ import annotations

import sympy as sp

# Canonical symbols shared by every stage (derive, render, codegen):
# z = pre-activation, a = activation output, p = prediction of the output
# layer, y = target. Declared real so SymPy may simplify |z|, conjugates, etc.
Z = sp.Symbol("z", real=True)
A = sp.Symbol("a", real=True)
P = sp.Symbol("p", real=True)
Y = sp.Symbol("y", real=True)


def var(name: str) -> sp.Symbol:
    """A real scalar variable for writing formulas.

    >>> var("x").is_real
    True
    """
    return sp.Symbol(name, real=True)


def sigmoid(x: sp.Expr) -> sp.Expr:
    """The logistic function 1 / (1 + e^-x), as a formula."""
    return 1 / (1 + sp.exp(-x))


def relu(x: sp.Expr) -> sp.Expr:
    """max(0, x), as a formula."""
    return sp.Max(0, x)


def softplus(x: sp.Expr) -> sp.Expr:
    """log(1 + e^x), as a formula."""
    return sp.log(1 + sp.exp(x))


# Re-export the elementary functions users need so `sg.log(...)` works.
exp = sp.exp
log = sp.log
tanh = sp.tanh
cosh = sp.cosh
sinh = sp.sinh
erf = sp.erf
sqrt = sp.sqrt
Abs = sp.Abs
Max = sp.Max
Min = sp.Min
Piecewise = sp.Piecewise
pi = sp.pi

__all__ = [
    "Z", "A", "P", "Y", "var", "sigmoid", "relu", "softplus",
    "exp", "log", "tanh", "cosh", "sinh", "erf", "sqrt", "Abs", "Max", "Min",
    "Piecewise", "pi",
]
