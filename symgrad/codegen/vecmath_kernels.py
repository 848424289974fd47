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

# forceinline: each function is compiled once per signature and carries LLVM's
# alwaysinline, so LLVM copies it into the calling loop (its own cost model leaves the
# larger ones, erf, expm1, log1p..., as calls, and a loop with a call is not vectorised).
# Not Numba's inline="always": that copies and retypes Numba IR at every call site, and
# deep-copying the sin/cos reduction's IR took 36 s to compile one model (8 s now).
_VM_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"},
               forceinline=True)


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


@_vm_intrinsic
def _vm_fma(typingctx, a, b, c):
    """a*b + c rounded once (llvm.fma: one vector FMA on any x86-64 with FMA3, which
    AVX2 machines all have), for three float64 or three float32 values."""
    if not (a == b == c and a in (_vm_types.float64, _vm_types.float32)):
        return None

    def codegen(context, builder, sig, args):
        kind = _vm_ir.DoubleType() if sig.return_type == _vm_types.float64 \
            else _vm_ir.FloatType()
        fma = builder.module.declare_intrinsic(
            "llvm.fma", [kind], _vm_ir.FunctionType(kind, [kind, kind, kind]))
        return builder.call(fma, args)
    return a(a, a, a), codegen


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
def _vm_two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth; no branch)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@_vm_njit(**_VM_JIT)
def _vm_split(a):
    """a = hi + lo exactly, hi the top 26 significant bits (lo has 27): no overflow."""
    hi = _i2f(_f2i(a) & -134217728)
    return hi, a - hi


@_vm_njit(**_VM_JIT)
def _vm_two_prod(a, b):
    """(p, e) with p = fl(a*b) and p + e = a*b exactly: e = fma(a, b, -p), the
    product's rounding error, is itself exact (one instruction where Dekker's
    splitting took a dozen)."""
    p = a * b
    return p, _vm_fma(a, b, -p)


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
    # two Horner chains (c1.. and c6..): half the latency of one; c0 is added
    # last, by one FMA, so the result is rounded much as Horner's own
    p_high = 1.0 / 6227020800.0
    p_high = p_high * r + 1.0 / 479001600.0
    p_high = p_high * r + 1.0 / 39916800.0
    p_high = p_high * r + 1.0 / 3628800.0
    p_high = p_high * r + 1.0 / 362880.0
    p_high = p_high * r + 1.0 / 40320.0
    p_low = 1.0 / 5040.0
    p_low = p_low * r + 1.0 / 720.0
    p_low = p_low * r + 1.0 / 120.0
    p_low = p_low * r + 1.0 / 24.0
    p_low = p_low * r + 1.0 / 6.0
    r2 = r * r
    r4 = r2 * r2
    r5 = r4 * r
    p = (p_high * r5 + p_low) * r + 0.5
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
def _vm_exp_dd(hi, lo):
    """e^(hi + lo), |lo| <= 2^-40 |hi|: as `vm_exp_f64`, with lo and the reduction's
    rounding carried into the last step (e^(r + d) = e^r + e^r d)."""
    xc = hi if hi > -746.0 else -746.0
    xc = xc if xc < 710.0 else 710.0
    t = xc * _VM_LOG2E + _VM_SHIFTER
    kf = t - _VM_SHIFTER
    k = _f2i(t) - _VM_SHIFTER_BITS
    lo = lo if xc == hi else 0.0               # clamped: 0 or inf whatever lo is
    r, d = _vm_two_sum(xc - kf * _VM_LN2_HI, lo - kf * _VM_LN2_LO)
    p = _vm_expm1_poly(r)
    e = 1.0 + (p + d * (1.0 + p))
    k1 = k >> 1
    return (e * _vm_pow2(k1)) * _vm_pow2(k - k1)


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
    # two Horner chains (c1.. and c6..): half the latency of one; c0 is added
    # last, by one FMA, so the result is rounded much as Horner's own
    p_high = 2.0 / 25.0
    p_high = p_high * z + 2.0 / 23.0
    p_high = p_high * z + 2.0 / 21.0
    p_high = p_high * z + 2.0 / 19.0
    p_high = p_high * z + 2.0 / 17.0
    p_high = p_high * z + 2.0 / 15.0
    p_low = 2.0 / 13.0
    p_low = p_low * z + 2.0 / 11.0
    p_low = p_low * z + 2.0 / 9.0
    p_low = p_low * z + 2.0 / 7.0
    p_low = p_low * z + 2.0 / 5.0
    z2 = z * z
    z4 = z2 * z2
    z5 = z4 * z
    p = (p_high * z5 + p_low) * z + 2.0 / 3.0
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
    """erf(x) for |x| <= 1: x S(x^2), S a degree-12 polynomial (`tools/fit_erf_f64.py`)."""
    z = x * x
    # two Horner chains (c1.. and c7..): half the latency of one; c0 is added
    # last, by one FMA, so the result is rounded much as Horner's own
    p_high = 5.957176147748911e-11
    p_high = p_high * z + -1.1372848856791674e-09
    p_high = p_high * z + 1.4659775274047436e-08
    p_high = p_high * z + -1.6350312701054695e-07
    p_high = p_high * z + 1.6461000484121368e-06
    p_high = p_high * z + -1.4925595266831182e-05
    p_low = 0.0001205533111164271
    p_low = p_low * z + -0.000854832698083379
    p_low = p_low * z + 0.0052239776248180145
    p_low = p_low * z + -0.026866170645076792
    p_low = p_low * z + 0.11283791670954879
    p_low = p_low * z + -0.3761263890318375
    z2 = z * z
    z4 = z2 * z2
    z6 = z4 * z2
    p = (p_high * z6 + p_low) * z + 1.1283791670955126
    return x * p


@_vm_njit(**_VM_JIT)
def _vm_erfc_pos(ax, dx):
    """erfc(x) for x = ax + dx in [0, 27.5]: e^(-x^2) H(x) below 2.5, e^(-x^2) G(1/x) / x above.

    H(x) = e^(x^2) erfc(x) and G(t) = x e^(x^2) erfc(x), t = 1/x, are smooth: a
    degree-25 polynomial in u = 0.8x - 1 on [0, 2.5] and a degree-20 polynomial in
    t beyond (Chebyshev interpolants at 200 bits, interpolation error < 2^-58, rounded
    to float64: `tools/fit_erf_f64.py`). e^(-x^2) is taken with x^2 as an exact
    double-double (`_vm_two_prod`).

    dx (|dx| <= 2^-50 ax) is the low part of a double-double argument; it enters the
    exponent, where an argument's rounding would cost ~2x^2 ulp (erfc's condition
    number, see `vm_erfc_scaled_f64`).
    """
    u = ax * 0.8 - 1.0
    # two Horner chains (c1.. and c13..): half the latency of one; c0 is added
    # last, by one FMA, so the result is rounded much as Horner's own
    gx_high = -7.314629567428826e-11
    gx_high = gx_high * u + 2.533607216245381e-10
    gx_high = gx_high * u + -3.8880904307209657e-10
    gx_high = gx_high * u + 1.2551421391224578e-09
    gx_high = gx_high * u + -5.33588244923485e-09
    gx_high = gx_high * u + 1.7011781085669855e-08
    gx_high = gx_high * u + -5.095160648157862e-08
    gx_high = gx_high * u + 1.5551430018391338e-07
    gx_high = gx_high * u + -4.672369918579994e-07
    gx_high = gx_high * u + 1.3671804401758455e-06
    gx_high = gx_high * u + -3.907635065837384e-06
    gx_high = gx_high * u + 1.0904897645634047e-05
    gx_high = gx_high * u + -2.966215511901068e-05
    gx_low = 7.851727525653716e-05
    gx_low = gx_low * u + -0.00020191164857112209
    gx_low = gx_low * u + 0.0005034176409412703
    gx_low = gx_low * u + -0.0012141466841603514
    gx_low = gx_low * u + 0.0028250832007684253
    gx_low = gx_low * u + -0.006321825645779686
    gx_low = gx_low * u + 0.01355403863205815
    gx_low = gx_low * u + -0.02771492807902686
    gx_low = gx_low * u + 0.05373868225308097
    gx_low = gx_low * u + -0.0980825671795069
    gx_low = gx_low * u + 0.1668680804634354
    gx_low = gx_low * u + -0.2610273449557623
    u2 = u * u
    u4 = u2 * u2
    u8 = u4 * u4
    u12 = u8 * u4
    gx = (gx_high * u12 + gx_low) * u + 0.3678229164523611
    # 1/x for G; capped at x = 0.886 for dx's share below, where 1/x would blow up
    t = 1.0 / (ax if ax > 0.886 else 0.886)
    v = t * 5.5 - 1.2                          # t in [1/27.5, 0.4] -> [-1, 1]
    # two Horner chains (c1.. and c11..): half the latency of one; c0 is added
    # last, by one FMA, so the result is rounded much as Horner's own
    gt_high = -1.8832477885637066e-12
    gt_high = gt_high * v + -3.669425933740794e-12
    gt_high = gt_high * v + 3.462885544413259e-11
    gt_high = gt_high * v + -3.7380912111564616e-11
    gt_high = gt_high * v + -1.4077747627879e-10
    gt_high = gt_high * v + 6.362008767964016e-10
    gt_high = gt_high * v + -1.1039560754736423e-09
    gt_high = gt_high * v + -1.1276427663570492e-09
    gt_high = gt_high * v + 1.342796109385359e-08
    gt_high = gt_high * v + -3.786322206554353e-08
    gt_low = 7.945651829843868e-09
    gt_low = gt_low * v + 3.5618274392584264e-07
    gt_low = gt_low * v + -1.3900778725398173e-06
    gt_low = gt_low * v + 9.15317116122796e-07
    gt_low = gt_low * v + 1.476290943281284e-05
    gt_low = gt_low * v + -6.991121329358764e-05
    gt_low = gt_low * v + 2.360957175038782e-05
    gt_low = gt_low * v + 0.0013226700260687181
    gt_low = gt_low * v + -0.00624185391192018
    gt_low = gt_low * v + -0.019654688378944882
    v2 = v * v
    v4 = v2 * v2
    v8 = v4 * v4
    v10 = v8 * v2
    gt = (gt_high * v10 + gt_low) * v + 0.5516214579618675
    # gt / ax, not gt * t: one rounding less (inf at ax = 0, where gx is taken)
    g = gx if ax < 2.5 else gt / ax
    sq, sq_e = _vm_two_prod(ax, ax)            # x^2 = sq + sq_e exactly
    # plus dx's share: dx times d/dx of -log erfc(x), 2/(sqrt(pi) H(x)), which 2x + t
    # overestimates by 18 % at most (at x = 0.886; exact as x grows: 2x + 1/x - G'/G,
    # G'/G below 1/(2x^3)); dx's share is below 3 half-ulps there, so the slip is below
    # a quarter ulp
    d = sq_e + dx * (2.0 * ax + t)
    # e^-(sq + d) with d carried into the exponential's last step (one rounding
    # less than e^-sq (1 - em))
    return _vm_exp_dd(-sq, -d) * g


@_vm_njit(**_VM_JIT)
def _vm_erf_tail(ax):
    """erfc(x) for x = ax in [1, 6], to what erf = 1 - erfc needs: e^(-x^2) H(x), H(x) =
    e^(x^2) erfc(x) a degree-28 polynomial in u = 0.4x - 1.4 (2^-53.5 relative; erf needs
    2^-52.3 at x = 1, less beyond: `tools/fit_erf_f64.py`). No division, no second range."""
    u = ax * 0.4 - 1.4
    # two Horner chains (c1.. and c15..): half the latency of one; c0 is added
    # last, by one FMA, so the result is rounded much as Horner's own
    p_high = 3.403549128809476e-09
    p_high = p_high * u + -8.27808017002486e-09
    p_high = p_high * u + -4.723529684323121e-09
    p_high = p_high * u + 1.2368852435201621e-08
    p_high = p_high * u + 4.825961898969941e-08
    p_high = p_high * u + -1.1370578545985852e-07
    p_high = p_high * u + 1.1143084433615192e-07
    p_high = p_high * u + -2.4029191446724603e-07
    p_high = p_high * u + 7.043754988574408e-07
    p_high = p_high * u + -1.5335203223793152e-06
    p_high = p_high * u + 3.1285932958036703e-06
    p_high = p_high * u + -6.597721129314622e-06
    p_high = p_high * u + 1.3828928244542998e-05
    p_high = p_high * u + -2.8395881636091154e-05
    p_low = 5.741823232072277e-05
    p_low = p_low * u + -0.00011443636902313971
    p_low = p_low * u + 0.00022453048643318593
    p_low = p_low * u + -0.0004333630245212691
    p_low = p_low * u + 0.0008222551763227133
    p_low = p_low * u + -0.0015325155208559278
    p_low = p_low * u + 0.002803326193753514
    p_low = p_low * u + -0.005028067985897489
    p_low = p_low * u + 0.008833423916019923
    p_low = p_low * u + -0.015182511544736937
    p_low = p_low * u + 0.02549555964371531
    p_low = p_low * u + -0.04176678811945303
    p_low = p_low * u + 0.06663208245319104
    p_low = p_low * u + -0.10330894458313108
    u2 = u * u
    u4 = u2 * u2
    u8 = u4 * u4
    u14 = u8 * u4 * u2
    p = (p_high * u14 + p_low) * u + 0.1552936556088943
    sq, sq_e = _vm_two_prod(ax, ax)            # x^2 = sq + sq_e exactly
    return _vm_exp_dd(-sq, -sq_e) * p


@_vm_njit(**_VM_JIT)
def vm_erf_f64(x):
    """erf, float64: x S(x^2) below |x| = 1, 1 - erfc(|x|) above (odd; 1 beyond 6)."""
    ax = abs(x)
    axc = ax if ax < 6.0 else 6.0              # NaN -> 6 too (fixed below); erfc(6) < 2^-55
    axc = axc if axc > 1.0 else 1.0
    big = 1.0 - _vm_erf_tail(axc)
    big = -big if x < 0.0 else big
    y = _vm_erf_small(x if ax <= 1.0 else 1.0)
    y = y if ax <= 1.0 else big
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def _vm_erfc_dd(x, dx):
    """erfc(x + dx), |dx| <= 2^-50 |x|: e^(-x^2) H(x) or e^(-x^2) G(1/x) / x (or 2 minus it)."""
    ax = abs(x)
    axc = ax if ax < 27.5 else 27.5             # NaN -> 27.5 too (fixed below)
    adx = -dx if x < 0.0 else dx                # |x + dx| = ax + adx
    tail = _vm_erfc_pos(axc, adx if ax == axc else 0.0)   # NaN/inf dx past 27.5: unused
    tail = 0.0 if ax > 27.5 else tail
    y = 2.0 - tail if x < 0.0 else tail
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def vm_erfc_f64(x):
    """erfc, float64 (see `_vm_erfc_dd`)."""
    return _vm_erfc_dd(x, 0.0)


@_vm_njit(**_VM_JIT)
def vm_erfc_scaled_f64(u, c_hi, c_lo):
    """erfc(c u), float64, for a constant c = c_hi + c_lo (a double-double).

    fl(c u) is off by up to an ulp of c u, and erfc multiplies an argument's relative
    error by its condition number 2x^2 e^(-x^2) / (sqrt(pi) erfc x) ~ 2x^2: GELU's
    z erfc(-z/sqrt 2)/2 was ~970 ulp off at z = -38. Here c u is an exact
    double-double (an FMA's exact product plus c_lo u) and erfc takes its low part.
    """
    p, e = _vm_two_prod(c_hi, u)
    return _vm_erfc_dd(p, e + c_lo * u)


@_vm_njit(**_VM_JIT)
def vm_exp_scaled_f64(u, c_hi, c_lo):
    """e^(c u), float64, for a constant c = c_hi + c_lo (a double-double).

    fl(c u) is off by up to half an ulp of c u, and e^x turns an absolute error d of its
    argument into a relative error d: up to |c u| / 2 ulp (~350 ulp near overflow, 65 ulp
    in log(1 + e^(3z))/3 at z = -70). Here c u is an exact double-double (an FMA's exact
    product plus c_lo u) and the low part enters the exponential's last step.
    """
    p, e = _vm_two_prod(c_hi, u)
    y = _vm_exp_dd(p, e + c_lo * u)
    return p + p if p != p else y


@_vm_njit(**_VM_JIT)
def _vm_product_dd(u, du, v, dv, c_hi, c_lo):
    """(x, dx) with x + dx = c (u + du)(v + dv) to about 2^-100 relative, for constants
    du, dv (0 for a plain factor; a centre, as in e^(-(z - 1)^2), whose sum would
    otherwise round): each sum as an exact pair (two-sum), their product's leading
    part as an exact FMA pair plus the cross terms, then times c likewise."""
    uh, ul = _vm_two_sum(u, du)
    vh, vl = _vm_two_sum(v, dv)
    p, e = _vm_two_prod(uh, vh)
    e = e + (uh * vl + ul * vh)
    x, f = _vm_two_prod(c_hi, p)
    return x, f + (c_hi * e + c_lo * p)


@_vm_njit(**_VM_JIT)
def vm_dd_mad_f64(acc, x, c_hi, c_lo):
    """acc * x + c as a double-double, for a double-double acc = (hi, lo), a float x and a
    constant c = c_hi + c_lo: one Horner step of a polynomial argument carried exactly
    (relative error ~2^-100 per step), see `vm_exp_poly_f64`."""
    p, e = _vm_two_prod(acc[0], x)
    e = e + acc[1] * x
    s, f = _vm_two_sum(p, c_hi)
    f = f + (e + c_lo)
    # past overflow (or at x = +-inf) the low parts are NaN: the leading part alone then
    ok = abs(f) < _vm_np.inf
    hi = s + f if ok else s
    return hi, (f - (hi - s)) if ok else 0.0


@_vm_njit(**_VM_JIT)
def vm_affine_f64(u, big, small, q, c, d, limit):
    """c*u + d for rational constants c = big/q and d = small/q with integers big, small
    and q (the printer's `affine_last` form): fma(big, u, small)/q, two roundings,
    so that next to the root -d/c the rounding of c is not the whole value; fma(c, u, d)
    where |u| >= limit and big*u could overflow (there c*u dwarfs d). NaN and +-inf take
    the second form."""
    near = _vm_fma(big, u, small) / q
    far = _vm_fma(c, u, d)
    return near if abs(u) < limit else far


@_vm_njit(**_VM_JIT)
def vm_dd_const_f64(c_hi, c_lo):
    """The leading coefficient of a polynomial argument as a double-double."""
    return c_hi, c_lo


@_vm_njit(**_VM_JIT)
def vm_exp_poly_f64(arg):
    """e^(hi + lo), float64, for an argument carried as a double-double (a polynomial in z
    by `vm_dd_mad_f64` steps: GELU's tanh form exponentiates -2c(z + 0.044715 z^3), whose
    rounding was 551 ulp at z = -21)."""
    hi, lo = arg
    y = _vm_exp_dd(hi, lo)
    return hi + hi if hi != hi else y


@_vm_njit(**_VM_JIT)
def vm_erfc_poly_f64(arg):
    """erfc(hi + lo), float64, for an argument carried as a double-double."""
    return _vm_erfc_dd(arg[0], arg[1])


@_vm_njit(**_VM_JIT)
def vm_exp_product_f64(u, du, v, dv, c_hi, c_lo):
    """e^(c (u + du)(v + dv)), float64, for constants c = c_hi + c_lo (a double-double),
    du and dv.

    As `vm_exp_scaled_f64`, for an exponent with two variable factors (a Gaussian's
    -x^2 is -1 * x * x): fl(x * x) alone is off by up to half an ulp of x^2, which e^x
    turns into x^2/2 ulp (~370 ulp in e^(-x^2) near its underflow at x = 27), and
    fl(x - 1) in e^(-(x - 1)^2) as much again. Here the argument is carried as a
    double-double (`_vm_product_dd`).
    """
    x, dx = _vm_product_dd(u, du, v, dv, c_hi, c_lo)
    y = _vm_exp_dd(x, dx)
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def vm_erfc_product_f64(u, du, v, dv, c_hi, c_lo):
    """erfc(c (u + du)(v + dv)), float64, the argument as a double-double (see
    `vm_exp_product_f64`, `vm_erfc_scaled_f64`)."""
    x, dx = _vm_product_dd(u, du, v, dv, c_hi, c_lo)
    return _vm_erfc_dd(x, dx)


@_vm_njit(**_VM_JIT)
def vm_hypot_f64(x, y):
    """sqrt(x^2 + y^2), float64, without overflow or underflow of the squares (within
    1 ulp): the larger scaled into [1e-31, 1e-150] by 2^-600 above 1e150 and by 2^600
    below 1e-150 (exact powers of two), where its square is a normal number. inf if
    either is infinite (NaN included, as C99), else NaN propagates."""
    ax = abs(x)
    ay = abs(y)
    m = ax if ax > ay else ay
    s = 2.409919865102884e-181 if m > 1e150 else 1.0               # 2^-600
    s = 4.149515568880993e+180 if m < 1e-150 else s                # 2^600
    xs = ax * s
    ys = ay * s
    h = _vm_np.sqrt(_vm_fma(xs, xs, ys * ys)) / s
    return _vm_np.inf if (ax == _vm_np.inf) | (ay == _vm_np.inf) else h


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
    # two Horner chains (c1.. and c8..): half the latency of one; c0 is added
    # last, by one FMA, so the result is rounded much as Horner's own
    p_high = -1.2071201659983949e-17
    p_high = p_high * v + 1.6321321032322376e-16
    p_high = p_high * v + -2.171868740809e-15
    p_high = p_high * v + 2.966908125179264e-14
    p_high = p_high * v + -4.0793505432586713e-13
    p_high = p_high * v + 5.6499490203789806e-12
    p_high = p_high * v + -7.895561989959365e-11
    p_low = 1.1154921191860317e-09
    p_low = p_low * v + -1.5976278233791234e-08
    p_low = p_low * v + 2.328612321520377e-07
    p_low = p_low * v + -3.4742616368168473e-06
    p_low = p_low * v + 5.3558515679694616e-05
    p_low = p_low * v + -0.0008672151785396066
    p_low = p_low * v + 0.015247015915511865
    v2 = v * v
    v4 = v2 * v2
    v7 = v4 * v2 * v
    p = (p_high * v7 + p_low) * v + -0.3171618194239173
    y = hi + (t + (t * (u * p) + lo))
    y = -y if x < 0.0 else y
    return x if (ax < 7.450580596923828e-09) | (x != x) else y   # 2^-27: atan(x) = x


# ---- sin, cos: reduction modulo pi/2, exact over the whole finite range ----
# 2/pi to 1280 bits after the binary point (2/pi = 0.a2f9836e... in hex), the digits
# fdlibm calls ipio2; tests/test_vecmath_accuracy.py checks them against mpmath.
_VM_TWO_OVER_PI_HEX = (
    "a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561b7246e3a424dd2e0"
    "06492eea09d1921cfe1deb1cb129a73ee88235f52ebb4484e99c7026b45f7e413991d639835339f4"
    "9c845f8bbdf9283b1ff897ffde05980fef2f118b5a0a6d1f6d367ecf27cb09b74f463f669e5fea2d"
    "7527bac7ebe5f17b3d0739f78a5292ea6bfb5fb11f8d5d0856033046fc7b6babf0cfbc209af4361d")
# The same bits as int64 words: word k >= 1 holds the bits of weight 2^-(64k-63) ...
# 2^-64k, word 0 the (zero) integer part; two's complement, so the top bit is the sign.
_VM_PIO2_WORDS = tuple(
    w - (1 << 64) if w >> 63 else w for w in
    [0] + [int(_VM_TWO_OVER_PI_HEX[16 * k:16 * k + 16], 16) for k in range(19)])
_VM_2_OVER_PI = 0.6366197723675814
# pi/2 = P1 + P2 + P3 + P4 (+ 7.4e-49): P1..P3 have 33 significant bits, so k*Pi is
# exact for k < 2^20 (Cody-Waite); P4 is the next 53 bits.
_VM_PIO2_1 = 1.5707963267341256
_VM_PIO2_2 = 6.077100506303966e-11
_VM_PIO2_3 = 2.0222662487111665e-21
_VM_PIO2_4 = 8.4784276603689e-32
_VM_PIO2_HI = 1.5707963267948966          # pi/2 as a double-double, the high part
_VM_PIO2_HI_H = 1.5707963109016418        # split in 26 + 27 bits (for an exact product)
_VM_PIO2_HI_L = 1.5893254712295857e-08
_VM_PIO2_LO = 6.123233995736766e-17
_VM_CW_LIMIT = 1048576.0                  # 2^20: Cody-Waite below, Payne-Hanek above
_VM_TWO_P52 = 4503599627370496.0
_VM_TWO_P52_BITS = 0x4330000000000000


@_vm_njit(**_VM_JIT)
def _vm_pio2_words(i):
    """Words i .. i+3 of `_VM_PIO2_WORDS` (0 <= i <= 16), picked by masks.

    NOTE: not an array lookup. A load at a data-dependent index (a gather) keeps LLVM
    from vectorising a loop over reshaped arrays ("cannot identify array bounds": it
    cannot prove the loop's stores miss the table), and the kernels loop over reshaped
    arrays. 16 compares and 64 masked blends (h = all ones where i == k) vectorise
    anywhere; written out, since a loop over k would index the tuple at run time.
    """
    w = _VM_PIO2_WORDS
    a, b, c, d = w[0], w[1], w[2], w[3]
    h = -_vm_np.int64(i == 1)
    a, b = a ^ ((a ^ w[1]) & h), b ^ ((b ^ w[2]) & h)
    c, d = c ^ ((c ^ w[3]) & h), d ^ ((d ^ w[4]) & h)
    h = -_vm_np.int64(i == 2)
    a, b = a ^ ((a ^ w[2]) & h), b ^ ((b ^ w[3]) & h)
    c, d = c ^ ((c ^ w[4]) & h), d ^ ((d ^ w[5]) & h)
    h = -_vm_np.int64(i == 3)
    a, b = a ^ ((a ^ w[3]) & h), b ^ ((b ^ w[4]) & h)
    c, d = c ^ ((c ^ w[5]) & h), d ^ ((d ^ w[6]) & h)
    h = -_vm_np.int64(i == 4)
    a, b = a ^ ((a ^ w[4]) & h), b ^ ((b ^ w[5]) & h)
    c, d = c ^ ((c ^ w[6]) & h), d ^ ((d ^ w[7]) & h)
    h = -_vm_np.int64(i == 5)
    a, b = a ^ ((a ^ w[5]) & h), b ^ ((b ^ w[6]) & h)
    c, d = c ^ ((c ^ w[7]) & h), d ^ ((d ^ w[8]) & h)
    h = -_vm_np.int64(i == 6)
    a, b = a ^ ((a ^ w[6]) & h), b ^ ((b ^ w[7]) & h)
    c, d = c ^ ((c ^ w[8]) & h), d ^ ((d ^ w[9]) & h)
    h = -_vm_np.int64(i == 7)
    a, b = a ^ ((a ^ w[7]) & h), b ^ ((b ^ w[8]) & h)
    c, d = c ^ ((c ^ w[9]) & h), d ^ ((d ^ w[10]) & h)
    h = -_vm_np.int64(i == 8)
    a, b = a ^ ((a ^ w[8]) & h), b ^ ((b ^ w[9]) & h)
    c, d = c ^ ((c ^ w[10]) & h), d ^ ((d ^ w[11]) & h)
    h = -_vm_np.int64(i == 9)
    a, b = a ^ ((a ^ w[9]) & h), b ^ ((b ^ w[10]) & h)
    c, d = c ^ ((c ^ w[11]) & h), d ^ ((d ^ w[12]) & h)
    h = -_vm_np.int64(i == 10)
    a, b = a ^ ((a ^ w[10]) & h), b ^ ((b ^ w[11]) & h)
    c, d = c ^ ((c ^ w[12]) & h), d ^ ((d ^ w[13]) & h)
    h = -_vm_np.int64(i == 11)
    a, b = a ^ ((a ^ w[11]) & h), b ^ ((b ^ w[12]) & h)
    c, d = c ^ ((c ^ w[13]) & h), d ^ ((d ^ w[14]) & h)
    h = -_vm_np.int64(i == 12)
    a, b = a ^ ((a ^ w[12]) & h), b ^ ((b ^ w[13]) & h)
    c, d = c ^ ((c ^ w[14]) & h), d ^ ((d ^ w[15]) & h)
    h = -_vm_np.int64(i == 13)
    a, b = a ^ ((a ^ w[13]) & h), b ^ ((b ^ w[14]) & h)
    c, d = c ^ ((c ^ w[15]) & h), d ^ ((d ^ w[16]) & h)
    h = -_vm_np.int64(i == 14)
    a, b = a ^ ((a ^ w[14]) & h), b ^ ((b ^ w[15]) & h)
    c, d = c ^ ((c ^ w[16]) & h), d ^ ((d ^ w[17]) & h)
    h = -_vm_np.int64(i == 15)
    a, b = a ^ ((a ^ w[15]) & h), b ^ ((b ^ w[16]) & h)
    c, d = c ^ ((c ^ w[17]) & h), d ^ ((d ^ w[18]) & h)
    h = -_vm_np.int64(i == 16)
    a, b = a ^ ((a ^ w[16]) & h), b ^ ((b ^ w[17]) & h)
    c, d = c ^ ((c ^ w[18]) & h), d ^ ((d ^ w[19]) & h)
    return a, b, c, d


@_vm_njit(**_VM_JIT)
def _vm_lsr(v, n):
    """v >> n as an unsigned (logical) shift of the int64 v, 1 <= n <= 64."""
    return ((v >> 1) & 0x7FFFFFFFFFFFFFFF) >> (n - 1)


@_vm_njit(**_VM_JIT)
def _vm_chunk(bits, scale):
    """A 26-bit integer times a power of two, as a float64 (exact: 2^52 + bits)."""
    return (_i2f(bits | _VM_TWO_P52_BITS) - _VM_TWO_P52) * scale


@_vm_njit(**_VM_JIT)
def _vm_pio2_chunks(e):
    """2/pi cut to the bits that matter for |x| in [2^e, 2^(e+1)), 20 <= e <= 1023.

    x = m 2^e with m in [1, 2). A bit of 2/pi of weight 2^-p adds m 2^(e-p) to
    x*2/pi, a multiple of 4 (a whole turn: it changes neither sin nor cos) when
    p <= e - 54 (m is a multiple of 2^-52). So 7 chunks of 26 bits from p = e - 53
    on, each scaled by 2^e: chunk j holds the bits p in [e - 53 + 26j, e - 28 + 26j]
    and is an integer times 2^(28 - 26j), so m's two halves (26 and 27 bits) times a
    chunk are exact products. 182 bits cover the worst case: no double is closer
    than 2^-61 to a multiple of pi/2 (Muller, Elementary Functions, ch. 11), and
    2^-61 must keep 53 bits.
    """
    o = e - 53                                     # first bit needed: p = o
    a, b, c, d = _vm_pio2_words((o + 63) >> 6)
    s = (o + 63) & 63                              # p = o sits s bits below a's top bit
    h0 = (a << s) | _vm_lsr(b, 64 - s)             # bits p in [o, o + 63]
    h1 = (b << s) | _vm_lsr(c, 64 - s)             # [o + 64, o + 127]
    h2 = (c << s) | _vm_lsr(d, 64 - s)             # [o + 128, o + 191]
    m = 0x3FFFFFF
    return (_vm_chunk((h0 >> 38) & m, 268435456.0),                       # 2^28
            _vm_chunk((h0 >> 12) & m, 4.0),
            _vm_chunk(((h0 & 0xFFF) << 14) | ((h1 >> 50) & 0x3FFF), 5.960464477539063e-08),
            _vm_chunk((h1 >> 24) & m, 8.881784197001252e-16),             # 2^-50
            _vm_chunk(((h1 & 0xFFFFFF) << 2) | ((h2 >> 62) & 3), 1.3234889800848443e-23),
            _vm_chunk((h2 >> 36) & m, 1.9721522630525295e-31),            # 2^-102
            _vm_chunk((h2 >> 10) & m, 2.938735877055719e-39))             # 2^-128


@_vm_njit(**_VM_JIT)
def _vm_round(v):
    """v rounded to the nearest integer (|v| < 2^51), as a float64."""
    return (v + _VM_SHIFTER) - _VM_SHIFTER


@_vm_njit(**_VM_JIT)
def _vm_mod4(v):
    """v - 4*round(v/4), in [-2, 2]: exact (v*0.25 and 4*q are)."""
    return v - 4.0 * _vm_round(v * 0.25)


@_vm_njit(**_VM_JIT)
def _vm_reduce_cody_waite(ax):
    """(n, r_hi, r_lo) with ax = n pi/2 + r_hi + r_lo, for 0 <= ax < 2^20.

    k*P1..k*P3 are exact; ax - k*P1 is exact (Sterbenz), the next two subtractions
    are carried exactly in (s, e1 + e2). Error below 2^-130: tiny next to the closest
    approach of a double below 2^20 to a multiple of pi/2 (2^-60.5, at 45.553...).
    """
    t = ax * _VM_2_OVER_PI + _VM_SHIFTER
    kf = t - _VM_SHIFTER
    n = _f2i(t) - _VM_SHIFTER_BITS
    u = ax - kf * _VM_PIO2_1
    s, e1 = _vm_two_sum(u, -(kf * _VM_PIO2_2))
    s, e2 = _vm_two_sum(s, -(kf * _VM_PIO2_3))
    lo = (e1 + e2) - kf * _VM_PIO2_4
    r_hi = s + lo
    return n, r_hi, lo - (r_hi - s)


@_vm_njit(**_VM_JIT)
def _vm_reduce_payne_hanek(ax):
    """(n, r_hi, r_lo) with ax = n pi/2 + r_hi + r_lo (mod 2 pi), for ax >= 2^20 finite.

    ax*2/pi summed from exact products of m's halves and the chunks of 2/pi for ax's
    exponent (`_vm_pio2_chunks`); terms are taken modulo 4 while they are large (exact),
    the fraction is carried as a double-double. Error below 2^-120 of a turn.
    """
    bits = _f2i(ax)
    e = (bits >> 52) - 1023
    e = e if e > 20 else 20                             # below 2^20 (unused then) and
    e = e if e < 1023 else 1023                         # inf/NaN: any valid row
    row = _vm_pio2_chunks(e)
    m = _i2f((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    ma, mb = _vm_split(m)
    # ma*c0 is a multiple of 8: left out. Below, every sum is exact (see the bounds in
    # `_vm_pio2_chunks`' docstring: each product's lowest bit and size are known).
    s = (_vm_mod4(mb * row[0]) + _vm_mod4(ma * row[1])) + _vm_mod4(mb * row[1])
    n1 = _vm_round(s)
    s = (s - n1) + _vm_mod4(ma * row[2])
    n2 = _vm_round(s)
    h = s - n2                                          # in [-1/2, 1/2], 51 bits
    h, l1 = _vm_two_sum(h, mb * row[2])
    h, l2 = _vm_two_sum(h, ma * row[3])
    h, l3 = _vm_two_sum(h, mb * row[3])
    h, l4 = _vm_two_sum(h, ma * row[4])
    low = (((mb * row[5] + ma * row[6]) + (mb * row[4] + ma * row[5])) + l4 + l3) + (l2 + l1)
    f = h + low
    f_lo = low - (f - h)
    # r = f pi/2 as a double-double: Dekker's exact product of f and pi/2's high part.
    fh, fl = _vm_split(f)
    r_hi = f * _VM_PIO2_HI
    err = ((fh * _VM_PIO2_HI_H - r_hi) + fh * _VM_PIO2_HI_L + fl * _VM_PIO2_HI_H) \
        + fl * _VM_PIO2_HI_L
    r_lo = err + (f * _VM_PIO2_LO + f_lo * _VM_PIO2_HI)
    n = _f2i((n1 + n2) + _VM_SHIFTER) - _VM_SHIFTER_BITS
    return n, r_hi, r_lo


@_vm_njit(**_VM_JIT)
def _vm_reduce_pio2(ax):
    """(n mod 4, r_hi, r_lo): ax = n pi/2 + r, |r| <= pi/4 (a hair more past 2^20).

    Both reductions run for every element (no branch: the loop vectorises); a select
    keeps the one valid for ax. NaN and inf give garbage here (fixed by the caller).
    """
    small = ax < _VM_CW_LIMIT
    n1, h1, l1 = _vm_reduce_cody_waite(ax if small else 0.0)
    n2, h2, l2 = _vm_reduce_payne_hanek(ax)
    n = n1 if small else n2
    return n & 3, (h1 if small else h2), (l1 if small else l2)


@_vm_njit(**_VM_JIT)
def _vm_sin_poly(r, r_lo, z):
    """sin(r + r_lo) for |r| <= pi/4, z = r^2: Taylor to r^17 (truncation < 2^-63)."""
    p = -1.0 / 355687428096000.0
    p = p * z + 1.0 / 1307674368000.0
    p = p * z + -1.0 / 6227020800.0
    p = p * z + 1.0 / 39916800.0
    p = p * z + -1.0 / 362880.0
    p = p * z + 1.0 / 5040.0
    p = p * z + -1.0 / 120.0
    p = p * z + 1.0 / 6.0
    # sin(r + d) = sin r + d cos r, cos r = 1 - z/2 to the precision d needs
    return r - (r * (z * p) - r_lo * (1.0 - 0.5 * z))


@_vm_njit(**_VM_JIT)
def _vm_cos_poly(r, r_lo, z):
    """cos(r + r_lo) for |r| <= pi/4: 1 - z/2 + z^2 q(z), Taylor to r^18 (truncation
    < 2^-68); 1 - z/2 is summed exactly (w plus its rounding error) as fdlibm does."""
    q = 1.0 / 6402373705728000.0
    q = q * z + -1.0 / 20922789888000.0
    q = q * z + 1.0 / 87178291200.0
    q = q * z + -1.0 / 479001600.0
    q = q * z + 1.0 / 3628800.0
    q = q * z + -1.0 / 40320.0
    q = q * z + 1.0 / 720.0
    q = q * z + -1.0 / 24.0
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) - (z * (z * q) + r * r_lo))


@_vm_njit(**_VM_JIT)
def vm_sin_f64(x):
    """sin, float64: reduced modulo pi/2 exactly (Cody-Waite / Payne-Hanek), a sin or cos
    polynomial by quadrant; odd through the sign bit (sin(-0) = -0); NaN at +-inf."""
    ax = abs(x)
    q, r, r_lo = _vm_reduce_pio2(ax)
    z = r * r
    s = _vm_sin_poly(r, r_lo, z)
    c = _vm_cos_poly(r, r_lo, z)
    y = s if (q & 1) == 0 else c
    y = -y if (q & 2) != 0 else y
    y = -y if _f2i(x) < 0 else y
    return y if ax < _vm_np.inf else x - x


@_vm_njit(**_VM_JIT)
def vm_cos_f64(x):
    """cos, float64: as `vm_sin_f64` (even, so the reduction runs on |x|); NaN at +-inf."""
    ax = abs(x)
    q, r, r_lo = _vm_reduce_pio2(ax)
    z = r * r
    s = _vm_sin_poly(r, r_lo, z)
    c = _vm_cos_poly(r, r_lo, z)
    y = c if (q & 1) == 0 else s
    y = -y if ((q + 1) & 2) != 0 else y          # quadrants 1, 2: negative
    return y if ax < _vm_np.inf else x - x



@_vm_njit(**_VM_JIT)
def vm_tan_f64(x):
    """tan, float64: the reduction of `vm_sin_f64`, then sin(r)/cos(r) in even quadrants and
    -cos(r)/sin(r) in odd ones (|r| <= pi/4, so neither divisor is small unless r = 0,
    i.e. x = 0); odd through the sign bit; NaN at +-inf."""
    ax = abs(x)
    q, r, r_lo = _vm_reduce_pio2(ax)
    z = r * r
    s = _vm_sin_poly(r, r_lo, z)
    c = _vm_cos_poly(r, r_lo, z)
    y = s / c if (q & 1) == 0 else -c / s
    y = -y if _f2i(x) < 0 else y
    return y if ax < _vm_np.inf else x - x


# ---- inverse functions: through log1p, sqrt and atan ----
_VM_LN2 = 0.6931471805599453
_VM_TWO_P28 = 268435456.0                 # 2^28: above, asinh/acosh = log(2|x|) to 2^-56
_VM_TWO_M28 = 3.725290298461914e-09       # 2^-28: below, asinh/atanh(x) = x


@_vm_njit(**_VM_JIT)
def vm_asinh_f64(x):
    """asinh, float64, odd: log1p of t, one call for every range (fdlibm's split):
    t = |x| + x^2/(1 + sqrt(1 + x^2)) below |x| = 2 (no cancellation near 0),
    2|x| + 1/(|x| + sqrt(x^2 + 1)) - 1 up to 2^28, and |x| - 1 above, plus ln 2
    (asinh x - log 2x = 1/(4x^2) is below an ulp there); x itself below 2^-28."""
    ax = abs(x)
    a = ax if ax < _VM_TWO_P28 else 1.0          # keeps a*a finite where it is unused
    s = _vm_np.sqrt(_vm_fma(a, a, 1.0))
    t = a + a * a / (1.0 + s) if ax < 2.0 else (2.0 * a + 1.0 / (s + a)) - 1.0
    big = ax >= _VM_TWO_P28
    t = ax - 1.0 if big else t
    y = vm_log1p_f64(t) + (_VM_LN2 if big else 0.0)
    y = -y if x < 0.0 else y
    return x if (ax < _VM_TWO_M28) | (x != x) else y   # +-0 keep their sign


@_vm_njit(**_VM_JIT)
def vm_acosh_f64(x):
    """acosh, float64: log1p of t with t = d + sqrt(2d + d^2), d = x - 1 (exact) below
    x = 2, 2x - 1/(x + sqrt(x^2 - 1)) - 1 up to 2^28, x - 1 above plus ln 2; NaN below 1."""
    a = x if x < _VM_TWO_P28 else 1.0
    d = a - 1.0
    t = d + _vm_np.sqrt(_vm_fma(d, d, 2.0 * d)) if a < 2.0 else \
        (2.0 * a - 1.0 / (a + _vm_np.sqrt(_vm_fma(a, a, -1.0)))) - 1.0
    big = x >= _VM_TWO_P28
    t = x - 1.0 if big else t
    y = vm_log1p_f64(t) + (_VM_LN2 if big else 0.0)
    return y if x >= 1.0 else _vm_np.nan         # below 1, and NaN, give NaN


@_vm_njit(**_VM_JIT)
def vm_atanh_f64(x):
    """atanh, float64, odd: log1p(t)/2 with t = 2|x| + 2x^2/(1 - |x|) below |x| = 1/2 and
    2|x|/(1 - |x|) above (1 - |x| exact there); +-inf at +-1, NaN beyond."""
    ax = abs(x)
    w = 1.0 - ax
    t = 2.0 * ax + 2.0 * ax * ax / w if ax < 0.5 else 2.0 * ax / w
    y = 0.5 * vm_log1p_f64(t)
    y = _vm_np.nan if ax > 1.0 else y
    y = -y if x < 0.0 else y
    return x if ax < _VM_TWO_M28 else y


@_vm_njit(**_VM_JIT)
def vm_asin_f64(x):
    """asin, float64: atan(x / sqrt(1 - x^2)) with 1 - x^2 rounded once (an FMA); the
    argument's ~1.3 ulp reach the result scaled by atan's condition number (<= 1). +-pi/2
    at +-1 (x/0 = +-inf), NaN beyond; odd, so asin(-0) = -0."""
    return vm_atan_f64(x / _vm_np.sqrt(_vm_fma(-x, x, 1.0)))


@_vm_njit(**_VM_JIT)
def vm_acos_f64(x):
    """acos, float64: 2 atan(sqrt((1 - x)/(1 + x))), no cancellation at either end
    (1 - x is exact near 1, 1 + x near -1); pi at -1, NaN beyond +-1."""
    return 2.0 * vm_atan_f64(_vm_np.sqrt((1.0 - x) / (1.0 + x)))

# ---- pow: x^y = e^(y log x) with log x as a double-double ----
_VM_TWO_THIRDS_HI = 0.6666666666666666
_VM_TWO_THIRDS_LO = 3.700743415417188e-17       # 2/3 - _VM_TWO_THIRDS_HI
_VM_TWO_P53 = 9007199254740992.0                # 2^53: every double from here on is even
_VM_POW_Y_MAX = 1.1805916207174113e21           # 2^70: beyond, |y log x| > 2^17 anyway



@_vm_njit(**_VM_JIT)
def _vm_log_dd(u):
    """log u as a double-double (hi, lo), relative error below 2^-68, u > 0 finite.

    u = 2^k (1 + f), log(1 + f) = 2 atanh(s) = 2s + 2s^3/3 + 2s^5 R(s^2) with
    s = f/(2 + f), |s| <= 0.172. s is carried as s_h (26 bits, so its powers are exact
    products) + s_l; 2s^3/3 as a double-double; the rest, below 2^-14 relative, in
    double. k ln2 = k*_VM_LN2_HI (exact) + k*_VM_LN2_LO.
    """
    k, f = _vm_log_parts(u)
    v = 2.0 + f
    v_h, _unused = _vm_split(v)
    v_l = (2.0 - v_h) + f                          # exact: 2 + f = v_h + v_l
    s_h, _unused = _vm_split(f / v)
    s_l = ((f - s_h * v_h) - s_h * v_l) / v        # f - s_h v_h is exact
    s2 = s_h * s_h                                 # exact (52 bits)
    p3, e3 = _vm_two_prod(s2, s_h)                 # s_h^3, exactly
    s3_lo = e3 + s_l * (3.0 * s2 + 3.0 * s_h * s_l)  # (s_h + s_l)^3 - p3
    a_hi, a_e = _vm_two_prod(_VM_TWO_THIRDS_HI, p3)
    a_lo = a_e + (_VM_TWO_THIRDS_HI * s3_lo + _VM_TWO_THIRDS_LO * p3)
    z = s2 + 2.0 * s_h * s_l
    # two Horner chains (c1.. and c6..): half the latency of one; c0 is added
    # last, by one FMA, so the result is rounded much as Horner's own
    r_high = 2.0 / 27.0
    r_high = r_high * z + 2.0 / 25.0
    r_high = r_high * z + 2.0 / 23.0
    r_high = r_high * z + 2.0 / 21.0
    r_high = r_high * z + 2.0 / 19.0
    r_high = r_high * z + 2.0 / 17.0
    r_low = 2.0 / 15.0
    r_low = r_low * z + 2.0 / 13.0
    r_low = r_low * z + 2.0 / 11.0
    r_low = r_low * z + 2.0 / 9.0
    r_low = r_low * z + 2.0 / 7.0
    z2 = z * z
    z4 = z2 * z2
    z5 = z4 * z
    r = (r_high * z5 + r_low) * z + 2.0 / 5.0
    tail = ((p3 + s3_lo) * z) * r                  # 2 s^5 R, truncation below 2^-72
    m_hi, e1 = _vm_two_sum(2.0 * s_h, a_hi)
    m_lo = e1 + (2.0 * s_l + (a_lo + tail))
    kf = _vm_np.float64(k)
    hi, e2 = _vm_two_sum(kf * _VM_LN2_HI, m_hi)
    lo = e2 + (m_lo + kf * _VM_LN2_LO)
    out = hi + lo
    return out, lo - (out - hi)



@_vm_njit(**_VM_JIT)
def vm_pow_f64(x, y):
    """x^y, float64, with C99/IEEE special cases: x^+-0 = 1 and 1^y = 1 (even NaN),
    (-1)^+-inf = 1; x < 0 finite with y not an integer -> NaN; an odd integer y keeps
    x's sign (-0 and -inf included); 0^y<0 = inf; |x|^+-inf and inf^y by |x| vs 1."""
    return _vm_pow_dd(x, y, 0.0)


@_vm_njit(**_VM_JIT)
def vm_pow_exact_f64(x, y_hi, y_lo):
    """x^y for a constant exponent y = y_hi + y_lo carried as a double-double (as
    `vm_pow_f64` otherwise): x^(2/3) with 2/3 rounded is off by |log x| 2^-54 relative,
    ~250 ulp at x = 1e304."""
    return _vm_pow_dd(x, y_hi, y_lo)


@_vm_njit(**_VM_JIT)
def _vm_pow_dd(x, y, y_lo):
    """x^(y + y_lo), |y_lo| <= ulp(y)/2: y_lo log|x| joins the product's low part."""
    ax = abs(x)
    ay = abs(y)
    ok = (ax > 0.0) & (ax < _vm_np.inf)
    hi, lo = _vm_log_dd(ax if ok else 1.0)
    yc = y if ay < _VM_POW_Y_MAX else (_VM_POW_Y_MAX if y > 0.0 else -_VM_POW_Y_MAX)
    p_hi, p_e = _vm_two_prod(yc, hi)
    mag = _vm_exp_dd(p_hi, p_e + (yc * lo + y_lo * hi))
    # |x| = 0 or inf, or y = +-inf: 0 or inf by the sign of y log|x|
    big = (ax > 1.0) == (y > 0.0)
    mag = mag if ok & (ay < _vm_np.inf) else (_vm_np.inf if big else 0.0)
    # y an integer? odd? (every double from 2^53 on is an even integer; inf counts as even)
    yt = ay if ay < _VM_TWO_P53 else _VM_TWO_P53
    yi = _vm_np.int64(yt)
    integral = _vm_np.float64(yi) == yt
    odd = integral & ((yi & 1) == 1)
    out = -mag if odd & (_f2i(x) < 0) else mag
    out = _vm_np.nan if (x < 0.0) & (x > -_vm_np.inf) & (ay < _vm_np.inf) & ~integral else out
    out = x + y if (x != x) | (y != y) else out
    one = (y == 0.0) | (x == 1.0) | ((x == -1.0) & (ay == _vm_np.inf))
    return 1.0 if one else out

# float32: native code for exp, expm1, log, log1p, tanh, erf, erfc and erfc(c*u); sinh,
# cosh, atan, sin, cos and pow evaluate in float64 and round once (module docstring).
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
def _vm_exp_reduce_f32(x):
    """x = k*ln2 + r, |r| <= ln2/2, float32, for x already clamped to a finite range."""
    t = x * _VM_F_LOG2E + _VM_F_SHIFTER
    kf = t - _VM_F_SHIFTER
    k = _f2i32(t) - _VM_F_SHIFTER_BITS
    r = (x - kf * _VM_F_LN2_HI) - kf * _VM_F_LN2_LO
    return k, r


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
    k, r = _vm_exp_reduce_f32(xc)
    e = _VM_F_ONE + _vm_expm1_poly_f32(r)
    k1 = k >> 1                                # 2^k = 2^k1 * 2^(k-k1): both normal
    y = (e * _i2f32((k1 + 127) << 23)) * _i2f32((k - k1 + 127) << 23)
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def vm_exp_scaled_f32(u, c_hi, c_lo):
    """e^(c u), native float32, for a constant c = c_hi + c_lo (float64 double-double).

    As `vm_exp_scaled_f64`: c u is carried as x + dx (c as a float32 pair, an FMA's exact
    product) and dx is added to the reduced argument r, where it is below 2^-24 |x| and
    r's own rounding: e^(k ln2 + r + dx). Without it log(1 + e^(3z))/3 was 31 ulp off.
    """
    u = _VM_F(u)
    ch = _VM_F(c_hi)
    cl = _VM_F((c_hi - _vm_np.float64(ch)) + c_lo)        # constants: folded by LLVM
    x, dx = _vm_two_prod_f32(ch, u)
    return _vm_exp_dd_f32(x, dx + cl * u)


@_vm_njit(**_VM_JIT)
def _vm_exp_dd_f32(x, dx):
    """e^(x + dx), native float32, |dx| <= 2^-20 |x|: dx is added to the reduced argument
    r, where it is below r's own rounding."""
    xc = x if x > _VM_F_EXP_LO else _VM_F_EXP_LO
    xc = xc if xc < _VM_F_EXP_HI else _VM_F_EXP_HI
    dx = dx if xc == x else _VM_F_ZERO                    # clamped: 0 or inf whatever dx is
    k, r = _vm_exp_reduce_f32(xc)
    e = _VM_F_ONE + _vm_expm1_poly_f32(r + dx)
    k1 = k >> 1                                # 2^k = 2^k1 * 2^(k-k1): both normal
    y = (e * _i2f32((k1 + 127) << 23)) * _i2f32((k - k1 + 127) << 23)
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def _vm_product_dd_f32(u, du, v, dv, c_hi, c_lo):
    """(x, dx) with x + dx = c (u + du)(v + dv) in float32 pairs (as `_vm_product_dd`;
    du and dv exact in float32, c as a float32 pair taken from the float64 one)."""
    uh, ul = _vm_two_sum(_VM_F(u), _VM_F(du))
    vh, vl = _vm_two_sum(_VM_F(v), _VM_F(dv))
    ch = _VM_F(c_hi)
    cl = _VM_F((c_hi - _vm_np.float64(ch)) + c_lo)        # constants: folded by LLVM
    p, e = _vm_two_prod_f32(uh, vh)
    e = e + (uh * vl + ul * vh)
    x, f = _vm_two_prod_f32(ch, p)
    return x, f + (ch * e + cl * p)


@_vm_njit(**_VM_JIT)
def vm_dd_mad_f32(acc, x, c_hi, c_lo):
    """acc * x + c as a float32 pair (as `vm_dd_mad_f64`; c from its float64 pair)."""
    ch = _VM_F(c_hi)
    cl = _VM_F((c_hi - _vm_np.float64(ch)) + c_lo)        # constants: folded by LLVM
    x = _VM_F(x)
    p, e = _vm_two_prod_f32(_VM_F(acc[0]), x)
    e = e + _VM_F(acc[1]) * x
    s, f = _vm_two_sum(p, ch)
    f = f + (e + cl)
    ok = abs(f) < _VM_F_INF                 # NaN low parts past overflow: see the f64 one
    hi = s + f if ok else s
    return hi, (f - (hi - s)) if ok else _VM_F_ZERO


@_vm_njit(**_VM_JIT)
def vm_affine_f32(u, big, small, q, c, d, limit):
    """c*u + d, float32: `vm_affine_f64` of the float32 u, rounded once more."""
    return _VM_F(vm_affine_f64(_vm_np.float64(u), big, small, q, c, d, limit))


@_vm_njit(**_VM_JIT)
def vm_dd_const_f32(c_hi, c_lo):
    """The leading coefficient of a polynomial argument as a float32 pair."""
    ch = _VM_F(c_hi)
    return ch, _VM_F((c_hi - _vm_np.float64(ch)) + c_lo)


@_vm_njit(**_VM_JIT)
def vm_exp_poly_f32(arg):
    """e^(hi + lo), native float32, for an argument carried as a float32 pair."""
    return _vm_exp_dd_f32(_VM_F(arg[0]), _VM_F(arg[1]))


@_vm_njit(**_VM_JIT)
def vm_erfc_poly_f32(arg):
    """erfc(hi + lo), native float32, for an argument carried as a float32 pair."""
    return _vm_erfc_dd_f32(_VM_F(arg[0]), _VM_F(arg[1]))


@_vm_njit(**_VM_JIT)
def vm_exp_product_f32(u, du, v, dv, c_hi, c_lo):
    """e^(c (u + du)(v + dv)), native float32, the argument as a float32 pair (see
    `vm_exp_product_f64`: e^(-x^2) was up to ~50 ulp off near its underflow at x = 10)."""
    x, dx = _vm_product_dd_f32(u, du, v, dv, c_hi, c_lo)
    return _vm_exp_dd_f32(x, dx)


@_vm_njit(**_VM_JIT)
def vm_expm1_f32(x):
    """e^x - 1, native float32 (same scheme as `vm_expm1_f64`)."""
    x = _VM_F(x)   # a float64 operand (e.g. a mixed-type expression) is rounded once
    xc = x if x > _VM_F(-20.0) else _VM_F(-20.0)
    xc = xc if xc < _VM_F_EXP_HI else _VM_F_EXP_HI
    k, r = _vm_exp_reduce_f32(xc)
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


# tanh in float32 (coefficients: tools/fit_tanh_f32.py): g(v) for the branch below
# |x| = 1 (degree 7 in v = 2x^2 - 1), q(r) for a short e^r = 1 + r + r^2 q(r) above it.
_VM_F_TH0, _VM_F_TH1 = _VM_F(-0.27788565535972914), _VM_F(0.04611875776536052)
_VM_F_TH2, _VM_F_TH3 = _VM_F(-0.007757358357312256), _VM_F(0.0013068158247598034)
_VM_F_TH4, _VM_F_TH5 = _VM_F(-0.00021995242957829601), _VM_F(3.7047264440028915e-05)
_VM_F_TH6, _VM_F_TH7 = _VM_F(-6.621041533007436e-06), _VM_F(1.1236626519939869e-06)
_VM_F_THQ0, _VM_F_THQ1 = _VM_F(0.5000000013462217), _VM_F(0.16666577003160266)
_VM_F_THQ2, _VM_F_THQ3 = _VM_F(0.041666464976127214), _VM_F(0.008363175565469543)
_VM_F_THQ4 = _VM_F(0.0013933643522443435)


@_vm_njit(**_VM_JIT)
def vm_tanh_f32(x):
    """tanh, native float32: x + x u g(u) (u = x^2) below |x| = 1, 1 - 2/(e^2|x| + 1) above.

    Both branches run for every element (a select keeps one), so each is as short as its
    range allows. g's error is scaled down by |u g| < 0.24. The exponential's relative
    error reaches the result scaled by 1/sinh(2|x|) <= 0.28, so a degree-6 e^r does, and
    2|x| is clamped at 20 (tanh rounds to 1 from |x| = 9.01 on): 2^k (k <= 29) never
    overflows and is added to the exponent bits directly.
    """
    x = _VM_F(x)   # a float64 operand (e.g. a mixed-type expression) is rounded once
    ax = abs(x)
    u = x * x
    v = u + u - _VM_F_ONE                      # [0, 1] -> [-1, 1]
    p = _VM_F_TH7 * v + _VM_F_TH6
    p = p * v + _VM_F_TH5
    p = p * v + _VM_F_TH4
    p = p * v + _VM_F_TH3
    p = p * v + _VM_F_TH2
    p = p * v + _VM_F_TH1
    p = p * v + _VM_F_TH0
    small = x + x * (u * p)
    a2 = ax + ax
    a2 = a2 if a2 < _VM_F(20.0) else _VM_F(20.0)   # NaN -> 20 too (y is small's NaN)
    k, r = _vm_exp_reduce_f32(a2)
    q = _VM_F_THQ4 * r + _VM_F_THQ3
    q = q * r + _VM_F_THQ2
    q = q * r + _VM_F_THQ1
    q = q * r + _VM_F_THQ0
    e = _i2f32(_f2i32(_VM_F_ONE + (r + r * (r * q))) + (k << 23))   # e^r 2^k
    big = _VM_F_ONE - _VM_F(2.0) / (e + _VM_F_ONE)
    big = -big if x < _VM_F(0.0) else big
    y = big if ax >= _VM_F_ONE else small      # NaN: small, which is NaN
    return x if ax < _VM_F(0.000244140625) else y   # 2^-12: tanh(x) = x; keeps -0.0


@_vm_njit(**_VM_JIT)
def vm_sinh_f32(x):
    """sinh, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_sinh_f64(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_cosh_f32(x):
    """cosh, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_cosh_f64(_vm_np.float64(x)))


# ---- erf, erfc for float32 (coefficients: tools/fit_erf_f32.py) ----
# erf is native float32: x + x S(x^2) up to |x| = 1, and 1 - erfc(|x|) beyond, where erfc
# needs a few of its own ulps only (`_vm_erf_tail_f32`). erfc needs its full relative
# accuracy down to the subnormal tail, and is evaluated in float64 to 2^-32 and rounded
# once (`_vm_erfc_for_f32`): cheaper than carrying every rounding as a float32 pair.
_VM_F_LN2_HI15 = _VM_F(0.693145751953125)  # 15 bits: k*hi exact for |k| < 256
_VM_F_LN2_LO15 = _VM_F(1.4286068203094173e-06)   # ln2 - _VM_F_LN2_HI15


@_vm_njit(**_VM_JIT)
def _vm_split_f32(a):
    """a = hi + lo exactly, hi the top 12 significant bits (so products of halves are exact)."""
    hi = _i2f32(_f2i32(a) & -4096)
    return hi, a - hi


@_vm_njit(**_VM_JIT)
def _vm_two_prod_f32(a, b):
    """(p, e) with p = fl(a*b) and p + e = a*b exactly (an FMA, as `_vm_two_prod`)."""
    p = a * b
    return p, _vm_fma(a, b, -p)


@_vm_njit(**_VM_JIT)
def _vm_erf_s_f32(z):
    """erf(x)/x - 1 for z = x^2 in [0, 1]: degree 6 in z (absolute error 2^-29.6)."""
    p = _VM_F(7.920368079794571e-05)
    p = p * z + _VM_F(-0.0008030761382542551)
    p = p * z + _VM_F(0.005190733820199966)
    p = p * z + _VM_F(-0.02685512602329254)
    p = p * z + _VM_F(0.11283618211746216)
    p = p * z + _VM_F(-0.3761262893676758)
    return p * z + _VM_F(0.12837916612625122)


@_vm_njit(**_VM_JIT)
def _vm_erf_tail_f32(ax):
    """erfc(x) for x = ax in [1, 4], within ~2 of its own ulps: all `vm_erf_f32` needs.

    1 - erfc(x) is erf: erfc < 0.19 erf there and erfc's ulp is at least 4 times finer,
    so the float64 evaluation of `_vm_erfc_for_f32` is not needed; G(1/x)
    is a shorter polynomial on this range (degree 9 in v = t - 0.625), and
    e^-x^2 = 2^k e^r is normal, so 2^k is one exact factor.
    """
    t = _VM_F_ONE / ax
    v = t - _VM_F(0.625)
    # two Horner chains (c1.. and c5..): half the latency of one; c0 is added
    # last, by one FMA, so the result is rounded much as Horner's own
    p_high = _VM_F(-0.04670962691307068)
    p_high = p_high * v + _VM_F(0.05335478484630585)
    p_high = p_high * v + _VM_F(-0.024919932708144188)
    p_high = p_high * v + _VM_F(-0.010768191888928413)
    p_high = p_high * v + _VM_F(0.04964004456996918)
    p_low = _VM_F(-0.07802753895521164)
    p_low = p_low * v + _VM_F(0.0721011683344841)
    p_low = p_low * v + _VM_F(-0.001294068992137909)
    p_low = p_low * v + _VM_F(-0.17158564925193787)
    v2 = v * v
    v4 = v2 * v2
    p = (p_high * v4 + p_low) * v + _VM_F(0.489524781703949)
    m = t * p
    h, l = _vm_split_f32(ax)
    hh = h * h
    two_hl = (h + h) * l
    s = (hh + two_hl) * -_VM_F_LOG2E + _VM_F_SHIFTER
    kf = s - _VM_F_SHIFTER
    k = _f2i32(s) - _VM_F_SHIFTER_BITS
    # x^2 = h^2 + 2hl + l^2 with the big part h^2 - k ln2_hi exact: r within 2^-26
    r = (-hh - kf * _VM_F_LN2_HI15) - ((two_hl + l * l) + kf * _VM_F_LN2_LO15)
    return (m + m * _vm_expm1_poly_f32(r)) * _i2f32((k + 127) << 23)


@_vm_njit(**_VM_JIT)
def vm_erf_f32(x):
    """erf, native float32: x + x S(x^2) up to |x| = 1, 1 - erfc(|x|) beyond (odd)."""
    x = _VM_F(x)   # a float64 operand (e.g. a mixed-type expression) is rounded once
    ax = abs(x)
    small = x + x * _vm_erf_s_f32(x * x)
    axc = ax if ax < _VM_F(4.0) else _VM_F(4.0)           # erf(4) rounds to 1; NaN -> 4
    axc = axc if axc > _VM_F_ONE else _VM_F_ONE
    big = _VM_F_ONE - _vm_erf_tail_f32(axc)
    big = -big if x < _VM_F_ZERO else big
    y = small if ax <= _VM_F_ONE else big
    return x + x if x != x else y


_VM_ERFC_CUT = 10.125   # erfc is below half the smallest float32 subnormal beyond


@_vm_njit(**_VM_JIT)
def _vm_erfc_for_f32(x):
    """erfc(x) in float64 to about 2^-32 relative: a float32 result rounds it once.

    erfc(a) = e^(-a^2) P(a)/Q(a) for a = |x| up to 10.125 (beyond, erfc is below half the
    smallest float32 subnormal): a^2 rounds by 2^-53 (so e^(-a^2) by at most 2^-46),
    e^(-a^2) takes a Taylor polynomial to r^8 (truncation 2^-32, where float64's own
    `vm_exp_f64` goes to r^13), the rational function 2^-33.5; 2 minus it for x < 0.
    Nothing cancels, so no range needs a second formula. Half the lanes of native float32,
    but about 40 instead of 120 operations a value: GELU's forward loop 1.6x faster than
    the float32 double-float scheme this replaced, and within 0.51 ulp instead of 1.
    """
    a = abs(x)
    a = a if a < _VM_ERFC_CUT else _VM_ERFC_CUT  # NaN -> the cut: the bit tricks stay finite
    # erfcx(a) = e^(a^2) erfc(a) = P(a)/Q(a), degrees 5 and 6, positive coefficients
    # (nothing cancels for a >= 0), relative error 2^-33.5 (tools/fit_erf_f32.py)
    p = 0.009993838191871352
    p = p * a + 0.0926709358517332
    p = p * a + 0.40189284593986996
    p = p * a + 0.9998010870501189
    p = p * a + 1.4335541248884869
    p = p * a + 0.9999999999218881
    q = 0.017713640276582645
    q = q * a + 0.16425386047018262
    q = q * a + 0.7212163568190194
    q = q * a + 1.8539409070477881
    q = q * a + 2.890633465153206
    q = q * a + 2.5619332811972106
    q = q * a + 1.0
    k, r = _vm_exp_reduce(-(a * a))            # k in [-148, 0]: 2^k is one normal factor
    e = 1.0 / 40320.0
    e = e * r + 1.0 / 5040.0
    e = e * r + 1.0 / 720.0
    e = e * r + 1.0 / 120.0
    e = e * r + 1.0 / 24.0
    e = e * r + 1.0 / 6.0
    e = e * r + 0.5
    e = e * r + 1.0
    e = e * r + 1.0
    y = (e * _vm_pow2(k)) * (p / q)
    y = 2.0 - y if x < 0.0 else y
    return x + x if x != x else y


@_vm_njit(**_VM_JIT)
def vm_erfc_f32(x):
    """erfc, float32: `_vm_erfc_for_f32`, rounded once."""
    x = _VM_F(x)   # a float64 operand (e.g. a mixed-type expression) is rounded once
    return _VM_F(_vm_erfc_for_f32(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_erfc_scaled_f32(u, c_hi, c_lo):
    """erfc(c u), float32, for a constant c = c_hi + c_lo (float64 double-double).

    c u in float64 rounds by 2^-53 (erfc's condition number 2x^2 < 205 makes that 2^-45);
    the float32 product would cost up to x^2 ulp (GELU's tail at z = -13: ~90 ulp).
    """
    u = _vm_np.float64(_VM_F(u))
    return _vm_erfc_dd_f32(u * c_hi, u * c_lo)


@_vm_njit(**_VM_JIT)
def _vm_erfc_dd_f32(x, dx):
    """erfc(x + dx), float32, for an argument carried as a pair (float32 or float64 parts).

    Past the cut erfc is 0 or 2 whatever dx is, and dx may be NaN there (inf - inf).
    """
    x = _vm_np.float64(x)
    x = x if abs(x) > _VM_ERFC_CUT else x + _vm_np.float64(dx)
    return _VM_F(_vm_erfc_for_f32(x))


@_vm_njit(**_VM_JIT)
def vm_erfc_product_f32(u, du, v, dv, c_hi, c_lo):
    """erfc(c (u + du)(v + dv)), native float32, the argument as a float32 pair."""
    x, dx = _vm_product_dd_f32(u, du, v, dv, c_hi, c_lo)
    return _vm_erfc_dd_f32(x, dx)


@_vm_njit(**_VM_JIT)
def vm_hypot_f32(x, y):
    """sqrt(x^2 + y^2), float32: in float64, where the squares of float32 numbers are
    exact and cannot overflow, rounded once (inf if either is infinite, as C99)."""
    xd = _vm_np.float64(x)
    yd = _vm_np.float64(y)
    h = _vm_np.float32(_vm_np.sqrt(xd * xd + yd * yd))
    return _VM_F_INF if (abs(xd) == _vm_np.inf) | (abs(yd) == _vm_np.inf) else h


@_vm_njit(**_VM_JIT)
def vm_atan_f32(x):
    """atan, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_atan_f64(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_sin_f32(x):
    """sin, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_sin_f64(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_pow_f32(x, y):
    """x^y, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_pow_f64(_vm_np.float64(x), _vm_np.float64(y)))


@_vm_njit(**_VM_JIT)
def vm_pow_exact_f32(x, y_hi, y_lo):
    """x^y, float32, for an exponent given as a float64 double-double (a float32 2/3 would
    cost |log x| 2^-25 relative, ~30 float32 ulp at x = 1e38)."""
    return _vm_np.float32(_vm_pow_dd(_vm_np.float64(x), y_hi, y_lo))


@_vm_njit(**_VM_JIT)
def vm_cos_f32(x):
    """cos, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_cos_f64(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_tan_f32(x):
    """tan, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_tan_f64(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_asinh_f32(x):
    """asinh, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_asinh_f64(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_acosh_f32(x):
    """acosh, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_acosh_f64(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_atanh_f32(x):
    """atanh, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_atanh_f64(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_asin_f32(x):
    """asin, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_asin_f64(_vm_np.float64(x)))


@_vm_njit(**_VM_JIT)
def vm_acos_f32(x):
    """acos, float32 (float64 evaluation, one rounding)."""
    return _vm_np.float32(vm_acos_f64(_vm_np.float64(x)))
# ---- end kernel source ----
