"""Jupyter's rich displays: Derivation, Value and Model as Markdown / HTML with MathJax math.

Jupyter shows the richest format an object offers. A `Derivation` offers
HTML (``<h1>``/``<h2>`` headings, prose escaped, math between ``\\(...\\)``
and ``\\[...\\]`` for MathJax), Markdown (``#`` headings, ``$...$`` and
``$$...$$`` math) and true LaTeX (``\\section*``, for ``nbconvert --to pdf``).
A `Value` shows its graph as a table (node, definition, data, grad); a
`Model` its layers, parameters and derived gradient formulas.

>>> from symgrad.render.document import Derivation
>>> d = Derivation("Chain rule")
>>> _ = d.section("Start").add(text="The seed $x_1$:", math=r"\\frac{\\partial L}{\\partial L} = 1")
>>> print(derivation_html(d).splitlines()[1])
<h1>Chain rule</h1>
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from symgrad.definition.value import Value, install_value_html, op_of
from symgrad.derive.scalar import node_symbols
from symgrad.graph.scalar import graph_order
from symgrad.render.document import _aligned, equation_tag
from symgrad.render.scalar import tex

if TYPE_CHECKING:
    import numpy as np
    import sympy as sp

    from symgrad.definition.losses import LossEntry
    from symgrad.render.document import Derivation

_INLINE_MATH = re.compile(r"(\$[^$]+\$)")
# Characters Markdown would read as markup (emphasis, headings, links, HTML, tables).
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]<>#+!|~])")
# Graphs larger than this show only their root row (a table of thousands of rows helps nobody).
MAX_TABLE_NODES = 60


def _prose(text: str, math: str, escape: Callable[[str], str]) -> str:
    """Prose with its ``$...$`` math re-delimited: ``math`` is a format with one ``{}``."""
    out = []
    for part in _INLINE_MATH.split(text):
        if len(part) > 1 and part.startswith("$") and part.endswith("$"):
            out.append(math.format(_math(part[1:-1], escape)))
        else:
            out.append(escape(part))
    return "".join(out)


def _math(math: str, escape: Callable[[str], str]) -> str:
    """Math passes through, except that HTML needs ``<``, ``>`` and ``&`` as entities."""
    return html.escape(math, quote=False) if escape is _html else math


def _html(text: str) -> str:
    return html.escape(text, quote=False)


def escape_markdown(text: str) -> str:
    """Backslash-escape Markdown's markup characters in prose.

    >>> escape_markdown("Node L = d * f_1")
    'Node L = d \\\\* f\\\\_1'
    """
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def derivation_markdown(doc: Derivation) -> str:
    """The derivation as Markdown for Jupyter: escaped prose, ``$``/``$$`` MathJax math."""
    def prose(text: str) -> str:
        return _prose(text, "${}$", escape_markdown)

    numbers = doc.numbers()
    lines = [f"# {prose(doc.title)}", ""]
    if doc.intro:
        lines += [prose(doc.intro), ""]
    for sec in doc.ordered():
        lines += [f"## {prose(sec.heading)}", ""]
        for step in sec.steps:
            if step.text:
                lines += [prose(step.text), ""]
            if step.math:
                lines += ["$$", _aligned(step.math) + equation_tag(step, numbers), "$$", ""]
    return "\n".join(lines)


def derivation_html(doc: Derivation) -> str:
    """The derivation as an HTML fragment: headings, paragraphs, MathJax math."""
    def prose(text: str) -> str:
        return _prose(text, r"\({}\)", _html)

    numbers = doc.numbers()
    lines = ['<div class="symgrad-derivation">', f"<h1>{prose(doc.title)}</h1>"]
    if doc.intro:
        lines.append(f"<p>{prose(doc.intro)}</p>")
    for sec in doc.ordered():
        lines.append(f"<h2>{prose(sec.heading)}</h2>")
        for step in sec.steps:
            if step.text:
                lines.append(f"<p>{prose(step.text)}</p>")
            if step.math:
                math = _aligned(step.math) + equation_tag(step, numbers)
                lines.append(r"<p>\[" + _html(math) + r"\]</p>")
    lines.append("</div>")
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:.6g}"


def value_html(root: Value) -> str:
    """A Value as an HTML table of its graph: node, definition, data and grad.

    Grads are the nodes' own ``.grad`` (what the last ``backward`` left there).
    """
    order = graph_order(root)
    names = node_symbols(root)

    def name(node: Value) -> str:
        return _num(node.data) if node._const else tex(names[id(node)])

    truncated = len(order) > MAX_TABLE_NODES
    shown = [root] if truncated else [n for n in order if not n._const]
    rows = []
    for node in shown:
        if node.op is None:
            definition = "input"
        else:
            op = op_of(node)
            definition = r"\(" + _html(op.format([name(c) for c in node.operands],
                                                 node.params)) + r"\)"
        rows.append(f"<tr><td>\\({_html(name(node))}\\)</td><td>{definition}</td>"
                    f"<td>{_num(node.data)}</td><td>{_num(node.grad)}</td></tr>")
    note = f"<p>(a graph of {len(order)} nodes: only its root is listed)</p>" if truncated else ""
    return "\n".join([
        '<div class="symgrad-value">',
        f"<p><b>Value</b> \\({_html(name(root))}\\) = {_num(root.data)}, "
        f"grad = {_num(root.grad)}</p>",
        "<table><thead><tr><th>node</th><th>definition</th><th>data</th><th>grad</th>"
        "</tr></thead><tbody>", *rows, "</tbody></table>", note, "</div>",
    ])


class ModelView(Protocol):
    """What `model_html` reads of a `symgrad.Model`.

    Named here rather than imported: ``symgrad.model`` is the facade over every
    stage, and a stage imports no facade (``tests/test_stage_imports.py``).
    """

    net: Iterable[object]
    params: Mapping[str, np.ndarray]
    gradients: Mapping[str, sp.Expr]
    optimizer: object | None
    loss_entry: LossEntry
    dtype: np.dtype


def model_html(model: ModelView) -> str:
    """A Model as HTML: its layers, loss, optimizer, parameter shapes and derived gradients."""
    import sympy as sp

    layers = " → ".join(_html(str(layer)) for layer in model.net)
    rows = []
    for pname, value in model.params.items():
        formula = model.gradients.get(pname)
        grad = r"\(" + _html(sp.latex(formula)) + r"\)" if formula is not None else ""
        rows.append(f"<tr><td><code>{_html(pname)}</code></td><td>{value.shape}</td>"
                    f"<td>{value.size}</td><td>{grad}</td></tr>")
    total = sum(v.size for v in model.params.values())
    optimizer = _html(repr(model.optimizer)) if model.optimizer is not None else "none given"
    return "\n".join([
        '<div class="symgrad-model">',
        f"<p><b>Model</b>: {layers}</p>",
        f"<p>loss <code>{_html(model.loss_entry.name)}</code>, optimizer {optimizer}, "
        f"dtype {model.dtype.name}, {total} parameters</p>",
        "<table><thead><tr><th>parameter</th><th>shape</th><th>size</th>"
        "<th>derived gradient</th></tr></thead><tbody>", *rows, "</tbody></table>", "</div>",
    ])


__all__ = ["derivation_html", "derivation_markdown", "escape_markdown", "model_html",
           "value_html"]

# `Value` (definition stage) shows this table in Jupyter; the definition stage imports
# no later stage, so the render stage installs it there when imported.
install_value_html(value_html)
