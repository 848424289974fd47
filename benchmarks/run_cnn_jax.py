"""JAX: one jax.jit-compiled CNN epoch, lax.scan over the minibatches, plain SGD.

Convolutions are ``lax.conv_general_dilated`` (NCHW images, OIHW kernels), pooling
is ``lax.reduce_window`` (max with a -inf start, or a sum divided by k^2). x64 is
switched on at import, before any array exists, so float64 runs really are float64.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from cnn_setup import CnnProblem, CnnSize, param_layers  # noqa: E402
from jax import lax  # noqa: E402


def _pool(a, k: int, kind: str):
    window = (1, 1, k, k)
    if kind == "maxpool":
        return lax.reduce_window(a, -jnp.inf, lax.max, window, window, "VALID")
    return lax.reduce_window(a, 0.0, lax.add, window, window, "VALID") / (k * k)


def make_loss(size: CnnSize):
    """Mean softmax cross-entropy of one batch, as a function of the parameter dict."""
    names = param_layers(size)

    def loss(params, x, y):
        a = x
        for i, spec in enumerate(size.layers):
            kind = spec[0]
            if kind == "conv":
                W, b = params[f"{names[i]}.W"], params[f"{names[i]}.b"]
                pad = spec[4]
                a = lax.conv_general_dilated(a, W, (1, 1), [(pad, pad), (pad, pad)],
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
                a = a + b[None, :, None, None]
            elif kind == "dense":
                a = a @ params[f"{names[i]}.W"] + params[f"{names[i]}.b"]
            elif kind == "relu":
                a = jax.nn.relu(a)
            elif kind in ("maxpool", "avgpool"):
                a = _pool(a, spec[1], kind)
            else:
                a = a.reshape(a.shape[0], -1)
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(a) * y, axis=1))

    return loss


def _make_epoch(size: CnnSize, lr: float):
    grad_fn = jax.value_and_grad(make_loss(size))

    def step(params, batch):
        loss, grads = grad_fn(params, *batch)
        return jax.tree_util.tree_map(lambda q, g: q - lr * g, params, grads), loss

    def epoch(params, xs, ys):
        params, losses = lax.scan(step, params, (xs, ys))
        return params, jnp.mean(losses)

    # Donating the parameters lets XLA update them in place, as the other trainers do.
    return jax.jit(epoch, donate_argnums=(0,))


class JaxCnnTrainer:
    """The same CNN as a jitted whole-epoch function over (n_batches, batch, C, H, W) arrays."""

    name = "jax"

    def __init__(self, problem: CnnProblem) -> None:
        s = problem.size
        self.p = problem
        self.params = {k: jnp.asarray(v) for k, v in problem.params.items()}
        self.xs = jnp.asarray(problem.X.reshape(s.n_batches, s.batch, *s.input_shape))
        self.ys = jnp.asarray(problem.onehot.reshape(s.n_batches, s.batch, -1))
        self.fn = _make_epoch(s, problem.lr)

    def epoch(self) -> float:
        self.params, loss = self.fn(self.params, self.xs, self.ys)
        return float(loss)   # float() blocks until the epoch is done

    def weights(self) -> dict[str, np.ndarray]:
        for k, v in self.params.items():
            if v.dtype != self.p.dtype:
                raise TypeError(f"jax computed {k} in {v.dtype}, expected {self.p.dtype}")
        return {k: np.array(v) for k, v in self.params.items()}
