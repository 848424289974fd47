"""Hand-written NumPy CNN training (im2col convolutions) and the GEMM floor.

The NumPy trainer is the reference every other framework is compared to, so it
is written independently of symgrad: convolutions as image patches (``cols``,
via ``sliding_window_view``) times the weight matrix, their backward pass as
``dW = cols.T @ dZ`` and ``dX`` = the patches of ``dZ @ W`` added back into
place (col2im); max pooling routes dY to the window's first maximum (PyTorch's
tie rule), average pooling spreads dY / k^2.
"""

from __future__ import annotations

import numpy as np
from cnn_setup import CnnProblem, CnnSize, gemms, param_layers
from mlp_setup import WARMUP_S, median_ms, warm_up
from numpy.lib.stride_tricks import sliding_window_view


def conv_forward(X: np.ndarray, W: np.ndarray, b: np.ndarray, pad: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Z (n, O, OH, OW) of a stride-1 convolution, and the patches ``cols`` (n*OH*OW, C*k*k).

    >>> X = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> Z, cols = conv_forward(X, np.ones((1, 1, 2, 2)), np.zeros(1), 0)
    >>> Z[0, 0].tolist()[0], cols.shape
    ([10.0, 14.0, 18.0], (9, 4))
    """
    out_ch, in_ch, k, _ = W.shape
    Xp = np.pad(X, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else X
    win = sliding_window_view(Xp, (k, k), axis=(2, 3))          # (n, C, OH, OW, k, k)
    n, _, oh, ow = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, in_ch * k * k)
    Z = cols @ W.reshape(out_ch, -1).T + b
    return Z.reshape(n, oh, ow, out_ch).transpose(0, 3, 1, 2), cols


def conv_backward(dZ: np.ndarray, cols: np.ndarray, W: np.ndarray, x_shape: tuple[int, ...],
                  pad: int, need_dx: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(dX or None, dW, db) of `conv_forward`."""
    out_ch, in_ch, k, _ = W.shape
    n, _, oh, ow = dZ.shape
    dZm = dZ.transpose(0, 2, 3, 1).reshape(-1, out_ch)
    dW = (cols.T @ dZm).T.reshape(W.shape)
    db = dZm.sum(axis=0)
    if not need_dx:
        return None, dW, db
    dcols = (dZm @ W.reshape(out_ch, -1)).reshape(n, oh, ow, in_ch, k, k)
    h, w = x_shape[2], x_shape[3]
    dXp = np.zeros((n, in_ch, h + 2 * pad, w + 2 * pad), dtype=dZ.dtype)
    for p in range(k):
        for q in range(k):
            dXp[:, :, p:p + oh, q:q + ow] += dcols[:, :, :, :, p, q].transpose(0, 3, 1, 2)
    return dXp[:, :, pad:pad + h, pad:pad + w], dW, db


def _windows(A: np.ndarray, k: int) -> np.ndarray:
    """(n, C, OH, OW, k*k): each pooling window's elements in row-major order."""
    n, c, h, w = A.shape
    oh, ow = h // k, w // k
    win = A[:, :, :oh * k, :ow * k].reshape(n, c, oh, k, ow, k)
    return win.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, k * k)


def _unwindows(dwin: np.ndarray, k: int, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `_windows`: back to (n, C, H, W), zeros where no window reaches."""
    n, c, oh, ow, _ = dwin.shape
    dA = np.zeros(shape, dtype=dwin.dtype)
    dA[:, :, :oh * k, :ow * k] = (dwin.reshape(n, c, oh, ow, k, k).transpose(0, 1, 2, 4, 3, 5)
                                  .reshape(n, c, oh * k, ow * k))
    return dA


def maxpool_backward(A: np.ndarray, dY: np.ndarray, k: int) -> np.ndarray:
    """dA of a k x k max pool: dY goes to the first maximum of each window.

    >>> A = np.array([[[[1.0, 3.0], [3.0, 0.0]]]])
    >>> maxpool_backward(A, np.array([[[[5.0]]]]), 2)[0, 0].tolist()
    [[0.0, 5.0], [0.0, 0.0]]
    """
    win = _windows(A, k)
    first = win.argmax(axis=-1)
    mask = np.arange(k * k) == first[..., None]
    return _unwindows(mask * dY[..., None], k, A.shape)


def forward(size: CnnSize, params: dict[str, np.ndarray], X: np.ndarray
            ) -> tuple[list[np.ndarray], list[object]]:
    """Activations after each layer (input first) and what each layer keeps for backward."""
    names = param_layers(size)
    acts, saved = [X], []
    A = X
    for i, spec in enumerate(size.layers):
        kind, keep = spec[0], None
        if kind == "conv":
            name = names[i]
            A, keep = conv_forward(A, params[f"{name}.W"], params[f"{name}.b"], spec[4])
        elif kind == "dense":
            name = names[i]
            A = A @ params[f"{name}.W"] + params[f"{name}.b"]
        elif kind == "relu":
            A = np.maximum(A, 0)
        elif kind == "maxpool":
            A = _windows(A, spec[1]).max(axis=-1)
        elif kind == "avgpool":
            A = _windows(A, spec[1]).mean(axis=-1)
        elif kind == "flatten":
            A = A.reshape(A.shape[0], -1)
        acts.append(A)
        saved.append(keep)
    return acts, saved


def loss_and_gradients(size: CnnSize, params: dict[str, np.ndarray], X: np.ndarray,
                       Y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """Mean softmax cross-entropy of one batch and the gradient of every parameter."""
    names = param_layers(size)
    acts, saved = forward(size, params, X)
    logits, m = acts[-1], X.shape[0]
    Zs = logits - logits.max(axis=1, keepdims=True)
    E = np.exp(Zs)
    S = E.sum(axis=1, keepdims=True)
    loss = float(np.sum(np.log(S) - np.sum(Zs * Y, axis=1, keepdims=True))) / m
    dA = (E / S - Y) / m
    grads: dict[str, np.ndarray] = {}
    first_param = min(names)
    for i in range(len(size.layers) - 1, -1, -1):
        spec, A_in = size.layers[i], acts[i]
        kind = spec[0]
        if kind == "dense":
            name = names[i]
            grads[f"{name}.W"] = A_in.T @ dA
            grads[f"{name}.b"] = dA.sum(axis=0)
            dA = dA @ params[f"{name}.W"].T if i > first_param else None
        elif kind == "conv":
            name = names[i]
            dA, grads[f"{name}.W"], grads[f"{name}.b"] = conv_backward(
                dA, saved[i], params[f"{name}.W"], A_in.shape, spec[4], i > first_param)
        elif kind == "relu":
            dA = dA * (A_in > 0)
        elif kind == "maxpool":
            dA = maxpool_backward(A_in, dA, spec[1])
        elif kind == "avgpool":
            k = spec[1]
            dwin = np.broadcast_to((dA / (k * k))[..., None], dA.shape + (k * k,))
            dA = _unwindows(dwin, k, A_in.shape)
        elif kind == "flatten":
            dA = dA.reshape(A_in.shape)
        if i <= first_param:
            break
    return loss, grads


class NumpyCnnTrainer:
    """Plain NumPy forward/backward, then the SGD step ``w -= lr * dw`` in place."""

    name = "numpy"

    def __init__(self, problem: CnnProblem) -> None:
        self.p = problem
        self.params = problem.copy_params()
        self.batches = [(problem.X[a:b], problem.onehot[a:b]) for a, b in problem.batches()]

    def epoch(self) -> float:
        total = 0.0
        for X, Y in self.batches:
            loss, grads = loss_and_gradients(self.p.size, self.params, X, Y)
            total += loss
            for key, g in grads.items():
                self.params[key] -= self.p.lr * g
        return total / len(self.batches)

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}


def gemm_floor_ms(problem: CnnProblem, repeats: int, warmup_s: float = WARMUP_S) -> float:
    """Median time of just one epoch's im2col matrix products (`cnn_setup.gemms`).

    ``np.dot`` into preallocated outputs, the same shapes, dtype and transposed
    operands as the training step; nothing else (no im2col copies, no pooling).
    """
    rng = np.random.default_rng(0)
    dt = problem.dtype

    def rand(rows: int, cols: int, transposed: bool) -> np.ndarray:
        if transposed:   # a transposed view of a C-contiguous array, as cols.T or W.T
            return rng.standard_normal((cols, rows)).astype(dt).T
        return rng.standard_normal((rows, cols)).astype(dt)

    ops = [(rand(g.m, g.k, g.ta), rand(g.k, g.n, g.tb), np.empty((g.m, g.n), dtype=dt))
           for g in gemms(problem.size)]
    n_batches = problem.size.n_batches

    def epoch() -> None:
        for _ in range(n_batches):
            for a, b, out in ops:
                np.dot(a, b, out=out)

    warm_up(epoch, warmup_s)   # BLAS thread pool, page faults, the core's clock
    return median_ms(epoch, repeats)[0]
