"""`Value`: a micrograd-compatible scalar whose local derivatives SymPy derives.

Each op node records the registry op it came from (`symgrad.definition.scalar_ops`)
and its operands; `backward` runs, per op node, a step generated from the
derivatives SymPy derived from the op's formula (`symgrad.derive.scalar_steps`:
plain float arithmetic, compiled once per op), in reverse topological order.
The order is found without recursion, so deep graphs work: every node gets a
creation number, and since a node is always created after its operands, the
nodes sorted by that number are a topological order (checked as it is built;
a tampered graph falls back to the depth-first order of `graph_order`).

>>> a = Value(2.0, label="a"); b = Value(-3.0, label="b")
>>> L = (a * b + 10) * -2
>>> L.backward()
>>> a.grad, b.grad
(6.0, -4.0)
>>> L.backward(); a.grad          # gradients are reset, not accumulated across calls
6.0
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from numbers import Real
from operator import is_

from symgrad.definition.latex_input import check_value_label
from symgrad.definition.scalar_ops import SCALAR_OPS, ScalarOp
from symgrad.graph.topo import topological_order

# Creation numbers: a node is numbered after its operands, so ascending numbers
# are a topological order (see `_creation_order`).
_next_seq = itertools.count().__next__


class ScalarDomainError(ValueError):
    """An op applied outside its domain (log of a non-positive value, x/0, ...)."""


class MalformedGraphError(TypeError):
    """A graph reached by `backward` holds something that is not a well-formed `Value`."""


def _describe(node: Value) -> str:
    # How error messages name a node: its label, else its op and value.
    if node.label:
        return repr(node.label)
    if node.op is None:
        return f"<unlabelled {'constant' if node._const else 'leaf'} {node.data!r}>"
    return f"<unlabelled {node.op} node {node.data!r}>"


def _check_data(data: object, label: object) -> float:
    if isinstance(data, bool) or not isinstance(data, Real):
        raise TypeError(
            f"Value {label!r}: data must be a real number, got {data!r} ({type(data).__name__})"
        )
    value = float(data)
    if not math.isfinite(value):
        raise ValueError(f"Value {label!r}: data must be finite, got {value!r}")
    return value


class Value:
    """A scalar node: ``data``, ``grad``, ``label``; ``op``/``operands``/``params`` for op nodes.

    Python numbers on either side of ``+ - * /`` are wrapped as constant
    leaves. ``**`` takes a number exponent (a registry parameter, not a node).
    """

    __slots__ = ("data", "grad", "label", "op", "operands", "params", "_const", "_seq")

    def __init__(self, data: float, label: str = "") -> None:
        if not isinstance(label, str):
            raise TypeError(f"Value label must be a str, got {label!r} for data {data!r}")
        if label:   # no newlines/RTL overrides/'$'; LaTeX labels (\theta) must be safe LaTeX
            check_value_label(label)
        self.data = _check_data(data, label)
        self.grad = 0.0
        self.label = label
        self.op: str | None = None
        self.operands: tuple[Value, ...] = ()
        self.params: tuple[float, ...] = ()
        self._const = False
        self._seq = _next_seq()

    # -- micrograd compatibility --------------------------------------------
    @property
    def _prev(self) -> set[Value]:
        return set(self.operands)

    @property
    def _op(self) -> str:
        if self.op is None:
            return ""
        return SCALAR_OPS[self.op].short(self.params)

    @property
    def is_leaf(self) -> bool:
        """True for inputs and constants (nodes without an op)."""
        return self.op is None

    @property
    def is_constant(self) -> bool:
        """True for leaves created from a plain Python number in an expression."""
        return self._const

    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{label})"

    def _repr_html_(self) -> str:
        # Jupyter: the graph as a table of nodes, definitions, data and grads.
        from symgrad.render.notebook import value_html  # render is a later stage

        return value_html(self)

    # -- building the graph -----------------------------------------------
    def _wrap(self, other: object, opname: str) -> Value:
        if isinstance(other, Value):
            return other
        if isinstance(other, bool) or not isinstance(other, Real):
            raise TypeError(
                f"cannot apply {opname!r} to Value {_describe(self)} (data {self.data!r}) "
                f"and {other!r} ({type(other).__name__}); use a Value or a real number"
            )
        const = Value(_check_data(other, f"constant in {opname} with {self.label or self.data}"))
        const._const = True
        return const

    def __add__(self, other: object) -> Value:
        return apply("add", self, self._wrap(other, "add"))

    def __radd__(self, other: object) -> Value:
        return apply("add", self._wrap(other, "add"), self)

    def __sub__(self, other: object) -> Value:
        return apply("sub", self, self._wrap(other, "sub"))

    def __rsub__(self, other: object) -> Value:
        return apply("sub", self._wrap(other, "sub"), self)

    def __mul__(self, other: object) -> Value:
        return apply("mul", self, self._wrap(other, "mul"))

    def __rmul__(self, other: object) -> Value:
        return apply("mul", self._wrap(other, "mul"), self)

    def __truediv__(self, other: object) -> Value:
        return apply("div", self, self._wrap(other, "div"))

    def __rtruediv__(self, other: object) -> Value:
        return apply("div", self._wrap(other, "div"), self)

    def __neg__(self) -> Value:
        return apply("neg", self)

    def __pow__(self, exponent: object) -> Value:
        if isinstance(exponent, bool) or not isinstance(exponent, Real):
            raise TypeError(
                f"Value {_describe(self)} (data {self.data!r}) ** {exponent!r}: "
                "the exponent must be a real number (int or float)"
            )
        return apply("pow", self, k=float(exponent))

    def __rpow__(self, base: object) -> Value:
        raise TypeError(
            f"{base!r} ** Value {_describe(self)}: only number exponents are supported; "
            "write (value * log(base)).exp() instead"
        )

    def tanh(self) -> Value:
        """tanh of this node."""
        return apply("tanh", self)

    def exp(self) -> Value:
        """e to the power of this node."""
        return apply("exp", self)

    def log(self) -> Value:
        """Natural log of this node (ValueError at construction unless data > 0)."""
        return apply("log", self)

    def relu(self) -> Value:
        """max(0, this node)."""
        return apply("relu", self)

    def sigmoid(self) -> Value:
        """1 / (1 + e^-x) of this node."""
        return apply("sigmoid", self)

    # -- reverse mode -----------------------------------------------------
    def backward(self) -> None:
        """Set ``.grad`` of every node in this node's graph to d(self)/d(node).

        All grads are reset first, so calling it twice gives the same result.
        Raises `MalformedGraphError` (a TypeError) naming the node and the bad
        operand if the graph was tampered with (e.g. a non-Value operand).
        """
        _run_backward(self, *_backward_plan(self))


def apply(opname: str, *operands: Value, **params: float) -> Value:
    """Apply a registered op to Values: the generic constructor behind every operator.

    >>> apply("mul", Value(3.0), Value(4.0)).data
    12.0
    """
    op = SCALAR_OPS[opname]  # UnknownOpError lists the registered ops
    if len(operands) != op.arity:
        raise TypeError(f"op {opname!r} takes {op.arity} operand(s), got {len(operands)}")
    for i, x in enumerate(operands):
        if not isinstance(x, Value):
            raise TypeError(f"operand {i} of op {opname!r} must be a Value, got {x!r}")
    if set(params) != set(op.params):
        raise TypeError(f"op {opname!r} takes parameters {list(op.params)}, got {sorted(params)}")
    pvals = tuple(float(params[p]) for p in op.params)
    for p, v in zip(op.params, pvals, strict=True):
        if not math.isfinite(v):
            raise ValueError(f"op {opname!r}: parameter {p} must be finite, got {v!r}")
    data = tuple(x.data for x in operands)
    if not op.check_domain(data, pvals):
        expr = op.format([_name_for_message(x) for x in operands], pvals, latex=False)
        raise ScalarDomainError(
            f"{expr}: operand value(s) {_values(operands)} outside the domain of {opname} "
            f"({op.domain})"
        )
    try:
        out = float(op.forward(data, pvals))
    except (OverflowError, ZeroDivisionError, ValueError) as exc:
        expr = op.format([_name_for_message(x) for x in operands], pvals, latex=False)
        raise ScalarDomainError(
            f"{expr} with {_values(operands)} cannot be evaluated: {exc}"
        ) from None
    if not math.isfinite(out):
        expr = op.format([_name_for_message(x) for x in operands], pvals, latex=False)
        raise ScalarDomainError(f"{expr} with {_values(operands)} gives non-finite {out!r}")
    node = Value.__new__(Value)
    node.data, node.grad, node.label = out, 0.0, ""
    node.op, node.operands, node.params, node._const = opname, operands, pvals, False
    node._seq = _next_seq()
    return node


def _name_for_message(x: Value) -> str:
    return x.label or repr(x.data)


def _values(operands: Iterable[Value]) -> str:
    return ", ".join(f"{_name_for_message(x)} = {x.data!r}" for x in operands)


def _checked_children(node: object) -> tuple[Value, ...]:
    # The children function of the backward walk validates as it goes, so a
    # tampered graph fails with the node's name before any grad is written.
    if type(node) is not Value and not isinstance(node, Value):
        raise MalformedGraphError(f"graph node {node!r} is a {type(node).__name__}, not a Value")
    data = node.data
    if type(data) is not float or not math.isfinite(data):
        raise MalformedGraphError(f"node {_describe(node)} has data {data!r}; need a finite float")
    if node.op is None:
        return ()
    op = SCALAR_OPS._ops.get(node.op) or SCALAR_OPS[node.op]  # fast path, else UnknownOpError
    if len(node.operands) != op.arity:
        raise MalformedGraphError(
            f"node {_describe(node)} (op {node.op}) has {len(node.operands)} operands, "
            f"expected {op.arity}"
        )
    for i, child in enumerate(node.operands):
        if type(child) is not Value and not isinstance(child, Value):
            raise MalformedGraphError(
                f"node {_describe(node)} (op {node.op}, data {node.data!r}): operand {i} is "
                f"{child!r} ({type(child).__name__}), not a Value"
            )
    return node.operands


def graph_order(root: Value) -> list[Value]:
    """All nodes of ``root``'s graph, operands before the nodes that use them (validated)."""
    if not isinstance(root, Value):
        raise MalformedGraphError(f"backward/derivation needs a Value root, got {root!r}")
    return topological_order(root, _checked_children)


def gradients(root: Value) -> list[tuple[Value, float]]:
    """d(root)/d(node) for every node of the graph (in `graph_order`), without touching ``.grad``.

    The same computation as `Value.backward`; the nodes' own ``grad`` values
    are put back afterwards.
    """
    ops, leaves = _backward_plan(root)
    everything = ops + leaves
    saved = [n.grad for n in everything]
    try:
        _run_backward(root, ops, leaves)
        grads = {id(n): n.grad for n in everything}
    finally:
        for node, grad in zip(everything, saved, strict=True):
            node.grad = grad
    return [(n, grads[id(n)]) for n in graph_order(root)]


class _Steps(dict):
    """Op name -> compiled backward step, filled on first use from the registry."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, ScalarOp] = {}

    def __missing__(self, name: str) -> Callable[[Value], None]:
        from symgrad.derive.scalar_steps import backward_step  # the derive stage comes later

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


def _backward_plan(root: Value) -> tuple[list[Value], list[Value]]:
    """(op nodes in a topological order, leaves) of ``root``'s graph."""
    if not isinstance(root, Value):
        raise MalformedGraphError(f"backward/derivation needs a Value root, got {root!r}")
    _STEPS.refresh()
    plan = _creation_order(root)
    if plan is None:
        # The per-node checks raise MalformedGraphError (or UnknownOpError) naming
        # the node; a graph that passes them (a DAG whose operands were swapped
        # for later nodes) gets its depth-first order instead.
        order = graph_order(root)
        plan = [n for n in order if n.op is not None], [n for n in order if n.op is None]
    return plan


def _run_backward(root: Value, ops: list[Value], leaves: list[Value]) -> None:
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
        from symgrad.derive.scalar_steps import StepError

        if isinstance(exc, ArithmeticError | ValueError) and not isinstance(exc, StepError):
            args = ", ".join(f"{_name_for_message(c)} = {c.data!r}" for c in node.operands)
            raise ScalarDomainError(
                f"backward: the derivative of {node.op} at node {_describe(node)} (operands "
                f"{args}) cannot be evaluated: {exc}; all grads of the graph were reset to 0"
            ) from None
        raise


def op_of(node: Value) -> ScalarOp:
    """The registry entry of an op node."""
    if node.op is None:
        raise ValueError(f"node {_describe(node)} is a leaf and has no op")
    return SCALAR_OPS[node.op]
