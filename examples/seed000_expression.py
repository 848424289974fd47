"""Seed 000, first example: d = a*b + c rule by rule, then L = (a*b + c) * f back-propagated.

Run ``python examples/seed000_expression.py [--out DIR]``: prints the notes'
rule-by-rule derivatives of d = a*b + c (sum, constant and coefficient rules:
dd/da = b, dd/db = a, dd/dc = 1, each step computed by SymPy), then the
node-by-node backward pass of L and the gradients, and writes the graph as a PNG.
Expected gradients: a = 6, b = -4, c = -2, e = -2, d = -2, f = 4.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import symgrad as sg
from symgrad.render.scalar_rules import rule_derivation


def build() -> dict[str, sg.Value]:
    """The seed's graph, every node labelled as in the lecture notes."""
    a = sg.Value(2.0, label="a")
    b = sg.Value(-3.0, label="b")
    c = sg.Value(10.0, label="c")
    f = sg.Value(-2.0, label="f")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    L = d * f
    L.label = "L"
    return {"a": a, "b": b, "c": c, "e": e, "d": d, "f": f, "L": L}


def main(out_dir: str | Path | None = None) -> dict[str, float]:
    """Print the derivation and gradients, draw the graph; return the gradients by label."""
    nodes = build()
    # The notes first take d = a*b + c apart by hand: which rule applies to which term.
    print(rule_derivation(nodes["d"]).text())
    L = nodes["L"]
    L.backward()
    print(sg.derivation(L).text())
    print("dL/da symbolically:", sg.grad(L, nodes["a"]))
    grads = {name: node.grad for name, node in nodes.items()}
    print("gradients:", ", ".join(f"{k} = {v:g}" for k, v in grads.items()))
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="symgrad-"))
    png = sg.draw(L, out / "seed000_expression.png")
    print("graph drawn to", png)
    return grads


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="directory for the PNG (default: a temp dir)")
    main(parser.parse_args().out)
