"""JAX: one jax.jit-compiled epoch, lax.scan over the minibatches, plain SGD.

x64 is switched on at import, before any array exists, so float64 runs really
are float64; float32 runs stay float32 because every input is float32 and the
learning rate is a weakly typed Python float.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from mlp_setup import Problem  # noqa: E402


def _loss(params, x, y):
    a = x
    for i, (W, b) in enumerate(params):
        z = a @ W + b
        a = jax.nn.relu(z) if i < len(params) - 1 else z
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(a) * y, axis=1))


def _make_epoch(lr: float):
    grad_fn = jax.value_and_grad(_loss)

    def step(params, batch):
        loss, grads = grad_fn(params, *batch)
        params = jax.tree_util.tree_map(lambda q, g: q - lr * g, params, grads)
        return params, loss

    def epoch(params, xs, ys):
        params, losses = jax.lax.scan(step, params, (xs, ys))
        return params, jnp.mean(losses)

    # Donating the parameters lets XLA update them in place, as the other trainers do.
    return jax.jit(epoch, donate_argnums=(0,))


class JaxTrainer:
    """The same MLP as a jitted whole-epoch function over (n_batches, batch, features) arrays."""

    name = "jax"

    def __init__(self, problem: Problem) -> None:
        s = problem.size
        self.p = problem
        self.params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in problem.params]
        self.xs = jnp.asarray(problem.X.reshape(s.n_batches, s.batch, -1))
        self.ys = jnp.asarray(problem.onehot.reshape(s.n_batches, s.batch, -1))
        self.fn = _make_epoch(problem.lr)

    def epoch(self) -> float:
        self.params, loss = self.fn(self.params, self.xs, self.ys)
        return float(loss)   # float() blocks until the epoch is done

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        for W, _ in self.params:
            if W.dtype != self.p.dtype:
                raise TypeError(f"jax computed in {W.dtype}, expected {self.p.dtype}")
        return [(np.array(W), np.array(b)) for W, b in self.params]
