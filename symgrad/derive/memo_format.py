"""The derivation memo's file format: JSON data that cannot run code when it is read.

A pickle is a program: whoever can write a cache file runs code in the next
process that loads it. The memo therefore stores plain JSON and rebuilds every
object itself, from whitelists:

- a SymPy expression is a tree ``[class name, *args]`` whose class must be in
  `SYMPY_CLASSES` (arithmetic, numbers, relationals, booleans, Piecewise and the
  elementary functions); a symbol keeps its assumptions, a Float its exact
  binary value and precision. Nothing goes through ``sympify``/``eval``.
- a dataclass is ``{"dataclass": name, "fields": {...}}`` for the plan types in
  `DATACLASSES` only; every field is given explicitly (`dataclasses.fields`)
  and checked against the field's type hint on the way in *and* out, so an
  entry that would not pass the check is never written.
- tuples, lists, dicts and floats are tagged (JSON has no tuples and no inf);
  str, int, bool and None are JSON's own.

Anything else on load (an unknown class, a wrong field, a value of the wrong
type) raises `MemoFormatError`: the caller treats the entry as damaged.

>>> import sympy as sp
>>> x = sp.Symbol("x", positive=True)
>>> expr = sp.Piecewise((sp.tanh(x) / 3, x > 1), (sp.Float("0.1") * x, True))
>>> back = decode(encode(("t", expr)))
>>> back == ("t", expr) and back[1].free_symbols.pop().is_positive
True
>>> decode('{"format": "symgrad-memo/1", "value": {"expr": ["Function", "os"]}}')
Traceback (most recent call last):
...
symgrad.derive.memo_format.MemoFormatError: unknown SymPy class 'Function'
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from functools import cache
from typing import Any, Literal, Union

import sympy as sp
from mpmath.libmp.backend import MPZ
from sympy.codegen.cfunctions import expm1, log1p
from sympy.core.assumptions import _assume_defined
from sympy.functions.elementary.piecewise import ExprCondPair

from symgrad.definition.supported import SUPPORTED_FUNCTIONS
from symgrad.derive.plan import ActivationPlan, DensePlan, Identity, OutputPlan

__all__ = ["encode", "decode", "conforms", "MemoFormatError", "SYMPY_CLASSES", "DATACLASSES"]

FORMAT = "symgrad-memo/1"

# Rebuilt as cls(*args, evaluate=False): SymPy's invariant expr == expr.func(*expr.args),
# without evaluating again. Listed by hand so that a file can only name these.
_COMPOSITE: tuple[type, ...] = (
    sp.Add, sp.Mul, sp.Pow, sp.Piecewise, ExprCondPair, sp.Tuple, sp.ImmutableDenseMatrix,
    sp.Eq, sp.Ne, sp.Lt, sp.Le, sp.Gt, sp.Ge, sp.And, sp.Or, sp.Not, sp.Xor, sp.ITE,
    sp.exp, sp.log, log1p, expm1, sp.sin, sp.cos, sp.tan, sp.asin, sp.acos, sp.atan, sp.atan2,
    sp.sinh, sp.cosh, sp.tanh, sp.asinh, sp.acosh, sp.atanh, sp.sech, sp.csch, sp.coth,
    sp.erf, sp.erfc, sp.Abs, sp.sign, sp.Heaviside, sp.DiracDelta, sp.Max, sp.Min,
    sp.floor, sp.ceiling, sp.re, sp.im, sp.LambertW,
)
# Atoms without arguments: the singletons SymPy keeps in sp.S.
_SINGLETONS: dict[str, sp.Basic] = {type(v).__name__: v for v in (
    sp.S.Zero, sp.S.One, sp.S.NegativeOne, sp.S.Half, sp.S.Pi, sp.S.Exp1, sp.S.EulerGamma,
    sp.S.Catalan, sp.S.GoldenRatio, sp.S.ImaginaryUnit, sp.S.Infinity, sp.S.NegativeInfinity,
    sp.S.NaN, sp.S.ComplexInfinity, sp.S.true, sp.S.false)}


def _class_table() -> dict[str, type]:
    table: dict[str, type] = {}
    # SUPPORTED_FUNCTIONS is the definition stage's whitelist: whatever a formula may
    # use, a plan may hold (a new entry there is storable here without an edit).
    for cls in (*_COMPOSITE, *sorted(SUPPORTED_FUNCTIONS, key=lambda c: c.__name__)):
        if table.setdefault(cls.__name__, cls) is not cls:
            raise RuntimeError(f"two whitelisted SymPy classes are named {cls.__name__}")
    return table


SYMPY_CLASSES: dict[str, type] = _class_table()
DATACLASSES: dict[str, type] = {cls.__name__: cls for cls in (
    Identity, ActivationPlan, OutputPlan, DensePlan)}


class MemoFormatError(ValueError):
    """A memo file (or a value to store) outside the whitelisted format."""


# --- encoding -------------------------------------------------------------------------
def _encode_expr(expr: sp.Basic) -> list:
    if isinstance(expr, sp.Dummy):
        # A Dummy is equal only to itself: a rebuilt one would differ from the original.
        raise MemoFormatError(f"cannot store the Dummy symbol {expr}")
    if isinstance(expr, sp.Symbol):
        orig = getattr(expr, "_assumptions_orig", None)
        assumptions = dict(orig if orig is not None else expr.assumptions0)
        return ["Symbol", expr.name, {k: bool(v) for k, v in sorted(assumptions.items())}]
    name = type(expr).__name__
    if name in _SINGLETONS and _SINGLETONS[name] is expr:
        return ["S", name]
    if isinstance(expr, sp.Integer):
        return ["Integer", int(expr)]
    if isinstance(expr, sp.Rational):
        return ["Rational", int(expr.p), int(expr.q)]
    if isinstance(expr, sp.Float):
        sign, man, exp, bc = expr._mpf_
        return ["Float", int(sign), int(man), int(exp), int(bc), int(expr._prec)]
    if SYMPY_CLASSES.get(name) is not type(expr):
        raise MemoFormatError(f"cannot store SymPy class {name!r}")
    return [name, *(_encode_expr(arg) for arg in expr.args)]


def _encode(value: object) -> object:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, sp.Basic):
        return {"expr": _encode_expr(value)}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return {"list": [_encode(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and DATACLASSES.get(type(value).__name__) is type(value):
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"dataclass": type(value).__name__, "fields": fields}
    raise MemoFormatError(f"cannot store a value of type {type(value).__name__}")


def encode(value: object, expect: object = Any) -> str:
    """``value`` as memo JSON; `MemoFormatError` if it holds anything outside the whitelists.

    ``expect`` is a type hint the value must conform to (checked like `decode` does).
    """
    if not conforms(value, expect):
        raise MemoFormatError(f"value does not conform to {expect}")
    return json.dumps({"format": FORMAT, "value": _encode(value)}, separators=(",", ":"))


# --- decoding -------------------------------------------------------------------------
def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MemoFormatError(f"expected an integer, found {value!r}")
    return value


def _decode_expr(node: object) -> sp.Basic:
    if not isinstance(node, list) or not node or not isinstance(node[0], str):
        raise MemoFormatError(f"malformed expression node {node!r:.80}")
    head, args = node[0], node[1:]
    if head == "Symbol":
        name, assumptions = args if len(args) == 2 else (None, None)
        if not isinstance(name, str) or not isinstance(assumptions, dict) or any(
                k not in _assume_defined or not isinstance(v, bool)
                for k, v in assumptions.items()):
            raise MemoFormatError(f"malformed symbol {node!r:.80}")
        return sp.Symbol(name, **assumptions)
    if head == "S":
        if len(args) != 1 or args[0] not in _SINGLETONS:
            raise MemoFormatError(f"unknown SymPy singleton {args!r:.80}")
        return _SINGLETONS[args[0]]
    if head == "Integer" and len(args) == 1:
        return sp.Integer(_int(args[0]))
    if head == "Rational" and len(args) == 2 and _int(args[1]) > 0:
        return sp.Rational(_int(args[0]), args[1])
    if head == "Float" and len(args) == 5:
        sign, man, exp, bc, prec = (_int(a) for a in args)
        if sign not in (0, 1) or man < 0 or bc < 0 or prec <= 0:
            raise MemoFormatError(f"malformed Float {node!r:.80}")
        return sp.Float._new((sign, MPZ(man), exp, bc), prec)
    cls = SYMPY_CLASSES.get(head)
    if cls is None:
        raise MemoFormatError(f"unknown SymPy class {head!r}")
    parts = [_decode_expr(arg) for arg in args]
    try:
        # The tree exactly as stored: evaluating again may change it (2*(p - y) was
        # built unevaluated by the simplifier; Mul(2, p - y) evaluates to 2*p - 2*y).
        return cls(*parts, evaluate=False)
    except TypeError:   # a class without that option (ExprCondPair, matrices)
        return cls(*parts)


def _one_key(obj: dict) -> str:
    if len(obj) == 1:
        return next(iter(obj))
    if set(obj) == {"dataclass", "fields"}:
        return "dataclass"
    raise MemoFormatError(f"malformed value {obj!r:.80}")


def _decode(obj: object) -> object:
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if not isinstance(obj, dict):
        raise MemoFormatError(f"malformed value {obj!r:.80}")
    tag = _one_key(obj)
    body = obj[tag]
    if tag == "float" and isinstance(body, str):
        return float(body)   # float() parses a number literal, it never evaluates
    if tag == "expr":
        return _decode_expr(body)
    if tag in ("tuple", "list", "dict") and isinstance(body, list):
        if tag == "dict":
            if not all(isinstance(p, list) and len(p) == 2 for p in body):
                raise MemoFormatError("malformed dict entry")
            return {_decode(k): _decode(v) for k, v in body}
        items = [_decode(v) for v in body]
        return tuple(items) if tag == "tuple" else items
    if tag == "dataclass":
        cls = DATACLASSES.get(body) if isinstance(body, str) else None
        fields = obj["fields"]
        if cls is None or not isinstance(fields, dict):
            raise MemoFormatError(f"unknown dataclass {body!r:.80}")
        names = [f.name for f in dataclasses.fields(cls)]
        if sorted(fields) != sorted(names):
            raise MemoFormatError(f"{cls.__name__}: fields {sorted(fields)} instead of {names}")
        values = {name: _decode(fields[name]) for name in names}
        hints = _hints(cls)
        for name, value in values.items():
            if not conforms(value, hints[name]):
                raise MemoFormatError(f"{cls.__name__}.{name}: {type(value).__name__} does not "
                                      f"conform to {hints[name]}")
        return cls(**values)
    raise MemoFormatError(f"malformed value tagged {tag!r:.40}")


def decode(text: str | bytes, expect: object = Any) -> object:
    """The value stored by `encode`; `MemoFormatError` on anything else (never runs code)."""
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise MemoFormatError(f"not memo JSON ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "value" not in payload:
        raise MemoFormatError(f"not a {FORMAT} document")
    try:
        value = _decode(payload["value"])
    except MemoFormatError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError,
            sp.SympifyError) as err:
        # SymPy refused the rebuilt arguments (e.g. a string where a number belongs).
        raise MemoFormatError(f"malformed entry ({type(err).__name__}: {err})") from None
    if not conforms(value, expect):
        raise MemoFormatError(f"the entry holds a {type(value).__name__}, expected {expect}")
    return value


# --- type hints as the schema -----------------------------------------------------------
@cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def conforms(value: object, hint: object) -> bool:
    """Whether ``value`` fits the type hint ``hint`` (the subset the plan dataclasses use).

    >>> conforms((1.0, 2), tuple[float, float]), conforms({"a": 1}, dict[str, str])
    (True, False)
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(conforms(value, h) for h in args)
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            conforms(v, h) for v, h in zip(value, args, strict=True))
    if origin is dict:
        key, val = args or (Any, Any)
        return isinstance(value, dict) and all(
            conforms(k, key) and conforms(v, val) for k, v in value.items())
    if origin is list:
        return isinstance(value, list) and all(conforms(v, (args or (Any,))[0]) for v in value)
    if hint is float:   # the numeric tower of PEP 484: an int is an acceptable float
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return False
