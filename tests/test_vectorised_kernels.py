"""The fused elementwise loops of generated kernels are vectorised, for every activation.

A network with every registered elementwise activation as a hidden layer is
generated as a standalone module (the exported form: vecmath inline) in each
dtype and compiled once. In the optimised LLVM IR of ``_forward`` and
``_backward``:

* every fused elementwise loop over a hidden layer (one ``for j in range(97)``
  per loop in the generated source) has a vectorised body (a ``vector.body`` block of LLVM's
  loop vectoriser): counted, so one loop falling back to scalar code fails;
* no call to a scalar math routine remains (``exp``, ``tanh``, ...,
  ``llvm.exp.*``, or an un-inlined ``vm_*`` function).

``_output`` must be free of scalar math calls too. NOTE: its loop is not
vectorised yet whatever the math: it sums the loss into one float
(``loss += ...``), a reduction LLVM may only vectorise with reassociation.

Layer width 97: a loop of a few constant iterations is fully unrolled instead of
vectorised (and then not SLP-vectorised, because the arrays may alias), so the
width must exceed LLVM's full-unroll threshold for a cheap body like ReLU's.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from symgrad.definition import activations as acts
from symgrad.definition.layers import Dense, Sequential
from symgrad.model import compile as sg_compile
from symgrad.runtime.training import trainer_for

HIDDEN = [name for name, cls in acts.REGISTRY.items() if cls().entry.kind != "softmax"]
WIDTH = 97
# Scalar math routines (libm, and LLVM intrinsics that lower to libm calls).
_SCALAR_MATH = re.compile(
    r"call [^\n]*@\"?(?:llvm\.(?:exp|exp2|log|log2|log10|pow|sin|cos)\.f\d+"
    r"|(?:exp|expm1|log|log1p|tanh|sinh|cosh|sin|cos|atan|erf|erfc|pow)f?\b"
    r"|[\w.]*vm_\w+)")


def _function_source(source: str, name: str) -> str:
    start = source.index(f"\ndef {name}(")
    end = re.search(r"\n(?:@|def |[A-Za-z_])", source[start + 1:])
    return source[start:start + 1 + end.start()] if end else source[start:]


@pytest.fixture(scope="module", params=["float64", "float32"])
def compiled(request, tmp_path_factory):
    """(generated source, imported standalone module) after one compiled backward pass."""
    layers = [Dense(3, WIDTH)]
    for name in HIDDEN:
        layers += [acts.REGISTRY[name](), Dense(WIDTH, WIDTH)]
    layers[-1] = Dense(WIDTH, 2)
    model = sg_compile(Sequential(*layers, acts.Sigmoid()), loss="bce", dtype=request.param,
                       seed=1)
    source = trainer_for(model).standalone_source()
    path = tmp_path_factory.mktemp("vec") / f"vec_{request.param}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 3))
    Y = (rng.random((16, 2)) > 0.5).astype(float)
    params = {k: v.copy() for k, v in model.params.items()}
    loss, _ = module.loss_and_grads(X, Y, params)
    assert np.isfinite(loss)
    return source, module


def _llvm(module, name: str) -> str:
    dispatcher = getattr(module, name)
    assert dispatcher.signatures, f"{name} was not compiled"
    return "\n".join(dispatcher.inspect_llvm().values())


@pytest.mark.parametrize("function", ["_forward", "_backward"])
def test_every_fused_loop_is_vectorised(compiled, function: str) -> None:
    source, module = compiled
    # The hidden layers' loops (the 2-wide output layer's loops are unrolled, not vectorised).
    loops = _function_source(source, function).count(f"for j in range({WIDTH}):")
    assert loops >= len(HIDDEN) - 1  # the test sees the loops it means to count
    assert re.search(r"vm_(tanh|exp|erfc?)_f(32|64)\(", _function_source(source, function))
    ir = _llvm(module, function)
    vector_bodies = len(re.findall(r"^vector\.body\d*:", ir, re.M))
    assert vector_bodies >= loops, (
        f"{function}: only {vector_bodies} of {loops} fused loops are vectorised")
    assert re.search(r"<\d+ x (?:double|float)>", ir)


@pytest.mark.parametrize("function", ["_forward", "_backward", "_output"])
def test_no_scalar_math_call_remains(compiled, function: str) -> None:
    _, module = compiled
    calls = sorted(set(_SCALAR_MATH.findall(_llvm(module, function))))
    assert not calls, f"{function} still calls scalar math: {calls}"


def test_pattern_catches_a_scalar_libm_loop() -> None:
    """The checks above would see a fallback: a math.tanh loop is flagged."""
    import math

    from numba import njit

    @njit(error_model="numpy")
    def scalar_loop(x, out):
        for j in range(x.size):
            out[j] = math.tanh(x[j])

    x = np.linspace(-2, 2, WIDTH)
    scalar_loop(x, np.empty_like(x))
    ir = "\n".join(scalar_loop.inspect_llvm().values())
    # NOTE: LLVM may still build a vector.body around four scalarised tanh calls, so
    # counting vector bodies alone would not catch a fallback: the call check does.
    assert _SCALAR_MATH.search(ir)
