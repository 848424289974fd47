"""Vectorisable elementary functions for the fused kernel loops.

Numba compiles ``math.exp``/``math.tanh``/... to one scalar libm call per
element, and LLVM cannot vectorise a loop around an opaque call (the
llvmlite wheels are not SVML-patched). The functions below are plain Numba
scalar code with no calls and no data-dependent branches, so once LLVM
inlines them into a kernel loop the loop vectorises (``<8 x double>`` with
AVX-512, ``<4 x double>`` with AVX2).

How (the textbook scheme also used by Cephes, fdlibm, Eigen and XLA; the code
and the coefficients here are our own):

* range reduction, e.g. exp: x = k ln2 + r with |r| <= ln2/2, ln2 split in a
  short high part (k*ln2_hi is exact) and a low part (Cody-Waite);
* a polynomial on the reduced range (Taylor coefficients where they converge
  fast enough, Chebyshev interpolants fitted against mpmath for erf/erfc:
  ``tools/fit_erf_f64.py``, ``tools/fit_erf_f32.py``); from 10 coefficients on, as two
  independent Horner chains with c0 added last (``tools/poly_lines.py``): one chain's
  latency bound the AVX2 loops;
* 2^k built from its bits (an int64 -> float64 bit cast, `_i2f`), split in
  two factors so that subnormal results are rounded once and 2^1024 is never
  formed;
* every special case (NaN, +-inf, +-0, overflow, underflow) is a select
  (``a if cond else b``) over values computed unconditionally.

sin and cos reduce x modulo pi/2 exactly over the whole finite range: Cody-Waite
with a four-part pi/2 below 2^20, Payne-Hanek above (x's halves times 26-bit chunks
of 2/pi, all exact products, summed modulo 4 and then as a double-double). Both
reductions run for every element and a select keeps the valid one; the chunks are
cut from 1280 bits of 2/pi with integer shifts and masks, not loaded from a table
(a load at a data-dependent index stops LLVM vectorising loops over reshaped arrays).
pow is e^(y log x) with log x as a double-double (relative error < 2^-68) and the
product's low part carried into the exponential; its special cases are C99's.
erfc(c*u) for a constant c (GELU's tail) takes c*u as a double-double
(``vm_erfc_scaled_f64``): erfc's condition number ~2x^2 would otherwise turn the
product's rounding into ~1000 ulp. exp(c*u) likewise (``vm_exp_scaled_f64``): exp's
condition number |x| would make it up to ~350 ulp. So do both of c*u*v, u**2 included
(``vm_exp_product_f64``: a Gaussian e^(-x^2) was ~370 ulp off near its underflow).

float32: exp, expm1, log, log1p, tanh and erf are native float32 code (shorter
polynomials, 16 lanes with AVX-512: they carry sigmoid, swish, tanh, ELU and
softplus). erfc (GELU's forward) is evaluated in float64 to 2^-32 and rounded once:
e^(-a^2) P(a)/Q(a) with a rational erfcx of degrees 5/6, where float32 would collect
~10 roundings. A float32 version carrying each of them as a float32 pair was within
1.0 ulp but took ~120 vector operations a value; this one ~40 at half the lanes, 1.6x
faster in GELU's loop and within 0.51 ulp. erf = 1 - erfc beyond |x| = 1 needs erfc
to a few of its own ulps only, and takes a short float32 version of it.
Coefficients: ``tools/fit_erf_f32.py``. tanh runs both of its branches for every
element (x + x u g(u) below |x| = 1, 1 - 2/(e^2|x| + 1) above), each as short as its
range allows: the exponential's error reaches tanh scaled by 1/sinh(2|x|) <= 0.28, so it
is a degree-6 e^r (``tools/fit_tanh_f32.py``).
sinh, cosh, atan, sin, cos, tan, pow and the inverse functions evaluate the float64
algorithm and round once: the float64 result is within ~3 float64 ulp, so the float32
value is within 0.5 + 2^-28 float32 ulp, and the loop still vectorises (through
``<8 x double>``).

tan shares sin's reduction: sin r / cos r, or -cos r / sin r in odd quadrants (|r| <=
pi/4, so no divisor is small). asinh, acosh and atanh are one log1p each, of an argument
that does not cancel (fdlibm's split of the range); asin x = atan(x / sqrt(1 - x^2)) with
1 - x^2 rounded once (an FMA), acos x = 2 atan(sqrt((1 - x)/(1 + x))).

Exported trainers carry this code inline: `kernel_source` returns the text
between the two markers of `symgrad/codegen/vecmath_kernels.py`, which needs only
numpy, numba and llvmlite (a numba dependency); it is read as text, so
`import symgrad` neither imports Numba nor compiles these functions.
Compiler flags, used for every function there:

* ``fastmath={"contract"}``: lets LLVM fuse a*b + c into one FMA (faster and
  at least as accurate). Full fastmath stays off: ``nnan``/``ninf`` would
  delete the NaN/inf selects and ``reassoc`` would undo the Cody-Waite split.
* ``error_model="numpy"``: division by zero gives inf/nan instead of raising,
  which also removes the zero-test branches that block vectorisation.
* ``cache=True``: compiled code is kept on disk next to the module.
"""

from pathlib import Path

_KERNELS = Path(__file__).with_name("vecmath_kernels.py")


_BEGIN = "# ---- begin kernel source (emitted verbatim into generated kernel modules) ----\n"
_END = "# ---- end kernel source ----\n"

#: SymPy function name -> vecmath function name stem (dtype suffix added by the printer).
FUNCTIONS: dict[str, str] = {
    "exp": "vm_exp", "expm1": "vm_expm1", "log": "vm_log", "log1p": "vm_log1p",
    "tanh": "vm_tanh", "sinh": "vm_sinh", "cosh": "vm_cosh", "erf": "vm_erf", "erfc": "vm_erfc",
    "atan": "vm_atan", "sin": "vm_sin", "cos": "vm_cos", "tan": "vm_tan",
    "asinh": "vm_asinh", "acosh": "vm_acosh", "atanh": "vm_atanh", "asin": "vm_asin",
    "acos": "vm_acos",
}
#: Printing rules that are not one SymPy function: x**y, sqrt(u**2 + v**2) as hypot(u, v),
#: erfc and exp of c*u or c*u*v, and of a polynomial (Horner in double-double, ``vm_dd_mad``),
#: with the argument carried as a double-double (``vm_erfc_scaled_f64(u, c_hi, c_lo)``,
#: ``vm_exp_product_f64(u, du, v, dv, c_hi, c_lo)``).
FORMS: dict[str, str] = {"pow": "vm_pow", "pow_exact": "vm_pow_exact",
                         "erfc_scaled": "vm_erfc_scaled",
                         "exp_scaled": "vm_exp_scaled", "erfc_product": "vm_erfc_product",
                         "exp_product": "vm_exp_product", "hypot": "vm_hypot",
                         "exp_poly": "vm_exp_poly", "erfc_poly": "vm_erfc_poly",
                         "dd_const": "vm_dd_const", "dd_mad": "vm_dd_mad",
                         "affine": "vm_affine"}


def function_name(name: str, dtype: str) -> str:
    """The vecmath function for SymPy function (or `FORMS` entry) ``name`` in ``dtype``.

    >>> function_name("exp", "float32")
    'vm_exp_f32'
    >>> function_name("pow", "float64")
    'vm_pow_f64'
    """
    stem = FUNCTIONS.get(name) or FORMS[name]
    return f"{stem}_{'f32' if dtype == 'float32' else 'f64'}"


def kernel_source() -> str:
    """The source of the vectorisable functions, to be written into a kernel module.

    It is read from `vecmath_kernels.py` (one source of truth) and imports only
    numpy, numba and llvmlite.
    """
    from symgrad.codegen.source_text import marked_source

    return marked_source(_KERNELS, _BEGIN, _END)
