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


def test_sizes_that_differ_by_axis_are_pairs() -> None:
    net = parse_spec("Input(1,5,6) Conv2d(1,2,(3,2),stride=(2,1),padding=(1,0)) ReLU "
                     "MaxPool2d((2,1)) Flatten Dense(10,3) Softmax")
    conv, pool = net.layers[0], net.layers[2]
    assert (conv.kernel, conv.stride, conv.padding) == ((3, 2), (2, 1), (1, 0))
    assert pool.kernel == (2, 1)
    for bad, words in [("Conv2d(1,2,(3,2,1))", ["(h, w) pair"]),
                       ("Dense((2,3),4)", ["two positive ints"]),
                       ("Conv2d(1,2,(3,-2))", ["kernel_size", "-2"])]:
        with pytest.raises(SpecError) as err:
            parse_spec(f"Input(1,5,6) {bad} Flatten Dense(4,1)")
        assert all(word in str(err.value) for word in words), str(err.value)


def test_train_reads_nchw_images_from_an_npz(tmp_path, monkeypatch, capsys) -> None:
    """An .npz X of shape (n, C, H, W), as the Python API takes it; a mismatch names both."""
    import numpy as np

    from symgrad.cli import main

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img.npz", X=rng.normal(size=(30, 1, 5, 6)), y=rng.integers(0, 3, 30))
    monkeypatch.chdir(tmp_path)
    spec = "Input(1,5,6) Conv2d(1,2,3,padding=1) ReLU MaxPool2d(2) Flatten Dense(12,3) Softmax"
    assert main(["train", spec, "--loss", "cross_entropy", "--data", "img.npz", "--epochs", "1",
                 "-o", "w.npz", "--quiet"]) == 0
    assert (tmp_path / "w.npz").is_file() and "trained 1 epochs" in capsys.readouterr().out
    wrong = spec.replace("Input(1,5,6)", "Input(1,6,5)")
    assert main(["train", wrong, "--loss", "cross_entropy", "--data", "img.npz", "-o",
                 "v.npz"]) == 1
    err = capsys.readouterr().err
    assert "images (1, 5, 6)" in err and "images (1, 6, 5)" in err and "conv0" in err
