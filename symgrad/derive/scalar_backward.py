"""Reverse mode over a scalar `Value` graph: what ``Value.backward()`` runs.

Per op node, in reverse topological order (`symgrad.graph.scalar.backward_plan`),
the op's backward step (`symgrad.derive.scalar_steps`: SymPy's derivatives
printed as plain float arithmetic) adds ``upstream * local derivative`` to each
operand's ``grad``. Every grad is reset first, so calling it twice gives the
same result.

`Value` is defined in the definition stage, which imports no later stage, so
this module installs `backward` into it when imported (``import symgrad``
does): micrograd's ``value.backward()`` keeps working.

>>> from symgrad.definition.value import Value
>>> a, b = Value(3.0), Value(4.0)
>>> backward(a * b + a); (a.grad, b.grad)
(5.0, 3.0)
"""

from __future__ import annotations

from collections.abc import Callable
from math import isfinite, nan
from operator import attrgetter, is_

import sympy as sp

from symgrad.definition.scalar_ops import SCALAR_OPS, ScalarOp
from symgrad.definition.value import (
    ScalarDomainError,
    Value,
    describe,
    install_backward,
    operand_values,
)
from symgrad.derive.scalar import OUT, local_derivatives, numeric_local_derivatives
from symgrad.derive.scalar_steps import StepError, backward_step
from symgrad.graph.scalar import backward_plan, graph_order

__all__ = ["backward", "gradients"]


class _Steps(dict):
    """Op name -> compiled backward step, filled on first use from the registry."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, ScalarOp] = {}

    def __missing__(self, name: str) -> Callable[[Value], None]:
        op = SCALAR_OPS[name]  # UnknownOpError names the registered ops
        step = self[name] = backward_step(op)
        self.ops[name] = op
        return step

    def refresh(self) -> None:
        """Forget every step if a registry entry was replaced or removed since it was compiled."""
        # C-level map instead of a generator: this runs once per backward call.
        if not all(map(is_, map(SCALAR_OPS._ops.get, self.ops), self.ops.values())):
            self.clear()
            self.ops.clear()


_STEPS = _Steps()


def _zero(root: Value, ops: list[Value], leaves: list[Value]) -> None:
    for node in leaves:
        node.grad = 0.0
    for node in ops:
        node.grad = 0.0
    root.grad = 1.0


def _run(root: Value, ops: list[Value], leaves: list[Value]) -> None:
    """Zero every grad, seed ``root.grad = 1`` and run each op node's step in reverse order.

    The printed steps run first. Float arithmetic can fail (``0.0**-1``) or give
    inf/nan where the derivative is finite (``-o/x1`` can overflow only where
    it is truly huge, but a user's formula may not be so kind); then the pass is
    redone carefully, node by node (`_careful_step`). If anything fails, every
    grad of the graph is reset to 0 and the error explains it: a malformed
    graph as `graph_order` reports it (bad operand count, unknown op), a
    derivative that cannot be evaluated at this point as `ScalarDomainError`
    naming the node.
    """
    _zero(root, ops, leaves)
    steps = _STEPS
    node = root
    try:
        try:
            for node in reversed(ops):
                steps[node.op](node)
            fast = (all(map(isfinite, map(_GRAD, ops)))
                    and all(map(isfinite, map(_GRAD, leaves))))
        except (ArithmeticError, ValueError) as exc:
            if isinstance(exc, StepError):
                raise
            fast = False
        if not fast:
            _zero(root, ops, leaves)
            for node in reversed(ops):
                _careful_step(node)
    except Exception as exc:
        for n in ops:
            n.grad = 0.0
        for n in leaves:
            n.grad = 0.0
        graph_order(root)  # raises if the graph itself is malformed
        if isinstance(exc, ArithmeticError | ValueError) and not isinstance(exc, StepError):
            raise ScalarDomainError(
                f"backward: the derivative of {node.op} at node {describe(node)} (operands "
                f"{operand_values(node.operands)}) cannot be evaluated: {exc}; all grads of "
                "the graph were reset to 0"
            ) from None
        raise


_GRAD = attrgetter("grad")


def _careful_step(node: Value) -> None:
    """One node's step with every local derivative checked: float first, else `exact_locals`.

    Raises OverflowError when a finite local derivative times the node's finite
    grad leaves the float range (the gradient itself is too large).
    """
    if not isfinite(node.grad):
        raise OverflowError(f"its own gradient is {node.grad}")
    op = SCALAR_OPS[node.op]
    args = (*(x.data for x in node.operands), *node.params, node.data)
    try:
        locals_ = [float(fn(*args)) for fn in numeric_local_derivatives(op)]
        exact = not all(map(isfinite, locals_))
    except (ArithmeticError, ValueError):
        exact = True
    if exact:
        locals_ = exact_locals(node)
    for i, (x, local) in enumerate(zip(node.operands, locals_, strict=True)):
        contribution = node.grad * local
        if not isfinite(contribution):
            raise OverflowError(f"the gradient {node.grad!r} times d/dx{i} = {local!r} "
                                "overflows the float range")
        x.grad += contribution


def exact_locals(node: Value) -> list[float]:
    """The local derivatives of ``node`` evaluated by SymPy, for where float arithmetic fails.

    The printed step can fail where the derivative is finite: ``k*x**(k - 1)``
    at ``k = 0, x = 0`` divides by zero before the factor ``k`` makes it 0, and
    ``exp(x)/(1 + exp(x))`` overflows at ``x = 800`` though it is 1. Here the
    node's parameters go into the derivative first (so ``0*x**-1`` is 0), then
    its operands and output as exact numbers, and the value is evaluated to 30
    digits. A derivative that is infinite, undefined or beyond the float range
    there raises ArithmeticError.

    >>> x = Value(0.0); exact_locals(x ** 0)
    [0.0]
    """
    op = SCALAR_OPS[node.op]
    # Every float is an exact rational: parameters, operands and output alike.
    values = {s: sp.Rational(v) for s, v in zip(op.param_symbols, node.params, strict=True)}
    values.update({s: sp.Rational(x.data) for s, x in zip(op.operands, node.operands,
                                                          strict=True)})
    values[OUT] = sp.Rational(node.data)
    locals_ = []
    for d in local_derivatives(op):
        value = d.used.subs(values).evalf(30)
        number = float(value) if value.is_number and value.is_extended_real else nan
        if not isfinite(number):
            raise ArithmeticError(
                f"d/dx{d.wrt} = {d.used} is {value.evalf(4)} there, not a finite float")
        locals_.append(number)
    return locals_


def backward(root: Value) -> None:
    """Set ``.grad`` of every node in ``root``'s graph to d(root)/d(node): ``Value.backward``."""
    plan = backward_plan(root)
    _STEPS.refresh()
    _run(root, *plan)


def gradients(root: Value) -> list[tuple[Value, float]]:
    """d(root)/d(node) for every node of the graph (in `graph_order`), without touching ``.grad``.

    The same computation as `Value.backward`; the nodes' own ``grad`` values
    are put back afterwards.
    """
    ops, leaves = backward_plan(root)
    _STEPS.refresh()
    everything = ops + leaves
    saved = [n.grad for n in everything]
    try:
        _run(root, ops, leaves)
        grads = {id(n): n.grad for n in everything}
    finally:
        for node, grad in zip(everything, saved, strict=True):
            node.grad = grad
    return [(n, grads[id(n)]) for n in graph_order(root)]


install_backward(backward)
