"""Shape-generic loops of the image layer kinds (convolution, pooling, flatten).

Everything between the markers is the source of one shared module (compiled once
per dtype and cached on disk, whatever the model's sizes: every size is a run-time
argument) and is written verbatim into exported trainers. Like
`symgrad.codegen.vecmath_kernels`, the library reads this file as text: importing
symgrad does not compile it.

Layout: inside the kernels an image batch is channel-major with the batch innermost
(CHWN): element (n, c, h, w) of an m-sample batch sits at flat offset
((c*H + h)*W + w)*m + n. Every loop here then runs over m contiguous samples (over
whole output rows of them at stride 1), however few channels a layer has and however
small its image: an im2col run, a pooling window's compare, a col2im add are vector
operations over the batch. The NHWC layout used before ran its loops over the channels,
and loops of 4 or 8 of them, of run-time length, ran as scalar remainder code (tiny
CNN, 4 channels of 6x6, float32, batches of 64: im2col 10.5 -> 1.1 us, max pooling
7.5 -> 1.5 us, its backward 17.3 -> 3.6 us; LeNet's pool1 backward 307 -> 110 us).

X arrives as NCHW rows, (m, C*H*W) (PyTorch's layout): its transpose, (C*H*W, m), is
the map, so the input conversion is one transpose, and so are Flatten, which writes the
(C, H, W) order PyTorch's ``nn.Flatten`` gives, and its backward. Weights trained here
load into a PyTorch model of the same architecture unchanged.

A map's workspace is declared by its size, (m*H*W, C) (the driver's buffers grow by
rows per sample); its content is the (C, H*W*m) matrix `lk_cm` views it as. A
convolution's im2col matrix is (K, R): K = (c, p, q) in PyTorch's kernel order, R =
(i, j, n). The convolution's GEMMs, called by the generated driver through the shared
GEMM helpers on `lk_cm` views, need no weight layout: Z = W @ cols with the kernel
(O, C, kh, kw) seen as (O, K), dW = dZ @ cols.T straight into the kernel's gradient,
dcols = W.T @ dZ. These loops only move data: im2col / col2im, pooling and its
backward, the bias and its gradient, flatten.

Speed note: flat offsets are unsigned (`_lk_u`), because a signed index gets a
wraparound test per element that keeps LLVM from vectorising a copy loop.
"""

# ---- begin kernel source (emitted verbatim into generated kernel modules) ----
import numpy as _lk_np
from numba import njit as _lk_njit

_LK_JIT = dict(cache=True, nogil=True, error_model="numpy")
# Flat offsets of the loops are cast to this: an unsigned index needs no negative-index
# wraparound test, so the loops vectorise.
_lk_u = _lk_np.uint64
# Partial sums of `lk_row_sums` (at most): 16 float32 or 2x8 float64 lanes.
_LK_LANES = 16


@_lk_njit(**_LK_JIT)
def lk_cm(arr, rows):
    """The contiguous ``arr`` as a (rows, size // rows) matrix (a view): a map as (C, H*W*m),
    an im2col workspace as (K, R), a 4-D kernel (O, C, kh, kw) as (O, C*kh*kw)."""
    return arr.reshape((rows, arr.size // rows))


@_lk_njit(**_LK_JIT)
def lk_zero(arr):
    """arr[...] = 0 (one flat loop): the backward scatters add into a cleared gradient."""
    flat = arr.reshape(-1)
    for t in range(flat.size):
        flat[_lk_u(t)] = 0.0


@_lk_njit(**_LK_JIT)
def lk_rows_to_map(src, dst):
    """dst = src.T: NCHW rows (m, C*H*W) to the channel-major map, flat (C*H*W, m)."""
    m, k_dim = src.shape
    df = dst.reshape(-1)
    for t in range(k_dim):
        d0 = _lk_u(t * m)
        for n in range(m):
            df[d0 + _lk_u(n)] = src[n, t]


@_lk_njit(**_LK_JIT)
def lk_map_to_rows(src, dst):
    """dst = src.T: a channel-major map, flat (C*H*W, m), to rows (m, C*H*W) (Flatten)."""
    m, k_dim = dst.shape
    sf = src.reshape(-1)
    for n in range(m):
        for t in range(k_dim):
            dst[n, t] = sf[_lk_u(t * m + n)]


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
def lk_im2col(src, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    """cols[(c*kh + p)*kw + q, (i*ow + j)*m + n] = x[n, c, i*sh + p - ph, j*sw + q - pw].

    ``src`` is the channel-major map, ``cols`` the (K, R) matrix; positions in the
    padding read 0. For one (c, p, q) and output row i, the columns j inside the image
    are one run of (j_hi - j_lo)*m values at stride 1 (runs of m at stride > 1).
    """
    sf = src.reshape(-1)
    cf = cols.reshape(-1)
    row = ow * m                     # one output row of R
    for c in range(c_dim):
        for p in range(kh):
            i_lo, i_hi = lk_window_rows(p, sh, ph, h_in, oh)
            for q in range(kw):
                j_lo, j_hi = lk_window_rows(q, sw, pw, w_in, ow)
                d_k = ((c * kh + p) * kw + q) * oh * row
                for t in range(i_lo * row):                 # rows in the top padding
                    cf[_lk_u(d_k + t)] = 0.0
                for i in range(i_lo, i_hi):
                    d_i = d_k + i * row
                    for t in range(j_lo * m):
                        cf[_lk_u(d_i + t)] = 0.0
                    d0 = _lk_u(d_i + j_lo * m)
                    s0 = _lk_u(((c * h_in + i * sh + p - ph) * w_in + j_lo * sw + q - pw) * m)
                    if sw == 1:
                        for t in range((j_hi - j_lo) * m):
                            cf[d0 + _lk_u(t)] = sf[s0 + _lk_u(t)]
                    else:
                        for j in range(j_hi - j_lo):
                            d_j = d0 + _lk_u(j * m)
                            s_j = s0 + _lk_u(j * sw * m)
                            for n in range(m):
                                cf[d_j + _lk_u(n)] = sf[s_j + _lk_u(n)]
                    for t in range(j_hi * m, row):
                        cf[_lk_u(d_i + t)] = 0.0
                for t in range(i_hi * row, oh * row):       # rows in the bottom padding
                    cf[_lk_u(d_k + t)] = 0.0


@_lk_njit(**_LK_JIT)
def lk_col2im(dcols, m, h_in, w_in, c_dim, kh, kw, sh, sw, ph, pw, oh, ow, dsrc):
    """dsrc = the scatter-add of dcols through the im2col windows (the transpose of
    `lk_im2col`): the same runs, added back; padding positions are dropped."""
    lk_zero(dsrc)
    xf = dsrc.reshape(-1)
    cf = dcols.reshape(-1)
    row = ow * m
    for c in range(c_dim):
        for p in range(kh):
            i_lo, i_hi = lk_window_rows(p, sh, ph, h_in, oh)
            for q in range(kw):
                j_lo, j_hi = lk_window_rows(q, sw, pw, w_in, ow)
                s_k = ((c * kh + p) * kw + q) * oh * row
                for i in range(i_lo, i_hi):
                    s0 = _lk_u(s_k + i * row + j_lo * m)
                    d0 = _lk_u(((c * h_in + i * sh + p - ph) * w_in + j_lo * sw + q - pw) * m)
                    if sw == 1:
                        for t in range((j_hi - j_lo) * m):
                            xf[d0 + _lk_u(t)] += cf[s0 + _lk_u(t)]
                    else:
                        for j in range(j_hi - j_lo):
                            s_j = s0 + _lk_u(j * m)
                            d_j = d0 + _lk_u(j * sw * m)
                            for n in range(m):
                                xf[d_j + _lk_u(n)] += cf[s_j + _lk_u(n)]


@_lk_njit(**_LK_JIT)
def lk_add_bias(z, b):
    """z[c, :] += b[c] on the channel-major map z (a convolution's bias, no activation)."""
    zc = lk_cm(z, b.size)
    for c in range(b.size):
        bc = b[c]
        for t in range(zc.shape[1]):
            zc[c, t] += bc


@_lk_njit(**_LK_JIT)
def lk_row_sums(d, g, partial):
    """g[c] = sum of row c of the channel-major map d: a convolution's db = sum of dZ
    over n, i, j.

    A sum in one variable is a chain LLVM may not reorder (no fastmath), so it cannot
    vectorise: each row is summed into up to `_LK_LANES` partial sums (``partial``, a
    workspace of that many values: no allocation per batch), then those in order. Their
    count is a run-time value on purpose: a loop of constant length 16 is unrolled, and
    the unrolled adds were not vectorised (acc may alias d).
    """
    dc = lk_cm(d, g.size)
    r_dim = dc.shape[1]
    flat = dc.reshape(-1)
    acc = partial.reshape(-1)
    lanes = max(1, min(_LK_LANES, acc.size, r_dim))
    full = r_dim - r_dim % lanes
    for c in range(g.size):
        base = c * r_dim
        for e in range(lanes):
            acc[e] = 0.0
        for r0 in range(0, full, lanes):
            s0 = _lk_u(base + r0)
            for e in range(lanes):
                acc[e] += flat[s0 + _lk_u(e)]
        total = acc[0]
        for e in range(1, lanes):
            total += acc[e]
        for r in range(full, r_dim):
            total += flat[_lk_u(base + r)]
        g[c] = total


@_lk_njit(**_LK_JIT)
def lk_maxpool(src, m, h_in, w_in, c_dim, kh, kw, sh, sw, oh, ow, dst):
    """dst[n, c, i, j] = max over the window of x[n, c, i*sh + p, j*sw + q] (maps)."""
    sf = src.reshape(-1)
    df = dst.reshape(-1)
    for c in range(c_dim):
        for i in range(oh):
            for j in range(ow):
                d0 = _lk_u(((c * oh + i) * ow + j) * m)
                s0 = ((c * h_in + i * sh) * w_in + j * sw) * m
                for n in range(m):
                    df[d0 + _lk_u(n)] = sf[_lk_u(s0 + n)]
                for p in range(kh):
                    for q in range(kw):
                        s1 = _lk_u(s0 + (p * w_in + q) * m)
                        for n in range(m):
                            v = sf[s1 + _lk_u(n)]
                            b = df[d0 + _lk_u(n)]
                            df[d0 + _lk_u(n)] = v if v > b else b


@_lk_njit(**_LK_JIT)
def lk_maxpool_back(src, y, dy, m, h_in, w_in, c_dim, kh, kw, sh, sw, oh, ow, dsrc, scratch):
    """dsrc: each window's dY added at its first maximum (row-major order in the window).

    ``y`` is the forward's output, the window maxima (before any activation). One pass
    over the window's positions, a select over the m samples at each (no branch, no
    scatter): where x equals the maximum and this sample's dY is still ``left``
    (``scratch``: m values, a workspace, no allocation per batch), the position takes
    it and ``left`` becomes 0, so a tie routes dY to the first maximum, as
    `lk_maxpool`'s strict > keeps the first. The two passes used before (find each
    sample's arg-max, then add where it is) took 2.2-3.5x longer: the tiny CNN's pool,
    in the driver's workspaces, 4.99 -> 1.91 us (32 samples) and 8.59 -> 3.89 us (64),
    float64; 1.5x on LeNet's pool1 (114 -> 76 us, 32 samples, alone).
    """
    lk_zero(dsrc)
    sf = src.reshape(-1)
    yf = y.reshape(-1)
    gf = dy.reshape(-1)
    xf = dsrc.reshape(-1)
    left = scratch.reshape(-1)[:m]
    for c in range(c_dim):
        for i in range(oh):
            for j in range(ow):
                r0 = _lk_u(((c * oh + i) * ow + j) * m)
                s0 = ((c * h_in + i * sh) * w_in + j * sw) * m
                for n in range(m):
                    left[n] = gf[r0 + _lk_u(n)]
                for p in range(kh):
                    for q in range(kw):
                        s1 = _lk_u(s0 + (p * w_in + q) * m)
                        for n in range(m):
                            hit = sf[s1 + _lk_u(n)] == yf[r0 + _lk_u(n)]
                            g = left[n]
                            xf[s1 + _lk_u(n)] += g if hit else 0.0
                            left[n] = 0.0 if hit else g


@_lk_njit(**_LK_JIT)
def lk_copy(src, dst):
    """dst[...] = src (one flat loop): a max pooling's output kept before its activation."""
    sf = src.reshape(-1)
    df = dst.reshape(-1)
    for t in range(sf.size):
        df[_lk_u(t)] = sf[_lk_u(t)]


@_lk_njit(**_LK_JIT)
def lk_avgpool(src, m, h_in, w_in, c_dim, kh, kw, sh, sw, oh, ow, dst):
    """dst[n, c, i, j] = mean over the window of x[n, c, i*sh + p, j*sw + q] (maps)."""
    scale = 1.0 / (kh * kw)
    sf = src.reshape(-1)
    df = dst.reshape(-1)
    for c in range(c_dim):
        for i in range(oh):
            for j in range(ow):
                d0 = _lk_u(((c * oh + i) * ow + j) * m)
                s0 = ((c * h_in + i * sh) * w_in + j * sw) * m
                for n in range(m):
                    df[d0 + _lk_u(n)] = 0.0
                for p in range(kh):
                    for q in range(kw):
                        s1 = _lk_u(s0 + (p * w_in + q) * m)
                        for n in range(m):
                            df[d0 + _lk_u(n)] += sf[s1 + _lk_u(n)]
                for n in range(m):
                    df[d0 + _lk_u(n)] *= scale


@_lk_njit(**_LK_JIT)
def lk_avgpool_back(dy, m, h_in, w_in, c_dim, kh, kw, sh, sw, oh, ow, dsrc):
    """dsrc: each window's dY / (kh*kw) added to every element of the window."""
    scale = 1.0 / (kh * kw)
    lk_zero(dsrc)
    gf = dy.reshape(-1)
    xf = dsrc.reshape(-1)
    for c in range(c_dim):
        for i in range(oh):
            for j in range(ow):
                r0 = _lk_u(((c * oh + i) * ow + j) * m)
                s0 = ((c * h_in + i * sh) * w_in + j * sw) * m
                for p in range(kh):
                    for q in range(kw):
                        s1 = _lk_u(s0 + (p * w_in + q) * m)
                        for n in range(m):
                            xf[s1 + _lk_u(n)] += gf[r0 + _lk_u(n)] * scale
# ---- end kernel source ----
