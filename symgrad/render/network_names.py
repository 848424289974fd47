"""How the network printout names and lays out things: layer matrices, shapes, rows.

Layers are numbered from 1 as in the lecture notes (``dense0`` is layer 1);
``A_0`` is the input ``X``. The canonical scalar symbols of a formula are
renamed per layer at print time (``z -> Z_2``), see `layer_names`.

>>> mat("Z", 2), mat("A", 0), shape("n", 3)[1]
(('Z_2', 'Z2'), ('X', 'X'), '(n x 3)')
"""

from __future__ import annotations

import sympy as sp

from symgrad.definition.formulas import A, P, Y, Z
from symgrad.derive.plan import LSE, SUMEXP, ZMAX
from symgrad.render.document import Section
from symgrad.render.latex_printer import SymbolNames

N = sp.Symbol("n", positive=True, integer=True)  # batch size, for the loss scale


def mat(letter: str, j: int) -> tuple[str, str]:
    """(LaTeX, text) name of a layer matrix; A_0 is the input X."""
    if letter == "A" and j == 0:
        return "X", "X"
    sub = str(j) if j < 10 else f"{{{j}}}"
    return f"{letter}_{sub}", f"{letter}{j}"


def mtex(letter: str, j: int) -> str:
    """LaTeX name only (for inline math in prose)."""
    return mat(letter, j)[0]


def dmat(letter: str, j: int) -> tuple[str, str]:
    tex, txt = mat(letter, j)
    return f"d{tex}", f"d{txt}"


def shape(rows: object, cols: object) -> tuple[str, str]:
    return rf"({rows} \times {cols})", f"({rows} x {cols})"


def layer_names(j: int, last: bool) -> SymbolNames:
    """Symbol renaming for formulas of layer j (activation, or output when last)."""
    names: dict[sp.Symbol, tuple[str, str]] = {Z: mat("Z", j), A: mat("A", j)}
    if last:
        names[LSE] = (rf"\operatorname{{lse}}({mtex('Z', j)})", f"lse(Z{j})")
        # The softmax row's max and sum of exponentials: words, typeset upright (a
        # multi-letter italic name reads as a product of letters).
        names[ZMAX] = (r"\mathrm{zmax}", "zmax")
        names[SUMEXP] = (r"\mathrm{sumexp}", "sumexp")
    return names


def matrix_names(last: int) -> SymbolNames:
    """Names for the output formulas in the matrix summary: P, Y, Z_L."""
    names = dict(layer_names(last, last=True))
    names.update({P: ("P", "P"), Y: ("Y", "Y")})
    return names


def function_tex(latex_name: str, name: str) -> str:
    # The registry's LaTeX name may be a macro (\tanh) or a bare word.
    if latex_name.startswith("\\"):
        return latex_name
    return rf"\operatorname{{{latex_name or name}}}"


def parenthesize(tex: str, txt: str, expr: sp.Expr) -> tuple[str, str]:
    """Parenthesise a factor that is a sum, for products like dA (.) f'."""
    if isinstance(expr, sp.Add):
        return rf"\left({tex}\right)", f"({txt})"
    return tex, txt


ROWS_PER_DISPLAY = 8   # a display cannot break across pages; deep nets get several


def add_rows(sec: Section, rows: list[tuple[str, str]], text: str = "") -> None:
    """Add aligned rows (LaTeX with one ``&``, text) as displays of a page-friendly height."""
    for start in range(0, len(rows), ROWS_PER_DISPLAY):
        chunk = rows[start:start + ROWS_PER_DISPLAY]
        sec.add(text=text if start == 0 else "", math=r" \\ ".join(t for t, _ in chunk),
                plain="\n".join(t for _, t in chunk))
