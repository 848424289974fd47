"""The graph of a scalar `Value`: its nodes in a topological order, validated on the way.

Two walks. `graph_order` checks every node (a `Value` with finite real data, made a float,
a registered op, the op's number of operands) and names the culprit of a
tampered graph in a `MalformedGraphError`; derivations and drawings use it.
`backward_plan` is the hot path of ``Value.backward``: a node is always created
after its operands, so its creation number (``Value._seq``) sorts the op nodes
topologically after one visit each; anything unexpected falls back to
`graph_order`.

>>> from symgrad.definition.value import Value
>>> a = Value(2.0, label="a"); b = Value(-3.0, label="b")
>>> [n.label or n.op for n in graph_order(a * b + a)]
['a', 'b', 'mul', 'add']
>>> ops, leaves = backward_plan(a * b + a)
>>> [n.op for n in ops], [n.label for n in leaves]
(['mul', 'add'], ['a', 'b'])
"""

from __future__ import annotations

import math
from collections.abc import Collection

from symgrad.definition.scalar_ops import SCALAR_OPS
from symgrad.definition.value import MalformedGraphError, Value, checked_data, describe
from symgrad.graph.topo import topological_order

__all__ = ["graph_order", "backward_plan"]


def _checked_children(node: object) -> tuple[Value, ...]:
    # The children function of the backward walk validates as it goes, so a
    # tampered graph fails with the node's name before any grad is written.
    if type(node) is not Value and not isinstance(node, Value):
        raise MalformedGraphError(f"graph node {node!r} is a {type(node).__name__}, not a Value")
    data = node.data
    if type(data) is not float or not math.isfinite(data):
        # micrograd code sets ``p.data = 3`` or a NumPy scalar after construction;
        # what the constructor accepts is accepted here too, as a float.
        try:
            node.data = checked_data(data, node.label)
        except (TypeError, ValueError):
            raise MalformedGraphError(
                f"node {describe(node)} has data {data!r}; need a finite real number") from None
    if node.op is None:
        return ()
    op = SCALAR_OPS._ops.get(node.op) or SCALAR_OPS[node.op]  # fast path, else UnknownOpError
    if len(node.operands) != op.arity:
        raise MalformedGraphError(
            f"node {describe(node)} (op {node.op}) has {len(node.operands)} operands, "
            f"expected {op.arity}"
        )
    for i, child in enumerate(node.operands):
        if type(child) is not Value and not isinstance(child, Value):
            raise MalformedGraphError(
                f"node {describe(node)} (op {node.op}, data {node.data!r}): operand {i} is "
                f"{child!r} ({type(child).__name__}), not a Value"
            )
    return node.operands


def graph_order(root: Value, stop: Collection[Value] = ()) -> list[Value]:
    """All nodes of ``root``'s graph, operands before the nodes that use them (validated).

    Nodes in ``stop`` count as leaves: the walk does not go below them.
    """
    if not isinstance(root, Value):
        raise MalformedGraphError(f"backward/derivation needs a Value root, got {root!r}")
    if stop:
        stop_ids = {id(n) for n in stop}
        return topological_order(
            root, lambda n: () if id(n) in stop_ids else _checked_children(n))
    return topological_order(root, _checked_children)


_SEQ = Value._seq.__get__  # as a sort key it also refuses anything that is not a Value


def _creation_order(root: Value) -> tuple[list[Value], list[Value]] | None:
    """(op nodes by ascending creation number, leaves) of ``root``'s graph, or None.

    The hot path of ``backward``: one visit per node, then one sort of a nearly
    sorted list, instead of a post-order walk. None when an operand was not
    created before its node (only a tampered graph, cycles included), a
    node's data is not a finite float, or anything else is unexpected: the
    caller then runs the per-node checks of `graph_order`, which name the
    culprit. The op and arity of each node are checked by its step (an
    unknown op has no step; a step unpacks exactly its op's operands).
    """
    data = root.data
    if data.__class__ is not float or data - data:  # x - x is nan for inf and nan
        return None
    if root.op is None:
        return [], [root]
    ops: list[Value] = []
    leaves: list[Value] = []
    stack = [root]
    seen = {root}
    pop, push, mark = stack.pop, stack.append, seen.add
    keep_op, keep_leaf = ops.append, leaves.append
    try:
        while stack:
            node = pop()
            keep_op(node)
            seq = node._seq
            for child in node.operands:
                if child not in seen:
                    data = child.data
                    if child._seq >= seq or data.__class__ is not float or data - data:
                        return None
                    mark(child)
                    if child.op is None:
                        keep_leaf(child)
                    else:
                        push(child)
        ops.sort(key=_SEQ)
    except Exception:  # noqa: BLE001 - any surprise: the checked path explains it
        return None
    return ops, leaves


def backward_plan(root: Value) -> tuple[list[Value], list[Value]]:
    """(op nodes in a topological order, leaves) of ``root``'s graph."""
    if not isinstance(root, Value):
        raise MalformedGraphError(f"backward/derivation needs a Value root, got {root!r}")
    plan = _creation_order(root)
    if plan is None:
        # The per-node checks raise MalformedGraphError (or UnknownOpError) naming
        # the node; a graph that passes them (a DAG whose operands were swapped
        # for later nodes) gets its depth-first order instead.
        order = graph_order(root)
        plan = [n for n in order if n.op is not None], [n for n in order if n.op is None]
    return plan
