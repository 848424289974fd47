"""Seed 003: derivatives from the limit definition, and sin with its derivative plotted.

Run ``python examples/seed003_limits.py [--out DIR]``: prints, for b = sin(a),
c = cos(a) and p = x^3, the local derivative derived from the limit
definition, every line computed by SymPy (for sin and cos: the angle-sum
formula, then sin h/h -> 1 and (cos h - 1)/h -> 0), writes the three
derivations as LaTeX, and plots sin and cos with their derivatives on
[0, 2 pi] as the notes do (25 points, as ``torch.linspace(0, 2*pi, 25)``).
Expected: db/da = cos(a), dc/da = -sin(a), dp/dx = 3*x**2.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import symgrad as sg


def build() -> dict[str, sg.Value]:
    """The three nodes, labelled: b = sin(a), c = cos(a), p = x**3."""
    a = sg.Value(math.pi / 6, label="a")
    x = sg.Value(1.5, label="x")
    b, c, p = a.sin(), a.cos(), x**3
    b.label, c.label, p.label = "b", "c", "p"
    return {"a": a, "x": x, "b": b, "c": c, "p": p}


def main(out_dir: str | Path | None = None) -> dict[str, object]:
    """Print the derivations, write them as .tex and the plots as PNG; return what came out."""
    nodes = build()
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="symgrad-"))
    derivatives, grads, files = {}, {}, []
    for name, leaf in (("b", "a"), ("c", "a"), ("p", "x")):
        node = nodes[name]
        doc = sg.derivation(node, steps="limit")
        print(doc.text())
        files.append(doc.to_tex(out / f"seed003_{name}.tex"))
        node.backward()
        derivatives[name] = str(sg.grad(node, nodes[leaf]))
        grads[name] = nodes[leaf].grad
    for name, method in (("sin", sg.Value.sin), ("cos", sg.Value.cos)):
        files.append(out / f"seed003_{name}.png")
        sg.plot_derivative(method, "a", interval=(0.0, 2 * math.pi), points=25, marker="o",
                           path=files[-1], title=f"{name}(a) and its derivative")
    print("derivatives:", ", ".join(f"d{k} = {v}" for k, v in derivatives.items()))
    print("at a = pi/6, x = 1.5:", ", ".join(f"{k}: {v:.4f}" for k, v in grads.items()))
    print("written:", ", ".join(str(f) for f in files))
    return {"derivatives": derivatives, "grads": grads, "files": files}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="directory for the files (default: a temp dir)")
    main(parser.parse_args().out)
