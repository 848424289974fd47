"""``symgrad demo``: derive, print, prove and train the lecture examples.

The demo follows the lecture notes: the seed-000 neuron o = tanh(x1 w1 + x2 w2 + b)
back-propagated node by node (with tanh's derivative from the limit definition),
then the seed-001 network (ReLU hidden layer, sigmoid output, binary
cross-entropy) derived layer by layer, proof-checked, and trained with the
Numba kernels on a small two-class problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _banner(title: str) -> None:
    print("\n" + "#" * 78 + f"\n# {title}\n" + "#" * 78)


def scalar_part(out_dir: Path) -> None:
    """Seed 000: a single neuron, back-propagated node by node."""
    import symgrad as sg

    x1, x2 = sg.Value(2.0, label="x1"), sg.Value(0.0, label="x2")
    w1, w2 = sg.Value(-3.0, label="w1"), sg.Value(1.0, label="w2")
    b = sg.Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    o.backward()
    _banner("1. A neuron, back-propagated node by node (seed 000)")
    print(sg.derivation(o, steps="limit").text())
    for leaf in (x1, w1, x2, w2, b):
        print(f"  {leaf.label:>2}.grad = {leaf.grad:+.6f}")
    print(f"  symbolic do/dw1 = {sg.grad(o, w1)}")
    png = sg.draw(o, out_dir / "neuron.png")
    print(f"  graph drawn to {png}")


def _two_moons(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.where(label == 0, np.cos(t), 1 - np.cos(t))
    y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
    X = np.column_stack([x, y]) + rng.normal(0, 0.1, (n, 2))
    return X, label.astype(np.float64)


def network_part(out_dir: Path, epochs: int) -> None:
    """Seed 001: derive, print, prove and train a two-layer network."""
    import symgrad as sg

    net = sg.Sequential(sg.Dense(2, 16), sg.ReLU(), sg.Dense(16, 1), sg.Sigmoid())
    model = sg.compile(net, loss="bce", optimizer=sg.Adam(lr=0.01), seed=0)
    _banner("2. A network derived layer by layer (seed 001)")
    print(model.derivation.text())
    tex = model.derivation.to_tex(out_dir / "network_derivation.tex")
    print(f"  LaTeX written to {tex}")

    _banner("3. Proof checks")
    report = sg.check(model)
    print(report)

    _banner("4. Training with the compiled Numba kernels")
    X, y = _two_moons(2048, seed=0)
    Xv, yv = _two_moons(512, seed=1)
    hist = model.fit(X, y, epochs=epochs, batch_size=32, shuffle=True, seed=0,
                     validation_data=(Xv, yv), verbose=1)
    scores = model.evaluate(Xv, yv)
    print(f"  final loss {hist.history['loss'][-1]:.4f}; "
          f"validation accuracy {scores['accuracy']:.3f}")
    hist.plot(out_dir / "loss.png")
    print(f"  loss curve written to {out_dir / 'loss.png'}")


def run_demo(out_dir: Path, epochs: int) -> None:
    """Both parts of the demo, writing their files to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scalar_part(out_dir)
    network_part(out_dir, epochs)
