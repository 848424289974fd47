"""Backward steps of the scalar ops: SymPy's local derivatives printed as tiny Python functions.

`Value.backward` (`symgrad.derive.scalar_backward`) calls one *step* per op node, in
reverse topological order.
A step is generated, never written by hand: for an op with formula
``f(x0, x1; k)`` the derive stage (`symgrad.derive.scalar.local_derivatives`)
gives one derivative per operand, SymPy's Python printer prints each, and the
step adds ``upstream * derivative`` to every operand's ``grad``:

>>> from symgrad.definition.scalar_ops import SCALAR_OPS
>>> print(step_source(SCALAR_OPS["tanh"]))
def step(node):
    g = node.grad
    n0, = node.operands
    o = node.data
    n0.grad += g * (1 - o**2)
>>> print(step_source(SCALAR_OPS["mul"]).splitlines()[-2:])
['    n0.grad += g * (x1)', '    n1.grad += g * (x0)']

Plain float arithmetic on the nodes' slots, no SymPy and no per-node dict or
tuple: this is what makes ``backward`` as fast as micrograd's closures, while
the derivative stays the one SymPy derived (printed, proven, rendered).

Deriving costs SymPy work (0.1-0.3 s for the sigmoid's solve) that a fresh
process should not repeat, so the printed derivatives are remembered on disk
as *text* in ``<cache dir>/scalar_steps/<hash>.json``; the hash covers the op's
name, arity, parameters, exact formula (``srepr``), the Python and SymPy
versions and the source of every module a derivation can depend on (the
stages up to this one: definition, graph, derive -- by the data-flow rule no
later stage can change a derivative). Nothing read from disk runs as
code unchecked: every expression is parsed and must consist of arithmetic,
comparisons and conditional expressions over the step's own variable names,
``math.<function>`` and numbers (`checked_expression`); anything else is
discarded and derived again. Fresh derivations pass the same check, so a
printer surprise is an error, not a silent slow path.
Set ``SYMGRAD_DERIVATION_CACHE=0`` to always derive.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import platform
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import sympy as sp

from symgrad.definition.scalar_ops import ScalarOp
from symgrad.derive.scalar import OUT, _numeric, local_derivatives
from symgrad.store.atomic import atomic_write  # stage-neutral: derive may not import codegen
from symgrad.store.folder import cache_dir

__all__ = ["StepError", "backward_step", "step_source", "derivative_texts", "checked_expression",
           "step_cache_path"]

_FORMAT = 1
# Builtins a printed derivative may call (SymPy prints Abs, Max, Min, inf this way).
_BUILTINS = {"abs": abs, "min": min, "max": max, "float": float}
_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call,
    ast.Name, ast.Attribute, ast.Constant, ast.Load, ast.operator, ast.unaryop, ast.boolop,
    ast.cmpop,
)


class StepError(ValueError):
    """A derivative that cannot become a backward step (unprintable or not plain arithmetic)."""


def _variables(op: ScalarOp) -> dict[sp.Symbol, sp.Symbol]:
    # Operands keep their names x0, x1, ...; parameters become p0, p1, ... so a
    # user's parameter name never meets the step's own names (g, node, n0, ...).
    # ``o`` (the node's output) only occurs for parameter-free ops (see derive.scalar).
    names = {p: sp.Symbol(f"p{i}", real=True) for i, p in enumerate(op.param_symbols)}
    if not op.params:
        names[OUT] = sp.Symbol("o", real=True)
    return names


def _allowed_names(op: ScalarOp) -> set[str]:
    names = {f"x{i}" for i in range(op.arity)} | {f"p{i}" for i in range(len(op.params))}
    return names if op.params else names | {"o"}


def derivative_texts(op: ScalarOp) -> tuple[str, ...]:
    """Each local derivative of ``op`` as Python source (SymPy's printer, ``math.`` functions).

    >>> from symgrad.definition.scalar_ops import SCALAR_OPS
    >>> derivative_texts(SCALAR_OPS["pow"]), derivative_texts(SCALAR_OPS["relu"])
    (('p0*x0**(p0 - 1)',), ('((0) if (x0 <= 0) else (1))',))
    """
    # Imported here: a process that finds every step in the cache never needs the printer.
    from sympy.printing.pycode import PythonCodePrinter

    printer = PythonCodePrinter({"fully_qualified_modules": True, "strict": True})
    rename = _variables(op)
    texts = []
    for d in local_derivatives(op):
        try:
            texts.append(printer.doprint(_numeric(d.used).xreplace(rename)))
        except Exception as exc:  # noqa: BLE001 - SymPy's printers raise several kinds
            raise StepError(
                f"scalar op {op.name!r}: d/dx{d.wrt} = {d.used} cannot be "
                f"printed as Python math ({type(exc).__name__}: {exc})") from None
    return tuple(texts)


def checked_expression(text: str, allowed: set[str], where: str) -> set[str]:
    """Check that ``text`` is plain arithmetic; return the variable names it uses.

    Allowed: numbers, the names in ``allowed``, ``math.<function>(...)`` and
    ``math.pi`` and friends, ``abs/min/max``, ``float('inf')``-style constants,
    arithmetic and comparison operators, ``and/or/not`` and ``a if c else b``.
    Anything else (attributes of other objects, other calls, lambdas,
    subscripts, strings, ``None``) raises `StepError` naming ``where``.

    >>> sorted(checked_expression("x1*math.exp(-x0)", {"x0", "x1"}, "demo"))
    ['x0', 'x1']
    >>> checked_expression("__import__('os')", {"x0"}, "demo")
    Traceback (most recent call last):
    ...
    symgrad.derive.scalar_steps.StepError: demo: '__import__' is not allowed in a derivative ...
    """
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise StepError(f"{where}: not a Python expression: {text!r} ({exc.msg})") from None
    used: set[str] = set()
    float_args: set[int] = set()   # the string constants allowed: arguments of float()

    def bad(what: str) -> StepError:
        return StepError(f"{where}: {what} is not allowed in a derivative (in {text!r})")

    for node in ast.walk(tree):  # breadth first: a call is seen before its arguments
        if not isinstance(node, _ALLOWED_NODES):
            raise bad(type(node).__name__)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                if id(node) not in float_args:
                    raise bad(f"the string {node.value!r}")
            elif isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise bad(repr(node.value))
        elif isinstance(node, ast.Attribute):
            if not (isinstance(node.value, ast.Name) and node.value.id == "math"
                    and not node.attr.startswith("_") and hasattr(math, node.attr)):
                raise bad(f"attribute {node.attr!r}")
        elif isinstance(node, ast.Call):
            func = node.func
            if node.keywords:
                raise bad("a keyword argument")
            if isinstance(func, ast.Attribute):
                if not callable(getattr(math, func.attr, None)):
                    raise bad(f"math.{func.attr}")
            elif not (isinstance(func, ast.Name) and func.id in _BUILTINS):
                raise bad(repr(getattr(func, "id", type(func).__name__)))
            elif func.id == "float":
                if not (len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
                        and node.args[0].value in ("inf", "-inf", "nan")):
                    raise bad("float() of anything but 'inf', '-inf' or 'nan'")
                float_args.add(id(node.args[0]))
        elif isinstance(node, ast.Name):
            if node.id in allowed:
                used.add(node.id)
            elif node.id != "math" and node.id not in _BUILTINS:
                raise bad(repr(node.id))
    return used


def _source(op: ScalarOp, texts: Sequence[str]) -> str:
    """The step function's source for ``op`` from its checked derivative texts."""
    if len(texts) != op.arity:
        raise StepError(f"scalar op {op.name!r}: {len(texts)} derivatives for "
                        f"{op.arity} operand(s)")
    allowed = _allowed_names(op)
    used: set[str] = set()
    for i, text in enumerate(texts):
        used |= checked_expression(text, allowed, f"scalar op {op.name!r}, d/dx{i}")
    lines = ["def step(node):", "    g = node.grad"]
    names = ", ".join(f"n{i}" for i in range(op.arity))
    lines.append(f"    {names}{',' if op.arity == 1 else ''} = node.operands")
    for i in range(op.arity):
        if f"x{i}" in used:
            lines.append(f"    x{i} = n{i}.data")
    if any(f"p{i}" in used for i in range(len(op.params))):
        pnames = ", ".join(f"p{i}" for i in range(len(op.params)))
        lines.append(f"    {pnames}{',' if len(op.params) == 1 else ''} = node.params")
    if "o" in used:
        lines.append("    o = node.data")
    for i, text in enumerate(texts):
        # g * 1 and g * -1 are exact, so these two shortcuts change no bit.
        if text == "1":
            lines.append(f"    n{i}.grad += g")
        elif text == "-1":
            lines.append(f"    n{i}.grad -= g")
        else:
            lines.append(f"    n{i}.grad += g * ({text})")
    return "\n".join(lines)


def step_source(op: ScalarOp) -> str:
    """The source of ``op``'s backward step (derived; see the module docstring)."""
    return _source(op, _texts(op))


@cache
def _derive_fingerprint() -> str:
    """Hash of the Python and SymPy versions and of every module of the stages up to derive."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256(f"{platform.python_version()}|{sp.__version__}".encode())
    for stage in ("definition", "graph", "derive"):
        # os.walk rather than Path.rglob: this runs in every process's first backward.
        for folder, _dirs, files in sorted(os.walk(os.path.join(root, stage))):
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


def step_cache_path(op: ScalarOp) -> Path:
    """The file that remembers ``op``'s printed derivatives across processes."""
    key = "\n".join([_derive_fingerprint(), str(_FORMAT), repr(op.name), str(op.arity),
                     repr(op.params), sp.srepr(op.formula)])
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return cache_dir() / "scalar_steps" / f"{digest}.json"


def _read_cached(op: ScalarOp, path: Path) -> tuple[str, ...] | None:
    # Only a well-formed record for exactly this op counts; the texts are checked
    # in _source like fresh ones, so a foreign file can only make us derive again.
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        texts = tuple(record["derivatives"])
        if (record["format"] != _FORMAT or record["op"] != op.name or record["arity"] != op.arity
                or tuple(record["params"]) != op.params
                or not all(isinstance(t, str) for t in texts)):
            return None
        _source(op, texts)
        return texts
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _texts(op: ScalarOp) -> tuple[str, ...]:
    if os.environ.get("SYMGRAD_DERIVATION_CACHE", "1") == "0":
        return derivative_texts(op)
    path = step_cache_path(op)
    texts = _read_cached(op, path) if path.exists() else None
    if texts is None:
        texts = derivative_texts(op)
        record = {"format": _FORMAT, "op": op.name, "arity": op.arity, "params": list(op.params),
                  "formula": sp.srepr(op.formula), "derivatives": list(texts)}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(record, indent=1))
        except OSError:
            pass  # a read-only cache directory: derive again next time
    return texts


@cache
def backward_step(op: ScalarOp) -> Callable[[object], None]:
    """The compiled backward step of ``op``: ``step(node)`` adds its local gradients.

    Cached per op (a replaced registry entry is another op). The source is
    compiled with only ``math`` and ``abs/min/max/float`` in reach.

    >>> from symgrad.definition.scalar_ops import SCALAR_OPS
    >>> from symgrad.definition.value import Value
    >>> a, b = Value(3.0), Value(4.0)
    >>> c = a * b; c.grad = 2.0
    >>> backward_step(SCALAR_OPS["mul"])(c); (a.grad, b.grad)
    (8.0, 6.0)
    """
    source = step_source(op)
    namespace: dict[str, object] = {"math": math, "__builtins__": dict(_BUILTINS)}
    exec(compile(source, f"<symgrad backward step of scalar op {op.name!r}>", "exec"), namespace)
    return namespace["step"]  # type: ignore[return-value]
