"""How many operations one element of a formula costs, counted by kind.

`sympy.count_ops` gives one number; a student comparing the textbook form of a
derivative with the simplified one also wants to see *which* operations went:
an exp or a log costs tens of multiplications, so transcendental functions are
counted apart from arithmetic. Counts are of the expression as written (every
occurrence counts; no common-subexpression sharing), which is how the two
forms are written side by side in the printout.

>>> z = sp.Symbol("z", real=True)
>>> c = op_counts(sp.exp(-z) / (1 + sp.exp(-z))**2)
>>> c.total, c.transcendental, c.by_kind["exp"], c.by_kind["div"]
(7, 2, 2, 1)
>>> op_counts(z * (1 - z)).total
2
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

# sympy.count_ops(visual=True) names each operation; grouped into the kinds shown.
_ARITHMETIC = {"ADD": "add/sub", "SUB": "add/sub", "NEG": "neg", "MUL": "mul", "DIV": "div",
               "POW": "pow"}
_BRANCH = {"MAX", "MIN", "ABS", "SIGN", "HEAVISIDE", "PIECEWISE", "GT", "LT", "GE", "LE",
           "STRICTGREATERTHAN", "STRICTLESSTHAN", "GREATERTHAN", "LESSTHAN", "EQ", "NE",
           "AND", "OR", "NOT", "ITE"}
_EXP_LOG = {"EXP": "exp", "LOG": "log"}
KINDS = ("add/sub", "neg", "mul", "div", "pow", "exp", "log", "other transcendental", "branch")


@dataclass(frozen=True)
class OpCount:
    """Operations of one formula: ``total`` (= `sympy.count_ops`) and a count per kind."""

    total: int
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def transcendental(self) -> int:
        """exp, log and every other special function (tanh, erf, cosh, ...)."""
        return sum(self.by_kind.get(k, 0) for k in ("exp", "log", "other transcendental"))

    @property
    def arithmetic(self) -> int:
        """Additions, negations, multiplications, divisions, powers and branches."""
        return self.total - self.transcendental

    def summary(self) -> str:
        """Plain words: ``7 operations (2 exp, 1 div, ...)``.

        >>> OpCount(3, {"mul": 2, "add/sub": 1}).summary()
        '3 operations: 1 add/sub, 2 mul'
        """
        parts = [f"{self.by_kind[k]} {k}" for k in KINDS if self.by_kind.get(k)]
        noun = "operation" if self.total == 1 else "operations"
        return f"{self.total} {noun}" + (": " + ", ".join(parts) if parts else "")


def _kind(name: str) -> str:
    if name in _ARITHMETIC:
        return _ARITHMETIC[name]
    if name in _EXP_LOG:
        return _EXP_LOG[name]
    if name in _BRANCH:
        return "branch"
    return "other transcendental"


def op_counts(expr: sp.Basic) -> OpCount:
    """Count the operations of ``expr`` by kind; a matrix counts all its entries."""
    if isinstance(expr, sp.MatrixBase):
        counts = [op_counts(e) for e in expr]
        kinds: dict[str, int] = {}
        for c in counts:
            for k, v in c.by_kind.items():
                kinds[k] = kinds.get(k, 0) + v
        return OpCount(sum(c.total for c in counts), kinds)
    visual = sp.count_ops(expr, visual=True)
    by_kind: dict[str, int] = {}
    for term in sp.Add.make_args(visual):
        coeff, sym = term.as_coeff_Mul()
        if not isinstance(sym, sp.Symbol):
            continue   # 0: no operations
        kind = _kind(sym.name)
        by_kind[kind] = by_kind.get(kind, 0) + int(coeff)
    return OpCount(int(sp.count_ops(expr)), by_kind)


# What one vectorised evaluation of each function costs in a kernel (`symgrad.codegen.
# vecmath`), in exponentials: exp, expm1, log, log1p and tanh are one range reduction
# and one polynomial each; cosh and sinh take two exponentials; erf and erfc an
# exponential and a long polynomial; asinh, acosh and atanh are one log1p (and a square
# root); asin and acos one atan. Selects (Abs, Max, Min, Heaviside, sign) are free.
_EVALUATION_COST = {"exp": 1, "expm1": 1, "log": 1, "log1p": 1, "tanh": 1,
                    "asinh": 1, "acosh": 1, "atanh": 1}
_FREE = {"Abs", "Max", "Min", "Heaviside", "sign", "Piecewise"}


def evaluation_cost(expr: sp.Basic) -> int:
    """The special functions a kernel evaluates for ``expr``, weighted by their cost.

    A function the formula repeats with the same argument counts once: the kernels'
    compiler computes it once (common subexpressions of inlined code).

    >>> z = sp.Symbol("z", real=True)
    >>> evaluation_cost(z / (4 * sp.cosh(z / 2)**2) + 1 / (1 + sp.exp(-z)))
    3
    >>> evaluation_cost(sp.exp(-sp.Abs(z)) / (1 + sp.exp(-sp.Abs(z)))**2)
    1
    """
    expr = sp.sympify(expr)
    # a Taylor branch (`series.TaylorPolynomial`) calls nothing; its degree/2 multiply-adds
    # cost about as much as one exponential per 32 degrees
    branches = [f for f in expr.atoms(sp.Function) if getattr(f, "polynomial_branch", False)]
    polynomial = sum(int(f.args[2]) // 32 for f in branches)
    expr = expr.xreplace({f: sp.Integer(0) for f in branches})
    funcs = {f for f in expr.atoms(sp.Function) if type(f).__name__ not in _FREE}
    return polynomial + sum(_EVALUATION_COST.get(type(f).__name__, 2) for f in funcs)
