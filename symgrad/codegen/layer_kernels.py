"""Shape-generic loops of the image layer kinds (convolution, pooling, flatten).

Everything between the markers is the source of one shared module (compiled once
per dtype and cached on disk, whatever the model's sizes: every size is a run-time
argument) and is written verbatim into exported trainers. Like
`symgrad.codegen.vecmath_kernels`, the library reads this file as text: importing
symgrad does not compile it.

Layout: inside the kernels an image batch is a 2-D "map" of shape (m*H*W, C), i.e.
NHWC, so that a convolution is one GEMM on its im2col matrix and its output needs no
transpose; the channel loop is the innermost, contiguous, vectorisable one. X arrives
as NCHW rows (PyTorch's layout) and is converted once per batch (no copy at all when
C = 1); Flatten writes the (C, H, W) order PyTorch's ``nn.Flatten`` gives, so weights
trained here load into a PyTorch model of the same architecture unchanged.

The convolution's GEMMs (Z = cols @ Wg, dWg = cols.T @ dZ, dcols = dZ @ Wg.T), the bias
add and the bias gradient's column sums are called by the generated driver through the
shared GEMM helpers; these loops only move data: im2col / col2im, the weight layout,
pooling and its backward, flatten. When kw*C is small (`lk_rk` false: a first layer
on one-channel images) the im2col matrix is stored transposed, (K, R) in the same
workspace, so that its copies run along whole output rows; the driver then calls the
GEMMs on `lk_kr`'s view (Z = colsT.T @ Wg, dWg = colsT @ dZ, dcolsT = Wg @ dZ.T).

Speed notes (measured on LeNet, batches of 64): flat offsets of the copy loops are
unsigned (`_lk_u`), because a signed index gets a wraparound test per element that
keeps LLVM from vectorising; loops over a few channels go in constant-length blocks
(`_LK_BLOCKS`), because a loop of run-time length 8 is vectorised for more lanes than
it has and runs as scalar remainder code.
"""

# ---- begin kernel source (emitted verbatim into generated kernel modules) ----
import numpy as _lk_np
from numba import njit as _lk_njit

_LK_JIT = dict(cache=True, nogil=True, error_model="numpy")
# Flat offsets of the copy loops are cast to this: an unsigned index needs no
# negative-index wraparound test, so the loops vectorise (see `lk_im2col`).
_lk_u = _lk_np.uint64
# Channel blocks of the max-pooling loop, widest first: a loop of constant length becomes
# vector code (see `lk_maxpool`); the 1 takes what is left.
_LK_BLOCKS = (8, 4, 1)
# Helpers Numba inlines into their callers, so that a block's length is a constant there.
_LK_INLINE = dict(_LK_JIT, inline="always")


@_lk_njit(**_LK_JIT)
def lk_zero_rows(arr, rows):
    """arr[:rows] = 0: the backward scatters add into a cleared input gradient.

    One flat loop: over rows, then a run-time count of a few channels, it ran as scalar
    remainder code (max-pool backward, float32, batches of 64, with the clearing: 4
    channels of 6x6 18.6 -> 16.5 us, LeNet pool1 346 -> 291 us; one noisy run each).
    """
    flat = arr.reshape(-1)
    for t in range(rows * arr.shape[1]):
        flat[_lk_u(t)] = 0.0


@_lk_njit(**_LK_JIT)
def lk_rows_to_map(src, m, hw, c_dim, dst):
    """dst[n*hw + s, c] = src[n, c*hw + s]: NCHW rows (m, C*H*W) to a map (m*H*W, C)."""
    for n in range(m):
        for c in range(c_dim):
            for s in range(hw):
                dst[n * hw + s, c] = src[n, c * hw + s]


@_lk_njit(**_LK_JIT)
def lk_map_to_rows(src, m, hw, c_dim, dst):
    """dst[n, c*hw + s] = src[n*hw + s, c]: a map back to NCHW-ordered rows (Flatten)."""
    for n in range(m):
        for s in range(hw):
            for c in range(c_dim):
                dst[n, c * hw + s] = src[n * hw + s, c]


@_lk_njit(**_LK_JIT)
def lk_window_columns(j, sw, pw, kw, w_in):
    """(w0, q_lo, q_hi): output column j's window starts at image column w0 = j*sw - pw;
    its offsets q in [q_lo, q_hi) fall inside the image, the rest in the zero padding."""
    w0 = j * sw - pw
    q_lo = min(max(0, -w0), kw)
    q_hi = max(min(kw, w_in - w0), q_lo)
    return w0, q_lo, q_hi


@_lk_njit(**_LK_JIT)
def lk_im2col_rows(src, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    """cols[(n*oh + i)*ow + j, (p*kw + q)*C + c] = x[n, c, i*sh + p - ph, j*sw + q - pw].

    ``src`` is the (m*H*W, C) map; positions in the padding read 0. In the map, window
    row p (q = 0..kw-1, every channel) is kw*C consecutive values, and so is its place
    in ``cols``: each is copied as one run. Run offsets are unsigned (`_lk_u`): a signed
    index gets a negative-index wraparound test per element, which keeps LLVM from
    vectorising the copy (LeNet conv2: 0.85 -> 0.16 ms per batch of 64, float32).
    """
    flat = src.reshape(-1)
    cf = cols.reshape(-1)
    seg = kw * c_dim
    k_dim = kh * seg
    for n in range(m):
        for i in range(oh):
            for p in range(kh):
                h = i * sh + p - ph
                inside = h >= 0 and h < h_in
                for j in range(ow):
                    dst = ((n * oh + i) * ow + j) * k_dim + p * seg
                    w0, q_lo, q_hi = lk_window_columns(j, sw, pw, kw, w_in)
                    lo, hi = (q_lo * c_dim, q_hi * c_dim) if inside else (0, 0)
                    for t in range(lo):
                        cf[_lk_u(dst + t)] = 0.0
                    d0 = _lk_u(dst + lo)
                    s0 = _lk_u(((n * h_in + h) * w_in + w0) * c_dim + lo) if inside else d0
                    for t in range(hi - lo):
                        cf[d0 + _lk_u(t)] = flat[s0 + _lk_u(t)]
                    for t in range(hi, seg):
                        cf[_lk_u(dst + t)] = 0.0


@_lk_njit(**_LK_JIT)
def lk_col2im_rows(dcols, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, dsrc):
    """dsrc = the scatter-add of dcols through the im2col windows (the transpose of im2col).

    The same runs as `lk_im2col_rows`, added back: kw*C consecutive values per window row.
    """
    lk_zero_rows(dsrc, m * h_in * w_in)
    flat = dsrc.reshape(-1)
    cf = dcols.reshape(-1)
    seg = kw * c_dim
    k_dim = kh * seg
    for n in range(m):
        for i in range(oh):
            for p in range(kh):
                h = i * sh + p - ph
                if h < 0 or h >= h_in:
                    continue
                for j in range(ow):
                    w0, q_lo, q_hi = lk_window_columns(j, sw, pw, kw, w_in)
                    lo = q_lo * c_dim
                    d0 = _lk_u(((n * h_in + h) * w_in + w0) * c_dim + lo)
                    s0 = _lk_u(((n * oh + i) * ow + j) * k_dim + p * seg + lo)
                    for t in range(q_hi * c_dim - lo):
                        flat[d0 + _lk_u(t)] += cf[s0 + _lk_u(t)]


@_lk_njit(**_LK_JIT)
def lk_rk(c_dim, kw):
    """True when a convolution's im2col matrix is (R, K); False: kept transposed, (K, R).

    The (R, K) runs are kw*C values long: for a first layer with C = 1 they are 5,
    and the per-run work dominates (LeNet conv1: 1.35 ms per batch of 64 against 0.12
    for the transposed copy, whose runs are a whole output row). From kw*C = 16 on
    the (R, K) layout is the faster one (LeNet conv2, kw*C = 40: 0.16 against 0.84).
    """
    return c_dim * kw >= 16


@_lk_njit(**_LK_JIT)
def lk_kr(cols):
    """The (K, R) view of an (R, K) im2col workspace: what the transposed layout fills."""
    return cols.reshape((cols.shape[1], cols.shape[0]))


@_lk_njit(**_LK_JIT)
def lk_window_rows(q, sw, pw, w_in, ow):
    """(j_lo, j_hi): the output columns j whose window offset q falls inside the image,
    0 <= j*sw + q - pw < w_in (the others read the zero padding)."""
    a = pw - q
    b = w_in + pw - q
    j_lo = min(0 if a <= 0 else (a + sw - 1) // sw, ow)
    j_hi = max(min(0 if b <= 0 else (b + sw - 1) // sw, ow), j_lo)
    return j_lo, j_hi


@_lk_njit(**_LK_JIT)
def lk_im2col_t(src, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    """`lk_im2col_rows` transposed: row (p*kw + q)*C + c of `lk_kr`(cols) is column k of cols.

    Each (k, n, i) is one output row of ow values, read from the map with step sw*C
    (contiguous when C = 1 and sw = 1): long runs however small C and kw are.
    """
    flat = src.reshape(-1)
    ct = cols.reshape(-1)
    r_dim = m * oh * ow
    step = sw * c_dim
    for p in range(kh):
        for q in range(kw):
            j_lo, j_hi = lk_window_rows(q, sw, pw, w_in, ow)
            i_lo, i_hi = lk_window_rows(p, sh, ph, h_in, oh)   # rows inside the image
            for c in range(c_dim):
                k = (p * kw + q) * c_dim + c
                if step == 1:
                    # a contiguous copy per row (C = 1, stride 1): the rows in the padding
                    # (i < i_lo, i >= i_hi) as zero runs, no selects per row (float32,
                    # batches of 64: 8x8 k3 13 -> 8 us, 28x28 k5 146 -> 72 us, with padding
                    # 2 256 -> 163 us, 32x32 k3 p1 109 -> 73 us)
                    for n in range(m):
                        d_n = k * r_dim + n * oh * ow
                        for t in range(i_lo * ow):
                            ct[_lk_u(d_n + t)] = 0.0
                        for i in range(i_lo, i_hi):
                            d_i = d_n + i * ow
                            for j in range(j_lo):
                                ct[_lk_u(d_i + j)] = 0.0
                            s_i = _lk_u((n * h_in + i * sh + p - ph) * w_in + j_lo + q - pw)
                            d0 = _lk_u(d_i + j_lo)
                            for t in range(j_hi - j_lo):
                                ct[d0 + _lk_u(t)] = flat[s_i + _lk_u(t)]
                            for j in range(j_hi, ow):
                                ct[_lk_u(d_i + j)] = 0.0
                        for t in range(i_hi * ow, oh * ow):
                            ct[_lk_u(d_n + t)] = 0.0
                    continue
                for n in range(m):
                    for i in range(oh):
                        h = i * sh + p - ph
                        dst = k * r_dim + (n * oh + i) * ow
                        lo, hi = (j_lo, j_hi) if h >= 0 and h < h_in else (0, 0)
                        for j in range(lo):
                            ct[_lk_u(dst + j)] = 0.0
                        d0 = _lk_u(dst + lo)
                        s0 = _lk_u(((n * h_in + h) * w_in + lo * sw + q - pw) * c_dim + c
                                   if hi > lo else 0)
                        for t in range(hi - lo):
                            ct[d0 + _lk_u(t)] = flat[s0 + _lk_u(t * step)]
                        for j in range(hi, ow):
                            ct[_lk_u(dst + j)] = 0.0


@_lk_njit(**_LK_JIT)
def lk_col2im_t(dcols, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, dsrc):
    """`lk_col2im_rows` of a transposed im2col matrix (`lk_im2col_t`'s layout)."""
    lk_zero_rows(dsrc, m * h_in * w_in)
    flat = dsrc.reshape(-1)
    ct = dcols.reshape(-1)
    r_dim = m * oh * ow
    step = sw * c_dim
    for p in range(kh):
        for q in range(kw):
            j_lo, j_hi = lk_window_rows(q, sw, pw, w_in, ow)
            for c in range(c_dim):
                k = (p * kw + q) * c_dim + c
                for n in range(m):
                    for i in range(oh):
                        h = i * sh + p - ph
                        if h < 0 or h >= h_in or j_hi == j_lo:
                            continue
                        s0 = _lk_u(k * r_dim + (n * oh + i) * ow + j_lo)
                        d0 = _lk_u(((n * h_in + h) * w_in + j_lo * sw + q - pw) * c_dim + c)
                        if step == 1:
                            for t in range(j_hi - j_lo):
                                flat[d0 + _lk_u(t)] += ct[s0 + _lk_u(t)]
                        else:
                            for t in range(j_hi - j_lo):
                                flat[d0 + _lk_u(t * step)] += ct[s0 + _lk_u(t)]


@_lk_njit(**_LK_JIT)
def lk_im2col(src, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    """The im2col matrix of ``src`` in the layout `lk_rk` picks for C and kw."""
    if lk_rk(c_dim, kw):
        lk_im2col_rows(src, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, cols)
    else:
        lk_im2col_t(src, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, cols)


@_lk_njit(**_LK_JIT)
def lk_col2im(dcols, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, dsrc):
    """The col2im of ``dcols``, stored in the layout `lk_im2col` filled."""
    if lk_rk(c_dim, kw):
        lk_col2im_rows(dcols, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, dsrc)
    else:
        lk_col2im_t(dcols, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, dsrc)


@_lk_njit(**_LK_JIT)
def lk_conv_weights(w4, wg):
    """wg[(p*kw + q)*C + c, o] = W[o, c, p, q]: PyTorch's kernel layout to the GEMM's."""
    o_dim, c_dim, kh, kw = w4.shape
    for p in range(kh):
        for q in range(kw):
            for c in range(c_dim):
                for o in range(o_dim):
                    wg[(p * kw + q) * c_dim + c, o] = w4[o, c, p, q]


@_lk_njit(**_LK_JIT)
def lk_conv_weight_grad(gwg, gw4):
    """gW[o, c, p, q] = gwg[(p*kw + q)*C + c, o]: the GEMM layout back to PyTorch's."""
    o_dim, c_dim, kh, kw = gw4.shape
    for o in range(o_dim):
        for c in range(c_dim):
            for p in range(kh):
                for q in range(kw):
                    gw4[o, c, p, q] = gwg[(p * kw + q) * c_dim + c, o]


@_lk_njit(**_LK_INLINE)
def _lk_window_max(sf, df, d0, s0, kh, kw, w_in, c_dim, lanes):
    """df[d0 + c] = max over the window of sf[s0 + (p*w_in + q)*C + c], for c < lanes."""
    for c in range(lanes):
        df[d0 + _lk_u(c)] = sf[s0 + _lk_u(c)]
    for p in range(kh):
        for q in range(kw):
            s1 = s0 + _lk_u((p * w_in + q) * c_dim)
            for c in range(lanes):
                v = sf[s1 + _lk_u(c)]
                b = df[d0 + _lk_u(c)]
                df[d0 + _lk_u(c)] = v if v > b else b


@_lk_njit(**_LK_JIT)
def lk_maxpool(src, m, h_in, w_in, c_dim, kh, kw, sh, sw, oh, ow, dst):
    """dst[(n*oh + i)*ow + j, c] = max over the window of x[n, c, i*sh + p, j*sw + q].

    Channels go in blocks of 8, then 4, then 1 (`_LK_BLOCKS`); `_lk_window_max` is
    inlined into each block's call, so the block length is a constant there and LLVM
    turns the block into vector operations. A loop over all C would be vectorised for
    more lanes than a small C has and run as scalar remainder code (batches of 64,
    float32: LeNet pool1, 8 channels, 0.23 -> 0.13 ms; 6 channels of 24x24, 0.70 ->
    0.20 ms; 4 channels of 6x6, 34 -> 8 us).
    """
    sf = src.reshape(-1)
    df = dst.reshape(-1)
    for n in range(m):
        for i in range(oh):
            for j in range(ow):
                d0 = ((n * oh + i) * ow + j) * c_dim
                s0 = ((n * h_in + i * sh) * w_in + j * sw) * c_dim
                c0 = 0
                for lanes in _LK_BLOCKS:
                    while c_dim - c0 >= lanes:
                        _lk_window_max(sf, df, _lk_u(d0 + c0), _lk_u(s0 + c0), kh, kw, w_in,
                                       c_dim, lanes)
                        c0 += lanes


@_lk_njit(**_LK_JIT)
def lk_maxpool_back(src, dy, m, h_in, w_in, c_dim, kh, kw, sh, sw, oh, ow, dsrc):
    """dsrc: each window's dY added at its first maximum (row-major order in the window).

    The window is scanned for all channels at once (one contiguous map row per
    position) and the arg-max is kept with selects, not a branch per element, so the
    scan vectorises over the channels (LeNet pool1 backward: 0.58 -> 0.37 ms).
    """
    lk_zero_rows(dsrc, m * h_in * w_in)
    best = _lk_np.empty(c_dim, dtype=src.dtype)
    at = _lk_np.empty(c_dim, dtype=_lk_np.int64)
    for n in range(m):
        for i in range(oh):
            for j in range(ow):
                r = (n * oh + i) * ow + j
                first = (n * h_in + i * sh) * w_in + j * sw
                for c in range(c_dim):
                    best[c] = src[first, c]
                    at[c] = first
                for p in range(kh):
                    for q in range(kw):
                        row = first + p * w_in + q
                        for c in range(c_dim):
                            v = src[row, c]
                            take = v > best[c]   # strict: ties keep the first maximum
                            best[c] = v if take else best[c]
                            at[c] = row if take else at[c]
                for c in range(c_dim):
                    dsrc[at[c], c] += dy[r, c]


@_lk_njit(**_LK_JIT)
def lk_avgpool(src, m, h_in, w_in, c_dim, kh, kw, sh, sw, oh, ow, dst):
    """dst[(n*oh + i)*ow + j, c] = mean over the window of x[n, c, i*sh + p, j*sw + q]."""
    scale = 1.0 / (kh * kw)
    for n in range(m):
        for i in range(oh):
            for j in range(ow):
                r = (n * oh + i) * ow + j
                for c in range(c_dim):
                    dst[r, c] = 0.0
                for p in range(kh):
                    for q in range(kw):
                        row = (n * h_in + i * sh + p) * w_in + j * sw + q
                        for c in range(c_dim):
                            dst[r, c] += src[row, c]
                for c in range(c_dim):
                    dst[r, c] *= scale


@_lk_njit(**_LK_JIT)
def lk_avgpool_back(dy, m, h_in, w_in, c_dim, kh, kw, sh, sw, oh, ow, dsrc):
    """dsrc: each window's dY / (kh*kw) added to every element of the window."""
    scale = 1.0 / (kh * kw)
    lk_zero_rows(dsrc, m * h_in * w_in)
    for n in range(m):
        for i in range(oh):
            for j in range(ow):
                r = (n * oh + i) * ow + j
                for p in range(kh):
                    for q in range(kw):
                        row = (n * h_in + i * sh + p) * w_in + j * sw + q
                        for c in range(c_dim):
                            dsrc[row, c] += dy[r, c] * scale
# ---- end kernel source ----
