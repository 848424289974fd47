"""Plot a function of one variable with its derivative (seed 003's sin and cos figure).

The function is a SymPy expression of one symbol, a one-argument function
built from Values (``lambda v: v.sin()``, ``sg.Value.cos``) or the name of a
unary scalar op (``"tanh"``); its formula is read off the graph with
`symbolic`. The derivative is SymPy's (`differentiate`), never a finite
difference, and both curves are evaluated from their formulas.

>>> import sympy as sp
>>> a = sp.Symbol("a", real=True)
>>> fig = plot_derivative(sp.sin(a), a)
>>> fig.axes[0].get_legend_handles_labels()[1]
['sin(a)', "sin(a)' = cos(a)"]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from symgrad.definition.convention import differentiate
from symgrad.definition.scalar_ops import SCALAR_OPS
from symgrad.definition.supported import LAMBDIFY_MODULES
from symgrad.definition.value import ScalarDomainError, Value, apply
from symgrad.derive.scalar import node_symbols, symbolic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SUFFIXES = (".png", ".pdf", ".svg")
FunctionLike = sp.Expr | Callable[[Value], Value] | str


def function_formula(f: FunctionLike, var: sp.Symbol | str | None = None,
                     at: float = 1.0) -> tuple[sp.Expr, sp.Symbol]:
    """The formula of ``f`` and its variable.

    A callable is called once on a leaf Value named ``var`` (default ``x``)
    holding ``at``, a point where its ops are defined; a string is a unary op.

    >>> function_formula(lambda v: (v * v).tanh())
    (tanh(x**2), x)
    >>> function_formula("cos", "t")
    (cos(t), t)
    """
    if isinstance(var, str):
        var = sp.Symbol(var, real=True)
    if var is not None and not isinstance(var, sp.Symbol):
        raise TypeError(f"plot_derivative: var must be a SymPy Symbol or a name, got {var!r}")
    if isinstance(f, str):
        op = SCALAR_OPS[f]   # UnknownOpError lists the registered ops
        if op.arity != 1 or op.params:
            raise ValueError(f"plot_derivative: op {f!r} takes {op.arity} operand(s) and "
                             f"parameters {list(op.params)}; only one-operand ops plot")
        f = functools.partial(apply, f)   # the op as a function of one Value
    if isinstance(f, sp.Basic):
        if not isinstance(f, sp.Expr):
            raise TypeError(f"plot_derivative: {f!r} is not an expression")
        free = f.free_symbols
        if var is None:
            if len(free) != 1:
                raise ValueError(f"plot_derivative: {f} has the symbols {sorted(map(str, free))}; "
                                 "pass var= and an expression of that symbol only")
            (var,) = free
        elif not free <= {var}:
            raise ValueError(f"plot_derivative: {f} uses {sorted(map(str, free - {var}))} "
                             f"besides the variable {var}")
        return f, var
    if not callable(f):
        raise TypeError(f"plot_derivative: expected a SymPy expression, a function of one Value "
                        f"or a unary op name, got {f!r}")
    name = var.name if var is not None else "x"
    leaf = Value(at, label=name)
    try:
        out = f(leaf)
    except ScalarDomainError as exc:
        raise ValueError(f"plot_derivative: the function is not defined at {name} = {at} (the "
                         f"interval's midpoint), where its formula is read: {exc}") from None
    if not isinstance(out, Value):
        raise TypeError(f"plot_derivative: the function returned {out!r}, not a Value")
    symbols = node_symbols(out)
    return symbolic(out), symbols.get(id(leaf), sp.Symbol(name, real=True))


def plot_derivative(
    f: FunctionLike,
    var: sp.Symbol | str | None = None,
    interval: tuple[float, float] = (0.0, 2 * math.pi),
    points: int = 200,
    path: str | Path | None = None,
    marker: str | None = None,
    title: str | None = None,
) -> Figure:
    """Plot ``f`` and its derivative (from SymPy) over ``interval``; return the Figure.

    ``path`` (``.png``, ``.pdf`` or ``.svg``) also saves it. An interval whose
    ends are multiples of pi/2 gets ticks at pi/2, as the notes plot sin on
    [0, 2 pi]. ``marker`` (e.g. ``"o"``) marks the sample points.
    """
    lo, hi = _interval(interval)
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"plot_derivative: points must be an int >= 2, got {points!r}")
    if path is not None and Path(path).suffix.lower() not in SUFFIXES:
        raise ValueError(f"plot_derivative: unsupported suffix in {str(path)!r}; "
                         f"use one of {SUFFIXES}")
    expr, var = function_formula(f, var, at=(lo + hi) / 2)
    deriv = differentiate(expr, var, where=f"plot_derivative of {expr}")
    xs = np.linspace(lo, hi, points)
    # Imported here: matplotlib costs ~1 s to import and only plotting needs it.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.0), dpi=100)
    ax = fig.add_subplot()
    ax.plot(xs, values(expr, var, xs), marker=marker, label=_text(expr))
    ax.plot(xs, values(deriv, var, xs), marker=marker, label=f"{_text(expr)}' = {_text(deriv)}")
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    _pi_ticks(ax, lo, hi)
    ax.set_xlabel(_text(var))
    ax.grid(True)
    ax.legend()
    if title is not None:
        ax.set_title(_text(title))
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format=path.suffix[1:].lower())
    return fig


def values(expr: sp.Expr, var: sp.Symbol, xs: np.ndarray) -> np.ndarray:
    """``expr`` at every point of ``xs`` (NaN where it is undefined).

    >>> x = sp.Symbol("x")
    >>> values(sp.Integer(2), x, np.zeros(3)).tolist()
    [2.0, 2.0, 2.0]
    """
    # The project's table (erf/erfc as ufuncs, Heaviside(0) = 0 as the kernels use).
    fn = sp.lambdify([var], expr, modules=LAMBDIFY_MODULES)
    with np.errstate(all="ignore"):
        out = np.asarray(fn(xs), dtype=float)
    return np.broadcast_to(out, xs.shape).copy()


def _interval(interval: object) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in interval)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"plot_derivative: interval must be two numbers (lo, hi), "
                         f"got {interval!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"plot_derivative: interval must be finite with lo < hi, got {interval!r}")
    return lo, hi


def _text(obj: object) -> str:
    # matplotlib reads '$...$' as math: a name is data, so its dollars are escaped.
    return str(obj).replace("$", r"\$")


def _pi_ticks(ax, lo: float, hi: float) -> None:
    """Ticks at multiples of pi/2 when both ends are such multiples (and not too many)."""
    half = math.pi / 2
    ends = [round(v / half) for v in (lo, hi)]
    if any(abs(v / half - k) > 1e-9 for v, k in zip((lo, hi), ends, strict=True)):
        return
    if ends[1] - ends[0] > 16:
        return
    ks = range(ends[0], ends[1] + 1)
    ax.set_xticks([k * half for k in ks], [_pi_label(Fraction(k, 2)) for k in ks])


def _pi_label(q: Fraction) -> str:
    """``3/2`` -> ``3π/2``; ``1`` -> ``π``; ``0`` -> ``0``.

    >>> [_pi_label(Fraction(k, 2)) for k in (-1, 0, 1, 2, 3)]
    ['-π/2', '0', 'π/2', 'π', '3π/2']
    """
    if q == 0:
        return "0"
    sign = "-" if q < 0 else ""
    num = "" if abs(q.numerator) == 1 else str(abs(q.numerator))
    return f"{sign}{num}π" + (f"/{q.denominator}" if q.denominator != 1 else "")
