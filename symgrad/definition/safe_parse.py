"""Formulas written as strings, parsed without ever evaluating them.

``sympy.sympify(text)`` runs ``eval`` on its input: a string formula such as
``"__import__('os').system('...') + x0"`` would execute. symgrad never hands a
user string to ``sympify``/``eval``: `parse_formula` reads it with Python's
`ast` module and builds the SymPy expression itself from a whitelist:

- numbers (int/float literals), ``True``/``False`` (in conditions), ``pi``, ``E``;
- names: the symbols the caller allows (operands ``x0, x1, ...``, declared
  parameters), or with ``new_symbols=True`` any identifier as a real symbol;
- ``+ - * / **``, unary ``-``/``+``, comparisons, ``and``/``or``/``not``,
  tuples (only as ``Piecewise`` pieces);
- calls of whitelisted functions (`FUNCTIONS`) with positional arguments.

Anything else (attribute access, subscripts, keywords, lambdas, strings, ...)
is a `DefinitionError` naming the construct. Sizes are bounded too: a short
string cannot make SymPy build a huge number (``10**10**10``).

>>> x0 = sp.Symbol("x0", real=True)
>>> parse_formula("x0**2 + sigmoid(x0)", "op 'demo'", {"x0": x0})
x0**2 + 1/(1 + exp(-x0))
>>> parse_formula("__import__('os').system('echo hi')", "op 'evil'", {"x0": x0})
Traceback (most recent call last):
...
symgrad.definition.errors.DefinitionError: op 'evil': formula "__import__('os').system('echo \
hi')": attribute access "__import__('os').system" is not allowed; formulas use numbers, names, \
+ - * / **, comparisons and calls of exp, log, ...
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping

import sympy as sp
from sympy.logic.boolalg import Boolean

from symgrad.definition.errors import DefinitionError
from symgrad.definition.formulas import relu, sigmoid, softplus
from symgrad.definition.supported import SUPPORTED_FUNCTIONS

MAX_FORMULA_LENGTH = 2000
MAX_DEPTH = 60
MAX_NODES = 400
MAX_CONSTANT_POWER = 64      # |exponent| of a number ** number
MAX_LITERAL_DIGITS = 40

# Function names a string formula may call -> how to build the SymPy node.
FUNCTIONS: dict[str, Callable[..., sp.Basic]] = {
    **{f.__name__: f for f in SUPPORTED_FUNCTIONS},
    "abs": sp.Abs, "max": sp.Max, "min": sp.Min, "sqrt": sp.sqrt,
    "sigmoid": sigmoid, "relu": relu, "softplus": softplus,
}
CONSTANTS: dict[str, sp.Basic] = {"pi": sp.pi, "E": sp.E}

_BINARY = {ast.Add: sp.Add, ast.Sub: lambda a, b: a - b, ast.Mult: sp.Mul,
           ast.Div: lambda a, b: a / b, ast.Pow: None}
_COMPARE = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge,
            ast.Eq: sp.Eq, ast.NotEq: sp.Ne}
# What error messages call the node types a formula may not contain.
_CONSTRUCT = {
    ast.Attribute: "attribute access", ast.Subscript: "subscript", ast.Lambda: "lambda",
    ast.Starred: "star argument", ast.List: "list", ast.Dict: "dict", ast.Set: "set",
    ast.ListComp: "comprehension", ast.GeneratorExp: "generator", ast.DictComp: "comprehension",
    ast.SetComp: "comprehension", ast.IfExp: "conditional expression (use Piecewise)",
    ast.NamedExpr: "assignment expression", ast.JoinedStr: "f-string",
    ast.FloorDiv: "operator //", ast.Mod: "operator %", ast.MatMult: "operator @",
    ast.BitAnd: "operator &", ast.BitOr: "operator |", ast.BitXor: "operator ^ (use ** for "
    "powers)", ast.LShift: "operator <<", ast.RShift: "operator >>", ast.Invert: "operator ~",
    ast.Await: "await", ast.Yield: "yield", ast.Is: "operator is", ast.IsNot: "operator is not",
    ast.In: "operator in", ast.NotIn: "operator not in",
}
_HELP = "formulas use numbers, names, + - * / **, comparisons and calls of exp, log, ..."


class _Builder:
    """Walks the AST of one formula and builds the SymPy expression."""

    def __init__(self, text: str, what: str, symbols: Mapping[str, sp.Symbol],
                 new_symbols: bool, names_hint: str | None) -> None:
        self.text, self.what, self.symbols, self.new_symbols = text, what, symbols, new_symbols
        self.names_hint = names_hint
        self.nodes = 0

    def fail(self, node: ast.AST | None, message: str) -> DefinitionError:
        return DefinitionError(f"{self.what}: formula {self.text!r}: {message}")

    def segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or type(node).__name__

    def build(self, node: ast.AST, depth: int = 0, in_piecewise: bool = False) -> sp.Basic:
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise self.fail(node, f"nested deeper than {MAX_DEPTH} levels or more than "
                                  f"{MAX_NODES} parts; define it as a SymPy expression instead")
        sub = depth + 1
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            operand = self.build(node.operand, sub)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(node.op, ast.Not):
                return sp.Not(operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.build(node.left, sub), self.build(node.right, sub)
            if isinstance(node.op, ast.Pow):
                return self.power(node, left, right)
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.BoolOp):
            parts = [self.build(v, sub) for v in node.values]
            return sp.And(*parts) if isinstance(node.op, ast.And) else sp.Or(*parts)
        if isinstance(node, ast.Compare):
            return self.compare(node, sub)
        if isinstance(node, ast.Call):
            return self.call(node, sub)
        if isinstance(node, ast.Tuple) and in_piecewise:
            return sp.Tuple(*[self.build(e, sub) for e in node.elts])
        kind = _CONSTRUCT.get(type(node)) or _CONSTRUCT.get(type(getattr(node, "op", None)))
        kind = kind or ("tuple (only as a Piecewise piece)" if isinstance(node, ast.Tuple)
                        else type(node).__name__)
        raise self.fail(node, f"{kind} {self.segment(node)!r} is not allowed; {_HELP}")

    def constant(self, node: ast.Constant) -> sp.Basic:
        value = node.value
        if isinstance(value, bool):
            return sp.true if value else sp.false
        if isinstance(value, int):
            if len(str(abs(value))) > MAX_LITERAL_DIGITS:
                raise self.fail(node, f"the number {self.segment(node)[:20]}... has more than "
                                      f"{MAX_LITERAL_DIGITS} digits")
            return sp.Integer(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.fail(node, f"the number {self.segment(node)} is not finite")
            # Exact, like symgrad's parameter values (0.1 -> 1/10), so proofs stay exact.
            return sp.Rational(repr(value))
        raise self.fail(node, f"constant {self.segment(node)} ({type(value).__name__}) is "
                              f"not allowed; {_HELP}")

    def name(self, node: ast.Name) -> sp.Basic:
        ident = node.id
        if ident in self.symbols:
            return self.symbols[ident]
        if ident in CONSTANTS:
            return CONSTANTS[ident]
        if ident in FUNCTIONS:
            raise self.fail(node, f"function {ident} must be called, e.g. {ident}(x)")
        if ident.lower() in _NOT_FINITE:
            # SymPy's names for these; as a new variable 'nan' the error said "two free
            # variables", which hides the problem
            raise self.fail(node, f"{ident} is not a finite number: a formula holds finite "
                                  "constants only")
        if self.new_symbols and ident.isascii() and not ident.startswith("_"):
            return sp.Symbol(ident, real=True)
        allowed = self.names_hint or ", ".join(self.symbols) or "none"
        raise self.fail(node, f"name {ident!r} is not allowed; the names available are "
                              f"{allowed} and the constants {', '.join(CONSTANTS)}")

    def power(self, node: ast.BinOp, base: sp.Basic, exponent: sp.Basic) -> sp.Basic:
        # A number ** number is evaluated by SymPy at once: bound it (10**10**10 would hang,
        # and so would a tower of small powers: hence the bound on the base's digits too).
        if isinstance(exponent, sp.Number) and isinstance(base, sp.Number) and (
                abs(exponent) > MAX_CONSTANT_POWER or _digits(base) > MAX_LITERAL_DIGITS):
            raise self.fail(node, f"the constant power {self.segment(node)} is too large "
                                  f"(exponent beyond {MAX_CONSTANT_POWER} or a base of more "
                                  f"than {MAX_LITERAL_DIGITS} digits)")
        return sp.Pow(base, exponent)

    def compare(self, node: ast.Compare, sub: int) -> sp.Basic:
        terms = [self.build(node.left, sub)] + [self.build(c, sub) for c in node.comparators]
        parts = []
        for op, left, right in zip(node.ops, terms, terms[1:], strict=False):
            rel = _COMPARE.get(type(op))
            if rel is None:
                raise self.fail(node, f"{_CONSTRUCT.get(type(op), type(op).__name__)} in "
                                      f"{self.segment(node)} is not allowed; {_HELP}")
            parts.append(rel(left, right))
        return parts[0] if len(parts) == 1 else sp.And(*parts)

    def call(self, node: ast.Call, sub: int) -> sp.Basic:
        if not isinstance(node.func, ast.Name):
            what = "attribute access" if isinstance(node.func, ast.Attribute) else "call of"
            raise self.fail(node, f"{what} {self.segment(node.func)!r} is not allowed; {_HELP}")
        fname = node.func.id
        fn = FUNCTIONS.get(fname)
        if fn is None:
            raise self.fail(node, f"function {fname!r} is not allowed; the functions available "
                                  f"are {', '.join(sorted(FUNCTIONS))}")
        if node.keywords:
            raise self.fail(node, f"keyword arguments in {self.segment(node)} are not allowed")
        piecewise = fn is sp.Piecewise
        args = [self.build(a, sub, in_piecewise=piecewise) for a in node.args]
        return fn(*args)


# Names of infinite or undefined values (SymPy's and NumPy's spellings), refused by name.
_NOT_FINITE = frozenset({"nan", "oo", "zoo", "inf", "infinity"})


def _digits(number: sp.Number) -> int:
    if isinstance(number, sp.Rational):
        return len(str(abs(number.p))) + len(str(number.q))
    return 0   # a Float has a fixed precision whatever its size


def parse_formula(text: str, what: str, symbols: Mapping[str, sp.Symbol] | None = None,
                  new_symbols: bool = False, condition: bool = False,
                  names_hint: str | None = None) -> sp.Basic:
    """The SymPy expression written in ``text``, built from a whitelist (never evaluated).

    ``symbols`` maps the names the formula may use to their symbols; with
    ``new_symbols`` any other ASCII identifier becomes a real symbol. With
    ``condition`` the text must be a condition (``x0 > 0``), else an expression.
    ``names_hint`` says in error messages which names exist (default: the keys).
    """
    if not isinstance(text, str):
        raise DefinitionError(f"{what}: formula must be a str, got {type(text).__name__}")
    if len(text) > MAX_FORMULA_LENGTH:
        raise DefinitionError(f"{what}: formula is {len(text)} characters long; at most "
                              f"{MAX_FORMULA_LENGTH} are allowed for a string formula")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        detail = exc.msg if isinstance(exc, SyntaxError) else str(exc) or type(exc).__name__
        raise DefinitionError(f"{what}: formula {text!r} is not a valid expression "
                              f"({detail})") from None
    builder = _Builder(text.strip(), what, dict(symbols or {}), new_symbols, names_hint)
    try:
        expr = builder.build(tree.body)
    except RecursionError:
        raise DefinitionError(f"{what}: formula {text!r} is nested too deeply") from None
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, DefinitionError):
            raise
        # SymPy refusing a combination, e.g. a condition used as a number: (x > 0) + 1.
        raise DefinitionError(f"{what}: formula {text!r} cannot be built: {exc}") from None
    if condition and not isinstance(expr, Boolean):
        raise DefinitionError(f"{what}: {text!r} is not a condition (write e.g. 'x0 > 0')")
    if not condition and not isinstance(expr, sp.Expr):
        raise DefinitionError(f"{what}: formula {text!r} is a condition, not an expression "
                              "(use it inside Piecewise or Heaviside)")
    return expr


__all__ = ["CONSTANTS", "FUNCTIONS", "parse_formula"]
