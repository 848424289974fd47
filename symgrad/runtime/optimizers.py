"""Optimizers: hyperparameters plus the written update rule, as kernel code and as NumPy.

An optimizer is not differentiated: its update is a rule, so it is written
here once as scalar Python lines that the kernel generator pastes into one
fused loop per parameter, and once more as plain NumPy (`step_numpy`) that
the tests use as the independent oracle for the compiled update.

Conventions (as in PyTorch): SGD momentum ``v = mu*v + g``, Nesterov step
``g + mu*v``; ``weight_decay`` is L2 (added to the gradient) for SGD and Adam
and decoupled (``w -= lr*wd*w``) for AdamW. Decay applies to every parameter.

>>> opt = Adam(lr=1e-3)
>>> opt.state_names
('m', 'v')
>>> SGD(lr=0.1, momentum=0.9, nesterov=True).key
'sgd-momentum-nesterov'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "get_optimizer"]


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"optimizer {name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"optimizer {name} must be finite and {bound}, got {value!r}")
    return value


class Optimizer:
    """Base class: hyperparameters (read by the kernel from an array) and update code.

    Subclasses define ``state_names`` (per-parameter arrays, zero-initialised
    once), ``hyper()`` (ordered name -> value, passed to the kernel at run
    time so changing ``lr`` never recompiles), ``prologue(cast)`` (lines run
    once per step, before the loops), ``update()`` (lines run per element
    with locals ``w`` and ``g`` and flat state arrays ``s_<name>[k]``) and
    ``step_numpy`` (the reference).
    """

    state_names: tuple[str, ...] = ()
    key: str = "optimizer"

    def hyper(self) -> dict[str, float]:
        raise NotImplementedError

    def prologue(self, cast: str) -> list[str]:
        """Lines binding scalar hyperparameters from ``H`` (float64 array) in the kernel dtype."""
        return [f"{name} = {cast}(H[{i}])" for i, name in enumerate(self.hyper())]

    def update(self) -> list[str]:
        raise NotImplementedError

    def fused_gemm(self, cast: str) -> tuple[str, str] | None:
        """(alpha, beta) if the step on a weight matrix is ``W = beta*W + alpha*dW``.

        Then the kernel lets the dW GEMM write into W directly (no gradient
        buffer, no extra pass over the weights). None: a separate update loop.
        """
        return None

    def hyper_array(self) -> np.ndarray:
        return np.array(list(self.hyper().values()), dtype=np.float64)

    def init_state(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Zeroed state arrays (allocated once) plus the step counter ``t``."""
        state = {f"{s}:{name}": np.zeros_like(arr) for name, arr in params.items()
                 for s in self.state_names}
        state["t"] = np.zeros(1, dtype=np.int64)
        return state

    def step_numpy(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                   state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in self.hyper().items()]
        if getattr(self, "nesterov", False):   # a flag, not a run-time hyperparameter
            args.append("nesterov=True")
        return f"{type(self).__name__}({', '.join(args)})"


@dataclass(repr=False)
class SGD(Optimizer):
    """Stochastic gradient descent, optional (Nesterov) momentum and L2 weight decay.

    >>> SGD(lr=0.1).hyper()
    {'lr': 0.1}
    """

    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        self.lr = _positive("lr", self.lr)
        self.momentum = _positive("momentum", self.momentum, allow_zero=True)
        self.weight_decay = _positive("weight_decay", self.weight_decay, allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"optimizer momentum must be < 1, got {self.momentum}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("optimizer nesterov=True needs momentum > 0")
        self.state_names = ("velocity",) if self.momentum else ()
        self.key = "sgd" + ("-momentum" if self.momentum else "") + (
            "-nesterov" if self.nesterov else "") + ("-l2" if self.weight_decay else "")

    def hyper(self) -> dict[str, float]:
        out = {"lr": self.lr}
        if self.momentum:
            out["momentum"] = self.momentum
        if self.weight_decay:
            out["weight_decay"] = self.weight_decay
        return out

    def update(self) -> list[str]:
        lines = ["g = g + weight_decay * w"] if self.weight_decay else []
        if self.momentum:
            lines.append("v = momentum * s_velocity[k] + g")
            lines.append("s_velocity[k] = v")
            lines.append("g = g + momentum * v" if self.nesterov else "g = v")
        lines.append("w = w - lr * g")
        return lines

    def fused_gemm(self, cast: str) -> tuple[str, str] | None:
        if self.momentum:
            return None
        decay = f"{cast}(1.0) - lr * weight_decay" if self.weight_decay else f"{cast}(1.0)"
        return "-lr", decay

    def step_numpy(self, params, grads, state) -> None:
        state["t"][0] += 1
        for name, w in params.items():
            g = grads[name] + self.weight_decay * w
            if self.momentum:
                v = state[f"velocity:{name}"]
                v[...] = self.momentum * v + g
                g = g + self.momentum * v if self.nesterov else v
            w -= self.lr * g


@dataclass(repr=False)
class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is L2 added to the gradient.

    >>> Adam().hyper()["beta2"]
    0.999
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0

    decoupled = False

    def __post_init__(self) -> None:
        self.lr = _positive("lr", self.lr)
        self.eps = _positive("eps", self.eps)
        self.weight_decay = _positive("weight_decay", self.weight_decay, allow_zero=True)
        for name in ("beta1", "beta2"):
            value = _positive(name, getattr(self, name), allow_zero=True)
            if value >= 1:
                raise ValueError(f"optimizer {name} must be in [0, 1), got {value}")
            setattr(self, name, value)
        self.state_names = ("m", "v")
        self.key = ("adamw" if self.decoupled else "adam") + ("-wd" if self.weight_decay else "")

    def hyper(self) -> dict[str, float]:
        out = {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}
        if self.weight_decay:
            out["weight_decay"] = self.weight_decay
        return out

    def prologue(self, cast: str) -> list[str]:
        # Bias corrections depend on the step count t (kept in the state), so they are
        # computed once per step, in float64, then cast; folded into two factors (see
        # update) so that each element takes one division and one square root.
        return super().prologue(cast) + [
            f"step_size = {cast}(H[0] / (1.0 - H[1] ** t[0]))",
            f"inv_sqrt_bc2 = {cast}(1.0 / math.sqrt(1.0 - H[2] ** t[0]))",
            f"one = {cast}(1.0)",
        ]

    def update(self) -> list[str]:
        lines = []
        if self.weight_decay and self.decoupled:
            lines.append("w = w - lr * weight_decay * w")
        elif self.weight_decay:
            lines.append("g = g + weight_decay * w")
        lines += [
            "m = beta1 * s_m[k] + (one - beta1) * g",
            "v = beta2 * s_v[k] + (one - beta2) * (g * g)",
            "s_m[k] = m",
            "s_v[k] = v",
            # lr*m_hat/(sqrt(v_hat) + eps) with m_hat = m/bc1, v_hat = v/bc2, written as
            # (lr/bc1)*m/(sqrt(v)/sqrt(bc2) + eps), as PyTorch does: the per-element
            # divisions by bc1 and bc2 cost a third of a float64 step's time
            "w = w - step_size * m / (math.sqrt(v) * inv_sqrt_bc2 + eps)",
        ]
        return lines

    def step_numpy(self, params, grads, state) -> None:
        state["t"][0] += 1
        t = int(state["t"][0])
        for name, w in params.items():
            g = grads[name]
            if self.weight_decay and self.decoupled:
                w -= self.lr * self.weight_decay * w
            elif self.weight_decay:
                g = g + self.weight_decay * w
            m, v = state[f"m:{name}"], state[f"v:{name}"]
            m[...] = self.beta1 * m + (1 - self.beta1) * g
            v[...] = self.beta2 * v + (1 - self.beta2) * g * g
            m_hat = m / (1 - self.beta1 ** t)
            v_hat = v / (1 - self.beta2 ** t)
            w -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


@dataclass(repr=False)
class AdamW(Adam):
    """Adam with decoupled weight decay (``w -= lr*wd*w`` before the Adam step).

    >>> AdamW(weight_decay=0.01).key
    'adamw-wd'
    """

    weight_decay: float = 0.01
    decoupled = True


_REGISTRY = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get_optimizer(spec: Optimizer | str | None) -> Optimizer:
    """An optimizer from an instance, a name ("sgd", "adam", "adamw") or None (SGD lr=0.01).

    >>> get_optimizer("adam")
    Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08)
    """
    if spec is None:
        return SGD()
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str) and spec.lower() in _REGISTRY:
        return _REGISTRY[spec.lower()]()
    if isinstance(spec, type) and issubclass(spec, Optimizer):
        raise ValueError(f"optimizer: got the class {spec.__name__}, not an instance; pass "
                         f"{spec.__name__}() or e.g. {spec.__name__}(lr=0.01)")
    raise ValueError(f"unknown optimizer {spec!r}; use one of {sorted(_REGISTRY)} or an instance")


REGISTRY = dict(_REGISTRY)
