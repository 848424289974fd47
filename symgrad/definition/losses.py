"""Losses as formulas: one registry entry per loss l(p, y).

A loss is an elementwise formula in a prediction and a target variable (plus
named numeric parameters such as Huber's ``delta``). The target is the
variable named ``y`` unless ``target=`` says otherwise; the other variable is
the prediction. Derivatives are derived by SymPy downstream, never here.

>>> yhat, y = sp.symbols("yhat y", real=True)
>>> LogCosh = loss("logcosh", sp.log(sp.cosh(yhat - y)))
>>> LogCosh.formula
log(cosh(p - y))
>>> LOSSES["huber"](delta=2.0).params
{'delta': 2.0}

Reduction over a batch: elementwise losses take the mean over all n*k
elements; ``cross_entropy`` (reduction ``"rows"``) sums over the classes of a
row and takes the mean over rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import sympy as sp

from symgrad.definition.activations import (
    _check_formula,
    check_params,
    exact_number,
    split_variables,
)
from symgrad.definition.convention import differentiate
from symgrad.definition.errors import DefinitionError, NotElementwiseError
from symgrad.definition.formulas import P, Y
from symgrad.definition.latex_input import check_latex
from symgrad.definition.names import check_name, check_param_name
from symgrad.definition.supported import check_supported

Reduction = Literal["elements", "rows"]


@dataclass(frozen=True)
class LossEntry:
    """A loss l(p, y) in the canonical symbols ``p`` and ``y``; call it to set parameters."""

    name: str
    formula: sp.Expr                  # in P, Y and parameter symbols
    latex: str
    defaults: tuple[tuple[str, float], ...] = ()
    reduction: Reduction = "elements"
    requires_softmax: bool = False    # the loss only makes sense on a normalised output
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.params:
            object.__setattr__(self, "params", dict(self.defaults))

    def __call__(self, **params: float) -> LossEntry:
        """This loss with some parameters changed (``huber(delta=2.0)``)."""
        names = [n for n, _ in self.defaults]
        values = dict(self.params)
        for key, value in params.items():
            if key not in names:
                raise TypeError(f"loss {self.name!r} has no parameter {key!r} "
                                f"(parameters: {names})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f"loss {self.name!r}: parameter {key}={value!r} must be a "
                                 "finite real number")
            values[key] = float(value)
        return replace(self, params=values)

    def bound(self) -> sp.Expr:
        """l(p, y) with the parameter values substituted exactly."""
        names = dict(self.params)
        subs = {s: exact_number(names[s.name]) for s in self.formula.free_symbols
                if s.name in names}
        return self.formula.xreplace(subs)


LOSSES: dict[str, LossEntry] = {}
BUILTIN_NAMES: set[str] = set()   # filled once the built-ins below are registered


def loss(name: str, formula: sp.Expr | str, latex: str | None = None, *,
         prediction: sp.Symbol | None = None, target: sp.Symbol | None = None,
         reduction: Reduction = "elements", requires_softmax: bool = False,
         replace: bool = False, **params: float) -> LossEntry:
    """Define (and register) an elementwise loss l(prediction, target) from its formula.

    ``name`` is an ASCII identifier, ``latex`` checked LaTeX, ``formula`` a
    SymPy expression or a string formula (parsed safely, never evaluated). A
    name already registered with a different definition (``"mse"``, ...) is
    refused unless ``replace=True``.
    """
    entry = _entry(name, formula, latex, prediction, target, reduction, requires_softmax,
                   params)
    check_loss(entry)
    return _register(entry, replace)


def _entry(name: str, formula: sp.Expr | str, latex: str | None, prediction: sp.Symbol | None,
           target: sp.Symbol | None, reduction: Reduction, requires_softmax: bool,
           params: dict[str, float]) -> LossEntry:
    """Parse and check what costs nothing to check: names, LaTeX, variables, functions."""
    check_name(name, "loss")
    what = f"loss {name!r}"
    if reduction not in ("elements", "rows"):
        raise DefinitionError(f"{what}: reduction must be 'elements' or 'rows'")
    for key in params:
        check_param_name(key, what)
    if latex is not None:
        check_latex(latex, what)
    expr = _check_formula(formula, what, params)
    check_params(params, what)
    variables = split_variables(expr, set(params), what)
    if target is None:
        named_y = [v for v in variables if v.name == "y"]
        target = named_y[0] if named_y else None
    if prediction is None and target is not None:
        others = [v for v in variables if v != target]
        prediction = others[0] if len(others) == 1 else None
    if target is None or prediction is None or set(variables) - {target, prediction} \
            or target not in variables:
        found = ", ".join(v.name for v in variables) or "none"
        raise NotElementwiseError(
            f"{what}: a loss must be a formula in exactly two variables, a prediction and a "
            f"target named 'y' (or pass prediction=/target=); {expr} has free variables: "
            f"{found}")
    canon = expr.xreplace({prediction: P, target: Y})
    check_supported(canon, what)
    return LossEntry(name, canon, latex or r"\operatorname{" + name.replace("_", r"\_") + "}",
                     tuple((k, float(v)) for k, v in params.items()), reduction,
                     requires_softmax)


def check_loss(entry: LossEntry) -> None:
    """The check that needs SymPy's work: dl/dp exists and uses only supported functions."""
    what = f"loss {entry.name!r}"
    derivative = differentiate(entry.bound(), P, what)
    if derivative == 0:
        raise DefinitionError(
            f"{what}: {entry.bound()} is piecewise constant in the prediction, dl/dp is 0 "
            "wherever it exists (SymPy's DiracDelta terms are zero off the steps): training "
            "would never move. Use a smooth surrogate (e.g. a hinge Max(0, 1 - y*p))")
    check_supported(derivative, f"{what} (derivative {derivative})")


def _register(entry: LossEntry, replace: bool) -> LossEntry:
    name, what = entry.name, f"loss {entry.name!r}"
    existing = LOSSES.get(name)
    if existing is not None and existing == entry:
        return existing   # the same definition again (a re-run notebook cell): no collision
    if existing is not None and not replace:
        origin = "a built-in" if name in BUILTIN_NAMES else "defined earlier"
        raise DefinitionError(
            f"{what} is already registered ({origin}: {sp.sstr(existing.formula)}) with a "
            "different definition; every later compile(loss=" + repr(name) + ") would use the "
            "new one. Pass replace=True to replace it, or choose another name")
    LOSSES[name] = entry
    return entry


# --- built-ins: parsed and registered exactly as a user's ------------------------------
def _builtin(name: str, formula: sp.Expr, latex: str, *, reduction: Reduction = "elements",
             requires_softmax: bool = False, **params: float) -> LossEntry:
    """`loss` without `check_loss`: that runs for every built-in in tests/test_losses.py
    instead of at every import."""
    return _register(_entry(name, formula, latex, None, None, reduction, requires_softmax,
                            params), replace=False)


_p, _y = sp.symbols("p y", real=True)
_delta = sp.Symbol("delta", real=True)

MSE = _builtin("mse", (_p - _y) ** 2, r"\operatorname{MSE}")
MAE = _builtin("mae", sp.Abs(_p - _y), r"\operatorname{MAE}")
BCE = _builtin("bce", -(_y * sp.log(_p) + (1 - _y) * sp.log(1 - _p)), r"\operatorname{BCE}")
CrossEntropy = _builtin("cross_entropy", -_y * sp.log(_p), r"\operatorname{CE}",
                        reduction="rows", requires_softmax=True)
Huber = _builtin("huber", sp.Piecewise(((_p - _y) ** 2 / 2, sp.Abs(_p - _y) <= _delta),
                                       (_delta * (sp.Abs(_p - _y) - _delta / 2), True)),
                 r"\operatorname{Huber}", delta=1.0)
BUILTIN_NAMES.update(LOSSES)


def resolve_loss(spec: str | LossEntry) -> LossEntry:
    """A registry name or a `LossEntry` -> the `LossEntry`; clear error otherwise."""
    if isinstance(spec, LossEntry):
        return spec
    if isinstance(spec, str):
        if spec in LOSSES:
            return LOSSES[spec]
        raise DefinitionError(f"unknown loss {spec!r}; registered losses: {sorted(LOSSES)}")
    raise TypeError(f"loss must be a name or a symgrad loss entry, got {type(spec).__name__}")


__all__ = ["LossEntry", "LOSSES", "loss", "resolve_loss", "MSE", "MAE", "BCE",
           "CrossEntropy", "Huber"]
