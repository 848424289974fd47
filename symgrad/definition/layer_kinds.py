"""The layer-kind registry: one entry per kind of layer a `Sequential` may hold.

An entry is everything the stages need to know about one kind, as data:

* ``forward`` — the layer's definition as an array rule over NCHW arrays. It
  runs on float arrays (the NumPy reference evaluates it) and on object arrays of
  SymPy symbols (the prove stage expands it on a small concrete instance and
  differentiates the result with ``sympy.diff``);
* ``index_formula`` — the same definition in index notation (SymPy ``Indexed`` /
  ``Sum``), printed in the derivation and proven equal to ``forward``;
* ``backward`` — the stated backward rules (dX, and the gradient of every
  parameter) as array rules; never trusted, proven by `symgrad.prove.layer_rules`
  against the differentiated expansion of ``forward``;
* ``rules`` — the same backward rules in operator form (LaTeX and text) for the
  printout, with the index form of each beside it;
* ``proof_instances`` — small concrete layers and input shapes to prove on.

Shape rules and parameter shapes are methods of the layer classes themselves
(`symgrad.definition.dense`, `.conv`, `.pooling`), checked when the `Sequential` is
built. Kernel emitters live in the code-generation stage: the image kinds' in
`symgrad.codegen.feature_layers`, keyed by the same ``name`` (a test asserts every
image kind has one); Dense's GEMM calls in `symgrad.codegen.kernels`.

>>> import symgrad
>>> sorted(LAYER_KINDS)
['avgpool2d', 'conv2d', 'dense', 'flatten', 'maxpool2d']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from symgrad.definition.errors import DefinitionError
from symgrad.definition.names import check_name

__all__ = ["LayerKind", "LAYER_KINDS", "INITS", "register_layer_kind", "layer_kind", "FeatureLayer",
           "object_zeros", "window"]


@dataclass(frozen=True)
class BackwardRule:
    """One stated backward rule: operator form and index form, LaTeX and plain text."""

    target: str            # what it gives: "dX", "dW", "db"
    latex: str             # operator form, e.g. dW = X \star dZ
    index_latex: str       # index form, e.g. dW_{ocpq} = \sum_{n,i,j} dZ_{noij} X_{n,c,si+p,sj+q}
    text: str              # plain-text operator form


@dataclass(frozen=True)
class LayerKind:
    """A registered layer kind (see the module docstring for each field's role)."""

    name: str
    title: str
    layer_type: type
    params: tuple[str, ...]
    forward: Callable[..., np.ndarray]
    backward: Callable[..., tuple[np.ndarray, dict[str, np.ndarray]]]
    index_formula: Callable[..., tuple[sp.Expr, sp.Expr]]
    rules: tuple[BackwardRule, ...]
    proof_instances: tuple[tuple[object, tuple[int, ...]], ...]
    # True where the forward is piecewise (max): the proof compares the derivative
    # with the rule at random points without ties, not symbol by symbol.
    piecewise: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


LAYER_KINDS: dict[str, LayerKind] = {}

#: Weight initialisations every layer with weights accepts (Dense, Conv2d).
INITS = ("he", "xavier", "uniform")


def register_layer_kind(kind: LayerKind, replace: bool = False) -> LayerKind:
    """Add ``kind`` to the registry (``replace=True`` to redefine a name)."""
    check_name(kind.name, "layer kind")   # it reaches generated comments and module names
    if kind.name in LAYER_KINDS and not replace and LAYER_KINDS[kind.name] is not kind:
        raise DefinitionError(f"layer kind {kind.name!r} is already registered; pass "
                              "replace=True to redefine it")
    LAYER_KINDS[kind.name] = kind
    return kind


def layer_kind(name: str) -> LayerKind:
    """The registered kind called ``name``."""
    try:
        return LAYER_KINDS[name]
    except KeyError:
        raise DefinitionError(f"unknown layer kind {name!r}; registered: "
                              f"{sorted(LAYER_KINDS)}") from None


def object_zeros(shape: tuple[int, ...], like: np.ndarray) -> np.ndarray:
    """Zeros shaped ``shape`` of ``like``'s dtype (object arrays get SymPy zeros)."""
    if like.dtype == object:
        out = np.empty(shape, dtype=object)
        out.fill(sp.Integer(0))
        return out
    return np.zeros(shape, dtype=like.dtype)


class FeatureLayer:
    """Base of the image-side layers (Conv2d, pooling, Flatten).

    Subclasses set ``kind`` (their registry name) and ``prefix`` (their parameter
    names: ``conv0.W``) and implement ``out_shape`` and ``param_shapes``; the
    `Sequential` calls ``out_shape`` while it is built, so a kernel larger than its
    input is refused there, naming the layer and both shapes.
    """

    kind: str = ""
    prefix: str = ""

    def out_shape(self, in_shape: tuple[int, ...], where: str) -> tuple[int, ...]:
        raise NotImplementedError

    def param_shapes(self, in_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return {}

    def config(self) -> tuple[tuple[str, object], ...]:
        """The layer's settings, as (name, value) pairs (its identity in keys and printouts)."""
        return ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config() == self.config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.config()))


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a sliding window: floor((size + 2 padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def window(arr: np.ndarray, p: int, q: int, stride: tuple[int, int], out_h: int, out_w: int
           ) -> np.ndarray:
    """The (n, C, out_h, out_w) view of ``arr`` at window offset (p, q): arr[.., s i + p, s j + q].

    Every sliding-window rule (convolution, both poolings, their backward scatters) reads
    or writes through this one view.
    """
    sh, sw = stride
    return arr[:, :, p:p + sh * (out_h - 1) + 1:sh, q:q + sw * (out_w - 1) + 1:sw]


def positive_int(value: object, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise DefinitionError(f"{what} must be {kind}, got {value!r}")
    return int(value)


def pair(value: object, what: str, minimum: int = 1) -> tuple[int, int]:
    """An int or an (h, w) pair of ints, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise DefinitionError(f"{what} must be an int or a pair (h, w), got {value!r}")
        return positive_int(value[0], what, minimum), positive_int(value[1], what, minimum)
    v = positive_int(value, what, minimum)
    return v, v
