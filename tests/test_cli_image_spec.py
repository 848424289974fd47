"""SPEC strings for convolutional networks: Input(C, H, W), Conv2d, pooling, Flatten."""

from __future__ import annotations

import pytest

from symgrad.cli.spec import SpecError, parse_spec
from symgrad.definition.layers import AvgPool2d, Conv2d, Flatten, MaxPool2d


def test_image_layers_parse_with_their_settings() -> None:
    net = parse_spec("Input(3,9,9) Conv2d(3,4,3,stride=2,padding=1,bias=false) ReLU "
                     "MaxPool2d(2) Conv2d(4,2,1) AvgPool2d(2,stride=1) Flatten Dense(2,1) Sigmoid")
    assert net.input_shape == (3, 9, 9)
    conv, pool = net.layers[0], net.layers[2]
    assert isinstance(conv, Conv2d) and conv.stride == (2, 2) and conv.padding == (1, 1)
    assert conv.bias is False and isinstance(pool, MaxPool2d) and pool.kernel == (2, 2)
    assert isinstance(net.layers[4], AvgPool2d) and net.layers[4].stride == (1, 1)
    assert isinstance(net.layers[5], Flatten)


@pytest.mark.parametrize("spec, words", [
    ("Conv2d(1,2,3) Flatten Dense(2,1)", ["Input(C, H, W)", "reads images"]),
    ("Input(1,4,4) Conv2d(1,2,5) Flatten Dense(2,1)", ["conv0", "5x5", "4x4"]),
    ("Input(1,4,4) Conv2d(1,2,3,dilation=2) Flatten Dense(8,1)", ["dilation"]),
    ("Input(1,4,4) Conv2d(1,2,1.5) Flatten Dense(8,1)", ["kernel_size", "1.5"]),
    ("Dense(2,2) Input(1,4,4)", ["Input(C, H, W) must come first"]),
    ("Input(1,4) Conv2d(1,2,1) Flatten Dense(8,1)", ["three positive ints"]),
    ("Input(1,4,4) Conv2d(1,2,3) Flatten Dense(9,1)", ["expects 9 inputs", "8 values"]),
])
def test_bad_image_specs_name_the_problem(spec: str, words: list[str]) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    for word in words:
        assert word in str(err.value)
