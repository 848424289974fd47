"""Compile, train and check random activation formulas and a set of custom losses.

Each random activation is a seeded composition of the supported functions (depth 1-3,
sums, products, rational constants). For every formula: ``sg.activation``, ``sg.compile``
in float64 and float32, three epochs of Adam, then ``sg.check``. A line per formula says
``ok`` (with the plan's notes: an accuracy shortfall is reported, not an error) or
``FAIL`` with the exception. The exit status is the number of failures (capped at 100).

    python tools/fuzz_formulas.py --seeds 0:40            # random activations
    python tools/fuzz_formulas.py --losses                # the custom losses below

Found with it (2026-12-02): a root of z beside tanh crashed ``sg.compile``
(PolynomialError); softplus of a non-linear or two-variable argument failed its proof;
sqrt(4x^2/9 + 1) overflowed where hypot does not; float32 checks failed on a float32
reference less accurate than the kernel, on the rounding an ill-conditioned formula
(sin(e^(3x+1))) forces on any float32 evaluation, and on identities beyond float32's
range.
A formula takes 5-15 s on an empty cache.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable

import numpy as np
import sympy as sp

import symgrad as sg

x = sg.var("x")
UNARY: list[Callable[[sp.Expr], sp.Expr]] = [
    sp.tanh, sp.exp, lambda u: sp.log(1 + u**2), sp.atan, sp.sin, sp.cos, sp.erf, sp.sinh,
    sp.cosh, sp.asinh, lambda u: sp.sqrt(1 + u**2), sp.Abs, lambda u: sp.Max(u, 0),
    lambda u: u**2, lambda u: u**3, lambda u: 1 / (1 + u**2), sp.erfc,
    lambda u: sp.log(1 + sp.exp(u)), lambda u: sp.atanh(sp.tanh(u) / 2),
    lambda u: sp.Piecewise((u, u > 0), (sp.exp(u) - 1, True)),
    lambda u: sp.tan(sp.atan(u) / 2),
]
p, t = sp.symbols("p y", real=True)
LOSSES = {
    "logcosh": sp.log(sp.cosh(p - t)),
    "pseudo_huber": sp.sqrt(1 + (p - t)**2) - 1,
    "cauchy": sp.log(1 + (p - t)**2 / 4),
    "abs_pow": sp.Abs(p - t)**sp.Rational(3, 2),
    "quantile": sp.Max(sp.Rational(3, 10) * (t - p), -sp.Rational(7, 10) * (t - p)),
    "asinh_sq": sp.asinh(p - t)**2,
    "exponential": sp.exp(-(2 * t - 1) * p),
    "poisson": sp.exp(p) - t * p,
    "tanh_sq": sp.tanh(p - t)**2,
    "smooth_l1": sp.Piecewise(((p - t)**2 / 2, sp.Abs(p - t) < 1),
                              (sp.Abs(p - t) - sp.Rational(1, 2), True)),
    "margin": sp.log(1 + sp.exp(-(2 * t - 1) * p)),
}


def random_formula(rng: np.random.Generator, depth: int) -> sp.Expr:
    """A seeded random composition of `UNARY`, sums and products, ``depth`` levels deep."""
    if depth == 0:
        c = sp.Rational(int(rng.integers(1, 5)), int(rng.integers(1, 4)))
        return c * x if rng.random() < 0.8 else x + c
    k = rng.random()
    if k < 0.45:
        return UNARY[rng.integers(len(UNARY))](random_formula(rng, depth - 1))
    a, b = random_formula(rng, depth - 1), random_formula(rng, int(rng.integers(0, depth)))
    return a + b if k < 0.75 else a * b


def _timeout(*_: object) -> None:
    raise TimeoutError("over the per-formula time limit")


def run(label: str, build: Callable[[str], sg.Model], train: Callable[[sg.Model], None],
        limit: int) -> bool:
    """Build, train and check one model per dtype; print one line; True if it passed."""
    start = time.time()
    signal.alarm(limit)
    try:
        for dtype in ("float64", "float32"):
            model = build(dtype)
            train(model)
            ok = sg.check(model).ok
        notes = "; ".join(model.plan.notes)
        print(f"ok   {label} check={ok} {time.time() - start:.1f}s"
              + (f" NOTES {notes[:200]}" if notes else ""), flush=True)
        return ok
    except Exception as err:   # noqa: BLE001 - every failure is reported, then the next runs
        print(f"FAIL {label} {type(err).__name__}: {str(err)[:300]}", flush=True)
        return False
    finally:
        signal.alarm(0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0:20", help="range of formula seeds, start:stop")
    ap.add_argument("--losses", action="store_true", help="the custom losses instead")
    ap.add_argument("--limit", type=int, default=300, help="seconds per formula")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGALRM, _timeout)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 4))
    labels = (X[:, 0] > X[:, 1]).astype(int)

    def fit(model: sg.Model, y: np.ndarray) -> None:
        try:
            model.fit(X, y, epochs=3, batch_size=32, seed=0)
        except sg.TrainingDivergedError:
            pass   # a steep formula may diverge: its gradients are still checked

    failures = 0
    if args.losses:
        for name, formula in LOSSES.items():
            loss = sg.loss(f"fuzz_{name}", formula, prediction=p, target=t, replace=True)
            for head in (sg.Identity, sg.Sigmoid):
                net = sg.Sequential(sg.Dense(4, 5), sg.Tanh(), sg.Dense(5, 1), head())
                failures += not run(f"{name} + {head.__name__}", lambda dt, n=net, L=loss:
                                    sg.compile(n, loss=L, optimizer=sg.Adam(lr=0.01), dtype=dt),
                                    lambda m: fit(m, labels.astype(float)), args.limit)
    else:
        start, stop = (int(s) for s in args.seeds.split(":"))
        for seed in range(start, stop):
            rng = np.random.default_rng(seed)
            formula = random_formula(rng, int(rng.integers(1, 4)))
            if not formula.has(x):
                continue
            act = sg.activation(f"fuzz{seed}", formula, replace=True)
            net = sg.Sequential(sg.Dense(4, 6), act(), sg.Dense(6, 2), sg.Softmax())
            failures += not run(f"{seed:4d} {formula}", lambda dt, n=net: sg.compile(
                n, loss="cross_entropy", optimizer=sg.Adam(lr=0.01), dtype=dt),
                lambda m: fit(m, labels), args.limit)
    print(f"{failures} failed", flush=True)
    return min(failures, 100)


if __name__ == "__main__":
    sys.exit(main())
