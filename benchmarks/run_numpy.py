"""Hand-written NumPy back-propagation (as seed 001 writes it) and the matmul floor.

The NumPy trainer is the reference every other framework is compared to: its
weights after one epoch are the yardstick of the sanity column.
"""

from __future__ import annotations

import numpy as np
from mlp_setup import ADAM, WARMUP_S, Problem, activation_numpy, matmul_shapes, median_ms, warm_up


class NumpyTrainer:
    """Plain NumPy forward/backward with the textbook formulas; SGD or Adam in place."""

    name = "numpy"

    def __init__(self, problem: Problem, reordered: bool = False) -> None:
        self.p = problem
        # ``reordered``: every product sums its contraction in two halves, another order
        # of the same float additions (bench_mlp's yardstick for rounding, `_agrees`)
        self.dot = _halves_dot if reordered else np.dot
        self.params = problem.copy_params()
        self.act, self.dact = activation_numpy(problem.activation)
        # Adam's moments per parameter and the step count.
        self.moments = [tuple(np.zeros_like(q) for q in (W, W, b, b)) for W, b in self.params]
        self.t = 0
        # Batch views are taken once; slicing rows of a C-contiguous array is free.
        self.batches = [(problem.X[a:b], problem.onehot[a:b]) for a, b in problem.batches()]

    def _adam(self, q: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray,
              bc1: float, bc2: float) -> None:
        dt = q.dtype.type
        b1, b2 = dt(ADAM["beta1"]), dt(ADAM["beta2"])
        m *= b1
        m += (dt(1) - b1) * g
        v *= b2
        v += (dt(1) - b2) * (g * g)
        q -= dt(ADAM["lr"]) * (m / bc1) / (np.sqrt(v / bc2) + dt(ADAM["eps"]))

    def epoch(self) -> float:
        lr, params, last = self.p.lr, self.params, len(self.params) - 1
        adam = self.p.optimizer == "adam"
        total = 0.0
        for X, Y in self.batches:
            m = X.shape[0]
            acts, zs = [X], []
            A = X
            for i, (W, b) in enumerate(params):
                Z = self.dot(A, W) + b
                zs.append(Z)
                A = self.act(Z) if i < last else Z
                acts.append(A)
            # Softmax + cross-entropy from the logits (log-sum-exp), then dZ = (p - y) / m.
            Zs = A - A.max(axis=1, keepdims=True)
            E = np.exp(Zs)
            S = E.sum(axis=1, keepdims=True)
            total += float(np.sum(np.log(S) - np.sum(Zs * Y, axis=1, keepdims=True))) / m
            dZ = (E / S - Y) / m
            if adam:
                # Bias corrections in float64, then in the parameters' dtype (as symgrad).
                self.t += 1
                dt = X.dtype.type
                bc1 = dt(1.0 - ADAM["beta1"] ** self.t)
                bc2 = dt(1.0 - ADAM["beta2"] ** self.t)
            for i in range(last, -1, -1):
                W, b = params[i]
                dW = self.dot(acts[i].T, dZ)
                db = dZ.sum(axis=0)
                if i > 0:
                    dA = self.dot(dZ, W.T)
                    dZ = dA * self.dact(zs[i - 1], acts[i])
                if adam:
                    mW, vW, mb, vb = self.moments[i]
                    self._adam(W, dW, mW, vW, bc1, bc2)
                    self._adam(b, db, mb, vb, bc1, bc2)
                else:
                    W -= lr * dW
                    b -= lr * db
        return total / len(self.batches)

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(W.copy(), b.copy()) for W, b in self.params]


def _halves_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b with the contraction summed as two halves, then added.

    >>> a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    >>> bool(np.array_equal(_halves_dot(a, b), a @ b))
    True
    """
    k = a.shape[1] // 2
    return np.dot(a[:, :k], b[:k]) + np.dot(a[:, k:], b[k:])


def matmul_floor_ms(problem: Problem, repeats: int, warmup_s: float = WARMUP_S) -> float:
    """Median time of just one epoch's matrix products: np.dot into preallocated outputs.

    Same shapes and dtype as the training step, operands transposed exactly where
    the backward pass transposes them (A^T dZ, dZ W^T), so BLAS sees the same
    layouts. Nothing else is computed: no trainer can be much faster than this.
    """
    rng = np.random.default_rng(0)
    dt, m, dims = problem.dtype, problem.size.batch, problem.size.dims

    def rand(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dt)

    ops = []
    for i in range(len(dims) - 1):                       # forward: A (m, in) @ W (in, out)
        ops.append((rand(m, dims[i]), rand(dims[i], dims[i + 1])))
    for i in reversed(range(len(dims) - 1)):
        ops.append((rand(m, dims[i]).T, rand(m, dims[i + 1])))           # dW = A^T @ dZ
        if i > 0:
            ops.append((rand(m, dims[i + 1]), rand(dims[i], dims[i + 1]).T))  # dA = dZ @ W^T
    assert [(a.shape[0], a.shape[1], b.shape[1]) for a, b in ops] == matmul_shapes(problem.size)
    ops = [(a, b, np.empty((a.shape[0], b.shape[1]), dtype=dt)) for a, b in ops]
    n_batches = problem.size.n_batches

    def epoch() -> None:
        for _ in range(n_batches):
            for a, b, out in ops:
                np.dot(a, b, out=out)

    warm_up(epoch, warmup_s)   # BLAS thread pool, page faults, the core's clock
    return median_ms(epoch, repeats)[0]
