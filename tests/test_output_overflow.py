"""Every output activation x every loss, out to the dtype's overflow point, vs mpmath.

The fused output step computes p = f(z) and the delta dl/dz = l'(p, y) f'(z) in the
form the simplify stage chose. A shorter form can overflow where the exact value is
an ordinary number: Swish + MSE printed as (p - y)(z + e^z + 1)/(2 cosh(z/2)^2) was
inf/NaN from z = 355 (float64) / 44.5 (float32). Here both evaluators, the compiled
kernel's ``_output`` and the NumPy reference, are compared with the exact delta from
the raw formulas in high precision, at |z| log-spaced from 1e-6 to the dtype's largest
number (points where the exact value itself overflows the dtype are left out).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp
from test_forms_accuracy import MP, exact

import symgrad as sg
from symgrad.definition.activations import REGISTRY
from symgrad.definition.formulas import P, Y, Z
from symgrad.definition.losses import LOSSES
from symgrad.definition.supported import LAMBDIFY_MODULES
from symgrad.runtime.training import trainer_for

ELEMENTWISE = sorted(n for n, cls in REGISTRY.items() if cls.entry.kind == "elementwise")
# Ulps of max(|exact|, 1); the kernel's elementary functions add their own few ulps.
DELTA_ULPS = 64.0
# Predictions: relative, plus twice the condition number (see test_forms_accuracy).
PRED_ULPS = 16.0


def _defined(act: str, loss: str) -> bool:
    """The pairs compile accepts: the loss finite on the activation's outputs."""
    entry = LOSSES[loss]
    if entry.requires_softmax:
        return False
    f = REGISTRY[act]().forward
    fn = sp.lambdify([Z, Y], entry.bound().subs(P, f), modules=LAMBDIFY_MODULES)
    zs = np.linspace(-4, 4, 33)
    with np.errstate(all="ignore"):
        return all(np.all(np.isfinite(np.broadcast_to(fn(zs, y), zs.shape))) for y in (0.0, 1.0))


PAIRS = [(a, loss) for a in ELEMENTWISE for loss in sorted(LOSSES) if _defined(a, loss)]


def _points(dtype: str) -> np.ndarray:
    info = np.finfo(dtype)
    top = np.log10(float(info.max))
    over = np.log(float(info.max))
    mags = np.concatenate([np.logspace(-6, 3, 50), np.logspace(3, top - 0.001, 12),
                           np.linspace(0.5 * over - 3, 0.5 * over + 3, 9),
                           np.linspace(over - 3, over + 12, 16)])
    mags = mags.astype(dtype)
    return np.unique(np.concatenate([mags, -mags]))


def _targets(loss: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(6)
    return rng.uniform(0.05, 0.95, n) if LOSSES[loss].formula.has(sp.log) \
        else rng.uniform(-2.0, 2.0, n)


def _at_precision(fn, zi: float, yi: float, dps: int):
    with mpmath.workdps(dps):
        try:
            return mpmath.mpf(fn(mpmath.mpf(zi), mpmath.mpf(yi)))
        except (ArithmeticError, ValueError):
            return None


def _exact_zy(expr: sp.Expr, z: np.ndarray, y: np.ndarray):
    """expr(z, y) as float64 hi + lo (NaN where it is not a finite number).

    The precision doubles from 60 digits until two evaluations agree: the raw
    chain-rule form cancels (1 - p at z = 120 is e^-120, which 60 digits of p keep
    only 8 digits of), so a fixed precision would make a wrong "exact" value.
    """
    fn = sp.lambdify([Z, Y], expr, modules=MP)
    hi, lo = np.full(len(z), np.nan), np.zeros(len(z))
    for i, (zi, yi) in enumerate(zip(z.astype(float), y.astype(float), strict=True)):
        dps, v = 60, _at_precision(fn, zi, yi, 60)
        while v is not None and mpmath.isfinite(v) and dps < 1600:
            w = _at_precision(fn, zi, yi, 2 * dps)
            dps *= 2
            if w is None or not mpmath.isfinite(w):
                v = w
                break
            settled = abs(w - v) <= abs(w) * mpmath.mpf(10) ** -30
            v = w
            if settled:
                break
        if v is not None and mpmath.isfinite(v) and abs(v) < 1e308:
            hi[i] = float(v)
            with mpmath.workdps(dps):
                lo[i] = float(v - hi[i])
    return hi, lo


def _ulps(got, hi, lo, dtype, floor):
    g = got.astype(np.float64)
    with np.errstate(all="ignore"):
        unit = np.spacing(np.maximum(np.abs(hi), floor).astype(dtype)).astype(np.float64)
        err = np.abs((g - hi) - lo) / unit
    return np.where(np.isfinite(g), err, np.inf)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("act", "loss"), PAIRS, ids=[f"{a}-{l}" for a, l in PAIRS])
def test_output_delta_is_finite_and_exact_to_the_overflow_point(act, loss, dtype):
    model = sg.compile(sg.Sequential(sg.Dense(1, 1), REGISTRY[act]()), loss=loss,
                       dtype=dtype, seed=0)
    z = _points(dtype)
    yv = _targets(loss, len(z)).astype(dtype)
    f = model.plan.output.prediction
    # Exact p and its slope (400 digits: log(1 + e^-700) and 1 + erf(-24) need them) and
    # delta at each (z, y) (its error is relative to max(|delta|, 1): 60 digits do).
    p_hi, p_lo = exact(f, z)
    slope, _ = exact(sp.diff(f, Z), z)
    d_hi, d_lo = _exact_zy(sp.diff(LOSSES[loss].bound(), P).subs(P, f) * sp.diff(f, Z), z, yv)
    info = np.finfo(dtype)
    fits = np.isfinite(d_hi) & (np.abs(d_hi) <= float(info.max)) & np.isfinite(p_hi)

    # The compiled kernel's fused output step (the loop every epoch and predict run).
    ZL, Yb = z.reshape(-1, 1).copy(), yv.reshape(-1, 1).copy()
    D, Pk = np.zeros_like(ZL), np.zeros_like(ZL)
    trainer_for(model).module._output(ZL, Yb, D, Pk, True)
    kernel = D[:, 0].astype(np.float64) * len(z)   # D = delta / (n * k), k = 1
    # The NumPy reference, from the same plan.
    ref = model.reference
    p_ref = ref._pred(z, *[np.zeros_like(z)] * 3)
    reference = ref._delta(z, p_ref, yv).astype(np.float64)

    for name, got, p in (("kernel", kernel, Pk[:, 0]), ("reference", reference, p_ref)):
        err = _ulps(got, d_hi, d_lo, dtype, 1.0)[fits]
        i = int(np.argmax(err))
        assert err[i] <= DELTA_ULPS, (
            f"{name} {act}+{loss} {dtype}: delta {got[fits][i]} vs exact {d_hi[fits][i]} "
            f"at z = {z[fits][i]}, y = {yv[fits][i]}: {err[i]:.3g} ulp of max(|delta|, 1)")
        zf = np.abs(z.astype(np.float64))
        p_ok = (np.abs(p_hi) >= float(info.tiny) * np.maximum(1.0, zf)) \
            & (np.abs(p_hi) <= float(info.max))
        with np.errstate(all="ignore"):
            kappa = np.nan_to_num(np.abs(zf * slope / p_hi), nan=0.0)
            perr = (_ulps(p, p_hi, p_lo, dtype, 0.0) - 2 * kappa)[p_ok]
        assert perr.max() <= PRED_ULPS, (name, act, dtype, z[p_ok][int(np.argmax(perr))])
