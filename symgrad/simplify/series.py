"""Taylor branches: a formula's Taylor polynomial at 0, for where every closed form cancels.

Tanhshrink, z - tanh z, is z^3/3 near 0, and every closed form of it subtracts two
numbers near z: z - tanh z, or through one exponential (z - 1 + (z + 1)t)/(1 + t) with
t = e^-2z, lose log2(3/z^2) bits and are 0 below |z| ~ 1e-8. No rule can rewrite that
away; the Taylor polynomial T_N(z) = z^3/3 - 2z^5/15 + ... is accurate there instead, to
a few ulps up to |z| ~ 1.35 with N = 128. `accuracy.choose` proposes T_N for N in
`DEGREES` only when no candidate meets the bound, and splices it with the closed form at
a threshold on |z|, each where it is accurate. The coefficients come from
`power_series` (values, in milliseconds), not from SymPy's symbolic ``series``.

The branch is the node `TaylorPolynomial(f, z, N)`, not the polynomial written out: the
printout shows T_64[z - tanh z](z), the kernels and `accuracy.evaluate` evaluate its
Horner form (in z^2 where the series is odd or even), and the proof
(`zero.every_branch_zero`) knows what it claims -- f's Taylor polynomial, within its
truncation error where the splice uses it -- and checks that, instead of an equality it
cannot have: the node's f must equal the formula symbolically, and |f - T_N| / |f| is
measured against mpmath at points up to the splice's threshold (`remainder_within`).

>>> z = sp.Symbol("z", real=True)
>>> t = TaylorPolynomial(z - sp.tanh(z), z, 7)
>>> sp.nsimplify(t.polynomial)       # its coefficients are 128-bit numbers
17*z**7/315 - 2*z**5/15 + z**3/3
>>> sp.nsimplify(t.horner())
z**3*(z**2*(17*z**2/315 - 2/15) + 1/3)
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import mpmath
import numpy as np
import sympy as sp

from symgrad.definition.exact import converged, mp_function
from symgrad.simplify.power_series import NoSeries, taylor_coefficients

#: Degrees proposed, lowest first: the splice takes the first that is accurate far
#: enough out (each costs about degree/2 multiply-adds a value in the kernel).
DEGREES = (16, 32, 64, 128)
#: The relative truncation error the proof allows where the branch is used (2^-53: half
#: a float64 ulp); `accuracy.choose` only takes splices that meet it.
REMAINDER = 2.0 ** -53


class TaylorPolynomial(sp.Function):
    """T_N[f](z): the Taylor polynomial of f at 0 to degree N (args f, z, N)."""

    nargs = 3
    polynomial_branch = True   # `op_count.evaluation_cost`: no special function

    @classmethod
    def eval(cls, f, z, n):   # noqa: ANN001, ANN206 -- SymPy's protocol
        return None   # stays a node: see the module docstring

    @property
    def formula(self) -> sp.Expr:
        return self.args[0]

    @property
    def variable(self) -> sp.Symbol:
        return self.args[1]

    @property
    def degree(self) -> int:
        return int(self.args[2])

    @cached_property
    def polynomial(self) -> sp.Expr:
        """The polynomial, written out: its coefficients as 128-bit numbers, from truncated
        power series arithmetic (`power_series`; SymPy's symbolic ``series`` can take
        minutes on a nested formula). Raises `power_series.NoSeries` where f has no
        Taylor series at 0."""
        z = self.variable
        coeffs = taylor_coefficients(self.formula, z, self.degree)
        if coeffs is None:
            raise NoSeries(f"no Taylor series at 0 for {self.formula}")
        return sp.Add(*(sp.Float(mpmath.nstr(c, 40), 40) * z**k
                        for k, c in enumerate(coeffs) if c != 0))

    def horner(self) -> sp.Expr:
        """The polynomial as a kernel evaluates it: Horner's rule, in z^2 when every power
        has one parity (z^k times a polynomial in z^2: half the steps)."""
        z = self.variable
        poly = sp.Poly(self.polynomial, z)
        powers = [m[0] for m in poly.monoms()]
        low = min(powers)
        if all((k - low) % 2 == 0 for k in powers):
            w = sp.Dummy("w")
            inner = sp.Add(*(c * w ** ((k - low) // 2)
                             for (k,), c in zip(poly.monoms(), poly.coeffs(), strict=True)))
            return z**low * sp.horner(inner, wrt=w).subs(w, z**2)
        return sp.horner(self.polynomial, wrt=z)

    def doit(self, **hints) -> sp.Expr:
        return self.polynomial

    def _eval_is_real(self) -> bool | None:
        return self.formula.is_real

    def _eval_derivative(self, s: sp.Symbol) -> sp.Expr:
        return sp.diff(self.polynomial, s)

    def _latex(self, printer) -> str:
        return (rf"T_{{{self.degree}}}\left[{printer._print(self.formula)}\right]"
                rf"({printer._print(self.variable)})")

    def _sympystr(self, printer) -> str:
        return f"T{self.degree}[{printer._print(self.formula)}]({self.variable})"

    def _numpycode(self, printer) -> str:
        return printer._print(self.horner())

    _mpmathcode = _pythoncode = _numbacode = _numpycode


def analytic_at_zero(f: sp.Expr, z: sp.Symbol) -> bool:
    """True if f is a formula in z alone with no kink (Abs, Max, Piecewise, ...): one whose
    Taylor series at 0 `power_series` may take."""
    kinked = (sp.Abs, sp.Max, sp.Min, sp.Heaviside, sp.sign, sp.Piecewise)
    return f.free_symbols == {z} and not f.has(*kinked)


def taylor_candidates(f: sp.Expr, z: sp.Symbol) -> Iterator[tuple[str, sp.Expr]]:
    """(label, T_N[f]) for N in `DEGREES`, lazily (each series is taken when asked for):
    none if f is not analytic at 0 or has no Taylor series there (`power_series.NoSeries`:
    a pole, a branch point, a function without a series rule)."""
    if not analytic_at_zero(f, z):
        return
    for n in DEGREES:
        node = TaylorPolynomial(f, z, n)
        try:
            if node.polynomial == 0:   # f vanishes to this degree: try a higher one
                continue
        except NoSeries:
            return
        yield f"Taylor polynomial of degree {n} at 0", node


def remainder_within(node: TaylorPolynomial, radius: float, points: int = 64) -> bool:
    """True if |f - T_N| <= `REMAINDER` |f| at ``points`` magnitudes below ``radius``
    (both signs, log-spaced over six decades; the relative remainder of a series only
    shrinks towards 0), the exact values from mpmath."""
    z = node.variable
    f = mp_function(node.formula, (z,))
    poly = sp.lambdify(z, node.polynomial, "mpmath")
    mags = np.geomspace(radius * 1e-6, radius, points, endpoint=False)
    for m in mags:
        for x in (float(m), -float(m)):
            exact = converged(f, [x], trust_zero=False)
            if exact is None:
                return False
            if exact == 0:
                continue
            with mpmath.workprec(256):
                approx = poly(mpmath.mpf(x))
                if abs(approx - exact) > REMAINDER * abs(exact):
                    return False
    return True
