"""``symgrad demo``: derive, print, prove and train the lecture examples.

1. Seed 000: the neuron o = tanh(x1 w1 + x2 w2 + b) back-propagated node by
   node, each local derivative also derived from the limit definition (a limit
   table repeated up to names is shown once and referred back to), written as
   LaTeX too, its graph drawn, and a few steps of gradient descent animated.
2. Seed 001: a network (ReLU hidden layer, sigmoid output, binary
   cross-entropy) derived layer by layer, proof-checked, and trained with the
   Numba kernels on the two-moons data set (named and described in the output).

Every file goes to ``--out`` (default ``./symgrad-demo``); the output says where.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path("symgrad-demo")
TRAIN_POINTS, VALIDATION_POINTS, NOISE = 2048, 512, 0.1


def _banner(title: str) -> None:
    print("\n" + "#" * 78 + f"\n# {title}\n" + "#" * 78)


def _neuron():
    import symgrad as sg

    x1, x2 = sg.Value(2.0, label="x1"), sg.Value(0.0, label="x2")
    w1, w2 = sg.Value(-3.0, label="w1"), sg.Value(1.0, label="w2")
    b = sg.Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return o, (x1, w1, x2, w2, b)


def scalar_part(out_dir: Path) -> None:
    """Seed 000: a single neuron, back-propagated node by node, then trained for a few steps."""
    import symgrad as sg

    o, leaves = _neuron()
    o.backward()
    _banner("1. A neuron, back-propagated node by node (seed 000)")
    doc = sg.derivation(o, steps="limit")
    print(doc.text())
    print(f"  LaTeX written to {doc.to_tex(out_dir / 'neuron_derivation.tex')}")
    for leaf in leaves:
        print(f"  {leaf.label:>2}.grad = {leaf.grad:+.6f}")
    print(f"  symbolic do/dw1 = {sg.grad(o, leaves[1])}")
    png = sg.draw(o, out_dir / "neuron.png")
    print(f"  graph drawn to {png}")

    # The notes' "training simulation": push o towards the target 1 by gradient descent.
    o, (_, w1, _, w2, b) = _neuron()
    loss = (o - 1.0) ** 2
    loss.label = "L"
    anim = sg.animate_training(loss, out_dir / "neuron_training.gif", params=[w1, w2, b],
                               steps=4, lr=0.5)
    print("  training L = (o - 1)^2 for 4 steps (lr 0.5): loss "
          + " -> ".join(f"{v:.4f}" for v in anim.losses))
    print(f"  animation ({anim.frames} frames) written to {anim.path}")


def two_moons(n: int, seed: int, noise: float = NOISE) -> tuple[np.ndarray, np.ndarray]:
    """The two-moons data set: two interleaving half circles with Gaussian noise.

    Class 0 lies on the upper half circle of radius 1 centred at (0, 0), class 1
    on the lower one centred at (1, 0.5); each point gets N(0, noise^2) noise
    in both coordinates (the shape of scikit-learn's ``make_moons``).
    """
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.where(label == 0, np.cos(t), 1 - np.cos(t))
    y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
    X = np.column_stack([x, y]) + rng.normal(0, noise, (n, 2))
    return X, label.astype(np.float64)


def network_part(out_dir: Path, epochs: int) -> None:
    """Seed 001: derive, print, prove and train a two-layer network on two moons."""
    import symgrad as sg

    net = sg.Sequential(sg.Dense(2, 16), sg.ReLU(), sg.Dense(16, 1), sg.Sigmoid())
    model = sg.compile(net, loss="bce", optimizer=sg.Adam(lr=0.01), seed=0)
    _banner("2. A network derived layer by layer (seed 001)")
    print(model.derivation.text())
    tex = model.derivation.to_tex(out_dir / "network_derivation.tex")
    print(f"  LaTeX written to {tex}")

    _banner("3. Proof checks")
    print(sg.check(model))

    _banner("4. Training with the compiled Numba kernels")
    print(f"  Data set: two moons, two interleaving half circles (class 0 the upper moon,\n"
          f"  class 1 the lower) with Gaussian noise of standard deviation {NOISE}:\n"
          f"  {TRAIN_POINTS} training points (seed 0), {VALIDATION_POINTS} validation points "
          "(seed 1),\n  drawn by symgrad.cli.demo.two_moons (the shape of scikit-learn's "
          "make_moons).")
    X, y = two_moons(TRAIN_POINTS, seed=0)
    Xv, yv = two_moons(VALIDATION_POINTS, seed=1)
    hist = model.fit(X, y, epochs=epochs, batch_size=32, shuffle=True, seed=0,
                     validation_data=(Xv, yv),
                     verbose=1 if sys.stderr.isatty() else 2)   # a bar, or lines in a log
    scores = model.evaluate(Xv, yv)
    print(f"  final loss {hist.history['loss'][-1]:.4f}; "
          f"validation accuracy {scores['accuracy']:.3f}")
    hist.plot(out_dir / "loss.png")
    print(f"  loss curve written to {out_dir / 'loss.png'}")


def add_arguments(parser: argparse.ArgumentParser,
                  epochs_type: Callable[[str], int] = int) -> None:
    """The demo's options, for whichever parser hosts the ``demo`` subcommand."""
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
        help=f"folder for the files the demo writes: the neuron's derivation "
             f"(neuron_derivation.tex), graph (neuron.png) and training animation "
             f"(neuron_training.gif), the network derivation (network_derivation.tex) and "
             f"the loss curve (loss.png); created if missing (default: ./{DEFAULT_OUT})")
    parser.add_argument("--epochs", type=epochs_type, default=30,
                        help="training epochs of the network on two moons (default: 30)")


def run_demo(out_dir: Path = DEFAULT_OUT, epochs: int = 30) -> None:
    """Both parts of the demo, writing their files to ``out_dir`` (said in the output)."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"symgrad demo: epochs must be a positive int, got {epochs!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"symgrad demo: --out {str(out_dir)!r} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"symgrad demo: writing its files to {out_dir.resolve()} (choose with --out DIR)")
    scalar_part(out_dir)
    network_part(out_dir, epochs)
