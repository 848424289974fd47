"""Generate the kernels of a model: shared pieces, a per-model driver, a NumPy-level API.

Compiling is what costs time, so the generated code is split where sizes stop
mattering. Every piece whose source depends only on formulas is a shared module,
cached on disk by content and compiled once for every model that uses it: the GEMM
helpers (per dtype), the image-layer loops (`layer_kernels`), and one module per
activation, per output + loss and per optimizer (`elementwise_kernels`). The
*driver* (``_forward``, ``_backward``, ``_update``, ``_epoch``, ``_predict``,
``_loss_and_grads``) only calls them, and runs the Dense layers as one loop over a
layout table (`symgrad.codegen.dense_layers`): MLPs that differ in widths or depth share
one driver; only a new set of activations (or image layers) needs another. The *API*
module (``train_epoch``, ``predict``, ``evaluate``, ``loss_and_grads``, ``load_weights``
and the argument checks; its text is `symgrad.codegen.api_source`) is plain Python
holding the model's shapes. An exported trainer (`generate_module_source`) is
all of it in one standalone file importing only numpy and numba (and llvmlite, Numba's own
dependency, for the calls by symbol). The pieces:

* ``_mm``/``_mm_tn``/``_mm_nt``: out = A@B, A.T@B, A@B.T. Big products call
  BLAS through ``np.dot(..., out)``; ``A.T`` of a C array is typed F-ordered,
  so Numba passes a transpose flag to GEMM instead of copying. Tiny products
  run plain loops, because there a BLAS call costs more than the arithmetic.
* ``_forward``: per Dense layer (one loop iteration) one GEMM, then ONE fused loop
  adding the bias and applying the activation printed from the plan's SymPy formula.
* ``_output``: the fused output activation + loss: prediction, stable loss
  from logits, and the derived delta (e.g. ``p - y``), all in one loop.
* ``_backward``: dW = A_prev.T @ dZ, db = column sums, dA = dZ @ W.T (never
  for the first layer), and one fused loop multiplying by the derived
  activation derivative.
* ``_update``: the optimizer's written rule: one call over all Dense parameters (the
  flat buffer ``theta``), one per image-layer parameter.
* ``_epoch``: the whole epoch (gather in the given order, forward, backward, update,
  loss and accuracy sums) in one njit call; workspaces allocated once.

Every expression inside a loop comes from the plan through
`symgrad.codegen.printer`; nothing here knows an activation or loss by name.
Image layers read their sizes (channels, image height and width) from the geometry
array G the API passes in; only their kind settings (window, stride, padding) are
written into the driver.
"""

from __future__ import annotations

import hashlib
import math
import re

import sympy as sp

from symgrad.codegen import (
    dense_layers,
    elementwise_kernels,
    feature_layers,
    layer_kernels,
    linked_calls,
    vecmath,
)
from symgrad.codegen.api_source import API as _API
from symgrad.codegen.checks import LOGISTIC_LOSSES
from symgrad.codegen.elementwise_kernels import dtype_cast as _cast
from symgrad.codegen.source_text import JIT as _JIT
from symgrad.codegen.source_text import Src as _Src
from symgrad.codegen.source_text import cited as _cited
from symgrad.definition.formulas import A, P, Y, Z
from symgrad.definition.names import source_comment_text
from symgrad.derive.plan import (
    LOSS_KEY,
    LSE,
    PREDICTION_KEY,
    UPDATE_KEY,
    ActivationPlan,
    NetworkPlan,
    generic_dense_key,
)

__all__ = ["generate_module_source", "kernel_sources", "gemm_source", "numpy_cblas_available",
           "KernelLayout", "is_classification"]

# Rows per chunk in predict/evaluate: bounds workspace memory for big X.
PREDICT_CHUNK = 1024


def is_classification(plan: NetworkPlan) -> bool:
    """True if accuracy is meaningful: softmax output or a logistic (0..1) output with BCE."""
    if plan.output.kind == "softmax":
        return True
    return plan.output.loss_name.lower() in {"bce", "binary_cross_entropy", "cross_entropy"}


# Small helpers (the GEMM calls, the bias add; ~0.1 s apiece as functions of their own,
# cold) and the batch passes are inlined by Numba into their callers.
_INLINE_JIT = _JIT + ', inline="always"'


def _batch_pass_jit(lay: KernelLayout) -> str:
    """Options of a batch pass (_forward, _backward, _update): inlined into its callers
    (_epoch, _predict, ...) by Numba itself where it can be.

    Compiled as a function of its own, a pass is optimised by LLVM once alone and again
    inside _epoch, whose module links in every callee's code: for a cold 3-layer MLP,
    ~0.7 s of LLVM passes. Numba 0.68's inliner refuses the image-layer passes' calls
    ("Calling a closure with *args is unsupported", their argument lists are long), so
    drivers with image layers keep them as functions.
    """
    return _JIT if lay.features else _INLINE_JIT


def _activation_key(act: ActivationPlan) -> tuple[str, ...]:
    """What makes two activation plans the same kernel (their printed formulas)."""
    return (act.name, str(act.stable_forward), str(act.derivative), *act.saved)


class KernelLayout:
    """Names of arrays in the generated code, derived from the plan.

    Image layers keep one argument per parameter and per workspace (their code is
    written per layer). Dense layers are run by one loop (`symgrad.codegen.dense_layers`)
    over the flat parameter buffer ``theta`` and the shared buffers ``Abuf``/``Zbuf``/
    ``Dbuf``, sized from the layout table ``LT``: the driver's source does not depend on
    the Dense widths or on how many Dense layers there are.

    A workspace is ``(name, rows per sample, columns, fixed rows)``: per-batch buffers
    have ``rows per sample * m`` rows; a fixed one (rows per sample 0) has its own.
    """

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self.layers = plan.layers
        self.features = plan.features
        # Image-layer parameters by kernel variable name, aligned with the first
        # plan.param_names; the Dense ones follow, all inside theta.
        self.fparams: list[str] = []
        for feature in plan.features:
            self.fparams += feature_layers.feature_params(feature)
        # Each distinct activation gets a prefix (a0_fwd_b, a0_bwd, ...) and a code,
        # its position here (the Dense loop branches on it: LT[l, 4]).
        self.activations: dict[tuple[str, ...], tuple[str, ActivationPlan]] = {}
        acts = [f.activation for f in plan.features] + [d.activation for d in plan.layers[:-1]]
        # Sorted by formula, so models using the same activations in another order share
        # a driver.
        found = {_activation_key(act): act for act in reversed(acts) if act is not None}
        for key in sorted(found):
            self.activations[key] = (f"a{len(self.activations)}_", found[key])

    def prefix(self, act: ActivationPlan) -> str:
        return self.activations[_activation_key(act)][0]

    def code(self, act: ActivationPlan) -> int:
        """The Dense loop's branch number of ``act``."""
        return list(self.activations).index(_activation_key(act))

    def feature_input(self) -> str:
        return f"FA{self.features[-1].index}" if self.features else "X"

    def work_arrays(self) -> list[tuple[str, int, object, int]]:
        """Image layers' per-batch workspaces and errors (the Dense buffers are apart)."""
        return (list(feature_layers.workspaces(self.features))
                + list(feature_layers.deltas(self.features)))

    def forward_arrays(self) -> list[str]:
        return [w[0] for w in feature_layers.workspaces(self.features)] + ["Abuf", "Zbuf"]

    def delta_arrays(self) -> list[str]:
        return [w[0] for w in feature_layers.deltas(self.features)] + ["Dbuf"]

    def allocate(self, s: _Src, rows: str, suffix: str = "") -> None:
        """Emit the allocation of every workspace for batches of up to ``rows`` rows."""
        for name, per, cols, fixed in self.work_arrays():
            count = f"{fixed}" if per == 0 else rows if per == 1 else f"{rows} * ({per})"
            s(f"{name}{suffix} = np.empty(({count}, {cols}), dtype=DTYPE)")
        z_rows = f"{rows} * width" if dense_layers.saves_any_z(self) else "0"
        s("width = LT[LT.shape[0] - 1, 5] + LT[LT.shape[0] - 1, 1]  # all Dense outputs",
          f"Abuf{suffix} = np.empty(({rows} * width), dtype=DTYPE)",
          f"Dbuf{suffix} = np.empty(({rows} * width), dtype=DTYPE)",
          f"Zbuf{suffix} = np.empty(({z_rows}), dtype=DTYPE)"
          "  # z, for activations whose derivative reads it")

    def view(self, name: str, rows: str = "m") -> str:
        """The batch view of workspace ``name`` (allocated with suffix ``_``)."""
        per = {w[0]: w[1] for w in self.work_arrays()}.get(name)
        if per is None or per == 0:   # a Dense buffer (the loop takes its own views), fixed
            return f"{name}_"
        return f"{name}_[:{rows}]" if per == 1 else f"{name}_[:{rows} * ({per})]"


def _output_keys(lay: KernelLayout) -> tuple[str, ...]:
    """What ``_output`` computes: the prediction, the loss and the output error dZ_L."""
    return (PREDICTION_KEY, LOSS_KEY, generic_dense_key("dZ", output=True))


def _logits(s: _Src) -> None:
    """ZL and DL: the last Dense layer's blocks of the buffers (its logits and error)."""
    s("last = LT.shape[0] - 1", "at = m * LT[last, 5]",
      "ZL = _dense_view(Abuf_, at, m, LT[last, 1])",
      "DL = _dense_view(Dbuf_, at, m, LT[last, 1])")


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
_GEMM_LINKS = {"_column_sums": "a2 A1"}


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
      "            total += D[i, j]", "        g[j] = total", "", "")


def _forward_fn(s: _Src, lay: KernelLayout, dtype: str) -> None:
    args = ", ".join(["X", "G"] + lay.fparams + ["theta", "LT"] + lay.forward_arrays() + ["ab"])
    s(f"@njit({_batch_pass_jit(lay)})", f"def _forward({args}):",
      '    """Forward pass of one batch into preallocated buffers; the logits end in the last'
      " Dense layer's block of Abuf.\"\"\"")
    s.indent()
    s("m = X.shape[0]")
    if lay.features:
        feature_layers.emit_forward(s, lay.features, lay.prefix)
    dense_layers.emit_forward(s, lay, lay.feature_input())
    s.dedent()
    s("", "")


def _backward_fn(s: _Src, lay: KernelLayout, optimizer=None, cast: str = "") -> None:
    """Emit ``_backward`` (gradients into buffers) or, with an optimizer whose
    step is a GEMM epilogue (plain SGD), ``_backward_step``: each dW product is
    accumulated straight into W with alpha = -lr and beta = 1 - lr*wd."""
    fused = optimizer is not None
    grads = [] if fused else [f"g{p}" for p in lay.fparams]
    args = (["X", "G"] + lay.fparams + ["theta", "LT"] + lay.forward_arrays()
            + lay.delta_arrays() + grads + ["gtheta"] + (["H", "t"] if fused else []) + ["ab"])
    name, doc = (("_backward_step", "Backward pass fused with the SGD step") if fused else
                 ("_backward", "Backward pass of one batch into gradient buffers"))
    s(f"@njit({_batch_pass_jit(lay)})", f"def {name}({', '.join(args)}):",
      f'    """{doc}; the last Dense block of Dbuf holds dL/dZ of the output layer."""')
    s.indent()
    s("m = X.shape[0]")
    if fused:
        s("t[0] += 1", *optimizer.prologue(cast))
        alpha, beta = optimizer.fused_gemm(cast)
        s(_cited(f"alpha = {alpha}", UPDATE_KEY), _cited(f"beta = {beta}", UPDATE_KEY))
    dense_layers.emit_backward(s, lay, lay.feature_input(), optimizer, cast)
    if lay.features and feature_layers.first_trained(lay.features) < len(lay.features):
        dense_layers.emit_features_error(s, f"FD{lay.features[-1].index}")
        feature_layers.emit_backward(s, lay.features, lay.prefix)
    s.dedent()
    s("", "")


def _update_fn(s: _Src, lay: KernelLayout, optimizer) -> None:
    fstates = [f"s_{st}_{p}" for p in lay.fparams for st in optimizer.state_names]
    args = ", ".join(lay.fparams + ["theta"] + [f"g{p}" for p in lay.fparams] + ["gtheta"]
                     + fstates + ["S", "H", "t", "Hs"])
    s(f"@njit({_batch_pass_jit(lay)})", f"def _update({args}):",
      f'    """{type(optimizer).__name__} step on every parameter (the shared _step); the'
      ' Dense ones in one call over theta."""')
    s.indent()
    s("t[0] += 1", _cited("_prologue(H, t, Hs)", UPDATE_KEY))
    for p in lay.fparams:
        views = [f"{p}.reshape({p}.size)", f"g{p}.reshape({p}.size)"]
        views += [f"s_{st}_{p}.reshape({p}.size)" for st in optimizer.state_names]
        s(_cited(f"_step({', '.join(views)}, Hs)", UPDATE_KEY))
    rows = [f"S[{k}]" for k in range(len(optimizer.state_names))]
    s(_cited(f"_step({', '.join(['theta', 'gtheta', *rows])}, Hs)", UPDATE_KEY))
    s.dedent()
    s("", "")


# A split batch's parts run in one prange loop; every other parallel rewrite of Numba is
# off (np.zeros fills, array expressions and reductions stay serial, as written).
_PARALLEL_JIT = _JIT + (', parallel={"comprehension": False, "reduction": False, '
                        '"inplace_binop": False, "setitem": False, "numpy": False, '
                        '"stencil": False, "fusion": False}')


def splits_batches(lay: KernelLayout) -> bool:
    """Whether the driver splits each batch into parts, one per core (`_part_fn`).

    Image models: their pooling, im2col and activation loops are single-threaded
    and most of an epoch, so a GEMM's own threads leave a core idle. An MLP's epoch is
    mostly GEMMs (and their SGD step fused into them), which BLAS already spreads.
    """
    return bool(lay.features)


def _part_spaces(lay: KernelLayout) -> list[tuple[str, str, str | None, str]]:
    """Every workspace of one part as (name, rows of its view, columns or None for a
    vector, elements it takes), in the order `_part` carves them out of one buffer.

    Sizes are expressions in G, LT and ``rows`` (the part's allocated rows); a view's
    rows use ``m`` (the rows it holds now). The per-part workspaces are one buffer so
    that the prange loop of `_split_epoch_fn` passes a few arrays: Numba's parfor
    lowering costs ~0.2 s per array its loop body uses (measured: 5 arrays 1.2 s, 40
    arrays 9.2 s), and one argument per workspace made LeNet's cold driver 2x slower.
    """
    out = []
    for name, per, cols, fixed in lay.work_arrays():
        if per == 0:
            out.append((name, str(fixed), str(cols), f"({fixed}) * ({cols})"))
        else:
            view = "m" if per == 1 else f"m * ({per})"
            alloc = "rows" if per == 1 else f"rows * ({per})"
            out.append((name, view, str(cols), f"{alloc} * ({cols})"))
    z = "rows * width" if dense_layers.saves_any_z(lay) else "0"
    out += [("Abuf", "", None, "rows * width"), ("Dbuf", "", None, "rows * width"),
            ("Zbuf", "", None, z)]
    return out


def _part_grads(lay: KernelLayout) -> list[tuple[str, str]]:
    """(gradient name, its parameter) in the order they sit in a part's gradient row."""
    return [(f"g{p}", p) for p in lay.fparams] + [("gtheta", "theta")]


def _carve_grads(s: _Src, lay: KernelLayout, row: str) -> None:
    """Views of each gradient in the flat gradient row ``row``, shaped like its parameter."""
    s("at = 0")
    for g, p in _part_grads(lay):
        view = f"{row}[at:at + {p}.size]"
        s(f"{g} = {view}" if p == "theta" else f"{g} = {view}.reshape({p}.shape)",
          f"at += {p}.size")


def _part_fn(s: _Src, lay: KernelLayout) -> None:
    """``_part``: forward, output and backward of one part of a batch into its buffers."""
    head = ["G"] + lay.fparams + ["theta", "LT"]
    args = ["X", "Y", "lo", "hi", "q", "rows"] + head + ["WS", "GR", "P_", "ab_", "pin"]
    s(f"@njit({_JIT})", f"def _part({', '.join(args)}):",
      '    """Forward, output and backward of rows lo:hi of the batch X, Y (a part, or all of'
      " it) into part q's\n    workspaces (row q of WS, ``rows`` rows each) and gradients"
      " (row q of GR); returns (loss sum,\n    correct count). With pin its GEMMs run"
      ' single-threaded: the other parts run on the other cores."""')
    s.indent()
    s("if pin:", "    _pin_blas(1)  # where OpenBLAS counts per thread, this thread's"
      " (see _pin_blas)")
    s("m = hi - lo", "xs = X[lo:hi]", "ys = Y[lo:hi]", "ws = WS[q]",
      "width = LT[LT.shape[0] - 1, 5] + LT[LT.shape[0] - 1, 1]  # all Dense outputs", "at = 0")
    for name, view_rows, cols, size in _part_spaces(lay):
        view = (f"ws[at:at + {size}]" if cols is None
                else f"_dense_view(ws, at, {view_rows}, {cols})")
        s(f"{name}_ = {view}", f"at += {size}")
    _carve_grads(s, lay, "GR[q]")
    fwd = [f"{n}_" for n in lay.forward_arrays()]
    deltas = [f"{n}_" for n in lay.delta_arrays()]
    grads = [g for g, _ in _part_grads(lay)]
    s("ab = ab_[q]", "P = P_[q, :m]")
    s("_forward(" + ", ".join(["xs"] + head + fwd + ["ab"]) + ")")
    _logits(s)
    s(_cited("loss, correct = _output(ZL, ys, DL, P, True)", *_output_keys(lay)))
    s("_backward(" + ", ".join(["xs"] + head + fwd + deltas + grads + ["ab"]) + ")")
    s("return loss, correct")
    s.dedent()
    s("", "")


def _part_link(lay: KernelLayout) -> str:
    """`_part`'s argument types as a ``LINK`` entry (`linked_calls`): X, Y and G only read."""
    params = [f"A{len(shape)}" for f in lay.features for _, shape in f.param_shapes]
    return " ".join(["a2", "a2", "i", "i", "i", "i", "i2"] + params
                    + ["A1", "i2", "A2", "A2", "A3", "A2", "b"])


def part_call_lines(lay: KernelLayout) -> str:
    """The driver's tail binding ``_part_call``: `_part` called by symbol (compiled once in
    its own library; linked into _epoch and into the gufunc of its prange loop instead,
    its code, with _forward's and _backward's, was optimised again in each)."""
    if not splits_batches(lay):
        return ""
    return ("import sys as _sys  # noqa: E402\n\n"
            f"LINK = {{'_part': {_part_link(lay)!r}}}\n"
            "_part_call = linked(_sys.modules[__name__], '_part', LINK_DTYPE)\n")


def _batch_rows(s: _Src) -> None:
    """xb, yb: the batch's rows start:stop, gathered into Xb, Yb in the epoch's order, or
    row slices of X, Y when the rows train in order."""
    s("if gather:", "    for r in range(m):", "        src = perm[start + r]",
      "        for c in range(X.shape[1]):", "            Xb[r, c] = X[src, c]",
      "        for c in range(Y.shape[1]):", "            Yb[r, c] = Y[src, c]",
      "    xb = Xb[:m]", "    yb = Yb[:m]",
      "else:", "    xb = X[start:stop]", "    yb = Y[start:stop]")


def _split_epoch_fn(s: _Src, lay: KernelLayout, optimizer) -> None:
    """``_epoch`` of a driver that splits each batch into ``parts`` (one per core).

    Each part runs `_part` on its rows, in its own workspaces and gradients (row q of
    WS and of GR); the batch's gradient is their sum weighted by rows / m (each part's
    output error is scaled by 1 / its rows), summed into row 0 of GR, which the update
    reads. A batch of one part calls `_part` directly, with BLAS's own threads: the same
    arithmetic as an unsplit batch.
    """
    fstates = [f"s_{st}_{p}" for p in lay.fparams for st in optimizer.state_names]
    params = lay.fparams + ["theta"]
    args = ", ".join(["X", "Y", "G", "order", "batch_size", "parts"] + params + fstates
                     + ["S", "H", "t", "LT"])
    s(f"@njit({_PARALLEL_JIT})", f"def _epoch({args}):")
    s('    """One whole epoch: gather, forward, backward, update; returns'
      ' (loss sum over samples, correct count).\n\n    Each batch splits into up to'
      ' ``parts`` parts of equal rows, run side by side (one per core)."""')
    s.indent()
    s("n = X.shape[0]", "bs = min(batch_size, n)", "parts = max(1, min(parts, bs))",
      "rows = (bs + parts - 1) // parts  # rows of one part")
    s("perm = order", "gather = order.size == n")
    s("Xb = np.empty((bs if gather else 0, X.shape[1]), dtype=DTYPE)",
      "Yb = np.empty((bs if gather else 0, Y.shape[1]), dtype=DTYPE)",
      "P_ = np.empty((parts, rows, Y.shape[1]), dtype=DTYPE)",
      "ab_ = np.empty((parts, 2), dtype=DTYPE)")
    count = len(elementwise_kernels.prologue_names(optimizer))
    s(f"Hs = np.empty({max(count, 1)}, dtype=DTYPE)")
    s("# One row of workspaces (as _part carves them) and one of gradients per part.",
      "width = LT[LT.shape[0] - 1, 5] + LT[LT.shape[0] - 1, 1]  # all Dense outputs",
      "space = " + " + ".join(size for _, _, _, size in _part_spaces(lay)),
      "WS = np.empty((parts, space), dtype=DTYPE)",
      "GR = np.empty((parts, " + " + ".join(f"{p}.size" for _, p in _part_grads(lay))
      + "), dtype=DTYPE)")
    _carve_grads(s, lay, "GR[0]")
    grads = [g for g, _ in _part_grads(lay)]
    s("losses = np.empty(parts)", "corrects = np.empty(parts, dtype=np.int64)",
      "weights = np.empty(parts, dtype=DTYPE)")
    s("# Split batches: BLAS single-threaded for the epoch (the parts use the cores), the",
      "# caller's setting back after it.",
      "blas_before = _pin_blas(1) if parts > 1 else 0")
    s("loss_sum = 0.0", "correct = 0")
    s("for start in range(0, n, bs):")
    s.indent()
    s("stop = min(start + bs, n)", "m = stop - start")
    _batch_rows(s)
    s("h = (m + parts - 1) // parts", "used = (m + h - 1) // h  # parts with rows")

    def call(lo: str, hi: str, part: str, pin: str) -> str:
        return ("_part_call(" + ", ".join(["xb", "yb", lo, hi, part, "rows", "G"] + params
                                          + ["LT", "WS", "GR", "P_", "ab_", pin]) + ")")

    per = "" if lay.plan.output.reduction == "rows" else " / Y.shape[1]"
    s("if used == 1:")
    s.indent()
    s(f"batch_loss, batch_correct = {call('0', 'm', '0', 'False')}")
    s(f"loss_sum += batch_loss{per}", "correct += batch_correct")
    s.dedent()
    s("else:")
    s.indent()
    s("for q in prange(used):")
    s.indent()
    s("lo = q * h", "hi = min(lo + h, m)", f"r = {call('lo', 'hi', 'q', 'True')}",
      "losses[q] = r[0]", "corrects[q] = r[1]", "weights[q] = DTYPE((hi - lo) / m)")
    s.dedent()
    s("for q in range(used):")
    s(f"    loss_sum += losses[q]{per}", "    correct += corrects[q]")
    s("_sum_parts(GR, weights, used)")
    s.dedent()
    s("_update(" + ", ".join(params + grads + fstates + ["S", "H", "t", "Hs"]) + ")")
    s.dedent()
    s("if parts > 1:", "    _pin_blas(blas_before)")
    s("return loss_sum, correct")
    s.dedent()
    s("", "")


def _epoch_fn(s: _Src, lay: KernelLayout, optimizer, fused: bool) -> None:
    if splits_batches(lay):
        _part_fn(s, lay)
        _split_epoch_fn(s, lay, optimizer)
        return
    fstates = [f"s_{st}_{p}" for p in lay.fparams for st in optimizer.state_names]
    args = ", ".join(["X", "Y", "G", "order", "batch_size"] + lay.fparams + ["theta"]
                     + fstates + ["S", "H", "t", "LT"])
    s(f"@njit({_JIT})", f"def _epoch({args}):")
    s('    """One whole epoch: gather, forward, backward, update; returns'
      ' (loss sum over samples, correct count)."""')
    s.indent()
    s("n = X.shape[0]", "bs = min(batch_size, n)")
    s("# Batch order: a given permutation (a seeded shuffle is drawn by the caller,",
      "# _permutation), else in order: then batches are row slices of X, no gather copy.",
      "perm = order", "gather = order.size == n")
    s("# Workspaces: allocated once per epoch, row-sliced to each batch (views, no copies).")
    s("Xb = np.empty((bs if gather else 0, X.shape[1]), dtype=DTYPE)",
      "Yb = np.empty((bs if gather else 0, Y.shape[1]), dtype=DTYPE)",
      "P = np.empty((bs, Y.shape[1]), dtype=DTYPE)", "ab = np.empty(2, dtype=DTYPE)")
    if not fused:   # the optimizer's per-step scalars
        count = len(elementwise_kernels.prologue_names(optimizer))
        s(f"Hs = np.empty({max(count, 1)}, dtype=DTYPE)")
    lay.allocate(s, "bs", "_")
    grads = [] if fused else [f"g{p}" for p in lay.fparams]
    for g in grads:
        s(f"{g} = np.empty_like({g[1:]})")
    s("gtheta = np.empty_like(theta)")
    s("loss_sum = 0.0", "correct = 0")
    s("for start in range(0, n, bs):")
    s.indent()
    s("stop = min(start + bs, n)", "m = stop - start")
    _batch_rows(s)
    fwd_arrays = [lay.view(n) for n in lay.forward_arrays()]
    s("_forward(" + ", ".join(["xb", "G"] + lay.fparams + ["theta", "LT"] + fwd_arrays + ["ab"])
      + ")")
    _logits(s)
    s(_cited("batch_loss, batch_correct = _output(ZL, yb, DL, P[:m], True)", *_output_keys(lay)))
    per = "" if lay.plan.output.reduction == "rows" else " / Y.shape[1]"
    s(f"loss_sum += batch_loss{per}", "correct += batch_correct")
    deltas = [lay.view(name) for name in lay.delta_arrays()]
    common = ["xb", "G"] + lay.fparams + ["theta", "LT"] + fwd_arrays + deltas + grads
    if fused:
        s("_backward_step(" + ", ".join(common + ["gtheta", "H", "t", "ab"]) + ")")
    else:
        s("_backward(" + ", ".join(common + ["gtheta", "ab"]) + ")")
        s("_update(" + ", ".join(lay.fparams + ["theta"] + grads + ["gtheta"] + fstates
                                 + ["S", "H", "t", "Hs"]) + ")")
    s.dedent()
    s("return loss_sum, correct")
    s.dedent()
    s("", "")


def _predict_fns(s: _Src, lay: KernelLayout) -> None:
    args = ", ".join(["X", "Y", "G", "want_loss", "chunk"] + lay.fparams + ["theta", "LT"])
    s(f"@njit({_JIT})", f"def _predict({args}):",
      '    """Predictions for all rows (in chunks); with want_loss also (loss sum, correct)."""')
    s.indent()
    s("n = X.shape[0]", "bs = min(chunk, max(n, 1))", "k = LT[LT.shape[0] - 1, 1]",
      "out = np.empty((n, k), dtype=DTYPE)", "ab = np.empty(2, dtype=DTYPE)")
    lay.allocate(s, "bs", "_")
    s("D_ = np.empty((bs, k), dtype=DTYPE)  # _output's scratch (no delta here)")
    s("loss_sum = 0.0", "correct = 0")
    s("for start in range(0, n, bs):")
    s.indent()
    s("stop = min(start + bs, n)", "m = stop - start")
    fwd = ", ".join(["X[start:stop]", "G"] + lay.fparams + ["theta", "LT"]
                    + [lay.view(n) for n in lay.forward_arrays()] + ["ab"])
    s(f"_forward({fwd})")
    s("ZL = _dense_view(Abuf_, m * LT[LT.shape[0] - 1, 5], m, k)")
    s("yb = Y[start:stop] if want_loss else out[start:stop]")
    s(_cited("batch_loss, batch_correct = _output(ZL, yb, D_[:m], out[start:stop], False)",
             PREDICTION_KEY, LOSS_KEY))
    per = "" if lay.plan.output.reduction == "rows" else " / k"
    s(f"loss_sum += batch_loss{per}", "correct += batch_correct")
    s.dedent()
    s("return out, loss_sum, correct")
    s.dedent()
    s("", "")


def _grads_fn(s: _Src, lay: KernelLayout) -> None:
    args = ", ".join(["X", "Y", "G"] + lay.fparams + ["theta", "LT"])
    s(f"@njit({_JIT})", f"def _loss_and_grads({args}):",
      '    """Mean loss and gradients of one batch (the whole of X): used to test the kernels;'
      ' the Dense gradients come as one flat buffer laid out like theta."""')
    s.indent()
    s("m = X.shape[0]", "P = np.empty((m, Y.shape[1]), dtype=DTYPE)",
      "ab = np.empty(2, dtype=DTYPE)")
    lay.allocate(s, "m", "_")
    grads = [f"g{p}" for p in lay.fparams]
    for p in lay.fparams:
        s(f"g{p} = np.empty_like({p})")
    s("gtheta = np.empty_like(theta)")
    fwd_arrays = [lay.view(n) for n in lay.forward_arrays()]
    s("_forward(" + ", ".join(["X", "G"] + lay.fparams + ["theta", "LT"] + fwd_arrays + ["ab"])
      + ")")
    _logits(s)
    s(_cited("loss, _ = _output(ZL, Y, DL, P, True)", *_output_keys(lay)))
    deltas = [lay.view(name) for name in lay.delta_arrays()]
    s("_backward(" + ", ".join(["X", "G"] + lay.fparams + ["theta", "LT"] + fwd_arrays + deltas
                               + grads + ["gtheta", "ab"]) + ")")
    scale = "m" if lay.plan.output.reduction == "rows" else "(m * Y.shape[1])"
    s(f"return loss / {scale}, ({', '.join(grads + ['gtheta'])},)")
    s.dedent()
    s("", "")


def _describe(plan: NetworkPlan, widths: bool = True) -> str:
    """The network in one line; without ``widths`` only what the driver's code depends on."""
    parts = [str(plan.input_dim)] if widths else ["X"]
    for feature in plan.features:
        act = f"({feature.activation.name})" if feature.activation else ""
        parts.append(f"{feature.kind}{act}")
    if not widths:   # the driver fits any depth: only the set of activations shows
        used = {_activation_key(layer.activation) for layer in plan.layers[:-1]}
        acts = [act.name for key, (_, act) in KernelLayout(plan).activations.items()
                if key in used]
        parts.append(f"dense layers ({', '.join(acts) or 'no activation'})")
        parts.append(f"dense({plan.output.activation_name})")
    for layer in plan.layers if widths else ():
        act = layer.activation.name if layer.activation else plan.output.activation_name
        parts.append(f"{layer.out_dim}({act})")
    # Pasted into the module docstring: only characters inert there (names are data).
    return source_comment_text("-".join(parts) + f", loss {plan.output.loss_name}")


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
      linked_calls.kernel_source().rstrip("\n"), "# ---- end of calls by symbol ----", "",
      f"LINK_DTYPE = types.{dtype}",
      f"LINK = {_GEMM_LINKS!r}  # the argument types drivers call these kernels with")
    return s.text()


def layers_source() -> str:
    """Source of the shared module of image-layer loops (one for every dtype and size)."""
    head = '"""symgrad image-layer loops (shape-generic; see symgrad.codegen.layer_kernels)."""'
    return (head + "\n\n" + layer_kernels.kernel_source()
            + f"\nLINK = {layer_kernels.LINKS!r}  # the argument types drivers call them with\n")


def _fused(plan: NetworkPlan, optimizer, cast: str) -> bool:
    # The SGD step fused into the dW GEMMs covers Dense layers; with image layers every
    # gradient goes through the buffers and the written update loop.
    return getattr(optimizer, "fused_gemm", lambda cast: None)(cast) is not None \
        and not plan.features


def _shared_bodies(lay: KernelLayout, dtype: str, optimizer
                   ) -> list[tuple[str, str, str, str, dict[str, str]]]:
    """(stem, title, body, prefix, links) of every shared piece the driver calls.

    Bodies are unprefixed; ``prefix`` is the name the driver imports an activation's
    functions under (``a0_``), empty for the output and optimizer pieces; ``links`` the
    argument types the driver calls each function with (`linked_calls`).
    """
    plan = lay.plan
    pieces = [("act", f"activation {act.name}", elementwise_kernels.activation_body(act, dtype),
               prefix, elementwise_kernels.activation_links(act))
              for prefix, act in lay.activations.values()]
    out = plan.output
    pieces.append(("output", f"output {out.activation_name} + loss {out.loss_name}",
                   elementwise_kernels.output_body(out, dtype, is_classification(plan)), "",
                   elementwise_kernels.OUTPUT_LINKS))
    if not _fused(plan, optimizer, _cast(dtype)):
        pieces.append(("opt", f"optimizer {optimizer.key}",
                       elementwise_kernels.optimizer_body(optimizer, dtype), "",
                       elementwise_kernels.optimizer_links(optimizer)))
    return pieces


def _driver(plan: NetworkPlan, dtype: str, optimizer, imports: list[str]) -> str:
    """The per-model njit functions, after ``imports`` (import lines or inlined bodies)."""
    lay = KernelLayout(plan)
    cast = _cast(dtype)
    s = _Src()
    s(*imports)
    s("f32 = np.float32", "f64 = np.float64", f"DTYPE = np.{dtype}",
      "ONE, ZERO = DTYPE(1.0), DTYPE(0.0)  # typed GEMM alpha/beta (no float64 promotion)",
      "", "")
    _forward_fn(s, lay, dtype)
    _backward_fn(s, lay)
    fused = _fused(plan, optimizer, cast)
    if fused:
        _backward_fn(s, lay, optimizer, cast)
    else:
        _update_fn(s, lay, optimizer)
    _epoch_fn(s, lay, optimizer, fused)
    _predict_fns(s, lay)
    _grads_fn(s, lay)
    return s.text()


def _constants(plan: NetworkPlan, dtype: str, optimizer) -> str:
    """The model's shapes and settings, as the API functions read them."""
    shapes = [shape for feature in plan.features for _, shape in feature.param_shapes]
    for layer in plan.layers:
        shapes.append((layer.in_dim, layer.out_dim))
        if layer.bias:
            shapes.append((layer.out_dim,))
    lay = KernelLayout(plan)
    rows, slots = dense_layers.layout(plan, lay.code)
    dense_names = plan.param_names[len(lay.fparams):]
    dense_slots = tuple((name, at, shape) for name, (at, shape)
                        in zip(dense_names, slots, strict=True))
    dense_size = sum(math.prod(shape) for _, shape in slots)
    chunk = PREDICT_CHUNK
    if plan.features:   # bound predict's workspaces (im2col matrices grow with the batch)
        chunk = min(PREDICT_CHUNK, max(16, 4_000_000 // feature_layers.per_sample_elements(
            plan.features)))
    s = _Src()
    s(f"DTYPE = np.{dtype}",
      f"INPUT_DIM = {plan.input_layout!r}", f"FIRST_LAYER = {plan.first_layer!r}",
      f"OUTPUT_DIM = {plan.output_dim}",
      f"PARAM_NAMES = {tuple(plan.param_names)!r}", f"PARAM_SHAPES = {tuple(shapes)!r}",
      f"FEATURE_NAMES = {tuple(plan.param_names[:len(lay.fparams)])!r}",
      "# The Dense parameters' (name, offset, shape) in theta, and the layout table LT the",
      "# driver's loop reads, one row per Dense layer: " + ", ".join(dense_layers.LAYOUT_COLUMNS),
      f"DENSE_SLOTS = {dense_slots!r}", f"DENSE_SIZE = {dense_size}",
      f"DENSE_LAYOUT = np.array({rows!r}, dtype=np.int64)",
      f"STATE_NAMES = {tuple(optimizer.state_names)!r}",
      f"HYPER_NAMES = {tuple(optimizer.hyper())!r}",
      "HYPER_DEFAULT = None  # hyperparameters are run-time values (export fills this in)",
      f"CLASSIFICATION = {is_classification(plan)}",
      "# Whether _epoch splits each batch into parts, one per core (takes a parts count).",
      f"SPLITS_BATCHES = {splits_batches(lay)}",
      f"REDUCTION = {plan.output.reduction!r}",
      f"LOGISTIC_TARGETS = {plan.output.loss_name.lower() in LOGISTIC_LOSSES}",
      f"PREDICT_CHUNK = {chunk}",
      "# Image layers' (C_in, H_in, W_in, C_out, OH, OW), one row each: the driver reads",
      "# every image size from here (an MLP has none).",
      f"GEOMETRY = np.array({feature_layers.geometry(plan.features)!r}, dtype=np.int64)"
      ".reshape(-1, 6)", "", "")
    return s.text()


_DRIVER_NAMES = ("_forward", "_backward", "_epoch", "_predict", "_loss_and_grads")


def _linked_imports(module: str, alias: str, names: dict[str, str], body: str) -> list[str]:
    """Lines binding each ``local: kernel`` of ``module`` that the driver ``body`` calls to
    a call by symbol (`linked_calls`); kernels the body never calls are not compiled."""
    used = {local: kernel for local, kernel in names.items()
            if re.search(rf"\b{re.escape(local)}\(", body)}
    if not used:
        return []
    return [f"import {module} as {alias}"] + [
        f'{local} = linked({alias}, "{kernel}", LINK_DTYPE)' for local, kernel in used.items()]


def kernel_sources(plan: NetworkPlan, dtype: str, optimizer,
                   cblas: bool | None = None) -> list[tuple[str, str]]:
    """``(stem, source)`` of every module a trainer loads, in import order.

    Shared: the GEMM helpers, the image-layer loops (convolutional plans), one module
    per activation, the output + loss and the optimizer; then the model's driver
    (width-free for Dense layers) and its API module (shapes, checks, entry points).
    Each source imports the ones before it by their content-hash module names; the
    driver calls the activation, output, optimizer and bias-gradient kernels by symbol
    (`linked_calls`), so its own compile does not optimise their code again.
    """
    from symgrad.codegen.cache import module_name

    _check_dtype(dtype)
    lay = KernelLayout(plan)
    body = _driver(plan, dtype, optimizer, [])
    gemm = gemm_source(dtype, cblas)
    gemm_name = module_name(gemm, "gemm")
    sources = [("gemm", gemm)]
    imports = ["import math  # noqa: F401", "", "import numpy as np", "from numba import njit",
               "from numba import prange  # noqa: F401",
               "", f"from {gemm_name} import BLAS_PINNED, LINK_DTYPE, _add_bias, _dense_view, "
               "_mm, _mm_nt, _mm_tn, _pin_blas, _sum_parts, linked  # noqa: F401",
               "# Shared kernels are called by symbol: compiled once in their own modules, not",
               "# copied into this one (symgrad/codegen/linked_calls.py).", ""]
    imports += _linked_imports(gemm_name, "_k_gemm", {f: f for f in _GEMM_LINKS}, body)
    if plan.features:
        layers = layers_source()
        sources.append(("layers", layers))
        plain = [f for f in layer_kernels.FUNCTIONS if f not in layer_kernels.LINKS]
        imports.append(f"from {module_name(layers, 'layers')} import "
                       f"{', '.join(plain)}  # noqa: F401")
        imports += _linked_imports(module_name(layers, "layers"), "_k_layers",
                                   {f: f for f in layer_kernels.LINKS}, body)
    output_module = None
    for k, (stem, title, source_body, p, links) in enumerate(
            _shared_bodies(lay, dtype, optimizer)):
        source = elementwise_kernels.shared_module_source(title, source_body, dtype, links)
        sources.append((stem, source))
        name = module_name(source, stem)
        output_module = name if stem == "output" else output_module
        imports += _linked_imports(name, f"_k_{stem}{k}", {p + f: f for f in links}, body)
    head = [f'"""symgrad driver: {_describe(plan, widths=False)}; {dtype}; '
            f'optimizer {optimizer.key}.', "",
            "The per-model njit functions; every formula lives in the shared modules it",
            'imports, and every width and image size is read from the arrays."""', ""]
    driver = "\n".join(head + imports + [""]) + "\n" + body + part_call_lines(lay)
    sources.append(("driver", driver))
    names = list(_DRIVER_NAMES)
    names.insert(3, "_backward_step" if _fused(plan, optimizer, _cast(dtype)) else "_update")
    api = "\n".join([
        f'"""symgrad kernels: {_describe(plan)}; {dtype}; optimizer {optimizer.key}.', "",
        "The model's shapes, the argument checks and the NumPy-level API; the compiled",
        'functions are imported from its driver."""', "", "import numpy as np", "",
        f"from {module_name(driver, 'driver')} import BLAS_PINNED, {', '.join(names)}"
        "  # noqa: F401",
        f"from {output_module} import _output  # noqa: F401", "", ""])
    sources.append(("kernels", api + _constants(plan, dtype, optimizer) + _API))
    return sources


def _check_dtype(dtype: str) -> None:
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")


def generate_module_source(plan: NetworkPlan, dtype: str, optimizer,
                           gemm_module: str | None = None) -> str:
    """The whole trainer in one module: what `export` writes (numpy + numba only).

    Everything `kernel_sources` splits into shared modules is written inline here
    (the activations' kernels with a prefix each); with ``gemm_module`` (the import
    name of a loaded `gemm_source` module) only the GEMM helpers are imported.
    """
    _check_dtype(dtype)
    lay = KernelLayout(plan)
    s = _Src()
    s(f'"""symgrad kernels: {_describe(plan)}; {dtype}; optimizer {optimizer.key}.',
      "",
      "Generated from the derived SymPy expressions of the network plan.",
      "Imports only the standard library, numpy and numba (with its llvmlite)"
      + (" and the shared GEMM helpers." if gemm_module else ': standalone."""'))
    if gemm_module:
        s('"""')
    s("", "import math", "", "import numpy as np", "from numba import njit, prange", "")
    # The printer's vm_exp_f64(...) calls land here: our vectorisable elementary
    # functions, written inline so an exported module needs only numpy and numba.
    s("# ---- vectorisable elementary functions (symgrad's vecmath module) ----",
      vecmath.kernel_source().rstrip("\n"), "# ---- end of vecmath ----", "", "")
    if gemm_module:
        s("# The GEMM helpers are shared by every kernel module of this dtype (compiled once).",
          f"from {gemm_module} import BLAS_PINNED, _add_bias, _column_sums, _dense_view, "
          "_mm, _mm_nt, _mm_tn, _pin_blas, _sum_parts  # noqa: F401", "")
    else:
        _gemm_header(s, dtype)
        s(f"DTYPE = np.{dtype}", "")
        _gemm_helpers(s)
    if plan.features:
        s("# ---- image-layer loops (symgrad's codegen/layer_kernels.py) ----",
          layer_kernels.kernel_source().rstrip("\n"), "# ---- end of image-layer loops ----",
          "", "")
    s("f32 = np.float32", "f64 = np.float64", f"DTYPE = np.{dtype}", "")
    for prefix, act in lay.activations.values():
        s(f"# ---- activation {source_comment_text(act.name)} ----",
          elementwise_kernels.activation_body(act, dtype, prefix).rstrip("\n"), "", "")
    s(elementwise_kernels.output_body(plan.output, dtype, is_classification(plan)).rstrip("\n"),
      "", "")
    if not _fused(plan, optimizer, _cast(dtype)):
        s(elementwise_kernels.optimizer_body(optimizer, dtype).rstrip("\n"), "", "")
    body = _driver(plan, dtype, optimizer, [])
    kernels = s.text() + body
    return (kernels + _export_links(lay, dtype, optimizer, body, kernels)
            + _constants(plan, dtype, optimizer) + _API)


def _export_links(lay: KernelLayout, dtype: str, optimizer, body: str, kernels: str) -> str:
    """An exported trainer's calls by symbol: the kernels its driver ``body`` calls, as
    `kernel_sources` links them across modules (`linked_calls`), here within one module.

    Without them Numba optimises the code of every kernel again inside each function
    that calls it: a CNN trainer's first epoch compiled for 101 s instead of ~40 s. The
    symbols are named after a hash of the ``kernels`` text, which keeps two exported
    trainers loaded in one process apart (a module name can repeat; this text cannot
    differ under one hash).
    """
    plan = lay.plan
    links = dict(_GEMM_LINKS)
    if plan.features:
        links.update(layer_kernels.LINKS)
    for prefix, act in lay.activations.values():
        links.update({prefix + f: tokens
                      for f, tokens in elementwise_kernels.activation_links(act).items()})
    links.update(elementwise_kernels.OUTPUT_LINKS)
    if not _fused(plan, optimizer, _cast(dtype)):
        links.update(elementwise_kernels.optimizer_links(optimizer))
    used = {name: tokens for name, tokens in links.items()
            if re.search(rf"\b{re.escape(name)}\(", body)}
    if splits_batches(lay):
        used["_part"] = _part_link(lay)   # last: its compile sees the others linked
    tag = hashlib.sha256(kernels.encode("utf-8")).hexdigest()[:16]
    s = _Src()
    s("# ---- calls by symbol (symgrad's codegen/linked_calls.py) ----",
      linked_calls.kernel_source().rstrip("\n"), "# ---- end of calls by symbol ----", "",
      "from types import SimpleNamespace as _LinkScope  # noqa: E402", "",
      f"LINK_DTYPE = _ln_types.{dtype}",
      f"LINK = {used!r}  # the argument types the driver calls these kernels with",
      "# Each kernel the driver calls is compiled once, on import, and called by symbol",
      "# (named after this file's kernels: two exported trainers never share a symbol).",
      f"_LINKED = _LinkScope(__name__='symgrad_export_{tag}', LINK=LINK,",
      "                     **{name: globals()[name] for name in LINK})")
    for name in used:
        local = "_part_call" if name == "_part" else name
        s(f"{local} = linked(_LINKED, {name!r}, LINK_DTYPE)")
    s("", "")
    return s.text()


def expression_symbols() -> tuple[sp.Symbol, ...]:
    """The canonical symbols a kernel loop binds (z, a, p, y, lse)."""
    return (Z, A, P, Y, LSE)
