"""Random convolutional networks for the CNN tests, and their PyTorch mirror.

`draw_cases` draws seeded CNN configurations (channels 1-3, odd and even images of
5-11 pixels, kernels 1-4 including non-square pairs, strides 1-2, padding 0-2 (also at
or beyond the kernel), max and average pooling with strides different from the window, bias on and
off, every built-in activation after image and Dense layers, the three output heads).
The sizes are worked out here, independently of `Sequential`'s shape rule, so a test
can compare the two.

`torch_loss_and_grads` evaluates a symgrad network in PyTorch by walking its layers
(``torch.nn.functional``, float64): the independent oracle for the reference.

>>> cases = draw_cases(3, seed=1)
>>> [case.net.input_shape == case.in_shape for case in cases]
[True, True, True]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import symgrad as sg
from symgrad.definition.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, Sequential

# Every built-in elementwise activation (Softmax is an output head only).
ACTIVATIONS = (sg.ReLU, sg.Tanh, sg.Sigmoid, sg.GELU, sg.Swish, sg.SiLU, sg.Softplus,
               lambda: sg.ELU(0.7), lambda: sg.LeakyReLU(0.2), sg.Identity, sg.ELU,
               sg.LeakyReLU)
LOSSES = ("cross_entropy", "bce", "mse")


@dataclass
class Case:
    """One drawn network: the Sequential, its loss, data and the sizes this module computed."""

    label: str
    net: Sequential
    loss: str
    in_shape: tuple[int, int, int]
    shapes: list[tuple[int, ...]]   # output shape of every image layer, as computed here
    X: np.ndarray                   # (n, C, H, W)
    y: np.ndarray                   # labels (cross_entropy, bce) or target rows (mse)


def _out(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class _Cycle:
    """Activations in a shuffled round robin, so a few networks use every one."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.queue = rng, []

    def next(self):
        if not self.queue:
            self.queue = list(self.rng.permutation(len(ACTIVATIONS)))
        return ACTIVATIONS[self.queue.pop()]()


def _image_layer(rng: np.random.Generator, shape: tuple[int, int, int], first: bool):
    """A random Conv2d or pooling layer that fits ``shape``, and its output shape."""
    c, h, w = shape
    for _ in range(100):
        # Mostly convolutions first; pooling may come first too (then conv reads pooled input).
        conv = rng.random() < (0.85 if first else 0.4)
        kind = "conv" if conv else str(rng.choice(["max", "avg"]))
        if kind == "conv":
            k = int(rng.integers(1, 5))
            kernel = (k, k) if rng.random() < 0.6 else (k, int(rng.integers(1, 5)))
            stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            # 0-2, also at or beyond the kernel (as PyTorch allows): then the outer output
            # pixels see only padding and give the bias alone.
            padding = tuple(int(rng.integers(0, 3)) for _ in kernel)
            if any(kk > n + 2 * p for kk, n, p in zip(kernel, (h, w), padding, strict=True)):
                continue
            out_ch = int(rng.integers(1, 4))
            layer = Conv2d(c, out_ch, kernel if kernel[0] != kernel[1] else kernel[0],
                           stride=stride if stride[0] != stride[1] else stride[0],
                           padding=padding, bias=bool(rng.random() < 0.7))
            out = (out_ch, _out(h, kernel[0], stride[0], padding[0]),
                   _out(w, kernel[1], stride[1], padding[1]))
        else:
            k = int(rng.integers(1, 4))
            kernel = (k, k) if rng.random() < 0.7 else (k, int(rng.integers(1, 4)))
            if kernel[0] > h or kernel[1] > w or kernel == (1, 1):
                continue
            stride = None if rng.random() < 0.5 else int(rng.integers(1, 4))
            layer = (MaxPool2d if kind == "max" else AvgPool2d)(kernel, stride=stride)
            sh, sw = kernel if stride is None else (stride, stride)
            out = (c, _out(h, kernel[0], sh), _out(w, kernel[1], sw))
        if math.prod(out) >= 1:
            return layer, out
    raise RuntimeError(f"no image layer fits {shape}")


def draw_case(rng: np.random.Generator, cycles: tuple[_Cycle, _Cycle], label: str,
              loss: str) -> Case:
    """One random CNN with ``loss`` and a small random batch for it."""
    in_shape = (int(rng.integers(1, 4)), int(rng.integers(5, 12)), int(rng.integers(5, 12)))
    layers: list[object] = []
    shapes: list[tuple[int, ...]] = []
    shape = in_shape
    image_acts, dense_acts = cycles
    for i in range(int(rng.integers(1, 4))):
        layer, shape = _image_layer(rng, shape, first=(i == 0))
        layers.append(layer)
        shapes.append(shape)
        # Conv layers usually get an activation, pooling layers now and then.
        if rng.random() < (0.85 if isinstance(layer, Conv2d) else 0.3):
            layers.append(image_acts.next())
    layers.append(Flatten())
    features = math.prod(shape)
    shapes.append((features,))
    width = features
    for _ in range(int(rng.integers(0, 3))):   # hidden Dense layers
        hidden = int(rng.integers(2, 6))
        layers += [Dense(width, hidden, bias=bool(rng.random() < 0.8)), dense_acts.next()]
        width = hidden
    n = int(rng.integers(4, 8))
    if loss == "cross_entropy":
        k = int(rng.integers(2, 5))
        layers += [Dense(width, k), sg.Softmax()]
        y = rng.integers(0, k, n)
    elif loss == "bce":
        layers += [Dense(width, 1), sg.Sigmoid()]
        y = rng.integers(0, 2, n)
    else:
        k = int(rng.integers(1, 4))
        layers.append(Dense(width, k, bias=bool(rng.random() < 0.8)))
        if rng.random() < 0.5:
            layers.append(dense_acts.next())
        y = rng.normal(size=(n, k))
    net = Sequential(*layers, input_shape=in_shape)
    X = rng.normal(size=(n, *in_shape))
    return Case(label, net, loss, in_shape, shapes, X, y)


def draw_cases(count: int, seed: int = 0) -> list[Case]:
    """``count`` seeded random CNNs, the losses in turn."""
    rng = np.random.default_rng(seed)
    cycles = (_Cycle(rng), _Cycle(rng))   # after image layers, after Dense layers
    return [draw_case(rng, cycles, f"cnn{i}", LOSSES[i % len(LOSSES)]) for i in range(count)]


def random_params(model, seed: int = 0) -> dict[str, np.ndarray]:
    """The model's initial weights with small random biases (zero biases would hide bias bugs)."""
    rng = np.random.default_rng(seed)
    return {name: (rng.normal(scale=0.3, size=value.shape).astype(value.dtype)
                   if name.endswith(".b") else value.copy())
            for name, value in model.params.items()}


def param_names(net: Sequential) -> list[str]:
    """The parameter names the docs promise: conv0.W, conv0.b, ..., dense0.W, ... in order."""
    names, counts = [], {"conv": 0, "dense": 0}
    for layer in net:
        if isinstance(layer, (Conv2d, Dense)):
            prefix = "conv" if isinstance(layer, Conv2d) else "dense"
            names += [f"{prefix}{counts[prefix]}.W"] + [f"{prefix}{counts[prefix]}.b"] * layer.bias
            counts[prefix] += 1
    return names


# --------------------------------------------------------------------------- PyTorch mirror
def _torch_activation(F, layer, z):
    name, params = layer.entry.name, getattr(layer, "params", {})
    if name == "relu":
        return F.relu(z)
    if name == "tanh":
        return z.tanh()
    if name == "sigmoid":
        return z.sigmoid()
    if name == "gelu":
        return F.gelu(z, approximate="none")   # symgrad's GELU is the exact erf form
    if name in ("swish", "silu"):
        return F.silu(z)
    if name == "softplus":
        return F.softplus(z)
    if name == "elu":
        return F.elu(z, alpha=params["alpha"])
    if name == "leaky_relu":
        return F.leaky_relu(z, negative_slope=params["alpha"])
    if name == "identity":
        return z
    raise AssertionError(f"no PyTorch mirror for activation {name!r}")


def torch_forward(net: Sequential, P: dict, x):
    """The network's logits (before the output head's softmax/sigmoid) in PyTorch."""
    import torch.nn.functional as F

    counts = {"conv": 0, "dense": 0}
    layers = list(net)
    # The output activation is fused with the loss below: stop at the last Dense.
    last_dense = max(i for i, layer in enumerate(layers) if isinstance(layer, Dense))
    head = layers[last_dense + 1] if last_dense + 1 < len(layers) else None
    for layer in layers[:last_dense + 1]:
        if isinstance(layer, Conv2d):
            name = f"conv{counts['conv']}"
            counts["conv"] += 1
            x = F.conv2d(x, P[f"{name}.W"], P.get(f"{name}.b"), stride=layer.stride,
                         padding=layer.padding)
        elif isinstance(layer, MaxPool2d):
            x = F.max_pool2d(x, layer.kernel, stride=layer.stride)
        elif isinstance(layer, AvgPool2d):
            x = F.avg_pool2d(x, layer.kernel, stride=layer.stride)
        elif isinstance(layer, Flatten):
            x = x.reshape(x.shape[0], -1)
        elif isinstance(layer, Dense):
            name = f"dense{counts['dense']}"
            counts["dense"] += 1
            x = x @ P[f"{name}.W"]            # symgrad's W is (in, out)
            if layer.bias:
                x = x + P[f"{name}.b"]
        else:
            x = _torch_activation(F, layer, x)
    return x, head


def torch_loss_and_grads(case: Case, params: dict[str, np.ndarray]
                         ) -> tuple[float, dict[str, np.ndarray]]:
    """Mean loss and gradients of ``case`` at ``params``, by PyTorch autograd in float64."""
    import torch
    import torch.nn.functional as F

    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    z, head = torch_forward(case.net, P, torch.tensor(case.X, dtype=torch.float64))
    if case.loss == "cross_entropy":
        loss = F.cross_entropy(z, torch.tensor(case.y))
    elif case.loss == "bce":
        loss = F.binary_cross_entropy_with_logits(z[:, 0], torch.tensor(case.y, dtype=z.dtype))
    else:
        out = z if head is None else _torch_activation(F, head, z)
        loss = F.mse_loss(out, torch.tensor(case.y, dtype=z.dtype))
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in P.items()}
