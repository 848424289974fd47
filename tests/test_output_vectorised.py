"""The fused output loop (`_output`: prediction, stable loss, delta) is vectorised for every head.

`_output` is written as passes with no reduction or branch inside (p and each
element's loss, then a plain sum, then the delta), so LLVM's loop vectoriser turns
the passes that carry the exp/log work into vector code. Checked in the optimised
LLVM IR of the exported standalone module, for an elementwise head with one output
column (the case a per-row loop could never vectorise), one with several, and softmax,
in both dtypes; and the results equal the NumPy reference.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

import symgrad as sg
from symgrad.runtime.training import trainer_for

HEADS = {
    "sigmoid-bce-1": (sg.Sigmoid, "bce", 1),
    "identity-mse-3": (None, "mse", 3),
    "softmax-ce-10": (sg.Softmax, "cross_entropy", 10),
}


def _standalone(model, tmp_path):
    path = tmp_path / "out_module.py"
    path.write_text(trainer_for(model).standalone_source(), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("head", sorted(HEADS))
def test_output_passes_are_vectorised_and_exact(head, dtype, tmp_path):
    act, loss, k = HEADS[head]
    layers = [sg.Dense(4, 8), sg.Tanh(), sg.Dense(8, k)] + ([act()] if act else [])
    model = sg.compile(sg.Sequential(*layers), loss=loss, dtype=dtype, seed=3)
    module = _standalone(model, tmp_path)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(37, 4))
    if k == 1:
        Y = (rng.random((37, 1)) > 0.5).astype(float)
    elif loss == "mse":
        Y = rng.normal(size=(37, k))
    else:
        Y = np.eye(k)[rng.integers(0, k, 37)]
    params = {n: v.copy() for n, v in model.params.items()}
    got_loss, got = module.loss_and_grads(X, Y, params)
    ref_loss, ref = model.reference.backward(model.params, X.astype(dtype), Y.astype(dtype))
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert got_loss == pytest.approx(ref_loss, rel=tol)
    for name in ref:
        assert np.allclose(got[name], ref[name], rtol=tol, atol=tol * np.abs(ref[name]).max())
    # evaluate: the same loss without a delta (D is only scratch there)
    eval_loss, _ = module.evaluate(X, Y, params)
    assert eval_loss == pytest.approx(ref_loss, rel=tol)
    # The driver calls _output by symbol (linked_calls): .kernel is the compiled function.
    ir = "\n".join(module._output.kernel.inspect_llvm().values())
    assert re.search(r"^vector\.body\d*:", ir, re.M), f"{head} {dtype}: _output not vectorised"
    width = "double" if dtype == "float64" else "float"
    assert re.search(rf"<\d+ x {width}>", ir)
