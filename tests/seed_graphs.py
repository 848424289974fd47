"""Seed 000's two worked graphs, built once for every test that prints or checks them."""

from __future__ import annotations

import symgrad as sg

__all__ = ["seed000_loss", "neuron", "leaf"]


def seed000_loss() -> sg.Value:
    """L = (a*b + c) * f with a = 2, b = -3, c = 10, f = -2; e = a*b, d = e + c (labelled)."""
    a, b = sg.Value(2.0, label="a"), sg.Value(-3.0, label="b")
    c, f = sg.Value(10.0, label="c"), sg.Value(-2.0, label="f")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    L = d * f
    L.label = "L"
    return L


def neuron() -> sg.Value:
    """o = tanh(x1*w1 + x2*w2 + b), the notes' neuron (o = 0.7071)."""
    x1, x2 = sg.Value(2.0, label="x1"), sg.Value(0.0, label="x2")
    w1, w2 = sg.Value(-3.0, label="w1"), sg.Value(1.0, label="w2")
    b = sg.Value(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return o


def leaf(root: sg.Value, label: str) -> sg.Value:
    """The node of ``root``'s graph labelled ``label``."""
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if node.label == label:
            return node
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(node._prev)
    raise KeyError(label)
