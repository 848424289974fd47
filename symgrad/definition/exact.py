"""Exact values of formulas in mpmath, at as many digits as the formula needs.

Two stages compare a float form with the formula's exact value: definition (is a
user's ``stable=`` form equal to its formula?) and simplify (which evaluation form
is accurate?). Both take the exact value from here, so both get the same answer
where a fixed precision would not: 1 - sigmoid(128) is e^-128, and 60 digits of
sigmoid(128) keep none of it.

>>> import sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> fn = mp_function(sp.exp(2 * x) * (1 - sp.tanh(x)), (x,))
>>> float(converged(fn, [128.0], trust_zero=False))
2.0
"""

from __future__ import annotations

import math
from functools import lru_cache

import mpmath
import sympy as sp

__all__ = ["MP_FUNCS", "binary_parts", "binary_text", "converged", "mp_function",
           "start_bits", "value_at"]

_HUGE = mpmath.mpf(2) ** 100   # |argument| past which exp/erf results are 0, 1 or inf anyway


def _guard(fn, big, small):
    """fn(x), but big/small for |x| past 2**100 (exp(exp(400)) needs 1e173-bit arithmetic)."""
    def call(x):
        if x > _HUGE:
            return big
        if x < -_HUGE:
            return small
        return fn(x)
    return call


_INF = mpmath.inf
#: mpmath stand-ins for SymPy functions, guarded where mpmath's own arithmetic explodes.
MP_FUNCS = {
    "exp": _guard(mpmath.exp, _INF, mpmath.mpf(0)),
    "cosh": _guard(mpmath.cosh, _INF, _INF),
    "sinh": _guard(mpmath.sinh, _INF, -_INF),
    "tanh": _guard(mpmath.tanh, mpmath.mpf(1), mpmath.mpf(-1)),
    "erf": _guard(mpmath.erf, mpmath.mpf(1), mpmath.mpf(-1)),
    "erfc": _guard(mpmath.erfc, mpmath.mpf(0), mpmath.mpf(2)),
    "expm1": _guard(mpmath.expm1, _INF, mpmath.mpf(-1)),
    "Heaviside": lambda x, h0=0: mpmath.mpf(1) if x > 0 else (mpmath.mpf(h0) if x == 0
                                                                else mpmath.mpf(0)),
}

START_BITS = 170      # ~50 digits
MAX_BITS = 4096


def start_bits(args: list[float]) -> int:
    """The first precision for ``args``: 50 digits plus the largest argument's binary exponent.

    A cancellation inside the formula costs as many bits as the arguments' scale: at
    z = 1e-300, e^z - 1 and cos z - 1 are 0 below 1000 and 2000 bits, at 50 and 100 digits
    alike, which looks converged when the cancelled part is one term of a sum (2z +
    (e^z - 1) would read 2z, not 3z). `converged` stops when two rungs of its ladder
    agree; starting here, the second rung has twice the exponent, which a cancellation
    of up to second order in the scale (cos z - 1 ~ z^2/2; sqrt(z^2 + 1) - z at z = 1e300)
    needs. Starting at twice the exponent cost trigonometric formulas 0.2 s more per
    compile (sin of 1e308 at 4400 bits) and saw nothing more.

    >>> start_bits([1.5]), start_bits([1e-300]), start_bits([0.0, -2.0])
    (171, 1166, 172)
    """
    scale = max((abs(math.frexp(a)[1]) for a in args if a and math.isfinite(a)), default=0)
    return START_BITS + scale


def value_at(fn, args: list[float], bits: int):
    """fn(args) at ``bits`` of precision; None where it is undefined or NaN."""
    with mpmath.workprec(bits):
        try:
            v = mpmath.mpf(fn(*[mpmath.mpf(a) for a in args]))
        except (ArithmeticError, ValueError, TypeError):
            return None
    return None if mpmath.isnan(v) else v


def converged(fn, args: list[float], trust_zero: bool = True):
    """fn(args) at `start_bits`, repeated at twice the precision until two results agree.

    50 digits are not always enough: log(1 + e^-108) needs 47 digits just to see the
    e^-108, and 1 - sigmoid(700) is 0 (a division by zero downstream) below 1010 bits.
    Doubling stops when the answer no longer moves; None if it never settles. With
    ``trust_zero=False`` a zero must last to the top precision (a formula that cancels
    to 0 at low precision, such as exp(2x)(1 - tanh x) at x = 128, is not taken as 0).
    The form chooser keeps ``True``: its accuracy bounds were set with that reference.
    """
    bits, prev = start_bits(args), None
    while True:
        v = value_at(fn, args, bits)
        last = bits >= MAX_BITS
        if v is not None and prev is not None:
            with mpmath.workprec(bits):
                if v == 0 and prev == 0 and not trust_zero:
                    # Two zeros may be one cancellation seen twice (1 - tanh(128) is 0
                    # below 370 bits): then a zero counts only if it lasts to the top
                    # precision.
                    if last:
                        return v
                elif v == prev or abs(v - prev) <= abs(v) * mpmath.mpf(2) ** -80:
                    return v
        if last:
            return None
        prev, bits = v, min(bits * 2, MAX_BITS)


@lru_cache(maxsize=256)
def mp_function(expr: sp.Expr, variables: tuple[sp.Symbol, ...]):
    """``expr`` as an mpmath function of ``variables`` (guarded functions above)."""
    return sp.lambdify(variables, expr, modules=[MP_FUNCS, "mpmath"])


def binary_parts(x: sp.Basic, min_exponent: int = 20) -> tuple[int, int] | None:
    """(m, e) with x = m * 2**e and m odd, for a rational x far from 1 (|e| >= min_exponent)
    with a short mantissa (|m| < 2**24); None for any other number.

    The accuracy splices put their thresholds at such numbers (exact in both dtypes):
    2**124 reads better as that than as its 38 digits.

    >>> binary_parts(sp.Integer(2) ** 124), binary_parts(sp.Rational(-3, 2**40))
    ((1, 124), (-3, -40))
    >>> binary_parts(sp.Integer(1000)), binary_parts(sp.Integer(3**40)), binary_parts(sp.pi)
    (None, None, None)
    """
    if not isinstance(x, sp.Rational) or x == 0:
        return None
    num, den = int(x.p), int(x.q)
    if den & (den - 1):          # not a power of two
        return None
    twos = (abs(num) & -abs(num)).bit_length() - 1
    m, e = num >> twos, twos - (den.bit_length() - 1)
    return (m, e) if abs(e) >= min_exponent and abs(m) < 2**24 else None


def binary_text(x: sp.Basic) -> str:
    """``x`` as plain text, ``2**124`` (or ``3*2**-40``) where `binary_parts` applies.

    >>> binary_text(sp.Integer(2) ** 124), binary_text(sp.Rational(1, 2))
    ('2**124', '1/2')
    """
    parts = binary_parts(x)
    if parts is None:
        return str(x)
    m, e = parts
    power = f"2**{e}" if e > 0 else f"2**({e})"
    return power if m == 1 else f"-{power}" if m == -1 else f"{m}*{power}"
