"""The Numba scalar printer: every whitelisted function prints, evaluates right, and
float32 code carries no untyped literal; unknown nodes are errors, not fallbacks."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import sympy as sp

from symgrad.codegen import vecmath_kernels as vecmath
from symgrad.codegen.printer import UnsupportedExpressionError, check_printable, print_expr
from symgrad.definition.formulas import A, P, Y, Z
from symgrad.definition.supported import SUPPORTED_FUNCTIONS
from symgrad.derive.plan import LSE

SYMS = {Z: "z", A: "a", P: "p", Y: "y", LSE: "lse"}


def _call(func: type) -> sp.Expr:
    """A sample expression using ``func`` (arguments kept inside its domain)."""
    if func is sp.Piecewise:
        return sp.Piecewise((Z**2, Z > 0), (sp.Rational(1, 3) * (sp.exp(Z) - 1), True))
    if func in (sp.Max, sp.Min):
        return func(0, Z, Y)
    if func is sp.Heaviside:
        return sp.Heaviside(Z, 0) + sp.Heaviside(Z)
    if func is sp.log:
        return sp.log(1 + Z**2)
    if func is sp.acosh:
        return func(1 + Z**2 / 2)
    if func in (sp.asin, sp.acos, sp.atanh):   # |z/(1 + z^2)| <= 1/2
        return func(Z / (1 + Z**2))
    return func(Z / 2)


def _evaluate(code: str, z: float, y: float, f32: bool = False) -> float:
    env = {"math": math, "f32": np.float32, "f64": np.float64, "z": z, "y": y, "a": 0.3,
           "p": 0.4, "lse": 1.0}
    env.update({name: getattr(vecmath, name) for name in dir(vecmath) if name.startswith("vm_")})
    if f32:
        env.update(z=np.float32(z), y=np.float32(y))
    return float(eval(code, env))  # noqa: S307 - evaluating our own printed code


@pytest.mark.parametrize("func", sorted(SUPPORTED_FUNCTIONS, key=lambda f: f.__name__))
def test_every_supported_function_prints_and_matches_sympy(func: type) -> None:
    expr = _call(func)
    code = print_expr(expr, SYMS, "float64")
    for z, y in [(-1.3, 0.2), (0.0, -0.5), (0.7, 1.5), (2.5, 0.0)]:
        want = float(expr.subs({Z: z, Y: y}))
        assert _evaluate(code, z, y) == pytest.approx(want, rel=1e-14, abs=1e-14), code


def _inside_vm_call(code: str, at: int) -> bool:
    """Whether position ``at`` of ``code`` is a direct argument of a ``vm_*`` call."""
    depth = 0
    for i in range(at - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(code[i], 0)
        if depth < 0:
            return re.search(r"vm_\w+$", code[:i]) is not None
    return False


@pytest.mark.parametrize("func", sorted(SUPPORTED_FUNCTIONS, key=lambda f: f.__name__))
def test_float32_code_has_only_typed_literals(func: type) -> None:
    code = print_expr(_call(func) + 3 * Z**2 - sp.Rational(1, 7) / (1 + Z**2), SYMS, "float32")
    # Strip the typed literals f32(...); any number left would be int64/float64 in Numba.
    # float64 ones, f64(...), may only be arguments of a vm_*_f32 function that computes
    # in float64 (vm_affine_f32, vm_dd_mad_f32): there rounding them to float32 would lose them.
    assert all(_inside_vm_call(code, m.start()) for m in re.finditer(r"f64\(", code)), code
    bare = re.sub(r"f(?:32|64)\([-0-9.e+]+\)", "", code)
    assert not re.search(r"(?<![A-Za-z_0-9])[0-9]", bare), code  # vm_exp_f32 is a name
    value = _evaluate(code, 0.7, 0.2, f32=True)
    want = float((_call(func) + 3 * Z**2 - sp.Rational(1, 7) / (1 + Z**2)).subs({Z: 0.7, Y: 0.2}))
    assert value == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("func", sorted(SUPPORTED_FUNCTIONS, key=lambda f: f.__name__))
def test_no_libm_call_is_printed(func: type) -> None:
    """Every supported function prints as vecmath code (a libm call per element would keep
    the loop from vectorising); math.sqrt is an LLVM instruction, not a call."""
    for dtype in ("float64", "float32"):
        code = print_expr(_call(func) + Z**sp.Rational(2, 3), SYMS, dtype)
        assert not re.search(r"math\.(?!sqrt\()", code), code
        assert "**" not in code, code


def test_other_powers_print_as_vectorisable_pow() -> None:
    assert print_expr(Z**sp.Rational(3, 2), SYMS) == "vm_pow_f64(z, 1.5)"
    assert print_expr(Z**7, SYMS) == "vm_pow_f64(z, 7.0)"
    assert print_expr(2**Z, SYMS) == "vm_pow_f64(2.0, z)"
    assert print_expr(Z**Y, SYMS, "float32") == "vm_pow_f32(z, y)"
    assert print_expr(Z**sp.Rational(3, 2), SYMS, "float32") == "vm_pow_f32(z, f32(1.5))"
    # C99 pow: an odd integer power keeps the sign, a fractional power of x < 0 is NaN
    assert _evaluate(print_expr(Z**-5, SYMS), -1.5, 0.0) == pytest.approx((-1.5)**-5, rel=1e-15)
    assert math.isnan(_evaluate(print_expr(Z**sp.Rational(1, 3), SYMS), -8.0, 0.0))
    assert _evaluate(print_expr(Z**Y, SYMS), 0.0, -1.0) == math.inf


def test_erfc_of_a_constant_times_u_carries_the_product_exactly() -> None:
    """erfc(c*u) passes c as a double-double and u unrounded (GELU's far tail); a power of
    two as c is exact and prints the plain erfc."""
    gelu_tail = sp.erfc(sp.sqrt(2) * sp.Abs(Z) / 2)
    code = print_expr(gelu_tail, SYMS)
    assert code == "vm_erfc_scaled_f64(abs(z), 0.7071067811865476, -4.833646656726457e-17)"
    assert print_expr(sp.erfc(Z / 2), SYMS) == "vm_erfc_f64(0.5*z)"
    import mpmath
    with mpmath.workprec(200):
        exact = mpmath.erfc(mpmath.sqrt(2) * 30 / 2)
    got = _evaluate(code, -30.0, 0.0)
    assert abs(got - float(exact)) <= 4 * math.ulp(float(exact))
    rounded = _evaluate("vm_erfc_f64(0.7071067811865476*abs(z))", -30.0, 0.0)
    assert abs(rounded - float(exact)) > 50 * math.ulp(float(exact))   # why it matters


def test_small_integer_powers_become_products() -> None:
    assert print_expr(Z**3, SYMS) == "(z*z*z)"
    assert print_expr(1 / Z**2, SYMS) == "1.0/(z*z)"
    # A product in a denominator keeps its parentheses: x/(b*b), never x/b*b.
    code = print_expr(Z / (1 + sp.exp(-Z))**2, SYMS)
    assert _evaluate(code, 0.8, 0.0) == pytest.approx(0.8 / (1 + math.exp(-0.8))**2, rel=1e-15)
    assert print_expr(sp.sqrt(Z), SYMS) == "math.sqrt(z)"


def test_heaviside_convention_is_printed_as_written() -> None:
    at_zero = print_expr(sp.Heaviside(Z, 0), SYMS)
    half = print_expr(sp.Heaviside(Z), SYMS)
    assert _evaluate(at_zero, 0.0, 0.0) == 0.0
    assert _evaluate(half, 0.0, 0.0) == 0.5
    assert _evaluate(at_zero, 1e-300, 0.0) == 1.0


@pytest.mark.parametrize("expr", [sp.gamma(Z), sp.Function("f")(Z), sp.zeta(Z), sp.besselj(0, Z)])
def test_unknown_nodes_raise_instead_of_falling_back(expr: sp.Expr) -> None:
    with pytest.raises(UnsupportedExpressionError, match="no Numba printing rule"):
        print_expr(expr + Z, SYMS)
    with pytest.raises(UnsupportedExpressionError, match="activation 'g'"):
        check_printable(expr, "activation 'g'")


def test_unbound_symbol_and_partial_piecewise_raise() -> None:
    with pytest.raises(UnsupportedExpressionError, match="symbol q"):
        print_expr(sp.Symbol("q") + Z, SYMS)
    with pytest.raises(UnsupportedExpressionError, match="default branch"):
        print_expr(sp.Piecewise((Z, Z > 0)), SYMS)
    with pytest.raises(ValueError, match="dtype"):
        print_expr(Z, SYMS, "float16")


@pytest.mark.parametrize("expr,big", [(sp.sqrt(4 * Z**2 / 9 + 1), 2e200 / 3),
                                      (1 / sp.sqrt(2 * Z**2 + 3), 1 / (math.sqrt(2) * 1e200))])
def test_a_scaled_square_under_a_root_prints_as_hypot(expr, big: float) -> None:
    """sqrt(c u^2 + v^2) is hypot(sqrt(c) u, v): c z^2 overflows at |z| ~ 1e154 long before
    the root does (the formula gave inf and 0 at z = 1e200, where it is finite)."""
    code = print_expr(expr, SYMS)
    assert "vm_hypot_f64(" in code, code
    assert _evaluate(code, 1e200, 0.0) == pytest.approx(big, rel=1e-15)
    assert _evaluate(code, -0.7, 0.0) == pytest.approx(float(expr.subs(Z, -0.7)), rel=1e-15)
