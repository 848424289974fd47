"""Convolutional networks refuse bad definitions and bad data early, naming what is wrong.

Definitions fail when the `Sequential` is built (a `DefinitionError`, or its subclass
`LayerSizeError` for sizes that do not fit), naming the layer and the shapes; data
fails in fit / predict / evaluate before any kernel runs (`InputShapeError`, naming
the first layer and both shapes). Nothing here compiles a kernel.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg
from symgrad.definition.errors import DefinitionError, InputShapeError, LayerSizeError
from symgrad.definition.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, Sequential


@pytest.fixture(scope="module")
def model():
    net = Sequential(Conv2d(2, 3, 3), sg.ReLU(), MaxPool2d(2), Flatten(), Dense(12, 2),
                     sg.Softmax(), input_shape=(2, 6, 6))
    return sg.compile(net, loss="cross_entropy")


BAD_X = {
    "flat rows": (3, 72),
    "wrong width": (3, 2, 6, 5),
    "wrong height": (3, 2, 5, 6),
    "wrong channels": (3, 1, 6, 6),
    "one image axis short": (3, 2, 6),
    "extra axis": (3, 2, 6, 6, 1),
}


@pytest.mark.parametrize("shape", BAD_X.values(), ids=BAD_X.keys())
@pytest.mark.parametrize("call", ["fit", "predict", "predict_proba", "evaluate", "backward"])
def test_wrong_image_shape_names_first_layer_and_both_shapes(model, shape, call) -> None:
    X, y = np.zeros(shape), np.array([0, 1, 0])
    run = {"fit": lambda: model.fit(X, y, epochs=1), "predict": lambda: model.predict(X),
           "predict_proba": lambda: model.predict_proba(X),
           "evaluate": lambda: model.evaluate(X, y), "backward": lambda: model.backward(X, y)}
    with pytest.raises(InputShapeError) as err:
        run[call]()
    message = str(err.value)
    assert "conv0" in message
    assert "(n, 2, 6, 6)" in message and str(shape) in message


def test_channels_last_images_get_the_transpose_to_pass(model) -> None:
    with pytest.raises(InputShapeError, match=re.escape(
            "got (3, 6, 6, 2) (channels last: pass X.transpose(0, 3, 1, 2))")):
        model.predict(np.zeros((3, 6, 6, 2)))
    with pytest.raises(InputShapeError) as err:       # (2, 6, 6) itself: no hint
        model.predict(np.zeros((3, 2, 6, 5)))
    assert "channels last" not in str(err.value)


def test_one_channel_images_without_their_axis_get_the_index_to_pass() -> None:
    net = Sequential(Conv2d(1, 2, 3), Flatten(), Dense(8, 2), sg.Softmax(),
                     input_shape=(1, 4, 4))
    model = sg.compile(net, loss="cross_entropy")
    with pytest.raises(InputShapeError, match=re.escape("got (5, 4, 4) (no channel axis: "
                                                        "pass X[:, None])")):
        model.fit(np.zeros((5, 4, 4)), np.zeros(5, dtype=int), epochs=1)


def test_first_layer_named_when_it_is_a_pooling_layer() -> None:
    net = Sequential(AvgPool2d(2), Flatten(), Dense(8, 2), sg.Softmax(), input_shape=(2, 4, 4))
    model = sg.compile(net, loss="cross_entropy")
    with pytest.raises(InputShapeError, match=r"avgpool0.*\(2, 4, 4\).*got \(3, 4, 4\)"):
        model.predict(np.zeros((3, 4, 4)))


@pytest.mark.parametrize("call", ["fit", "predict", "evaluate", "backward"])
def test_nan_in_images_is_refused(model, call) -> None:
    X = np.zeros((3, 2, 6, 6))
    X[1, 1, 2, 3] = np.nan
    y = np.array([0, 1, 0])
    run = {"fit": lambda: model.fit(X, y, epochs=1), "predict": lambda: model.predict(X),
           "evaluate": lambda: model.evaluate(X, y), "backward": lambda: model.backward(X, y)}
    # Located as the image and its (channel, row, column), not a flattened column.
    with pytest.raises(InputShapeError,
                       match=r"non-finite value nan at image 1, \(channel, row, column\) = "
                             r"\(1, 2, 3\)"):
        run[call]()
    X[1, 1, 2, 3] = np.inf
    with pytest.raises(InputShapeError, match=r"non-finite value inf"):
        run[call]()


def _build(*layers, input_shape=(1, 5, 5)):
    return Sequential(*layers, input_shape=input_shape)


# (layers, input_shape, error class, the phrases the message must hold)
BAD_NETS = {
    "kernel larger than the image": (
        (Conv2d(1, 2, 7), Flatten(), Dense(2, 1)), (1, 5, 5), LayerSizeError,
        ["layer 0 conv0", "7x7 kernel is larger", "5x5", "(1, 5, 5)"]),
    "kernel larger than a later input": (
        (Conv2d(1, 2, 2, stride=2), Conv2d(2, 2, 3), Flatten(), Dense(2, 1)), (1, 5, 5),
        LayerSizeError, ["layer 1 conv1", "3x3 kernel", "(2, 2, 2)"]),
    "non-square kernel too tall": (
        (Conv2d(1, 2, (6, 1)), Flatten(), Dense(2, 1)), (1, 5, 5), LayerSizeError,
        ["conv0", "6x1 kernel", "(1, 5, 5)"]),
    "pooling window larger than its input": (
        (Conv2d(1, 2, 3), MaxPool2d(4), Flatten(), Dense(2, 1)), (1, 5, 5), LayerSizeError,
        ["layer 1 maxpool0", "4x4 window", "3x3", "(2, 3, 3)"]),
    "average pooling larger than the image": (
        (AvgPool2d((1, 6)), Flatten(), Dense(2, 1)), (1, 5, 5), LayerSizeError,
        ["avgpool0", "1x6 window", "(1, 5, 5)"]),
    "wrong in_ch of the first conv": (
        (Conv2d(2, 2, 3), Flatten(), Dense(18, 1)), (1, 5, 5), LayerSizeError,
        ["conv0", "expects 2 input channels", "has 1", "(1, 5, 5)"]),
    "wrong in_ch of a later conv": (
        (Conv2d(1, 2, 3), Conv2d(3, 2, 1), Flatten(), Dense(18, 1)), (1, 5, 5), LayerSizeError,
        ["layer 1 conv1", "expects 3 input channels", "has 2", "(2, 3, 3)"]),
    "Dense after Flatten with the wrong in_dim": (
        (Conv2d(1, 2, 3), Flatten(), Dense(17, 1)), (1, 5, 5), LayerSizeError,
        ["Dense(17 -> 1)", "18 values", "(2, 3, 3)", "Dense(18, 1)"]),
    "missing input_shape": (
        (Conv2d(1, 2, 3), Flatten(), Dense(18, 1)), None, DefinitionError,
        ["layer 0", "Conv2d(1 -> 2, kernel 3x3)", "input_shape=(C, H, W)"]),
    "input_shape not (C, H, W)": (
        (Conv2d(1, 2, 3), Flatten(), Dense(18, 1)), (5, 5), DefinitionError,
        ["input_shape", "(5, 5)"]),
    "image layer after Dense": (
        (Conv2d(1, 2, 3), Flatten(), Dense(18, 4), Conv2d(1, 1, 1), Dense(4, 1)), (1, 5, 5),
        DefinitionError, ["layer 3", "Conv2d(1 -> 1", "follows Dense layer 2"]),
    "activation right after Flatten": (
        (Conv2d(1, 2, 3), Flatten(), sg.ReLU(), Dense(18, 1)), (1, 5, 5), DefinitionError,
        ["layer 2", "ReLU()", "follows Flatten"]),
    "Dense without Flatten": (
        (Conv2d(1, 2, 3), Dense(18, 1)), (1, 5, 5), DefinitionError,
        ["layer 1 Dense(18 -> 1)", "Flatten()"]),
    "pooling after Flatten": (
        (Conv2d(1, 2, 3), Flatten(), MaxPool2d(2), Dense(18, 1)), (1, 5, 5), DefinitionError,
        ["layer 2 maxpool0", "follows Flatten"]),
    "softmax inside the image layers": (
        (Conv2d(1, 2, 3), sg.Softmax(), Flatten(), Dense(18, 1)), (1, 5, 5), DefinitionError,
        ["layer 1", "softmax", "output"]),
    "no Dense head": (
        (Conv2d(1, 2, 3), Flatten()), (1, 5, 5), DefinitionError, ["at least one Dense"]),
}


@pytest.mark.parametrize("case", BAD_NETS.values(), ids=BAD_NETS.keys())
def test_bad_network_is_refused_at_construction(case) -> None:
    layers, input_shape, error, phrases = case
    with pytest.raises(error) as err:
        Sequential(*layers, input_shape=input_shape)
    for phrase in phrases:
        assert phrase in str(err.value), (phrase, str(err.value))


@pytest.mark.parametrize(("make", "phrase"), [
    (lambda: Conv2d(1, 2, 0), "kernel_size must be a positive int"),
    (lambda: Conv2d(1, 2, (3, 2, 1)), "kernel_size must be an int or a pair"),
    (lambda: Conv2d(1, 2, 3, stride=0), "stride must be a positive int"),
    (lambda: Conv2d(1, 2, 3, padding=-1), "padding must be an int >= 0"),
    (lambda: Conv2d(0, 2, 3), "in_ch must be a positive int"),
    (lambda: Conv2d(1, 2, 3, bias=1), "bias must be True or False"),
    (lambda: Conv2d(1, 2, 3, init="zeros"), "init must be one of"),
    (lambda: MaxPool2d(0), "kernel_size must be a positive int"),
    (lambda: AvgPool2d(2, stride=(1, 0)), "stride must be a positive int"),
])
def test_bad_layer_arguments_are_refused(make, phrase) -> None:
    with pytest.raises(DefinitionError, match=re.escape(phrase)):
        make()


def test_floor_rule_never_gives_an_empty_output() -> None:
    """With the kernel inside the padded input, a stride can shrink a map to 1x1, never 0."""
    net = _build(Conv2d(1, 2, 2, stride=2), Conv2d(2, 2, 2, stride=3), Flatten(), Dense(2, 1))
    assert net.feature_shapes[1][1] == (2, 1, 1)


def test_predict_and_compiled_backward_name_themselves(model) -> None:
    with pytest.raises(InputShapeError, match=r"^predict: X must have shape"):
        model.predict(np.zeros((3, 72)))
    with pytest.raises(InputShapeError, match=r"^compiled_backward: "):
        model.compiled_backward(np.zeros((3, 72)), np.array([0, 1, 0]))
