"""The vectorisable elementary functions themselves (see `symgrad.codegen.vecmath`).

Everything between the two markers is written verbatim into every generated
kernel module (and so into exported trainers); it needs only numpy, numba and
llvmlite. It is a module of its own so that `import symgrad` does not import
Numba or compile these functions: the library reads this file as text, and only
the generated modules (and the tests) run it.
"""

# ---- begin kernel source (emitted verbatim into generated kernel modules) ----
import numpy as _vm_np
from llvmlite import ir as _vm_ir
from numba import njit as _vm_njit
from numba import types as _vm_types
from numba.extending import intrinsic as _vm_intrinsic

# inline="always": Numba inlines the body into the calling loop itself; LLVM's own
# inliner leaves the larger functions (erf, expm1, log1p...) as calls, and a loop
# with a call in it is not vectorised.
_VM_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"},
               inline="always")


@_vm_intrinsic
def _f2i(typingctx, x):
    """The bits of a float64 as an int64 (a bit cast: one vector no-op)."""
    if x != _vm_types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], _vm_ir.IntType(64))
    return _vm_types.int64(_vm_types.float64), codegen


@_vm_intrinsic
def _i2f(typingctx, x):
    """The float64 whose bits are the int64 ``x`` (a bit cast)."""
    if x != _vm_types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], _vm_ir.DoubleType())
    return _vm_types.float64(_vm_types.int64), codegen


@_vm_intrinsic
def _f2i32(typingctx, x):
    """The bits of a float32, sign-extended to an int64 (Numba's integer arithmetic is int64)."""
    if x != _vm_types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.sext(builder.bitcast(args[0], _vm_ir.IntType(32)), _vm_ir.IntType(64))
    return _vm_types.int64(_vm_types.float32), codegen


@_vm_intrinsic
def _i2f32(typingctx, x):
    """The float32 whose bits are the low 32 bits of the int64 ``x``."""
    if x != _vm_types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(builder.trunc(args[0], _vm_ir.IntType(32)), _vm_ir.FloatType())
    return _vm_types.float32(_vm_types.int64), codegen


_VM_LN2_HI = 6.93147180369123816490e-01   # 32 significant bits: k*_VM_LN2_HI is exact
_VM_LN2_LO = 1.90821492927058770002e-10   # ln2 - _VM_LN2_HI
_VM_LOG2E = 1.4426950408889634
_VM_SHIFTER = 6755399441055744.0          # 1.5 * 2^52: x + it rounds x to an integer
_VM_SHIFTER_BITS = 0x4338000000000000     # its bits; bits(shifter + k) - these = k
_VM_SQRT2 = 1.4142135623730951
_VM_TINY = 5.551115123125783e-17          # 2^-54: below it f(x) = x for expm1, log1p, tanh...


@_vm_njit(**_VM_JIT)
def _vm_pow2(k):
    """2^k for an int64 k in [-1022, 1023] (normal range) from its bits."""
    return _i2f((k + 1023) << 52)


@_vm_njit(**_VM_JIT)
def _vm_exp_reduce(x):
    """x = k*ln2 + r, |r| <= ln2/2, for x already clamped to a finite range."""
    t = x * _VM_LOG2E + _VM_SHIFTER
    kf = t - _VM_SHIFTER
    k = _f2i(t) - _VM_SHIFTER_BITS
    r = (x - kf * _VM_LN2_HI) - kf * _VM_LN2_LO
    return k, r


@_vm_njit(**_VM_JIT)
def _vm_expm1_poly(r):
    """e^r - 1 for |r| <= ln2/2: Taylor to r^13 (truncation < 2^-60 relative)."""
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    # r + r*(r*p), not r + r*r*p: keeps the sign of r = -0.0
    return r + r * (r * p)


@_vm_njit(**_VM_JIT)
def vm_exp_f64(x):
    """e^x, float64, within 1 ulp; subnormal results rounded once."""
    xc = x if x > -746.0 else -746.0          # also maps NaN to a finite value:
    xc = xc if xc < 710.0 else 710.0          # the int conversions below never see NaN
    k, r = _vm_exp_reduce(xc)
    e = 1.0 + _vm_expm1_poly(r)
    k1 = k >> 1                                # 2^k = 2^k1 * 2^(k-k1): both normal
    y = (e * _vm_pow2(k1)) * _vm_pow2(k - k1)
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def vm_expm1_f64(x):
    """e^x - 1, float64: accurate relative to the result for tiny x too."""
    xc = x if x > -45.0 else -45.0
    xc = xc if xc < 710.0 else 710.0
    k, r = _vm_exp_reduce(xc)
    e = _vm_expm1_poly(r)                      # e^r - 1, exact-relative
    ks = k if k < 60 else 60
    s = _vm_pow2(ks)
    y = s * e + (s - 1.0)                      # 2^k (e^r - 1) + (2^k - 1)
    k1 = k >> 1
    big = ((1.0 + e) * _vm_pow2(k1)) * _vm_pow2(k - k1)   # -1 is below half an ulp
    y = big if k > 60 else y
    y = -1.0 if x < -40.0 else y
    return x if (abs(x) < _VM_TINY) | (x != x) else y


@_vm_njit(**_VM_JIT)
def _vm_log_parts(u):
    """(k, f) with u = 2^k (1 + f), f in [sqrt(1/2) - 1, sqrt(2) - 1), u > 0 finite."""
    sub = u < 2.2250738585072014e-308
    us = u * 18014398509481984.0 if sub else u      # * 2^54 makes subnormals normal
    bits = _f2i(us)
    k = ((bits >> 52) & 0x7FF) - (1023 + 54 if sub else 1023)
    m = _i2f((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)   # in [1, 2)
    hi = m > _VM_SQRT2
    m = 0.5 * m if hi else m
    k = k + 1 if hi else k
    return k, m - 1.0                                # exact (Sterbenz)


@_vm_njit(**_VM_JIT)
def _vm_log1p_small(f, corr):
    """log(1 + f) + corr for f in [-0.293, 0.415]: f - f^2/2 + s (f^2/2 + R(s^2)).

    s = f / (2 + f) and log(1+f) = 2 atanh(s) = 2s + 2s^3/3 + ...; since
    2s = f - f^2/2 + s f^2/2 the leading f is exact and every rounded term is
    small (|s| <= 0.172, s^2 <= 0.0295: series to s^24, truncation < 2^-60).
    """
    s = f / (2.0 + f)
    z = s * s
    p = 2.0 / 25.0
    p = p * z + 2.0 / 23.0
    p = p * z + 2.0 / 21.0
    p = p * z + 2.0 / 19.0
    p = p * z + 2.0 / 17.0
    p = p * z + 2.0 / 15.0
    p = p * z + 2.0 / 13.0
    p = p * z + 2.0 / 11.0
    p = p * z + 2.0 / 9.0
    p = p * z + 2.0 / 7.0
    p = p * z + 2.0 / 5.0
    p = p * z + 2.0 / 3.0
    big_r = z * p
    hfsq = 0.5 * f * f
    return f - (hfsq - (s * (hfsq + big_r) + corr))


@_vm_njit(**_VM_JIT)
def vm_log_f64(x):
    """Natural log, float64: NaN below 0, -inf at +-0, inf at inf."""
    ok = (x > 0.0) & (x < _vm_np.inf)
    u = x if ok else 1.0
    k, f = _vm_log_parts(u)
    kf = _vm_np.float64(k)
    y = kf * _VM_LN2_HI + _vm_log1p_small(f, kf * _VM_LN2_LO)
    y = y if ok else (x if x == _vm_np.inf else _vm_np.nan)
    return -_vm_np.inf if x == 0.0 else y


@_vm_njit(**_VM_JIT)
def vm_log1p_f64(x):
    """log(1 + x), float64: accurate for tiny x; NaN below -1, -inf at -1."""
    ok = (x > -1.0) & (x < _vm_np.inf)
    xs = x if ok else 0.0
    u = 1.0 + xs
    corr = (xs - (u - 1.0)) / u        # log(u + c) = log(u) + c/u: the bits 1 + x lost
    k, f = _vm_log_parts(u)
    kf = _vm_np.float64(k)
    y = kf * _VM_LN2_HI + _vm_log1p_small(f, kf * _VM_LN2_LO + corr)
    y = y if ok else (x if x == _vm_np.inf else _vm_np.nan)
    y = -_vm_np.inf if x == -1.0 else y
    return x if (abs(x) < _VM_TINY) | (x != x) else y


@_vm_njit(**_VM_JIT)
def vm_tanh_f64(x):
    """tanh, float64, through t = expm1(2|x|): t/(t+2) near 0, 1 - 2/(t+2) beyond."""
    ax = abs(x)
    t = vm_expm1_f64(2.0 * (ax if ax < 40.0 else 40.0))
    y = t / (t + 2.0) if ax < 0.55 else 1.0 - 2.0 / (t + 2.0)
    y = -y if x < 0.0 else y
    return x if (ax < _VM_TINY) | (x != x) else y


@_vm_njit(**_VM_JIT)
def vm_cosh_f64(x):
    """cosh, float64: (e + 1/e)/2 with e = e^|x|; (w/2)*w with w = e^(|x|/2) near overflow."""
    ax = abs(x)
    e = vm_exp_f64(ax if ax < 709.0 else 709.0)
    w = vm_exp_f64(0.5 * ax)
    y = (0.5 * w) * w if ax > 709.0 else 0.5 * e + 0.5 / e
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def vm_sinh_f64(x):
    """sinh, float64, through t = expm1(|x|): no cancellation near 0."""
    ax = abs(x)
    t = vm_expm1_f64(ax if ax < 709.0 else 709.0)
    w = vm_exp_f64(0.5 * ax)
    small = 0.5 * (2.0 * t - t * t / (t + 1.0))   # sinh = (t + t/(t+1))/2, rearranged
    y = small if ax < 1.0 else 0.5 * (t + t / (t + 1.0))
    y = (0.5 * w) * w if ax > 709.0 else y
    y = -y if x < 0.0 else y
    return x if (ax < _VM_TINY) | (x != x) else y


@_vm_njit(**_VM_JIT)
def _vm_erf_small(x):
    """erf(x) for |x| <= 1: its Taylor series to x^37 (truncation < 2^-57)."""
    z = x * x
    p = 4.763348040515068e-18
    p = p * z + -9.063970842808673e-17
    p = p * z + 1.6342614095367152e-15
    p = p * z + -2.7835162072109215e-14
    p = p * z + 4.4632242632864775e-13
    p = p * z + -6.7113668551641105e-12
    p = p * z + 9.422759064650411e-11
    p = p * z + -1.2290555301717928e-09
    p = p * z + 1.4807192815879218e-08
    p = p * z + -1.6365844691234924e-07
    p = p * z + 1.6462114365889248e-06
    p = p * z + -1.492565035840625e-05
    p = p * z + 0.00012055332981789664
    p = p * z + -0.0008548327023450853
    p = p * z + 0.005223977625442188
    p = p * z + -0.026866170645131252
    p = p * z + 0.11283791670955126
    p = p * z + -0.37612638903183754
    p = p * z + 1.1283791670955126
    return x * p


@_vm_njit(**_VM_JIT)
def _vm_erfc_pos(ax):
    """erfc(x) for x in [0.5, 27.5] as e^(-x^2) G(x) / x with G(x) = x e^(x^2) erfc(x).

    G is entire in x and tends to 1/sqrt(pi): a degree-22 polynomial in x on
    [0.5, 2.5] and a degree-20 polynomial in t = 1/x beyond (Chebyshev
    interpolants computed with mpmath at 200 bits, converted to Horner form;
    interpolation error < 2^-56). e^(-x^2) is taken in two exact parts,
    x^2 = h^2 + d with h = x cut to 26 bits (h*h is exact).
    """
    u = ax - 1.5
    gx = -1.120569316999998e-11
    gx = gx * u + 4.628410799034018e-11
    gx = gx * u + -1.2331945024936425e-10
    gx = gx * u + 4.813080128705609e-10
    gx = gx * u + -1.9993392433641495e-09
    gx = gx * u + 7.527294089600554e-09
    gx = gx * u + -2.7469508168432458e-08
    gx = gx * u + 9.855065208431097e-08
    gx = gx * u + -3.4476450161958834e-07
    gx = gx * u + 1.1728751668184572e-06
    gx = gx * u + -3.874532898723497e-06
    gx = gx * u + 1.2401814034212022e-05
    gx = gx * u + -3.836245449955183e-05
    gx = gx * u + 0.00011432156371377873
    gx = gx * u + -0.0003269651497883822
    gx = gx * u + 0.0008932397770127691
    gx = gx * u + -0.0023167552324482466
    gx = gx * u + 0.005658404631122564
    gx = gx * u + -0.012864893869962262
    gx = gx * u + 0.02675468190613215
    gx = gx * u + -0.049396357949343966
    gx = gx * u + 0.07615103985547741
    gx = gx * u + 0.48237812468147623
    t = 1.0 / ax
    v = t * 5.5 - 1.2                          # t in [1/27.5, 0.4] -> [-1, 1]
    gt = -1.883247788563708e-12
    gt = gt * v + -3.6694259337408e-12
    gt = gt * v + 3.4628855444132625e-11
    gt = gt * v + -3.738091211156462e-11
    gt = gt * v + -1.4077747627879018e-10
    gt = gt * v + 6.362008767964021e-10
    gt = gt * v + -1.103956075473643e-09
    gt = gt * v + -1.127642766357051e-09
    gt = gt * v + 1.34279610938536e-08
    gt = gt * v + -3.7863222065543546e-08
    gt = gt * v + 7.94565182984385e-09
    gt = gt * v + 3.5618274392584285e-07
    gt = gt * v + -1.390077872539818e-06
    gt = gt * v + 9.153171161227958e-07
    gt = gt * v + 1.4762909432812845e-05
    gt = gt * v + -6.991121329358766e-05
    gt = gt * v + 2.3609571750387805e-05
    gt = gt * v + 0.0013226700260687183
    gt = gt * v + -0.006241853911920181
    gt = gt * v + -0.019654688378944882
    gt = gt * v + 0.5516214579618675
    g = gx if ax < 2.5 else gt
    h = _i2f(_f2i(ax) & -134217728)            # clear the low 27 bits
    d = (ax - h) * (ax + h)                    # x^2 - h^2, |d| < 2^-15 (x < 27.5)
    em = d * (1.0 - d * (0.5 - d * (1.0 / 6.0 - d * (1.0 / 24.0))))   # 1 - e^-d, to d^4
    y = vm_exp_f64(-(h * h)) * (g / ax)        # g / ax, not g * t: one rounding less
    return y - y * em                          # y (1 - em) would round 1 - em first


@_vm_njit(**_VM_JIT)
def vm_erf_f64(x):
    """erf, float64: Taylor series below |x| = 1, 1 - erfc(|x|) above (odd)."""
    ax = abs(x)
    axc = ax if ax < 27.5 else 27.5            # NaN -> 27.5 too (fixed below)
    axc = axc if axc > 0.5 else 0.5
    big = 1.0 - _vm_erfc_pos(axc)
    big = -big if x < 0.0 else big
    y = _vm_erf_small(x if ax <= 1.0 else 1.0)
    y = y if ax <= 1.0 else big
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def vm_erfc_f64(x):
    """erfc, float64: 1 - erf(x) below |x| = 0.5, e^(-x^2) G(x) / x (or 2 minus it) above."""
    ax = abs(x)
    axc = ax if ax < 27.5 else 27.5
    axc = axc if axc > 0.5 else 0.5
    tail = _vm_erfc_pos(axc)
    tail = 0.0 if ax > 27.5 else tail
    tail = 2.0 - tail if x < 0.0 else tail
    y = 1.0 - _vm_erf_small(x if ax < 0.5 else 0.5)
    y = y if ax < 0.5 else tail
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def vm_atan_f64(x):
    """atan, float64: reduced to |t| <= tan(pi/8) by atan(x) = pi/4 + atan((x-1)/(x+1)) or
    pi/2 - atan(1/x); there atan(t) = t + t u g(u), u = t^2, g a degree-14 Chebyshev
    interpolant (mpmath, 200 bits) in u, whose error is scaled down by u g / 1 < 0.06."""
    ax = abs(x)
    big = ax > 2.414213562373095                # tan(3 pi/8)
    mid = ax > 0.41421356237309503              # tan(pi/8)
    axs = ax if ax < 1e300 else 1e300           # keeps 1/ax finite-safe; inf -> pi/2 below
    t = -1.0 / axs if big else ((ax - 1.0) / (ax + 1.0) if mid else ax)
    hi = 1.5707963267948966 if big else (0.7853981633974483 if mid else 0.0)
    lo = 6.123233995736766e-17 if big else (3.061616997868383e-17 if mid else 0.0)
    u = t * t
    v = (u - 0.08578643762690495) * 11.65685424949238   # [0, tan(pi/8)^2] -> [-1, 1]
    p = -1.2071201659983949e-17
    p = p * v + 1.6321321032322376e-16
    p = p * v + -2.171868740809e-15
    p = p * v + 2.966908125179264e-14
    p = p * v + -4.0793505432586713e-13
    p = p * v + 5.6499490203789806e-12
    p = p * v + -7.895561989959365e-11
    p = p * v + 1.1154921191860317e-09
    p = p * v + -1.5976278233791234e-08
    p = p * v + 2.328612321520377e-07
    p = p * v + -3.4742616368168473e-06
    p = p * v + 5.3558515679694616e-05
    p = p * v + -0.0008672151785396066
    p = p * v + 0.015247015915511865
    p = p * v + -0.3171618194239173
    y = hi + (t + (t * (u * p) + lo))
    y = -y if x < 0.0 else y
    return x if (ax < 7.450580596923828e-09) | (x != x) else y   # 2^-27: atan(x) = x


# float32: evaluate in float64, round once (see the module docstring).
# Native float32 (16 lanes with AVX-512 instead of 8): every constant is a typed
# float32 global, because a bare literal is a float64 to Numba and would promote.
_VM_F = _vm_np.float32
_VM_F_ONE, _VM_F_HALF = _VM_F(1.0), _VM_F(0.5)
_VM_F_EXP_LO, _VM_F_EXP_HI = _VM_F(-104.0), _VM_F(89.0)   # e^x is 0 / inf beyond
_VM_F_LOG2E = _VM_F(1.4426950408889634)
_VM_F_SHIFTER = _VM_F(12582912.0)                          # 1.5 * 2^23
_VM_F_SHIFTER_BITS = 0x4B400000
_VM_F_LN2_HI = _VM_F(0.693359375)                          # 9 bits: k*hi exact
_VM_F_LN2_LO = _VM_F(-2.1219444005469057e-04)              # ln2 - hi
_VM_F_C7, _VM_F_C6, _VM_F_C5 = _VM_F(1.0 / 5040.0), _VM_F(1.0 / 720.0), _VM_F(1.0 / 120.0)
_VM_F_C4, _VM_F_C3 = _VM_F(1.0 / 24.0), _VM_F(1.0 / 6.0)
_VM_F_ZERO, _VM_F_TWO = _VM_F(0.0), _VM_F(2.0)
_VM_F_INF, _VM_F_NAN = _VM_F(_vm_np.inf), _VM_F(_vm_np.nan)
_VM_F_SQRT2 = _VM_F(1.4142135623730951)
_VM_F_MIN_NORMAL = _VM_F(1.1754943508222875e-38)
_VM_F_TINY = _VM_F(2.9802322387695312e-08)   # 2^-25: expm1(x) = log1p(x) = x below


@_vm_njit(**_VM_JIT)
def _vm_expm1_poly_f32(r):
    """e^r - 1 for |r| <= ln2/2 in float32: Taylor to r^8 (truncation < 2^-30 relative)."""
    p = _VM_F(1.0 / 40320.0)
    p = p * r + _VM_F_C7
    p = p * r + _VM_F_C6
    p = p * r + _VM_F_C5
    p = p * r + _VM_F_C4
    p = p * r + _VM_F_C3
    p = p * r + _VM_F_HALF
    return r + r * (r * p)


@_vm_njit(**_VM_JIT)
def vm_exp_f32(x):
    """e^x, native float32 (same scheme as `vm_exp_f64`, degree 8)."""
    x = _VM_F(x)   # a float64 operand (e.g. a mixed-type expression) is rounded once
    xc = x if x > _VM_F_EXP_LO else _VM_F_EXP_LO
    xc = xc if xc < _VM_F_EXP_HI else _VM_F_EXP_HI
    t = xc * _VM_F_LOG2E + _VM_F_SHIFTER
    kf = t - _VM_F_SHIFTER
    k = _f2i32(t) - _VM_F_SHIFTER_BITS
    r = (xc - kf * _VM_F_LN2_HI) - kf * _VM_F_LN2_LO
    e = _VM_F_ONE + _vm_expm1_poly_f32(r)
    k1 = k >> 1                                # 2^k = 2^k1 * 2^(k-k1): both normal
    y = (e * _i2f32((k1 + 127) << 23)) * _i2f32((k - k1 + 127) << 23)
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def vm_expm1_f32(x):
    """e^x - 1, native float32 (same scheme as `vm_expm1_f64`)."""
    x = _VM_F(x)   # a float64 operand (e.g. a mixed-type expression) is rounded once
    xc = x if x > _VM_F(-20.0) else _VM_F(-20.0)
    xc = xc if xc < _VM_F_EXP_HI else _VM_F_EXP_HI
    t = xc * _VM_F_LOG2E + _VM_F_SHIFTER
    kf = t - _VM_F_SHIFTER
    k = _f2i32(t) - _VM_F_SHIFTER_BITS
    r = (xc - kf * _VM_F_LN2_HI) - kf * _VM_F_LN2_LO
    e = _vm_expm1_poly_f32(r)
    ks = k if k < 30 else 30
    s = _i2f32((ks + 127) << 23)
    y = s * e + (s - _VM_F_ONE)                # 2^k (e^r - 1) + (2^k - 1)
    k1 = k >> 1
    big = ((_VM_F_ONE + e) * _i2f32((k1 + 127) << 23)) * _i2f32((k - k1 + 127) << 23)
    y = big if k > 30 else y
    y = -_VM_F_ONE if x < _VM_F(-18.0) else y
    return x if (abs(x) < _VM_F_TINY) | (x != x) else y




@_vm_njit(**_VM_JIT)
def _vm_log_parts_f32(u):
    """(k, f) with u = 2^k (1 + f), f in [sqrt(1/2) - 1, sqrt(2) - 1), u > 0 finite (float32)."""
    sub = u < _VM_F_MIN_NORMAL
    us = u * _VM_F(33554432.0) if sub else u          # * 2^25 makes subnormals normal
    bits = _f2i32(us)
    k = ((bits >> 23) & 0xFF) - (127 + 25 if sub else 127)
    m = _i2f32((bits & 0x007FFFFF) | 0x3F800000)       # in [1, 2)
    hi = m > _VM_F_SQRT2
    m = _VM_F_HALF * m if hi else m
    k = k + 1 if hi else k
    return k, m - _VM_F_ONE


@_vm_njit(**_VM_JIT)
def _vm_log1p_small_f32(f, corr):
    """log(1 + f) + corr in float32, as `_vm_log1p_small` with the series to s^12."""
    s = f / (_VM_F_TWO + f)
    z = s * s
    p = _VM_F(2.0 / 13.0)
    p = p * z + _VM_F(2.0 / 11.0)
    p = p * z + _VM_F(2.0 / 9.0)
    p = p * z + _VM_F(2.0 / 7.0)
    p = p * z + _VM_F(2.0 / 5.0)
    p = p * z + _VM_F(2.0 / 3.0)
    hfsq = _VM_F_HALF * f * f
    return f - (hfsq - (s * (hfsq + z * p) + corr))


@_vm_njit(**_VM_JIT)
def vm_log_f32(x):
    """log, native float32: NaN below 0, -inf at +-0, inf at inf."""
    x = _VM_F(x)   # a float64 operand (e.g. a mixed-type expression) is rounded once
    ok = (x > _VM_F_ZERO) & (x < _VM_F_INF)
    u = x if ok else _VM_F_ONE
    k, f = _vm_log_parts_f32(u)
    kf = _VM_F(k)
    y = kf * _VM_F_LN2_HI + _vm_log1p_small_f32(f, kf * _VM_F_LN2_LO)
    y = y if ok else (x if x == _VM_F_INF else _VM_F_NAN)
    return -_VM_F_INF if x == _VM_F_ZERO else y


@_vm_njit(**_VM_JIT)
def vm_log1p_f32(x):
    """log(1 + x), native float32: accurate for tiny x; NaN below -1, -inf at -1."""
    x = _VM_F(x)   # a float64 operand (e.g. a mixed-type expression) is rounded once
    ok = (x > -_VM_F_ONE) & (x < _VM_F_INF)
    xs = x if ok else _VM_F_ZERO
    u = _VM_F_ONE + xs
    corr = (xs - (u - _VM_F_ONE)) / u     # log(u + c) = log(u) + c/u: the bits 1 + x lost
    k, f = _vm_log_parts_f32(u)
    kf = _VM_F(k)
    y = kf * _VM_F_LN2_HI + _vm_log1p_small_f32(f, kf * _VM_F_LN2_LO + corr)
    y = y if ok else (x if x == _VM_F_INF else _VM_F_NAN)
    y = -_VM_F_INF if x == -_VM_F_ONE else y
    return x if (abs(x) < _VM_F_TINY) | (x != x) else y


@_vm_njit(**_VM_JIT)
def vm_tanh_f32(x):
    """tanh, native float32: x + x u g(u) (u = x^2) below |x| = 1, 1 - 2/(e^2|x| + 1) above.

    g is a degree-8 Chebyshev interpolant in u on [0, 1] (mpmath), its error scaled
    down by |u g| / 1 < 0.31; from |x| = 1 on, 2/(e + 1) < 0.24, so its rounding
    errors stay near 1 ulp of the result.
    """
    x = _VM_F(x)   # a float64 operand (e.g. a mixed-type expression) is rounded once
    ax = abs(x)
    u = x * x
    v = u + u - _VM_F_ONE                      # [0, 1] -> [-1, 1]
    p = _VM_F(-1.8932465608851074e-07)
    p = p * v + _VM_F(1.1236043942375826e-06)
    p = p * v + _VM_F(-6.24238974890606e-06)
    p = p * v + _VM_F(3.704736628625952e-05)
    p = p * v + _VM_F(-0.0002201890891017372)
    p = p * v + _VM_F(0.0013068157739150863)
    p = p * v + _VM_F(-0.0077573110247623495)
    p = p * v + _VM_F(0.04611875777169991)
    p = p * v + _VM_F(-0.2778856568389047)
    small = x + x * (u * p)
    e = vm_exp_f32(_VM_F(2.0) * (ax if ax < _VM_F(20.0) else _VM_F(20.0)))
    big = _VM_F_ONE - _VM_F(2.0) / (e + _VM_F_ONE)
    big = -big if x < _VM_F(0.0) else big
    y = small if ax < _VM_F_ONE else big
    y = x if ax < _VM_F(0.000244140625) else y   # 2^-12: tanh(x) = x; keeps -0.0 (u*p is -0)
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def vm_sinh_f32(x):
    """sinh, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_sinh_f64(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_cosh_f32(x):
    """cosh, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_cosh_f64(_vm_np.float64(x)))

@_vm_njit(**_VM_JIT)
def vm_erf_f32(x):
    """erf, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_erf_f64(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_erfc_f32(x):
    """erfc, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_erfc_f64(_vm_np.float64(x)))

@_vm_njit(**_VM_JIT)
def vm_atan_f32(x):
    """atan, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_atan_f64(_vm_np.float64(x)))
# ---- end kernel source ----
