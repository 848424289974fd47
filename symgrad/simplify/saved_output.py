"""Re-express a derivative f'(z) in terms of the saved forward output a = f(z).

The engine *searches*; nothing is keyed by activation name. Candidates:

1. direct substitution: every occurrence of f(z) in f'(z) becomes a
   (tanh: 1 - tanh(z)^2 -> 1 - a^2);
2. inversion: when z occurs once in f, peel f's outer operations to get
   z = f^-1(a) (bounded, structural: no open-ended ``solve``), substitute and
   simplify (sigmoid -> a(1 - a), softplus -> 1 - exp(-a));
3. branch by branch for Piecewise/Heaviside derivatives: each branch value is
   rewritten with the inverse of the forward branch active there, and each
   condition ``z > c`` becomes ``a > f(c)`` (ELU -> 1 if a > 0 else a + alpha,
   ReLU -> [a > 0]).
4. for hidden layers, which save z beside a: a gated activation f = z g(z) gives
   g(z) = a/z, and a part T of g that g depends on alone (erf(z/sqrt(2)) in GELU,
   e^-z in Swish) is read off a by inverting g in T (`gate_forms`). GELU's slope
   Phi(z) + z phi(z) becomes a/z + z phi(z): the backward pass evaluates one
   exponential instead of an erf and an exponential. a/z is 0/0 at z = 0 and
   inexact where a is subnormal, so the kernel evaluates the slope's limit at 0 for
   |z| < `GATE_GUARD` (2^-100: there f'(z) rounds to f'(0) for any slope of moderate
   steepness at 0; the accuracy probe samples 0 and tiny |z|, so the guard is measured
   like the rest).

A candidate of 1-3 is accepted only if it is free of z (4: in a and z), uses
whitelisted functions, passes a numeric check at random points and kinks, is shown
equal symbolically (``candidate(f(z)) - f'(z)`` reduces to 0, `symgrad.simplify.zero`),
and is accurate: within `DERIVATIVE_ULPS` ulps of max(|f'|, 1) in float32 and float64
over the whole range of z, measured against mpmath (`symgrad.simplify.accuracy`)
with a as the forward pass computes it (an exact inverse can still overflow).
Otherwise the derivative stays in z (Swish: its gate form is 11.5 ulp off), in the
most accurate of its forms (as derived, or rewritten by the stable rules).

The forward form is chosen the same way (`choose_forward`): the formula, the
activation's own stable form and the stable rules' rewrites of both are measured
against the exact value, and the first within `FORWARD_ULPS` ulps (relative) is
evaluated.

>>> z, a = sp.symbols("z a", real=True)
>>> in_saved_output(sp.tanh(z), 1 - sp.tanh(z)**2, z, a).expr
1 - a**2
>>> in_saved_output(1/(1 + sp.exp(-z)), sp.exp(-z)/(1 + sp.exp(-z))**2, z, a).expr
a*(1 - a)
>>> r = in_saved_output(z/(1 + sp.exp(-z)), sp.diff(z/(1 + sp.exp(-z)), z), z, a)
>>> r.uses, r.method
(('z',), 'no form in the output found; kept in z (as derived, through one exponential)')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp
from sympy.core.relational import Relational

from symgrad.definition.formulas import A, Z
from symgrad.definition.supported import LAMBDIFY_MODULES, unsupported_nodes
from symgrad.derive.elementwise import RawActivation
from symgrad.derive.plan import ActivationPlan, Identity
from symgrad.simplify.accuracy import Choice, choose
from symgrad.simplify.one_exponential import through_one_exponential
from symgrad.simplify.stable import log_near_one, stabilise
from symgrad.simplify.zero import bounded_step, breakpoints, zero_method

MAX_OPS = 120
FORWARD_ULPS = 4.0      # forward values: relative, wherever the exact value is normal
DERIVATIVE_ULPS = 8.0   # derivatives and fused deltas: ulps of max(|exact|, 1)


@dataclass(frozen=True)
class Rewrite:
    """The chosen form of a derivative and how it was found."""

    expr: sp.Expr
    uses: tuple[str, ...]   # subset of ("z", "a"), by the names of the given symbols
    method: str
    shortfall: str = ""     # where no form met the bound: the chosen one's worst error
    evaluated: sp.Expr | None = None   # what the kernel evaluates, where it differs


@bounded_step(lambda expr, *args, **kwargs: expr)   # out of time: keep the form as it is
def tidy(expr: sp.Expr, max_ops: int = MAX_OPS) -> sp.Expr:
    """A short equivalent form: the fewest operations among cancel/factor/simplify.

    A leading minus sign is pushed into a binomial factor so a*(a - 1)*(-1)
    reads a*(1 - a).
    """
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*[(tidy(e, max_ops), c) for e, c in expr.args])
    if sp.count_ops(expr) > max_ops:
        return flip_sign(expr)
    forms = [sp.factor(expr), sp.cancel(expr), expr]
    # Ties go to the earliest form: factored products read like the lecture notes.
    best = min((flip_sign(f) for f in forms), key=lambda e: sp.count_ops(e))
    simplified = flip_sign(sp.simplify(expr))
    # simplify's rewrites (trigonometric, hyperbolic, radicals) are taken only where the
    # prover can show them (sg.check proves every identity): SymPy turned a loss's slope
    # into 14/(3 cosh(7p - 7y) + 5) and the nested tan(atan(tan(atan(u)/2))/2) into forms
    # no zero test confirmed, and sg.check failed a right model
    if sp.count_ops(simplified) < sp.count_ops(best) \
            and zero_method(simplified - expr, max_ops) is not None:
        return simplified
    return best


def flip_sign(expr: sp.Expr) -> sp.Expr:
    """Write factors as (p - y) and (1 - p) rather than (-p + y) and -(p - 1)."""
    if not isinstance(expr, sp.Mul):
        return expr
    coeff, factors = expr.as_coeff_mul()
    sign, out = (1 if coeff >= 0 else -1), []
    flippable = []
    for f in factors:
        base, e = f.as_base_exp()
        odd = e.is_integer and e % 2 == 1 if e.is_Integer else False
        if isinstance(base, sp.Add) and odd and sp.sstr(base).startswith("-"):
            out.append((-base) ** e)
            sign = -sign
        else:
            if isinstance(base, sp.Add) and odd:
                flippable.append(len(out))
            out.append(f)
    if sign < 0 and flippable:
        i = flippable[-1]
        base, e = out[i].as_base_exp()
        out[i] = (-base) ** e
        sign = 1
    coeff = sign * abs(coeff)
    if coeff != 1 and any(isinstance(f, sp.Add) for f in out):
        # Keep 2*(p - y) factored: an evaluated Mul would distribute the number.
        return sp.Mul(coeff, sp.Mul(*out), evaluate=False)
    return sp.Mul(coeff, *out)


def invert(f: sp.Expr, z: sp.Symbol, a: sp.Expr, depth: int = 12) -> sp.Expr | None:
    """z as a function of a from a = f(z), peeling one outer operation at a time.

    Only works when z occurs once in f; returns None otherwise (no open-ended solve).
    """
    for _ in range(depth):
        if f == z:
            return a
        if f.count(z) != 1:
            return None
        if isinstance(f, sp.Add):
            inner = [t for t in f.args if t.has(z)][0]
            a, f = a - (f - inner), inner
        elif isinstance(f, sp.Mul):
            inner = [t for t in f.args if t.has(z)][0]
            a, f = a / (f / inner), inner
        elif isinstance(f, sp.Pow) and not f.exp.has(z):
            a, f = a ** (1 / f.exp), f.base
        elif isinstance(f, sp.exp):
            a, f = sp.log(a), f.args[0]
        elif isinstance(f, sp.log):
            a, f = sp.exp(a), f.args[0]
        elif isinstance(f, sp.tanh):
            a, f = sp.atanh(a), f.args[0]
        elif isinstance(f, sp.sinh):
            a, f = sp.asinh(a), f.args[0]
        elif isinstance(f, sp.atan):
            a, f = sp.tan(a), f.args[0]
        else:
            return None
    return None


def _lambda(expr: sp.Expr, var: sp.Symbol):
    fn = sp.lambdify([var], expr, modules=LAMBDIFY_MODULES)
    return lambda x: np.broadcast_to(np.asarray(fn(x), dtype=float), np.shape(x))


def _sample_points(f: sp.Expr, z: sp.Symbol, seed: int = 0) -> np.ndarray:
    pts = list(np.random.default_rng(seed).uniform(-4, 4, 64))
    for c in breakpoints(f, z) or []:
        if c.is_number:
            c = float(c)
            pts += [c, c - 1e-3, c + 1e-3]
    return np.array(pts + [0.0, 0.5, -0.5])


def _verified(candidate: sp.Expr, f: sp.Expr, d: sp.Expr, z: sp.Symbol, a: sp.Symbol) -> bool:
    """Free of z, printable, equal to f'(z) at sample points and symbolically."""
    if candidate.has(z) or candidate.has(sp.nan, sp.zoo) or unsupported_nodes(candidate):
        return False
    pts = _sample_points(f, z)
    candidate_fn = _lambda(candidate, a)
    with np.errstate(all="ignore"):
        lhs = candidate_fn(_lambda(f, z)(pts))
        rhs = _lambda(d, z)(pts)
    if not np.allclose(lhs, rhs, rtol=1e-8, atol=1e-10, equal_nan=False):
        return False
    return zero_method(candidate.subs(a, f) - d) is not None


GATE_GUARD = sp.Integer(2) ** -100


def gate_forms(f: sp.Expr, d: sp.Expr, z: sp.Symbol, a: sp.Symbol
               ) -> list[tuple[str, sp.Expr, sp.Expr]]:
    """f'(z) (``d``) in a and z for a gated f = z g(z): (label, guarded form, exact form).

    Each function call T in g such that g depends on z only through T is solved for
    from g(T) = a/z (`invert`) and substituted. The exact form is proven equal to
    ``d`` wherever z != 0; the guarded one returns lim f'(z) at z = 0 for
    |z| < `GATE_GUARD`, where a/z would be 0/0 or read a subnormal a.

    >>> z, a = sp.symbols("z a", real=True)
    >>> gelu = z * (1 + sp.erf(z / sp.sqrt(2))) / 2
    >>> [exact for _, _, exact in gate_forms(gelu, sp.diff(gelu, z), z, a)]
    [a/z + sqrt(2)*z*exp(-z**2/2)/(2*sqrt(pi))]
    """
    if not isinstance(f, sp.Mul) or z not in f.args:
        return []
    g = f / z
    if not g.has(z):
        return []
    w = sp.Dummy("w")
    out = []
    at_zero: sp.Expr | None = None   # lim f'(z) at 0: only once a form needs its guard
    for part in sp.preorder_traversal(g):
        if not (isinstance(part, sp.Function) and part.has(z)) or not d.has(part):
            continue
        g_in_part = g.xreplace({part: w})
        if g_in_part.has(z):
            continue
        solved = invert(g_in_part, w, a / z)
        if solved is None:
            continue
        # Tidied, and as substituted: tidying can multiply out a square of a/z that
        # then overflows as a**2 (z*(1 + tanh z)/2)
        as_substituted = d.xreplace({part: solved})
        for exact in dict.fromkeys((tidy(as_substituted), as_substituted)):
            if exact.has(sp.nan, sp.zoo) or not _verified_gate(exact, f, d, z, a):
                continue
            at_zero = _limit_at_zero(d, z) if at_zero is None else at_zero
            if at_zero is None:   # no finite slope at 0 to fall back on: no gate form
                return []
            guarded = sp.Piecewise((at_zero, sp.Abs(z) < GATE_GUARD), (exact, True))
            out.append((f"the gate g(z) = a/z read off f = z g(z) for {part}", guarded,
                        exact))
    return out


@bounded_step(lambda d, z: None)
def _limit_at_zero(d: sp.Expr, z: sp.Symbol) -> sp.Expr | None:
    value = sp.limit(d, z, 0)
    return value if value.is_number and value.is_finite and value.is_real else None


def _verified_gate(exact: sp.Expr, f: sp.Expr, d: sp.Expr, z: sp.Symbol, a: sp.Symbol
                   ) -> bool:
    """Printable, equal to f'(z) at sample points (z != 0) and symbolically."""
    if unsupported_nodes(exact):
        return False
    pts = _sample_points(f, z)
    pts = pts[pts != 0]
    fn = sp.lambdify([z, a], exact, modules=LAMBDIFY_MODULES)
    with np.errstate(all="ignore"):
        lhs = np.broadcast_to(np.asarray(fn(pts, _lambda(f, z)(pts)), dtype=float), pts.shape)
        rhs = _lambda(d, z)(pts)
    if not np.allclose(lhs, rhs, rtol=1e-8, atol=1e-10, equal_nan=False):
        return False
    return zero_method(exact.subs(a, f) - d) is not None


def in_z_forms(d: sp.Expr, z: sp.Symbol = Z) -> list[tuple[str, sp.Expr]]:
    """f'(z) as derived and over one denominator, then the stable rules' rewrites of it
    (as is and term by term), then each of these through one exponential
    (`through_one_exponential`).

    Over one denominator, ISRU's slope -z^2/(z^2 + 1)^(3/2) + 1/sqrt(z^2 + 1), whose
    terms cancel for large |z|, is (z^2 + 1)^(-3/2).
    """
    forms = [("as derived", d)]
    together = sp.together(d)
    if together != d:
        forms.append(("over one denominator", together))
    factored = factored_forms(forms)
    for label, base in (("", d), (" term by term", sp.expand(d, power_exp=False))):
        for logs, stable, used in _rule_rewrites(base):
            names = ", ".join(rule.name for rule in used)
            forms.append((f"stable rules{label}{logs}: {names}", stable))
    return forms + one_exponential_forms(forms, z) + factored + zero_selected_forms(forms)


def _rule_rewrites(base: sp.Expr) -> list[tuple[str, sp.Expr, tuple]]:
    """The stable rules' rewrites of ``base``, with its logs expanded first and as written:
    (label suffix, rewrite, rules used), for each that some rule changed."""
    out = []
    for expand in (True, False):
        stable, used = stabilise(base, distribute=False, expand=expand)
        if used:
            out.append(("" if expand else " (logs as written)", stable, used))
    if base.has(sp.log):
        near_one = log_near_one(base)
        if near_one != base:
            stable, used = stabilise(near_one, distribute=False, expand=False)
            out.append((" (logs combined, log(w) as log1p(w - 1))", stable, used))
    return out


#: The longest form (SymPy operations) `factored_forms` factors (each takes 2-10 ms).
FACTOR_MAX_OPS = 40


def factored_forms(forms: list[tuple[str, sp.Expr]]) -> list[tuple[str, sp.Expr]]:
    """Each short form with its polynomial sums factored over the rationals, where that
    changes it.

    A polynomial cancels near its roots as written: 3z/2 + 3/2 rounds 3z/2 and then
    loses that rounding's relative size near z = -1 (32 ulp off in float32), and
    2z^2 + z near z = -1/2. Factored, the root is a factor's own exact cancellation
    (z + 1 is exact near -1), 3(z + 1)/2 and z(2z + 1) are within an ulp. Sums inside
    function arguments are factored too (tanh(3(z + 1)/2)); only sums of powers of the
    symbols are, never one over exponentials (SymPy would factor e^(z/500) - 1 into
    cyclotomic polynomials of e^(z/500)). Like every candidate, a factored form is
    measured, and taken only where the forms before it miss the bound.

    >>> z = sp.Symbol("z", real=True)
    >>> factored_forms([("as written", 2*z**2 + z), ("other", sp.exp(z) - 1)])
    [('as written, factored', z*(2*z + 1))]
    >>> factored_forms([("slope", sp.exp(3*z/2 + sp.Rational(3, 2)) + z**2 - 1)])
    [('slope, factored', (z - 1)*(z + 1) + exp(3*(z + 1)/2))]
    """
    def factor_sum(e: sp.Add) -> sp.Expr:
        # the terms that are powers of the symbols (and a number), factored together
        poly = [t for t in e.args if t.is_Number or (t.free_symbols and t.is_polynomial())]
        if len(poly) < 2 or all(t.is_Number for t in poly):
            return e
        rest = [t for t in e.args if t not in poly]
        return sp.Add(sp.factor(sp.Add(*poly)), *rest)

    out = []
    for label, form in forms:
        if sp.count_ops(form) > FACTOR_MAX_OPS:
            continue
        try:
            factored = form.replace(lambda e: e.is_Add, factor_sum)
        except (sp.PolynomialError, NotImplementedError, TypeError, ValueError):
            continue
        if factored != form:
            out.append((f"{label}, factored", factored))
    return out


def zero_selected_forms(forms: list[tuple[str, sp.Expr]]) -> list[tuple[str, sp.Expr]]:
    """Each form with every product that has a step among its factors (max(0, u),
    min(0, u), a Heaviside step, a two-branch Piecewise with a 0 branch) written as a
    select: 0 where the step vanishes, the product elsewhere.

    A product with a vanishing factor is not 0 where another factor overflows: e^(-z)
    max(0, z) as written is inf * 0 = NaN at z = -1000, where its value is 0. The select
    takes the 0 (and the kernel still vectorises). Like every candidate it is measured,
    and taken only where the forms before it miss the bound.

    >>> z = sp.Symbol("z", real=True)
    >>> zero_selected_forms([("as written", sp.exp(-z) * sp.Max(0, z)), ("other", z**2)])
    [('as written, 0 where a step vanishes', Piecewise((0, z <= 0), (exp(-z)*Max(0, z), True)))]
    """
    def gated(e: sp.Basic) -> bool:   # a product with a step among its factors
        return e.is_Mul and any(_vanishes_where(f) is not None for f in e.args)

    def select(e: sp.Mul) -> sp.Piecewise:
        where = [_vanishes_where(f) for f in e.args]
        return sp.Piecewise((0, sp.Or(*(c for c in where if c is not None))), (e, True))

    def merged(e: sp.Add) -> sp.Basic:
        # terms that vanish under the same condition share one select (one cases block)
        groups: dict[sp.Basic, list[sp.Expr]] = {}
        rest = []
        for term in e.args:
            if isinstance(term, sp.Piecewise) and len(term.args) == 2 \
                    and term.args[0].expr == 0 and term.args[1].cond == sp.true:
                groups.setdefault(term.args[0].cond, []).append(term.args[1].expr)
            else:
                rest.append(term)
        if all(len(g) < 2 for g in groups.values()):
            return e
        return sp.Add(*rest, *(sp.Piecewise((0, c), (sp.Add(*g), True))
                               for c, g in groups.items()))

    out = []
    for label, form in forms:
        if not any(gated(e) for e in sp.preorder_traversal(form)):
            continue
        selected = form.replace(gated, select)
        selected = selected.replace(lambda e: e.is_Add, merged)
        if selected != form:
            out.append((f"{label}, 0 where a step vanishes", selected))
    return out


def _vanishes_where(factor: sp.Basic) -> sp.Basic | None:
    """The condition under which the step ``factor`` is 0 (None: not such a step)."""
    if isinstance(factor, (sp.Max, sp.Min)) and len(factor.args) == 2 and 0 in factor.args:
        u = factor.args[1] if factor.args[0] == 0 else factor.args[0]
        return u <= 0 if isinstance(factor, sp.Max) else u >= 0
    if isinstance(factor, sp.Heaviside):
        at_zero = factor.args[1] if len(factor.args) > 1 else sp.S.Half
        return factor.args[0] <= 0 if at_zero == 0 else factor.args[0] < 0
    if isinstance(factor, sp.Piecewise) and len(factor.args) == 2 \
            and factor.args[1].cond == sp.true:
        (first, cond), (second, _) = factor.args
        if first == 0:
            return cond
        if second == 0:
            return sp.Not(cond)
    return None


def one_exponential_forms(forms: list[tuple[str, sp.Expr]], z: sp.Symbol = Z
                          ) -> list[tuple[str, sp.Expr]]:
    """Each form rewritten through t = e^(-|z|) where it can be (labels say so)."""
    out = []
    for label, form in forms:
        rewritten = through_one_exponential(form, z)
        if rewritten is not None:
            out.append((f"{label}, through one exponential", rewritten))
    return out


def _branches(d: sp.Expr) -> list[tuple[sp.Expr, sp.Basic]] | None:
    """Derivative as (value, condition) branches; Heaviside(g, 0) -> [g > 0]."""
    if isinstance(d, sp.Piecewise):
        return list(d.args)
    hs = d.atoms(sp.Heaviside)
    if len(hs) == 1:
        h = hs.pop()
        if h.args[1:] == (0,):
            return [(d.xreplace({h: sp.Integer(1)}), h.args[0] > 0),
                    (d.xreplace({h: sp.Integer(0)}), sp.true)]
    return None


def _faithful_in_floats(f: sp.Expr, z: sp.Symbol, c: sp.Expr, fc: sp.Expr) -> bool:
    """Whether ``z > c`` and ``a > f(c)`` agree in floating point near the kink ``c``.

    In real numbers they agree for an increasing f; in floats the first doubles past c
    must also give values of f that round past f(c). They do when f moves at least
    twice as fast as the doubles do: |f'| * |c| >= 2 |f(c)| on both sides (a spacing of
    the doubles at c times |f'| covers two spacings at f(c)). A flat outer branch (slope
    1e-4 past a kink at f(c) = 1) does not: a rounds to f(c) for 3e-4 past c in float32
    and the other branch's slope was used. With f(c) = 0 the sign alone decides: exact.
    """
    for side in (1, -1):
        h = side * sp.Rational(1, 10**6)
        slope = abs(float((f.subs(z, c + h) - fc) / h))
        if slope * abs(float(c)) < 2 * abs(float(fc)):
            return False
    return True


def _map_condition(cond: sp.Basic, f: sp.Expr, z: sp.Symbol, a: sp.Symbol) -> sp.Basic | None:
    """z > c  ->  a > f(c), if f is increasing around c (flipped if decreasing)."""
    if cond in (sp.true, sp.false):
        return cond
    if isinstance(cond, (sp.And, sp.Or)):
        parts = [_map_condition(c, f, z, a) for c in cond.args]
        return None if any(p is None for p in parts) else type(cond)(*parts)
    if not isinstance(cond, Relational):
        return None
    sol = sp.solve_linear(cond.lhs - cond.rhs, symbols=[z])
    if not sol or sol[0] != z or sol[1].free_symbols:
        return None
    c = sol[1]
    fc = f.subs(z, c)
    eps = sp.Rational(1, 1000)
    slope = np.sign(float(f.subs(z, c + eps) - f.subs(z, c - eps)))
    if slope == 0 or not fc.is_number:
        return None
    if fc != 0 and not _faithful_in_floats(f, z, c, fc):
        return None
    # Rewrite "lhs op rhs" as "z op' c" by its truth table at c +/- 1, then map.
    above = bool(cond.subs(z, c + 1))
    at = bool(cond.subs(z, c))
    if above == bool(cond.subs(z, c - 1)):
        return None
    if slope < 0:
        above = not above
    if above:
        return a >= fc if at else a > fc
    return a <= fc if at else a < fc


def _branchwise(f: sp.Expr, d: sp.Expr, z: sp.Symbol, a: sp.Symbol) -> sp.Expr | None:
    branches = _branches(d)
    if branches is None:
        return None
    fpw = sp.piecewise_fold(f.rewrite(sp.Piecewise))
    f_branches = list(fpw.args) if isinstance(fpw, sp.Piecewise) else [(fpw, sp.true)]
    out = []
    for value, cond in branches:
        new_cond = _map_condition(cond, f, z, a)
        if new_cond is None:
            return None
        if value.has(z):
            # The forward branch active where this derivative branch is: find it by
            # sampling the region; the verification below proves the choice.
            zs = [sp.Integer(k) / 4 for k in range(-16, 17)]
            inside = [pt for pt in zs if bool(cond.subs(z, pt))]
            active = None
            for fv, fc in f_branches:
                if inside and all(bool(fc.subs(z, pt)) for pt in inside[:3]):
                    active = fv
                    break
            inv = invert(active, z, a) if active is not None else None
            if inv is None:
                return None
            value = tidy(value.subs(z, inv))
        out.append((value, new_cond))
    return sp.Piecewise(*out)


def in_saved_output(f: sp.Expr, d: sp.Expr, z: sp.Symbol, a: sp.Symbol,
                    forward: sp.Expr | None = None, gates: bool = False) -> Rewrite:
    """Search for f'(z) (``d``) written in a = f(z); fall back to z. See module doc.

    ``forward`` is the form the forward pass evaluates a by (default: chosen here).
    ``gates``: also forms in a and z (`gate_forms`), for layers that save both.
    """
    if not d.has(z):
        return Rewrite(d, (), "constant")
    in_a: list[tuple[str, sp.Expr]] = []
    direct = d.subs(f, a)
    if not direct.has(z):
        in_a.append(("substitute f(z) = a", tidy(direct)))
    inv = invert(f, z, a)
    if inv is not None:
        in_a.append(("substitute z = f^-1(a)", tidy(d.subs(z, inv))))
    if d.has(sp.Piecewise, sp.Heaviside):
        pw = _branchwise(f, d, z, a)
        if pw is not None:
            in_a.append(("branch by branch in a", pw))
    in_a = [(m, c) for m, c in in_a if _verified(c, f, d, z, a)]
    if forward is None:
        forward = choose_forward(f, None, z).expr
    # Kept in z, exactly as SymPy derived it or rewritten by the stable rules:
    # "simplified" forms of such derivatives (e.g. cosh(z/2)**-2) are no shorter and
    # overflow sooner. A form in a comes first when it is accurate enough.
    kept = "no form in the output found; kept in z" if not in_a else "kept in z"
    in_z = [(kept + ("" if m == "as derived" else f" ({m})"), c) for m, c in in_z_forms(d, z)]
    # Forms in a and z come last: choose() takes one only where it evaluates fewer
    # special functions than the accurate forms before it.
    gated = gate_forms(f, d, z, a) if gates else []
    exact_of = {guarded: exact for _, guarded, exact in gated}
    chosen = choose(in_a + in_z + [(m, guarded) for m, guarded, _ in gated], d,
                    DERIVATIVE_ULPS, floor=1.0, saved={a: forward}, var=z, fixed=exact_of)
    uses = tuple(s.name for s in (z, a) if chosen.expr.has(s))
    if chosen.expr in exact_of:
        return Rewrite(exact_of[chosen.expr], uses, chosen.label,
                       shortfall(chosen, DERIVATIVE_ULPS), evaluated=chosen.expr)
    return Rewrite(chosen.expr, uses, chosen.label, shortfall(chosen, DERIVATIVE_ULPS))


def shortfall(chosen: Choice, bound: float) -> str:
    """"" if ``chosen`` is within ``bound`` ulps in both dtypes, else its worst errors."""
    if chosen.ulps <= bound:
        return ""
    return "; ".join(str(a) for a in chosen.accuracy if a.ulps > bound)


def choose_forward(f: sp.Expr, given: sp.Expr | None, z: sp.Symbol = Z) -> Choice:
    """The evaluation form of f(z): the given stable form, the formula, or a rule's rewrite
    of either; the first within `FORWARD_ULPS` (relative) in both dtypes, else the best."""
    candidates: list[tuple[str, sp.Expr]] = []
    for label, base in (("stable form given with the activation", given), ("as written", f)):
        if base is None:
            continue
        candidates.append((label, base))
        for logs, stable, used in _rule_rewrites(base):
            candidates.append((label + "; " + " ".join(rule.note for rule in used) + logs,
                               stable))
    factored, selected = factored_forms(candidates), zero_selected_forms(candidates)
    candidates += one_exponential_forms(candidates, z) + factored + selected
    return choose(candidates, f, FORWARD_ULPS, floor=0.0, var=z)


def activation_plan(raw: RawActivation, out_symbol: sp.Symbol = A
                    ) -> tuple[ActivationPlan, tuple[Identity, ...]]:
    """The `ActivationPlan` of a raw activation derivative, plus its stable-form identity.

    ``out_symbol`` is the saved output the derivative may read (``a`` hidden, ``p`` output).
    """
    forward_choice = choose_forward(raw.forward, raw.stable_given)
    stable = forward_choice.expr
    found = in_saved_output(raw.forward, raw.derivative_raw, Z, out_symbol, stable, gates=True)
    # No candidate form met the bound: the most accurate is used, and the plan says so
    # (e.g. x*tanh(e^x): its slope is inf*0 = NaN once e^x overflows, in every form).
    misses = [(what, form, off) for what, form, off in (
        ("forward value", stable, shortfall(forward_choice, FORWARD_ULPS)),
        ("derivative", found.expr, found.shortfall)) if off]
    accuracy_note = ""
    if misses:
        accuracy_note = (f"activation {raw.name!r}: no evaluation form within the accuracy "
                         "bound was found; "
                         + "; ".join(f"its {what} as `{form}` is off by {off}"
                                     for what, form, off in misses)
                         + " (inf: not finite where the exact value is)")
    uses = tuple(("a" if s == out_symbol.name else s) for s in found.uses)
    domain = {Z: (-4.0, 4.0)}
    ident = Identity(f"{raw.name}: derivative in saved values ({found.method})",
                     raw.derivative_raw, found.expr, {out_symbol: raw.forward}, domain)
    extra: tuple[Identity, ...] = ()
    if stable != raw.forward:
        extra = (Identity(f"{raw.name}: stable forward form", raw.forward, stable, {},
                          {Z: (-10.0, 10.0)}),)
    plan = ActivationPlan(raw.name, raw.latex, raw.forward, stable, raw.derivative_raw,
                          found.expr, uses, ident, accuracy_note, found.evaluated)
    return plan, extra
