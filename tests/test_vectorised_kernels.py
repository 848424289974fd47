"""The fused elementwise loops of generated kernels are vectorised, for every activation.

A network with every registered elementwise activation as a hidden layer is
generated as a standalone module (the exported form: vecmath and every shared
kernel inline, one ``a<k>_fwd_b`` / ``a<k>_bwd`` pair per activation, and the
``a<k>_fwd_cb`` image layers call) in each dtype and compiled once. In the optimised LLVM IR:

* every activation's fused loop -- forward (bias + f) and backward (times f') --
  has a vectorised body (a ``vector.body`` block of LLVM's loop vectoriser): each
  kernel is checked, so one loop falling back to scalar code fails;
* no call to a scalar math routine remains in those kernels or in ``_loss_and_grads``
  (the forward and backward passes, inlined) and ``_output`` (``exp``, ``tanh``, ...,
  ``llvm.exp.*``, or an un-inlined ``vm_*`` function);
* the kernels that call vecmath carry fastmath ``contract`` on their vector multiplies,
  so their polynomials become FMAs (the flag of the loop, not of the inlined function,
  is the one that counts).

``_output`` must be free of scalar math calls too; that its passes are vectorised
for every kind of head is checked in ``tests/test_output_vectorised.py``.

A custom activation built from sin, cos and a fractional power (its derivative
holds another one) is checked the same way: those print as vecmath's own sin, cos
and pow (`vm_sin_f64`, ...), which vectorise, not as libm calls.

Layer width 97: a loop of a few constant iterations is fully unrolled instead of
vectorised (and then not SLP-vectorised, because the arrays may alias), so the
width must exceed LLVM's full-unroll threshold for a cheap body like ReLU's.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
import sympy as sp

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


def _standalone(layers: list, dtype: str, tmp_path_factory, tag: str):
    """(generated source, imported standalone module) after one compiled backward pass."""
    model = sg_compile(Sequential(*layers, acts.Sigmoid()), loss="bce", dtype=dtype, seed=1)
    source = trainer_for(model).standalone_source()
    path = tmp_path_factory.mktemp("vec") / f"{tag}_{dtype}.py"
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


@pytest.fixture(scope="module", params=["float64", "float32"])
def compiled(request, tmp_path_factory):
    """Every registered elementwise activation as a hidden layer."""
    layers = [Dense(3, WIDTH)]
    for name in HIDDEN:
        layers += [acts.REGISTRY[name](), Dense(WIDTH, WIDTH)]
    layers[-1] = Dense(WIDTH, 2)
    return _standalone(layers, request.param, tmp_path_factory, "vec")


@pytest.fixture(scope="module", params=["float64", "float32"])
def trig_pow(request, scratch_registries, tmp_path_factory):
    """One custom activation with sin, cos and (1 + x^2)^(3/4) (slope: a -1/4 power)."""
    x = sp.Symbol("x", real=True)
    layer = acts.activation("vec_trig_pow", sp.sin(x) * sp.cos(2 * x)
                            + (1 + x**2) ** sp.Rational(3, 4), replace=True)
    layers = [Dense(3, WIDTH), layer(), Dense(WIDTH, 2)]
    return _standalone(layers, request.param, tmp_path_factory, "trig")


def _dispatcher(module, name: str):
    """The njit function ``name`` of the module; for a kernel the driver calls by symbol
    (`linked_calls`: the module name is bound to the call), the function it calls."""
    found = getattr(module, name)
    return getattr(found, "kernel", found)


def _llvm(module, name: str) -> str:
    dispatcher = _dispatcher(module, name)
    assert dispatcher.signatures, f"{name} was not compiled"
    return "\n".join(dispatcher.inspect_llvm().values())


def _kernels(source: str, part: str) -> list[str]:
    return re.findall(rf"\ndef (a\d+_{part})\(", source)


@pytest.mark.parametrize("part", ["fwd_b", "bwd"])
def test_every_fused_loop_is_vectorised(compiled, part: str) -> None:
    source, module = compiled
    names = _kernels(source, part)
    assert len(names) == len(HIDDEN)   # one kernel per activation: the test sees them all
    driver = _function_source(source, "_forward" if part == "fwd_b" else "_backward")
    checked = 0
    for name in names:
        if not _dispatcher(module, name).signatures:
            # Only the identity's derivative (1) is never multiplied in: no call, no loop.
            assert part == "bwd" and f"{name}(" not in driver, name
            continue
        assert f"{name}(" in driver   # the driver calls the shared kernel
        ir = _llvm(module, name)
        assert re.search(r"^vector\.body\d*:", ir, re.M), f"{name}: its loop is not vectorised"
        assert re.search(r"<\d+ x (?:double|float)>", ir), name
        checked += 1
    assert checked >= len(HIDDEN) - 1
    assert re.search(r"vm_(tanh|exp|erfc?)_f(32|64)\(", source)


def test_every_channel_bias_loop_is_vectorised(compiled) -> None:
    """``fwd_cb`` (bias per row: a convolution's channel-major map, then f) of every
    activation, compiled here on a map of 3 channels: vector code, no scalar math."""
    source, module = compiled
    names = _kernels(source, "fwd_cb")
    assert len(names) == len(HIDDEN)
    dtype = np.float32 if "DTYPE = np.float32" in source else np.float64
    for name in names:
        saves_z = "Zs" in _function_source(source, name).split(":", 1)[0]
        z = np.linspace(-3, 3, 3 * WIDTH).astype(dtype).reshape(3, WIDTH)
        args = (z, np.ones(3, dtype)) + ((np.empty_like(z),) if saves_z else ())
        _dispatcher(module, name)(*args)
        ir = _llvm(module, name)
        assert re.search(r"^vector\.body\d*:", ir, re.M), f"{name}: its loop is not vectorised"
        calls = sorted(set(_SCALAR_MATH.findall(ir)))
        assert not calls, f"{name} still calls scalar math: {calls}"


# The batch passes (_forward, _backward) are inlined into their callers: the exported
# module's loss_and_grads runs them inside _loss_and_grads, which calls the activation
# and output kernels by symbol (their own IR is checked as "kernels" and "_output").
@pytest.mark.parametrize("function", ["_loss_and_grads", "_output", "kernels"])
def test_no_scalar_math_call_remains(compiled, function: str) -> None:
    source, module = compiled
    names = [function] if function != "kernels" else [
        n for part in ("fwd_b", "bwd") for n in _kernels(source, part)
        if _dispatcher(module, n).signatures]
    for name in names:
        calls = sorted(set(_SCALAR_MATH.findall(_llvm(module, name))))
        assert not calls, f"{name} still calls scalar math: {calls}"


@pytest.mark.parametrize("part", ["fwd_b", "bwd"])
def test_sin_cos_pow_loops_are_vectorised_without_libm(trig_pow, part: str) -> None:
    source, module = trig_pow
    (name,) = _kernels(source, part)
    body = _function_source(source, name)
    for fn in (["vm_sin", "vm_cos", "vm_pow"] if part == "fwd_b" else ["vm_pow"]):
        assert re.search(rf"{fn}_f(32|64)\(", body), f"{name} does not use {fn}: {body}"
    ir = _llvm(module, name)
    assert re.search(r"^vector\.body\d*:", ir, re.M), f"{name}: its loop is not vectorised"
    calls = sorted(set(_SCALAR_MATH.findall(ir)))
    assert not calls, f"{name} still calls scalar math: {calls}"


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


# fastmath "contract" on the elementwise kernels (source_text.KERNEL_JIT): the vecmath
# functions are inlined at Numba-IR level and compiled under the loop's flags, so without
# it their polynomials run as separate multiplies and adds (exp and tanh loops were
# 1.3-1.5x slower). LLVM fuses the contract-flagged pairs into FMAs when it emits code.
_CONTRACT = re.compile(r"= fmul contract <\d+ x (?:double|float)>")


@pytest.mark.parametrize("part", ["fwd_b", "bwd"])
def test_vecmath_loops_may_fuse_multiply_adds(compiled, part: str) -> None:
    source, module = compiled
    checked = 0
    for name in _kernels(source, part):
        if not _dispatcher(module, name).signatures or "vm_" not in _function_source(source, name):
            continue
        assert _CONTRACT.search(_llvm(module, name)), f"{name}: no contractible vector multiply"
        checked += 1
    assert checked >= 3   # tanh, sigmoid, GELU, Swish, ... call vecmath in both passes


def test_contract_pattern_needs_the_flag() -> None:
    """A vectorised multiply-add loop compiled without the flag has no contract multiply."""
    from numba import njit

    @njit(error_model="numpy")
    def plain(x, out):
        for j in range(x.size):
            out[j] = x[j] * 3.0 + 1.0

    @njit(error_model="numpy", fastmath={"contract"})
    def contracted(x, out):
        for j in range(x.size):
            out[j] = x[j] * 3.0 + 1.0

    x = np.linspace(-2, 2, WIDTH)
    for fn in (plain, contracted):
        fn(x, np.empty_like(x))
    assert not _CONTRACT.search("\n".join(plain.inspect_llvm().values()))
    assert _CONTRACT.search("\n".join(contracted.inspect_llvm().values()))
