"""Seed 004 by SymPy: binary vs multiclass heads, and a small CNN on 8x8 digits.

The lecture notes' PyTorch course sets two heads side by side -- binary
classification (one output, sigmoid, binary cross-entropy) and multiclass (one
output per class, softmax, cross-entropy), tabulated here by `sg.head_table` from
the two compiled models -- and then builds a convolutional
network from ``nn.Conv2d``, ``nn.ReLU``, ``nn.MaxPool2d``, ``nn.Flatten`` and
``nn.Linear``. Here both heads are *derived*: SymPy finds that dL/dz is p - y for
each (the sigmoid's p(1 - p) and the softmax Jacobian cancel), the CNN's backward
pass is printed layer by layer, every rule is proven (`sg.check`), and the same
network trains on scikit-learn's digits: once with a multiclass head (which digit?)
and once with a binary head (is it a zero?). Layers use PyTorch's layouts (NCHW
images, Conv2d weights (out, in, kh, kw)), so the trained weights load into the
PyTorch model of the same architecture.

Run ``python examples/seed004_pytorch_layers.py [--out DIR]`` (needs scikit-learn
for the digits).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import symgrad as sg
from symgrad.definition.layers import Conv2d, Dense, Flatten, MaxPool2d


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as NCHW images in [0, 1]; a fixed 75/25 split."""
    from sklearn.datasets import load_digits

    data = load_digits()
    X = (data.images / 16.0)[:, None, :, :]          # (1797, 1, 8, 8)
    rows = np.random.default_rng(0).permutation(len(X))
    cut = int(0.75 * len(X))
    train, test = rows[:cut], rows[cut:]
    return X[train], data.target[train], X[test], data.target[test]


def features() -> list:
    """The convolutional feature extractor of both networks (8x8 -> 16 * 2 * 2)."""
    return [Conv2d(1, 8, 3, padding=1), sg.ReLU(), MaxPool2d(2),
            Conv2d(8, 16, 3, padding=1), sg.ReLU(), MaxPool2d(2), Flatten()]


def head_models() -> tuple[sg.Model, sg.Model]:
    """The binary head (one sigmoid output, BCE) and the multiclass head (softmax, CE)."""
    binary = sg.compile(sg.Sequential(sg.Dense(4, 1), sg.Sigmoid()), loss="bce")
    multi = sg.compile(sg.Sequential(sg.Dense(4, 3), sg.Softmax()), loss="cross_entropy")
    return binary, multi


def heads_table(models: tuple[sg.Model, sg.Model] | None = None) -> list[tuple[str, str, object]]:
    """(head, loss, derived dL/dz) for the binary and the multiclass head."""
    return [(m.plan.output.activation_name, m.plan.output.loss_name, m.plan.output.delta)
            for m in models or head_models()]


def main(out_dir: Path, epochs: int = 30) -> dict:
    models = head_models()
    heads = sg.head_table(*models, title="Binary vs multiclass classification head")
    print(heads.text())
    heads.to_tex(Path(out_dir) / "seed004_heads.tex")
    table = heads_table(models)

    X, y, X_test, y_test = digits()
    multiclass = sg.Sequential(*features(), Dense(64, 32), sg.ReLU(), Dense(32, 10),
                               sg.Softmax(), input_shape=(1, 8, 8))
    model = sg.compile(multiclass, loss="cross_entropy", optimizer=sg.Adam(lr=0.01), seed=0)
    text = model.derivation.text()
    print(text)
    tex = model.derivation.to_tex(Path(out_dir) / "seed004_cnn.tex")
    print(f"LaTeX written to {tex}")
    report = sg.check(model)
    print(f"sg.check: {len(report.entries)} entries proven")
    hist = model.fit(X, y, epochs=epochs, batch_size=32, shuffle=True, seed=0)
    accuracy = model.evaluate(X_test, y_test)["accuracy"]
    print(f"multiclass: loss {hist.history['loss'][0]:.3f} -> {hist.history['loss'][-1]:.3f}; "
          f"test accuracy {accuracy:.3f}")

    binary = sg.Sequential(*features(), Dense(64, 16), sg.ReLU(), Dense(16, 1), sg.Sigmoid(),
                           input_shape=(1, 8, 8))
    zero = sg.compile(binary, loss="bce", optimizer=sg.Adam(lr=0.01), seed=0)
    zero.fit(X, (y == 0).astype(float), epochs=10, batch_size=32, shuffle=True, seed=0)
    zero_accuracy = zero.evaluate(X_test, (y_test == 0).astype(float))["accuracy"]
    print(f"binary (is it a zero?): test accuracy {zero_accuracy:.3f}")
    return {"heads": table, "head_table": heads, "accuracy": accuracy,
            "zero_accuracy": zero_accuracy, "loss": hist.history["loss"], "derivation": text,
            "report": report}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the .tex file")
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="symgrad-seed004-"))
    folder.mkdir(parents=True, exist_ok=True)
    main(folder)
