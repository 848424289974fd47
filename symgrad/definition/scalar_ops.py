"""The scalar op registry: one entry per op of the micrograd-style engine.

An op is *only* its forward formula in the operand symbols ``x0, x1, ...``
(and named numeric parameters such as the exponent ``k`` of ``pow``), plus how
to print it. Nothing here says what the derivative is: `symgrad.derive.scalar`
asks SymPy to differentiate ``formula``.

>>> SCALAR_OPS["mul"].formula
x0*x1
>>> SCALAR_OPS["pow"].params
('k',)
>>> SCALAR_OPS["log"].check_domain((-1.0,), ())
False
>>> "tanh" in SCALAR_OPS and "sin" in SCALAR_OPS
True
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import sympy as sp
from sympy.logic.boolalg import Boolean

from symgrad.definition.errors import DefinitionError
from symgrad.definition.formulas import relu, sigmoid
from symgrad.definition.latex_input import check_latex
from symgrad.definition.names import check_label, check_name, check_param_name
from symgrad.definition.safe_parse import parse_formula
from symgrad.definition.stable_check import check_stable_form, sample_points


def operand_symbols(arity: int) -> tuple[sp.Symbol, ...]:
    """The canonical operand symbols ``x0, x1, ...`` every op formula is written in.

    >>> operand_symbols(2)
    (x0, x1)
    """
    return tuple(sp.Symbol(f"x{i}", real=True) for i in range(arity))


def param_symbol(name: str) -> sp.Symbol:
    """The real symbol standing for a numeric op parameter (e.g. ``k``)."""
    return sp.Symbol(name, real=True)


class UnknownOpError(KeyError, ValueError):
    """An op name that is not in the registry (message lists the known ones)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ScalarOp:
    """One scalar op: a forward formula and how to print it.

    ``latex`` and ``text`` are `str.format` templates over the operand names
    (``{0}``, ``{1}``) and parameters (``{k}``); LaTeX braces are doubled.
    ``domain`` is a SymPy condition in the operand/parameter symbols that the
    operands must satisfy (``x0 > 0`` for log); ``None`` means all reals.
    ``symbol`` is the short name shown in drawings (micrograd's ``_op``).
    ``stable`` is an optional equal formula that evaluates without overflow
    (used for the numeric forward only; tests prove it equals ``formula``).
    """

    name: str
    arity: int
    formula: sp.Expr
    latex: str
    text: str
    symbol: str
    params: tuple[str, ...] = ()
    domain: sp.Basic | None = None
    stable: sp.Expr | None = None
    # lambdified on first use (`_callables`): 13 built-ins would cost ~50 ms per import
    _forward: Callable[..., float] | None = field(default=None, repr=False, compare=False)
    _domain_fn: Callable[..., bool] | None = field(default=None, repr=False, compare=False)

    @property
    def operands(self) -> tuple[sp.Symbol, ...]:
        """The operand symbols ``x0..x{arity-1}``."""
        return operand_symbols(self.arity)

    @property
    def param_symbols(self) -> tuple[sp.Symbol, ...]:
        """The parameter symbols, in ``params`` order."""
        return tuple(param_symbol(p) for p in self.params)

    def forward(self, operands: Sequence[float], params: Sequence[float]) -> float:
        """Evaluate the formula numerically (lambdified once per op)."""
        return self._callables()[0](*operands, *params)

    def check_domain(self, operands: Sequence[float], params: Sequence[float]) -> bool:
        """True when the operands lie in the op's domain."""
        if self.domain is None:
            return True
        return bool(self._callables()[1](*operands, *params))

    def _callables(self) -> tuple[Callable[..., float], Callable[..., bool] | None]:
        """The forward (the stable form if any) and the domain test as Python functions."""
        if self._forward is None:
            args = [*self.operands, *self.param_symbols]
            body = self.formula if self.stable is None else self.stable
            # frozen dataclass: the cache is set past __setattr__, once
            object.__setattr__(self, "_forward", sp.lambdify(args, body, modules="math"))
            if self.domain is not None:
                object.__setattr__(self, "_domain_fn",
                                   sp.lambdify(args, self.domain, modules="math"))
        return self._forward, self._domain_fn

    def format(self, names: Sequence[str], params: Sequence[float], latex: bool = True) -> str:
        """The op applied to named operands, e.g. ``a \\cdot b``."""
        template = self.latex if latex else self.text
        return template.format(*names, **self._param_strings(params))

    def short(self, params: Sequence[float]) -> str:
        """The drawing symbol with parameters filled in, e.g. ``**2``."""
        return self.symbol.format(**self._param_strings(params))

    def _param_strings(self, params: Sequence[float]) -> dict[str, str]:
        return {p: _fmt_param(v) for p, v in zip(self.params, params, strict=True)}


def _fmt_param(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class ScalarOpRegistry:
    """Name -> `ScalarOp`. Iterating yields the ops in registration order."""

    def __init__(self) -> None:
        self._ops: dict[str, ScalarOp] = {}

    def __getitem__(self, name: str) -> ScalarOp:
        try:
            return self._ops[name]
        except KeyError:
            raise UnknownOpError(
                f"unknown scalar op {name!r}; registered ops: {', '.join(self._ops)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._ops

    def __iter__(self) -> Iterator[ScalarOp]:
        return iter(list(self._ops.values()))

    def __len__(self) -> int:
        return len(self._ops)

    def names(self) -> tuple[str, ...]:
        """Registered op names, in registration order."""
        return tuple(self._ops)

    def add(self, op: ScalarOp, replace: bool = False) -> ScalarOp:
        """Add a built op; refuses to silently overwrite an existing name.

        The same definition again returns the registered op (a re-run cell).
        """
        existing = self._ops.get(op.name)
        if existing is not None and existing == op:
            return existing
        if existing is not None and not replace:
            origin = "a built-in" if op.name in BUILTIN_NAMES else "defined earlier"
            raise DefinitionError(
                f"scalar op {op.name!r} is already registered ({origin}: {existing.formula}) "
                "with a different definition; pass replace=True to replace it, or choose "
                "another name")
        self._ops[op.name] = op
        return op

    def remove(self, name: str) -> None:
        """Drop an op (used by tests that register a temporary op)."""
        self[name]  # raises UnknownOpError with the list of known ops
        del self._ops[name]


SCALAR_OPS = ScalarOpRegistry()
BUILTIN_NAMES: set[str] = set()   # filled once the built-ins below are registered


def register_scalar_op(
    name: str,
    formula: Callable[..., sp.Expr] | sp.Expr | str,
    latex: str,
    text: str | None = None,
    symbol: str | None = None,
    arity: int | None = None,
    params: Sequence[str] = (),
    domain: Callable[..., sp.Basic] | sp.Basic | str | None = None,
    stable: Callable[..., sp.Expr] | sp.Expr | str | None = None,
    replace: bool = False,
    registry: ScalarOpRegistry = SCALAR_OPS,
) -> ScalarOp:
    """Register a scalar op from its forward formula: the one place a new op is defined.

    ``formula`` is a SymPy expression in ``x0, x1, ...`` (and the parameter
    symbols), a callable taking those symbols and returning one, or a string
    such as ``"x0**2 + k*x0"``, parsed safely (`symgrad.definition.safe_parse`:
    never evaluated). ``domain`` (a condition) and ``stable`` likewise. The
    arity is inferred from the callable's signature or from the operand symbols
    used. Symbols are matched by name, whatever their assumptions. ``latex``
    and ``text`` are `str.format` templates (``{0}``, ``{k}``); ``latex`` must be
    safe LaTeX, ``name`` and ``params`` ASCII identifiers. A ``stable`` form is
    checked against the formula numerically; a mismatch is refused.

    >>> op = register_scalar_op("cube_demo", lambda x0: x0**3, latex="{0}^{{3}}",
    ...                         registry=ScalarOpRegistry())
    >>> op.formula, op.arity, op.forward([2.0], [])
    (x0**3, 1, 8.0)
    >>> register_scalar_op("sq_demo", "x0**2", latex="{0}^{{2}}",
    ...                    registry=ScalarOpRegistry()).formula
    x0**2
    """
    op = _build(name, formula, latex, text, symbol, arity, params, domain, stable)
    check_scalar_op(op)
    return registry.add(op, replace=replace)


def _build(name: str, formula: Callable[..., sp.Expr] | sp.Expr | str, latex: str,
           text: str | None, symbol: str | None, arity: int | None, params: Sequence[str],
           domain: Callable[..., sp.Basic] | sp.Basic | str | None,
           stable: Callable[..., sp.Expr] | sp.Expr | str | None) -> ScalarOp:
    """Parse and check what costs nothing to check: names, templates, operands, symbols."""
    check_name(name, "scalar op")
    what = f"scalar op {name!r}"
    if isinstance(params, str):
        raise DefinitionError(f"{what}: params must be a sequence of names, e.g. ('k',), "
                              f"got the string {params!r}")
    for p in params:
        check_param_name(p, what)
        if _OPERAND_NAME.match(p):
            raise DefinitionError(f"{what}: parameter name {p!r} looks like an operand "
                                  "(x0, x1, ...); choose another name")
    if len(set(params)) != len(params):
        raise DefinitionError(f"{what}: parameter names {list(params)} repeat")
    if arity is not None and (isinstance(arity, bool) or not isinstance(arity, int)
                              or not 1 <= arity <= MAX_ARITY):
        raise DefinitionError(f"{what}: arity must be an int from 1 to {MAX_ARITY}, "
                              f"got {arity!r}")
    psyms = tuple(param_symbol(p) for p in params)
    if callable(formula) and not isinstance(formula, sp.Basic):
        code = getattr(formula, "__code__", None)
        if arity is None and code is None:
            raise DefinitionError(f"{what}: cannot read the operand count of {formula!r}; "
                                  "pass arity=")
        n = arity if arity is not None else code.co_argcount - len(psyms)
        expr = _as_expr(formula(*operand_symbols(max(n, 0)), *psyms), what, "formula",
                        max(n, 0), params)
    else:
        expr = _as_expr(formula, what, "formula", arity or MAX_ARITY, params)
        used = [s for s in expr.free_symbols if _OPERAND_NAME.match(s.name)]
        n = arity if arity is not None else (max(int(s.name[1:]) for s in used) + 1 if used else 0)
    if n < 1:
        raise DefinitionError(f"{what} must take at least one operand (x0)")
    xs = operand_symbols(n)
    expr = _by_name(expr, xs, psyms)
    if callable(domain) and not isinstance(domain, sp.Basic):
        domain = domain(*xs, *psyms)
    cond = None if domain is None else _by_name(
        _as_expr(domain, what, "domain", n, params, condition=True), xs, psyms)
    if callable(stable) and not isinstance(stable, sp.Basic):
        stable = stable(*xs, *psyms)
    stable_expr = None if stable is None else _by_name(
        _as_expr(stable, what, "stable form", n, params), xs, psyms)
    for part, e in (("formula", expr), ("domain", cond), ("stable form", stable_expr)):
        stray = set() if e is None else e.free_symbols - {*xs, *psyms}
        if stray:
            raise DefinitionError(
                f"{part} of {what} uses {sorted(map(str, stray))}, which are neither operands "
                f"nor parameters; only operands {list(map(str, xs))} and params {list(params)} "
                "are allowed")
    text = text if text is not None else f"{name}({', '.join(f'{{{i}}}' for i in range(n))})"
    symbol = symbol if symbol is not None else name
    _check_template(latex, "latex", what, n, params, latex=True)
    _check_template(text, "text", what, n, params)
    _check_template(symbol, "symbol", what, 0, params)
    return ScalarOp(name=name, arity=n, formula=expr, latex=latex, text=text, symbol=symbol,
                    params=tuple(params), domain=cond, stable=stable_expr)


def check_scalar_op(op: ScalarOp) -> None:
    """The check that needs numeric work: a ``stable`` form equals the formula (in the domain)."""
    if op.stable is not None:
        forward, domain_fn = op._callables()
        _check_op_stable(op.formula, op.stable, op.operands, op.param_symbols, forward,
                         domain_fn, f"scalar op {op.name!r}")


MAX_ARITY = 16
_OPERAND_NAME = re.compile(r"x[0-9]+\Z")
_ENDS_IN_CONTROL_WORD = re.compile(r"\\[A-Za-z]*\Z")
# Parameter values the stable-form check tries for ops with parameters (they have no
# defaults): small integers and fractions of both signs, skipped where outside the domain.
_PARAM_SAMPLES = (2.0, 3.0, 0.5, -1.0)


def _as_expr(obj: object, what: str, part: str, arity: int, params: Sequence[str],
             condition: bool = False) -> sp.Basic:
    # A string is parsed by the safe parser, anything else converted strictly
    # (sympify(strict=True) never parses a string).
    if isinstance(obj, str):
        names = {s.name: s for s in (*operand_symbols(arity), *map(param_symbol, params))}
        hint = (f"the operands {', '.join(f'x{i}' for i in range(min(arity, 3)))}"
                f"{', ...' if arity > 3 else ''} and the parameters {list(params)}")
        return parse_formula(obj, f"{what} ({part})", names, condition=condition,
                             names_hint=hint)
    try:
        expr = sp.sympify(obj, strict=True)
    except (sp.SympifyError, TypeError):
        raise DefinitionError(f"{what}: {part} {obj!r} is not a SymPy expression, a callable "
                              "returning one, or a string formula") from None
    wanted = Boolean if condition else sp.Expr
    if not isinstance(expr, wanted):
        kind = "a condition such as x0 > 0" if condition else "an expression"
        raise DefinitionError(f"{what}: {part} {obj!r} must be {kind}")
    return expr


def _by_name(expr: sp.Basic, xs: tuple[sp.Symbol, ...], psyms: tuple[sp.Symbol, ...]) -> sp.Basic:
    # sp.Symbol("x0") and the canonical real x0 are different SymPy symbols; a user
    # means the operand either way (this mismatch once gave "uses ['x0']; only ['x0']").
    canon = {s.name: s for s in (*xs, *psyms)}
    return expr.xreplace({s: canon[s.name] for s in expr.free_symbols
                          if s.name in canon and canon[s.name] != s})


def _check_template(template: object, part: str, what: str, arity: int,
                    params: Sequence[str], latex: bool = False) -> None:
    """A printing template: fields {0}.. {arity-1} and {param} only; safe once filled in."""
    if not isinstance(template, str):
        raise DefinitionError(f"{what}: {part} must be a str template, got {template!r}")
    allowed = {str(i) for i in range(arity)} | set(params)
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise DefinitionError(f"{what}: {part} template {template!r} is malformed ({exc}); "
                              "write literal braces as {{ and }}") from None
    for literal, field_name, spec, conversion in fields:
        if field_name is None:
            continue
        if latex and _ENDS_IN_CONTROL_WORD.search(literal):
            # "\{0}" or "\math{0}" with an operand named "input" would spell \input.
            raise DefinitionError(
                f"{what}: latex template {template!r} puts the field {{{field_name}}} right "
                "after a backslash command, so an operand name would extend it; put a space "
                "or braces in between")
        if field_name not in allowed or spec or conversion:
            raise DefinitionError(
                f"{what}: {part} template {template!r} has the field {{{field_name}}}; only "
                f"{', '.join('{' + a + '}' for a in sorted(allowed)) or 'no fields'} are "
                "allowed (operands by position, parameters by name), without format specs")
    sample = template.format(*(f"a{i}" for i in range(arity)), **dict.fromkeys(params, "2"))
    if latex:
        check_latex(sample, f"{what} ({part} template {template!r})")
        return
    check_label(sample, f"{what}: {part}")
    if "$" in template:
        # Plain text lands in derivation titles, where $...$ is math, and in matplotlib
        # drawings, where it is mathtext: a '$' would turn user text into markup.
        raise DefinitionError(f"{what}: {part} template {template!r} has a '$'; plain-text "
                              "templates may not contain '$' (use latex= for math)")


def _check_op_stable(expr: sp.Expr, stable: sp.Expr, xs: tuple[sp.Symbol, ...],
                     psyms: tuple[sp.Symbol, ...], forward: Callable[..., float],
                     domain_fn: Callable[..., bool] | None, what: str) -> None:
    """Refuse a stable form that differs from the formula (inside the domain)."""
    values = [()] if not psyms else [tuple(_PARAM_SAMPLES[(i + j) % len(_PARAM_SAMPLES)]
                                           for j in range(len(psyms)))
                                     for i in range(len(_PARAM_SAMPLES))]
    for pvals in values:
        points = sample_points(len(xs))
        if domain_fn is not None:
            points = [pt for pt in points if _in_domain(domain_fn, (*pt, *pvals))]
        check_stable_form(expr, stable, xs, dict(zip(psyms, pvals, strict=True)), what,
                          forward=lambda *a: _safe_call(forward, a), points=points)


def _in_domain(domain_fn: Callable[..., bool], args: tuple[float, ...]) -> bool:
    try:
        return bool(domain_fn(*args))
    except (ArithmeticError, ValueError, TypeError):
        return False


def _safe_call(fn: Callable[..., float], args: tuple[float, ...]) -> float:
    try:
        return float(fn(*args))
    except (ArithmeticError, ValueError, TypeError):
        return math.nan


# --- the built-in ops: forward formula + printing, nothing else -------------
def _builtin(name: str, formula: Callable[..., sp.Expr], latex: str, text: str | None = None,
             symbol: str | None = None, arity: int | None = None, params: Sequence[str] = (),
             domain: Callable[..., sp.Basic] | None = None,
             stable: Callable[..., sp.Expr] | None = None) -> ScalarOp:
    """`register_scalar_op` without `check_scalar_op`: that runs for every built-in in
    tests/test_scalar_registry.py instead of at every import."""
    return SCALAR_OPS.add(_build(name, formula, latex, text, symbol, arity, params, domain,
                                 stable))


# sub and div are their own ops (micrograd lowers them to add/mul/pow) so a
# derivation shows ``d = a - b`` rather than ``d = a + (-1)*b``.
_builtin("add", lambda x0, x1: x0 + x1, latex="{0} + {1}", text="{0} + {1}", symbol="+")
_builtin("sub", lambda x0, x1: x0 - x1, latex="{0} - {1}", text="{0} - {1}", symbol="-")
_builtin("mul", lambda x0, x1: x0 * x1, latex=r"{0} \cdot {1}", text="{0} * {1}", symbol="*")
_builtin("div", lambda x0, x1: x0 / x1, latex=r"\frac{{{0}}}{{{1}}}", text="{0} / {1}",
         symbol="/", domain=lambda x0, x1: sp.Ne(x1, 0))
_builtin("neg", lambda x0: -x0, latex="-{0}", text="-{0}", symbol="neg")
# Real powers: a negative base needs an integer exponent, and 0 needs k >= 0.
_builtin(
    "pow", lambda x0, k: x0**k, params=("k",), latex="{0}^{{{k}}}", text="{0}**{k}",
    symbol="**{k}",
    domain=lambda x0, k: sp.Or(x0 > 0, sp.And(sp.Eq(x0, 0), k >= 0),
                               sp.And(x0 < 0, sp.Eq(k, sp.floor(k)))),
)
_builtin("exp", sp.exp, latex=r"e^{{{0}}}", text="exp({0})", arity=1)
_builtin("log", sp.log, latex=r"\log\left({0}\right)", text="log({0})", arity=1,
         domain=lambda x0: x0 > 0)
_builtin("tanh", sp.tanh, latex=r"\tanh\left({0}\right)", text="tanh({0})", arity=1)
# sin and cos (seed 003): their limit tables use the angle-sum formula (simplify/limit.py).
_builtin("sin", sp.sin, latex=r"\sin\left({0}\right)", text="sin({0})", arity=1)
_builtin("cos", sp.cos, latex=r"\cos\left({0}\right)", text="cos({0})", arity=1)
_builtin("relu", relu, latex=r"\operatorname{{ReLU}}\left({0}\right)", text="relu({0})",
         arity=1)
# 1/(1 + e^-x) overflows e^-x for x < -709; the equal form e^x/(1 + e^x) does not.
_builtin(
    "sigmoid", sigmoid, latex=r"\sigma\left({0}\right)", text="sigmoid({0})", arity=1,
    stable=lambda x0: sp.Piecewise((sigmoid(x0), x0 >= 0), (sp.exp(x0) / (1 + sp.exp(x0)), True)),
)
BUILTIN_NAMES.update(SCALAR_OPS.names())
