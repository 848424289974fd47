"""The finite-difference slope beside the exact derivative, and why they differ in floats.

Seed 000 bumps one input by h = 1e-4, reruns the forward pass and prints
``slope 0.9999999999976694`` for dd/dc = 1. This section does the same on the
user's own graph for every input, and explains the difference with its size,
from the numbers themselves: ``x + h`` is stored as the nearest double, so the
step actually taken is ``(x + h) - x``, not ``h``; the slope is divided by
``h``, so it carries the step's relative error. It also gives the truncation
error ``h/2 * f''(x)`` from SymPy's second derivative (zero for a graph linear
in ``x``) and the slope over the step actually taken.

>>> from symgrad.definition.value import Value
>>> a, b, c = Value(2.0, label="a"), Value(-3.0, label="b"), Value(10.0, label="c")
>>> d = a * b + c; d.label = "d"
>>> s = slope_report(d, c)
>>> s.slope, s.exact, s.taken
(0.9999999999976694, 1.0, 9.999999999976694e-05)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import sympy as sp

from symgrad.definition.value import ScalarDomainError, Value
from symgrad.derive.scalar import node_symbols, symbolic
from symgrad.derive.scalar_backward import gradients
from symgrad.graph.scalar import graph_order
from symgrad.render.animate import recompute
from symgrad.render.document import Derivation

__all__ = ["SlopeReport", "slope_report", "slope_section"]


@dataclass(frozen=True)
class SlopeReport:
    """One input's finite-difference check: numbers the printout shows."""

    name: str
    x: float            # the input's value
    h: float            # the step asked for
    f0: float           # f(x)
    f1: float           # f(x + h), the forward pass rerun
    slope: float        # (f1 - f0) / h, as the notes compute it
    exact: float        # the derivative backpropagation gives
    stored: float       # x + h as stored (the nearest double)
    taken: float        # stored - x: the step actually taken
    over_taken: float   # (f1 - f0) / taken
    second: float       # f''(x) from SymPy (its truncation error is h/2 * f''); nan at a kink

    @property
    def error(self) -> float:
        """slope - exact."""
        return self.slope - self.exact

    @property
    def truncation(self) -> float:
        """The first-order truncation error of the forward difference, h/2 * f''(x)."""
        return self.h / 2 * self.second


def _exact_decimal(x: float) -> str:
    # 20 significant digits show where the stored double departs from the typed decimal.
    return f"{Decimal(x):.20g}"


def _math_number(text: str) -> str:
    r"""A Python number for display math: ``2.5e-05`` as ``2.5 \cdot 10^{-5}``.

    >>> _math_number("-3.535e-05"), _math_number("0.5")
    ('-3.535 \\cdot 10^{-5}', '0.5')
    """
    mantissa, e, exponent = text.partition("e")
    return rf"{mantissa} \cdot 10^{{{int(exponent)}}}" if e else text


def _prose_number(text: str) -> str:
    """A number in prose as one unbreakable piece of math, printed as Python prints it
    (a line break inside ``-2.9998`` or ``2.11e-12`` would read as two numbers)."""
    return rf"$\text{{{text}}}$"


def slope_report(root: Value, leaf: Value, h: float = 1e-4) -> SlopeReport:
    """Bump ``leaf`` by ``h``, rerun ``root``'s forward pass, compare with the exact derivative.

    The graph's data are restored afterwards (grads are not touched).
    """
    if isinstance(h, bool) or not isinstance(h, int | float) or not (math.isfinite(h) and h > 0):
        raise ValueError(f"slope: h must be a positive finite number, got {h!r}")
    if leaf.op is not None or leaf._const:
        raise ValueError(f"slope: {leaf!r} is not an input leaf of the graph")
    names = node_symbols(root)
    exact = next(g for n, g in gradients(root) if n is leaf)
    x, f0 = leaf.data, root.data
    stored = x + h
    try:
        leaf.data = stored
        f1 = recompute(root)
    except ScalarDomainError as exc:
        raise ValueError(f"slope: the graph is not defined at {leaf.label or 'the input'} + h: "
                         f"{exc}") from None
    finally:
        leaf.data = x
        recompute(root)
    sym = names[id(leaf)]
    at = {names[id(n)]: n.data for n in graph_order(root) if n.op is None and not n._const}
    second_at = sp.diff(symbolic(root), sym, 2).xreplace(at)
    # At a kink (relu at 0) f'' is an impulse, DiracDelta(0), not a number: nan.
    try:
        second = math.nan if second_at.has(sp.DiracDelta) else float(second_at)
    except TypeError:   # zoo, nan or a symbol left over: no number to report
        second = math.nan
    taken = stored - x
    return SlopeReport(name=str(sym), x=x, h=float(h), f0=f0, f1=f1, slope=(f1 - f0) / h,
                       exact=exact, stored=stored, taken=taken, over_taken=(f1 - f0) / taken,
                       second=second)


def slope_section(doc: Derivation, root: Value, h: float = 1e-4) -> None:
    """Append the finite-difference check of every input of ``root`` to ``doc``."""
    from symgrad.render.scalar import plain, tex

    names = node_symbols(root)
    top = names[id(root)]
    leaves = [n for n in graph_order(root) if n.op is None and not n._const and n is not root]
    if not leaves:
        return
    sec = doc.section(f"Finite differences: the slope with h = {h:g} beside the exact derivative")
    sec.add(text=f"Bump one input by $h = {h:g}$, rerun the forward pass, and divide the change "
                 f"of ${tex(top)}$ by $h$. The exact derivative is the one backpropagation "
                 "gives; the difference is the error of the floats.")
    for leaf in leaves:
        r = slope_report(root, leaf, h)
        x_t, x_p, t_t, t_p = tex(names[id(leaf)]), plain(names[id(leaf)]), tex(top), plain(top)
        m = _math_number
        # Two displays, not one aligned block: each breaks on its own, so a long input
        # name on the left of the quotient does not push the other row off the page.
        sec.add(
            math=(rf"\frac{{{t_t}({x_t} + h) - {t_t}({x_t})}}{{h}} = "
                  rf"\frac{{{m(repr(r.f1))} - {m(repr(r.f0))}}}{{{m(f'{h:g}')}}} = "
                  rf"{m(repr(r.slope))}"),
            plain=(f"slope ({t_p}({x_p} + h) - {t_p}({x_p}))/h = ({r.f1!r} - {r.f0!r})/{h:g} = "
                   f"{r.slope!r}"))
        sec.add(
            math=(rf"\frac{{\partial {t_t}}}{{\partial {x_t}}} = {m(repr(r.exact))}, "
                  rf"\quad \text{{error }} {m(f'{r.error:.4g}')}"),
            plain=f"exact d{t_p}/d{x_p} = {r.exact!r}; error {r.error:.4g}")
        if r.error == 0.0:
            continue
        if not math.isfinite(r.second):
            sec.add(text=(
                f"Why not {_prose_number(repr(r.exact))}: ${t_t}$ has a kink at "
                f"${x_t}$ = {_prose_number(repr(r.x))} (SymPy's $f''$ is an impulse there), so "
                f"the step to the right measures the slope on the right of the kink, while the "
                f"derivative takes the value of the kink convention. This difference is not "
                f"a float error and does not shrink with h."))
            continue
        step_rel = (r.taken - h) / h
        step_part = r.exact * step_rel
        rest = r.error - step_part - r.truncation
        ulp = math.ulp(r.f1)
        n = _prose_number
        sec.add(text=(
            f"Why not exactly {n(repr(r.exact))}: (1) ${x_t} + h$ = {n(repr(r.x))} + {h:g} is "
            f"stored as the nearest double, {n(_exact_decimal(r.stored))}, so the step actually "
            f"taken is {n(repr(r.taken))}, a relative error of {n(f'{step_rel:.4g}')}; it moves "
            f"the slope by {n(repr(r.exact))} times that, {n(f'{step_part:.4g}')}. (2) The "
            f"truncation error $h/2 \\cdot f''$ is {n(f'{r.truncation:.4g}')} (SymPy: "
            f"$f'' = {m(f'{r.second:.6g}')}$). (3) The rest, {n(f'{rest:.4g}')}, is the "
            f"rounding of the values of ${t_t}$ themselves, at most about one spacing of "
            f"doubles over h: doubles near {n(repr(r.f1))} are {n(f'{ulp:.4g}')} apart, and "
            f"{n(f'{ulp:.4g}')} / h = {n(f'{ulp / h:.4g}')}."))
