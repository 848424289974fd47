"""The Sequential container (the network as the user writes it).

Every layer but the activations is a registered layer kind
(`symgrad.definition.layer_kinds`): Dense (`symgrad.definition.dense`), Conv2d,
MaxPool2d, AvgPool2d and Flatten; they are re-exported here.

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
from symgrad.definition.conv import Conv2d
from symgrad.definition.dense import INITS, Dense
from symgrad.definition.errors import DefinitionError, LayerSizeError
from symgrad.definition.layer_kinds import FeatureLayer
from symgrad.definition.pooling import AvgPool2d, Flatten, MaxPool2d

__all__ = ["Dense", "Sequential", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "INITS"]

class Sequential:
    """An ordered stack of layers, validated (and its shapes worked out) at construction.

    An MLP is Dense layers, each followed by at most one activation; a final Dense
    without an activation means an Identity output. A convolutional network starts
    with image layers (`Conv2d`, `MaxPool2d`, `AvgPool2d`, each optionally followed by
    an activation) on NCHW input of ``input_shape=(C, H, W)``, then `Flatten`, then the
    Dense head. Every size is checked here, naming the layer and the shapes.
    """

    def __init__(self, *layers: object, input_shape: tuple[int, ...] | None = None) -> None:
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise DefinitionError("Sequential needs at least one Dense layer")
        for i, layer in enumerate(layers):
            if isinstance(layer, type) and issubclass(layer, (ActivationLayer, FeatureLayer,
                                                              Dense)):
                raise DefinitionError(f"layer {i}: got the class {layer.__name__}; "
                                      f"instantiate it: {layer.__name__}()")
            if not isinstance(layer, (Dense, ActivationLayer, FeatureLayer)):
                raise DefinitionError(f"layer {i}: expected Dense, Conv2d, MaxPool2d, AvgPool2d, "
                                      f"Flatten or an activation layer, got {type(layer).__name__}")
        self.layers: tuple[object, ...] = tuple(layers)
        self._check_activations()
        self.input_shape, self.feature_shapes = self._check_features(input_shape)
        self._check_dense()

    def _check_activations(self) -> None:
        layers = self.layers
        for i, layer in enumerate(layers):
            if not isinstance(layer, ActivationLayer):
                continue
            if i == 0:
                raise DefinitionError(f"layer 0 {layer!r}: a network must start with Dense "
                                      "(or, for images, Conv2d / a pooling layer)")
            prev = layers[i - 1]
            if isinstance(prev, ActivationLayer):
                raise DefinitionError(
                    f"layer {i} {layer!r} directly follows activation layer {i - 1} {prev!r}; "
                    "put a Dense between them or define one combined activation")
            if isinstance(prev, FeatureLayer) and prev.kind == "flatten":
                raise DefinitionError(f"layer {i} {layer!r} directly follows Flatten (layer "
                                      f"{i - 1}): apply the activation before Flatten")

    def _check_features(self, input_shape: tuple[int, ...] | None
                        ) -> tuple[tuple[int, ...], tuple[tuple[tuple[int, ...], tuple[int, ...]],
                                                          ...]]:
        """The input shape and each image layer's (input, output) shape; raises on a misfit."""
        layers = self.layers
        first_dense = next((i for i, layer in enumerate(layers) if isinstance(layer, Dense)),
                           None)
        if first_dense is None:
            raise DefinitionError("Sequential needs at least one Dense layer (the output "
                                  "layer); after Flatten, add e.g. Dense(features, classes)")
        for i, layer in enumerate(layers[first_dense:], start=first_dense):
            if isinstance(layer, FeatureLayer):
                raise DefinitionError(
                    f"layer {i} {layer!r} follows Dense layer {first_dense} "
                    f"{layers[first_dense]!r}: image layers (Conv2d, pooling, Flatten) must "
                    "come before the Dense layers")
        image_layers = layers[:first_dense]
        if not image_layers:
            if input_shape is not None and tuple(input_shape) != (layers[0].in_dim,):
                raise LayerSizeError(f"input_shape={input_shape!r} does not fit layer 0 "
                                     f"{layers[0]!r}, which expects ({layers[0].in_dim},)")
            return (layers[0].in_dim,), ()
        if input_shape is None:
            raise DefinitionError(
                f"layer 0 {layers[0]!r} reads images: give their shape, "
                "Sequential(..., input_shape=(C, H, W)) (NCHW: channels, height, width)")
        shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
        if shape is None or len(shape) != 3 or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape):
            raise DefinitionError(f"input_shape must be (C, H, W) of positive ints, got "
                                  f"{input_shape!r}")
        if not isinstance(layers[first_dense - 1], FeatureLayer) or \
                layers[first_dense - 1].kind != "flatten":
            if not any(isinstance(x, FeatureLayer) and x.kind == "flatten" for x in image_layers):
                raise DefinitionError(
                    f"layer {first_dense} {layers[first_dense]!r} follows image layers: put "
                    "Flatten() before the first Dense")
        shapes = []
        names = layer_names(layers)
        for i, layer in enumerate(image_layers):
            if isinstance(layer, ActivationLayer):
                if layer.entry.kind == "softmax":
                    raise DefinitionError(f"layer {i} {layer!r}: softmax is only valid as the "
                                          "output activation")
                continue
            if len(shape) != 3:
                raise DefinitionError(f"layer {i} {names[i]} {layer!r} follows Flatten: only "
                                      "Dense layers may follow Flatten")
            out = layer.out_shape(shape, f"layer {i} {names[i]}")
            shapes.append((shape, out))
            shape = out
        dense = layers[first_dense]
        if shape != (dense.in_dim,):
            raise LayerSizeError(
                f"layer {first_dense} {dense!r} expects {dense.in_dim} inputs, but the "
                f"flattened features are {shape[0]} values (shape before Flatten (C, H, W) = "
                f"{shapes[-1][0]}); use Dense({shape[0]}, {dense.out_dim})")
        return shape_tuple(input_shape), tuple(shapes)

    def _check_dense(self) -> None:
        last_dense: tuple[int, Dense] | None = None
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Dense):
                continue
            if last_dense is not None and last_dense[1].out_dim != layer.in_dim:
                j, prev = last_dense
                raise LayerSizeError(
                    f"layer {i} {layer} expects {layer.in_dim} inputs, but the previous "
                    f"Dense layer {j} {prev} outputs {prev.out_dim} (shapes: W{j} is "
                    f"({prev.in_dim}, {prev.out_dim}), W{i} is ({layer.in_dim}, "
                    f"{layer.out_dim}))")
            last_dense = (i, layer)

    def __iter__(self) -> Iterator[object]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(repr(layer) for layer in self.layers) + ")"

    @property
    def is_image_network(self) -> bool:
        """True if the network reads (n, C, H, W) images (it starts with image layers)."""
        return bool(self.feature_shapes)

    def features(self) -> list[tuple[FeatureLayer, ActivationLayer | None]]:
        """(image layer, following activation or None) pairs, before the Dense head."""
        out: list[tuple[FeatureLayer, ActivationLayer | None]] = []
        for layer in self.layers:
            if isinstance(layer, Dense):
                break
            if isinstance(layer, FeatureLayer):
                out.append((layer, None))
            else:
                out[-1] = (out[-1][0], layer)
        return out

    def blocks(self) -> list[tuple[Dense, ActivationLayer | None]]:
        """(Dense, following activation or None) pairs in order."""
        out: list[tuple[Dense, ActivationLayer | None]] = []
        for layer in self.layers:
            if isinstance(layer, Dense):
                out.append((layer, None))
            elif out and isinstance(layer, ActivationLayer):
                out[-1] = (out[-1][0], layer)
        return out


def shape_tuple(shape: object) -> tuple[int, ...]:
    return tuple(int(v) for v in shape)


def layer_names(layers: tuple[object, ...]) -> list[str]:
    """Each layer's name in parameter names and messages: conv0, maxpool0, dense1, ...

    Image layers are counted per kind; activations get their layer's name.
    """
    counts: dict[str, int] = {}
    names: list[str] = []
    for layer in layers:
        if isinstance(layer, ActivationLayer):
            names.append(names[-1] if names else "input")
            continue
        prefix = layer.prefix
        names.append(f"{prefix}{counts.get(prefix, 0)}")
        counts[prefix] = counts.get(prefix, 0) + 1
    return names
