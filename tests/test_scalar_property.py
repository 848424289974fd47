"""Random scalar graphs: backward() agrees with SymPy's derivative of symbolic(root)."""

from __future__ import annotations

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.definition.convention import with_heaviside_convention
from symgrad.definition.scalar_ops import SCALAR_OPS
from symgrad.definition.value import ScalarDomainError, apply
from symgrad.derive.scalar import node_symbols, numeric_local_derivatives

OP_NAMES = SCALAR_OPS.names()
EXPONENTS = (2.0, 3.0, -1.0, 0.5)


def _evaluate(expr: sp.Expr, at: dict) -> float:
    return float(sp.N(expr.subs(at)))


@st.composite
def graphs(draw):
    """A random DAG over the registry's ops, with reused nodes; returns (root, leaves)."""
    n_leaves = draw(st.integers(2, 3))
    leaves = [sg.Value(draw(st.floats(-2, 2, allow_nan=False).filter(lambda v: abs(v) > 0.05)),
                       label=f"x{i}") for i in range(n_leaves)]
    pool = list(leaves)
    for _ in range(draw(st.integers(1, 6))):
        name = draw(st.sampled_from(OP_NAMES))
        op = SCALAR_OPS[name]
        operands = [draw(st.sampled_from(pool)) for _ in range(op.arity)]
        params = {p: draw(st.sampled_from(EXPONENTS)) for p in op.params}
        try:
            node = apply(name, *operands, **params)
            args = (*(x.data for x in operands), *node.params, node.data)
            [fn(*args) for fn in numeric_local_derivatives(op)]
        except (ScalarDomainError, ArithmeticError):
            continue  # log of a negative, x**0.5 at 0 (an infinite slope): not added
        pool.append(node)
    # Combine the last two nodes so earlier ones (and reuse) matter more often.
    root = pool[-1] + pool[-2] if len(pool) > n_leaves + 1 else pool[-1] * 1.5
    return root, leaves


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_backward_matches_symbolic_gradient(graph):
    root, leaves = graph
    root.backward()
    names = node_symbols(root)
    expr = sg.symbolic(root)
    at = {names[id(x)]: sp.Float(x.data, 17) for x in leaves if id(x) in names}
    for x in leaves:
        if id(x) not in names:  # a leaf the sampled ops never used
            assert x.grad == 0.0
            continue
        # At a kink (hypothesis likes equal leaves: relu(x1 - x0) at exactly 0) symgrad
        # takes the documented convention ReLU'(0) = 0, not SymPy's Heaviside(0) = 1/2.
        expected = _evaluate(with_heaviside_convention(sp.diff(expr, names[id(x)])), at)
        assert x.grad == pytest.approx(expected, rel=1e-6, abs=1e-9), (x.label, expr)


def _graph_with(op_name):
    a, b = sg.Value(0.7, label="a"), sg.Value(1.3, label="b")
    op = SCALAR_OPS[op_name]
    inner = a * b + a  # a reused, so the chain rule has to add up
    operands = [inner, b][: op.arity]
    params = {p: 3.0 for p in op.params}
    return apply(op_name, *operands, **params) * b, (a, b)


@pytest.mark.parametrize("op_name", OP_NAMES)
def test_grad_equals_sympy_diff_of_symbolic_for_every_op(op_name):
    root, leaves = _graph_with(op_name)
    expr = sg.symbolic(root)
    names = node_symbols(root)
    root.backward()
    for leaf in leaves:
        sym = names[id(leaf)]
        g = sg.grad(root, leaf)
        # SymPy's Heaviside(0) is 1/2; symgrad pins kinks to the documented convention.
        expected = with_heaviside_convention(sp.diff(expr, sym))
        assert sp.simplify((g - expected).rewrite(sp.exp)) == 0
        at = {names[id(x)]: x.data for x in leaves}
        assert leaf.grad == pytest.approx(_evaluate(g, at), rel=1e-9)


def test_backward_at_a_relu_kink_follows_the_convention():
    """Equal leaves put relu(x1 - x0) at exactly 0 (the case the property test met by
    chance): backward and the convention-pinned SymPy derivative agree, ReLU'(0) = 0."""
    x0, x1 = sg.Value(0.2221, label="x0"), sg.Value(0.2221, label="x1")
    root = apply("sin", apply("relu", x1 - x0)) + apply("relu", x1 - x0)
    root.backward()
    names = node_symbols(root)
    expr = sg.symbolic(root)
    at = {names[id(x)]: sp.Float(x.data, 17) for x in (x0, x1)}
    for x in (x0, x1):
        expected = _evaluate(with_heaviside_convention(sp.diff(expr, names[id(x)])), at)
        assert x.grad == expected == 0.0
