"""Check a user's ``stable=`` form against the formula it claims to equal.

A stable form replaces the formula in the numeric forward pass, so a wrong one
trains a different network silently (tanh "stabilised" as the identity trains
on the identity). It is checked when the activation or op is *defined*:

- exactly: both forms evaluated in mpmath at 60 digits at sample points from
  1e-6 to 700 in magnitude, both signs (where float64 would overflow an
  intermediate step, mpmath does not). Where the formula is defined, the
  stable form must agree to 1e-9 relative (absolute below 1);
- in float64, as the forward pass computes it: where the formula's exact value
  fits float64, the stable form must be finite and agree to 1e-6 relative.

This stage comes before `symgrad.simplify`, so the check is numeric only (no
bounded symbolic proof here; `symgrad.check` proves the identity symbolically).

>>> x = sp.Symbol("x", real=True)
>>> check_stable_form(sp.log(1 + sp.exp(x)), sp.Max(x, 0) + sp.log(1 + sp.exp(-sp.Abs(x))),
...                   [x], {}, "activation 'softplus'")
>>> check_stable_form(sp.tanh(x), x, [x], {}, "activation 't'")
Traceback (most recent call last):
...
symgrad.definition.errors.DefinitionError: activation 't': the stable form x is not equal to \
the formula tanh(x): at x = 0.5 the formula gives 0.4621171573 and the stable form 0.5; \
pass a stable form equal to the formula, or none
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from symgrad.definition.errors import DefinitionError
from symgrad.definition.exact import converged, mp_function
from symgrad.definition.supported import LAMBDIFY_MODULES

EXACT_RTOL = 1e-9
FLOAT64_RTOL = 1e-6
_FITS_FLOAT64 = 1e300
# A few plain values first (so a mismatch is reported at a readable point), then |z|
# from 1e-6 to 700 on a log scale, both signs.
_MAGNITUDES = [float(f"{v:.3g}") for v in np.logspace(-6, math.log10(700.0), 25)]
GRID: tuple[float, ...] = (0.0, 0.5, -0.5, 1.5, -1.5, 3.0, -3.0,
                           *(s * v for v in _MAGNITUDES for s in (1.0, -1.0)))
MULTI_POINTS = 120   # sampled operand tuples for ops of two or more operands


def sample_points(arity: int, seed: int = 0) -> list[tuple[float, ...]]:
    """Operand tuples to compare at: the whole grid for one operand, a fixed sample else."""
    if arity == 1:
        return [(v,) for v in GRID]
    rng = random.Random(seed)
    diagonal = [(v,) * arity for v in GRID[::3]]
    return diagonal + [tuple(rng.choice(GRID) for _ in range(arity))
                       for _ in range(MULTI_POINTS)]


def _real(fn: Callable) -> Callable:
    # mpmath answers some real formulas with a complex number of zero imaginary part.
    def call(*args):
        value = fn(*args)
        if isinstance(value, mpmath.mpc):
            if value.imag != 0:
                raise ValueError("complex result")
            value = value.real
        return value
    return call


def _exact(fn: Callable, args: Sequence[float]) -> mpmath.mpf | None:
    # The value as a real mpf at as many digits as it needs (a fixed 60 digits refused
    # exp(2x)(1 - tanh x) = 2/(1 + e^-2x) at x = 128), or None where the form is
    # undefined (pole, log of a negative, complex result, never settles).
    value = converged(_real(fn), list(args), trust_zero=False)
    return value if value is not None and mpmath.isfinite(value) else None


def _float64(fn: Callable, args: Sequence[float]) -> float:
    try:
        with np.errstate(all="ignore"):
            return float(np.asarray(fn(*args), dtype=float))
    except (ArithmeticError, ValueError, TypeError):
        return math.nan


def _show(value: object) -> str:
    return mpmath.nstr(value, 10) if isinstance(value, mpmath.mpf) else repr(value)


def check_stable_form(formula: sp.Expr, stable: sp.Expr, variables: Sequence[sp.Symbol],
                      params: Mapping[sp.Symbol, float], what: str,
                      forward: Callable[..., float] | None = None,
                      points: Sequence[tuple[float, ...]] | None = None) -> None:
    """DefinitionError naming ``what`` and a point where ``stable`` differs from ``formula``.

    ``variables`` are the formula's inputs; ``params`` fixes every parameter
    symbol to a value. ``forward`` is how the stable form is evaluated in
    float64 (default: NumPy via lambdify); it takes the variables and then the
    parameter values.
    """
    psyms, pvals = list(params), [float(v) for v in params.values()]
    args = [*variables, *psyms]
    f_mp = mp_function(formula, tuple(args))
    s_mp = mp_function(stable, tuple(args))
    s_64 = forward or sp.lambdify(args, stable, modules=LAMBDIFY_MODULES)
    for point in points or sample_points(len(variables)):
        full = (*point, *pvals)
        want = _exact(f_mp, full)
        if want is None:
            continue   # outside the formula's domain: nothing to agree with
        got = _exact(s_mp, full)
        where = ", ".join(f"{v.name} = {x!r}" for v, x in zip(variables, point, strict=True))
        if params:
            where += " (" + ", ".join(f"{p.name} = {x!r}" for p, x in zip(psyms, pvals,
                                                                         strict=True)) + ")"
        if got is None or abs(got - want) > EXACT_RTOL * max(1, abs(want)):
            shown = "is undefined there" if got is None else f"gives {_show(got)}"
            raise DefinitionError(
                f"{what}: the stable form {stable} is not equal to the formula {formula}: at "
                f"{where} the formula gives {_show(want)} and the stable form "
                f"{shown.removeprefix('gives ')}; pass a stable form equal to the formula, "
                "or none")
        if abs(want) >= _FITS_FLOAT64:
            continue
        got64 = _float64(s_64, full)
        if not math.isfinite(got64) or abs(got64 - float(want)) > FLOAT64_RTOL * max(
                1.0, abs(float(want))):
            raise DefinitionError(
                f"{what}: the stable form {stable} is not numerically safe: at {where} it "
                f"evaluates to {got64!r} in float64, but the formula {formula} is "
                f"{_show(want)}; a stable form must evaluate accurately where the formula "
                "is finite")


__all__ = ["GRID", "check_stable_form", "sample_points"]
