"""JAX: one jax.jit-compiled epoch, lax.scan over the minibatches, plain SGD or Adam.

Adam is written out (bias-corrected, the same update as every other framework)
rather than taken from optax, which is not a dependency.

x64 is switched on at import, before any array exists, so float64 runs really
are float64; float32 runs stay float32 because every input is float32 and the
learning rate is a weakly typed Python float.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from mlp_setup import ADAM, Problem  # noqa: E402

# The benchmark's activations in JAX; GELU exact (erf), swish = silu (beta 1).
ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid,
               "gelu": lambda z: jax.nn.gelu(z, approximate=False), "swish": jax.nn.silu}


def _make_loss(activation: str):
    return mlp_loss(ACTIVATIONS[activation])


def mlp_loss(act):
    """Mean softmax cross-entropy of the Dense stack ``params`` with ``act`` between layers
    (also `activation_probe.py`'s, for activations this benchmark does not list)."""

    def loss(params, x, y):
        a = x
        for i, (W, b) in enumerate(params):
            z = a @ W + b
            a = act(z) if i < len(params) - 1 else z
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(a) * y, axis=1))

    return loss


def _adam_update(q, g, m, v, bc1, bc2):
    b1, b2 = ADAM["beta1"], ADAM["beta2"]
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * (g * g)
    return q - ADAM["lr"] * (m / bc1) / (jnp.sqrt(v / bc2) + ADAM["eps"]), m, v


def _make_epoch(lr: float, activation: str, optimizer: str):
    grad_fn = jax.value_and_grad(_make_loss(activation))

    def sgd_step(state, batch):
        loss, grads = grad_fn(state, *batch)
        return jax.tree_util.tree_map(lambda q, g: q - lr * g, state, grads), loss

    def adam_step(state, batch):
        params, moments, t = state   # moments: (mW, vW, mb, vb) per layer
        loss, grads = grad_fn(params, *batch)
        t = t + 1
        # Bias corrections in float64, then in the parameters' dtype (as symgrad).
        dt = params[0][0].dtype
        bc1 = (1.0 - ADAM["beta1"] ** t).astype(dt)
        bc2 = (1.0 - ADAM["beta2"] ** t).astype(dt)
        new_params, new_moments = [], []
        for (W, b), (gW, gb), (mW, vW, mb, vb) in zip(params, grads, moments, strict=True):
            W, mW, vW = _adam_update(W, gW, mW, vW, bc1, bc2)
            b, mb, vb = _adam_update(b, gb, mb, vb, bc1, bc2)
            new_params.append((W, b))
            new_moments.append((mW, vW, mb, vb))
        return (new_params, new_moments, t), loss

    step = adam_step if optimizer == "adam" else sgd_step

    def epoch(state, xs, ys):
        state, losses = jax.lax.scan(step, state, (xs, ys))
        return state, jnp.mean(losses)

    # Donating the parameters lets XLA update them in place, as the other trainers do.
    return jax.jit(epoch, donate_argnums=(0,))


class JaxTrainer:
    """The same MLP as a jitted whole-epoch function over (n_batches, batch, features) arrays."""

    name = "jax"

    def __init__(self, problem: Problem) -> None:
        s = problem.size
        self.p = problem
        params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in problem.params]
        if problem.optimizer == "adam":
            moments = [tuple(jnp.zeros_like(q) for q in (W, W, b, b)) for W, b in params]
            self.state = (params, moments, jnp.zeros((), jnp.float64))
        else:
            self.state = params
        self.xs = jnp.asarray(problem.X.reshape(s.n_batches, s.batch, -1))
        self.ys = jnp.asarray(problem.onehot.reshape(s.n_batches, s.batch, -1))
        self.fn = _make_epoch(problem.lr, problem.activation, problem.optimizer)

    @property
    def params(self):
        return self.state[0] if self.p.optimizer == "adam" else self.state

    def epoch(self) -> float:
        self.state, loss = self.fn(self.state, self.xs, self.ys)
        return float(loss)   # float() blocks until the epoch is done

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        for W, _ in self.params:
            if W.dtype != self.p.dtype:
                raise TypeError(f"jax computed in {W.dtype}, expected {self.p.dtype}")
        return [(np.array(W), np.array(b)) for W, b in self.params]
