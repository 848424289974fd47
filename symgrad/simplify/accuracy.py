"""How accurate is an evaluation form? Measured in float32 and float64 against mpmath.

An exact identity can still be a bad formula to evaluate: ``(1 + tanh(z/2))/2`` is
the logistic function, but it returns 0 in float32 at z = -20 (exact 2.06e-9);
``(z + e^z + 1)/(2 cosh(z/2)^2)`` is Swish's slope, but it is inf/inf once e^z
overflows. The simplify stage therefore *measures* every candidate form it may
choose (forward value, derivative, fused output delta):

* the candidate is evaluated operation by operation in the target dtype
  (`evaluate`: NumPy ufuncs, literals cast to the dtype, as a kernel does);
* the reference is the *original* formula in 50-digit arithmetic (mpmath), kept
  as a double-double (hi + lo) so float64 errors are measured exactly;
* the points cover the whole range: |z| log-spaced from 1e-6 to the dtype's largest
  number, a dense band where exponentials over- and underflow, both signs
  (`sample_points`).

The error is counted in ulps of ``max(|exact|, floor)``: ``floor = 0`` is a
relative measure (forward values, where the exact value is a normal number);
``floor = 1`` is the derivative measure ("a few ulp of max(|f'|, 1)"). A
candidate that is inf/NaN where the exact value is finite scores inf.

>>> z = sp.Symbol("z", real=True)
>>> exact = 1 / (1 + sp.exp(-z))
>>> worst_error(1 / (1 + sp.exp(-z)), exact, "float32").ulps <= 4
True
>>> worst_error((1 + sp.tanh(z / 2)) / 2, exact, "float32").ulps > 1000
True
"""

from __future__ import annotations

import math
import operator
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, reduce

import mpmath
import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.core.relational import Relational

from symgrad.definition.exact import MAX_BITS, binary_text, converged, mp_function
from symgrad.definition.formulas import Z
from symgrad.simplify.op_count import evaluation_cost
from symgrad.simplify.series import TaylorPolynomial, remainder_within, taylor_candidates

DTYPES = ("float32", "float64")


def _libm(fn):
    """A math-module function (the C library's, as Numba's kernels call it) on arrays.

    For erf/erfc: SciPy's (Cephes) erfc is off by ~x**2 ulp in its tail (it rounds x*x
    before the exp); glibc's, which the kernels call, is not.
    """
    def call(x):
        x = np.asarray(x)
        out = np.vectorize(fn, otypes=[np.float64])(x.astype(np.float64))
        return out.astype(x.dtype)
    return call


_erf_np, _erfc_np = _libm(math.erf), _libm(math.erfc)


def exact_argument(expr: sp.Basic) -> tuple[sp.Expr, tuple[sp.Expr, ...]] | None:
    """(c, factors) if ``expr`` is erfc or exp of c * u (* v) whose product rounds.

    Such a function is evaluated with its argument as a double-double (hi + lo), here and
    in the kernels (`symgrad.codegen.printer` asks this function): rounding the argument
    first costs erfc up to ~x^2 ulp in its tail (its condition number is ~2x^2), e.g.
    970 ulp in GELU's z*erfc(-z/sqrt(2))/2 at z = -38, and exp up to |x|/2 ulp (its
    condition number is |x|), e.g. 65 ulp in log(1 + e^(3z))/3 at z = -70 and 370 ulp in
    a Gaussian e^(-z^2) at z = 27. One variable factor u with a constant c that is not a
    power of two (a power of two is exact: no match) is the scaled form; two (u*v, or
    u**2 as u*u) the product form, with any constant. The factors' own rounding stays:
    only the products are carried exactly (in e^(-(z - 1)^2), z - 1 still rounds).

    >>> z = sp.Symbol("z", real=True)
    >>> exact_argument(sp.erfc(sp.sqrt(2) * sp.Abs(z) / 2))
    (sqrt(2)/2, (Abs(z),))
    >>> exact_argument(sp.exp(-3 * z)), exact_argument(sp.exp(-z**2 / 2))
    ((-3, (z,)), (-1/2, (z, z)))
    >>> exact_argument(sp.erfc(z / 2)) is None, exact_argument(sp.exp(-z)) is None
    (True, True)
    """
    if not isinstance(expr, (sp.erfc, sp.exp)):
        return None
    arg = expr.args[0]
    if not arg.free_symbols:
        return None
    c, u = arg.as_independent(*arg.free_symbols, as_Add=False)
    if not c.is_number or not c.is_nonzero:
        return None
    factors = _product_factors(u)
    if len(factors) == 2:
        if any(_rounds_as_polynomial(centred(f)[0]) for f in factors):
            return None   # e^(-(z^2 - 1)^2): z^2 rounds; `polynomial_argument` carries it
        return c, factors
    if c.is_Rational and all(v & (v - 1) == 0 for v in (abs(c.p), c.q)):
        return None
    if isinstance(u, sp.Add):
        return None   # u itself rounds: `polynomial_argument`'s, where it is a polynomial
    return c, (u,)


def _rounds_as_polynomial(u: sp.Expr) -> bool:
    """True if u is a polynomial in one symbol that a kernel rounds (not the bare symbol)."""
    return (len(u.free_symbols) == 1 and not u.is_Symbol
            and u.is_polynomial(*u.free_symbols))


def polynomial_argument(expr: sp.Basic) -> tuple[sp.Symbol, tuple[sp.Expr, ...]] | None:
    """(z, coefficients, leading first) if ``expr`` is erfc or exp of a polynomial in one
    symbol z that `exact_argument` does not carry: the kernels evaluate it by Horner's rule
    in double-double (`vm_dd_mad_f64`), so none of its roundings reaches the exponential.
    GELU's tanh form 1/(1 + e^(-2c(z + 0.044715 z^3))) was 551 ulp off at z = -21
    (float64), e^(z - 1) up to |z|/2 ulp.

    >>> z = sp.Symbol("z", real=True)
    >>> polynomial_argument(sp.exp(-2 * (z + z**3 / 4)))
    (z, (-1/2, 0, -2, 0))
    >>> polynomial_argument(sp.exp(-z**2)) is None   # exact_argument's product form
    True
    """
    if not isinstance(expr, (sp.erfc, sp.exp)) or exact_argument(expr) is not None:
        return None
    arg = expr.args[0]
    if len(arg.free_symbols) != 1:
        return None
    (z,) = arg.free_symbols
    if not isinstance(z, sp.Symbol):
        return None
    try:
        poly = sp.Poly(arg, z)
    except sp.PolynomialError:
        return None
    coeffs = tuple(sp.nsimplify(c) if isinstance(c, sp.Float) else c
                   for c in poly.all_coeffs())
    if not all(c.is_number for c in coeffs):
        return None
    nonzero = sum(1 for c in coeffs if c != 0)
    if poly.degree() < 1 or (nonzero < 2 and poly.degree() <= 2):
        return None
    return z, coeffs


def _product_factors(u: sp.Expr) -> tuple[sp.Expr, ...]:
    """u as two factors whose product a kernel rounds (u*v, u**2), else (u,).

    A quotient (a factor with a negative power) is not split: the division rounds
    anyway. Three or more factors are not split either (not written yet).
    """
    factors: list[sp.Expr] = []
    for f in sp.Mul.make_args(u):
        base, ex = f.as_base_exp()
        if ex == 2:
            factors += [base, base]
        elif ex.is_number and ex.is_negative:
            return (u,)
        else:
            factors.append(f)
    return tuple(factors) if len(factors) == 2 else (u,)


def centred(factor: sp.Expr) -> tuple[sp.Expr, sp.Rational]:
    """(u, d) with ``factor`` = u + d, d a number exact in float32 (0 if there is none):
    the kernels add d exactly (a two-sum), so e^(-(z - 1)^2) does not round z - 1.

    >>> z = sp.Symbol("z", real=True)
    >>> centred(z - 1), centred(z + sp.Rational(1, 3)), centred(2 * z)
    ((z, -1), (z + 1/3, 0), (2*z, 0))
    """
    if isinstance(factor, sp.Add):
        d, u = factor.as_independent(*factor.free_symbols, as_Add=True)
        if isinstance(d, sp.Rational) and d != 0 and _held_by(d, "float32"):
            return u, d
    return factor, sp.Integer(0)


def _held_by(c: sp.Rational, dtype: str) -> bool:
    """Whether the rational ``c`` is a number of ``dtype`` (a dyadic rational that fits)."""
    q = int(c.q)
    bits = 24 if dtype == "float32" else 53
    return q & (q - 1) == 0 and abs(int(c.p)) < 2 ** bits


def hypot_argument(expr: sp.Pow) -> tuple[sp.Expr, sp.Expr, sp.Rational] | None:
    """(u, v, n) if ``expr`` is (u^2 + v^2)^(n/2) for a non-integer rational n/2, v a
    positive number or a square: a kernel evaluates it as hypot(u, v)^n, so u^2 cannot
    overflow (ISRU's z/sqrt(z^2 + 1) was z/inf = 0 past z = 1.3e154, where it is +-1,
    and z/(z^2 + 1)^(1/3) likewise).

    >>> z = sp.Symbol("z", real=True)
    >>> hypot_argument(1 / sp.sqrt(z**2 + 4)), hypot_argument((z**2 + 1)**sp.Rational(1, 3))
    ((z, 2, -1), (z, 1, 2/3))
    >>> hypot_argument(sp.sqrt(4*z**2/9 + 1))
    (2*z/3, 1, 1)
    >>> hypot_argument(sp.sqrt(z**2 - 1)) is None
    True
    """
    base, ex = expr.as_base_exp()
    if not (isinstance(base, sp.Add) and len(base.args) == 2 and ex.is_Rational
            and not ex.is_Integer):
        return None
    sides = []
    for term in base.args:
        coeff, rest = term.as_coeff_Mul()
        if term.is_number and term.is_positive:
            sides.append(sp.sqrt(term))
        elif isinstance(rest, sp.Pow) and rest.exp == 2 and coeff.is_positive:
            # c w^2 = (sqrt(c) w)^2: one rounding in u, to which hypot(u, v) is not sensitive
            sides.append(rest.base if coeff == 1 else sp.sqrt(coeff) * rest.base)
        else:
            return None
    if all(s.is_number for s in sides):
        return None
    if sides[0].is_number:
        sides.reverse()
    n = 2 * ex
    return sides[0], sides[1], (int(n) if n.is_Integer else n)


def coefficient_last(expr: sp.Mul) -> tuple[sp.Rational, sp.Expr] | None:
    """(c, rest) if the product c * rest should multiply its coefficient in last.

    A kernel evaluates c*u*v left to right, and c*u overflows where u is near the
    largest number even though c*u*v is small (a Gaussian's slope -2*z*e^(-z^2): inf*0
    = NaN at z = -9e307). A coefficient |c| > 1 in front of two or more factors goes
    last instead (printer and `evaluate` alike); one below 1 stays first, where it
    makes the running product smaller.

    >>> z, a = sp.symbols("z a", real=True)
    >>> coefficient_last(-2 * z * a)
    (-2, a*z)
    >>> coefficient_last(z * a / 2) is None, coefficient_last(3 * z) is None
    (True, True)
    """
    coeff, rest = expr.as_coeff_Mul()
    if not isinstance(coeff, sp.Rational) or abs(coeff) <= 1 or len(sp.Mul.make_args(rest)) < 2:
        return None
    return coeff, rest


def double_double(c: sp.Expr) -> tuple[float, float]:
    """The constant ``c`` as hi + lo: hi the nearest float64, lo the nearest to c - hi.

    >>> double_double(sp.sqrt(2) / 2)
    (0.7071067811865476, -4.833646656726457e-17)
    """
    exact = sp.N(c, 50)
    hi = float(exact)
    return hi, float(exact - sp.Float(hi, 50))


def constant_last(expr: sp.Add, dtype: str) -> tuple[sp.Expr, float, float] | None:
    """(rest, hi, lo) if the sum ``expr`` has a rational constant term c that ``dtype``
    cannot hold: a kernel adds it last, as (rest + hi) + lo, hi + lo = c to twice the
    dtype's precision.

    Next to a root the rest cancels c: 2z + 4/3 at z = -2/3 keeps the rounding of 4/3
    as its whole value (700 float32 ulp at z = -0.6666666); (2z + hi) is exact there
    (Sterbenz) and + lo leaves one rounding. Elsewhere lo changes the last bit at most.

    >>> z = sp.Symbol("z", real=True)
    >>> constant_last(2*z + sp.Rational(4, 3), "float32")
    (2*z, 1.3333333730697632, -3.973643103449831e-08)
    >>> constant_last(2*z + sp.Rational(3, 2), "float64") is None
    True
    """
    terms = expr.as_ordered_terms()
    constants = [t for t in terms if isinstance(t, sp.Rational)]   # SymPy keeps one at most
    if len(terms) < 2 or len(constants) != 1:
        return None
    c = constants[0]
    terms.remove(c)
    dt = np.dtype(dtype)
    exact = sp.N(c, 50)
    hi = float(dt.type(float(exact)))
    if sp.Rational(hi) == c:
        return None
    return sp.Add(*terms), hi, float(dt.type(float(exact - sp.Float(hi, 50))))


def affine_last(expr: sp.Add, dtype: str
                ) -> tuple[sp.Expr, sp.Expr, tuple[float, float, float, float, float, float]
                           ] | None:
    """(rest, u, (P, R, Q, c, d, limit)) if the sum ``expr`` is rest + c*u + d with
    rational constants c = p/q and d = r/s and ``dtype`` cannot hold c: a kernel evaluates
    c*u + d as fma(P, u, R)/Q with the integers P = ps, R = rq, Q = qs (two roundings in
    float64, `vm_affine_f64`), or as fma(c, u, d) where |u| >= limit and P*u could overflow
    (there c*u is far larger than d, so nothing cancels).

    Next to the root -d/c the rounding of c is the whole value, as that of d is for
    `constant_last`: 5z/3 + 1 was 32 ulp off at z = -0.6 in float64, tanh(5z/3 + 1)
    likewise; low parts of c and d (double-doubles) still left 4 ulp at the float nearest
    the root of z/10 - 1/7.

    >>> z = sp.Symbol("z", real=True)
    >>> affine_last(5*z/3 + 1, "float64")
    (0, z, (5.0, 3.0, 3.0, 1.6666666666666667, 1.0, 1.7976931348623158e+307))
    >>> affine_last(z/2 + sp.Rational(1, 3), "float64") is None   # c = 1/2 is exact
    True
    """
    terms = expr.as_ordered_terms()
    constants = [t for t in terms if isinstance(t, sp.Rational)]
    if len(terms) < 2 or len(constants) != 1:
        return None
    d = constants[0]
    for k, term in enumerate(terms):
        c, u = term.as_coeff_Mul()
        if term is d or not isinstance(c, sp.Rational) or u.is_number or _held_by(c, dtype):
            continue
        big, q = c.p * d.q, c.q * d.q
        small = d.p * c.q
        if max(abs(big), abs(small), q) >= 2 ** 53:   # not exact as floats: as written
            return None
        rest = sp.Add(*(t for j, t in enumerate(terms) if j != k and t is not d))
        limit = float(np.finfo(np.float64).max) / abs(big) / 2
        return rest, u, (float(big), float(small), float(q), float(c), float(d), limit)
    return None


def affine_np(u: np.ndarray, parts: Sequence[float], dt: np.dtype) -> np.ndarray:
    """`vm_affine_f64` in NumPy, rounded to ``dt``: fma(P, u, R)/Q (the FMA from an exact
    product and sum, within one float64 rounding of it), c*u + d from ``limit`` on."""
    big, small, q, c, d, limit = parts
    x = np.asarray(u, dtype=np.float64)
    with np.errstate(all="ignore"):   # the branch not taken may overflow
        p = big * x
        s, f = _two_sum(p, small)
        near = (s + (f + _two_prod_error(big, x, p))) / q
        out = np.where(np.abs(x) < limit, near, c * x + d)
        return out.astype(dt) if dt != np.float64 else out


def _two_prod_error(a: np.ndarray | float, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """a*b - p exactly (p = fl(a*b)), Dekker's product on 26/27-bit halves."""
    def split(x):
        x = np.asarray(x, dtype=np.float64)
        hi = (x.view(np.int64) & np.int64(-134217728)).view(np.float64)
        return hi, x - hi
    ah, al = split(a)
    bh, bl = split(b)
    return ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _polynomial_dd(x: np.ndarray, coeffs: Sequence[sp.Expr]) -> tuple[np.ndarray, np.ndarray]:
    """The polynomial at x as a double-double (hi, lo), Horner's rule step by step as
    `vm_dd_mad_f64` (the low parts dropped where they are not finite)."""
    x = np.asarray(x, dtype=np.float64)
    hi, lo = (np.full_like(x, v) for v in double_double(coeffs[0]))
    for c in coeffs[1:]:
        ch, cl = double_double(c) if c != 0 else (0.0, 0.0)
        p = hi * x
        e = _two_prod_error(hi, x, p) + lo * x
        s, f = _two_sum(p, ch)
        f = f + (e + cl)
        ok = np.isfinite(f)
        hi = np.where(ok, s + f, s)
        lo = np.where(ok, f - (hi - s), 0.0)
    return hi, lo


def _two_sum(a: np.ndarray, b: float) -> tuple[np.ndarray, np.ndarray]:
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _power_np(x: np.ndarray, ex: sp.Expr, dt: np.dtype) -> np.ndarray:
    """x^ex as the kernels' vm_pow: float64 inside, the exponent as a double-double (to
    first order: x^(e + d) = x^e (1 + d log x)), one rounding to the dtype."""
    hi, lo = double_double(ex)
    x64 = np.asarray(x, dtype=np.float64)
    y = np.power(x64, hi)
    with np.errstate(all="ignore"):
        fix = np.where(np.isfinite(y) & (x64 > 0), y * (lo * np.log(x64)), 0.0)
    return (y + fix).astype(dt)


def _of_double_double(fn: type, x: np.ndarray, d: np.ndarray, dt: np.dtype) -> np.ndarray:
    """erfc or exp of x + d, to first order in the low part d (float64 inside, one
    rounding to the dtype): erfc(x + d) = erfc(x) - d 2/sqrt(pi) e^(-x^2),
    e^(x + d) = e^x + e^x d."""
    d = np.where(np.isfinite(d), d, 0.0)
    if fn is sp.exp:
        y = np.exp(x)
        return (y + np.where(np.isfinite(y), y * d, 0.0)).astype(dt)
    slope = 2.0 / math.sqrt(math.pi) * np.exp(-x * x)
    return (_erfc_np(x) - d * slope).astype(dt)


def _exact_argument_np(fn: type, factors: Sequence, c: sp.Expr, dt: np.dtype) -> np.ndarray:
    """erfc or exp of c * u or c * (u + du)(v + dv) (``factors`` [u] or [(u, du), (v, dv)])
    with the argument as a double-double x + d, as the kernels evaluate it."""
    hi, lo = double_double(c)
    if len(factors) == 2:
        (uh, ul), (vh, vl) = (_two_sum(np.asarray(f, dtype=np.float64), float(d))
                              for f, d in factors)
        p = uh * vh
        e = _two_prod_error(uh, vh, p) + (uh * vl + ul * vh)
    else:
        p = np.asarray(factors[0], dtype=np.float64)
        e = np.zeros_like(p)
    x = hi * p
    return _of_double_double(fn, x, _two_prod_error(hi, p, x) + (hi * e + lo * p), dt)


_NUMPY_FUNCS = {
    sp.exp: np.exp, sp.log: np.log, log1p: np.log1p, expm1: np.expm1, sp.tanh: np.tanh,
    sp.sinh: np.sinh, sp.cosh: np.cosh, sp.sin: np.sin, sp.cos: np.cos, sp.atan: np.arctan,
    sp.tan: np.tan, sp.asin: np.arcsin, sp.acos: np.arccos, sp.asinh: np.arcsinh,
    sp.acosh: np.arccosh, sp.atanh: np.arctanh,
    sp.erf: _erf_np, sp.erfc: _erfc_np, sp.Abs: np.abs, sp.sign: np.sign,
}
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne}


def evaluate(expr: sp.Basic, values: Mapping[sp.Symbol, np.ndarray], dtype: str) -> np.ndarray:
    """``expr`` evaluated elementwise in ``dtype``, one rounding per operation as a kernel.

    Literals are cast to the dtype (a kernel prints ``f32(0.5)``), quotients are
    divisions, small integer powers repeated products: float32 stays float32 throughout.
    erfc and exp of c*u or c*u*v take their argument as a double-double
    (`exact_argument`), as the kernels do.

    >>> z = sp.Symbol("z", real=True)
    >>> evaluate(1 + sp.exp(z) / 2, {z: np.array([0.0, 1.0], np.float32)}, "float32")
    array([1.5      , 2.3591409], dtype=float32)
    """
    dt = np.dtype(dtype)
    shape = np.shape(next(iter(values.values()))) if values else ()

    def ev(e: sp.Basic):
        if e in values:
            return values[e]
        if isinstance(e, (sp.Number, sp.NumberSymbol)):
            return dt.type(float(e))
        if e is sp.true or e is sp.false:
            return np.full(shape, bool(e))
        if isinstance(e, sp.Add):
            affine = affine_last(e, dtype)
            if affine is not None:   # as the printer: rest + vm_affine(u, c..., d...)
                rest, u, parts = affine
                value = affine_np(ev(u), parts, dt)
                return value if rest == 0 else ev(rest) + value
            split = constant_last(e, dtype)
            if split is not None:   # as the printer: (rest + hi) + lo
                return (ev(split[0]) + dt.type(split[1])) + dt.type(split[2])
            # The order the code printers write the terms in: rounding depends on it.
            return reduce(np.add, [ev(a) for a in e.as_ordered_terms()])
        if isinstance(e, sp.Mul):
            split = coefficient_last(e)
            if split is not None:
                return ev(split[1]) * dt.type(float(split[0]))
            num, den = [], []
            for f in e.args:
                base, ex = f.as_base_exp()
                if ex.is_Integer and ex < 0:
                    den.append(ev(base ** -ex))
                else:
                    num.append(ev(f))
            top = reduce(np.multiply, num) if num else dt.type(1.0)
            return top / reduce(np.multiply, den) if den else top
        if isinstance(e, TaylorPolynomial):
            return ev(e.horner())   # as the kernels: Horner's rule
        if isinstance(e, sp.Pow):
            hyp = hypot_argument(e)
            if hyp is not None:
                h = np.hypot(ev(hyp[0]), ev(hyp[1]))
                if not isinstance(hyp[2], int):
                    return _power_np(h, hyp[2], dt)
                prod = reduce(np.multiply, [h] * abs(hyp[2]))
                return prod if hyp[2] > 0 else dt.type(1.0) / prod
            base, ex = e.args
            if ex.is_Integer and 0 < abs(int(ex)) <= 4:
                b = ev(base)
                prod = reduce(np.multiply, [b] * abs(int(ex)))
                return prod if ex > 0 else dt.type(1.0) / prod
            if ex == sp.Rational(1, 2):
                return np.sqrt(ev(base))
            if ex.is_number:
                return _power_np(ev(base), ex, dt)
            return np.power(ev(base), ev(ex))
        if isinstance(e, (sp.Max, sp.Min)):
            fn = np.maximum if isinstance(e, sp.Max) else np.minimum
            return reduce(fn, [ev(a) for a in e.args])
        if isinstance(e, sp.Heaviside):
            x = ev(e.args[0])
            h0 = dt.type(float(e.args[1])) if len(e.args) > 1 else dt.type(0.5)
            return np.where(x > 0, dt.type(1), np.where(x == 0, h0, dt.type(0)))
        if isinstance(e, sp.Piecewise):
            out = ev(e.args[-1].expr)
            for branch, cond in reversed(e.args[:-1]):
                out = np.where(ev(cond), ev(branch), out)
            return out
        if isinstance(e, Relational):
            return _COMPARE[e.rel_op](ev(e.lhs), ev(e.rhs))
        if isinstance(e, sp.And):
            return reduce(np.logical_and, [ev(a) for a in e.args])
        if isinstance(e, sp.Or):
            return reduce(np.logical_or, [ev(a) for a in e.args])
        if isinstance(e, sp.Not):
            return np.logical_not(ev(e.args[0]))
        if isinstance(e, sp.log):
            hyp = hypot_argument(sp.sqrt(e.args[0]))
            if hyp is not None and hyp[2] == 1:   # as the printer: 2 log(hypot(u, v))
                return dt.type(2.0) * np.log(np.hypot(ev(hyp[0]), ev(hyp[1])))
        poly = polynomial_argument(e)
        if poly is not None:
            x, d = _polynomial_dd(ev(poly[0]), poly[1])
            return _of_double_double(type(e), x, d, dt)
        exact = exact_argument(e)
        if exact is not None:
            if len(exact[1]) == 2:
                parts = [centred(f) for f in exact[1]]
                return _exact_argument_np(type(e), [(ev(u), d) for u, d in parts], exact[0], dt)
            return _exact_argument_np(type(e), [ev(exact[1][0])], exact[0], dt)
        fn = _NUMPY_FUNCS.get(type(e))
        if fn is None:
            raise TypeError(f"no float evaluation rule for {type(e).__name__} (in {expr})")
        return fn(*[ev(a) for a in e.args])

    with np.errstate(all="ignore"):
        out = np.asarray(ev(sp.sympify(expr)))
    if out.dtype != dt and out.dtype != bool:
        out = out.astype(dt)
    return np.broadcast_to(out, shape)


# --- the reference: mpmath at as many digits as needed (symgrad.definition.exact) ------


def exact_values(expr: sp.Expr, values: Mapping[sp.Symbol, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``expr`` at every point to at least 50 digits, as float64 (hi, lo) pairs.

    hi is the nearest float64 (inf past its range), lo the remainder; NaN where the
    reference itself is undefined (e.g. inf - inf past the guards).
    """
    variables = tuple(sorted(values, key=lambda s: s.name))
    fn = mp_function(sp.sympify(expr), variables)
    cols = [np.asarray(values[v], dtype=np.float64).ravel() for v in variables]
    n = len(cols[0]) if cols else 1
    hi, lo = np.full(n, np.nan), np.zeros(n)
    for i in range(n):
        v = converged(fn, [float(c[i]) for c in cols])
        if v is None:
            continue
        h = float(v) if abs(v) < mpmath.mpf(2) ** 1024 else math.copysign(math.inf, v)
        hi[i] = h
        with mpmath.workprec(4 * MAX_BITS):
            lo[i] = float(v - h) if math.isfinite(h) else 0.0
    return hi, lo


# --- where to look ----------------------------------------------------------------------
@lru_cache(maxsize=4)
def sample_points(dtype: str, count: int = 40) -> np.ndarray:
    """Points over the whole range of ``dtype``, both signs, as that dtype.

    |z| log-spaced from 1e-6 to the largest finite number (and a few tiny ones down to
    the smallest subnormal, and 0), a dense band up to twice the
    overflow point of exp (where exponential forms break), and points right around the
    thresholds where exp over- or underflows (and half and twice them, for exp(z/2),
    cosh(z/2)**2 and exp(2z)).
    """
    info = np.finfo(np.dtype(dtype))
    top = math.log10(float(info.max))
    over = math.log(float(info.max))                 # exp(z) overflows past this
    under = -math.log(float(info.smallest_subnormal))  # exp(-z) is 0 past this
    mags = list(np.logspace(-6, top - 0.01, count))
    # Tiny inputs: where a/z reads a subnormal a (`saved_output.gate_forms`' guard)
    mags += [float(info.smallest_subnormal), float(info.tiny), 4 * float(info.tiny),
             1e-35, 1e-30, 1e-20, 1e-12]
    mags += list(np.geomspace(0.25, 2.2 * under, count))
    for t in (over, -math.log(float(info.tiny)), under):
        for scale in (0.5, 1.0, 2.0):
            mags += [scale * t + d for d in (-1.0, -0.05, 0.05, 1.0, 4.0)]
    mags = np.array(sorted(set(mags)), dtype=np.float64)
    mags = mags[mags < float(info.max)]
    pts = np.concatenate([mags, -mags, [0.0]]).astype(dtype)
    return np.unique(pts)


# --- the measure ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Accuracy:
    """The worst error of a form over the sample points, in ulps of max(|exact|, floor)."""

    ulps: float          # inf: inf/NaN somewhere the exact value is an ordinary number
    at: float            # the point (z) of the worst error
    dtype: str
    points: int          # how many points were compared

    def __str__(self) -> str:
        return f"{self.ulps:.3g} ulp ({self.dtype}, worst at z = {self.at:g})"


def ulp_errors(got: np.ndarray, hi: np.ndarray, lo: np.ndarray, dtype: str, floor: float
               ) -> np.ndarray:
    """|got - exact| / ulp(max(|exact|, floor)) per point (inf if got is not finite)."""
    dt = np.dtype(dtype)
    with np.errstate(all="ignore"):
        g = np.asarray(got, dtype=np.float64)
        diff = np.abs((g - hi) - lo)
        scale = np.maximum(np.abs(hi), floor).astype(dt)
        unit = np.spacing(scale).astype(np.float64)
        err = diff / unit
    return np.where(np.isfinite(g), err, np.inf)


def compared_points(hi: np.ndarray, z: np.ndarray, dtype: str, floor: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(points measured, those of them where only a finite value is required).

    The exact value must be finite in the dtype. For a relative measure (floor 0) it
    must also be normal with room for a factor z to be held to the bound: a product
    z*g(z) cannot be more accurate than g(z), and g(z) is subnormal there (Swish at
    z = -712 in float64). Where it is 0 or that small, the form must still be finite:
    e^(-z) max(0, z) as written is inf * 0 = NaN at z = -1000, where it is 0.
    """
    info = np.finfo(np.dtype(dtype))
    ok = np.isfinite(hi) & (np.abs(hi) <= float(info.max))
    loose = np.zeros_like(ok)
    if floor == 0:
        room = np.maximum(1.0, np.abs(np.asarray(z, dtype=np.float64)))
        loose = ok & (np.abs(hi) < float(info.tiny) * room)
    return ok, loose


@dataclass(frozen=True)
class Probe:
    """Fixed inputs and exact values, against which many candidates are measured."""

    dtype: str
    values: dict[sp.Symbol, np.ndarray]   # inputs of the candidates, in the dtype
    hi: np.ndarray
    lo: np.ndarray
    mask: np.ndarray                      # points measured
    floor: float
    var: sp.Symbol = Z
    loose: np.ndarray | None = None       # of the mask: only a finite value required there

    def errors(self, candidate: sp.Expr) -> np.ndarray:
        """Errors in ulps at the points held to the bound (inf: no float evaluation)."""
        try:
            got = evaluate(candidate, self.values, self.dtype)
        except (TypeError, ValueError, KeyError):
            return np.full(int(self.mask.sum()), np.inf)
        err = ulp_errors(got, self.hi, self.lo, self.dtype, self.floor)
        if self.loose is not None:
            err = np.where(self.loose & np.isfinite(err), 0.0, err)
        err = err[self.mask]
        return np.where(np.isnan(err), np.inf, err)

    def measure(self, candidate: sp.Expr, err: np.ndarray | None = None) -> Accuracy:
        """The worst error of ``candidate`` at the probe's points."""
        err = self.errors(candidate) if err is None else err
        if err.size == 0:
            return Accuracy(0.0, math.nan, self.dtype, 0)
        i = int(np.argmax(err))
        z = self.values.get(self.var)
        at = float(z[self.mask][i]) if z is not None else math.nan
        return Accuracy(float(err[i]), at, self.dtype, int(err.size))


Targets = tuple[tuple[sp.Symbol, tuple[float, ...]], ...]


def _grid(var: sp.Symbol, dtype: str, targets: Targets) -> dict[sp.Symbol, np.ndarray]:
    """`sample_points` for var, crossed with every value of each target symbol."""
    values: dict[sp.Symbol, np.ndarray] = {var: sample_points(dtype)}
    for sym, vals in targets:
        grid = np.repeat(np.asarray(vals, dtype=np.float64), len(values[var]))
        values = {k: np.tile(v, len(vals)) for k, v in values.items()}
        values[sym] = grid.astype(dtype)
    return values


@lru_cache(maxsize=128)
def _exact_at_samples(exact: sp.Expr, dtype: str, var: sp.Symbol, targets: Targets
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Exact values on the `_grid` (remembered: the forward formula is measured again for
    the output layer, Step B again inside the delta)."""
    values = _grid(var, dtype, targets)
    inputs = {k: v for k, v in values.items() if exact.has(k)} or {var: values[var]}
    hi, lo = exact_values(exact, inputs)
    n = len(values[var])
    return (hi, lo) if len(hi) == n else (np.broadcast_to(hi, (n,)), np.broadcast_to(lo, (n,)))


def make_probe(exact: sp.Expr, dtype: str, floor: float,
               saved: Mapping[sp.Symbol, sp.Expr] | None = None,
               targets: Mapping[sp.Symbol, Sequence[float]] | None = None,
               var: sp.Symbol = Z) -> Probe:
    """Inputs z (and each target value), saved values computed in the dtype, exact values.

    ``saved`` maps a saved symbol (a, p) to the form the forward pass evaluates it by;
    ``targets`` gives the values a target symbol (y) takes, crossed with every z.
    """
    key = tuple(sorted(((k, tuple(float(x) for x in v)) for k, v in (targets or {}).items()),
                       key=lambda kv: kv[0].name))
    values = _grid(var, dtype, key)
    hi, lo = _exact_at_samples(sp.sympify(exact), dtype, var, key)
    mask, loose = compared_points(hi, values[var], dtype, floor)
    for sym, form in (saved or {}).items():
        values[sym] = evaluate(form, values, dtype)
        # Where the forward value itself overflowed, the backward pass reads inf whatever
        # its form (z*atan(z) at z = -3e38 in float32); the forward form is measured on
        # its own (`choose_forward`).
        mask &= np.isfinite(values[sym])
    return Probe(dtype, values, hi, lo, mask, floor, var, loose)


def worst_error(candidate: sp.Expr, exact: sp.Expr, dtype: str, floor: float = 0.0,
                saved: Mapping[sp.Symbol, sp.Expr] | None = None,
                targets: Mapping[sp.Symbol, Sequence[float]] | None = None,
                var: sp.Symbol = Z) -> Accuracy:
    """The worst error of ``candidate`` against ``exact`` over the whole range of ``dtype``."""
    return make_probe(exact, dtype, floor, saved, targets, var).measure(candidate)


@dataclass(frozen=True)
class Choice:
    """The chosen form, its label and its accuracy in each dtype."""

    expr: sp.Expr
    label: str
    accuracy: tuple[Accuracy, ...]

    @property
    def ulps(self) -> float:
        return max(a.ulps for a in self.accuracy)


def choose(candidates: Sequence[tuple[str, sp.Expr]], exact: sp.Expr, bound: float,
           floor: float = 0.0, saved: Mapping[sp.Symbol, sp.Expr] | None = None,
           targets: Mapping[sp.Symbol, Sequence[float]] | None = None,
           var: sp.Symbol = Z, fixed: Collection[sp.Expr] = ()) -> Choice:
    """The cheapest candidate within ``bound`` ulps in both dtypes, else the most accurate.

    Candidates come in order of preference (shortest, most readable first); duplicates
    are measured once. "Cheapest" is `evaluation_cost` (the special functions a kernel
    evaluates): a later candidate replaces an accurate earlier one only when it costs
    fewer of them (Swish's slope through one exponential instead of a cosh and an exp),
    and is then measured like the others. Where none is within the bound, two candidates
    that fail in different places are spliced (`splices`: one below a threshold on z or
    |z|, the other above it), unless one of them is in ``fixed``. "Most accurate" counts
    the points past the bound first (a form that fails only where z**3 itself overflows
    beats one that fails from z = 20 on), then the worst error.
    """
    probes = [make_probe(exact, dt, floor, saved, targets, var) for dt in DTYPES]
    seen: set[sp.Expr] = set()
    best: tuple[tuple[int, float], Choice, list[np.ndarray]] | None = None
    accepted: tuple[int, Choice] | None = None
    failed: list[tuple[str, sp.Expr, list[np.ndarray]]] = []
    for label, cand in candidates:
        if cand in seen:
            continue
        seen.add(cand)
        cost = evaluation_cost(cand)
        if accepted is not None and cost >= accepted[0]:
            continue
        errs = [p.errors(cand) for p in probes]
        choice = Choice(cand, label, tuple(p.measure(cand, e) for p, e in zip(probes, errs,
                                                                              strict=True)))
        if choice.ulps <= bound:
            accepted = (cost, choice)
            continue
        rank = (sum(int(np.count_nonzero(e > bound)) for e in errs), choice.ulps)
        if accepted is None and (best is None or rank < best[0]):
            best = (rank, choice, errs)
        if cand not in fixed:
            failed.append((label, cand, errs))
    if accepted is not None:
        return accepted[1]
    if best is None:
        raise ValueError("choose() needs at least one candidate")
    spliced = _cheapest(splices(failed, probes, bound, var), probes)
    # where every form cancels near 0 (z - tanh z), the Taylor polynomial is accurate
    # there: proposed only now, lowest degree first (each degree's series, its mpmath
    # remainder check and its splice search take 0.01-0.5 s), and only if the best form
    # fails near 0 and the formula is short (GELU's tanh form's slope fails only where z^2
    # overflows: no series helps there)
    zs = [np.asarray(p.values[var], dtype=np.float64)[p.mask] for p in probes]
    near_zero = any(bool(np.any(np.abs(z[e > bound]) < 1)) for z, e in
                    zip(zs, best[2], strict=True))
    short = sp.count_ops(exact) <= TAYLOR_MAX_OPS
    for label, cand in taylor_candidates(exact, var) if (spliced is None and near_zero
                                                         and short) else []:
        failed.append((label, cand, [p.errors(cand) for p in probes]))
        # the proof's claim (`zero.every_branch_zero`) is checked here too: a splice the
        # probe accepts but whose truncation exceeds half an ulp would fail sg.check
        spliced = _cheapest([s for s in splices(failed, probes, bound, var)
                             if _taylor_branch_holds(s[1])], probes)
        if spliced is not None:
            break
    return spliced if spliced is not None else best[1]


#: The longest formula (SymPy operations) whose Taylor series `choose` takes.
TAYLOR_MAX_OPS = 40


def _taylor_branch_holds(splice: sp.Piecewise) -> bool:
    """For a splice whose first branch is a Taylor polynomial under |z| < r: its
    truncation is within `series.REMAINDER` there (other splices: True)."""
    (branch, cond), _ = splice.args
    if not isinstance(branch, TaylorPolynomial):
        return True
    return remainder_within(branch, float(cond.rhs))


def _cheapest(spliced: Sequence[tuple[str, sp.Expr, list[np.ndarray]]],
              probes: Sequence[Probe]) -> Choice | None:
    """The splice that costs fewest special functions (the first of equals), measured."""
    best: tuple[int, Choice] | None = None
    for label, cand, errs in spliced:
        cost = evaluation_cost(cand)
        if best is None or cost < best[0]:
            best = (cost, Choice(cand, label, tuple(
                p.measure(cand, e) for p, e in zip(probes, errs, strict=True))))
    return None if best is None else best[1]


def splices(failed: Sequence[tuple[str, sp.Expr, list[np.ndarray]]], probes: Sequence[Probe],
            bound: float, var: sp.Symbol) -> list[tuple[str, sp.Expr, list[np.ndarray]]]:
    """Piecewise forms taking one failed candidate below a threshold and another above it,
    each where it is within ``bound``, with their errors at the probes' points.

    A shifted softplus log((1 + e^z)/2) has log1p(expm1(z)/2), which overflows past
    z = 709, and max(z, 0) + log1p(e^-|z|) - log 2, which cancels near 0: neither is
    accurate everywhere, the splice at |z| = 2^k between them is. The threshold splits
    either |z| (a form for small inputs, one for large) or z itself (one per side); it is
    a short binary number (exact in both dtypes) between the probe points where each
    form was last seen to hold (`_threshold`), or 0 where they hold it. Each branch equals the
    formula, so the splice is proven branch by branch (`zero.every_branch_zero`).
    The errors of the splice are those of its branches, point by point.
    """
    zs = [np.asarray(p.values[var], dtype=np.float64)[p.mask] for p in probes]
    out = []
    for kind, key in (("|z|", np.abs), ("z", lambda x: x)):
        grid = np.unique(np.concatenate([key(z) for z in zs]))
        # where each candidate fails, as key(z), over both dtypes
        fails = [np.concatenate([key(z[e > bound]) for z, e in zip(zs, errs, strict=True)])
                 for _, _, errs in failed]
        for ia, (label_a, a, errs_a) in enumerate(failed):
            for ib, (label_b, b, errs_b) in enumerate(failed):
                if ia == ib or not fails[ia].size or not fails[ib].size:
                    continue
                # a Taylor branch holds near 0 only: inside |z| < t, never outside
                if isinstance(b, TaylorPolynomial) or (isinstance(a, TaylorPolynomial)
                                                       and kind == "z"):
                    continue
                # a below the threshold t, b from t on: t in (max b-fails, min a-fails]
                t = _threshold(float(fails[ib].max()), float(fails[ia].min()), grid)
                if t is None:
                    continue
                cond = (sp.Abs(var) if kind == "|z|" else var) < t
                inside = [key(z) < float(t) for z in zs]
                errs = [np.where(m, ea, eb) for m, ea, eb in zip(inside, errs_a, errs_b,
                                                                 strict=True)]
                label = f"{label_a} where {kind} < {binary_text(t)}, {label_b} elsewhere"
                out.append((label, sp.Piecewise((a, cond), (b, True)), errs))
    return out


def _threshold(lo: float, hi: float, grid: np.ndarray) -> sp.Number | None:
    """A short binary number t with lo < t <= hi, between the probe points next to the
    two ends (``grid``: every probe point, as |z| or z): the forms were seen to hold at
    those points, not between them, so t stays where both were tested. 0 where that
    range holds it, else the number with the fewest significant bits in it (a power of
    two where one fits: exact in both dtypes). None if no probe point separates the two."""
    above = grid[grid > lo]
    below = grid[grid < hi]
    if not above.size or not below.size:
        return None
    first, last = float(above.min()), float(below.max())   # t in [first, last]
    if first > last:
        return None
    if first <= 0 <= last:
        return sp.Integer(0)
    sign = 1 if first > 0 else -1
    small, large = (first, last) if sign > 0 else (-last, -first)
    top = math.floor(math.log2(large))
    for bits in range(1, 25):
        step = 2.0 ** (top - bits + 1)
        t = math.ceil(small / step) * step
        if t <= large:
            return sign * sp.Rational(int(t / step)) * sp.Integer(2) ** (top - bits + 1)
    return None
