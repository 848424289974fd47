"""`Value`: a micrograd-compatible scalar whose local derivatives SymPy derives.

Each op node records the registry op it came from (`symgrad.definition.scalar_ops`)
and its operands; `backward` runs, per op node, a step generated from the
derivatives SymPy derived from the op's formula (`symgrad.derive.scalar_steps`:
plain float arithmetic, compiled once per op), in reverse topological order.
The order is found without recursion, so deep graphs work: every node gets a
creation number, and since a node is always created after its operands, the
nodes sorted by that number are a topological order (`symgrad.graph.scalar`).

This module imports no later stage, not even lazily: ``backward`` is the
derive stage's `symgrad.derive.scalar_backward.backward`, installed here with
`install_backward` when that module is imported, and ``_repr_html_`` the
render stage's table, installed with `install_value_html`; ``import symgrad``
imports both. (Not a lazy import: that hides a backward edge from the reader
and from ``tests/test_stage_imports.py``. Not a method moved out of `Value`:
micrograd's API is ``value.backward()``.)

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

from symgrad.definition.latex_input import check_value_label
from symgrad.definition.scalar_ops import SCALAR_OPS, ScalarOp

# Creation numbers: a node is numbered after its operands, so ascending numbers
# are a topological order (see `symgrad.graph.scalar.backward_plan`).
_next_seq = itertools.count().__next__


class ScalarDomainError(ValueError):
    """An op applied outside its domain (log of a non-positive value, x/0, ...)."""


class MalformedGraphError(TypeError):
    """A graph reached by `backward` holds something that is not a well-formed `Value`."""


def describe(node: Value) -> str:
    # How error messages name a node: its label, else its op and value.
    if node.label:
        return repr(node.label)
    if node.op is None:
        return f"<unlabelled {'constant' if node._const else 'leaf'} {node.data!r}>"
    return f"<unlabelled {node.op} node {node.data!r}>"


def checked_data(data: object, label: object) -> float:
    """``data`` as a finite float, or a TypeError/ValueError naming the node ``label``."""
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
        self.data = checked_data(data, label)
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

    def _repr_html_(self) -> str | None:
        # Jupyter: the graph as a table of nodes, definitions, data and grads, drawn by
        # the render stage (installed by it); None makes Jupyter fall back to the repr.
        render = _LATER.value_html
        return None if render is None else render(self)

    # -- building the graph -----------------------------------------------
    def _wrap(self, other: object, opname: str) -> Value:
        if isinstance(other, Value):
            return other
        if isinstance(other, bool) or not isinstance(other, Real):
            raise TypeError(
                f"cannot apply {opname!r} to Value {describe(self)} (data {self.data!r}) "
                f"and {other!r} ({type(other).__name__}); use a Value or a real number"
            )
        const = Value(checked_data(other, f"constant in {opname} with {self.label or self.data}"))
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
                f"Value {describe(self)} (data {self.data!r}) ** {exponent!r}: "
                "the exponent must be a real number (int or float)"
            )
        return apply("pow", self, k=float(exponent))

    def __rpow__(self, base: object) -> Value:
        raise TypeError(
            f"{base!r} ** Value {describe(self)}: only number exponents are supported; "
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

    def sin(self) -> Value:
        """sin of this node (radians).

        >>> round(Value(0.5).sin().data, 6)
        0.479426
        """
        return apply("sin", self)

    def cos(self) -> Value:
        """cos of this node (radians)."""
        return apply("cos", self)

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
        run = _LATER.backward
        if run is None:
            raise RuntimeError(
                "Value.backward is the derive stage's reverse mode, installed by importing "
                "symgrad.derive.scalar_backward (`import symgrad` does)"
            )
        run(self)


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
            f"{expr}: operand value(s) {operand_values(operands)} outside the domain of {opname} "
            f"({op.domain})"
        )
    try:
        out = float(op.forward(data, pvals))
    except (OverflowError, ZeroDivisionError, ValueError) as exc:
        expr = op.format([_name_for_message(x) for x in operands], pvals, latex=False)
        raise ScalarDomainError(
            f"{expr} with {operand_values(operands)} cannot be evaluated: {exc}"
        ) from None
    if not math.isfinite(out):
        expr = op.format([_name_for_message(x) for x in operands], pvals, latex=False)
        raise ScalarDomainError(f"{expr} with {operand_values(operands)} gives non-finite {out!r}")
    node = Value.__new__(Value)
    node.data, node.grad, node.label = out, 0.0, ""
    node.op, node.operands, node.params, node._const = opname, operands, pvals, False
    node._seq = _next_seq()
    return node


def _name_for_message(x: Value) -> str:
    return x.label or repr(x.data)


def operand_values(operands: Iterable[Value]) -> str:
    """``a = 2.0, b = -3.0``: the operands of a node, for error messages."""
    return ", ".join(f"{_name_for_message(x)} = {x.data!r}" for x in operands)


def op_of(node: Value) -> ScalarOp:
    """The registry entry of an op node."""
    if node.op is None:
        raise ValueError(f"node {describe(node)} is a leaf and has no op")
    return SCALAR_OPS[node.op]


class _LaterStages:
    """What `Value` takes from later stages, installed by them (see the module docstring)."""

    backward: Callable[[Value], None] | None = None
    value_html: Callable[[Value], str] | None = None


_LATER = _LaterStages()


def install_backward(run: Callable[[Value], None]) -> None:
    """Make ``Value.backward()`` call ``run(value)``: the derive stage installs its reverse mode."""
    _LATER.backward = run


def install_value_html(render: Callable[[Value], str]) -> None:
    """Make ``Value._repr_html_()`` return ``render(value)`` (the render stage's table)."""
    _LATER.value_html = render
