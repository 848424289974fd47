"""Seed 000, second example: one tanh neuron o = tanh(x1*w1 + x2*w2 + b).

Run ``python examples/seed000_neuron.py [--out DIR]``: prints the derivation
(with the limit-definition steps, where tanh's derivative ends as 1 - o^2)
and the gradients, and writes the graph as a PNG. Expected: o = 0.7071,
n.grad = 0.5, x1.grad = -1.5, w1.grad = 1, x2.grad = 0.5, w2.grad = 0.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import symgrad as sg

# The bias the notes choose so that n = 0.8813..., where tanh(n) = 1/sqrt(2).
BIAS = 6.8813735870195432


def build() -> dict[str, sg.Value]:
    """The neuron, labelled as in the lecture notes."""
    x1 = sg.Value(2.0, label="x1")
    x2 = sg.Value(0.0, label="x2")
    w1 = sg.Value(-3.0, label="w1")
    w2 = sg.Value(1.0, label="w2")
    b = sg.Value(BIAS, label="b")
    x1w1 = x1 * w1
    x1w1.label = "x1w1"
    x2w2 = x2 * w2
    x2w2.label = "x2w2"
    x1w1x2w2 = x1w1 + x2w2
    x1w1x2w2.label = "x1w1x2w2"
    n = x1w1x2w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return {"x1": x1, "x2": x2, "w1": w1, "w2": w2, "b": b, "x1w1": x1w1, "x2w2": x2w2,
            "x1w1x2w2": x1w1x2w2, "n": n, "o": o}


def main(out_dir: str | Path | None = None) -> dict[str, float]:
    """Print the derivation (limit steps included) and gradients; return the gradients."""
    nodes = build()
    o = nodes["o"]
    o.backward()
    print(sg.derivation(o, steps="limit").text())
    print(f"o = {o.data:.4f}")
    grads = {name: node.grad for name, node in nodes.items()}
    print("gradients:", ", ".join(f"{k} = {v:.4g}" for k, v in grads.items()))
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="symgrad-"))
    png = sg.draw(o, out / "seed000_neuron.png")
    print("graph drawn to", png)
    return grads


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="directory for the PNG (default: a temp dir)")
    main(parser.parse_args().out)
