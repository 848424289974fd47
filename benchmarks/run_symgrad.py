"""symgrad: the JIT-compiled whole-epoch trainer, driven through its public API only.

``sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(lr) or sg.Adam(...), dtype)``
builds the model; the benchmark's initial weights go in through ``model.set_params``;
each timed epoch is one ``model.fit(X, y, epochs=1, batch_size, shuffle=False)``
call, so the Python cost of ``fit`` itself is part of the measurement.
"""

from __future__ import annotations

import numpy as np
from mlp_setup import ADAM, Problem

import symgrad as sg

VERSION = sg.__version__
# The benchmark's activation names -> symgrad's built-in layers (GELU: the exact erf form).
ACTIVATION_LAYERS = {"relu": sg.ReLU, "tanh": sg.Tanh, "sigmoid": sg.Sigmoid, "gelu": sg.GELU,
                     "swish": sg.Swish}


def build_net(dims: tuple[int, ...], activation: str = "relu"):
    """Dense/activation stack ending in Dense + Softmax, the architecture of every size."""
    hidden = ACTIVATION_LAYERS[activation]
    layers = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(sg.Dense(a, b))
        layers.append(hidden() if i < len(dims) - 2 else sg.Softmax())
    return sg.Sequential(*layers)


def make_optimizer(problem: Problem):
    """The run's optimizer with the benchmark's hyper-parameters."""
    if problem.optimizer == "adam":
        return sg.Adam(lr=ADAM["lr"], beta1=ADAM["beta1"], beta2=ADAM["beta2"], eps=ADAM["eps"])
    return sg.SGD(lr=problem.lr)


class SymgradTrainer:
    """One ``fit`` call per epoch on the compiled model."""

    name = "symgrad"

    def __init__(self, problem: Problem) -> None:
        self.p = problem
        self.model = sg.compile(build_net(problem.size.dims, problem.activation),
                                loss="cross_entropy", optimizer=make_optimizer(problem),
                                dtype=problem.dtype.name)
        names = list(self.model.params)
        expected = [f"dense{i}.{k}" for i in range(len(problem.params)) for k in ("W", "b")]
        if names != expected:
            raise RuntimeError(f"symgrad parameter names {names} != expected {expected}")
        self.model.set_params({f"dense{i}.{k}": v for i, (W, b) in enumerate(problem.params)
                               for k, v in (("W", W), ("b", b))})

    def epoch(self) -> float:
        hist = self.model.fit(self.p.X, self.p.labels, epochs=1, batch_size=self.p.size.batch,
                              shuffle=False, verbose=0)
        return float(hist.history["loss"][-1])

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        params = self.model.params
        return [(np.array(params[f"dense{i}.W"]), np.array(params[f"dense{i}.b"]))
                for i in range(len(self.p.params))]
