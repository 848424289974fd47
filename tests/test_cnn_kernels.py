"""Convolutional networks through the compiled kernels: gradients, training, export, check.

Two hand-built CNNs carry most tests, so Numba compiles few modules (~10 s each on a
cold cache): ``m64`` (float64, SGD; strided non-square conv, overlapping max pooling,
conv without bias, non-square average pooling with stride != window, an activation
after pooling, softmax + cross-entropy) and ``m32`` (float32, Adam; pooling before
the first conv, padding 2, max pooling with stride != window, activation after
pooling, sigmoid + BCE). One of the random CNNs of `cnn_cases` adds an MSE head and
more activations, and a tiny CNN trains with the remaining optimizers. The NumPy
reference is the oracle (itself checked against PyTorch in `test_cnn_torch.py`).
Training tests start from the same parameters (``Setup.reset``), so their order does
not matter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from cnn_cases import draw_cases, random_params

import symgrad as sg
from symgrad.definition.errors import InputShapeError
from symgrad.definition.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, Sequential
from symgrad.runtime.training import trainer_for

RTOL = {"float64": 1e-12, "float32": 1e-5}
N, BATCH = 37, 8   # the last batch of an epoch is a 5-row remainder


def _bands(rng: np.random.Generator, shape: tuple[int, ...], k: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Noise images and labels: class c brightens horizontal band c of channel 0 (learnable)."""
    y = rng.integers(0, k, N)
    X = rng.normal(size=(N, *shape))
    rows = np.array_split(np.arange(shape[1]), k)
    for i, label in enumerate(y):
        X[i, 0, rows[label]] += 1.5
    return X, y


def _m64_net(c1: int = 4, c2: int = 3) -> Sequential:
    return Sequential(Conv2d(2, c1, (3, 2), stride=(2, 1), padding=1), sg.Tanh(),
                      MaxPool2d(2, stride=1), Conv2d(c1, c2, 2, padding=1, bias=False), sg.GELU(),
                      AvgPool2d((2, 3), stride=2), sg.Softplus(), Flatten(), Dense(8 * c2, 6),
                      sg.ELU(), Dense(6, 3), sg.Softmax(), input_shape=(2, 9, 8))


def _m32_net() -> Sequential:
    return Sequential(AvgPool2d(2, stride=1), Conv2d(3, 4, 3, stride=2, padding=2), sg.Swish(),
                      MaxPool2d(3, stride=2), sg.LeakyReLU(0.1), Conv2d(4, 2, (1, 2)),
                      sg.Sigmoid(), Flatten(), Dense(8, 1), sg.Sigmoid(),
                      input_shape=(3, 11, 12))


class Setup:
    """A compiled model, its data, a batch order and the parameters every test starts from."""

    def __init__(self, name, net, loss, optimizer, make_optimizer, dtype, classes) -> None:
        rng = np.random.default_rng(11)
        self.name, self.dtype, self.make_optimizer = name, dtype, make_optimizer
        self.model = sg.compile(net, loss=loss, optimizer=optimizer, dtype=dtype, seed=4)
        self.X, self.y = _bands(rng, net.input_shape, classes)
        self.order = rng.permutation(N)
        self.start = random_params(self.model, seed=6)

    def reset(self):
        self.model.set_params(self.start)   # copies; a fresh optimizer state
        return self.model


@pytest.fixture(scope="module")
def m64() -> Setup:
    return Setup("m64", _m64_net(), "cross_entropy", sg.SGD(lr=0.1), lambda: sg.SGD(lr=0.1),
                 "float64", 3)


@pytest.fixture(scope="module")
def m32() -> Setup:
    return Setup("m32", _m32_net(), "bce", sg.Adam(lr=0.01), lambda: sg.Adam(lr=0.01),
                 "float32", 2)


@pytest.fixture(scope="module", params=["m64", "m32"])
def setup(request) -> Setup:
    return request.getfixturevalue(request.param)


def _assert_grads_close(got: dict, want: dict, rtol: float, label: str) -> None:
    assert list(got) == list(want)
    for name, g in want.items():
        scale = np.abs(g).max()
        assert scale > 0, f"{label}: {name} has an all-zero gradient (a vacuous check)"
        np.testing.assert_allclose(got[name], g, rtol=0, atol=rtol * scale,
                                   err_msg=f"{label} {name}")


def _assert_kernel_equals_reference(model, X, y, dtype: str, label: str) -> None:
    """The compiled backward's loss and gradients equal the NumPy reference's to RTOL."""
    loss, grads = model.backward(X, y)
    k_loss, k_grads = model.compiled_backward(X, y)
    assert abs(k_loss - loss) <= RTOL[dtype] * abs(loss)
    _assert_grads_close(k_grads, grads, RTOL[dtype], label)


# ------------------------------------------------------------------ kernel vs reference
def test_kernel_equals_reference(setup) -> None:
    model = setup.reset()
    loss, grads = model.backward(setup.X, setup.y)
    k_loss, k_grads = model.compiled_backward(setup.X, setup.y)
    rtol = RTOL[setup.dtype]
    assert abs(k_loss - loss) <= rtol * abs(loss)
    _assert_grads_close(k_grads, grads, rtol, setup.name)
    assert all(g.dtype == np.dtype(setup.dtype) for g in k_grads.values())


@pytest.mark.parametrize(("c1", "c2"), [(5, 9), (8, 13), (12, 4), (17, 7)])
def test_kernel_equals_reference_for_other_channel_counts(c1: int, c2: int) -> None:
    """m64's layer kinds with other channel counts: the same driver, loaded from the cache,
    since only widths change."""
    model = sg.compile(_m64_net(c1, c2), loss="cross_entropy", dtype="float64", seed=4)
    model.set_params(random_params(model, seed=6))
    X, y = _bands(np.random.default_rng(c1 * c2), (2, 9, 8), 3)
    _assert_kernel_equals_reference(model, X, y, "float64", f"m64 with {c1}, {c2} channels")


# One of the random CNNs through the kernel too (each new model costs ~10 s of Numba
# compilation on a cold cache; every drawn CNN, in both dtypes, agreed with the reference
# when this file was written: float64 within 2.1e-15, float32 within 1.6e-6 of the largest
# entry). cnn8 adds what m64 and m32 lack: three stacked convs, two of them with padding
# at or beyond the kernel (4x1 padded 2x1, 4x2 padded 1x2: output pixels that see only
# padding), two Dense layers and an MSE head; cnn12 a 3x2 kernel padded 2x2, in float32.
RANDOM = {case.label: case for case in draw_cases(18, seed=0)}


@pytest.mark.parametrize(("label", "dtype", "convs", "loss"),
                         [("cnn8", "float64", 3, "mse"), ("cnn12", "float32", 1, "cross_entropy")])
def test_kernel_equals_reference_on_random_cnns(label: str, dtype: str, convs: int,
                                                loss: str) -> None:
    case = RANDOM[label]
    layers = [x for x in case.net if isinstance(x, Conv2d)]
    assert case.loss == loss and len(layers) == convs
    assert any(p >= k for x in layers for p, k in zip(x.padding, x.kernel, strict=True))
    model = sg.compile(case.net, loss=case.loss, dtype=dtype, seed=1)
    model.set_params(random_params(model, seed=2))
    _assert_kernel_equals_reference(model, case.X, case.y, dtype, label)
    P = model.forward(case.X)
    np.testing.assert_allclose(model.predict_proba(case.X), P, rtol=0,
                               atol=RTOL[dtype] * np.abs(P).max())


def _stacked_convs_net() -> Sequential:
    """Three convs, strides 1 and 2 in each direction, all padded, odd sizes."""
    return Sequential(Conv2d(4, 6, (3, 4), stride=(1, 2), padding=1), sg.Tanh(),
                      Conv2d(6, 2, (2, 3), stride=2, padding=1), sg.ReLU(),
                      Conv2d(2, 3, (3, 2), padding=1), sg.Sigmoid(), MaxPool2d(2),
                      Flatten(), Dense(12, 3), sg.Softmax(), input_shape=(4, 9, 10))


def test_kernel_equals_reference_through_stacked_strided_padded_convs() -> None:
    """im2col and col2im with whole-row runs (column stride 1) and runs of one sample
    block (stride 2), both above other layers (their col2im runs), with padding."""
    net = _stacked_convs_net()
    model = sg.compile(net, loss="cross_entropy", dtype="float64", seed=1)
    model.set_params(random_params(model, seed=2))
    X, y = _bands(np.random.default_rng(3), net.input_shape, 3)
    _assert_kernel_equals_reference(model, X, y, "float64", "stacked convs")
    P = model.forward(X)
    np.testing.assert_allclose(model.predict_proba(X), P, rtol=0,
                               atol=RTOL["float64"] * np.abs(P).max())


@pytest.mark.parametrize("padding", [0, 1])
def test_kernel_equals_reference_through_a_one_channel_middle_conv(padding: int) -> None:
    """A conv whose input has one channel, stride 1, below another layer (its col2im)."""
    net = Sequential(Conv2d(2, 1, 3), sg.Tanh(), Conv2d(1, 3, 3, padding=padding), sg.ReLU(),
                     Flatten(), Dense(3 * (5 + 2 * padding) ** 2, 2), sg.Softmax(),
                     input_shape=(2, 9, 9))
    model = sg.compile(net, loss="cross_entropy", dtype="float64", seed=1)
    model.set_params(random_params(model, seed=2))
    X, y = _bands(np.random.default_rng(3), net.input_shape, 2)
    _assert_kernel_equals_reference(model, X, y, "float64", f"one-channel middle conv p{padding}")


@pytest.mark.parametrize(("activation", "maxima"), [(sg.GELU, "FZ1"), (sg.Tanh, "FM1")])
def test_max_pool_with_an_activation_routes_dy_by_its_maxima(activation, maxima: str) -> None:
    """The pool's backward compares each window with its maxima before the activation:
    the saved z where the activation's derivative reads z (GELU), else a copy (tanh's
    derivative reads a, and a = tanh(max) is not the window's maximum)."""
    net = Sequential(Conv2d(2, 3, 3), MaxPool2d(2), activation(), Conv2d(3, 2, 2), sg.Tanh(),
                     Flatten(), Dense(2 * 2 * 2, 2), sg.Softmax(), input_shape=(2, 8, 8))
    model = sg.compile(net, loss="cross_entropy", dtype="float64", seed=1)
    model.set_params(random_params(model, seed=2))
    assert f"lk_maxpool_back(FA0, {maxima}, FD1," in model.source
    X, y = _bands(np.random.default_rng(5), net.input_shape, 2)
    _assert_kernel_equals_reference(model, X, y, "float64", f"max pool, then {activation}")


def _layer_kernels_module(folder, name: str):
    """The shared image-layer loops, compiled uncached from their source in ``folder``."""
    import importlib.util

    from symgrad.codegen.libraries import layer_loops_source

    path = folder / f"{name}.py"
    path.write_text(layer_loops_source().replace("cache=True", "cache=False"))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    lk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lk)
    return lk


def test_layer_loop_names_are_the_functions_of_their_source() -> None:
    # The generator knows the loops by name without importing them (`codegen/libraries`):
    # a loop added, renamed or removed in layer_kernels.py must be listed there too.
    import ast

    from symgrad.codegen.libraries import LAYER_FUNCTIONS, LAYER_LINKS, layer_loops_source

    defined = [node.name for node in ast.parse(layer_loops_source()).body
               if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")]
    assert sorted(defined) == sorted(LAYER_FUNCTIONS)
    assert set(LAYER_LINKS) <= set(LAYER_FUNCTIONS)


def _max_pool_numpy(x4: np.ndarray, k: int, s: int) -> tuple[np.ndarray, int]:
    """Max pooling (k x k windows, stride s) of an NCHW batch of square images, and the
    output side."""
    n, c, h, w = x4.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    best = np.full((n, c, oh, ow), -np.inf, x4.dtype)
    for p in range(k):
        for q in range(k):
            best = np.maximum(best, x4[..., p:p + (oh - 1) * s + 1:s, q:q + (ow - 1) * s + 1:s])
    return best, oh


def _as_map(x4: np.ndarray) -> np.ndarray:
    """An NCHW batch as the kernels' channel-major map (CHWN), in its (n*H*W, C) workspace."""
    n, c, h, w = x4.shape
    return np.ascontiguousarray(x4.transpose(1, 2, 3, 0)).reshape(n * h * w, c)


def _from_map(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The NCHW batch of ``shape`` held in a channel-major map."""
    n, c, h, w = shape
    return flat.reshape(c, h, w, n).transpose(3, 0, 1, 2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_pool_kernels_equal_numpy_for_every_batch_size(dtype: str, tmp_path) -> None:
    """lk_maxpool and its backward run over the m samples of each window position; batch
    sizes 1-19 leave every remainder of the vector loop, with disjoint windows that tile
    the image (k = s = 2), leave its last row and column out (k = s = 2 on 7x7) or leave
    gaps (k = 2, s = 3), and overlapping ones (k = 3, s = 2); the backward routes each
    window's dY to its first maximum and clears every other cell."""
    lk = _layer_kernels_module(tmp_path, f"lk_pool_{dtype}")
    rng = np.random.default_rng(3)
    for m in range(1, 20):
        c = 1 + m % 3
        for k, s, h in ((2, 2, 6), (2, 2, 7), (2, 3, 8), (3, 2, 7)):
            x4 = rng.standard_normal((m, c, h, h)).astype(dtype)
            x4[0, :, :2, :2] = 0.5                    # a tied window
            want, o = _max_pool_numpy(x4, k, s)
            got = np.empty((m * o * o, c), dtype)
            sizes = (m, h, h, c, k, k, s, s, o, o)
            lk.lk_maxpool(_as_map(x4), *sizes, got)
            np.testing.assert_array_equal(_from_map(got, want.shape), want,
                                          err_msg=f"m={m} k={k}")
            dy4 = rng.standard_normal(want.shape).astype(dtype)
            dx = np.full((m * h * h, c), np.nan, dtype)     # every cell must be written
            lk.lk_maxpool_back(_as_map(x4), got, _as_map(dy4), *sizes, dx,
                               np.empty((m, 1), dtype))
            ref = np.zeros_like(x4)
            taken = np.zeros(want.shape, bool)
            for p in range(k):
                for q in range(k):
                    win = (..., slice(p, p + (o - 1) * s + 1, s), slice(q, q + (o - 1) * s + 1, s))
                    hit = (x4[win] == want) & ~taken
                    ref[win] += np.where(hit, dy4, 0)
                    taken |= hit
            # overlapping windows add several dY into one element, in another order
            np.testing.assert_allclose(_from_map(dx, x4.shape), ref, rtol=0,
                                       atol=8 * np.finfo(dtype).eps * np.abs(dy4).max(),
                                       err_msg=f"backward m={m} k={k}")


# Each image-layer loop with the arguments of one call (3 samples of 2 channels, 6x6,
# a 3x3 kernel, stride 1 or 2, padding 1; 2x2 pooling).
_CONV = (3, 6, 6, 2, 3, 3)
_POOL = (3, 6, 6, 2, 2, 2, 2, 2, 3, 3)


def _loop_calls(dtype: str) -> list[tuple[str, tuple]]:
    x, cols = np.ones((3 * 36, 2), dtype), np.zeros((3 * 36, 18), dtype)
    y, rows = np.ones((3 * 9, 2), dtype), np.zeros((3, 72), dtype)
    return [("lk_im2col", (x, *_CONV, 1, 1, 1, 1, 6, 6, cols)),
            ("lk_im2col", (x, *_CONV, 2, 2, 1, 1, 3, 3, cols[:27])),
            ("lk_col2im", (cols, *_CONV, 1, 1, 1, 1, 6, 6, x)),
            ("lk_col2im", (cols[:27], *_CONV, 2, 2, 1, 1, 3, 3, x)),
            ("lk_maxpool", (x, *_POOL, y)),
            ("lk_maxpool_back", (x, y, y, *_POOL, x.copy(), np.empty((3, 1), dtype))),
            ("lk_copy", (x, x.copy())),
            ("lk_avgpool", (x, *_POOL, y)), ("lk_avgpool_back", (y, *_POOL, x.copy())),
            ("lk_add_bias", (x, np.ones(2, dtype))),
            ("lk_row_sums", (x, np.zeros(2, dtype), np.empty((1, 16), dtype))),
            ("lk_rows_to_map", (rows, x)), ("lk_map_to_rows", (x, rows)), ("lk_zero", (x,))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_image_layer_loops_are_vector_code(dtype: str, tmp_path) -> None:
    """Every data-moving loop of the image layers loads or stores whole vectors.

    They run over the m samples of a channel-major map; a signed flat index (a
    wraparound test per element), a loop-carried sum or a branch per sample keeps LLVM
    from vectorising them, and a regression to scalar loops costs a small CNN most of
    its epoch time.
    """
    import re

    lk = _layer_kernels_module(tmp_path, f"lk_vector_{dtype}")
    element = "float" if dtype == "float32" else "double"
    calls = _loop_calls(dtype)
    for name, args in calls:
        getattr(lk, name)(*args)
    from symgrad.codegen.libraries import LAYER_LINKS

    assert {name for name, _ in calls} == set(LAYER_LINKS)
    for name in set(LAYER_LINKS) - {"lk_zero"}:   # LLVM makes lk_zero a memset call
        ir = "".join(getattr(lk, name).inspect_llvm().values())
        assert re.search(rf"(load|store) <\d+ x {element}>", ir), f"{name}: no vector code"


def test_kernel_routes_max_pool_ties_like_the_reference(m64) -> None:
    """conv0 = 0 makes every max-pooling window a tie; dW of conv0 shows where dY went.

    The reference routes to the window's first maximum, as PyTorch does (checked in
    test_cnn_torch.py); the kernel must route the same way.
    """
    model = m64.reset()
    params = {k: v.copy() for k, v in m64.start.items()}
    params["conv0.W"][...] = 0.0
    params["conv0.b"][...] = 0.0
    model.set_params(params)
    _, grads = model.backward(m64.X, m64.y)
    _, k_grads = model.compiled_backward(m64.X, m64.y)
    assert np.abs(grads["conv0.W"]).max() > 0
    for name, g in grads.items():
        np.testing.assert_allclose(k_grads[name], g, rtol=0, atol=1e-12 * np.abs(g).max(),
                                   err_msg=name)


def test_predict_proba_equals_reference_forward(setup) -> None:
    model = setup.reset()
    P, P_ref = model.predict_proba(setup.X), model.forward(setup.X)
    assert P.shape == P_ref.shape == (N, model.plan.output_dim)
    np.testing.assert_allclose(P, P_ref, rtol=0, atol=RTOL[setup.dtype] * np.abs(P_ref).max())
    labels = model.predict(setup.X)
    if P.shape[1] == 1:
        np.testing.assert_array_equal(labels.ravel(), (P[:, 0] > 0.5).astype(int))
    else:
        np.testing.assert_array_equal(labels, P.argmax(axis=1))


# ------------------------------------------------------------------ training
def _reference_epochs(setup: Setup, epochs: int) -> dict[str, np.ndarray]:
    """The same epochs by hand: reference gradients of each batch + the optimizer's NumPy step."""
    params = {k: v.astype(np.float64) for k, v in setup.start.items()}
    ref = sg.compile(setup.model.net, loss=setup.model.loss_entry, dtype="float64")
    opt = setup.make_optimizer()
    state = opt.init_state(params)
    for _ in range(epochs):
        for start in range(0, N, BATCH):
            rows = setup.order[start:start + BATCH]
            _, grads = ref.backward(setup.X[rows], setup.y[rows], params=params)
            opt.step_numpy(params, grads, state)
    return params


def _assert_epochs_equal_reference(setup: Setup, epochs: int, rtol: float) -> None:
    model = setup.reset()
    want = _reference_epochs(setup, epochs)
    model.fit(setup.X, setup.y, epochs=epochs, batch_size=BATCH, order=setup.order)
    for name, value in want.items():
        assert not np.allclose(model.params[name], setup.start[name]), f"{name} did not move"
        np.testing.assert_allclose(model.params[name], value, rtol=0,
                                   atol=rtol * np.abs(value).max(), err_msg=name)


def test_sgd_epoch_equals_reference_epoch(m64) -> None:
    _assert_epochs_equal_reference(m64, epochs=1, rtol=1e-10)


def test_adam_float32_epochs_follow_reference(m32) -> None:
    # float32 kernel vs float64 NumPy steps: they agree to float32 rounding.
    _assert_epochs_equal_reference(m32, epochs=2, rtol=1e-4)


# ------------------------------------------------------------------ split batches
@pytest.mark.parametrize("parts", [2, 3])
def test_split_batches_train_like_the_reference(setup, parts: int, monkeypatch) -> None:
    """Each batch in 2 or 3 parts side by side (8 rows: 4+4 or 3+3+2; the 5-row remainder:
    3+2 or 2+2+1), the parts' gradients weighted by their rows: the reference's epochs."""
    module = trainer_for(setup.model).module
    asked = []
    monkeypatch.setattr(module, "batch_parts", lambda batch_size: asked.append(batch_size)
                        or parts)
    epochs = 1 if setup.dtype == "float64" else 2
    _assert_epochs_equal_reference(setup, epochs, 1e-10 if setup.dtype == "float64" else 1e-4)
    assert asked == [BATCH] * epochs


def test_batches_split_by_threads_and_rows_in_the_main_thread_only(m64) -> None:
    import threading

    import numba

    module = trainer_for(m64.model).module
    threads = numba.get_num_threads()
    assert module.batch_parts(64) == (min(threads, 64 // module.MIN_PART_ROWS)
                                      if module.BLAS_PINNED else 1)
    assert module.batch_parts(2 * module.MIN_PART_ROWS - 1) == 1
    elsewhere = []
    worker = threading.Thread(target=lambda: elsewhere.append(module.batch_parts(64)))
    worker.start()
    worker.join()
    assert elsewhere == [1]   # the BLAS thread count is process-wide: one splitter at a time


def test_split_batches_leave_the_callers_blas_threads_alone(m64, monkeypatch) -> None:
    """A part pins its GEMMs to one BLAS thread (the parts use every core) and restores
    the thread's own setting: the main thread runs a part too."""
    import ctypes

    from symgrad.codegen import gemm_module

    module = trainer_for(m64.model).module
    assert module.BLAS_PINNED, "this OpenBLAS cannot pin threads: batches never split"
    paths = gemm_module._blas_library_paths(gemm_module.numpy_cblas_available("float64"))
    pin = ctypes.CDLL(paths[0]).openblas_set_num_threads_local
    monkeypatch.setattr(module, "batch_parts", lambda batch_size: 2)
    before = pin(3)
    try:
        m64.reset().fit(m64.X, m64.y, epochs=1, batch_size=BATCH, order=m64.order)
    finally:
        assert pin(before) == 3


def _tiny_setup(make_optimizer) -> Setup:
    net = Sequential(Conv2d(1, 3, 3, padding=1), sg.ReLU(), MaxPool2d(2), Flatten(),
                     Dense(27, 3), sg.Softmax(), input_shape=(1, 6, 6))
    return Setup("tiny", net, "cross_entropy", make_optimizer(), make_optimizer, "float64", 3)


# Plain SGD trains m64 and Adam m32; the stateful rest on a tiny CNN (one compile each).
OPTIMIZERS = {
    "sgd-nesterov-l2": lambda: sg.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    "adamw": lambda: sg.AdamW(lr=0.02, weight_decay=0.05),
}


def _assert_training_lowers_loss(setup: Setup, epochs: int) -> None:
    model = setup.reset()
    before = model.evaluate(setup.X, setup.y)["loss"]
    history = model.fit(setup.X, setup.y, epochs=epochs, batch_size=BATCH, seed=0)
    after = model.evaluate(setup.X, setup.y)["loss"]
    assert after < 0.3 * before, (before, after, history.history["loss"])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains_a_cnn(name: str) -> None:
    """Kernel steps equal the NumPy steps, then the loss goes down (SGD: m64, Adam: m32)."""
    setup = _tiny_setup(OPTIMIZERS[name])
    _assert_epochs_equal_reference(setup, epochs=2, rtol=1e-10)
    _assert_training_lowers_loss(setup, epochs=30)


def test_sgd_and_adam_train_the_shared_cnns(setup) -> None:
    _assert_training_lowers_loss(setup, epochs=30)


def test_every_registered_optimizer_is_exercised() -> None:
    from symgrad.runtime.optimizers import REGISTRY

    tried = {type(make()) for make in OPTIMIZERS.values()} | {sg.SGD, sg.Adam}
    assert set(REGISTRY.values()) <= tried


# ------------------------------------------------------------------ proofs
def test_check_passes_with_conv_and_pooling(setup) -> None:
    model = setup.reset()
    report = sg.check(model)
    for name in model.params:
        assert f"d loss / d {name}" in report.names("finite differences")
        assert f"kernel {name}" in report.names("kernel")
    assert max(e.max_error for e in report if e.kind == "kernel") <= RTOL[setup.dtype]


# ------------------------------------------------------------------ save / load
def test_save_load_round_trip(setup, tmp_path) -> None:
    model = setup.reset()
    path = tmp_path / "w.npz"
    model.save(str(path))
    saved = {k: v.copy() for k, v in model.params.items()}
    model.fit(setup.X, setup.y, epochs=1, batch_size=BATCH, seed=0)
    assert not np.array_equal(model.params["conv0.W"], saved["conv0.W"])
    model.load(str(path))
    for name, value in saved.items():
        assert model.params[name].dtype == np.dtype(setup.dtype)
        np.testing.assert_array_equal(model.params[name], value)
    bad = dict(saved, **{"conv0.W": saved["conv0.W"][:, :1]})
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match=r"conv0\.W"):
        model.load(str(tmp_path / "bad.npz"))


# ------------------------------------------------------------------ standalone export
BLOCKER = textwrap.dedent("""
    import sys
    class _Block:
        # The exported trainer must need neither sympy nor symgrad.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("sympy", "symgrad"):
                raise ImportError(f"blocked for this test: {name}")
            return None
    sys.meta_path.insert(0, _Block())
""")

EXPORT_RUN = textwrap.dedent("""
    import importlib, json
    import numpy as np
    out = {}
    for name in NAMES:
        trainer = importlib.import_module("trainer_" + name)
        data = np.load(name + "_data.npz")
        X, y, order = data["X"], data["y"], data["order"]
        trainer.load_weights(name + "_start.npz")
        P0 = trainer.predict(X)                     # (n, C, H, W) images, as Model.predict
        losses = [float(trainer.train_epoch(X, y, batch_size=BATCH, order=order)[0])
                  for _ in range(2)]
        try:
            trainer.predict(X.reshape(len(X), -1))  # flat rows are refused
            refused = ""
        except trainer.InputShapeError as err:
            refused = str(err)
        np.savez(name + "_out.npz", P0=P0, **trainer.WEIGHTS)
        out[name] = {"losses": losses, "refused": refused}
    out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("sympy", "symgrad"))
    print(json.dumps(out))
""")


def test_export_trains_bit_identically_to_fit(m64, m32, tmp_path) -> None:
    setups = (m64, m32)
    for s in setups:
        model = s.reset()
        model.save(str(tmp_path / f"{s.name}_start.npz"))
        np.savez(tmp_path / f"{s.name}_data.npz", X=s.X, y=s.y, order=s.order)
        model.export(str(tmp_path / f"trainer_{s.name}.py"))
    code = BLOCKER + f"NAMES, BATCH = {[s.name for s in setups]!r}, {BATCH}\n" + EXPORT_RUN
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["modules"] == []
    for s in setups:
        model = s.model
        exported = np.load(tmp_path / f"{s.name}_out.npz")
        np.testing.assert_array_equal(exported["P0"], model.predict_proba(s.X))
        history = model.fit(s.X, s.y, epochs=2, batch_size=BATCH, order=s.order)
        np.testing.assert_array_equal(out[s.name]["losses"], history.history["loss"])
        for name, value in model.params.items():
            assert exported[name].dtype == value.dtype == np.dtype(s.dtype)
            np.testing.assert_array_equal(exported[name], value, err_msg=f"{s.name} {name}")
        refused = out[s.name]["refused"]
        c, h, w = model.net.input_shape
        assert f"(n, {c}, {h}, {w})" in refused and f"({N}, {c * h * w})" in refused


def test_model_refuses_flat_rows_like_the_export(m64) -> None:
    with pytest.raises(InputShapeError, match=r"\(n, 2, 9, 8\)"):
        m64.model.predict(m64.X.reshape(N, -1))
