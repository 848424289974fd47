"""The one whitelist of SymPy node types the code generators can translate.

Activations and losses are validated against it *when they are defined*, so a
formula using e.g. ``zeta`` or an undefined ``Function('f')`` is rejected at
once instead of failing inside a training kernel. The NumPy reference
(`symgrad.runtime.reference`) and the Numba code printer (`symgrad.codegen`)
both import `SUPPORTED_FUNCTIONS`; adding an entry here obliges them to print
it.

>>> import sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> unsupported_nodes(sp.tanh(x) + sp.exp(-x))
[]
>>> [type(n).__name__ for n in unsupported_nodes(sp.zeta(x))]
['zeta']
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.core.relational import Relational
from sympy.logic.boolalg import BooleanAtom, BooleanFunction

from symgrad.definition.errors import UnsupportedFunctionError

# Elementary functions with a direct NumPy / Numba (math module) counterpart.
SUPPORTED_FUNCTIONS: frozenset[type] = frozenset({
    sp.exp, sp.log, sp.tanh, sp.cosh, sp.sinh, sp.sin, sp.cos, sp.tan, sp.atan, sp.asin,
    sp.acos, sp.asinh, sp.acosh, sp.atanh,
    sp.erf, sp.erfc, sp.Abs, sp.Max, sp.Min, sp.Piecewise, sp.Heaviside, sp.sign,
})

# Structural node types (arithmetic, numbers, conditions) every printer handles.
STRUCTURAL: tuple[type, ...] = (
    sp.Symbol, sp.Number, sp.NumberSymbol, sp.Add, sp.Mul, sp.Pow,
    sp.functions.elementary.piecewise.ExprCondPair, Relational, BooleanAtom,
    sp.And, sp.Or, sp.Not, sp.Tuple,
)


def _erf(x):
    from scipy.special import erf  # imported on first use: SciPy costs ~0.3 s to import

    return erf(x)


def _erfc(x):
    from scipy.special import erfc

    return erfc(x)


# How every whitelisted function evaluates on NumPy arrays (used by sympy.lambdify in the
# reference evaluator and the proofs). SciPy supplies erf/erfc; Heaviside(x, h0) keeps
# the value at 0 that the expression carries (symgrad pins it to 0, see convention.py).
# NumPy is passed as the module object, not the string "numpy": for the string, lambdify
# runs ``from numpy import *``, whose lazy attributes import numpy.f2py (~0.2 s).
LAMBDIFY_MODULES: list = [{"Heaviside": lambda x, h0=0.0: np.heaviside(x, h0),
                           "erf": _erf, "erfc": _erfc}, np]


def unsupported_nodes(expr: sp.Basic) -> list[sp.Basic]:
    """Sub-expressions of ``expr`` whose type is outside the whitelist."""
    bad = []
    for node in sp.preorder_traversal(expr):
        if type(node) in SUPPORTED_FUNCTIONS:
            continue
        if isinstance(node, STRUCTURAL) and not isinstance(node, sp.Function):
            if isinstance(node, BooleanFunction) and type(node) not in (sp.And, sp.Or, sp.Not):
                bad.append(node)
            continue
        bad.append(node)
    return bad


def check_supported(expr: sp.Basic, where: str) -> None:
    """Raise `UnsupportedFunctionError` naming ``where`` if ``expr`` leaves the whitelist,
    or holds a Piecewise without a last ``(value, True)`` branch (undefined where no
    condition holds; it failed deep in the simplify stage, or at the first prediction)."""
    bad = unsupported_nodes(expr)
    if bad:
        names = sorted({type(n).__name__ for n in bad})
        allowed = ", ".join(sorted(f.__name__ for f in SUPPORTED_FUNCTIONS))
        raise UnsupportedFunctionError(
            f"{where}: uses {', '.join(names)} (in {bad[0]}), which the code printer cannot "
            f"translate; supported functions are {allowed} plus +, *, ** and comparisons"
        )
    for pw in sp.preorder_traversal(expr):
        if isinstance(pw, sp.Piecewise) and pw.args[-1].cond is not sp.true:
            branches = ", ".join(f"({value}, {cond})" for value, cond in pw.args)
            raise UnsupportedFunctionError(
                f"{where}: {pw} has no default branch, so it is undefined where none of its "
                f"conditions holds; end it with a branch (value, True), e.g. "
                f"Piecewise({branches}, (0, True))")
