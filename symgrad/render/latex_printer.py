"""SymPy printers that show the canonical scalar symbols as layer matrices.

The derive stage writes every elementwise formula in the canonical symbols
``z``, ``a``, ``p``, ``y`` (see `symgrad.definition.formulas`). When the
printout talks about layer 2, ``z`` must read ``Z_2`` and ``a`` must read
``A_1``; these printers do that renaming at print time so the expressions
themselves stay untouched (one source of truth). They also print the
Heaviside step and a 0/1 ``Piecewise`` as the Iverson bracket ``[x > 0]`` (the
ReLU mask) when its value at 0 is pinned to 0 or 1, which is what the kernel
computes; in plain text other ``Piecewise`` read as NumPy ``where``.

>>> import sympy as sp
>>> z, a = sp.Symbol("z", real=True), sp.Symbol("a", real=True)
>>> names = {z: ("Z_{1}", "Z1"), a: ("A_{1}", "A1")}
>>> layer_latex(1 - a**2, names)
'1 - A_{1}^{2}'
>>> layer_str(sp.Heaviside(z, 0), names)
'(Z1 > 0)'
>>> layer_str(sp.Piecewise((1, a > 0), (a + 1, True)), names)
'where(A1 > 0, 1, A1 + 1)'
>>> layer_str(sp.Matrix([[a, 1], [0, z]]), names)
'[[A1, 1], [0, Z1]]'
>>> layer_latex(sp.Heaviside(z, 1), names)
'\\\\left[Z_{1} \\\\geq 0\\\\right]'
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from symgrad.definition.exact import binary_parts, binary_text

# One entry per renamed symbol: (LaTeX, plain text). Kept as pairs so the
# LaTeX and text renderings can never disagree about which symbol is which.
SymbolNames = Mapping[sp.Symbol, tuple[str, str]]
# Matrix symbols of the matrix-form backward pass, by name: (LaTeX, plain text).
MatrixNames = Mapping[str, tuple[str, str]]


def _iverson_relation(expr: sp.Heaviside) -> str | None:
    """'>' or '>=' when H(x, h0) is exactly an Iverson bracket, else None."""
    h0 = expr.args[1] if len(expr.args) > 1 else None
    if h0 == 0:
        return ">"
    if h0 == 1:
        return ">="
    return None


def _binary_latex(x: sp.Rational) -> str | None:
    r"""``2^{124}`` / ``3 \cdot 2^{-40}`` for a number `binary_parts` splits, else None
    (a splice threshold of 2**124 printed in its 38 digits ran off the page)."""
    parts = binary_parts(x)
    if parts is None:
        return None
    m, e = parts
    power = f"2^{{{e}}}"
    return power if m == 1 else f"- {power}" if m == -1 else rf"{m} \cdot {power}"


def indicator_condition(expr: sp.Basic) -> sp.Basic | None:
    """The condition c when ``expr`` is the 0/1 Piecewise ``1 if c else 0``, else None.

    >>> x = sp.Symbol("x", real=True)
    >>> indicator_condition(sp.Piecewise((1, x > 0), (0, True)))
    x > 0
    >>> indicator_condition(sp.Piecewise((0, x > 0), (1, True)))
    x <= 0
    """
    if not isinstance(expr, sp.Piecewise) or len(expr.args) != 2:
        return None
    (v1, c1), (v2, c2) = expr.args
    if c2 != sp.true or {v1, v2} != {sp.S.Zero, sp.S.One}:
        return None
    return c1 if v1 == 1 else sp.Not(c1)


class LayerLatexPrinter(LatexPrinter):
    """LaTeX printer that renames symbols (``z -> Z_{2}``) and prints masks.

    ``names`` maps a SymPy symbol to its (LaTeX, text) display names; other
    symbols print as SymPy prints them.
    """

    def __init__(self, names: SymbolNames | None = None, settings: dict | None = None,
                 matrices: MatrixNames | None = None) -> None:
        super().__init__(settings or {})
        self._names = dict(names or {})
        self._matrices = dict(matrices or {})

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if expr in self._names:
            return self._names[expr][0]
        return super()._print_Symbol(expr, style)

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol, style: str = "plain") -> str:
        if expr.name in self._matrices:
            return self._matrices[expr.name][0]
        return super()._print_MatrixSymbol(expr)

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        return r" \odot ".join(self._print(arg) for arg in expr.args)

    def _print_Rational(self, expr: sp.Rational) -> str:   # Integer's too (no own method)
        return _binary_latex(expr) or super()._print_Rational(expr)

    def _print_Heaviside(self, expr: sp.Heaviside, exp: str | None = None) -> str:
        rel = _iverson_relation(expr)
        if rel is None:
            return super()._print_Heaviside(expr, exp)
        op = ">" if rel == ">" else r"\geq"
        tex = rf"\left[{self._print(expr.args[0])} {op} 0\right]"
        return rf"\left({tex}\right)^{{{exp}}}" if exp else tex

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        cond = indicator_condition(expr)
        if cond is None:
            return super()._print_Piecewise(expr)
        return rf"\left[{self._print(cond)}\right]"


class LayerStrPrinter(StrPrinter):
    """Plain-text twin of `LayerLatexPrinter`: ``Z1``, ``A1``, ``(Z1 > 0)``.

    Its output reads as NumPy code for the usual formulas (``1 - A1**2``,
    ``dA1 * (Z1 > 0)``), which is how the summary shows the backward pass.
    """

    def __init__(self, names: SymbolNames | None = None, settings: dict | None = None,
                 matrices: MatrixNames | None = None, row_sums: frozenset[str] = frozenset()
                 ) -> None:
        super().__init__(settings or {})
        self._names = dict(names or {})
        self._matrices = dict(matrices or {})
        self._row_sums = row_sums

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        if expr in self._names:
            return self._names[expr][1]
        return super()._print_Symbol(expr)

    def _print_Integer(self, expr: sp.Integer) -> str:
        return binary_text(expr)

    def _print_Rational(self, expr: sp.Rational) -> str:
        return binary_text(expr)

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        if expr.name in self._matrices:
            return self._matrices[expr.name][1]
        return super()._print_MatrixSymbol(expr)

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        # NumPy reading: `@` between matrices, a row of ones on the left is a column sum,
        # and a scalar 1/d becomes a division.
        factors = list(expr.args)
        scalar = sp.Mul(*[f for f in factors if not getattr(f, "is_Matrix", False)])
        mats = [f for f in factors if getattr(f, "is_Matrix", False)]
        if mats and isinstance(mats[0], sp.MatrixSymbol) and mats[0].name in self._row_sums:
            body = f"{self._print(sp.MatMul(*mats[1:]))}.sum(axis=0)"
        else:
            body = " @ ".join(self.parenthesize(m, 100) for m in mats)
        if scalar == 1:
            return body
        num, den = sp.fraction(scalar)
        if num == 1:
            den_txt = self._print(den)
            den_txt = f"({den_txt})" if not (den.is_Symbol or den.is_Integer) else den_txt
            return f"{body}/{den_txt}"
        return f"{self.parenthesize(scalar, 100)} * {body}"

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        return " * ".join(self.parenthesize(arg, 100) for arg in expr.args)

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        rel = _iverson_relation(expr)
        if rel is None:
            return super()._print_Heaviside(expr)
        return f"({self._print(expr.args[0])} {rel} 0)"

    def _print_MatrixBase(self, expr: sp.MatrixBase) -> str:
        # One line, so a Jacobian stays one line of the text rendering.
        rows = ", ".join("[" + ", ".join(self._print(e) for e in expr.row(i)) + "]"
                         for i in range(expr.rows))
        return f"[{rows}]"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # NumPy reading: a 0/1 Piecewise is a mask, others nest np.where.
        cond = indicator_condition(expr)
        if cond is not None:
            return f"({self._print(cond)})"
        *pieces, (last, last_cond) = expr.args
        out = self._print(last) if last_cond == sp.true else self._print_Basic(expr)
        for value, c in reversed(pieces):
            out = f"where({self._print(c)}, {self._print(value)}, {out})"
        return out


def layer_latex(expr: sp.Basic, names: SymbolNames | None = None) -> str:
    """LaTeX of ``expr`` with symbols renamed by ``names`` (see module doc)."""
    return LayerLatexPrinter(names).doprint(sp.sympify(expr))


def layer_str(expr: sp.Basic, names: SymbolNames | None = None) -> str:
    """Plain text of ``expr`` with symbols renamed by ``names``."""
    return LayerStrPrinter(names).doprint(sp.sympify(expr))


def matrix_latex(expr: sp.Basic, names: SymbolNames | None = None,
                 matrices: MatrixNames | None = None) -> str:
    """LaTeX of a matrix equation side, matrix symbols shown by ``matrices``."""
    return LayerLatexPrinter(names, matrices=matrices).doprint(expr)


def matrix_str(expr: sp.Basic, names: SymbolNames | None = None,
               matrices: MatrixNames | None = None, row_sums: frozenset[str] = frozenset()
               ) -> str:
    """NumPy-style text of a matrix equation side (``A1.T @ dZ2``, ``dZ2.sum(axis=0)``).

    ``row_sums`` names the row-of-ones symbols: ``ones @ M`` prints as a column sum.

    >>> n = sp.Symbol("n", positive=True, integer=True)
    >>> ones, dz = sp.MatrixSymbol("1_n", 1, n), sp.MatrixSymbol("dZ2", n, 3)
    >>> matrix_str(ones * dz, row_sums=frozenset({"1_n"}))
    'dZ2.sum(axis=0)'
    """
    return LayerStrPrinter(names, matrices=matrices, row_sums=row_sums).doprint(expr)
