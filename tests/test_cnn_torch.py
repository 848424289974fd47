"""Convolutional networks against PyTorch: loss and every gradient of the NumPy reference.

Random CNNs (`cnn_cases.draw_cases`) are evaluated by symgrad's reference (each layer
kind's stated backward rules) and by PyTorch autograd on the same weights, in float64.
The kernels are compared with the reference in `test_cnn_kernels.py`, so this module
compiles nothing. PyTorch comes with the cross-check extra; without it these skip.
"""

from __future__ import annotations

import numpy as np
import pytest
from cnn_cases import (
    ACTIVATIONS,
    Case,
    draw_cases,
    param_names,
    random_params,
    torch_loss_and_grads,
)

import symgrad as sg
from symgrad.definition.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, Sequential

torch = pytest.importorskip("torch")

CASES = draw_cases(18, seed=0)
RTOL = 1e-10


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread():
    # Tiny tensors: one thread is fastest, and a loaded shared CPU makes spinning workers slow.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _assert_close_to_torch(model, case, params) -> None:
    loss, grads = model.backward(case.X, case.y, params=params)
    t_loss, t_grads = torch_loss_and_grads(case, params)
    assert abs(loss - t_loss) <= RTOL * abs(t_loss), (loss, t_loss)
    assert sorted(grads) == sorted(t_grads)
    for name, g in t_grads.items():
        scale = np.abs(g).max()
        assert scale > 0, f"{case.label}: torch's {name} gradient is all zero (a vacuous check)"
        np.testing.assert_allclose(grads[name], g, rtol=RTOL, atol=RTOL * scale,
                                   err_msg=f"{case.label} {name}")


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_reference_equals_pytorch(case) -> None:
    model = sg.compile(case.net, loss=case.loss, dtype="float64", seed=1)
    # Shapes as documented: the sizes computed in cnn_cases, PyTorch's weight layout.
    assert [out for _, out in case.net.feature_shapes] == case.shapes
    assert list(model.params) == param_names(case.net)
    convs = [layer for layer in case.net if isinstance(layer, Conv2d)]
    for i, layer in enumerate(convs):
        assert model.params[f"conv{i}.W"].shape == (layer.out_ch, layer.in_ch, *layer.kernel)
    _assert_close_to_torch(model, case, random_params(model, seed=2))


def test_cases_cover_what_they_claim() -> None:
    """The drawn networks hold every feature the cross-check is meant to exercise."""
    convs = [layer for case in CASES for layer in case.net if isinstance(layer, Conv2d)]
    pools = [layer for case in CASES for layer in case.net
             if isinstance(layer, (MaxPool2d, AvgPool2d))]
    after_image, after_dense = set(), set()
    for case in CASES:
        layers = list(case.net)
        for prev, layer in zip(layers, layers[1:], strict=False):
            if isinstance(layer, sg.Softmax) or not hasattr(layer, "entry"):
                continue
            name = (layer.entry.name, tuple(sorted(getattr(layer, "params", {}).items())))
            (after_dense if isinstance(prev, Dense) else after_image).add(name)
    every = {(a.entry.name, tuple(sorted(getattr(a, "params", {}).items())))
             for a in (make() for make in ACTIVATIONS)}
    assert every <= after_image and every <= after_dense
    assert {case.loss for case in CASES} == {"cross_entropy", "bce", "mse"}
    assert {case.in_shape[0] for case in CASES} == {1, 2, 3}
    assert {case.in_shape[1] % 2 for case in CASES} == {0, 1}
    assert any(layer.kernel[0] != layer.kernel[1] for layer in convs)
    assert {layer.kernel[0] for layer in convs} == {1, 2, 3, 4}
    assert {s for layer in convs for s in layer.stride} == {1, 2}
    assert {p for layer in convs for p in layer.padding} == {0, 1, 2}
    # Padding at or beyond the kernel: output pixels whose window is all padding.
    assert any(p >= k for layer in convs for p, k in zip(layer.padding, layer.kernel,
                                                          strict=True))
    assert not all(layer.bias for layer in convs)
    assert {type(p) for p in pools} == {MaxPool2d, AvgPool2d}
    assert {type(p) for p in pools if p.stride != p.kernel} == {MaxPool2d, AvgPool2d}
    assert any(isinstance(next(iter(case.net)), (MaxPool2d, AvgPool2d)) for case in CASES)


def _tie_net() -> Sequential:
    # conv0 (1x1, W = [1, 0]) copies channel 0, so its pooling windows hold exact ties
    # while channel 1 (which reaches dW[0, 1]) differs: the routing shows in dW.
    return Sequential(Conv2d(2, 1, 1, bias=False), MaxPool2d(2, stride=1), Flatten(),
                      Dense(9, 2), sg.Softmax(), input_shape=(2, 4, 4))


def test_max_pool_ties_route_like_pytorch() -> None:
    """At a tie the gradient goes to the window's first maximum (row-major), as in PyTorch."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3, 2, 4, 4))
    X[:, 0] = rng.integers(0, 2, size=(3, 4, 4))        # many equal maxima in channel 0
    case = Case("ties", _tie_net(), "cross_entropy", (2, 4, 4), [], X, np.array([0, 1, 1]))
    model = sg.compile(case.net, loss="cross_entropy")
    params = random_params(model, seed=3)
    params["conv0.W"] = np.array([1.0, 0.0]).reshape(1, 2, 1, 1)
    _assert_close_to_torch(model, case, params)
    # The check is not vacuous: routing to the *last* maximum would change dW[0, 1].
    _, grads = model.backward(X, case.y, params=params)
    flipped = X[:, :, ::-1, ::-1].copy()   # reversed windows: "first" becomes "last"
    _, flipped_grads = model.backward(flipped, case.y, params={
        **params, "dense0.W": params["dense0.W"].reshape(3, 3, 2)[::-1, ::-1].reshape(9, 2)})
    assert not np.isclose(grads["conv0.W"][0, 1], flipped_grads["conv0.W"][0, 1])
