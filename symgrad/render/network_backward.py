"""The matrix-form backward pass of the network printout, read from the plan.

`BackwardEquations` holds the plan's equations ``(lhs, rhs)`` (``dW2 = A1.T*dZ2``
...) and how each matrix symbol is shown; the Dense sections print single
lines from it and `summary_section` prints all of them in order, as LaTeX and
as NumPy code lines, each tagged with its plan key (the name of its left side).
`kernel_appendix` lists every numbered equation beside the lines of the kernel
source that cite its key (``# [eq dW2]``, written by the kernel generator).
"""

from __future__ import annotations

import re

import sympy as sp

from symgrad.derive.network import matrix_backward
from symgrad.derive.plan import UPDATE_KEY, NetworkPlan, citing_key
from symgrad.render import network_features as features
from symgrad.render.document import Derivation
from symgrad.render.latex_printer import layer_latex, layer_str, matrix_latex, matrix_str
from symgrad.render.network_names import (
    N,
    add_rows,
    layer_names,
    mat,
    matrix_names,
    mtex,
    parenthesize,
)


class BackwardEquations:
    """The plan's backward equations by left-hand side name, with their display names.

    Plans without the optional ``backward`` field get the derive stage's own
    matrix rules (`symgrad.derive.network.matrix_backward`) for the same dims.
    """

    def __init__(self, plan: NetworkPlan) -> None:
        dims = [(layer.in_dim, layer.out_dim, layer.bias) for layer in plan.layers]
        head_input = ("F", True) if plan.features else ()   # the head reads the features F
        rules = matrix_backward(dims, plan.output.reduction, *head_input)[1]
        self.equations = tuple(plan.backward or rules)
        self._by_name = {lhs.name: (lhs, rhs) for lhs, rhs in rules}
        self._by_name.update({lhs.name: (lhs, rhs) for lhs, rhs in self.equations})
        self.matrices, self.row_sums = _matrix_display(plan, self._by_name.values())

    def line(self, name: str) -> tuple[str, str]:
        """(LaTeX, NumPy text) of the equation whose left side is ``name`` (e.g. "dW2")."""
        return self.render(*self._by_name[name])

    def render(self, lhs: sp.Expr, rhs: sp.Expr) -> tuple[str, str]:
        tex = f"{matrix_latex(lhs, matrices=self.matrices)} = " \
              f"{matrix_latex(rhs, matrices=self.matrices)}"
        txt = f"{matrix_str(lhs, matrices=self.matrices)} = " \
              f"{matrix_str(rhs, matrices=self.matrices, row_sums=self.row_sums)}"
        return tex, txt


def summary_section(doc: Derivation, plan: NetworkPlan, eqs: BackwardEquations) -> None:
    """The plan's matrix-form backward equations, in order, as LaTeX and as NumPy lines."""
    L = len(plan.layers)
    scale = 1 / N if plan.output.reduction == "rows" else 1 / (N * plan.output_dim)
    sec = doc.section("Summary: the backward pass as code")
    text = (f"With $dZ_j = dL/dZ_j$, the loss scale ${sp.latex(scale)}$ of the batch mean "
            f"times the output error of Step C on the matrices of layer {L}, and the "
            "elementwise product (* in NumPy), the backward pass is these lines, in this "
            "order (the plain-text version is NumPy); each is one statement of the kernel:")
    for lhs, rhs in eqs.equations:
        # One display per statement, tagged with its key: the kernel line cites it.
        tex, txt = eqs.render(lhs, rhs)
        sec.add(text=text, math=tex, plain=txt, tag=lhs.name)
        text = ""
    if plan.features:
        add_rows(sec, features.summary_rows(plan), text=(
            "Then on from $dF$ through the image layers, last layer first: each line is a rule "
            "of the layer's kind, written in this network's tensors (the kernel runs them as "
            "shape-generic loops):"))
    sec.add(text="Saved from the forward pass: " + ", ".join(_saved_values(plan)) + ".")


def _matrix_display(plan: NetworkPlan, eqs) -> tuple[dict[str, tuple[str, str]], frozenset]:
    """How each matrix symbol of the backward equations is shown.

    ``Delta`` is the output error (the plan's delta on the matrices P, Y, Z_L),
    ``D<j>`` the derivative of layer j's activation, a (1 x n) symbol the row of
    ones; any other name ``dZ2`` reads ``dZ_2``.
    """
    L = len(plan.layers)
    shown: dict[str, tuple[str, str]] = {}
    row_sums = set()
    symbols = set().union(*[lhs.atoms(sp.MatrixSymbol) | rhs.atoms(sp.MatrixSymbol)
                            for lhs, rhs in eqs])
    for sym in symbols:
        name, digits = sym.name, re.fullmatch(r"([A-Za-z]+)(\d+)", sym.name)
        if name == "Delta":
            delta = plan.output.delta
            shown[name] = parenthesize(layer_latex(delta, matrix_names(L)),
                                       layer_str(delta, matrix_names(L)), delta)
        elif digits and digits.group(1) == "D":
            j = int(digits.group(2))
            act = plan.layers[j - 1].activation
            deriv = act.derivative if act is not None else sp.S.One
            shown[name] = parenthesize(layer_latex(deriv, layer_names(j, last=False)),
                                       layer_str(deriv, layer_names(j, last=False)), deriv)
        elif sym.shape[0] == 1 and not sym.shape[1].is_number:
            shown[name] = (r"\mathbf{1}_n^{T}", name)
            row_sums.add(name)
        elif digits:
            shown[name] = mat(digits.group(1), int(digits.group(2)))
    return shown, frozenset(row_sums)


def _saved_values(plan: NetworkPlan) -> list[str]:
    """Forward values the backward pass reads, from the plan's `saved` fields."""
    L = len(plan.layers)
    saved = ["$X$ (input of layer 1, for $dW_1$)"]
    if plan.features:
        saved = [*features.saved_values(plan), "$F$ (input of layer 1, for $dW_1$)"]
    for layer in plan.layers[:-1]:
        j = layer.index + 1
        act = layer.activation
        reads = act.saved if act is not None else ()
        if "z" in reads:
            saved.append(f"${mtex('Z', j)}$ (read by $f'$ of layer {j})")
        why = f"input of layer {j + 1}" + (f", read by $f'$ of layer {j}" if "a" in reads else "")
        saved.append(f"${mtex('A', j)}$ ({why})")
    uses = plan.output.delta_uses
    if "p" in uses:
        saved.append("$P$ (read by the output error)")
    if "z" in uses:
        saved.append(f"${mtex('Z', L)}$ (read by the output error)")
    return saved




_CITATION = re.compile(r"#.*\[eq ([^\]]+)\]")


def kernel_lines(source: str) -> dict[str, list[tuple[int, str]]]:
    """Key -> [(line number, code)] of every kernel line citing it in a ``# [eq ...]`` comment.

    >>> kernel_lines("x = 1\\n_mm(A0, D1, gW1)  # [eq dW2]\\n")
    {'dW2': [(2, '_mm(A0, D1, gW1)')]}
    """
    found: dict[str, list[tuple[int, str]]] = {}
    for number, line in enumerate(source.splitlines(), start=1):
        match = _CITATION.search(line)
        if match is None:
            continue
        code = line[:line.index("#")].strip()
        for key in match.group(1).split():
            found.setdefault(key, []).append((number, code))
    return found


def kernel_appendix(doc: Derivation, source: str, dense_layers: int) -> None:
    """Each numbered equation with a key beside the kernel lines that implement it.

    The Dense chain runs as one loop, whose lines cite layer-generic keys (``dW_l``):
    each layer's equation is resolved to them (`symgrad.derive.plan.citing_key`).
    """
    lines = kernel_lines(source)
    steps = {}
    for part in doc.ordered():
        for step in part.steps:
            if step.tag and step.math:
                steps.setdefault(step.tag, step)
    sec = doc.appendix("each equation beside its kernel line")
    sec.add(text=("The kernel module (model.source, the file model.export writes) names in a "
                  "comment, [eq key], the equations each statement implements; the key is "
                  "the one the printout gives the equation. The Dense layers run in one "
                  "loop over the layers, whose lines cite every layer's equation at once "
                  "(key dW_l: the dW of each layer l; dZ_L: the output layer's error). "
                  "Line numbers are those of model.source."))
    for key, number in sorted(doc.equation_numbers().items(), key=lambda item: item[1]):
        cited = lines.get(key) or lines.get(citing_key(key, dense_layers), [])
        where = "no kernel line"
        if cited:
            # The first line in full; the same statement repeated (one call per
            # parameter, the same call in another entry point) by line number.
            where = f"line {cited[0][0]}: `{cited[0][1]}`"
            if len(cited) > 1:
                where += ", also line" + ("s " if len(cited) > 2 else " ") + ", ".join(
                    str(k) for k, _ in cited[1:])
        shown = inline_equation(steps[key].math, last=key == UPDATE_KEY)
        sec.add(text=f"({number}) " + (f"${shown}$ " if shown else "") + f"[eq {key}], {where}")


INLINE_LIMIT = 80   # characters of LaTeX: longer equations are cited by number and key only


def inline_equation(math: str, last: bool = False) -> str:
    r"""A display's equation as short inline math (rows without their shape notes), or "".

    ``last``: only the last row (an update rule ends in the step itself).

    >>> inline_equation(r"dW_{2} = A_{1}^{T} dZ_{2} \qquad (8 \times n)")
    'dW_{2} = A_{1}^{T} dZ_{2}'
    """
    if any(cmd in math for cmd in (r"\begin", r"\underbrace", r"\text")):
        return ""
    rows = [re.split(r"\\q?quad", row.replace("&", ""))[0].strip().rstrip(",")
            for row in math.split(r"\\")]
    if any(row.count("{") != row.count("}") for row in rows):
        return ""   # a "\\" inside a group (\substack): no clean rows to cut
    rows = rows[-1:] if last else rows
    joined = r", \; ".join(rows)
    if len(joined) <= INLINE_LIMIT:
        return joined
    return rows[0] if len(rows[0]) <= INLINE_LIMIT else ""
