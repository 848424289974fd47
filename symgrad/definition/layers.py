"""Dense layers and the Sequential container (the network as the user writes it).

>>> from symgrad.definition.activations import Tanh
>>> net = Sequential(Dense(2, 16), Tanh(), Dense(16, 1))
>>> [type(layer).__name__ for layer in net]
['Dense', 'Tanh', 'Dense']
>>> Sequential(Dense(2, 16), Dense(8, 1))
Traceback (most recent call last):
...
symgrad.definition.errors.LayerSizeError: layer 1 Dense(8 -> 1) expects 8 inputs, but the \
previous Dense layer 0 Dense(2 -> 16) outputs 16 (shapes: W0 is (2, 16), W1 is (8, 1))
"""

from __future__ import annotations

from collections.abc import Iterator

from symgrad.definition.activations import ActivationLayer
from symgrad.definition.errors import DefinitionError, LayerSizeError

INITS = ("he", "xavier", "uniform")


class Dense:
    """Z = A_prev @ W + b with W of shape (in_dim, out_dim) and b of shape (out_dim,).

    ``init`` picks the seeded initialisation of W: ``"he"`` N(0, 2/in),
    ``"xavier"`` N(0, 2/(in+out)), ``"uniform"`` U(-1/sqrt(in), 1/sqrt(in)).
    Biases start at zero. The seed is given to `symgrad.compile`.
    """

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


class Sequential:
    """An ordered stack of Dense and activation layers, validated at construction.

    A Dense may be followed by at most one activation; a final Dense without an
    activation means an Identity output.
    """

    def __init__(self, *layers: Dense | ActivationLayer) -> None:
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise DefinitionError("Sequential needs at least one Dense layer")
        last_dense: tuple[int, Dense] | None = None
        for i, layer in enumerate(layers):
            if isinstance(layer, type) and issubclass(layer, ActivationLayer):
                raise DefinitionError(f"layer {i}: got the class {layer.__name__}; "
                                      f"instantiate it: {layer.__name__}()")
            if isinstance(layer, Dense):
                if last_dense is not None and last_dense[1].out_dim != layer.in_dim:
                    j, prev = last_dense
                    raise LayerSizeError(
                        f"layer {i} {layer} expects {layer.in_dim} inputs, but the previous "
                        f"Dense layer {j} {prev} outputs {prev.out_dim} (shapes: W{j} is "
                        f"({prev.in_dim}, {prev.out_dim}), W{i} is ({layer.in_dim}, "
                        f"{layer.out_dim}))")
                last_dense = (i, layer)
            elif isinstance(layer, ActivationLayer):
                if i == 0:
                    raise DefinitionError(f"layer 0 {layer!r}: a network must start with Dense")
                if isinstance(layers[i - 1], ActivationLayer):
                    raise DefinitionError(
                        f"layer {i} {layer!r} directly follows activation layer {i - 1} "
                        f"{layers[i - 1]!r}; put a Dense between them or define one combined "
                        "activation")
            else:
                raise DefinitionError(f"layer {i}: expected Dense or an activation layer, got "
                                      f"{type(layer).__name__}")
        self.layers: tuple[Dense | ActivationLayer, ...] = tuple(layers)

    def __iter__(self) -> Iterator[Dense | ActivationLayer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(repr(layer) for layer in self.layers) + ")"

    def blocks(self) -> list[tuple[Dense, ActivationLayer | None]]:
        """(Dense, following activation or None) pairs in order."""
        out: list[tuple[Dense, ActivationLayer | None]] = []
        for layer in self.layers:
            if isinstance(layer, Dense):
                out.append((layer, None))
            else:
                out[-1] = (out[-1][0], layer)
        return out
