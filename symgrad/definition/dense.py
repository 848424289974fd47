"""The Dense layer kind: Z = X W + b, the layer every network ends with.

One registry entry (`symgrad.definition.layer_kinds`) like the image layers: the
definition as an array rule (floats for the NumPy reference, SymPy symbols for the
proofs), the same definition in index notation, and the three stated backward rules

    dW = X^T dZ,   db = sum over the rows of dZ,   dX = dZ W^T,

each proven by `symgrad.prove.layer_rules` against ``sympy.diff`` of the expanded
definition on the instances below (a rule without the transpose, or without the sum
over the batch, fails there). Inside a network X is the previous layer's output
A_{j-1}; rows are samples, so W has shape (in, out), as in the lecture notes.

>>> import numpy as np
>>> layer = Dense(2, 3)
>>> X, W, b = np.ones((4, 2)), np.full((2, 3), 0.5), np.arange(3.0)
>>> dense_forward(layer, X, {"W": W, "b": b})[0]
array([1., 2., 3.])
>>> dense_index_formula(layer)
(Z[n, c], b[c] + Sum(W[r, c]*X[n, r], (r, 0, 1)))
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from symgrad.definition.errors import DefinitionError, LayerSizeError
from symgrad.definition.layer_kinds import INITS, BackwardRule, LayerKind, register_layer_kind

__all__ = ["Dense", "DENSE", "dense_forward", "dense_backward", "dense_index_formula", "INITS"]


class Dense:
    """Z = A_prev @ W + b with W of shape (in_dim, out_dim) and b of shape (out_dim,).

    ``init`` picks the seeded initialisation of W: ``"he"`` N(0, 2/in),
    ``"xavier"`` N(0, 2/(in+out)), ``"uniform"`` U(-1/sqrt(in), 1/sqrt(in)).
    Biases start at zero. The seed is given to `symgrad.compile`.
    """

    kind = "dense"
    prefix = "dense"

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, init: str = "he") -> None:
        for label, value in (("in_dim", in_dim), ("out_dim", out_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DefinitionError(f"Dense: {label} must be a positive int, got {value!r}")
        if init not in INITS:
            raise DefinitionError(f"Dense({in_dim} -> {out_dim}): init must be one of {INITS}, "
                                  f"got {init!r}")
        if not isinstance(bias, bool):
            raise DefinitionError(f"Dense({in_dim} -> {out_dim}): bias must be True or False")
        self.in_dim, self.out_dim, self.bias, self.init = in_dim, out_dim, bias, init

    def __repr__(self) -> str:
        return f"Dense({self.in_dim} -> {self.out_dim})"

    def out_shape(self, in_shape: tuple[int, ...], where: str) -> tuple[int, ...]:
        """(out_dim,) for an input of (in_dim,) features; `LayerSizeError` otherwise."""
        if tuple(in_shape) != (self.in_dim,):
            raise LayerSizeError(f"{where} {self!r} expects input shape ({self.in_dim},), "
                                 f"got {tuple(in_shape)}")
        return (self.out_dim,)

    def param_shapes(self, in_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """W (in, out) and, with a bias, b (out,)."""
        shapes = {"W": (self.in_dim, self.out_dim)}
        if self.bias:
            shapes["b"] = (self.out_dim,)
        return shapes


def dense_forward(layer: Dense, X: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """Z = X W (+ b on every row); X is (n, in). Runs on floats and on SymPy object arrays."""
    Z = X @ params["W"]
    return Z + params["b"] if layer.bias else Z


def dense_backward(layer: Dense, X: np.ndarray, params: dict[str, np.ndarray],
                   dZ: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The stated rules: dX = dZ W^T, dW = X^T dZ, db = the column sums of dZ."""
    grads = {"W": X.T @ dZ}
    if layer.bias:
        grads["b"] = dZ.sum(axis=0)
    return dZ @ params["W"].T, grads


def dense_index_formula(layer: Dense) -> tuple[sp.Expr, sp.Expr]:
    """Z[n, c] = b[c] + Sum_r W[r, c] X[n, r]."""
    n, c, r = sp.symbols("n c r", integer=True, nonnegative=True)
    Zb, Wb, Xb, bb = (sp.IndexedBase(name) for name in ("Z", "W", "X", "b"))
    rhs = sp.Sum(Wb[r, c] * Xb[n, r], (r, 0, layer.in_dim - 1))
    return Zb[n, c], (bb[c] + rhs if layer.bias else rhs)


def _dd(num: str, den: str) -> str:
    return rf"\frac{{\partial L}}{{\partial {num}{den}}}"


DENSE = register_layer_kind(LayerKind(
    name="dense",
    title="fully connected (dense) layer",
    layer_type=Dense,
    params=("W", "b"),
    forward=dense_forward,
    backward=dense_backward,
    index_formula=dense_index_formula,
    rules=(
        BackwardRule("dW", rf"{_dd('W', '')} = X^{{\mathsf T}} {_dd('Z', '')}",
                     rf"{_dd('W', '_{rc}')} = \sum_{{n}} X_{{nr}}\, {_dd('Z', '_{nc}')}",
                     "dW = X.T @ dZ"),
        BackwardRule("db", rf"{_dd('b', '')} = \mathbf{{1}}^{{\mathsf T}} {_dd('Z', '')}",
                     rf"{_dd('b', '_{c}')} = \sum_{{n}} {_dd('Z', '_{nc}')}",
                     "db = dZ.sum(axis=0)"),
        BackwardRule("dX", rf"{_dd('X', '')} = {_dd('Z', '')}\, W^{{\mathsf T}}",
                     rf"{_dd('X', '_{nr}')} = \sum_{{c}} {_dd('Z', '_{nc}')}\, W_{{rc}}",
                     "dX = dZ @ W.T"),
    ),
    # (n, in, out) = (1, 1, 1), (2, 3, 2), (3, 2, 4): a batch of one cannot tell a
    # missing sum over the rows from a right one; n = 2 and 3 can.
    proof_instances=(
        (Dense(1, 1), (1,), 1),
        (Dense(3, 2), (3,), 2),
        (Dense(2, 4), (2,), 3),
        (Dense(4, 2, bias=False), (4,), 2),
    ),
    notes=("The transposes are what make the shapes agree: X^T (in x n) times dZ (n x out) "
           "is (in x out), the shape of W.",),
))
