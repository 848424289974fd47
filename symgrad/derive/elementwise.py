"""Differentiate one elementwise activation: f(z) -> f'(z), straight from SymPy.

The raw derivative is all this stage produces; `symgrad.simplify.saved_output`
then searches for a form in the saved output a = f(z).

>>> from symgrad.definition.activations import Tanh
>>> derive_elementwise(Tanh()).derivative_raw
1 - tanh(z)**2
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symgrad.definition.activations import ActivationLayer
from symgrad.definition.convention import differentiate
from symgrad.definition.formulas import Z
from symgrad.derive.seams import smooth_seams


@dataclass(frozen=True)
class RawActivation:
    """An activation's forward formula in z and SymPy's derivative of it."""

    name: str
    latex: str
    forward: sp.Expr
    stable_given: sp.Expr | None   # the entry's own stable forward form, if any
    derivative_raw: sp.Expr
    kind: str


def derive_elementwise(layer: ActivationLayer, seams: bool = True) -> RawActivation:
    """f'(z) = sympy.diff(f(z), z) with the kink convention of `symgrad.definition.convention`,
    and the slope itself where branches meet smoothly (`symgrad.derive.seams`).

    ``seams=False`` skips that search (SymPy's solveset, unbounded in time): for the
    fallback plans built after the symbolic budget ran out.
    """
    entry = layer.entry
    forward = layer.forward
    derivative = differentiate(forward, Z, f"activation {entry.name!r}")
    if seams:
        derivative = smooth_seams(forward, derivative, Z)
    return RawActivation(entry.name, entry.latex, forward, entry.stable_forward(layer.params),
                         derivative, entry.kind)
