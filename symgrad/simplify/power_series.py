"""Taylor coefficients of a formula at 0, by truncated power series arithmetic in mpmath.

A Taylor branch (`series.TaylorPolynomial`) needs the values of f's first N + 1 Taylor
coefficients, not their closed forms. SymPy's ``series`` finds closed forms by expanding
symbolically, and the expansions grow with every nesting: ``series(exp(exp(3*z)), z, 0,
17)`` did not finish in a minute, so a user's activation could stall ``sg.compile``.
Here each node of the formula becomes its first terms as 128-bit mpmath numbers, and
each operation costs O(N^2) multiply-adds whatever the formula: sums term by term,
products as dot products, and every function by the differential equation it satisfies
(g = e^f: g' = f'g; g = f^p: f g' = p f' g; sin and cos together; atan, erf and the
other inverse functions through their derivative as SymPy writes it, integrated). Degree 128 of a
40-operation formula takes a fraction of a second.

A series is z^low (c_0 + c_1 z + ...) known through a degree, so quotients that cancel,
sin z / z or (z - tanh z) / z^3, come out right: a term that cancels to within 2^-110 of
its parts is dropped as exactly 0. The coefficients are values, not proofs: a Taylor
branch is accepted only where `series.remainder_within` measures it against mpmath.

>>> z = sp.Symbol("z")
>>> [float(c) for c in taylor_coefficients(sp.sin(z) / z, z, 4)]
[1.0, 0.0, -0.16666666666666666, 0.0, 0.008333333333333333]
>>> taylor_coefficients(sp.log(z), z, 4) is None          # no series at 0
True
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath
import sympy as sp

PREC = 128                     # bits of every coefficient
_CANCELLED = mpmath.mpf(2) ** -110   # a sum this small next to its terms is exactly 0
_FLUSHED = mpmath.mpf(2) ** -100     # see `_flush`


class NoSeries(ValueError):
    """The formula has no Taylor series at 0 that this module can take."""


class Series:
    """z^low (coeffs[0] + coeffs[1] z + ...), its terms known through degree ``known``."""

    def __init__(self, low: int, coeffs: list, known: int) -> None:
        # every term from low through known is held (missing ones are 0), and leading
        # terms that cancelled are dropped, so coeffs[0] != 0 (or no term is left)
        coeffs = list(coeffs[:known - low + 1])
        coeffs += [mpmath.mpf(0)] * (known - low + 1 - len(coeffs))
        skip = next((i for i, c in enumerate(coeffs) if c != 0), len(coeffs))
        self.low = low + skip
        self.known = known
        self.coeffs = coeffs[skip:]

    def dense(self) -> list:
        """Terms of degree 0 .. known (the series must have no negative power)."""
        if self.low < 0:
            raise NoSeries("a pole at 0")
        return [mpmath.mpf(0)] * self.low + self.coeffs + \
            [mpmath.mpf(0)] * (self.known + 1 - self.low - len(self.coeffs))

    def at(self, degree: int):
        k = degree - self.low
        return self.coeffs[k] if 0 <= k < len(self.coeffs) else mpmath.mpf(0)


def _constant(value, known: int) -> Series:
    return Series(0, [mpmath.mpf(value)], known)


def _add(a: Series, b: Series) -> Series:
    low, known = min(a.low, b.low), min(a.known, b.known)
    terms = []
    for d in range(low, known + 1):
        x, y = a.at(d), b.at(d)
        s = x + y
        terms.append(mpmath.mpf(0) if abs(s) <= _CANCELLED * (abs(x) + abs(y)) else s)
    return Series(low, terms, known)


def _mul(a: Series, b: Series) -> Series:
    known = min(a.known + b.low, b.known + a.low)
    low = a.low + b.low
    # both hold at least the n terms needed (n - 1 <= known - low of each)
    n = known - low + 1
    terms = [mpmath.fdot(a.coeffs[:k + 1], b.coeffs[k::-1]) for k in range(n)]
    return Series(low, terms, known)


def _reciprocal(a: Series) -> Series:
    if not a.coeffs:
        raise NoSeries("division by a series that is 0 to every known degree")
    u, inv0 = a.coeffs, 1 / a.coeffs[0]
    q = [inv0]
    for k in range(1, len(u)):
        q.append(-inv0 * mpmath.fdot(u[1:k + 1], q[k - 1::-1]))
    return Series(-a.low, q, a.known - 2 * a.low)


def _power(a: Series, k: int, known: int) -> Series:
    """a^k for an integer k, by squaring (a^0 = 1, known through ``known``)."""
    if k < 0:
        return _power(_reciprocal(a), -k, known)
    result, square = None, a
    while k:
        if k & 1:
            result = square if result is None else _mul(result, square)
        k >>= 1
        if k:
            square = _mul(square, square)
    return _constant(1, known) if result is None else result


def _ode(f: list, g0, step: Callable[[int, list], object]) -> list:
    """g_0 .. g_D from g_0 and g_k = step(k, g) (g holds g_0 .. g_(k-1))."""
    g = [g0]
    for k in range(1, len(f)):
        g.append(step(k, g))
    return g


def _weighted(f: list) -> list:
    """[j f_j] (f's derivative times z, term by term)."""
    return [j * c for j, c in enumerate(f)]


def _exp(f: list) -> list:
    jf = _weighted(f)
    return _ode(f, mpmath.exp(f[0]), lambda k, g: mpmath.fdot(jf[1:k + 1], g[k - 1::-1]) / k)


def _log(f: list) -> list:
    if f[0] <= 0:
        raise NoSeries("log of a series that is not positive at 0")
    return _ode(f, mpmath.log(f[0]), lambda k, g: (f[k] - mpmath.fdot(
        _weighted(g)[1:k], f[k - 1:0:-1]) / k) / f[0])


def _real_power(f: list, p) -> list:
    if f[0] <= 0:
        raise NoSeries("a non-integer power of a series that is not positive at 0")
    return _ode(f, f[0] ** p, lambda k, g: mpmath.fdot(
        [(p * j - (k - j)) * f[j] for j in range(1, k + 1)], g[k - 1::-1]) / (k * f[0]))


def _sin_cos(f: list, hyperbolic: bool) -> tuple[list, list]:
    jf = _weighted(f)
    s0, c0 = (mpmath.sinh(f[0]), mpmath.cosh(f[0])) if hyperbolic else \
        (mpmath.sin(f[0]), mpmath.cos(f[0]))
    s, c, sign = [s0], [c0], 1 if hyperbolic else -1
    for k in range(1, len(f)):
        s.append(mpmath.fdot(jf[1:k + 1], c[k - 1::-1]) / k)
        c.append(sign * mpmath.fdot(jf[1:k + 1], s[k - 1::-1]) / k)
    return s, c


def _integral(g0, derivative: Series) -> Series:
    """g with g(0) = g0 and g' = derivative (known one degree further)."""
    d = derivative.dense()
    return Series(0, [mpmath.mpf(g0)] + [d[k] / (k + 1) for k in range(len(d))],
                  derivative.known + 1)


def _derivative(f: list) -> Series:
    return Series(0, [(k + 1) * f[k + 1] for k in range(len(f) - 1)], len(f) - 2)


def _dense_series(values: list) -> Series:
    return Series(0, values, len(values) - 1)


# Functions whose derivative SymPy writes without the function itself (atan' = 1/(1 + x^2),
# erf' = 2 e^(-x^2)/sqrt(pi), asin' = 1/sqrt(1 - x^2), ...): their series is the integral
# of F'(x) x', F' derived by `sympy.diff` and expanded by this module like any formula.
_BY_DERIVATIVE = frozenset({"atan", "atanh", "asin", "acos", "asinh", "acosh", "erf", "erfc"})


def _by_derivative(func: type, x: sp.Expr, z: sp.Symbol, known: int, memo: dict) -> Series:
    """F(x) as a series: F(x(0)) (mpmath, its own value: erfc(20) = 5e-176 is not 1 - erf)
    plus the integral of F'(x) x'; where F is not analytic at x(0), F' has no series."""
    inner = _series(x, z, known, memo)
    start = getattr(mpmath, func.__name__)(inner.dense()[0])
    if not isinstance(start, mpmath.mpf):
        raise NoSeries(f"{func.__name__} is not real at {inner.dense()[0]}")
    arg = sp.Dummy("x")
    slope = _series(sp.diff(func(arg), arg).subs(arg, x), z, known, memo)
    return _integral(start, _mul(slope, _derivative(inner.dense())))


def _function(name: str, a: Series) -> Series:
    f = a.dense()
    if name == "exp":
        return _dense_series(_exp(f))
    if name == "log":
        return _dense_series(_log(f))
    if name in ("sin", "cos", "sinh", "cosh", "tanh"):
        s, c = _sin_cos(f, hyperbolic=name != "sin" and name != "cos")
        if name == "tanh":
            return _mul(_dense_series(s), _reciprocal(_dense_series(c)))
        return _dense_series(s if name in ("sin", "sinh") else c)
    if name == "tan":
        s, c = _sin_cos(f, hyperbolic=False)
        return _mul(_dense_series(s), _reciprocal(_dense_series(c)))
    raise NoSeries(f"no series rule for {name}")


def _series(expr: sp.Expr, z: sp.Symbol, known: int, memo: dict) -> Series:
    if expr in memo:
        return memo[expr]
    if expr == z:
        out = Series(1, [mpmath.mpf(1)], known)
    elif not expr.has(z):
        if not expr.is_number:
            raise NoSeries(f"a symbol other than {z}")
        value = sp.N(expr, 45)
        if not value.is_real:
            raise NoSeries(f"a constant that is not real: {expr}")
        out = _constant(mpmath.mpf(str(value)), known)
    elif isinstance(expr, sp.Add):
        terms = [_series(a, z, known, memo) for a in expr.args]
        out = terms[0]
        for t in terms[1:]:
            out = _add(out, t)
    elif isinstance(expr, sp.Mul):
        factors = [_series(a, z, known, memo) for a in expr.args]
        out = factors[0]
        for f in factors[1:]:
            out = _mul(out, f)
    elif isinstance(expr, sp.Pow):
        base, p = expr.args
        if p.is_Integer:
            out = _power(_series(base, z, known, memo), int(p), known)
        elif not p.has(z) and p.is_real:
            b = _series(base, z, known, memo)
            if b.low != 0:
                raise NoSeries(f"a non-integer power of a series that is 0 at 0: {expr}")
            out = _dense_series(_real_power(b.dense(), mpmath.mpf(str(sp.N(p, 45)))))
        else:   # b^p = e^(p log b)
            out = _series(sp.exp(p * sp.log(base)), z, known, memo)
    elif isinstance(expr, sp.Function) and len(expr.args) == 1:
        name, (x,) = type(expr).__name__, expr.args
        if name in ("expm1", "log1p"):   # SymPy's codegen functions, by their definitions
            out = _series(sp.exp(x) - 1 if name == "expm1" else sp.log(1 + x), z, known, memo)
        elif name in _BY_DERIVATIVE:
            out = _by_derivative(type(expr), x, z, known, memo)
        else:
            out = _function(name, _series(x, z, known, memo))
    else:
        raise NoSeries(f"no series rule for {type(expr).__name__}")
    memo[expr] = out
    return out


def _flush(coeffs: list) -> list:
    """Coefficients 2^-100 below every neighbour within 8 degrees set to 0: what is left of
    a cancellation inside a recurrence (z/(1 + e^-z) has 0 for z^5 exactly, and 128-bit
    arithmetic leaves 5e-41 there). Their share of the polynomial is below 2^-100, and a
    series that is odd or even is then seen to be (`TaylorPolynomial.horner`)."""
    mags = [abs(c) for c in coeffs]
    return [mpmath.mpf(0) if mags[k] <= _FLUSHED * max(mags[max(0, k - 8):k + 9]) else c
            for k, c in enumerate(coeffs)]


def taylor_coefficients(f: sp.Expr, z: sp.Symbol, degree: int) -> list | None:
    """f's Taylor coefficients at 0 of degrees 0 .. ``degree`` as 128-bit mpmath numbers,
    or None where f has no such series (a pole, a branch point, a kink) or a function
    without a rule here. Quotients that cancel lose terms: the work runs a few degrees
    beyond ``degree``, more if a first try fell short."""
    margin = 8
    for _ in range(3):
        with mpmath.workprec(PREC):
            try:
                s = _series(sp.sympify(f), z, degree + margin, {})
            except (NoSeries, ZeroDivisionError):
                return None
        if s.low < 0:
            return None
        if s.known >= degree:
            return _flush([s.at(d) for d in range(degree + 1)])
        margin += degree - s.known + 8
    return None
