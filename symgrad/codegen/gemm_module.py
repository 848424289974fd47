"""The GEMM helper module every generated driver imports (one per dtype, shared).

``out = alpha * op(A) @ op(B) + beta * out`` in three layouts, through NumPy's bundled
OpenBLAS (row-major CBLAS, registered by symbol) or SciPy's (Numba's ``numba_xxgemm``);
the bias add, the column sums of a bias gradient, the sum of a split batch's part
gradients, OpenBLAS's thread count for split batches (`_blas_pin`), the flat-buffer
matrix view (`_dense_view`) and the calls-by-symbol linker (`symgrad.codegen.linked_calls`).
`gemm_source` writes the module; an exported trainer carries the same helpers inline
(`_gemm_header` + `_gemm_helpers`).
"""

from __future__ import annotations

from symgrad.codegen import libraries
from symgrad.codegen.source_text import INLINE_JIT as _INLINE_JIT
from symgrad.codegen.source_text import JIT as _JIT
from symgrad.codegen.source_text import Src as _Src

__all__ = ["gemm_source", "numpy_cblas_available", "blas_pin_available", "GEMM_LINKS"]


def _blas_call(layout: str, cblas: bool) -> list[str]:
    """The GEMM call of a helper: ``layout`` is "nn" (A@B), "tn" (A.T@B) or "nt" (A@B.T)."""
    if cblas:
        # Row-major CBLAS: C-ordered arrays are passed as they are.
        ta, tb, dims = {"nn": ("NO", "NO", "m, n, kk"), "tn": ("TR", "NO", "kk, n, m"),
                        "nt": ("NO", "TR", "m, n, kk")}[layout]
        return ["    lda = A.strides[0] // A.itemsize",
                "    ldb = B.strides[0] // B.itemsize",
                "    ldo = out.strides[0] // out.itemsize",
                f"    _gemm(ROW, {ta}, {tb}, {dims}, alpha, A.ctypes, lda, B.ctypes, ldb,"
                " beta, out.ctypes, ldo)"]
    # Column-major Fortran GEMM: a C-ordered matrix is its own transpose there,
    # so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T, swapping operands.
    ta, tb, dims = {"nn": ("NN", "NN", "n, m, kk"), "tn": ("NN", "TT", "n, kk, m"),
                    "nt": ("TT", "NN", "n, m, kk")}[layout]
    return ["    ab[0] = alpha", "    ab[1] = beta",
            "    lda = A.strides[0] // A.itemsize",
            "    ldb = B.strides[0] // B.itemsize",
            "    ldo = out.strides[0] // out.itemsize",
            f"    _xxgemm(BLAS_KIND, {ta}, {tb}, {dims}, ab[0:].ctypes, B.ctypes, ldb,"
            " A.ctypes, lda, ab[1:].ctypes, out.ctypes, ldo)"]


# The Dense loop takes ~35 matrix views of flat buffers per batch. A slice + reshape costs
# ~28 ns each (Numba's reshape calls a C routine to find the strides), which made the tiny
# benchmark's epochs 10-30 % slower; this builds the C-contiguous view directly (the
# buffer's data pointer plus start, its memory owner shared), a few instructions.
_DENSE_VIEW = '''
from numba import types as _dv_types
from numba.core.imputils import impl_ret_borrowed as _dv_borrowed
from numba.extending import intrinsic as _dv_intrinsic
from numba.np.arrayobj import make_array as _dv_make_array
from numba.np.arrayobj import populate_array as _dv_populate


@_dv_intrinsic
def _dense_view(typingctx, buf, start, rows, cols):
    """The rows x cols C-contiguous matrix stored in the 1-D buf from start (a view)."""
    out_type = _dv_types.Array(buf.dtype, 2, "C")

    def codegen(context, builder, sig, args):
        data, first, n_rows, n_cols = args
        src = _dv_make_array(sig.args[0])(context, builder, data)
        out = _dv_make_array(out_type)(context, builder)
        item = context.get_constant(_dv_types.intp, context.get_abi_sizeof(
            context.get_data_type(out_type.dtype)))
        _dv_populate(out, data=builder.gep(src.data, [first]), shape=[n_rows, n_cols],
                     strides=[builder.mul(n_cols, item), item], itemsize=item,
                     meminfo=src.meminfo, parent=src.parent)
        return _dv_borrowed(context, builder, out_type, out._getvalue())

    if not (isinstance(buf, _dv_types.Array) and buf.ndim == 1 and buf.layout == "C"):
        return None
    return out_type(buf, _dv_types.intp, _dv_types.intp, _dv_types.intp), codegen
'''


# The shared GEMM-module kernel drivers call by symbol (codegen/linked_calls.py);
# _mm* and _add_bias are inlined instead.
GEMM_LINKS = {"_column_sums": "a2 A1"}


def _gemm_helpers(s: _Src, cblas: bool = False) -> None:
    """out = alpha * op(A) @ op(B) + beta * out, three layouts, always through BLAS.

    BLAS is reached through NumPy's bundled OpenBLAS (row-major CBLAS) or
    Numba's own ``numba_xxgemm`` entry (the one its ``np.dot`` uses), so alpha
    and beta are available: with beta = 1 a GEMM can add straight into the
    weights (fused SGD step, no gradient buffer). C-ordered arrays are passed
    as they are (CBLAS) or as their own transposes (Fortran GEMM), so no
    operand is ever copied. Even the tiny benchmark's 16 x 2 x 16 products are
    faster in BLAS than in generated loops (tiny epoch 1.02 -> 0.72 ms float64,
    1.03 -> 0.58 ms float32), so there is no small-size loop path.
    """
    for name, layout, doc, n_dim in (
            ("_mm", "nn", "out = alpha * A @ B + beta * out (A: m x k, B: k x n).", "B.shape[1]"),
            ("_mm_tn", "tn", "out = alpha * A.T @ B + beta * out (A: m x k, B: m x n).",
             "B.shape[1]"),
            ("_mm_nt", "nt", "out = alpha * A @ B.T + beta * out (A: m x k, B: n x k).",
             "B.shape[0]")):
        s(f"@njit({_INLINE_JIT})", f"def {name}(A, B, out, alpha, beta, ab):",
          f'    """{doc}"""',
          "    m, kk = A.shape",
          f"    n = {n_dim}",
          *_blas_call(layout, cblas),
          "", "")
    s(*_DENSE_VIEW.strip("\n").splitlines(), "", "")
    s(f"@njit({_INLINE_JIT})", "def _add_bias(Z, b):", '    """Z += b on every row."""',
      "    for i in range(Z.shape[0]):", "        for j in range(Z.shape[1]):",
      "            Z[i, j] += b[j]", "", "",
      f"@njit({_INLINE_JIT})", "def _sum_parts(Gp, w, used):",
      '    """Gp[0] = sum of w[q] * Gp[q] over the parts q < used (a split batch\'s gradient)."""',
      "    size = Gp.shape[1]", "    for i in range(size):", "        Gp[0, i] *= w[0]",
      "    for q in range(1, used):", "        wq = w[q]", "        for i in range(size):",
      "            Gp[0, i] += wq * Gp[q, i]", "", "",
      f"@njit({_JIT})", "def _column_sums(D, g):", '    """g = sum of the rows of D (db)."""',
      "    # 8 rows per step into an 8 x n accumulator, one flat loop of 8*n values with",
      "    # unsigned offsets: it vectorises even for n = 8 columns, a row loop does not",
      "    # (LeNet conv0's bias gradient, 36864 x 8: 0.14 -> 0.02 ms).",
      "    # np.empty as the driver calls it (same signature: one implementation to compile).",
      "    rows, n = D.shape", "    flat = D.reshape(-1)",
      "    acc = np.empty(8 * n, dtype=DTYPE)", "    for e in range(8 * n):",
      "        acc[e] = 0.0", "    full = rows - rows % 8",
      "    for r0 in range(0, full, 8):", "        s0 = np.uint64(r0 * n)",
      "        for e in range(8 * n):", "            acc[e] += flat[s0 + np.uint64(e)]",
      "    for j in range(n):", "        total = acc[j]", "        for k in range(1, 8):",
      "            total += acc[k * n + j]", "        for i in range(full, rows):",
      "            total += D[i, j]", "        g[j] = total", "", "",
      f"@njit({_JIT})", "def _count_nonfinite(flat):",
      '    """How many values of the 1-D array flat are NaN or inf: the argument checks\'',
      "    test of a whole array (the API's all_finite). v - v is 0 for every finite v,",
      "    NaN otherwise, and cannot overflow; a count, not an early exit, keeps the loop",
      '    one vector reduction (the tiny CNN\'s X, 32768 values: 2.0 us, NumPy\'s sum 7.3)."""',
      "    bad = 0", "    for i in range(flat.size):", "        v = flat[i]",
      "        bad += (v - v) != 0", "    return bad", "", "",
      f"@njit({_JIT})", "def _fill_one_hot(labels, out):",
      '    """out[i, labels[i]] = 1 for every row of the zeroed out; False as soon as a',
      "    label lies outside [0, k) (the API's one_hot_labels: one pass where NumPy's",
      '    min, max and fancy index took three)."""',
      "    k = out.shape[1]", "    for i in range(labels.shape[0]):", "        c = labels[i]",
      "        if c < 0 or c >= k:", "            return False", "        out[i, c] = 1",
      "    return True", "", "")


def _gemm_header(s: _Src, dtype: str, cblas: bool = False) -> None:
    if cblas:
        k = "s" if dtype == "float32" else "d"
        s("import ctypes", "import glob", "import os", "",
          "import llvmlite.binding as _llb",
          "from numba import types", "",
          "# GEMM from NumPy's own bundled OpenBLAS (row-major CBLAS, 64-bit ints): the",
          "# library NumPy's matrix products use (SciPy's copy, behind np.dot in Numba,",
          "# has slower small float32 kernels). Registered by symbol name, so Numba's",
          "# on-disk cache can link cached machine code to it in a new process.",
          "def _register_gemm():",
          "    root = os.path.dirname(os.path.dirname(np.__file__))",
          '    pattern = os.path.join(root, "numpy.libs", "libscipy_openblas64_*.so")',
          "    for path in sorted(glob.glob(pattern)):",
          f'        fn = getattr(ctypes.CDLL(path), "scipy_cblas_{k}gemm64_", None)',
          "        if fn is not None:",
          f'            _llb.add_symbol("symgrad_cblas_{k}gemm",'
          " ctypes.cast(fn, ctypes.c_void_p).value)",
          "            return",
          f'    raise ImportError("NumPy\'s bundled OpenBLAS (cblas_{k}gemm) was not found: these"',
          '                      " kernels were generated for another NumPy; regenerate them")',
          "", "",
          "_register_gemm()",
          f"_T = types.{dtype}",
          "_PT = types.CPointer(_T)",
          f"_gemm = types.ExternalFunction('symgrad_cblas_{k}gemm', types.void(",
          "    types.intc, types.intc, types.intc, types.int64, types.int64, types.int64,",
          "    _T, _PT, types.int64, _PT, types.int64, _T, _PT, types.int64))",
          "ROW, NO, TR = 101, 111, 112  # CblasRowMajor, CblasNoTrans, CblasTrans", "")
        _blas_pin(s, cblas)
        return
    s("from numba import types",
      "from numba.np.linalg import ensure_blas", "",
      "# GEMM through Numba's own BLAS entry point (the one np.dot uses; it loads",
      "# SciPy's BLAS), called directly so alpha/beta are available.",
      "ensure_blas()",
      f"BLAS_KIND = ord({'s' if dtype == 'float32' else 'd'!r})",
      "NN, TT = ord('N'), ord('T')",
      f"_P = types.CPointer(types.{dtype})",
      "_xxgemm = types.ExternalFunction('numba_xxgemm', types.intc(",
      "    types.char, types.char, types.char, types.intp, types.intp, types.intp,",
      "    _P, _P, types.intp, _P, types.intp, _P, _P, types.intp))", "")
    _blas_pin(s, cblas)


# Where the GEMMs' OpenBLAS lives: NumPy's own copy (CBLAS path) or SciPy's (behind
# Numba's numba_xxgemm), as pip installs them.
_BLAS_LIBS = {True: ("numpy", "numpy.libs", "libscipy_openblas64_*.so"),
              False: ("scipy", "scipy.libs", "libscipy_openblas*.so")}
_PIN_FUNCTION = "openblas_set_num_threads_local"   # OpenBLAS >= 0.3.27


def _blas_library_paths(cblas: bool) -> list[str]:
    import glob
    import importlib.util
    import os

    package, folder, pattern = _BLAS_LIBS[cblas]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    root = os.path.dirname(list(spec.submodule_search_locations)[0])
    return sorted(glob.glob(os.path.join(root, folder, pattern)))


def _blas_exports(cblas: bool, function: str) -> bool:
    """True if the OpenBLAS of that GEMM path (`_BLAS_LIBS`) exports ``function``."""
    import ctypes

    for path in _blas_library_paths(cblas):
        try:
            if getattr(ctypes.CDLL(path), function, None) is not None:
                return True
        except OSError:
            continue
    return False


def blas_pin_available(cblas: bool) -> bool:
    """True if the OpenBLAS the GEMMs call has ``openblas_set_num_threads_local`` (0.3.27
    and later): then batches split into parts, one per core (`splits_batches`), their
    GEMMs single-threaded."""
    return _blas_exports(cblas, _PIN_FUNCTION)


def _blas_pin(s: _Src, cblas: bool) -> None:
    """``_pin_blas(k)``: OpenBLAS's thread count := k; returns the previous count.

    ``openblas_set_num_threads_local`` is meant to set the calling thread's count, but in
    the OpenBLAS builds of the NumPy and SciPy wheels (0.3.30-0.3.31, pthreads) it sets
    the process-wide one: a split epoch sets it once, in the calling thread, and
    restores it at the end; each part sets it again, which matters only where the
    count is per thread. ``BLAS_PINNED``: whether it does anything (else batches never
    split).
    """
    if not blas_pin_available(cblas):
        s("# No openblas_set_num_threads_local in this BLAS: batches are never split into",
          "# parts (two parts' multi-threaded GEMMs would fight for the cores).",
          "BLAS_PINNED = False", "", "",
          f"@njit({_INLINE_JIT})", "def _pin_blas(k):",
          '    """A no-op here (see BLAS_PINNED)."""', "    return 0", "", "")
        return
    package, folder, pattern = _BLAS_LIBS[cblas]
    symbol = f"symgrad_blas_threads_{package}"
    s("import ctypes as _pin_ctypes",
      "import glob as _pin_glob",
      "import importlib.util as _pin_util",
      "import os as _pin_os", "",
      "import llvmlite.binding as _pin_llb",
      "from numba import types as _pin_types", "",
      "# A split batch runs each part's GEMMs single-threaded on its own core",
      f"# ({_PIN_FUNCTION}, OpenBLAS >= 0.3.27; see symgrad/codegen/kernels.py _blas_pin).",
      "def _register_blas_pin():",
      f"    spec = _pin_util.find_spec({package!r})",
      "    root = _pin_os.path.dirname(list(spec.submodule_search_locations)[0])",
      f"    pattern = _pin_os.path.join(root, {folder!r}, {pattern!r})",
      "    for path in sorted(_pin_glob.glob(pattern)):",
      f"        fn = getattr(_pin_ctypes.CDLL(path), {_PIN_FUNCTION!r}, None)",
      "        if fn is not None:",
      f"            _pin_llb.add_symbol({symbol!r}, "
      "_pin_ctypes.cast(fn, _pin_ctypes.c_void_p).value)",
      "            return",
      f'    raise ImportError("{_PIN_FUNCTION} was not found in {package}\'s OpenBLAS: these"',
      '                      " kernels were generated for another installation; regenerate them")',
      "", "",
      "_register_blas_pin()",
      "BLAS_PINNED = True",
      f"_blas_local = _pin_types.ExternalFunction({symbol!r}, _pin_types.intc(_pin_types.intc))",
      "", "",
      f"@njit({_INLINE_JIT})", "def _pin_blas(k):",
      '    """OpenBLAS\'s thread count := k (see BLAS_PINNED); returns the previous one."""',
      "    return _blas_local(np.intc(k))", "", "")


def numpy_cblas_available(dtype: str) -> bool:
    """True if NumPy ships its own OpenBLAS with ``scipy_cblas_?gemm64_`` (pip wheels)."""
    return _blas_exports(True, f"scipy_cblas_{'s' if dtype == 'float32' else 'd'}gemm64_")


def gemm_source(dtype: str, cblas: bool | None = None) -> str:
    """Source of the GEMM helper module shared by all kernel modules of ``dtype``.

    ``cblas`` (default: if available) calls NumPy's bundled OpenBLAS through
    CBLAS; otherwise SciPy's BLAS through Numba's ``numba_xxgemm``. The choice
    is part of the source text, hence of its cache key.
    """
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if cblas is None:
        cblas = numpy_cblas_available(dtype)
    s = _Src()
    s(f'"""symgrad GEMM helpers ({dtype}): out = alpha*op(A)@op(B) + beta*out."""', "",
      "import numpy as np", "from numba import njit")
    _gemm_header(s, dtype, cblas)
    s("f32 = np.float32", "f64 = np.float64", f"DTYPE = np.{dtype}", "", "")
    _gemm_helpers(s, cblas)
    s("# ---- calls by symbol (symgrad's codegen/linked_calls.py) ----",
      libraries.linked_calls_source().rstrip("\n"), "# ---- end of calls by symbol ----", "",
      f"LINK_DTYPE = types.{dtype}",
      f"LINK = {GEMM_LINKS!r}  # the argument types drivers call these kernels with")
    return s.text()
