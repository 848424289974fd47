"""Every output activation x every loss prints and compiles, Piecewise algebra included.

LeakyReLU/ELU with huber (or a custom Piecewise loss) used to fold into an ITE node
(a Piecewise inside a Piecewise condition), which the kernel printer refused at fit.
The full cross product is checked on the printed expressions themselves (one small
njit function per dtype, against NumPy); a few pairs go through the whole compiled
model, where sg.check's "kernel" entry compares it with the NumPy reference.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import sympy as sp
from numba import njit

import symgrad as sg
from symgrad.codegen.printer import print_expr
from symgrad.definition.activations import REGISTRY
from symgrad.definition.errors import PairingError
from symgrad.definition.formulas import P, Y, Z
from symgrad.definition.losses import BUILTIN_NAMES as LOSS_BUILTINS
from symgrad.definition.losses import LOSSES
from symgrad.definition.supported import LAMBDIFY_MODULES
from symgrad.simplify.network import derive_network

OUTPUTS = sorted(n for n, cls in REGISTRY.items() if cls.entry.kind != "softmax")
SYMBOLS = {Z: "z", Y: "y", P: "p"}


@pytest.fixture(scope="module")
def piecewise_loss():
    """A custom Piecewise loss (asymmetric: squared above the target, linear below)."""
    p, y = sp.symbols("p y", real=True)
    name = "test_piecewise_pairs_asym"
    entry = sg.loss(name, sp.Piecewise(((p - y) ** 2, p > y), (2 * sp.Abs(p - y), True)))
    yield entry
    LOSSES.pop(name, None)


def _pairs(extra):
    # built-ins only (and ``extra``): other test files' losses may still be registered
    # in this worker, and each pair here is compiled
    losses = [LOSSES[n] for n in sorted(LOSSES) if not LOSSES[n].requires_softmax
              and n in LOSS_BUILTINS] + [extra]
    for act in OUTPUTS:
        for loss in losses:
            try:
                plan = derive_network(sg.Sequential(sg.Dense(1, 1), REGISTRY[act]()), loss)
            except PairingError:
                continue   # refused before any kernel exists (e.g. relu + bce)
            yield f"{act} + {loss.name}", plan.output


def _expressions(out):
    pred = out.stable_prediction if out.stable_prediction is not None else out.prediction
    return [pred, out.loss_from_logits, out.delta]


def _namespace() -> dict:
    ns = {"math": math, "np": np, "f32": np.float32, "f64": np.float64}
    try:   # the printer may call our vectorisable elementary functions
        vecmath = importlib.import_module("symgrad.codegen.vecmath_kernels")
        ns.update({k: v for k, v in vars(vecmath).items() if k.startswith("vm_")})
    except ImportError:
        pass
    return ns


def _printed_function(exprs, dtype: str, jit: bool):
    """One function evaluating the printed expressions at arrays of z, y and p."""
    lines = ["def evaluate(zs, ys, ps, out):", "    for i in range(zs.shape[0]):",
             "        z = zs[i]", "        y = ys[i]", "        p = ps[i]"]
    lines += [f"        out[{j}, i] = {print_expr(e, SYMBOLS, dtype)}"
              for j, e in enumerate(exprs)]
    ns = _namespace()
    exec("\n".join(lines), ns)   # noqa: S102 - our own printed source, test only
    return njit(ns["evaluate"]) if jit else ns["evaluate"]


# Boolean nodes of Piecewise algebra (ITE, And, Or, ...): pairs with them are also
# compiled by Numba, one small function each (one function for all pairs took minutes
# to compile); every pair's printed source runs as Python against NumPy, and the full
# model compile below covers the rest of the kernel path.
PIECEWISE_ALGEBRA = (sp.ITE, sp.logic.boolalg.BooleanFunction)


def test_every_output_activation_and_loss_prints_and_runs(piecewise_loss):
    pairs = list(_pairs(piecewise_loss))
    names = [n for n, _ in pairs]
    assert "leaky_relu + huber" in names and "elu + test_piecewise_pairs_asym" in names
    assert any(e.has(sp.ITE) for _, out in pairs for e in _expressions(out))   # was refused
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.uniform(-3, 3, 24), [0.0, -1.0, 1.0, 2.5, -2.5]])
    y = rng.uniform(0.05, 0.95, z.size)
    jitted = 0
    for name, out in pairs:
        exprs = _expressions(out)
        with np.errstate(all="ignore"):   # p as the forward pass computes it
            p = np.broadcast_to(sp.lambdify([Z], exprs[0], LAMBDIFY_MODULES)(z), z.shape)
        jit = any(e.has(*PIECEWISE_ALGEBRA) for e in exprs)
        jitted += jit
        for dtype, rtol in (("float64", 1e-12), ("float32", 1e-5)):
            dt = np.dtype(dtype)
            zd, yd, pd = z.astype(dt), y.astype(dt), p.astype(dt)
            got = np.empty((len(exprs), z.size), dt)
            with np.errstate(all="ignore"):
                _printed_function(exprs, dtype, jit)(zd, yd, pd, got)
            for j, e in enumerate(exprs):
                with np.errstate(all="ignore"):
                    want = np.broadcast_to(sp.lambdify([Z, Y, P], e, LAMBDIFY_MODULES)(
                        zd.astype(float), yd.astype(float), pd.astype(float)), z.shape)
                ok = np.isfinite(want)
                err = np.abs(got[j][ok].astype(float) - want[ok]) / np.maximum(
                    np.abs(want[ok]), 1.0)
                assert err.max(initial=0.0) <= 10 * rtol, (dtype, name, e)
    assert jitted >= 2


@pytest.mark.parametrize("act, loss, dtype", [
    ("leaky_relu", "huber", "float64"),
    ("elu", "custom", "float32"),
])
def test_piecewise_output_with_piecewise_loss_compiles_and_check_covers_the_kernel(
        act, loss, dtype, piecewise_loss):
    net = sg.Sequential(sg.Dense(3, 4), sg.Tanh(), sg.Dense(4, 2), REGISTRY[act]())
    model = sg.compile(net, loss=piecewise_loss if loss == "custom" else loss, dtype=dtype)
    report = sg.check(model)
    kernel = [e for e in report if e.kind == "kernel"]
    assert {e.name for e in kernel} >= {"kernel loss", "kernel dense0.W", "kernel dense1.b"}
    assert max(e.max_error for e in kernel) <= (1e-12 if dtype == "float64" else 1e-5)
    X = np.random.default_rng(1).normal(size=(16, 3))
    Y = np.tanh(X[:, :2])
    before = model.loss(X, Y)
    model.fit(X, Y, epochs=20, batch_size=8, shuffle=False)
    assert np.isfinite(model.loss(X, Y)) and model.loss(X, Y) < before
