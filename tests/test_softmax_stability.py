"""Softmax + cross-entropy at large logits: kernel and NumPy reference against mpmath.

p = exp(z - lse) with lse = m + log(sum) rounds log(sum) away once m is large
(float32 logits near 1e5 gave rows summing to 1.0014; near 1e7 P = [1, .37, .14];
float64 failed near 1e16). The plan evaluates p = exp(z - zmax)/sumexp and the loss
as -y (z - zmax - log(sumexp)), and records both as proven identities.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.derive.plan import LSE, SUMEXP, ZMAX
from symgrad.prove.identity import prove_identity
from symgrad.runtime.reference import row_max_and_sum
from symgrad.runtime.training import trainer_for

K = 3
# Offsets of the row's logits from its largest one: probabilities 1, e^-1, e^-2 ...
OFFSETS = np.array([0.0, -1.0, -2.0])
SCALES = {"float32": (1.0, 1e3, 1e5, 1e7, 1e20, 3e38), "float64": (1.0, 1e8, 1e16, 1e300)}


def _model(dtype: str):
    net = sg.Sequential(sg.Dense(1, K), sg.Softmax())
    return sg.compile(net, loss="cross_entropy", dtype=dtype, seed=0)


def _rows(dtype: str) -> np.ndarray:
    rows = []
    for scale in SCALES[dtype]:
        for sign in (1.0, -1.0):
            base = np.float64(np.asarray(sign * scale, dtype=dtype))
            # Offsets that are representable next to the base (ulp(1e7) = 1 in float32).
            step = max(1.0, float(np.spacing(np.asarray(abs(base), dtype=dtype))))
            rows.append(base + OFFSETS * step)
            rows.append(base + OFFSETS[::-1] * step)   # the max in the last column
    return np.array(rows).astype(dtype)


def _exact(z: np.ndarray, labels: np.ndarray):
    """Softmax rows and the cross-entropy per row, in 60-digit arithmetic."""
    p = np.zeros(z.shape)
    loss = np.zeros(len(z))
    with mpmath.workdps(60):
        for i, row in enumerate(z.astype(np.float64)):
            m = max(mpmath.mpf(float(v)) for v in row)
            e = [mpmath.exp(mpmath.mpf(float(v)) - m) for v in row]
            s = mpmath.fsum(e)
            p[i] = [float(x / s) for x in e]
            loss[i] = float(-(mpmath.mpf(float(row[labels[i]])) - m - mpmath.log(s)))
    return p, loss


def _kernel(model, z: np.ndarray, y: np.ndarray):
    out = trainer_for(model).module._output
    D, P = np.zeros_like(z), np.zeros_like(z)
    loss, _ = out(z, y, D, P, True)
    return P, D * z.shape[0], loss     # D = (p - y)/n


def _ulps(got, want, dtype):
    unit = np.spacing(np.maximum(np.abs(want), np.finfo(dtype).tiny).astype(dtype))
    return np.abs(got.astype(np.float64) - want) / unit.astype(np.float64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernel_and_reference_rows_match_mpmath_at_large_logits(dtype):
    model = _model(dtype)
    z = _rows(dtype)
    labels = np.arange(len(z)) % K
    y = np.eye(K, dtype=dtype)[labels]
    p_exact, loss_exact = _exact(z, labels)
    P, delta, loss = _kernel(model, z, y)
    # The reference evaluates the same logits through its own lambdified plan forms.
    ref = model.reference
    m, s = row_max_and_sum(z)
    row = [np.broadcast_to(v, z.shape) for v in (m + np.log(s), m, s)]
    P_ref = ref._pred(z, *row)
    loss_ref = ref._loss(z, y, *row, P_ref).sum(axis=1)
    for name, got in (("kernel", P), ("reference", P_ref)):
        assert np.all(np.isfinite(got)), name
        err = _ulps(got, p_exact, dtype)
        assert err.max() <= 4, (name, dtype, z[np.unravel_index(err.argmax(), err.shape)[0]])
        sums = got.astype(np.float64).sum(axis=1)
        assert np.abs(sums - 1).max() <= 4 * np.finfo(dtype).eps, (name, sums)
    # delta = p - y per element: an absolute error of a few ulp of 1.
    err = np.abs(delta.astype(np.float64) - (p_exact - y)) / np.finfo(dtype).eps
    assert err.max() <= 4
    # The loss: the kernel's sum and the reference's per row, relative to max(loss, 1).
    tol = 8 * np.finfo(dtype).eps
    assert abs(loss - loss_exact.sum()) <= tol * max(np.abs(loss_exact).sum(), 1.0)
    np.testing.assert_allclose(loss_ref, loss_exact, rtol=tol, atol=tol)


def test_the_old_lse_form_fails_this_measure():
    """p = exp(z - lse), lse = m + log(sum), is what the tests above would catch."""
    z = _rows("float32")
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    old = np.exp(z - lse)
    p_exact, _ = _exact(z, np.zeros(len(z), dtype=int))
    assert _ulps(old, p_exact, "float32").max() > 1000
    assert np.abs(old.astype(np.float64).sum(axis=1) - 1).max() > 1e-3


def test_stable_softmax_forms_are_recorded_and_proven():
    plan = _model("float64").plan
    out = plan.output
    assert out.stable_prediction == sp.exp(sg.var("z") - ZMAX) / SUMEXP
    assert not out.stable_loss.has(LSE) and out.stable_loss.has(ZMAX, SUMEXP)
    names = [i.name for i in out.identities if "row max and sum" in i.name]
    assert len(names) == 2
    for ident in out.identities:
        if ident.name in names:
            assert prove_identity(ident).max_error < 1e-12
    assert "zmax" in trainer_for(_model("float64")).source
