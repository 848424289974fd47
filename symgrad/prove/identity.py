"""Prove one `Identity` (raw == simplified): symbolically and numerically.

Symbolic: ``raw - simplified`` with the substitutions applied must reduce to 0
with bounded effort (`symgrad.simplify.zero`, branch by branch where kinks
are). Numeric: both sides at random points of the identity's domain, plus the
kink points themselves, so the subgradient convention is checked too.

>>> import sympy as sp
>>> z, a = sp.symbols("z a", real=True)
>>> sig = 1 / (1 + sp.exp(-z))
>>> proof = prove_identity(Identity("sigmoid'", sp.diff(sig, z), a*(1 - a), {a: sig}))
>>> proof.method, proof.max_error < 1e-12
('cancel', True)
>>> prove_identity(Identity("wrong", sp.tanh(z), z))
Traceback (most recent call last):
...
symgrad.prove.identity.ProofError: identity 'wrong' not proven symbolically: tanh(z) - (z) \
does not reduce to 0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symgrad.definition.supported import LAMBDIFY_MODULES
from symgrad.derive.plan import Identity
from symgrad.simplify.zero import breakpoints, congruent

TOLERANCE = {"float64": 1e-8, "float32": 2e-3}


class ProofError(AssertionError):
    """An identity, rule or gradient that could not be proven; the message names it."""


@dataclass(frozen=True)
class IdentityProof:
    """How one identity was proven and the worst numeric disagreement seen."""

    name: str
    method: str          # symbolic method (e.g. "cancel", "branchwise")
    max_error: float     # max |raw - simplified| / (1 + |raw|) at the sample points
    points: int


def sides(ident: Identity) -> tuple[sp.Expr, sp.Expr]:
    """Both sides in the same variables (substitutions applied)."""
    subs = ident.substitutions
    return sp.sympify(ident.raw).subs(subs), sp.sympify(ident.simplified).subs(subs)


def prove_symbolic(ident: Identity) -> str:
    """The method by which raw - simplified reduces to 0; `ProofError` otherwise."""
    raw, simple = sides(ident)
    method = congruent(raw, simple)
    if method is None:
        raise ProofError(f"identity {ident.name!r} not proven symbolically: {ident.raw} - "
                         f"({ident.simplified}) does not reduce to 0")
    return method


def _samples(ident: Identity, variables: list[sp.Symbol], expr: sp.Expr, count: int,
             rng: np.random.Generator, dtype: np.dtype) -> dict[sp.Symbol, np.ndarray]:
    values = {}
    for v in variables:
        lo, hi = ident.domain.get(v, (-3.0, 3.0))
        pts = rng.uniform(lo, hi, count)
        kinks = [float(c) for c in (breakpoints(expr, v) or []) if c.is_number]
        for i, c in enumerate(kinks[: count // 4]):
            pts[i] = c   # exactly at the kink: the convention must agree on both sides
        values[v] = pts.astype(dtype)
    return values


def prove_numeric(ident: Identity, dtype: str = "float64", count: int = 200,
                  seed: int = 0) -> float:
    """Max relative disagreement of the two sides at random domain points; error if large."""
    raw, simple = sides(ident)
    variables = sorted(raw.free_symbols | simple.free_symbols, key=lambda s: s.name)
    dt = np.dtype(dtype)
    values = _samples(ident, variables, raw - simple, count, np.random.default_rng(seed), dt)
    args = [values[v] for v in variables] or [np.zeros(count, dt)]
    params = variables or [sp.Dummy()]
    with np.errstate(all="ignore"):
        lhs = np.broadcast_to(sp.lambdify(params, raw, LAMBDIFY_MODULES)(*args), (count,))
        rhs = np.broadcast_to(sp.lambdify(params, simple, LAMBDIFY_MODULES)(*args), (count,))
    lhs, rhs = lhs.astype(np.float64), rhs.astype(np.float64)
    finite = np.isfinite(lhs)
    if finite.sum() < count // 2 and dt != np.float64:
        # the identity holds in real numbers; float32's range cannot hold the raw side
        # here (log(e^(4z^2) + 1) overflows beyond |z| ~ 4.7): compare in float64
        return prove_numeric(ident, "float64", count, seed)
    if finite.sum() < count // 2:
        raise ProofError(f"identity {ident.name!r}: the raw side is not finite at most sample "
                         f"points of the domain {ident.domain}")
    if not np.all(np.isfinite(rhs[finite])):
        i = np.flatnonzero(finite & ~np.isfinite(rhs))[0]
        raise ProofError(f"identity {ident.name!r}: simplified side is {rhs[i]} where the raw "
                         f"side is {lhs[i]} (at {[(v.name, values[v][i]) for v in variables]})")
    err = np.abs(lhs[finite] - rhs[finite]) / (1 + np.abs(lhs[finite]))
    worst = float(err.max()) if err.size else 0.0
    if worst > TOLERANCE[dt.name]:
        i = np.flatnonzero(finite)[int(err.argmax())]
        raise ProofError(f"identity {ident.name!r} fails numerically: raw {lhs[i]} vs "
                         f"simplified {rhs[i]} at {[(v.name, values[v][i]) for v in variables]}")
    return worst


def prove_identity(ident: Identity, dtype: str = "float64", seed: int = 0) -> IdentityProof:
    """Symbolic and numeric proof of ``ident``; raises `ProofError` naming it on failure."""
    method = prove_symbolic(ident)
    worst = prove_numeric(ident, dtype, seed=seed)
    return IdentityProof(ident.name, method, worst, 200)
