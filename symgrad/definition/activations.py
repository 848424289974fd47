"""Activation layers as formulas: one registry entry per activation.

An activation is *only* its forward formula in a single variable (plus named
numeric parameters such as ``alpha``). Its derivative is derived by SymPy in
`symgrad.derive.elementwise`; nothing here knows any derivative. The built-ins
below are defined with the same public `activation` factory a user calls:

>>> x = sp.Symbol("x", real=True)
>>> Cube = activation("cube", x**3)
>>> Cube().forward
z**3
>>> LeakyReLU(0.2).params
{'alpha': 0.2}

Validation happens at definition time: exactly one free variable, SymPy can
differentiate the formula, and every function in the formula and in its
derivative is in `symgrad.definition.supported.SUPPORTED_FUNCTIONS`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import sympy as sp

from symgrad.definition.convention import differentiate
from symgrad.definition.errors import DefinitionError, NotElementwiseError
from symgrad.definition.formulas import Z, sigmoid
from symgrad.definition.latex_input import check_latex
from symgrad.definition.names import check_name, check_param_name
from symgrad.definition.safe_parse import parse_formula
from symgrad.definition.stable_check import check_stable_form
from symgrad.definition.supported import check_supported

Kind = Literal["elementwise", "softmax"]


def exact_number(value: float) -> sp.Expr:
    """A parameter value as an exact SymPy number (0.01 -> 1/100) so proofs stay exact."""
    return sp.Rational(repr(float(value))) if math.isfinite(value) else sp.Float(value)


def check_params(params: dict[str, object], what: str) -> None:
    """Every numeric parameter of a formula must be a finite int or float (not a bool)."""
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise DefinitionError(f"{what}: parameter {key}={value!r} must be a finite number")


def _check_formula(formula: object, what: str, params: Iterable[str] = (),
                   like: sp.Expr | None = None) -> sp.Expr:
    """``formula`` as a SymPy expression; a string is parsed safely (never evaluated).

    Symbols are matched by name: a parameter (or, with ``like``, a symbol of that
    expression) written with other assumptions becomes the one symbol of that name.
    """
    if isinstance(formula, str):
        expr = parse_formula(formula, what, {p: sp.Symbol(p, real=True) for p in params},
                             new_symbols=True)
    else:
        try:
            expr = sp.sympify(formula, strict=True)   # strict: never parses a string
        except (sp.SympifyError, TypeError) as exc:
            raise DefinitionError(f"{what}: formula {formula!r} is not a SymPy expression "
                                  "(nor a string formula)") from exc
        if not isinstance(expr, sp.Expr):
            raise DefinitionError(f"{what}: formula {formula!r} is not a SymPy expression")
        infinite = [a for a in (sp.nan, sp.oo, -sp.oo, sp.zoo) if expr.has(a)]
        if infinite:   # x + oo is oo: refused here, not as "no variable" later
            raise DefinitionError(f"{what}: formula {expr} holds {infinite[0]}, which is not "
                                  "a finite number: a formula holds finite constants only")
    if like is not None:
        by_name = {s.name: s for s in like.free_symbols}
        expr = expr.xreplace({s: by_name[s.name] for s in expr.free_symbols
                              if s.name in by_name and by_name[s.name] != s})
    return expr


def check_user_stable(formula: sp.Expr, stable: sp.Expr, variables: list[sp.Symbol],
                      defaults: dict[str, float], what: str) -> None:
    """The ``stable=`` form must equal the formula: at the default parameters and at others."""
    syms = {s.name: s for s in formula.free_symbols | stable.free_symbols if s.name in defaults}
    tries = [defaults]
    if defaults:   # a second parameter set, same signs: a form right only at the defaults fails
        tries.append({k: v * 1.5 + (0.25 if v >= 0 else -0.25) for k, v in defaults.items()})
    for values in tries:
        check_stable_form(formula, stable, variables,
                          {syms[k]: v for k, v in values.items() if k in syms}, what)


def split_variables(expr: sp.Expr, param_names: set[str], what: str) -> list[sp.Symbol]:
    """Free symbols of ``expr`` that are not parameters, sorted by name."""
    free = [s for s in expr.free_symbols if s.name not in param_names]
    return sorted(free, key=lambda s: s.name)


@dataclass(frozen=True)
class ActivationEntry:
    """One activation: name, formula in ``variable``, LaTeX name, parameters, kind.

    ``kind == "softmax"`` means p_i = f(z_i) / sum_j f(z_j) over the row; it is only
    valid as the output layer with the cross-entropy loss.
    """

    name: str
    formula: sp.Expr
    variable: sp.Symbol
    latex: str
    defaults: tuple[tuple[str, float], ...] = ()
    kind: Kind = "elementwise"
    stable: sp.Expr | None = None

    def param_symbols(self) -> dict[str, sp.Symbol]:
        names = {n for n, _ in self.defaults}
        syms = self.formula.free_symbols | (self.stable.free_symbols if self.stable is not None
                                            else set())
        return {s.name: s for s in syms if s.name in names}

    def _bind(self, expr: sp.Expr, params: dict[str, float]) -> sp.Expr:
        subs = {sym: exact_number(params[name]) for name, sym in self.param_symbols().items()}
        subs[self.variable] = Z
        return expr.xreplace(subs)

    def forward(self, params: dict[str, float]) -> sp.Expr:
        """f(z) in the canonical symbol ``z`` with parameter values substituted."""
        return self._bind(self.formula, params)

    def stable_forward(self, params: dict[str, float]) -> sp.Expr | None:
        """The user-supplied numerically safe form of f(z), if any."""
        return None if self.stable is None else self._bind(self.stable, params)


class ActivationLayer:
    """Base class of every activation layer; subclasses carry an `ActivationEntry`."""

    entry: ActivationEntry

    def __init__(self, *args: float, **params: float) -> None:
        names = [n for n, _ in self.entry.defaults]
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes parameters {names}, got {args}")
        given = dict(zip(names, args, strict=False))
        for key, value in params.items():
            if key not in names:
                raise TypeError(f"{type(self).__name__} has no parameter {key!r} "
                                f"(parameters: {names})")
            if key in given:
                raise TypeError(f"{type(self).__name__}: parameter {key!r} given twice")
            given[key] = value
        values = dict(self.entry.defaults)
        for key, value in given.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"{type(self).__name__}: parameter {key}={value!r} must be a "
                                 "finite real number")
            values[key] = float(value)
        self.params: dict[str, float] = values

    @property
    def forward(self) -> sp.Expr:
        """f(z) with this layer's parameters."""
        return self.entry.forward(self.params)

    @property
    def key(self) -> tuple:
        """Cache key: identical (entry, parameters) derive once. The LaTeX name is in it:
        the plan carries it into every printout."""
        return (self.entry.name, self.entry.formula, self.entry.stable, self.entry.kind,
                self.entry.latex, tuple(sorted(self.params.items())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{type(self).__name__}({inner})"

    def __reduce__(self) -> tuple:
        # The classes are made by `activation` at run time and live in the registry, not
        # under their names in a module: pickle (joblib, a fitted GridSearchCV) finds the
        # layer by its registered name.
        return (registered_layer, (self.entry.name, dict(self.params)))


def registered_layer(name: str, params: dict[str, float]) -> ActivationLayer:
    """The layer of the registered activation ``name`` with ``params`` (how pickles load).

    >>> registered_layer("leaky_relu", {"alpha": 0.2})
    LeakyReLU(alpha=0.2)
    """
    cls = REGISTRY.get(name)
    if cls is None:
        raise DefinitionError(
            f"activation {name!r} is not registered in this process: run its "
            f"sg.activation({name!r}, ...) definition before loading what uses it")
    return cls(**params)


REGISTRY: dict[str, type[ActivationLayer]] = {}
BUILTIN_NAMES: set[str] = set()   # filled once the built-ins below are registered


def _class_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", name)
                   if part) or "Activation"


def activation(name: str, formula: sp.Expr | str, latex: str | None = None, *,
               stable: sp.Expr | str | None = None, kind: Kind = "elementwise",
               replace: bool = False, **params: float) -> type[ActivationLayer]:
    """Define (and register) an activation from its formula; returns a layer class.

    ``name`` is an ASCII identifier; ``latex`` (optional) is checked LaTeX.
    ``formula`` is a SymPy expression or a string formula, parsed safely
    (`symgrad.definition.safe_parse`). ``params`` name the numeric parameters
    used in ``formula`` with their default values
    (``activation("leaky", Max(alpha*x, x), alpha=0.01)``).
    ``stable`` is an optional numerically safe but equal forward form; it is
    checked against ``formula`` numerically here (a mismatch is refused) and
    proven equal by `symgrad.check`. A name already registered with a different
    definition is refused unless ``replace=True``.
    """
    entry = _entry(name, formula, latex, stable, kind, params)
    check_activation(entry)
    return _register(entry, replace)


def _entry(name: str, formula: sp.Expr | str, latex: str | None, stable: sp.Expr | str | None,
           kind: Kind, params: dict[str, float]) -> ActivationEntry:
    """Parse and check what costs nothing to check: names, LaTeX, variables, functions."""
    check_name(name, "activation")
    what = f"activation {name!r}"
    if kind not in ("elementwise", "softmax"):
        raise DefinitionError(f"{what}: kind must be 'elementwise' or 'softmax', got {kind!r}")
    for key in params:
        check_param_name(key, what)
    if latex is not None:
        check_latex(latex, what)
    expr = _check_formula(formula, what, params)
    check_params(params, what)
    variables = split_variables(expr, set(params), what)
    if len(variables) != 1:
        found = ", ".join(v.name for v in variables) or "none"
        raise NotElementwiseError(
            f"{what}: an activation must be elementwise, i.e. a formula in exactly one "
            f"variable (parameters: {sorted(params) or 'none'}); {expr} has free variables: "
            f"{found}")
    var = variables[0]
    if kind == "softmax" and expr != sp.exp(var):
        # The normalised output p_i = exp(z_i) / sum_j exp(z_j) is what makes the
        # log-sum-exp stable form exact; other numerators have no such form.
        raise DefinitionError(f"{what}: a softmax-kind activation must be exp({var}), got {expr}")
    stable_expr = None
    if stable is not None:
        stable_expr = _check_formula(stable, f"{what} (stable form)", params, like=expr)
        extra = split_variables(stable_expr, set(params), what)
        if extra and extra != [var]:
            raise NotElementwiseError(f"{what}: stable form {stable_expr} must use the same "
                                      f"variable {var} as the formula")
        check_supported(stable_expr, f"{what} (stable form)")
    check_supported(expr, what)
    default_latex = r"\operatorname{" + name.replace("_", r"\_") + "}"
    return ActivationEntry(name, expr, var, latex or default_latex,
                           tuple((k, float(v)) for k, v in params.items()), kind, stable_expr)


def check_activation(entry: ActivationEntry) -> None:
    """The checks that need SymPy's work: the derivative exists and uses only supported
    functions, and a ``stable=`` form equals the formula (numerically, two parameter sets)."""
    what = f"activation {entry.name!r}"
    forward = entry.forward(dict(entry.defaults))
    derivative = differentiate(forward, Z, what)
    if derivative == 0:
        raise DefinitionError(
            f"{what}: {forward} is piecewise constant, its derivative is 0 wherever it exists "
            "(SymPy's DiracDelta terms are zero off the steps): no gradient would flow back "
            "through it. Use a smooth or piecewise-linear formula (e.g. Max(0, z))")
    check_supported(derivative, f"{what} (derivative {derivative})")
    if entry.stable is not None:
        check_user_stable(entry.formula, entry.stable, [entry.variable], dict(entry.defaults),
                          what)


def _register(entry: ActivationEntry, replace: bool,
              class_name: str | None = None) -> type[ActivationLayer]:
    name, what = entry.name, f"activation {entry.name!r}"
    existing = REGISTRY.get(name)
    if existing is not None and _same_entry(existing.entry, entry):
        return existing   # the same definition again (a re-run notebook cell): no collision
    if existing is not None and not replace:
        origin = "a built-in" if name in BUILTIN_NAMES else "defined earlier"
        raise DefinitionError(
            f"{what} is already registered ({origin}: {sp.sstr(existing.entry.formula)}) with a "
            f"different definition; pass replace=True to replace it everywhere it is looked up "
            f"by name, or choose another name")
    cls = type(class_name or _class_name(name), (ActivationLayer,), {
        "entry": entry,
        "__doc__": f"Activation layer {name}: a = {sp.sstr(entry.formula)} (registry entry).",
        "__module__": __name__,
    })
    REGISTRY[name] = cls
    return cls


def _same_entry(old: ActivationEntry, new: ActivationEntry) -> bool:
    # Compared in the canonical variable z: x**3 and t**3 are the same activation.
    params = dict(new.defaults)
    return (old.kind, old.latex, old.defaults) == (new.kind, new.latex, new.defaults) \
        and old.forward(params) == new.forward(params) \
        and old.stable_forward(params) == new.stable_forward(params)


# --- built-ins: parsed and registered exactly as a user's ------------------------------
def _builtin(class_name: str, name: str, formula: sp.Expr, latex: str, *,
             stable: sp.Expr | None = None, kind: Kind = "elementwise",
             **params: float) -> type[ActivationLayer]:
    """`activation` without `check_activation`: that runs for every built-in in
    tests/test_activations.py instead of at every import (~0.2 s of SymPy work).
    ``class_name`` is the name the class is exported under (ReLU, not Relu)."""
    return _register(_entry(name, formula, latex, stable, kind, params), replace=False,
                     class_name=class_name)


_x = sp.Symbol("x", real=True)
_alpha = sp.Symbol("alpha", real=True)

Identity = _builtin("Identity", "identity", _x, r"\operatorname{id}")
Tanh = _builtin("Tanh", "tanh", sp.tanh(_x), r"\tanh")
Sigmoid = _builtin("Sigmoid", "sigmoid", sigmoid(_x), r"\sigma",
                   stable=(1 + sp.tanh(_x / 2)) / 2)   # no exp overflow for x << 0
ReLU = _builtin("ReLU", "relu", sp.Max(0, _x), r"\operatorname{ReLU}")
LeakyReLU = _builtin("LeakyReLU", "leaky_relu",
                     sp.Piecewise((_x, _x > 0), (_alpha * _x, True)),
                     r"\operatorname{LeakyReLU}", alpha=0.01)
ELU = _builtin("ELU", "elu", sp.Piecewise((_x, _x > 0), (_alpha * (sp.exp(_x) - 1), True)),
               r"\operatorname{ELU}", alpha=1.0)
Softplus = _builtin("Softplus", "softplus", sp.log(1 + sp.exp(_x)),
                    r"\operatorname{softplus}",
                    stable=sp.Max(_x, 0) + sp.log(1 + sp.exp(-sp.Abs(_x))))
GELU = _builtin("GELU", "gelu", _x * (1 + sp.erf(_x / sp.sqrt(2))) / 2,
                r"\operatorname{GELU}")
Swish = _builtin("Swish", "swish", _x * sigmoid(_x), r"\operatorname{swish}")
SiLU = _builtin("SiLU", "silu", _x * sigmoid(_x), r"\operatorname{SiLU}")
Softmax = _builtin("Softmax", "softmax", sp.exp(_x), r"\operatorname{softmax}", kind="softmax")
BUILTIN_NAMES.update(REGISTRY)

__all__ = [
    "ActivationEntry", "ActivationLayer", "REGISTRY", "activation", "exact_number",
    "Identity", "Tanh", "Sigmoid", "ReLU", "LeakyReLU", "ELU", "Softplus", "GELU", "Swish",
    "SiLU", "Softmax",
]
