"""The evaluation forms of every registered activation, measured against mpmath.

The fourth oracle (STYLE.md): the exact value of the activation's *formula* in
high-precision arithmetic (written here, independent of the library's own
accuracy check), so a kernel and a reference that share an inaccurate form
cannot agree their way past a bug. Each form is evaluated operation by operation
in the dtype, as a kernel does (`symgrad.simplify.accuracy.evaluate`), at points
log-spaced over |z| from 1e-6 to the dtype's largest number, both signs, with a
dense band where exponentials over- and underflow.

Goal (issue 8): forward values within 4 ulp relative wherever the exact value is a
normal number (with room for a factor z: z*g(z) is no more accurate than g(z));
derivatives within a few ulp of max(|f'|, 1).

The forward bound is the plain 4 ulp, also where the condition number
kappa(z) = |z f'(z) / f(z)| is large: GELU's tail z*erfc(-z/sqrt 2)/2 (kappa = 170
at z = -13, 2900 at z = -38) used to round the argument -z/sqrt 2, each rounding
costing up to kappa/2 ulp (88 ulp in float32, ~970 in float64); erfc(c*u) now takes
c*u as a double-double (`symgrad.simplify.accuracy.exact_argument`), in `evaluate` and in
the kernels, and `test_gelu_kernel_line_in_the_far_tail` measures the kernel's own line.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from numba import njit

import symgrad as sg
from symgrad.codegen import vecmath_kernels
from symgrad.codegen.printer import print_expr
from symgrad.definition.activations import REGISTRY
from symgrad.definition.formulas import A, Z
from symgrad.derive.elementwise import derive_elementwise
from symgrad.simplify.accuracy import evaluate
from symgrad.simplify.saved_output import activation_plan

ELEMENTWISE = sorted(n for n, cls in REGISTRY.items() if cls.entry.kind == "elementwise")
DTYPES = ("float32", "float64")
FORWARD_ULPS = 4.0
DERIVATIVE_ULPS = 8.0


def _points(dtype: str) -> np.ndarray:
    """Log-spaced and random log-uniform magnitudes, both signs, and 0 (not the library's
    grid)."""
    info = np.finfo(dtype)
    top = math.log10(float(info.max))
    rng = np.random.default_rng(8)
    mags = np.concatenate([np.logspace(-6, 3, 60), np.logspace(3, top - 0.001, 20),
                           10 ** rng.uniform(-6, top, 20),
                           rng.uniform(0.3, 50, 40),   # where the composites bend
                           rng.uniform(0.3, 1.2 * math.log(float(info.max)), 40)])
    # tiny ones: where a/z (a gated slope) would read a subnormal a, and 0 itself
    mags = np.concatenate([mags, [float(info.smallest_subnormal), float(info.tiny), 1e-35,
                                  1e-30, 1e-20, 1e-12]])
    mags = mags[mags < float(info.max)].astype(dtype)
    return np.unique(np.concatenate([mags, -mags, np.zeros(1, dtype)]))


def _erf(x):
    # mpmath's erf/erfc overflow internally past ~1e9; the answer there is exact anyway.
    return mpmath.erf(x) if abs(x) < 1e6 else mpmath.sign(x)


def _erfc(x):
    return mpmath.erfc(x) if abs(x) < 1e6 else (mpmath.mpf(0) if x > 0 else mpmath.mpf(2))


def _exp(x):
    return mpmath.exp(x) if abs(x) < 1e30 else (mpmath.inf if x > 0 else mpmath.mpf(0))


def _heaviside(x, h0=0):
    return mpmath.mpf(1) if x > 0 else (mpmath.mpf(h0) if x == 0 else mpmath.mpf(0))


MP = [{"erf": _erf, "erfc": _erfc, "exp": _exp, "Heaviside": _heaviside}, "mpmath"]


def exact(expr: sp.Expr, zs: np.ndarray, digits: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """expr(z) at 400 digits (enough for log(1 + e^-700)), as float64 hi + lo."""
    fn = sp.lambdify([Z], expr, modules=MP)
    hi, lo = np.full(len(zs), np.nan), np.zeros(len(zs))
    with mpmath.workdps(digits):
        for i, z in enumerate(zs.astype(np.float64)):
            try:
                v = mpmath.mpf(fn(mpmath.mpf(float(z))))
            except (ArithmeticError, ValueError):
                continue
            if not mpmath.isfinite(v) or abs(v) > 1e308:
                continue
            hi[i] = float(v)
            lo[i] = float(v - hi[i])
    return hi, lo


def ulps(got: np.ndarray, hi: np.ndarray, lo: np.ndarray, dtype: str, floor: float
         ) -> np.ndarray:
    g = got.astype(np.float64)
    with np.errstate(all="ignore"):
        unit = np.spacing(np.maximum(np.abs(hi), floor).astype(dtype)).astype(np.float64)
        err = np.abs((g - hi) - lo) / unit
    return np.where(np.isfinite(g), err, np.inf)


def _normal(hi: np.ndarray, z: np.ndarray, dtype: str) -> np.ndarray:
    """Where the exact value is a normal number, with room for a factor z."""
    info = np.finfo(dtype)
    zf = np.abs(z.astype(np.float64))
    return (np.abs(hi) <= float(info.max)) \
        & (np.abs(hi) >= float(info.tiny) * np.maximum(1.0, zf))


def forward_errors(plan, dtype: str):
    """(points, error in ulps) where f is normal, and inf wherever f is finite (0 or
    subnormal too) and the form is not: e^(-z) max(0, z) as written was NaN at z = -1000."""
    z = _points(dtype)
    hi, lo = exact(plan.forward, z)
    normal = _normal(hi, z, dtype)
    with np.errstate(all="ignore"):
        got = evaluate(plan.stable_forward, {Z: z}, dtype)
        err = ulps(got, hi, lo, dtype, 0.0)
    finite = np.isfinite(hi) & (np.abs(hi) <= float(np.finfo(dtype).max))
    keep = normal | (finite & ~np.isfinite(got))
    return z[keep], err[keep]


def derivative_errors(plan, dtype: str):
    z = _points(dtype)
    hi, lo = exact(plan.derivative_raw, z)   # with the kink convention (at z = 0)
    fits = np.isfinite(hi) & (np.abs(hi) <= float(np.finfo(dtype).max))
    a = evaluate(plan.stable_forward, {Z: z}, dtype)
    # Where the forward value overflowed the network's output is inf already, whatever
    # the slope (x*atan(x) past 2e38 in float32); the forward measure holds a itself.
    fits &= np.isfinite(a)
    got = evaluate(plan.kernel_derivative, {Z: z, A: a}, dtype)   # as the kernels do
    return z[fits], ulps(got, hi, lo, dtype, 1.0)[fits]


def _plan(layer):
    return activation_plan(derive_elementwise(layer))[0]


def _worst(z, err) -> str:
    i = int(np.argmax(err))
    return f"{err[i]:.3g} ulp at z = {z[i]:.9g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_forward_within_4_ulp_relative(name, dtype):
    z, err = forward_errors(_plan(REGISTRY[name]()), dtype)
    assert z.size > 100   # the range was really covered
    assert err.max() <= FORWARD_ULPS, f"{name} {dtype}: {_worst(z, err)}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_within_a_few_ulp_of_max_slope_1(name, dtype):
    z, err = derivative_errors(_plan(REGISTRY[name]()), dtype)
    assert z.size > 100
    assert err.max() <= DERIVATIVE_ULPS, f"{name} {dtype}: {_worst(z, err)}"


def _kernel_line(expr: sp.Expr, dtype: str):
    """``expr`` printed as a kernel prints it, compiled in a loop over an array."""
    code = print_expr(expr, {Z: "z"}, dtype)
    env = {"math": math, "np": np, "f32": np.float32, "f64": np.float64}
    env.update({k: v for k, v in vars(vecmath_kernels).items() if k.startswith("vm_")})
    exec(f"def line(zs, out):\n    for i in range(zs.size):\n        z = zs[i]\n"  # noqa: S102
         f"        out[i] = {code}\n", env)
    return code, njit(error_model="numpy", fastmath={"contract"})(env["line"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_kernel_line_in_the_far_tail(dtype):
    """The compiled GELU line itself (vecmath's erfc of a double-double argument, not the
    NumPy mirror in `evaluate`) is within 4 ulp down to where GELU stops being normal."""
    plan = _plan(REGISTRY["gelu"]())
    code, line = _kernel_line(plan.stable_forward, dtype)
    assert "vm_erfc_scaled" in code, code
    deepest = 13.3 if dtype == "float32" else 37.8   # a little past the last normal value
    rng = np.random.default_rng(4)
    z = -np.concatenate([np.geomspace(0.5, deepest, 200), rng.uniform(3, deepest, 200)])
    z = z.astype(dtype)
    hi, lo = exact(plan.forward, z)
    got = np.empty_like(z)
    line(z, got)
    normal = _normal(hi, z, dtype)
    assert normal.sum() > 300 and float(np.abs(z[normal]).max()) > deepest - 0.5
    err = ulps(got, hi, lo, dtype, 0.0)[normal]
    assert err.max() <= FORWARD_ULPS, f"{code}: {_worst(z[normal], err)}"


_x = sg.var("x")
# Formulas as a user would write them, with no stable form given: the rule set plus the
# accuracy check must find the accurate evaluation form on its own (no name table).
CUSTOM = {
    "logistic_via_exp": sg.exp(_x) / (1 + sg.exp(_x)),        # inf/inf for x > 88 (float32)
    "softplus_naive": sg.log(1 + sg.exp(_x)),                 # overflows; 0 for x << 0
    "gauss_cdf_times_x": _x * (1 + sg.erf(_x / sg.sqrt(2))) / 2,   # GELU by hand: cancels
    "elu_like": sg.Piecewise((_x, _x > 0), (sg.exp(_x) - 1, True)),  # cancels near 0-
    "half_tanh_logistic": (1 + sg.tanh(_x / 2)) / 2,          # 0 at x = -20 in float32
    "scaled_expm1": 3 * sg.exp(_x) - 3,                       # c*exp - c: cancels near 0
    # log-expanded first, log(1 + e^-x) became x - max(x, 0) - log1p(e^-|x|): 0 for x > 0
    "log_sigmoid": -sg.log(1 + sg.exp(-_x)),
    "swish_by_hand": _x * sg.exp(_x) / (1 + sg.exp(_x)),      # slope: one exponential
    # gated, x*g(x): the slope reads g = a/x off the saved output (a guarded division)
    "gauss_cdf_scaled": _x * (1 + sg.erf(_x / 3)) / 2,
    "x_erf_half": _x * sg.erf(_x / 2),
    "x_atan": "x*atan(x)",                                    # a overflows before its slope
    # pi/2 + atan(x) cancels for x << 0: the arctan CDF was 0 below x = -1e16 in float64
    "atan_cdf": "atan(x)/pi + 1/2",
    "x_atan_cdf": "x*(atan(x)/pi + 1/2)",
    "atan_saturating": "pi/2 - atan(2*x)",                     # cancels for x >> 0
    # exp of a constant times x: fl(c x) would cost up to |c x|/2 ulp (exp_scaled)
    "softplus_beta": "log(1 + exp(3*x))/3",                   # 65 ulp at x = -70 before
    "quick_gelu": _x * sg.sigmoid(sp.Rational(1702, 1000) * _x),
    "logistic_tenth": "1/(1 + exp(-x/10))",
    # exp of a product: fl(x*x) would cost up to x^2/2 ulp (exp_product), 370 at x = 27
    "gaussian": "exp(-x**2)",
    "gaussian_wide": "exp(-x**2/3)",
    "x_gaussian": "x*exp(-x**2/2)",
    # differences that cancel near 0 (each was 0 below |x| ~ 1e-8 in float64)
    "log_cosh": "log(cosh(x))",                               # and cosh overflows past 710
    "cosh_minus_one": "(cosh(x) - 1)/4",
    "versine": "1 - cos(x)",
    # a centre: z - 1 rounds before the square (exp_product carries it as a two-sum)
    "gauss_centered": "exp(-(x - 1)**2)",
    # a log of numbers near 1 (logs combined, log1p(expm1(z)/2)), spliced at |z| = 2^k
    # with the softplus form, which cancels near 0 (SchNet's shifted softplus)
    "shifted_softplus": "log(exp(x) + 1) - log(2)",
    # z - max(z, 0) cancels for z > 0: -max(0, -z)
    "log_sigmoid_of_sigmoid": "log(sigmoid(x))",
    # z**2 overflows inside the root (hypot), the root minus z cancels (conjugate)
    "isru": "x/sqrt(1 + x**2)",
    "bent_identity": "(sqrt(x**2 + 1) - 1)/2 + x",
    "squareplus": "(x + sqrt(x**2 + 4))/2",
    "log_one_plus_square": "log(1 + x**2)",
    # exp of a polynomial: Horner in double-double (z - 1 rounds: |z|/2 ulp)
    "exp_shifted": "exp(x - 1)",
    # an exponent float64 rounds: x^(1/3) was ~120 ulp off at 1e308 (vm_pow_exact)
    "signed_cube_root": "Piecewise((x**(1/3), x > 0), (-(-x)**(1/3), True))",
    # every closed form cancels to a high power of x near 0: a Taylor branch there
    # (PyTorch's Tanhshrink was 0 below |x| ~ 1e-8, 1e18 ulp off)
    "tanhshrink": "x - tanh(x)",
    "expm1_minus_x": "exp(x) - 1 - x",
    "x_minus_sin": "x - sin(x)",
    "sinc": "sin(x)/x",                                       # its slope: 0/0 at 0
    # polynomials cancel near their roots as written; factored, each root is exact
    "linear_root": "3*x/2 + 3/2",
    "quadratic_roots": "2*x**2 + x",
    "cubic_roots": "x**3 - x",
    "tanh_of_linear": "tanh(3*x/2 + 3/2)",
    # a root that is no float: the constant is added as hi + lo (`constant_last`)
    "linear_third": "2*x + 4/3",
    "tanh_third": "tanh(x - 1/3)",
    # ... and a coefficient that is no float: c*z + d as one FMA and low parts (`affine_last`;
    # 32 float64 ulp at z = -0.6 before)
    "linear_fifths": "5*x/3 + 1",
    "tanh_affine": "tanh(7*x/5 - 2/3)",
    # a factor that vanishes times one that overflows: inf * 0 = NaN as written, where the
    # value is 0 (forward and slope); a select takes the 0 (`zero_selected_forms`)
    "max_times_decay": "Max(0, x)*exp(-x)",
    "min_times_growth": "Min(0, x)*exp(x)",
}
ROOTS = {"linear_root": (-1.0,), "quadratic_roots": (-0.5,), "cubic_roots": (-1.0, 1.0),
         "tanh_of_linear": (-1.0,), "linear_third": (-2 / 3,), "tanh_third": (1 / 3,),
         "linear_fifths": (-3 / 5,), "tanh_affine": (10 / 21,)}


MISH = "x*tanh(log(1 + exp(x)))"
# GELU's tanh approximation (PyTorch's approximate="tanh", GPT-2's gelu_new)
GELU_TANH = "x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x**3)))/2"
#: formulas whose slope fails only past a stated |z| (tested on their own below)
EXTRA = {"mish": MISH, "gelu_tanh": GELU_TANH,
         # (z^2 + 1)^(1/3) as hypot(z, 1)^(2/3), the exponent as a double-double; its
         # slope's z^2 overflows (inf * 0) past |z| = 1.8e19 in float32
         "cube_root_isru": "x/(1 + x**2)**(1/3)"}


@pytest.mark.parametrize("key", ["atan_cdf", "x_atan_cdf", "atan_saturating", "log_cosh",
                                 "cosh_minus_one", "versine", "sqrt_minus_one",
                                 "shifted_softplus", "log_sigmoid_of_sigmoid",
                                 "bent_identity", "squareplus", "log_one_plus_square",
                                 "mish"])
def test_rule_forms_are_proven(scratch_registries, key):
    """The rules' forms (-atan(1/u) where pi/2 +- atan(u) is small, 2 sinh^2(u/2) for
    cosh u - 1, splices of two forms, ...) are proven equal to the formula symbolically
    (branch by branch), not only measured."""
    from symgrad.prove.identity import prove_identity

    formula = CUSTOM.get(key) or EXTRA.get(key, "sqrt(1 + x**2) - 1")
    layer = sg.activation(f"acc_{key}", formula, replace=True)()
    plan, extra = activation_plan(derive_elementwise(layer))
    assert extra and plan.stable_forward != plan.forward
    for ident in (plan.identity, *extra):
        assert prove_identity(ident).max_error < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("key", sorted(CUSTOM))
def test_custom_formulas_get_an_accurate_form(scratch_registries, key, dtype):
    layer = sg.activation(f"acc_{key}", CUSTOM[key], replace=True)()
    plan = _plan(layer)
    z, err = forward_errors(plan, dtype)
    assert err.max() <= FORWARD_ULPS, f"{key} {dtype}: {plan.stable_forward}: {_worst(z, err)}"
    z, err = derivative_errors(plan, dtype)
    assert err.max() <= DERIVATIVE_ULPS, f"{key} {dtype}: {plan.derivative}: {_worst(z, err)}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("key", sorted(ROOTS))
def test_forward_is_accurate_next_to_a_root(scratch_registries, key, dtype):
    """Within 4 ulp a few hundred ulps either side of each root (factored forms):
    3x/2 + 3/2 as written was 32 ulp off at x = -1.01 in float32."""
    plan = _plan(sg.activation(f"acc_{key}", CUSTOM[key], replace=True)())
    eps = float(np.finfo(dtype).eps)
    steps = np.concatenate([np.arange(1, 300), 2.0 ** np.arange(9, 20)])
    z = np.unique(np.concatenate([r * (1 + sign * steps * eps) for r in ROOTS[key]
                                  for sign in (-1, 1)]).astype(dtype))
    hi, lo = exact(plan.forward, z)
    with np.errstate(all="ignore"):
        err = ulps(evaluate(plan.stable_forward, {Z: z}, dtype), hi, lo, dtype, 0.0)
    assert err.max() <= FORWARD_ULPS, f"{plan.stable_forward}: {_worst(z, err)}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("key, call", [
    ("softplus_beta", "vm_exp_scaled"), ("quick_gelu", "vm_exp_scaled"),
    ("logistic_tenth", "vm_exp_scaled"), ("gaussian", "vm_exp_product"),
    ("gaussian_wide", "vm_exp_product"), ("gauss_centered", "vm_exp_product"),
    ("isru", "vm_hypot"), ("squareplus", "vm_hypot"), ("log_one_plus_square", "vm_hypot"),
    ("gelu_tanh", "vm_exp_poly"), ("exp_shifted", "vm_exp_poly"),
    ("cube_root_isru", "vm_pow_exact"), ("signed_cube_root", "vm_pow_exact")])
def test_printing_rule_kernel_line(scratch_registries, key, call, dtype):
    """The compiled forward line (vecmath's exp of a double-double c*z or c*z*z, hypot
    for sqrt(z^2 + c): not the NumPy mirror in `evaluate`) is within 4 ulp over the
    whole range."""
    plan = _plan(sg.activation(f"acc_{key}", {**CUSTOM, **EXTRA}[key], replace=True)())
    code, line = _kernel_line(plan.stable_forward, dtype)
    assert call in code, code
    z = _points(dtype)
    hi, lo = exact(plan.forward, z)
    got = np.empty_like(z)
    line(z, got)
    normal = _normal(hi, z, dtype)
    assert normal.sum() > 100
    err = ulps(got, hi, lo, dtype, 0.0)[normal]
    assert err.max() <= FORWARD_ULPS, f"{code}: {_worst(z[normal], err)}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("key", ["linear_third", "tanh_third", "linear_fifths", "tanh_affine"])
def test_kernel_line_next_to_a_root_that_is_no_float(scratch_registries, key, dtype):
    """The compiled line adds 4/3 as hi + lo: within 4 ulp next to the root -2/3, where
    2z + fl(4/3) kept fl(4/3)'s rounding as its whole value (700 float32 ulp)."""
    plan = _plan(sg.activation(f"acc_{key}", CUSTOM[key], replace=True)())
    code, line = _kernel_line(plan.stable_forward, dtype)
    eps = float(np.finfo(dtype).eps)
    z = np.unique(np.concatenate([ROOTS[key][0] * (1 + sign * np.arange(1, 300) * eps)
                                  for sign in (-1, 1)]).astype(dtype))
    hi, lo = exact(plan.forward, z)
    got = np.empty_like(z)
    line(z, got)
    err = ulps(got, hi, lo, dtype, 0.0)
    assert err.max() <= FORWARD_ULPS, f"{code}: {_worst(z, err)}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_mish_through_one_exponential(scratch_registries, dtype):
    """Mish, z tanh(log(1 + e^z)): its slope had 1 - tanh^2 cancel (16.7 ulp at z = 11.4,
    float64); tanh(log w) = (w^2 - 1)/(w^2 + 1) makes it a rational function of one
    exponential.
    Its slope in that form computes 4z first and overflows past |z| = 8.5e37 in float32
    (inf * 0): held to the bound below 1e37, and finite nowhere else is claimed."""
    plan = _plan(sg.activation("acc_mish", MISH, replace=True)())
    z, err = forward_errors(plan, dtype)
    assert err.max() <= FORWARD_ULPS, f"{plan.stable_forward}: {_worst(z, err)}"
    z, err = derivative_errors(plan, dtype)
    inside = np.abs(z) < 1e37
    assert inside.sum() > 100
    worst = _worst(z[inside], err[inside])
    assert err[inside].max() <= DERIVATIVE_ULPS, f"{plan.derivative}: {worst}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_tanh_approximation(scratch_registries, dtype):
    """GELU's tanh form, 1/(1 + e^(-2c(z + 0.044715 z^3))) times z, rounded its cubic
    argument before the exponential: 551 ulp at z = -21 (float64), 41 at z = -9.3
    (float32). Its slope multiplies z^2 by 1 - tanh^2, inf * 0 once z^2 overflows (past
    |z| = 1.8e19 in float32): held to the bound below 1e15."""
    plan = _plan(sg.activation("acc_gelu_tanh", GELU_TANH, replace=True)())
    z, err = forward_errors(plan, dtype)
    assert err.max() <= FORWARD_ULPS, f"{plan.stable_forward}: {_worst(z, err)}"
    z, err = derivative_errors(plan, dtype)
    inside = np.abs(z) < 1e15
    worst = _worst(z[inside], err[inside])
    assert err[inside].max() <= DERIVATIVE_ULPS, f"{plan.derivative}: {worst}"


@pytest.mark.parametrize("key", ["tanhshrink", "sinc"])
def test_taylor_branches_are_proven(scratch_registries, key):
    """A Taylor branch is not an equality: its proof checks that the branch is the
    formula's own Taylor polynomial (symbolically) and that its truncation is below half
    an ulp where the splice uses it (against mpmath)."""
    from symgrad.prove.identity import prove_identity

    plan, extra = activation_plan(derive_elementwise(
        sg.activation(f"acc_{key}", CUSTOM[key], replace=True)()))
    methods = [prove_identity(ident).method for ident in (plan.identity, *extra)]
    assert any("Taylor" in m for m in methods), methods


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanhshrink_kernel_line(scratch_registries, dtype):
    """The compiled forward line of Tanhshrink (Horner's rule of T_64 below the splice,
    z - tanh z above) is within 4 ulp over the whole range."""
    plan = _plan(sg.activation("acc_tanhshrink", CUSTOM["tanhshrink"], replace=True)())
    code, line = _kernel_line(plan.stable_forward, dtype)
    assert "(z*z)" in code and "vm_tanh" in code, code
    z = _points(dtype)
    hi, lo = exact(plan.forward, z)
    got = np.empty_like(z)
    line(z, got)
    normal = _normal(hi, z, dtype)
    assert normal.sum() > 100 and np.abs(z[normal]).min() < 1e-6
    err = ulps(got, hi, lo, dtype, 0.0)[normal]
    assert err.max() <= FORWARD_ULPS, f"{code[:200]}: {_worst(z[normal], err)}"


def test_sqrt_minus_one_does_not_cancel(scratch_registries):
    """sqrt(1 + x^2) - 1 was 0 below |x| ~ 1e-8 (float64); rationalised it is accurate up
    to where x^2 overflows, and the formula as written (with x^2 + 1 under the root as
    hypot) from there on: the two are spliced at |x| = 2^k."""
    plan = _plan(sg.activation("acc_sqrt_minus_one", "sqrt(1 + x**2) - 1", replace=True)())
    assert isinstance(plan.stable_forward, sp.Piecewise)
    for dtype in DTYPES:
        z, err = forward_errors(plan, dtype)
        big = np.abs(z) > np.sqrt(float(np.finfo(dtype).max))
        assert big.sum() > 10 and (~big).sum() > 100
        assert err.max() <= FORWARD_ULPS, f"{dtype}: {_worst(z, err)}"


def test_an_inaccurate_stable_form_is_not_trusted(scratch_registries):
    # Equal to the logistic function, but 1 + tanh(x/2) cancels for x << 0: the formula
    # itself (or the rules' rewrite of the given form) must be evaluated instead.
    layer = sg.activation("acc_sig_tanh", 1 / (1 + sg.exp(-_x)),
                          stable=(1 + sg.tanh(_x / 2)) / 2, replace=True)()
    plan = _plan(layer)
    assert not plan.stable_forward.has(sp.tanh)
    z, err = forward_errors(plan, "float32")
    assert err.max() <= FORWARD_ULPS, _worst(z, err)


def test_the_measure_sees_the_old_forms_fail():
    """The forms evaluated before (issue 8's measurements) fail this test's measure."""
    class Old:   # a stand-in plan with the old evaluation forms
        def __init__(self, forward, stable):
            self.forward, self.stable_forward = forward, stable

    sig = 1 / (1 + sp.exp(-Z))
    old = {
        "sigmoid": Old(sig, (1 + sp.tanh(Z / 2)) / 2),
        "softplus": Old(sp.log(1 + sp.exp(Z)), sp.Max(Z, 0) + sp.log(1 + sp.exp(-sp.Abs(Z)))),
        "gelu": Old(Z * (1 + sp.erf(Z / sp.sqrt(2))) / 2, Z * (1 + sp.erf(Z / sp.sqrt(2))) / 2),
    }
    for name, plan in old.items():
        for dtype in DTYPES:
            z, err = forward_errors(plan, dtype)
            assert err.max() > 1000, (name, dtype, _worst(z, err))


def test_a_form_past_the_bound_is_said_in_the_plan_notes(scratch_registries):
    """x*tanh(e^x): its slope x(1 - tanh^2(e^x))e^x + tanh(e^x) is inf*0 = NaN once e^x
    overflows, in every form the rules propose; the most accurate is used and the plan
    (and so the printout) says where it fails, instead of a silent NaN gradient."""
    act = sg.activation("acc_tanhexp", _x * sg.tanh(sg.exp(_x)), replace=True)
    model = sg.compile(sg.Sequential(sg.Dense(2, 3), act(), sg.Dense(3, 1)), loss="mse")
    (note,) = [n for n in model.plan.notes if "acc_tanhexp" in n]
    assert "derivative" in note and "inf ulp (float32" in note and "float64" in note
    plain = sg.compile(sg.Sequential(sg.Dense(2, 3), sg.Swish(), sg.Dense(3, 1)), loss="mse")
    assert not [n for n in plain.plan.notes if "accuracy bound" in n]


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_vanishing_factor_keeps_a_network_finite(scratch_registries, dtype):
    """max(0, z) e^(-z) in a network: a unit at z = -1000 made the loss and every gradient
    NaN (inf * 0) until the branch-by-branch form selected the 0; the compiled kernels
    and the NumPy reference agree there."""
    act = sg.activation("acc_max_decay_net", CUSTOM["max_times_decay"], replace=True)
    model = sg.compile(sg.Sequential(sg.Dense(1, 2), act(), sg.Dense(2, 1)), loss="mse",
                       dtype=dtype)
    model.set_params({"dense0.W": np.array([[1.0, -1.0]]), "dense0.b": np.zeros(2),
                      "dense1.W": np.ones((2, 1)), "dense1.b": np.zeros(1)})
    X = np.array([[-1000.0], [-90.0], [0.5], [3.0], [1000.0]])
    y = np.linspace(-1, 1, 5)[:, None]
    loss, grads = model.compiled_backward(X, y)
    ref_loss, ref_grads = model.backward(X, y)
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert loss == pytest.approx(ref_loss, rel=tol)
    for name, g in grads.items():
        np.testing.assert_allclose(g, ref_grads[name], rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_focal_loss_on_a_sigmoid_keeps_its_slope_finite(scratch_registries, dtype):
    """Its slope holds log(1 - p), -inf once p rounds to 1 (z >= 37 in float64, y = 0),
    times p - 1 = 0: NaN where the exact slope is 1, and 0 * log 0 at z = -1000. Written
    from the logits (log(1 - p) = -softplus(z), 1 - p = 1/(e^z + 1)) it is finite and
    within a few ulp everywhere, against 60-digit mpmath."""
    import mpmath as mp

    focal = sg.loss("acc_focal", "-(y*(1 - p)**2*log(p) + (1 - y)*p**2*log(1 - p))")
    z = np.array([-1000.0, -740.0, -100.0, -36.0, -3.0, 0.5, 17.0, 30.0, 36.0, 37.0, 40.0,
                  100.0, 1000.0])
    model = sg.compile(sg.Sequential(sg.Dense(1, z.size), sg.Sigmoid()), loss=focal,
                       dtype=dtype)
    assert not model.plan.notes
    model.set_params({"dense0.W": np.zeros((1, z.size)), "dense0.b": z})
    for target in (0.0, 1.0, 0.25):
        _, grads = model.compiled_backward(np.ones((1, 1)), np.full((1, z.size), target))
        got = grads["dense0.b"] * z.size

        def loss(zv, target=target):
            y = mp.mpf(target)
            s, t = 1 / (1 + mp.exp(-zv)), 1 / (1 + mp.exp(zv))   # p and 1 - p
            return -(y * t**2 * mp.log(s) + (1 - y) * s**2 * mp.log(t))

        with mp.workdps(60):
            exact = np.array([float(mp.diff(loss, mp.mpf(v))) for v in z], dtype=dtype)
        tiny = np.finfo(dtype).tiny
        np.testing.assert_allclose(got, exact, rtol=8 * np.finfo(dtype).eps, atol=tiny,
                                   err_msg=f"y = {target}")


def test_an_output_delta_past_the_bound_is_said_in_the_plan_notes(scratch_registries):
    """A Poisson loss p - y log p on a softplus output: its slope holds expm1(-p)/p, 0/0
    once p underflows (z <= -745) in every form tried; the plan must say so, where fit
    would meet a NaN gradient. Every built-in output + loss pairing stays silent."""
    poisson = sg.loss("acc_poisson", "p - y*log(p)")
    model = sg.compile(sg.Sequential(sg.Dense(2, 1), sg.Softplus()), loss=poisson)
    (note,) = [n for n in model.plan.notes if "acc_poisson" in n]
    assert "no form of dl/dz within the accuracy bound" in note and "inf ulp" in note
    for head, loss, k in [(sg.Sigmoid(), "bce", 1), (sg.Softmax(), "cross_entropy", 3),
                          (sg.Identity(), "mse", 2), (sg.Identity(), "huber", 2),
                          (sg.Tanh(), "mse", 1), (sg.Softplus(), "mae", 1)]:
        plain = sg.compile(sg.Sequential(sg.Dense(2, k), head), loss=loss)
        assert not [n for n in plain.plan.notes if "accuracy bound" in n], (head, loss)


LOSS_VALUE_CASES = [
    # (loss, head, head as a formula in x, logits): inf or NaN from the logits before
    ("log(1 + (p - y)**2)", "Sigmoid", "1/(1 + exp(-x))", [300.0, 360.0, 700.0, -700.0]),
    ("(log(1 + p) - log(1 + y))**2", "Sigmoid", "1/(1 + exp(-x))", [700.0, 720.0, -30.0]),
    ("-(1 - y)*log(1 - p)", "Tanh", "tanh(x)", [10.0, 20.0, 300.0, -20.0]),
    ("p - y*log(p)", "Softplus", "log(1 + exp(x))", [-30.0, -40.0, -300.0, 0.5, 50.0]),
]


@pytest.mark.parametrize("case", range(len(LOSS_VALUE_CASES)))
def test_a_custom_loss_value_is_finite_and_accurate_from_any_logit(scratch_registries, case):
    """The loss of a batch was evaluated from the logits only: the Poisson loss on a
    softplus was log(log 1) = -inf from z = -37, the tanh head's log(1 - tanh z) log 0
    from z = 19, the Cauchy loss 0 * inf in y^2 e^(2z) from z = 355 (helper-34, bug 6).
    Compiled and reference losses against 800-digit mpmath, float64."""
    import mpmath as mp

    formula, head, head_formula, zs = LOSS_VALUE_CASES[case]
    loss = sg.loss(f"acc_loss_value_{case}", formula)
    model = sg.compile(sg.Sequential(sg.Dense(1, 1), getattr(sg, head)()), loss=loss)
    x, p, y = sp.symbols("x p y", real=True)
    exact_loss = sp.sympify(formula, locals={"p": p, "y": y}).subs(
        p, sp.sympify(head_formula, locals={"x": x}))
    for zv in zs:
        model.set_params({"dense0.W": np.zeros((1, 1)), "dense0.b": np.array([zv])})
        for target in (0.0, 0.3):
            with mp.workdps(800):   # 1 - tanh(300) and log(1 + e^-300) keep their digits
                exact = float(sp.lambdify((x, y), exact_loss, "mpmath")(mp.mpf(zv), mp.mpf(target)))
            X, Y = np.ones((1, 1)), np.full((1, 1), target)
            got = model.compiled_backward(X, Y)[0]
            ref = model.backward(X, Y)[0]
            for value in (got, ref):
                assert value == pytest.approx(exact, rel=1e-13, abs=1e-15), (zv, target)
