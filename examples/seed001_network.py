"""Seed 001 by SymPy: Steps A, B, C for sigmoid + BCE, dW = X^T dZ and the ReLU mask.

The lecture notes derive the backward pass of a two-layer network by hand:
Step A dl/dp = (p - y)/(p(1 - p)), Step B dp/dz = p(1 - p), Step C their product
p - y; dW = X^T dZ with a transpose to match the shapes; ReLU's derivative
[z > 0]. Here SymPy derives all of it from the forward formulas, the printout
shows each step, `sg.check` proves it, and the network learns XOR with plain
minibatch gradient descent. Run ``python examples/seed001_network.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import symgrad as sg


def xor_data(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy XOR: the smallest problem a network without a hidden layer cannot learn."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, (n, 2))
    X = corners + rng.normal(0.0, 0.1, (n, 2))
    return X, (corners[:, 0] ^ corners[:, 1]).astype(np.float64)


def main(out_dir: Path, epochs: int = 150) -> dict:
    net = sg.Sequential(sg.Dense(2, 8), sg.ReLU(), sg.Dense(8, 1), sg.Sigmoid())
    model = sg.compile(net, loss="bce", optimizer=sg.SGD(lr=0.5), seed=1)
    out, relu = model.plan.output, model.plan.layers[0].activation
    print("Step A   dl/dp  =", out.step_a)
    print("Step B   dp/dz  =", out.step_b)
    print("Step C   dl/dz  =", out.delta, "  (the p(1 - p) factors cancel)")
    print("ReLU     f'     =", relu.derivative, "  reads", relu.saved)
    print("dW2 =", model.gradients["dense1.W"], "   dW1 =", model.gradients["dense0.W"])
    print()
    print(model.derivation.text())
    tex = model.derivation.to_tex(Path(out_dir) / "seed001_network.tex")
    print(f"LaTeX written to {tex}")
    print(sg.check(model))

    X, y = xor_data()
    hist = model.fit(X, y, epochs=epochs, batch_size=32, shuffle=True, seed=0)
    scores = model.evaluate(X, y)
    print(f"loss {hist.history['loss'][0]:.4f} -> {hist.history['loss'][-1]:.4f}; "
          f"accuracy {scores['accuracy']:.3f}")
    return {"step_a": out.step_a, "step_b": out.step_b, "delta": out.delta,
            "relu": relu.derivative, "dW2": model.gradients["dense1.W"],
            "loss": hist.history["loss"], "accuracy": scores["accuracy"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    main(args.out or Path(tempfile.mkdtemp(prefix="symgrad-seed001-")))
