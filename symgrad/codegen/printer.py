"""Print derived SymPy expressions as Numba-compatible scalar Python.

The kernels in `symgrad.codegen.kernels` evaluate every elementwise chain in
a fused loop over array elements. Inside that loop each canonical symbol
(``z``, ``a``, ``p``, ``y``, ``lse``) is a local scalar; this printer turns
one plan expression into one Python expression over those locals.

Two rules keep the generated loops fast and honest:

* A node without a printing rule raises `UnsupportedExpressionError`; there
  is no slow fallback (object mode, ``sympy.lambdify``) to hide behind.
* In float32 every literal is wrapped as ``f32(...)``: Numba types a bare
  ``2`` as int64 and ``0.5`` as float64, and either would promote the whole
  loop body to float64.
* Elementary functions print as symgrad's own branch-free implementations
  for the dtype (``vm_tanh_f32``, `symgrad.codegen.vecmath`), not ``math.*``:
  a libm call per element keeps LLVM from vectorising the loop. So do powers
  other than small integers and square roots (``vm_pow_f64``), and erfc and exp of a
  constant times a variable (``vm_erfc_scaled_f64``, ``vm_exp_scaled_f64``) or of a
  product of two (``vm_exp_product_f64``: a Gaussian's -z*z), whose argument is carried
  as a double-double (see `symgrad.simplify.accuracy.exact_argument`).

>>> from symgrad.definition.formulas import Z
>>> print_expr(2 * Z + 1, {Z: "z"}, "float64")
'2.0*z + 1.0'
>>> print_expr(Z**2, {Z: "z"}, "float32")
'(z*z)'
>>> print_expr(1 / (1 + Z)**2, {Z: "z"}, "float64")
'1.0/((z + 1.0)*(z + 1.0))'
>>> print_expr(sp.Heaviside(Z, 0), {Z: "z"}, "float64")
'(1.0 if z > 0.0 else 0.0)'
>>> print_expr(Z**sp.Rational(3, 2) + sp.sin(Z), {Z: "z"}, "float64")
'vm_pow_f64(z, 1.5) + vm_sin_f64(z)'
>>> print_expr(sp.erfc(Z / sp.sqrt(2)), {Z: "z"}, "float32")
'vm_erfc_scaled_f32(z, f64(0.7071067811865476), f64(-4.833646656726457e-17))'
>>> print_expr(sp.exp(-Z / 3), {Z: "z"}, "float64")
'vm_exp_scaled_f64(z, -0.3333333333333333, -1.850371707708594e-17)'
>>> print_expr(sp.exp(-Z**2), {Z: "z"}, "float64")
'vm_exp_product_f64(z, 0.0, z, 0.0, -1.0, 0.0)'
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.printing.pycode import PythonCodePrinter

from symgrad.codegen import vecmath
from symgrad.simplify.accuracy import (
    affine_last,
    centred,
    coefficient_last,
    constant_last,
    double_double,
    exact_argument,
    hypot_argument,
    polynomial_argument,
)

__all__ = ["UnsupportedExpressionError", "NumbaScalarPrinter", "print_expr", "check_printable"]


def _erfc_of_negated(expr: sp.Piecewise) -> sp.Expr | None:
    """A, if ``expr`` is Piecewise((2 - erfc(A), A > 0), (erfc(|A|), True)), else None.

    That is erfc(-A) for every real A, written per sign by the simplify stage because
    SymPy turns erfc(-A) into 2 - erfc(A) on sight (`symgrad.simplify.stable`). A select
    evaluates both branches in a vectorised loop, i.e. erfc twice per element; the kernels'
    erfc takes negative arguments accurately (2 - erfc(|x|) inside), so one call does.

    >>> u = sp.Symbol("u", real=True)
    >>> _erfc_of_negated(sp.Piecewise((2 - sp.erfc(u), u > 0), (sp.erfc(sp.Abs(u)), True)))
    u
    >>> _erfc_of_negated(sp.Piecewise((2 - sp.erfc(u), u < 0), (sp.erfc(sp.Abs(u)), True)))
    """
    if len(expr.args) != 2 or expr.args[1].cond != sp.true:
        return None
    (first, cond), (second, _) = expr.args
    negative = sp.expand(2 - first)
    if not isinstance(negative, sp.erfc) or not isinstance(second, sp.erfc):
        return None
    a = negative.args[0]
    if sp.Abs(a) != second.args[0] or not isinstance(cond, sp.StrictGreaterThan) \
            or cond.rhs != 0 or not (a / cond.lhs).is_positive:
        return None
    return a


class UnsupportedExpressionError(TypeError):
    """An expression contains a node the kernel printer has no rule for."""


# Functions with a rule below. Anything else found in an expression is an
# error raised before any source is generated. Each maps to its SymPy name;
# names in `vecmath.FUNCTIONS` print as our vectorisable implementations
# (``vm_exp_f64``...), any other as Python's ``math`` module (a scalar libm
# call per element, which keeps LLVM from vectorising the loop; none today).
_MATH_FUNCS: dict[type, str] = {
    sp.exp: "exp",
    sp.log: "log",
    sp.tanh: "tanh",
    sp.sinh: "sinh",
    sp.cosh: "cosh",
    sp.sin: "sin",
    sp.cos: "cos",
    sp.atan: "atan",
    sp.tan: "tan",
    sp.asin: "asin",
    sp.acos: "acos",
    sp.asinh: "asinh",
    sp.acosh: "acosh",
    sp.atanh: "atanh",
    sp.erf: "erf",
    sp.erfc: "erfc",
    log1p: "log1p",
    expm1: "expm1",
}
_STRUCTURAL = (
    sp.Add, sp.Mul, sp.Pow, sp.Symbol, sp.Number, sp.NumberSymbol,
    sp.Piecewise, sp.Heaviside, sp.sign, sp.Abs, sp.Max, sp.Min,
    sp.core.relational.Relational, sp.logic.boolalg.BooleanTrue,
    sp.logic.boolalg.BooleanFalse, sp.And, sp.Or, sp.Not,
    # ITE, Xor, Implies, ...: piecewise_fold of a Piecewise inside a condition makes them
    # (huber on a LeakyReLU output); PythonCodePrinter writes them with and/or/not.
    sp.logic.boolalg.BooleanFunction,
)
_SMALL_INT_POWER = 4  # z**k for |k| <= 4 is printed as repeated products


def check_printable(expr: sp.Basic, where: str = "expression") -> None:
    """Raise `UnsupportedExpressionError` if any node of ``expr`` lacks a printing rule.

    >>> from symgrad.definition.formulas import Z
    >>> check_printable(sp.exp(Z) + sp.Abs(Z))
    >>> check_printable(sp.gamma(Z), "activation 'g'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symgrad.codegen.printer.UnsupportedExpressionError: activation 'g': no Numba ... gamma(z))
    """
    for node in sp.preorder_traversal(expr):
        if isinstance(node, _STRUCTURAL) or type(node) in _MATH_FUNCS:
            continue
        if getattr(node, "polynomial_branch", False):   # printed as its Horner form
            continue
        if isinstance(node, sp.functions.elementary.piecewise.ExprCondPair):
            continue
        raise UnsupportedExpressionError(
            f"{where}: no Numba printing rule for {type(node).__name__} (in {expr})"
        )


class NumbaScalarPrinter(PythonCodePrinter):
    """PythonCodePrinter for scalar Numba code with typed literals and mapped symbols.

    ``symbols`` maps each SymPy symbol to the local variable name used in the
    loop. ``dtype`` is "float64" or "float32"; in float32 every literal is
    emitted as ``f32(<value>)`` (the kernel module binds ``f32 = np.float32``).
    ``computed`` maps subexpressions the loop holds already (e.g. a row's
    ``log(acc)``) to the local that holds them: printed as that name, the formula's
    structure (and so the order its terms are rounded in) unchanged.
    """

    printmethod = "_numbacode"

    def __init__(self, symbols: dict[sp.Symbol, str], dtype: str = "float64",
                 computed: dict[sp.Expr, str] | None = None) -> None:
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        super().__init__({"fully_qualified_modules": True, "strict": True})
        self._symbols = dict(symbols)
        self._computed = dict(computed or {})
        self._f32 = dtype == "float32"
        self._dtype = dtype

    def _print(self, expr, **kwargs) -> str:
        name = self._computed.get(expr) if self._computed else None
        return name if name is not None else super()._print(expr, **kwargs)

    # -- literals -------------------------------------------------------
    def _lit(self, value: float) -> str:
        text = repr(float(value))
        return f"f32({text})" if self._f32 else text

    def _print_Integer(self, expr: sp.Integer) -> str:
        return self._lit(int(expr))

    _print_Zero = _print_One = _print_NegativeOne = _print_Integer

    def _print_Rational(self, expr: sp.Rational) -> str:
        return self._lit(float(expr))

    _print_Half = _print_Rational

    def _print_Float(self, expr: sp.Float) -> str:
        return self._lit(float(expr))

    def _print_NumberSymbol(self, expr: sp.NumberSymbol) -> str:
        return self._lit(float(expr.evalf(20)))

    _print_Exp1 = _print_Pi = _print_NumberSymbol

    def _print_BooleanTrue(self, expr: sp.Basic) -> str:
        return "True"

    def _print_BooleanFalse(self, expr: sp.Basic) -> str:
        return "False"

    def parenthesize(self, item: sp.Basic, level: int, strict: bool = False) -> str:
        # A non-negative literal prints as one token (``f32(0.5)``/``0.5``): no
        # parentheses needed, which keeps the kernel source readable.
        if isinstance(item, sp.Number) and item >= 0:
            return self._print(item)
        return super().parenthesize(item, level, strict)

    def _print_Add(self, expr: sp.Add, order: str | None = None) -> str:
        # c*u + d with a coefficient the dtype cannot hold: fma(P, u, R)/Q with integers
        # (`affine_last`); next to the root -d/c the rounding of c was the whole value.
        affine = affine_last(expr, self._dtype)
        if affine is not None:
            rest, u, constants = affine
            parts = ", ".join([self._print(u), *(self._double(v) for v in constants)])
            call = f"{vecmath.function_name('affine', self._dtype)}({parts})"
            return call if rest == 0 else f"({self._print(rest)} + {call})"
        # A constant the dtype cannot hold is added as hi + lo (`constant_last`): next to
        # a root of the sum its rounding was the whole value.
        split = constant_last(expr, self._dtype)
        if split is None:
            return super()._print_Add(expr, order)
        rest, hi, lo = split
        return f"(({self._print(rest)}) + {self._lit(hi)} + {self._lit(lo)})"

    def _print_Mul(self, expr: sp.Mul) -> str:
        # A coefficient above 1 multiplies last: -2*z*a overflowed at z = -9e307 (then
        # inf*0 = NaN) where z*a*2 is 0, as is its exact value (`coefficient_last`).
        split = coefficient_last(expr)
        if split is None:
            return super()._print_Mul(expr)
        coeff, rest = split
        sign = "-" if coeff < 0 else ""
        body = self.parenthesize(rest, sp.printing.precedence.PRECEDENCE["Mul"])
        return f"{sign}{body}*{self._print(abs(coeff))}"

    # -- symbols and functions -----------------------------------------
    def _print_Symbol(self, expr: sp.Symbol) -> str:
        try:
            return self._symbols[expr]
        except KeyError:
            known = ", ".join(sorted(str(s) for s in self._symbols))
            raise UnsupportedExpressionError(
                f"symbol {expr} is not available in this loop (available: {known})"
            ) from None

    def _print_Function(self, expr: sp.Function) -> str:
        name = _MATH_FUNCS.get(type(expr))
        if name is None:
            raise UnsupportedExpressionError(
                f"no Numba printing rule for {type(expr).__name__} (in {expr})"
            )
        if name in vecmath.FUNCTIONS:
            name = vecmath.function_name(name, self._dtype)
        else:
            name = f"math.{name}"
        return f"{name}({', '.join(self._print(arg) for arg in expr.args)})"

    # Route the functions PythonCodePrinter knows through our table so the
    # whitelist is the single source of what may appear in a kernel.
    _print_tanh = _print_sinh = _print_cosh = _print_Function

    def _print_log(self, expr: sp.log) -> str:
        hyp = hypot_argument(sp.sqrt(expr.args[0]))
        if hyp is None or hyp[2] != 1:
            return self._print_Function(expr)
        # log(u^2 + c) = 2 log(hypot(u, sqrt c)): u^2 overflows long before the log does
        name = vecmath.function_name("hypot", self._dtype)
        inner = f"{name}({self._print(hyp[0])}, {self._print(hyp[1])})"
        return f"{self._lit(2)}*{vecmath.function_name('log', self._dtype)}({inner})"
    _print_sin = _print_cos = _print_atan = _print_erf = _print_Function
    _print_tan = _print_asin = _print_acos = _print_Function
    _print_asinh = _print_acosh = _print_atanh = _print_Function
    _print_log1p = _print_expm1 = _print_Function

    def _print_exact_argument(self, expr: sp.erfc | sp.exp) -> str:
        poly = polynomial_argument(expr)
        if poly is not None:   # Horner's rule in double-double, one step per coefficient
            z, coeffs = poly
            x = self._print(z)
            acc = f"{vecmath.function_name('dd_const', self._dtype)}" \
                  f"({', '.join(self._double(v) for v in double_double(coeffs[0]))})"
            step = vecmath.function_name("dd_mad", self._dtype)
            for c in coeffs[1:]:
                hi, lo = double_double(c) if c != 0 else (0.0, 0.0)
                acc = f"{step}({acc}, {x}, {self._double(hi)}, {self._double(lo)})"
            name = vecmath.function_name(f"{type(expr).__name__}_poly", self._dtype)
            return f"{name}({acc})"
        exact = exact_argument(expr)
        if exact is None:
            return self._print_Function(expr)
        c, factors = exact
        hi, lo = double_double(c)
        form = "scaled" if len(factors) == 1 else "product"
        name = vecmath.function_name(f"{type(expr).__name__}_{form}", self._dtype)
        args = [self._print(factors[0])]
        if len(factors) == 2:   # each factor u + d with its constant d apart (a two-sum)
            parts = [centred(f) for f in factors]
            args = [text for u, d in parts for text in (self._print(u), self._double(float(d)))]
        args += [self._double(hi), self._double(lo)]
        return f"{name}({', '.join(args)})"

    _print_erfc = _print_exp = _print_exact_argument

    def _double(self, value: float) -> str:
        """A float64 constant, typed as one in float32 code too (an argument of a vm_*
        function that computes in float64: rounding it to float32 would lose it)."""
        return f"f64({value!r})" if self._f32 else repr(value)

    def _print_Abs(self, expr: sp.Abs) -> str:
        return f"abs({self._print(expr.args[0])})"

    def _minmax(self, expr: sp.Basic, fn: str) -> str:
        args = [self._print(arg) for arg in expr.args]
        out = args[0]
        for arg in args[1:]:  # nest: Numba's builtin max/min take two scalars cleanly
            out = f"{fn}({out}, {arg})"
        return out

    def _print_Max(self, expr: sp.Max) -> str:
        return self._minmax(expr, "max")

    def _print_Min(self, expr: sp.Min) -> str:
        return self._minmax(expr, "min")

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        x = self._print(expr.args[0])
        h0 = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
        one, zero = self._lit(1), self._lit(0)
        if h0 == 0:
            return f"({one} if {x} > {zero} else {zero})"
        if h0 == 1:
            return f"({one} if {x} >= {zero} else {zero})"
        mid = self._print(h0)
        return f"({one} if {x} > {zero} else ({mid} if {x} == {zero} else {zero}))"

    def _print_sign(self, expr: sp.sign) -> str:
        x = self._print(expr.args[0])
        one, zero = self._lit(1), self._lit(0)
        return f"({one} if {x} > {zero} else (-{one} if {x} < {zero} else {zero}))"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        negated = _erfc_of_negated(expr)
        if negated is not None:   # erfc(-A) spelled per sign: one call, not two
            return self._print(sp.erfc(-negated, evaluate=False))
        if expr.args[-1].cond != sp.true:
            raise UnsupportedExpressionError(
                f"Piecewise without a default branch cannot be compiled: {expr}"
            )
        out = self._print(expr.args[-1].expr)
        for branch, cond in reversed(expr.args[:-1]):
            out = f"({self._print(branch)} if {self._print(cond)} else {out})"
        return out

    def _print_ITE(self, expr: sp.ITE) -> str:
        cond, then, other = (self._print(arg) for arg in expr.args)
        return f"({then} if {cond} else {other})"

    def _print_Relational(self, expr: sp.core.relational.Relational) -> str:
        return f"{self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)}"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.args
        b = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Pow"])
        if exp.is_Integer and 0 < abs(int(exp)) <= _SMALL_INT_POWER:
            # Repeated products: exact, fast, and no int exponent to promote float32.
            # Parenthesised: the result may land in a denominator (x/(b*b), not x/b*b).
            prod = "*".join([b] * abs(int(exp)))
            if abs(int(exp)) > 1:
                prod = f"({prod})"
            return prod if exp > 0 else f"{self._lit(1)}/{prod}"
        hyp = hypot_argument(expr)
        if hyp is not None:
            # sqrt(u^2 + c) as hypot: u^2 overflows long before the root does
            u, v, n = hyp
            name = vecmath.function_name("hypot", self._dtype)
            h = f"{name}({self._print(u)}, {self._print(v)})"
            if not isinstance(n, int):   # (z^2 + 1)^(1/3): hypot(z, 1)^(2/3)
                return self._power(h, n)
            prod = "*".join([h] * abs(n))
            prod = f"({prod})" if abs(n) > 1 else prod
            return prod if n > 0 else f"{self._lit(1)}/{prod}"
        if exp == sp.Rational(1, 2):
            return f"math.sqrt({self._print(base)})"
        if exp == -sp.Rational(1, 2):
            return f"{self._lit(1)}/math.sqrt({self._print(base)})"
        # Any other power: C99 pow semantics (x < 0 with a non-integer y is NaN, an odd
        # integer y keeps the sign), vectorisable; the exponent is a literal of the dtype
        # like every other one.
        return self._power(self._print(base), exp)

    def _power(self, base: str, exp: sp.Expr) -> str:
        """vm_pow of printed ``base``; a constant exponent that float64 rounds (2/3, 1/pi)
        is passed as a double-double (`vm_pow_exact`): its rounding would cost
        |log x| 2^-54 relative, ~250 ulp at x = 1e304."""
        if exp.is_number and not _exact_in_float64(exp):
            hi, lo = double_double(exp)
            name = vecmath.function_name("pow_exact", self._dtype)
            return f"{name}({base}, {self._double(hi)}, {self._double(lo)})"
        return f"{vecmath.function_name('pow', self._dtype)}({base}, {self._print(exp)})"

    def _print_not_supported(self, expr: sp.Basic) -> str:
        raise UnsupportedExpressionError(
            f"no Numba printing rule for {type(expr).__name__}: {expr}")

    emptyPrinter = _print_not_supported


def _exact_in_float64(c: sp.Expr) -> bool:
    """True if the number ``c`` is a float64 exactly (a dyadic rational of 53 bits)."""
    if not c.is_Rational:
        return False
    q = int(c.q)
    return q & (q - 1) == 0 and abs(int(c.p)) < 2 ** 53


def print_expr(expr: sp.Basic, symbols: dict[sp.Symbol, str], dtype: str = "float64",
               computed: dict[sp.Expr, str] | None = None) -> str:
    """Print one scalar expression for a Numba loop body (``computed``: see the printer).

    >>> from symgrad.definition.formulas import Z
    >>> print_expr(sp.exp(-Z) / 2, {Z: "z"}, "float32")
    'f32(0.5)*vm_exp_f32(-z)'
    >>> print_expr(Z - sp.log(2 + Z), {Z: "z"}, computed={sp.log(2 + Z): "log_z2"})
    'z - log_z2'
    """
    check_printable(expr)
    return NumbaScalarPrinter(symbols, dtype, computed).doprint(sp.sympify(expr))
