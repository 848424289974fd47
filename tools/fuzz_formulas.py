"""Compile, train and check random activation formulas and a set of custom losses.

Each random activation is a seeded composition of the supported functions (depth 1-3,
sums, products, rational constants). For every formula: ``sg.activation``, ``sg.compile``
in float64 and float32, three epochs of Adam, then ``sg.check``. A line per formula says
``ok`` (with the plan's notes: an accuracy shortfall is reported, not an error) or
``FAIL`` with the exception. The exit status is the number of failures (capped at 100).

    python tools/fuzz_formulas.py --seeds 0:40            # random activations
    python tools/fuzz_formulas.py --losses                # the custom losses below
    python tools/fuzz_formulas.py --random-losses --seeds 0:20   # random formulas of p - y
    python tools/fuzz_formulas.py --cnn --seeds 0:20      # random CNNs, random activations
    python tools/fuzz_formulas.py --latex --seeds 0:20    # + each derivation through pdflatex

``--cnn`` puts each random activation after the convolution of a random CNN (image and
kernel sizes, stride, padding, max or average pooling, a second convolution, one of three
heads) and also saves and reloads the weights (predictions must be bit-identical) and runs
the float32 network in onnxruntime (within 1e-4 of ``predict``). ``--latex`` writes each
float64 model's derivation and compiles it with pdflatex (``strict``: an overfull box fails).

Found with it (2026-12-02): a root of z beside tanh crashed ``sg.compile``
(PolynomialError); softplus of a non-linear or two-variable argument failed its proof;
sqrt(4x^2/9 + 1) overflowed where hypot does not; float32 checks failed on a float32
reference less accurate than the kernel, on the rounding an ill-conditioned formula
(sin(e^(3x+1))) forces on any float32 evaluation, and on identities beyond float32's
range. With ``--cnn`` (2026-12-02, evening): the exact reference missed a cancellation
inside one term of a sum at tiny z (2z + (e^z - 1) read 2z at 50 and 100 digits alike;
`symgrad.definition.exact.start_bits`); polynomials were evaluated as written, 32 ulp
off next to a root (3z/2 + 3/2 at z = -1; now factored, `factored_forms`); a float32
network whose loss overflows on sg.check's batch failed with "relative error nan > inf"
(now named); to_onnx refused a Taylor branch. With ``--latex``: printouts ran off the page
where two equations stood side by side, where a splice threshold printed as 38 digits,
where a fraction, a product or a function's argument could not break, and where a cases
block took the alignment point (all broken or shortened now, `render/line_breaks.py`).
Next session (2026-12-02, night): a long value inside a cases block, a product inside
parentheses, a fraction over a sum and a sum inside a fraction inside two calls ran off
the page (each breaks now); max(0, z) e^(-z) was inf * 0 = NaN at z = -1000 and no note
said so (now a select, `zero_selected_forms`); 5z/3 + 1 rounded 5/3 next to its root
(`vm_affine`); a trained CNN's float64 kernel check failed on a gradient that cancels.
``--random-losses`` builds each random formula of p - y as a loss.
A formula takes 5-15 s on an empty cache (a CNN 20-45 s).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
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


def random_cnn(rng: np.random.Generator, act: Callable[[], object]
               ) -> tuple[sg.Sequential, str, tuple[int, int, int]]:
    """A seeded random small CNN with ``act`` after its convolutions, its loss, its input shape."""
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(6, 13)), int(rng.integers(6, 13))
    layers: list[object] = []
    shape = (c, h, w)
    for _ in range(int(rng.integers(1, 3))):   # one or two convolutions
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pad = tuple(min(int(rng.integers(0, 3)), kk) for kk in k)
        out = int(rng.integers(1, 5))
        hw = tuple((n + 2 * pp - kk) // s + 1
                   for n, pp, kk, s in zip(shape[1:], pad, k, stride, strict=True))
        if min(hw) < 2:
            break
        layers += [sg.Conv2d(shape[0], out, k, stride=stride, padding=pad), act()]
        shape = (out, *hw)
        if min(shape[1:]) >= 2 and rng.random() < 0.7:
            kind = sg.MaxPool2d if rng.random() < 0.5 else sg.AvgPool2d
            pool = kind(2, int(rng.integers(1, 3)))
            layers.append(pool)
            shape = (out, *((n - 2) // pool.stride[0] + 1 for n in shape[1:]))
    head = int(rng.integers(3))
    flat = shape[0] * shape[1] * shape[2]
    layers += [sg.Flatten(), sg.Dense(flat, 5), act(), sg.Dense(5, (3, 1, 2)[head])]
    layers.append((sg.Softmax(), sg.Sigmoid(), sg.Identity())[head])
    loss = ("cross_entropy", "bce", "mse")[head]
    return sg.Sequential(*layers, input_shape=(c, h, w)), loss, (c, h, w)


def round_trips(model: sg.Model, X: np.ndarray, folder: str) -> None:
    """Saved and reloaded weights predict bit-identically; float32 ONNX agrees within 1e-4."""
    import os

    path = os.path.join(folder, "weights.npz")
    model.save(path)
    again = sg.compile(model.net, loss=model.loss_entry, optimizer=sg.Adam(lr=0.01),
                       dtype=model.dtype.name, seed=1)
    again.load(path)
    if not np.array_equal(again.predict(X), model.predict(X), equal_nan=True):
        raise AssertionError("predictions differ after save and load")
    if model.dtype == np.float32:
        import onnxruntime as ort

        onnx_path = model.to_onnx(os.path.join(folder, "model.onnx"))
        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: X})[0]
        want = model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)
        finite = np.isfinite(want)   # a formula that overflows does so in both
        err = float(np.max(np.abs(got.reshape(want.shape) - want)[finite], initial=0.0))
        # ONNX runs its float32 operators one by one, as NumPy's float32 reference does:
        # where the formula is ill-conditioned (sin(e^(3z + 1))) both round by far more
        # than 1e-4, so allow 4x that reference's own error against float64
        params = {k: np.asarray(v, dtype=np.float32) for k, v in model.params.items()}
        rows = X.reshape(X.shape[0], -1).astype(np.float32)
        with np.errstate(all="ignore"):
            low = model.reference.forward(params, rows)["P"].reshape(want.shape)
            high = model.reference.forward({k: v.astype(np.float64) for k, v in params.items()},
                                           rows.astype(np.float64))["P"].reshape(want.shape)
        both = finite & np.isfinite(low) & np.isfinite(high)
        floor = float(np.max(np.abs(low - high)[both], initial=0.0))
        scale = max(1.0, float(np.max(np.abs(want[finite]), initial=0.0)))
        if not err <= 1e-4 * scale + 4 * floor:
            raise AssertionError(f"onnxruntime differs from predict by {err:.3g} (the float32 "
                                 f"NumPy reference by {floor:.3g})")


def printout(model: sg.Model, folder: str) -> None:
    """The derivation through pdflatex; `OverfullBoxError` if anything runs off the page."""
    import os

    if model.dtype == np.float64:
        model.derivation.to_tex(os.path.join(folder, "derivation.tex"), strict=True)


def _timeout(*_: object) -> None:
    raise TimeoutError("over the per-formula time limit")


def run(label: str, build: Callable[[str], sg.Model], train: Callable[[sg.Model], None],
        limit: int, after: Callable[[sg.Model], None] | None = None) -> bool:
    """Build, train and check one model per dtype (then ``after`` it); one line; True if passed."""
    start = time.time()
    signal.alarm(limit)
    try:
        for dtype in ("float64", "float32"):
            model = build(dtype)
            train(model)
            ok = sg.check(model).ok
            if after is not None:
                after(model)
        notes = "; ".join(model.plan.notes)
        print(f"ok   {label} check={ok} {time.time() - start:.1f}s"
              + (f" NOTES {notes[:200]}" if notes else ""), flush=True)
        return ok
    except Exception as err:   # noqa: BLE001 - every failure is reported, then the next runs
        print(f"FAIL {label} {type(err).__name__}: {str(err)[:300]}", flush=True)
        return False
    finally:
        signal.alarm(0)


def run_cnn(seed: int, formula: sp.Expr, act: Callable[[], object], limit: int,
            latex: bool = False) -> bool:
    """`run` on a `random_cnn` of ``act`` with its round trips (and its printout)."""
    rng = np.random.default_rng(seed + 10_000)
    net, loss, shape = random_cnn(rng, act)
    images = rng.normal(size=(48, *shape))
    heads = {"cross_entropy": rng.integers(0, 3, 48), "bce": rng.integers(0, 2, 48),
             "mse": rng.normal(size=(48, 2))}
    y = heads[loss]
    folder = tempfile.mkdtemp(prefix="fuzz_cnn_")

    def train(model: sg.Model) -> None:
        X = images.astype(model.dtype)
        try:
            model.fit(X, y, epochs=2, batch_size=16, seed=0)
        except sg.TrainingDivergedError:
            pass

    layers = " ".join(type(layer).__name__ for layer in net.layers)
    return run(f"{seed:4d} {formula} | {shape} {layers} {loss}", lambda dt: sg.compile(
        net, loss=loss, optimizer=sg.Adam(lr=0.01), dtype=dt), train, limit,
        lambda m: (round_trips(m, images.astype(m.dtype), folder),
                   printout(m, folder) if latex else None))


def run_random_loss(seed: int, formula: sp.Expr, fit: Callable, labels: np.ndarray,
                    limit: int, latex: bool) -> bool:
    """`run` on a small MLP whose loss is the random ``formula`` of p and y, under an
    identity and a sigmoid head (its printout too with ``latex``)."""
    loss = sg.loss(f"fuzz_loss{seed}", formula, prediction=p, target=t, replace=True)
    passed = True
    for head in (sg.Identity, sg.Sigmoid):
        net = sg.Sequential(sg.Dense(4, 5), sg.Tanh(), sg.Dense(5, 1), head())
        folder = tempfile.mkdtemp(prefix="fuzz_rloss_")
        passed &= run(f"{seed:4d} loss {formula} + {head.__name__}", lambda dt, n=net:
                      sg.compile(n, loss=loss, optimizer=sg.Adam(lr=0.01), dtype=dt),
                      lambda m: fit(m, labels.astype(float)), limit,
                      (lambda m, f=folder: printout(m, f)) if latex else None)
    return passed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0:20", help="range of formula seeds, start:stop")
    ap.add_argument("--losses", action="store_true", help="the custom losses instead")
    ap.add_argument("--random-losses", action="store_true",
                    help="random formulas of p - y as losses (identity and sigmoid heads)")
    ap.add_argument("--cnn", action="store_true", help="random CNNs around the activations")
    ap.add_argument("--latex", action="store_true", help="compile each derivation (pdflatex)")
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
                folder = tempfile.mkdtemp(prefix="fuzz_loss_")
                failures += not run(f"{name} + {head.__name__}", lambda dt, n=net, L=loss:
                                    sg.compile(n, loss=L, optimizer=sg.Adam(lr=0.01), dtype=dt),
                                    lambda m: fit(m, labels.astype(float)), args.limit,
                                    (lambda m, f=folder: printout(m, f)) if args.latex else None)
    else:
        start, stop = (int(s) for s in args.seeds.split(":"))
        for seed in range(start, stop):
            rng = np.random.default_rng(seed)
            formula = random_formula(rng, int(rng.integers(1, 4)))
            if not formula.has(x):
                continue
            if args.random_losses:
                failures += not run_random_loss(seed, formula.subs(x, p - t), fit, labels,
                                                args.limit, args.latex)
                continue
            act = sg.activation(f"fuzz{seed}", formula, replace=True)
            if args.cnn:
                failures += not run_cnn(seed, formula, act, args.limit, args.latex)
                continue
            net = sg.Sequential(sg.Dense(4, 6), act(), sg.Dense(6, 2), sg.Softmax())
            folder = tempfile.mkdtemp(prefix="fuzz_mlp_")
            failures += not run(f"{seed:4d} {formula}", lambda dt, n=net: sg.compile(
                n, loss="cross_entropy", optimizer=sg.Adam(lr=0.01), dtype=dt),
                lambda m: fit(m, labels), args.limit,
                (lambda m, f=folder: printout(m, f)) if args.latex else None)
    print(f"{failures} failed", flush=True)
    return min(failures, 100)


if __name__ == "__main__":
    sys.exit(main())
