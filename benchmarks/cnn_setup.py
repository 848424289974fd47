"""The CNN benchmark problem: network definitions, data, initial weights, GEMM shapes, FLOPs.

Every framework rebuilds the same problem from fixed seeds in its own process,
so the weights after one epoch can be compared number by number. A network is
a tuple of framework-neutral layer specs that each runner translates:

- ``("conv", in_ch, out_ch, kernel, padding)`` -- stride 1, weights (out, in, k, k)
- ``("relu",)``, ``("maxpool", k)``, ``("avgpool", k)`` -- pooling windows k x k, stride k
- ``("flatten",)`` -- (C, H, W) in C order, as PyTorch's ``nn.Flatten``
- ``("dense", in, out)`` -- weights (in, out), ``Z = A @ W + b``

The last dense layer's output goes through softmax + cross-entropy. Only NumPy
is imported here: this module is shared by every runner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mlp_setup import DTYPES, LEARNING_RATE

SEED = 20261130
Layer = tuple


@dataclass(frozen=True)
class CnnSize:
    """One benchmark configuration: input shape (C, H, W), layer specs, samples, batch."""

    name: str
    input_shape: tuple[int, int, int]
    layers: tuple[Layer, ...]
    n: int
    batch: int

    @property
    def n_batches(self) -> int:
        return self.n // self.batch

    @property
    def classes(self) -> int:
        return self.layers[-1][2]

    @property
    def arch(self) -> str:
        """Short text of the network, e.g. ``1x8x8 c4k3-max2-d10``."""
        names = {"conv": lambda s: f"c{s[2]}k{s[3]}" + (f"p{s[4]}" if s[4] else ""),
                 "maxpool": lambda s: f"max{s[1]}", "avgpool": lambda s: f"avg{s[1]}",
                 "dense": lambda s: f"d{s[2]}"}
        body = "-".join(names[s[0]](s) for s in self.layers if s[0] in names)
        return "x".join(map(str, self.input_shape)) + " " + body


def _lenet(c1: int, c2: int, hidden: int) -> tuple[Layer, ...]:
    return (("conv", 1, c1, 5, 0), ("relu",), ("maxpool", 2), ("conv", c1, c2, 5, 0),
            ("relu",), ("maxpool", 2), ("flatten",), ("dense", c2 * 16, hidden), ("relu",),
            ("dense", hidden, 10))


def _wide(c1: int, c2: int) -> tuple[Layer, ...]:
    return (("conv", 3, c1, 3, 1), ("relu",), ("maxpool", 2), ("conv", c1, c2, 3, 1),
            ("relu",), ("avgpool", 2), ("flatten",), ("dense", c2 * 64, 10))


SIZES: dict[str, CnnSize] = {
    "tiny": CnnSize("tiny", (1, 8, 8), (("conv", 1, 4, 3, 0), ("relu",), ("maxpool", 2),
                                        ("flatten",), ("dense", 36, 10)), 512, 64),
    # The LeNet-like network: Conv(1,8,5) ReLU Max2 Conv(8,16,5) ReLU Max2 256-64-10.
    "lenet": CnnSize("lenet", (1, 28, 28), _lenet(8, 16, 64), 4096, 64),
    "wide": CnnSize("wide", (3, 32, 32), _wide(16, 32), 2048, 64),
}

# The same layer kinds with other channel counts: symgrad's compile on a cache that
# already holds the size's own network ("changed widths").
RESIZED: dict[str, CnnSize] = {
    "tiny": CnnSize("tiny", (1, 8, 8), (("conv", 1, 6, 3, 0), ("relu",), ("maxpool", 2),
                                        ("flatten",), ("dense", 54, 10)), 512, 64),
    "lenet": CnnSize("lenet", (1, 28, 28), _lenet(6, 12, 48), 4096, 64),
    "wide": CnnSize("wide", (3, 32, 32), _wide(12, 24), 2048, 64),
}


def get_size(size: CnnSize | str) -> CnnSize:
    """``size`` itself, or the entry of `SIZES` it names."""
    if isinstance(size, CnnSize):
        return size
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    return SIZES[size]


def shapes(size: CnnSize) -> list[tuple[int, ...]]:
    """Per-sample shape after each layer, starting with the input (checks the specs).

    >>> shapes(SIZES["lenet"])[-5:]
    [(16, 4, 4), (256,), (64,), (64,), (10,)]
    """
    out = [size.input_shape]
    for spec in size.layers:
        cur = out[-1]
        kind = spec[0]
        if kind == "conv":
            _, cin, cout, k, pad = spec
            c, h, w = cur
            if c != cin:
                raise ValueError(f"{size.name}: {spec} gets {c} channels")
            out.append((cout, h + 2 * pad - k + 1, w + 2 * pad - k + 1))
        elif kind in ("maxpool", "avgpool"):
            c, h, w = cur
            out.append((c, h // spec[1], w // spec[1]))
        elif kind == "flatten":
            out.append((int(np.prod(cur)),))
        elif kind == "dense":
            if cur != (spec[1],):
                raise ValueError(f"{size.name}: {spec} gets input of shape {cur}")
            out.append((spec[2],))
        elif kind == "relu":
            out.append(cur)
        else:
            raise ValueError(f"{size.name}: unknown layer kind {kind!r}")
    return out


def param_layers(size: CnnSize) -> dict[int, str]:
    """Layer index -> name of each layer with weights, named as symgrad names them.

    >>> param_layers(SIZES["lenet"])
    {0: 'conv0', 3: 'conv1', 7: 'dense0', 9: 'dense1'}
    """
    counts = {"conv": 0, "dense": 0}
    named = {}
    for i, spec in enumerate(size.layers):
        if spec[0] in counts:
            named[i] = f"{spec[0]}{counts[spec[0]]}"
            counts[spec[0]] += 1
    return named


@dataclass
class CnnProblem:
    """Data and initial parameters of one (size, dtype) run, as NumPy arrays.

    ``params`` maps ``"conv0.W"`` (out, in, k, k), ``"conv0.b"`` (out,),
    ``"dense0.W"`` (in, out), ``"dense0.b"`` (out,) ... in layer order.
    """

    size: CnnSize
    dtype: np.dtype
    X: np.ndarray          # (n, C, H, W) C-contiguous
    labels: np.ndarray     # (n,) int64 class indices
    onehot: np.ndarray     # (n, classes) in dtype
    params: dict[str, np.ndarray]
    lr: float = LEARNING_RATE

    @property
    def tag(self) -> str:
        """``size_dtype``: names this run's files."""
        return f"{self.size.name}_{self.dtype.name}"

    def batches(self) -> list[tuple[int, int]]:
        """(start, stop) of each minibatch, in order: no shuffling anywhere."""
        b = self.size.batch
        return [(i * b, (i + 1) * b) for i in range(self.size.n_batches)]

    def copy_params(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}


def make_problem(size: CnnSize | str, dtype: str) -> CnnProblem:
    """Build the synthetic image-classification problem for ``size`` in ``dtype``.

    Each class has a smooth random template (a coarse grid upsampled by repetition);
    an image is its class's template plus Gaussian noise, so the task has a signal
    and the convolutions see spatial structure. Drawn in float64, then cast.

    >>> p = make_problem("tiny", "float32")
    >>> p.X.shape, p.X.dtype, p.params["conv0.W"].shape, p.params["dense0.W"].shape
    ((512, 1, 8, 8), dtype('float32'), (4, 1, 3, 3), (36, 10))
    """
    size = get_size(size)
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {DTYPES}")
    if size.n % size.batch:
        raise ValueError(f"size {size.name}: n={size.n} is not a multiple of batch={size.batch}")
    shapes(size)  # the specs fit together
    rng = np.random.default_rng(SEED + size.n + sum(size.input_shape))
    c, h, w = size.input_shape
    k = size.classes
    coarse = rng.standard_normal((k, c, (h + 3) // 4, (w + 3) // 4))
    templates = np.kron(coarse, np.ones((1, 1, 4, 4)))[:, :, :h, :w]
    labels = rng.integers(0, k, size.n)
    # Noise 1.5 times the template's scale; the sum scaled back to unit variance, so
    # plain SGD at the MLP benchmark's learning rate neither stalls nor diverges.
    X64 = (templates[labels] + 1.5 * rng.standard_normal((size.n, c, h, w))) / np.sqrt(3.25)
    params: dict[str, np.ndarray] = {}
    for i, name in param_layers(size).items():
        spec = size.layers[i]
        if spec[0] == "conv":
            _, cin, cout, ks, _ = spec
            W = rng.standard_normal((cout, cin, ks, ks)) * np.sqrt(2.0 / (cin * ks * ks))
        else:
            _, fan_in, cout = spec
            W = rng.standard_normal((fan_in, cout)) * np.sqrt(2.0 / fan_in)
        # He-normal weights; small non-zero biases so bias gradients are exercised.
        params[f"{name}.W"] = W.astype(dtype)
        params[f"{name}.b"] = (0.01 * rng.standard_normal(cout)).astype(dtype)
    onehot = np.zeros((size.n, k), dtype=dtype)
    onehot[np.arange(size.n), labels] = 1
    return CnnProblem(size, np.dtype(dtype), np.ascontiguousarray(X64.astype(dtype)),
                      labels.astype(np.int64), onehot, params)


@dataclass(frozen=True)
class Gemm:
    """One matrix product ``a @ b`` of shape (m, k) @ (k, n); ``ta``/``tb``: operand transposed.

    A transposed operand is a transposed view of a C-contiguous array, as in the
    im2col backward pass (``cols.T @ dZ``, ``dZ @ W.T``), so BLAS sees the same layouts.
    """

    what: str
    m: int
    k: int
    n: int
    ta: bool = False
    tb: bool = False

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n


def gemms(size: CnnSize) -> list[Gemm]:
    """Every matrix product of one minibatch step in the im2col formulation.

    Per conv layer (b images, C -> O channels, k x k kernel, OH x OW output, the
    image patches ``cols`` of shape (b*OH*OW, C*k*k), the weights as a (C*k*k, O)
    matrix): forward ``cols @ W``, backward ``dW = cols.T @ dZ`` and
    ``dcols = dZ @ W.T`` (none for the first layer: nobody needs dX). Per dense
    layer the same three as in the MLP benchmark.

    >>> [(g.what, g.m, g.k, g.n) for g in gemms(SIZES["tiny"])]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('conv0 forward', 2304, 9, 4), ('dense0 forward', 64, 36, 10),
     ('dense0 dW', 36, 64, 10), ('dense0 dA', 64, 10, 36), ('conv0 dW', 9, 2304, 4)]
    """
    b = size.batch
    shp = shapes(size)
    named = param_layers(size)
    fwd, bwd = [], []
    for i, name in named.items():
        spec = size.layers[i]
        kind = spec[0]
        first = i == min(named)
        if kind == "conv":
            _, cin, cout, ks, _ = spec
            rows, inner = b * shp[i + 1][1] * shp[i + 1][2], cin * ks * ks
            fwd.append(Gemm(f"{name} forward", rows, inner, cout))
            back = [Gemm(f"{name} dW", inner, rows, cout, ta=True)]
            if not first:
                back.append(Gemm(f"{name} dcols", rows, cout, inner, tb=True))
        else:
            _, fan_in, cout = spec
            fwd.append(Gemm(f"{name} forward", b, fan_in, cout))
            back = [Gemm(f"{name} dW", fan_in, b, cout, ta=True)]
            if not first:
                back.append(Gemm(f"{name} dA", b, cout, fan_in, tb=True))
        bwd = back + bwd
    return fwd + bwd


def flops_per_epoch(size: CnnSize) -> int:
    """FLOPs of one epoch's matrix products (2*m*k*n each); pooling and ReLU are left out.

    The conv forward is 2*b*O*OH*OW*C*kh*kw per batch, and dW and dX twice that:

    >>> s = SIZES["tiny"]
    >>> conv = 2 * 64 * 4 * 6 * 6 * 1 * 3 * 3
    >>> dense = 2 * 64 * 36 * 10
    >>> flops_per_epoch(s) == s.n_batches * (2 * conv + 3 * dense)
    True
    """
    return size.n_batches * sum(g.flops for g in gemms(size))

