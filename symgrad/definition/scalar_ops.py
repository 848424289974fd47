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
>>> "tanh" in SCALAR_OPS
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import sympy as sp

from symgrad.definition.formulas import relu, sigmoid


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
        assert self._forward is not None
        return self._forward(*operands, *params)

    def check_domain(self, operands: Sequence[float], params: Sequence[float]) -> bool:
        """True when the operands lie in the op's domain."""
        if self._domain_fn is None:
            return True
        return bool(self._domain_fn(*operands, *params))

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
        """Add a built op; refuses to silently overwrite an existing name."""
        if op.name in self._ops and not replace:
            raise ValueError(f"scalar op {op.name!r} is already registered (pass replace=True)")
        self._ops[op.name] = op
        return op

    def remove(self, name: str) -> None:
        """Drop an op (used by tests that register a temporary op)."""
        self[name]  # raises UnknownOpError with the list of known ops
        del self._ops[name]


SCALAR_OPS = ScalarOpRegistry()


def register_scalar_op(
    name: str,
    formula: Callable[..., sp.Expr] | sp.Expr,
    latex: str,
    text: str | None = None,
    symbol: str | None = None,
    arity: int | None = None,
    params: Sequence[str] = (),
    domain: Callable[..., sp.Basic] | sp.Basic | None = None,
    stable: Callable[..., sp.Expr] | sp.Expr | None = None,
    replace: bool = False,
    registry: ScalarOpRegistry = SCALAR_OPS,
) -> ScalarOp:
    """Register a scalar op from its forward formula: the one place a new op is defined.

    ``formula`` is either a SymPy expression in ``x0, x1, ...`` (and the
    parameter symbols), or a callable taking those symbols and returning one.
    ``domain`` likewise (a SymPy condition). The arity is inferred from the
    callable's signature or from the operand symbols the expression uses.

    >>> op = register_scalar_op("cube_demo", lambda x: x**3, latex="{0}^{{3}}",
    ...                         registry=ScalarOpRegistry())
    >>> op.formula, op.arity, op.forward([2.0], [])
    (x0**3, 1, 8.0)
    """
    psyms = tuple(param_symbol(p) for p in params)
    if callable(formula) and not isinstance(formula, sp.Basic):
        n = arity if arity is not None else formula.__code__.co_argcount - len(psyms)
        xs = operand_symbols(n)
        expr = sp.sympify(formula(*xs, *psyms))
    else:
        expr = sp.sympify(formula)
        used = [s for s in expr.free_symbols if s.name[:1] == "x" and s.name[1:].isdigit()]
        n = arity if arity is not None else (max(int(s.name[1:]) for s in used) + 1 if used else 0)
        xs = operand_symbols(n)
    if n < 1:
        raise ValueError(f"scalar op {name!r} must take at least one operand")
    if callable(domain) and not isinstance(domain, sp.Basic):
        cond = domain(*xs, *psyms)
    else:
        cond = domain
    if callable(stable) and not isinstance(stable, sp.Basic):
        stable = sp.sympify(stable(*xs, *psyms))
    stray = (expr.free_symbols | (cond.free_symbols if cond is not None else set())) - {
        *xs, *psyms}
    if stray:
        raise ValueError(
            f"formula of scalar op {name!r} uses {sorted(map(str, stray))}; "
            f"only operands {list(map(str, xs))} and params {list(params)} are allowed"
        )
    args = [*xs, *psyms]
    op = ScalarOp(
        name=name,
        arity=n,
        formula=expr,
        latex=latex,
        text=text if text is not None else f"{name}({', '.join(f'{{{i}}}' for i in range(n))})",
        symbol=symbol if symbol is not None else name,
        params=tuple(params),
        domain=cond,
        stable=stable,
        _forward=sp.lambdify(args, expr if stable is None else stable, modules="math"),
        _domain_fn=None if cond is None else sp.lambdify(args, cond, modules="math"),
    )
    return registry.add(op, replace=replace)


# --- the built-in ops: forward formula + printing, nothing else -------------
# sub and div are their own ops (micrograd lowers them to add/mul/pow) so a
# derivation shows ``d = a - b`` rather than ``d = a + (-1)*b``.
register_scalar_op("add", lambda x0, x1: x0 + x1, latex="{0} + {1}", text="{0} + {1}", symbol="+")
register_scalar_op("sub", lambda x0, x1: x0 - x1, latex="{0} - {1}", text="{0} - {1}", symbol="-")
register_scalar_op("mul", lambda x0, x1: x0 * x1, latex=r"{0} \cdot {1}", text="{0} * {1}",
                   symbol="*")
register_scalar_op("div", lambda x0, x1: x0 / x1, latex=r"\frac{{{0}}}{{{1}}}", text="{0} / {1}",
                   symbol="/", domain=lambda x0, x1: sp.Ne(x1, 0))
register_scalar_op("neg", lambda x0: -x0, latex="-{0}", text="-{0}", symbol="neg")
# Real powers: a negative base needs an integer exponent, and 0 needs k >= 0.
register_scalar_op(
    "pow", lambda x0, k: x0**k, params=("k",), latex="{0}^{{{k}}}", text="{0}**{k}",
    symbol="**{k}",
    domain=lambda x0, k: sp.Or(x0 > 0, sp.And(sp.Eq(k, sp.floor(k)), sp.Or(k >= 0, sp.Ne(x0, 0)))),
)
register_scalar_op("exp", sp.exp, latex=r"e^{{{0}}}", text="exp({0})", arity=1)
register_scalar_op("log", sp.log, latex=r"\log\left({0}\right)", text="log({0})", arity=1,
                   domain=lambda x0: x0 > 0)
register_scalar_op("tanh", sp.tanh, latex=r"\tanh\left({0}\right)", text="tanh({0})", arity=1)
register_scalar_op("relu", relu, latex=r"\operatorname{{ReLU}}\left({0}\right)",
                   text="relu({0})", arity=1)
# 1/(1 + e^-x) overflows e^-x for x < -709; the equal form e^x/(1 + e^x) does not.
register_scalar_op(
    "sigmoid", sigmoid, latex=r"\sigma\left({0}\right)", text="sigmoid({0})", arity=1,
    stable=lambda x0: sp.Piecewise((sigmoid(x0), x0 >= 0), (sp.exp(x0) / (1 + sp.exp(x0)), True)),
)
