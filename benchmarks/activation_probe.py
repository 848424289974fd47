"""symgrad vs JAX on activations and shapes that `bench_mlp.py` does not list.

Issue 8 asks that symgrad's epoch be no slower than JAX's on shapes and activations the
benchmark does not cover. This probe trains three other MLP shapes with ELU, Softplus,
LeakyReLU, and two user formulas -- Mish, x tanh(softplus x), and GELU's tanh form -- in both
dtypes: symgrad's ``fit`` (SGD, softmax + cross-entropy) against a JAX ``jit`` of the same
epoch (``lax.scan`` over the batches, ``value_and_grad``), starting from symgrad's initial
weights. Medians of ``--repeats`` epochs, the two frameworks alternating in one process.
It is a probe, not the reference benchmark: no weight check against NumPy (that is
`bench_mlp.py`'s job), and JAX's GELU tanh form is its own (``approximate=True``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/activation_probe.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/activation_probe.py mish,elu
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from mlp_setup import warm_up  # noqa: E402
from run_jax import mlp_loss  # noqa: E402

import symgrad as sg  # noqa: E402

_x = sg.var("x")
SYMGRAD = {
    "elu": sg.ELU, "softplus": sg.Softplus, "leaky_relu": sg.LeakyReLU,
    "mish": sg.activation("mish", _x * sg.tanh(sg.log(1 + sg.exp(_x)))),
    "gelu_tanh": sg.activation("gelu_tanh", _x / (1 + sg.exp(
        -2 * 0.7978845608028654 * (_x + 0.044715 * _x**3)))),
}
JAX = {
    "elu": jax.nn.elu, "softplus": jax.nn.softplus,
    "leaky_relu": lambda z: jax.nn.leaky_relu(z, 0.01),   # symgrad's default slope too
    "mish": lambda z: z * jnp.tanh(jax.nn.softplus(z)),
    "gelu_tanh": lambda z: jax.nn.gelu(z, approximate=True),
}
# (layer widths, samples, batch): none of them is a bench_mlp size.
SHAPES = [((20, 48, 48, 3), 1500, 25), ((100, 200, 50, 7), 4000, 50),
          ((300, 512, 10), 6000, 100)]
LR = 0.05


def _jax_epoch(activation: str):
    grad = jax.value_and_grad(mlp_loss(JAX[activation]))

    def step(params, batch):
        value, g = grad(params, *batch)
        return jax.tree_util.tree_map(lambda q, d: q - LR * d, params, g), value

    return jax.jit(lambda ps, xs, ys: jax.lax.scan(step, ps, (xs, ys)), donate_argnums=(0,))


def probe(activation: str, dims: tuple[int, ...], n: int, batch: int, dtype: str,
          repeats: int) -> tuple[float, float]:
    """(symgrad ms, JAX ms): epoch medians of one cell."""
    rng = np.random.default_rng(0)
    n -= n % batch
    X = rng.normal(size=(n, dims[0])).astype(dtype)
    y = rng.integers(0, dims[-1], n)
    layers = []
    for a, b in zip(dims[:-2], dims[1:-1], strict=True):
        layers += [sg.Dense(a, b), SYMGRAD[activation]()]
    net = sg.Sequential(*layers, sg.Dense(dims[-2], dims[-1]), sg.Softmax())
    model = sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=LR), dtype=dtype)
    names = [k[:-2] for k in model.params if k.endswith(".W")]
    params = [(jnp.asarray(model.params[f"{k}.W"]), jnp.asarray(model.params[f"{k}.b"]))
              for k in names]
    model.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)   # compile
    epoch = _jax_epoch(activation)
    xs = jnp.asarray(X.reshape(n // batch, batch, -1))
    ys = jnp.asarray(np.eye(dims[-1], dtype=dtype)[y].reshape(n // batch, batch, -1))
    params, _ = epoch(params, xs, ys)
    jax.block_until_ready(params)
    # Untimed epochs of each first, by time (mlp_setup.warm_up says why).
    warm_up(lambda: model.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0))
    warm_up(lambda: jax.block_until_ready(epoch(params, xs, ys)))
    t_sg, t_jax = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
        t_sg.append(time.perf_counter() - t)
        t = time.perf_counter()
        params, _ = epoch(params, xs, ys)
        jax.block_until_ready(params)
        t_jax.append(time.perf_counter() - t)
    return statistics.median(t_sg) * 1e3, statistics.median(t_jax) * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("activations", nargs="?", default=",".join(SYMGRAD),
                    help=f"comma list of {','.join(SYMGRAD)}")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    print("| activation | layers | batch | dtype | symgrad ms | jax ms | jax/symgrad |")
    print("|---|---|---:|---|---:|---:|---:|")
    for activation in args.activations.split(","):
        for dims, n, batch in SHAPES:
            for dtype in ("float64", "float32"):
                s, j = probe(activation, dims, n, batch, dtype, args.repeats)
                print(f"| {activation} | {'-'.join(map(str, dims))} | {batch} | {dtype} | "
                      f"{s:.3g} | {j:.3g} | {j / s:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
