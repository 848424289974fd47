"""The benchmark problem every framework trains: sizes, data, initial weights, FLOP count.

Everything here is deterministic (fixed seeds) so that each framework, in its own
process, rebuilds bit-identical inputs and the results can be compared weight by
weight. Only NumPy is imported (SciPy's erf/expit on first use of GELU/sigmoid/swish):
this module is shared by every runner.

Besides size and dtype, a run has a hidden *activation* (`ACTIVATIONS`; every
framework writes the same formula, GELU in its exact erf form) and an
*optimizer* (`OPTIMIZERS`: plain SGD, or Adam with bias correction,
``w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SEED = 20261123
LEARNING_RATE = 0.05
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "swish")
OPTIMIZERS = ("sgd", "adam")
# Adam's hyper-parameters (the usual defaults): the same in every framework.
ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


@dataclass(frozen=True)
class Size:
    """One benchmark configuration: layer widths, number of samples, batch size."""

    name: str
    dims: tuple[int, ...]   # (in, hidden..., classes); activation hidden, softmax + CE
    n: int
    batch: int

    @property
    def n_batches(self) -> int:
        return self.n // self.batch

    @property
    def arch(self) -> str:
        return "-".join(str(d) for d in self.dims)


SIZES: dict[str, Size] = {
    "tiny": Size("tiny", (2, 16, 16, 2), 1024, 16),
    "small": Size("small", (64, 128, 64, 10), 2048, 32),
    "medium": Size("medium", (784, 256, 128, 10), 8192, 128),
}
DTYPES = ("float64", "float32")


@dataclass
class Problem:
    """Data and initial parameters of one (size, dtype) run, as NumPy arrays.

    ``params`` is ``[(W0, b0), (W1, b1), ...]`` with ``W`` shaped (in, out), the
    layout of ``Z = A @ W + b``; frameworks that store (out, in) transpose a copy.
    """

    size: Size
    dtype: np.dtype
    X: np.ndarray          # (n, in) C-contiguous
    labels: np.ndarray     # (n,) int64 class indices
    onehot: np.ndarray     # (n, classes) in dtype
    params: list[tuple[np.ndarray, np.ndarray]]
    activation: str = "relu"
    optimizer: str = "sgd"

    @property
    def lr(self) -> float:
        """The learning rate of the run's optimizer."""
        return ADAM["lr"] if self.optimizer == "adam" else LEARNING_RATE

    @property
    def tag(self) -> str:
        """``size_dtype_activation_optimizer``: names this run's files."""
        return f"{self.size.name}_{self.dtype.name}_{self.activation}_{self.optimizer}"

    def batches(self) -> list[tuple[int, int]]:
        """(start, stop) of each minibatch, in order: no shuffling anywhere."""
        b = self.size.batch
        return [(i * b, (i + 1) * b) for i in range(self.size.n_batches)]

    def copy_params(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(W.copy(), b.copy()) for W, b in self.params]

    def in_float64(self) -> Problem:
        """The same run in float64 from this run's own data and starting weights (cast up
        exactly): the trajectory a float32 run would follow without rounding.

        >>> p = make_problem("tiny", "float32").in_float64()
        >>> p.dtype.name, p.tag
        ('float64', 'tiny_float64_relu_sgd')
        """
        up = np.float64
        return Problem(self.size, np.dtype(up), self.X.astype(up), self.labels,
                       self.onehot.astype(up), [(W.astype(up), b.astype(up))
                                                for W, b in self.params],
                       self.activation, self.optimizer)


def make_problem(size: Size | str, dtype: str, activation: str = "relu",
                 optimizer: str = "sgd") -> Problem:
    """Build the synthetic classification problem for ``size`` in ``dtype``.

    ``activation`` and ``optimizer`` only label the run: data and initial
    weights are the same for all of them.

    Labels come from a random linear teacher so that training has a signal; the
    data are drawn in float64 and cast, so float32 and float64 see the same task.

    >>> p = make_problem("tiny", "float32")
    >>> p.X.shape, p.X.dtype, p.params[0][0].shape, int(p.labels.max()) <= 1
    ((1024, 2), dtype('float32'), (2, 16), True)
    """
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
        size = SIZES[size]
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {DTYPES}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {ACTIVATIONS}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {OPTIMIZERS}")
    if size.n % size.batch:
        raise ValueError(f"size {size.name}: n={size.n} is not a multiple of batch={size.batch}")
    rng = np.random.default_rng(SEED + sum(size.dims))
    d_in, k = size.dims[0], size.dims[-1]
    X64 = rng.standard_normal((size.n, d_in))
    teacher = rng.standard_normal((d_in, k))
    labels = np.argmax(X64 @ teacher + 0.5 * rng.standard_normal((size.n, k)), axis=1)
    params = []
    for fan_in, fan_out in zip(size.dims[:-1], size.dims[1:], strict=True):
        # He-normal weights (for every activation: the runs differ only in it); small
        # non-zero biases so bias gradients are exercised.
        W = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
        b = 0.01 * rng.standard_normal(fan_out)
        params.append((W.astype(dtype), b.astype(dtype)))
    onehot = np.zeros((size.n, k), dtype=dtype)
    onehot[np.arange(size.n), labels] = 1
    return Problem(size, np.dtype(dtype), np.ascontiguousarray(X64.astype(dtype)),
                   labels.astype(np.int64), onehot, params, activation, optimizer)


def activation_numpy(name: str) -> tuple[Callable, Callable]:
    """(f(Z), f'(Z, A)) of a hidden activation in NumPy, written out by hand (A = f(Z)).

    This is the reference the other frameworks are checked against, so it
    states each derivative independently of symgrad's derivation.

    >>> f, df = activation_numpy("gelu")
    >>> z = np.array([-1.0, 0.0, 2.0])
    >>> bool(np.allclose(df(z, f(z)), [-0.0833155, 0.5, 1.0852318], atol=1e-7))
    True
    """
    if name == "relu":
        return (lambda Z: np.maximum(Z, 0)), (lambda Z, A: (Z > 0).astype(Z.dtype))
    if name == "tanh":
        return np.tanh, (lambda Z, A: 1 - A * A)
    from scipy.special import erf, expit  # accurate and overflow-free in both dtypes

    if name == "sigmoid":
        return expit, (lambda Z, A: A * (1 - A))
    if name == "gelu":
        # Exact GELU: z * Phi(z); derivative Phi(z) + z * phi(z).
        def gelu(Z):
            return Z * (1 + erf(Z / np.sqrt(2).astype(Z.dtype))) / 2

        def dgelu(Z, A):
            cdf = (1 + erf(Z / np.sqrt(2).astype(Z.dtype))) / 2
            return cdf + Z * np.exp(-Z * Z / 2) / np.sqrt(2 * np.pi).astype(Z.dtype)

        return gelu, dgelu
    if name == "swish":
        # z * sigmoid(z); derivative s * (1 + z * (1 - s)).
        def dswish(Z, A):
            s = expit(Z)
            return s * (1 + Z * (1 - s))

        return (lambda Z: Z * expit(Z)), dswish
    raise ValueError(f"unknown activation {name!r}; choose from {ACTIVATIONS}")


def matmul_shapes(size: Size) -> list[tuple[int, int, int]]:
    """(m, k, n) of every matrix product in one minibatch step.

    Forward: one product per layer. Backward: dW = A^T dZ per layer and
    dA = dZ W^T for every layer but the first (nobody needs dX).

    >>> matmul_shapes(SIZES["tiny"])[:3]
    [(16, 2, 16), (16, 16, 16), (16, 16, 2)]
    >>> len(matmul_shapes(SIZES["tiny"]))
    8
    """
    m, dims = size.batch, size.dims
    fwd = [(m, dims[i], dims[i + 1]) for i in range(len(dims) - 1)]
    bwd = []
    for i in reversed(range(len(dims) - 1)):
        bwd.append((dims[i], m, dims[i + 1]))          # dW_i = A_{i-1}^T (in, m) @ dZ_i (m, out)
        if i > 0:
            bwd.append((m, dims[i + 1], dims[i]))      # dA_{i-1} = dZ_i (m, out) @ W_i^T (out, in)
    return fwd + bwd


def flops_per_epoch(size: Size) -> int:
    """Matrix-product FLOPs of one epoch, counting 2*m*k*n per product.

    tiny, per batch of 16: forward and dW 16*(2*16 + 16*16 + 16*2) multiply-adds each,
    dA 16*(16*16 + 16*2); times 2 FLOPs and 64 batches:

    >>> flops_per_epoch(SIZES["tiny"]) == 2 * 64 * 16 * (2 * 320 + 288)
    True
    """
    return size.n_batches * sum(2 * m * k * n for m, k, n in matmul_shapes(size))


# Seconds of untimed epochs before the timed ones (`warm_up`; the workers' --warmup).
WARMUP_S = 0.2


def warm_up(fn: Callable[[], object], seconds: float = WARMUP_S) -> int:
    """Call ``fn`` once, then again until ``seconds`` have passed; return the call count.

    By time, not by count: a tiny network's epoch takes 0.1-0.3 ms, and the first
    dozen after setup ran up to 2.5x slower than the ones after them (the tiny CNN
    in symgrad: 0.65, 0.53, 0.44, 0.35 ... 0.26 ms, while the core's clock and the
    worker threads' wake-ups settle). One warm-up epoch left the timed median on that
    slope, and the GEMM floor, timed after NumPy's own epochs, off it. A 100 ms epoch
    is warm after one call, as before. Every framework and both floors use this.

    >>> calls = []
    >>> warm_up(lambda: calls.append(1), seconds=0.0)
    1
    """
    start = time.perf_counter()
    fn()
    calls = 1
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls


def median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Run ``fn`` ``repeats`` times; return the median and all wall times in ms."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), times


def full_loss(problem: Problem, params: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean softmax cross-entropy over the whole data set, in float64 (a shared judge)."""
    act = activation_numpy(problem.activation)[0]
    A = problem.X.astype(np.float64)
    for i, (W, b) in enumerate(params):
        Z = A @ W.astype(np.float64) + b.astype(np.float64)
        A = act(Z) if i < len(params) - 1 else Z
    Z = A - A.max(axis=1, keepdims=True)
    lse = np.log(np.exp(Z).sum(axis=1))
    return float(np.mean(lse - Z[np.arange(len(Z)), problem.labels]))
