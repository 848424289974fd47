"""Local derivatives of the scalar ops and symbolic access to a `Value` graph.

For every registry op SymPy differentiates the op's formula with respect to
each operand, once; the result is simplified (bounded: small expressions
only) and rewritten in the op's own output ``o`` when that form is shorter --
this is how ``1 - o**2`` for tanh and ``o*(1 - o)`` for the sigmoid *emerge*
(by substituting ``o`` for the formula, or by solving ``o = f(x)`` for a
sub-expression), never by looking a name up; for ops of several operands only
the substitution is tried (``-o/x1`` for a quotient). Each rewrite is recorded
as an `Identity` for the prove stage.

>>> from symgrad.definition.scalar_ops import SCALAR_OPS
>>> [d.used for d in local_derivatives(SCALAR_OPS["mul"])]
[x1, x0]
>>> local_derivatives(SCALAR_OPS["tanh"])[0].used
1 - o**2
>>> local_derivatives(SCALAR_OPS["sigmoid"])[0].used
o*(1 - o)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import sympy as sp

from symgrad.definition.convention import differentiate
from symgrad.definition.scalar_ops import ScalarOp, param_symbol
from symgrad.definition.value import Value, describe, op_of
from symgrad.derive.plan import Identity
from symgrad.graph.scalar import graph_order

# The op node's own output value, as the backward pass sees it (micrograd's
# ``out.data``). Local derivatives may be written in it.
OUT = sp.Symbol("o", real=True)

# Bound on the SymPy work for one local derivative: larger user formulas are
# kept as SymPy returned them instead of risking a slow `simplify`.
_MAX_OPS_TO_SIMPLIFY = 60


@dataclass(frozen=True)
class LocalDerivative:
    """d(op)/d(operand ``wrt``) as derived by SymPy.

    ``raw`` is ``sympy.diff(formula, x_wrt)`` as returned; ``simplified`` the
    shortest of raw and its simplification (in operands/params); ``in_output``
    the same derivative in terms of the output ``o`` when that is shorter
    (else None). ``identity`` records ``raw == used`` with ``o -> formula``.
    """

    op: str
    wrt: int
    raw: sp.Expr
    simplified: sp.Expr
    in_output: sp.Expr | None
    identity: Identity

    @property
    def used(self) -> sp.Expr:
        """The form backward() evaluates: in ``o`` when found, else in the operands."""
        return self.in_output if self.in_output is not None else self.simplified


def _absorb_sign(expr: sp.Expr) -> sp.Expr:
    # -o*(o - 1) reads better as o*(1 - o): move a leading minus into one Add factor.
    if isinstance(expr, sp.Mul) and expr.could_extract_minus_sign():
        coeff, factors = expr.as_coeff_mul()
        for i, f in enumerate(factors):
            if isinstance(f, sp.Add):
                flipped = (*factors[:i], -f, *factors[i + 1:])
                return sp.Mul(-coeff, *flipped)
    return expr


def _cost(expr: sp.Expr) -> tuple[int, int]:
    # Fewer symbols under a fraction bar first (k*x**k/x fails at x = 0 where
    # k*x**(k - 1) does not), then fewer operations.
    return len(sp.denom(sp.together(expr)).free_symbols), sp.count_ops(expr)


def _shortest(*candidates: sp.Expr) -> sp.Expr:
    # First candidate wins ties, so SymPy's own output is kept unless beaten.
    return min(candidates, key=_cost)


def _simplify_bounded(expr: sp.Expr) -> sp.Expr:
    if sp.count_ops(expr) > _MAX_OPS_TO_SIMPLIFY:
        return expr
    return _shortest(expr, sp.powsimp(sp.simplify(expr)))


def in_terms_of_output(
    deriv: sp.Expr, formula: sp.Expr, x: sp.Symbol, out: sp.Symbol = OUT
) -> sp.Expr | None:
    """Rewrite ``deriv`` (in ``x``) in the output ``o = formula`` alone, if shorter.

    First substitute ``o`` for the formula itself; else solve ``o = formula``
    for each sub-expression ``u`` of the formula (e.g. ``u = exp(-x)``) and
    substitute the solution. Accept only an ``x``-free result with fewer
    operations than ``deriv``.

    >>> x = sp.Symbol("x", real=True)
    >>> in_terms_of_output(sp.exp(x), sp.exp(x), x)
    o
    >>> in_terms_of_output(1 / x, sp.log(x), x) is None   # exp(-o) is not shorter
    True
    """
    if x not in deriv.free_symbols or sp.count_ops(formula) > _MAX_OPS_TO_SIMPLIFY:
        return None
    candidates = []
    direct = deriv.subs(formula, out)
    if x not in direct.free_symbols:
        candidates.append(direct)
    else:
        t = sp.Dummy("t")
        for u in sp.preorder_traversal(formula):
            if u == formula or not u.has(x):
                continue
            g = formula.subs(u, t)
            if g.has(x):
                continue
            try:
                sols = sp.solve(sp.Eq(out, g), t)
            except (NotImplementedError, ValueError, TypeError):
                continue
            if len(sols) != 1:
                continue
            cand = sp.factor(sp.simplify(deriv.subs(u, sols[0])))
            if x not in cand.free_symbols:
                candidates.append(_absorb_sign(cand))
                break
    if not candidates:
        return None
    best = _shortest(*candidates)
    return best if sp.count_ops(best) < sp.count_ops(deriv) else None


def _with_output_factor(deriv: sp.Expr, formula: sp.Expr, out: sp.Symbol = OUT) -> sp.Expr | None:
    """``deriv`` with the op's output ``o`` in place of the whole formula, if that is cheaper.

    For an op of several operands the operands stay (d(x0/x1)/dx1 = -o/x1): the
    gain is one operation less and, more than that, no intermediate that can
    underflow or overflow where the derivative itself is finite (x1**2 is 0 for
    |x1| < 1e-154, o/x1 is not).

    >>> x0, x1 = sp.symbols("x0 x1", real=True)
    >>> _with_output_factor(-x0 / x1**2, x0 / x1)
    -o/x1
    >>> _with_output_factor(x1, x0 * x1) is None
    True
    """
    direct = deriv.subs(formula, out)
    if direct == deriv or _cost(direct) >= _cost(deriv):
        return None
    return direct


@cache
def local_derivatives(op: ScalarOp) -> tuple[LocalDerivative, ...]:
    """SymPy's derivative of ``op.formula`` w.r.t. each operand (cached per op)."""
    out = []
    for i, x in enumerate(op.operands):
        raw = differentiate(op.formula, x, where=f"scalar op {op.name!r}")
        simplified = _simplify_bounded(raw)
        in_output = None
        if op.arity == 1 and not op.params:
            in_output = in_terms_of_output(simplified, op.formula, x)
        elif not op.params:
            in_output = _with_output_factor(simplified, op.formula)
        used = in_output if in_output is not None else simplified
        identity = Identity(
            name=f"{op.name}: d/d{x}",
            raw=raw,
            simplified=used,
            substitutions={OUT: op.formula} if in_output is not None else {},
            # Ops with a domain condition (log, div, real pow) hold for positive
            # operands, so the numeric proof samples those there.
            domain={} if op.domain is None else {s: (0.1, 3.0) for s in op.operands},
            assumptions=str(op.domain) if op.domain is not None else "",
        )
        out.append(LocalDerivative(op.name, i, raw, simplified, in_output, identity))
    return tuple(out)


def _numeric(expr: sp.Expr) -> sp.Expr:
    # math-module lambdify has no Heaviside/Max; their Piecewise forms print as
    # plain conditionals (Heaviside(x, 0): the kink convention of definition.convention).
    if expr.has(sp.Heaviside, sp.Max, sp.Min, sp.Abs, sp.sign):
        return expr.rewrite(sp.Piecewise)
    return expr


@cache
def numeric_local_derivatives(op: ScalarOp) -> tuple[Callable[..., float], ...]:
    """One fast function per operand: ``f(*operand_data, *params, out_data)``.

    >>> from symgrad.definition.scalar_ops import SCALAR_OPS
    >>> d_tanh, = numeric_local_derivatives(SCALAR_OPS["tanh"])
    >>> round(d_tanh(0.8813735870195432, 0.7071067811865476), 6)  # 1 - o**2
    0.5
    """
    args = [*op.operands, *op.param_symbols, OUT]
    return tuple(
        sp.lambdify(args, _numeric(d.used), modules="math") for d in local_derivatives(op)
    )


# -- symbolic access to a graph ---------------------------------------------

def _number(value: float) -> sp.Expr:
    # Short decimals become exact rationals (2.0 -> 2, 0.5 -> 1/2); long ones stay floats.
    if float(value).is_integer():
        return sp.Integer(int(value))
    text = repr(float(value))
    return sp.Rational(text) if len(text) <= 6 else sp.Float(value)


def node_symbols(root: Value) -> dict[int, sp.Symbol]:
    """A symbol for every non-constant node of the graph, keyed by ``id(node)``.

    Labelled nodes use their label (a repeated label gets ``_2``, ``_3``, ...);
    unlabelled ones get ``v_1``, ``v_2``, ... in topological order, so the
    names are stable for a given graph.
    """
    order = graph_order(root)
    # Every label is reserved up front, so a generated name ("a_2" for the
    # second "a", "v_3" for an unlabelled node) never lands on a label the
    # user chose for a different node: two nodes sharing a symbol would
    # silently merge in every derivative.
    used = {n.label for n in order if n.label and not n._const}
    names: dict[int, sp.Symbol] = {}
    first: set[str] = set()
    auto = 0
    for n in order:
        if n._const:
            continue
        if n.label and n.label not in first:
            first.add(n.label)
            name = n.label
        elif n.label:
            k = 2
            while f"{n.label}_{k}" in used:
                k += 1
            name = f"{n.label}_{k}"
        else:
            auto += 1
            while f"v_{auto}" in used:
                auto += 1
            name = f"v_{auto}"
        used.add(name)
        names[id(n)] = sp.Symbol(name, real=True)
    return names


class GraphTooDeepError(ValueError):
    """A scalar graph too deep for SymPy's recursive algorithms (a clear RecursionError)."""


def depth(root: Value) -> int:
    """The number of ops on the longest path from a leaf to ``root``.

    >>> x = Value(0.5)
    >>> depth(x.sin().sin() + x)
    3
    """
    deepest: dict[int, int] = {}
    for n in graph_order(root):
        deepest[id(n)] = 1 + max(deepest[id(c)] for c in n.operands) if n.operands else 0
    return deepest[id(root)]


@contextmanager
def sympy_depth_guard(root: Value, what: str) -> Iterator[None]:
    """Turn SymPy's RecursionError on a deep graph into a `GraphTooDeepError` that says why.

    SymPy builds, compares and simplifies expressions recursively, a few Python
    frames per level of nesting, so a chain of a few hundred ops exceeds
    Python's recursion limit. The numeric paths are iterative and have no limit.
    """
    try:
        yield
    except (RecursionError, GraphTooDeepError):
        # An inner guard (symbolic inside grad) converted it already: the outer
        # name is the one the user called.
        raise GraphTooDeepError(
            f"{what}: the graph of {describe(root)} is {depth(root)} ops deep, and SymPy's "
            f"recursive algorithms exceed Python's recursion limit ({sys.getrecursionlimit()}) "
            "on an expression nested that deep. Value.backward() and derivation(steps='chain' "
            "or 'limit') work at any depth; for a symbolic form, stop at an intermediate node: "
            "symbolic(y, cut=(mid,)) or grad(y, mid)"
        ) from None


def symbolic(node: Value, cut: tuple[Value, ...] = ()) -> sp.Expr:
    """The SymPy expression of ``node`` in its leaf symbols (labels as names).

    Intermediate nodes expand to their leaves, unless listed in ``cut`` (then
    they stand as their own symbol). Constants appear as numbers.

    >>> a, b, c, f = (Value(v, label=n) for v, n in [(2, "a"), (-3, "b"), (10, "c"), (-2, "f")])
    >>> e = a * b; e.label = "e"
    >>> symbolic((e + c) * f)
    f*(a*b + c)
    """
    names = node_symbols(node)
    cut_ids = {id(c) for c in cut}
    exprs: dict[int, sp.Expr] = {}
    with sympy_depth_guard(node, "symbolic"):
        for n in graph_order(node, stop=cut):
            if n._const:
                exprs[id(n)] = _number(n.data)
            elif n.op is None or id(n) in cut_ids:
                exprs[id(n)] = names[id(n)]
            else:
                op = op_of(n)
                mapping = {x: exprs[id(c)] for x, c in zip(op.operands, n.operands, strict=True)}
                for p, v in zip(op.params, n.params, strict=True):
                    mapping[param_symbol(p)] = _number(v)
                exprs[id(n)] = op.formula.xreplace(mapping)
    return exprs[id(node)]
