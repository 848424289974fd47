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
from operator import is_

from symgrad.definition.scalar_ops import SCALAR_OPS, ScalarOp
from symgrad.definition.value import (
    ScalarDomainError,
    Value,
    describe,
    install_backward,
    operand_values,
)
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


def _run(root: Value, ops: list[Value], leaves: list[Value]) -> None:
    """Zero every grad, seed ``root.grad = 1`` and run each op node's step in reverse order.

    If anything fails, every grad of the graph is reset to 0 and the error
    explains it: a malformed graph as `graph_order` reports it (bad operand
    count, unknown op), a derivative that cannot be evaluated at this point
    (e.g. overflow) as `ScalarDomainError` naming the node.
    """
    for node in leaves:
        node.grad = 0.0
    for node in ops:
        node.grad = 0.0
    root.grad = 1.0
    steps = _STEPS
    node = root
    try:
        for node in reversed(ops):
            steps[node.op](node)
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
