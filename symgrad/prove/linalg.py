"""Prove the Dense layer's matrix rules by SymPy on explicit symbolic matrices.

For Z = A W + 1 b (A: n x h, W: h x k, b: 1 x k) and an upstream gradient G =
dL/dZ, take the scalar L = sum(G o Z): its gradients are exactly what any
loss sends back through the layer. Differentiating entry by entry must give

    dL/dW = A^T G,   dL/db = 1^T G (sum over rows),   dL/dA = G W^T.

>>> [p.name for p in prove_dense_rules(((2, 3, 2),))]
['dW = A^T dZ (n=2, h=3, k=2)', 'db = sum_rows dZ (n=2, h=3, k=2)', \
'dA_prev = dZ W^T (n=2, h=3, k=2)']
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from symgrad.prove.identity import ProofError

SHAPES: tuple[tuple[int, int, int], ...] = ((1, 1, 1), (2, 3, 2), (3, 2, 4))


@dataclass(frozen=True)
class RuleProof:
    """One matrix rule proven on one shape."""

    name: str
    method: str = "entrywise sympy.diff on explicit matrices"
    max_error: float = 0.0


def _matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}{i}{j}", real=True))


def _check(name: str, derived: sp.Matrix, rule: sp.Matrix) -> RuleProof:
    if derived.shape != rule.shape or any(sp.expand(e) != 0 for e in derived - rule):
        raise ProofError(f"matrix rule {name!r} fails: derived {derived} vs rule {rule}")
    return RuleProof(name)


@cache
def prove_dense_rules(shapes: tuple[tuple[int, int, int], ...] = SHAPES) -> tuple[RuleProof, ...]:
    """dW, db and dA_prev rules on every (n, h, k) in ``shapes``; `ProofError` on failure."""
    out = []
    for n, h, k in shapes:
        A, W, b, G = _matrix("a", n, h), _matrix("w", h, k), _matrix("b", 1, k), _matrix("g", n, k)
        Z = A * W + sp.ones(n, 1) * b
        L = sum(G[i, j] * Z[i, j] for i in range(n) for j in range(k))
        tag = f"(n={n}, h={h}, k={k})"
        dW, db, dA = (M.applyfunc(lambda m, L=L: sp.diff(L, m)) for M in (W, b, A))
        out.append(_check(f"dW = A^T dZ {tag}", dW, A.T * G))
        out.append(_check(f"db = sum_rows dZ {tag}", db, sp.ones(1, n) * G))
        out.append(_check(f"dA_prev = dZ W^T {tag}", dA, G * W.T))
    return tuple(out)
