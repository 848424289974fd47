"""Compiled kernels vs the NumPy reference, table-driven over the registries.

Every activation (as a hidden layer) and every loss (with the first output
activation it may be paired with) is compiled through the real ``compile``;
the kernel's loss and gradients must equal ``model.backward`` to 1e-12 in
float64 and 1e-5 (relative to the gradient's scale) in float32.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from numba import njit

from symgrad.codegen.kernels import generate_module_source
from symgrad.definition import activations as acts
from symgrad.definition.errors import PairingError
from symgrad.definition.layers import Dense, Sequential
from symgrad.definition.losses import LOSSES
from symgrad.model import compile as sg_compile
from symgrad.runtime.optimizers import SGD

HIDDEN = [name for name, cls in acts.REGISTRY.items() if cls().entry.kind != "softmax"]


def _targets(model, n: int, rng: np.random.Generator) -> np.ndarray:
    k = model.plan.output_dim
    if model.plan.output.kind == "softmax":
        return rng.integers(0, k, n)
    if "log" in str(model.plan.output.loss_formula):
        return rng.integers(0, 2, (n, k)).astype(float)
    return rng.normal(size=(n, k))


def _compare(model, X, y, f32_reference=None) -> None:
    loss_c, grads_c = model.compiled_backward(X, y)
    if model.dtype == np.float64:
        loss_r, grads_r = model.backward(X, y)
        assert loss_c == pytest.approx(loss_r, rel=1e-12, abs=1e-12)
        for name, g in grads_r.items():
            np.testing.assert_allclose(grads_c[name], g, rtol=1e-10, atol=1e-12, err_msg=name)
    else:
        loss_r, grads_r = f32_reference
        assert loss_c == pytest.approx(loss_r, rel=1e-5)
        for name, g in grads_r.items():
            assert grads_c[name].dtype == np.float32
            scale = max(np.abs(g).max(), 1e-3)
            np.testing.assert_allclose(grads_c[name], g, rtol=1e-5, atol=1e-5 * scale,
                                       err_msg=name)


@pytest.fixture(scope="module", params=["float64", "float32"])
def every_activation_model(request):
    """One network whose hidden layers use every registered activation in turn."""
    layers = [Dense(3, 4)]
    for name in HIDDEN:
        layers += [acts.REGISTRY[name](), Dense(4, 4)]
    layers[-1] = Dense(4, 2)
    net = Sequential(*layers, acts.Sigmoid())
    return sg_compile(net, loss="bce", dtype=request.param, seed=1, init="xavier")


def test_every_activation_gradients_match_reference(every_activation_model) -> None:
    model = every_activation_model
    names = [layer.activation.name for layer in model.plan.layers[:-1]]
    assert names == HIDDEN
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)) * 1.5
    y = _targets(model, 40, rng)
    ref = None
    if model.dtype == np.float32:
        ref64 = sg_compile(model.net, loss="bce", dtype="float64")
        ref = ref64.backward(X, y, {k: v.astype(np.float64) for k, v in model.params.items()})
    _compare(model, X, y, ref)


def _compile_with_output(loss_name: str, dtype: str):
    """The network compiled with the first output activation the loss accepts."""
    for out in (acts.Identity, acts.Sigmoid, acts.Softmax):
        net = Sequential(Dense(5, 6), acts.Tanh(), Dense(6, 3), out())
        try:
            return net, sg_compile(net, loss=loss_name, dtype=dtype, seed=2)
        except PairingError:
            continue
    raise AssertionError(f"no output activation pairs with {loss_name}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_every_loss_gradients_match_reference(loss_name: str, dtype: str) -> None:
    net, model = _compile_with_output(loss_name, dtype)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(33, 5))
    y = _targets(model, 33, rng)
    ref = None
    if dtype == "float32":
        ref = sg_compile(net, loss=loss_name).backward(
            X, y, {k: v.astype(np.float64) for k, v in model.params.items()})
    _compare(model, X, y, ref)
    # The forward pass agrees too (predictions of the output activation).
    P = model.predict_proba(X)
    np.testing.assert_allclose(P, model.forward(X), rtol=1e-5 if dtype == "float32" else 1e-12,
                               atol=1e-6 if dtype == "float32" else 1e-13)


def test_blas_path_matches_reference_on_wide_layers() -> None:
    # Wide layers: large GEMMs with every layout (nn, tn, nt) and both alpha/beta uses.
    net = Sequential(Dense(64, 48), acts.ReLU(), Dense(48, 40), acts.GELU(), Dense(40, 10),
                     acts.Softmax())
    model = sg_compile(net, loss="cross_entropy", seed=4)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(70, 64))
    _compare(model, X, rng.integers(0, 10, 70))


@pytest.mark.parametrize("cblas", [True, False], ids=["numpy-cblas", "numba-xxgemm"])
def test_both_gemm_backends_match_reference(cblas: bool) -> None:
    from symgrad.codegen.cache import load_source, module_name
    from symgrad.codegen.gemm_module import gemm_source, numpy_cblas_available

    if cblas and not numpy_cblas_available("float64"):
        pytest.xfail("this NumPy build does not bundle its own OpenBLAS")
    net = Sequential(Dense(64, 48), acts.ReLU(), Dense(48, 40), acts.Tanh(), Dense(40, 10),
                     acts.Softmax())
    model = sg_compile(net, loss="cross_entropy", seed=6)
    gemm = gemm_source("float64", cblas=cblas)
    load_source(gemm, stem="gemm")
    mod = load_source(generate_module_source(model.plan, "float64", SGD(),
                                             gemm_module=module_name(gemm, "gemm")))
    assert not hasattr(mod, "_gemm")   # the helpers came from the module loaded above
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(70, 64)), rng.integers(0, 10, 70)
    loss_r, grads_r = model.backward(X, y)
    loss_c, grads_c = mod.loss_and_grads(X, np.eye(10)[y], dict(model.params))
    assert loss_c == pytest.approx(loss_r, rel=1e-12)
    for name, g in grads_r.items():
        np.testing.assert_allclose(grads_c[name], g, rtol=1e-10, atol=1e-12, err_msg=name)


def test_float32_hot_loops_stay_float32() -> None:
    # GELU's float32 kernels (native float32 erf/erfc) are checked the same way in
    # tests/test_vecmath_f32.py.
    net = Sequential(Dense(3, 4), acts.Softplus(), Dense(4, 4), acts.Tanh(), Dense(4, 2),
                     acts.Softmax())
    model = sg_compile(net, loss="cross_entropy", dtype="float32")
    rng = np.random.default_rng(0)
    model.compiled_backward(rng.normal(size=(8, 3)), rng.integers(0, 2, 8))
    from symgrad.runtime.training import trainer_for

    mod = trainer_for(model).module
    driver = sys.modules[mod._forward.py_func.__module__]
    # The driver calls them by symbol (codegen/linked_calls.py): .kernel is the dispatcher.
    kernels = [getattr(driver, n).kernel for n in dir(driver)
               if re.fullmatch(r"a\d+_(fwd_b|bwd)", n)]
    assert len(kernels) == 4
    for fn in (mod._forward, mod._backward, *kernels):
        for sig in fn.signatures:
            # Compiled afresh, with the same flags: a function Numba loaded from its disk
            # cache has no IR to inspect (Numba warns and returns a placeholder).
            options = {k: v for k, v in fn.targetoptions.items() if k not in ("cache", "nopython")}
            fresh = njit(**options)(fn.py_func)
            fresh.compile(sig)
            ir = fresh.inspect_llvm(sig)
            assert "define " in ir and " float " in ir, fn.__name__
            # fpext = a float widened to double: a float64 literal or call leaked in.
            assert "fpext" not in ir, fn.__name__


def test_source_is_readable_and_names_the_derivation() -> None:
    net = Sequential(Dense(2, 3), acts.Tanh(), Dense(3, 1), acts.Sigmoid())
    model = sg_compile(net, loss="bce")
    src = model.source
    assert "def _epoch(" in src and "def _predict(" in src
    assert "1 - a**2" in src                       # the derived tanh' as a comment
    assert "d_[k] *= 1.0 - (a_[k]*a_[k])" in src           # ... and as the loop body
    assert "a0_bwd(below, src, src)" in src              # which the Dense loop calls
    assert "p - y" in src.replace("(p - y)", "p - y")
    assert "sympy" not in src and "symgrad." not in src
    compile(src, "<kernels>", "exec")  # valid Python
    # One module per (plan, dtype, optimizer): the optimizer changes the source.
    assert generate_module_source(model.plan, "float64", SGD(momentum=0.9)) != src


def test_bad_dtype_is_refused() -> None:
    net = Sequential(Dense(2, 3), acts.Tanh(), Dense(3, 1), acts.Sigmoid())
    model = sg_compile(net, loss="bce")
    with pytest.raises(ValueError, match="dtype"):
        generate_module_source(model.plan, "float16", SGD())


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 2e-4)])
def test_dense_loop_mixes_biases_activations_and_identity(dtype, tol) -> None:
    # The depth-generic Dense loop: one activation used with and without a bias (both
    # variants emitted), an identity layer, two activations that save z, a bias-free
    # output layer; compiled gradients against the NumPy reference.
    net = Sequential(Dense(3, 6), acts.GELU(), Dense(6, 6, bias=False), acts.GELU(),
                     Dense(6, 5, bias=False), acts.Identity(), Dense(5, 4), acts.Swish(),
                     Dense(4, 3, bias=False), acts.Softmax())
    model = sg_compile(net, loss="cross_entropy", optimizer=SGD(lr=0.05), dtype=dtype)
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(29, 3)), rng.integers(0, 3, 29)
    loss_r, grads_r = model.backward(X, y)
    loss_c, grads_c = model.compiled_backward(X, y)
    assert loss_c == pytest.approx(loss_r, rel=tol)
    for name, g in grads_r.items():
        np.testing.assert_allclose(grads_c[name], g, rtol=tol, atol=tol * np.abs(g).max(),
                                   err_msg=name)
    src = model.source
    assert "fwd_b(out, theta[b_at:b_at + n_out]" in src and "fwd(out" in src


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_activation_that_calls_a_function_runs_it_over_the_flat_batch(dtype) -> None:
    """A row loop of run-time length vectorises only whole vectors: rows of 4 channels ran
    tanh scalar (2304 x 4, float32: 15.6 us against 6-8 flat). f with a function call runs
    flat after a bias pass; ReLU-like f (selects only) stays fused with the bias add, where
    a second pass would cost more than the scalar remainder (48 -> 93 us on 36864 x 8)."""
    from symgrad.codegen.elementwise_kernels import activation_body

    def forward_with_bias(layer) -> str:
        model = sg_compile(Sequential(Dense(3, 4), layer, Dense(4, 2)), loss="mse", dtype=dtype)
        return activation_body(model.plan.layers[0].activation, dtype).split("def fwd(")[0]

    for layer in (acts.Tanh(), acts.Sigmoid(), acts.GELU(), acts.Swish()):
        body = forward_with_bias(layer)
        assert re.search(r"for k in range\(z_\.size\):\n.*\n(.*\n)?\s+z_\[k\] = .*vm_", body), body
    for layer in (acts.ReLU(), acts.LeakyReLU()):
        body = forward_with_bias(layer)
        assert "z_" not in body and "Z[i, j] = " in body, body
