"""The simplified symbolic derivative of a scalar `Value` graph: ``sg.grad``.

The derive stage gives the expression (`symgrad.derive.scalar.symbolic`) and its
derivative; here SymPy's ``simplify`` shortens it, within a time budget: its
time roughly triples with each nested tanh (8 deep: 13 s, 12 deep: minutes), so
it gets the budget of a compile entry and, past it, the derivative is returned
as differentiated (equal, only longer).
"""

from __future__ import annotations

import sympy as sp

from symgrad.definition.convention import differentiate
from symgrad.definition.value import Value
from symgrad.derive.scalar import node_symbols, symbolic, sympy_depth_guard
from symgrad.graph.scalar import graph_order
from symgrad.simplify.zero import run_within_budget, symbolic_budget

__all__ = ["grad"]


def grad(node: Value, wrt: Value) -> sp.Expr:
    """The simplified symbolic derivative d(node)/d(wrt).

    Simplification gets `symbolic_budget` seconds (4 s, or
    $SYMGRAD_SYMBOLIC_BUDGET); a derivative too large for it is returned
    unsimplified, equal to the simplified one.

    ``wrt`` may be a leaf or an intermediate node of ``node``'s graph (then it
    is held as a symbol, which is what backpropagation's ``wrt.grad`` means).

    >>> a, b, c, f = (Value(v, label=n) for v, n in [(2, "a"), (-3, "b"), (10, "c"), (-2, "f")])
    >>> L = (a * b + c) * f
    >>> grad(L, a)
    b*f
    """
    order = graph_order(node)
    if not any(n is wrt for n in order):
        raise ValueError(
            f"grad: {wrt!r} is not part of the graph of {node!r}; "
            "pass a node the expression was built from"
        )
    if wrt._const:
        raise ValueError(f"grad: {wrt!r} is a constant (a plain number in the expression)")
    sym = node_symbols(node)[id(wrt)]
    with sympy_depth_guard(node, "grad"):
        expr = symbolic(node, cut=() if wrt.op is None else (wrt,))
        raw = differentiate(expr, sym)
        got = run_within_budget(lambda: sp.simplify(raw), symbolic_budget())
    return got.result if got.completed else raw
