"""Batches split into parts, one per core: the split epoch.

`split_epoch_fn` writes an epoch that cuts each batch into up to ``parts`` parts
and runs them side by side in one ``prange`` loop; `part_fn` writes ``_part``, the whole
forward, output and backward pass of one part's rows, in that part's own workspaces
and gradients (carved from row q of two buffers). The parts' gradients are summed,
weighted by rows, before the update. See ``docs/design.md``, "Two cores".

Image-layer drivers always split (their ``_epoch`` is the split one). A Dense-only
driver keeps its serial ``_epoch`` (the SGD step fused into the GEMMs) and carries
``_epoch_split`` beside it, which the API calls only for batches big enough to gain
(`dense_parts`); the kernels only the split epoch calls are linked lazily, so an MLP
that never splits never compiles them.
"""

from __future__ import annotations

from symgrad.codegen import dense_layers, elementwise_kernels
from symgrad.codegen.layout import KernelLayout, batch_rows, logits, output_keys
from symgrad.codegen.source_text import JIT as _JIT
from symgrad.codegen.source_text import Src as _Src
from symgrad.codegen.source_text import cited as _cited

__all__ = ["splits_batches", "has_split_epoch", "part_fn", "part_link", "part_call_lines",
           "split_epoch_fn", "ensure_split_fn"]


# A split batch's parts run in one prange loop; every other parallel rewrite of Numba is
# off (np.zeros fills, array expressions and reductions stay serial, as written).
_PARALLEL_JIT = _JIT + (', parallel={"comprehension": False, "reduction": False, '
                        '"inplace_binop": False, "setitem": False, "numpy": False, '
                        '"stencil": False, "fusion": False}')


def splits_batches(lay: KernelLayout) -> bool:
    """Whether the driver splits each batch into parts, one per core (`part_fn`).

    Image models: their pooling, im2col and activation loops are single-threaded
    and most of an epoch, so a GEMM's own threads leave a core idle. An MLP's epoch is
    mostly GEMMs (and their SGD step fused into them), which BLAS already spreads.
    """
    return bool(lay.features)


def has_split_epoch(lay: KernelLayout) -> bool:
    """Whether a Dense-only driver carries ``_epoch_split`` beside its serial ``_epoch``.

    An MLP's GEMMs spread over BLAS's threads, but its activation, output and update
    loops run on one core: at medium sizes a GELU network spends a fifth of its epoch
    there (issue 8). Split, each part runs them on its own core; the API splits only
    where the probe measured a gain (`dense_parts`).
    """
    return not lay.features


def _part_spaces(lay: KernelLayout) -> list[tuple[str, str, str | None, str]]:
    """Every workspace of one part as (name, rows of its view, columns or None for a
    vector, elements it takes), in the order `_part` carves them out of one buffer.

    Sizes are expressions in G, LT and ``rows`` (the part's allocated rows); a view's
    rows use ``m`` (the rows it holds now). The per-part workspaces are one buffer so
    that the prange loop of `split_epoch_fn` passes a few arrays: Numba's parfor
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


def part_fn(s: _Src, lay: KernelLayout) -> None:
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
    logits(s)
    s(_cited("loss, correct = _output(ZL, ys, DL, P, True)", *output_keys(lay)))
    s("_backward(" + ", ".join(["xs"] + head + fwd + deltas + grads + ["ab"]) + ")")
    s("return loss, correct")
    s.dedent()
    s("", "")


def part_link(lay: KernelLayout) -> str:
    """`_part`'s argument types as a ``LINK`` entry (`linked_calls`): X, Y and G only read."""
    params = [f"A{len(shape)}" for f in lay.features for _, shape in f.param_shapes]
    return " ".join(["a2", "a2", "i", "i", "i", "i", "i2"] + params
                    + ["A1", "i2", "A2", "A2", "A3", "A2", "b"])


def part_call_lines(lay: KernelLayout) -> str:
    """The driver's tail binding ``_part_call``: `_part` called by symbol (compiled once in
    its own library; linked into _epoch and into the gufunc of its prange loop instead,
    its code, with _forward's and _backward's, was optimised again in each). Lazily for
    a Dense-only driver's ``_epoch_split`` (`_ensure_split` links it before the first call)."""
    if not (splits_batches(lay) or has_split_epoch(lay)):
        return ""
    lazy = ", lazy=True" if has_split_epoch(lay) else ""
    return ("import sys as _sys  # noqa: E402\n\n"
            f"LINK = {{'_part': {part_link(lay)!r}}}\n"
            f"_part_call = linked(_sys.modules[__name__], '_part', LINK_DTYPE{lazy})\n")


def ensure_split_fn(lazy: list[str]) -> str:
    """``_ensure_split``: link the kernels only ``_epoch_split`` calls (``lazy``, their local
    names), compiling or loading each once. The API calls it before ``_epoch_split``: a
    cached ``_epoch_split`` is loaded without being typed, so nothing else would."""
    names = ", ".join(lazy) + ("," if len(lazy) == 1 else "")
    return ("\n\ndef _ensure_split():\n"
            '    """Compile or load, once, the kernels only _epoch_split calls (linked lazily: a\n'
            '    model whose batches never split never compiles them)."""\n'
            f"    for call in ({names}):\n"
            "        call.ensure()\n")


def split_epoch_fn(s: _Src, lay: KernelLayout, optimizer, name: str = "_epoch") -> None:
    """``_epoch`` (or ``name``) of a driver that splits each batch into ``parts`` (one per core).

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
    s(f"@njit({_PARALLEL_JIT})", f"def {name}({args}):")
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
    batch_rows(s)
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
