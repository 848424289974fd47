"""symgrad: the JIT-compiled whole-epoch CNN trainer, driven through its public API only.

``sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(lr), dtype)`` builds the
model; the benchmark's initial weights go in through ``model.set_params``; each
timed epoch is one ``model.fit(X, y, epochs=1, batch_size, shuffle=False)`` call
on NCHW images, so the Python cost of ``fit`` is part of the measurement.
"""

from __future__ import annotations

import numpy as np
from cnn_setup import CnnProblem, CnnSize, param_layers

import symgrad as sg
from symgrad.definition.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d

VERSION = sg.__version__


def build_net(size: CnnSize) -> sg.Sequential:
    """The size's layer specs as symgrad layers, ending in Softmax (+ cross-entropy)."""
    make = {
        "conv": lambda s: Conv2d(s[1], s[2], s[3], padding=s[4]),
        "relu": lambda s: sg.ReLU(),
        "maxpool": lambda s: MaxPool2d(s[1]),
        "avgpool": lambda s: AvgPool2d(s[1]),
        "flatten": lambda s: Flatten(),
        "dense": lambda s: Dense(s[1], s[2]),
    }
    layers = [make[spec[0]](spec) for spec in size.layers]
    return sg.Sequential(*layers, sg.Softmax(), input_shape=size.input_shape)


def compile_model(size: CnnSize, dtype: str, lr: float):
    """``sg.compile`` of `build_net` with softmax cross-entropy and plain SGD."""
    return sg.compile(build_net(size), loss="cross_entropy", optimizer=sg.SGD(lr=lr),
                      dtype=dtype)


class SymgradCnnTrainer:
    """One ``fit`` call per epoch on the compiled model."""

    name = "symgrad"

    def __init__(self, problem: CnnProblem) -> None:
        self.p = problem
        self.model = compile_model(problem.size, problem.dtype.name, problem.lr)
        expected = [f"{name}.{k}" for name in param_layers(problem.size).values()
                    for k in ("W", "b")]
        if list(self.model.params) != expected:
            raise RuntimeError(f"symgrad parameter names {list(self.model.params)} "
                               f"!= expected {expected}")
        self.model.set_params(problem.params)

    def epoch(self) -> float:
        hist = self.model.fit(self.p.X, self.p.labels, epochs=1, batch_size=self.p.size.batch,
                              shuffle=False, verbose=0)
        return float(hist.history["loss"][-1])

    def weights(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self.model.params.items()}
