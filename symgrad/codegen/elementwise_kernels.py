"""The printed elementwise kernels, one shared module per formula: activations, output, optimizer.

Each function here takes its sizes from the arrays it is given, so its source
depends only on the formula (and the dtype), never on a model's widths or depth:
one module per (activation, dtype), per (output activation + loss, dtype) and per
(optimizer, dtype), written to the cache and compiled once, in any process, for
every model that uses it. The per-model driver (`symgrad.codegen.kernels`) only
calls them.

* activation ``a``: ``fwd_b(Z, b[, Zs])`` adds the bias and applies f in place
  (saving z where the derivative reads it), ``fwd_cb`` the same with one bias per row
  (a convolution's channel-major map), ``fwd(Z[, Zs])`` the same without a bias,
  ``bwd(D, A, Zs)`` multiplies D by the derived f'(a or z);
* output: ``_output(ZL, Yb, D, P, want_delta)``, the fused output activation +
  loss (prediction, stable loss from the logits, delta = scale * dL/dz, correct
  count); D must have a row per batch row (it is scratch when no delta is wanted);
* optimizer: ``_prologue(H, t, Hs)`` (the step's scalars, e.g. Adam's bias
  corrections, once per step) and ``_step(w, g, states..., Hs)``, the written update
  rule over a parameter's flat view.

An exported trainer carries the same bodies inline, with a prefix per activation.
"""

from __future__ import annotations

import re

import sympy as sp

from symgrad.codegen import vecmath
from symgrad.codegen.printer import print_expr
from symgrad.codegen.source_text import KERNEL_JIT, Src
from symgrad.definition.formulas import A, P, Y, Z
from symgrad.definition.names import source_comment_text
from symgrad.derive.plan import LSE, SUMEXP, ZMAX, ActivationPlan, OutputPlan

__all__ = ["activation_body", "output_body", "optimizer_body", "shared_module_source",
           "ACTIVATION_FUNCTIONS", "activation_links", "optimizer_links", "OUTPUT_LINKS"]

ACTIVATION_FUNCTIONS = ("fwd_b", "fwd_cb", "fwd", "bwd")


def dtype_cast(dtype: str) -> str:
    """The generated modules' name for a cast to ``dtype`` (``f32(...)`` or ``f64(...)``)."""
    return "f32" if dtype == "float32" else "f64"


def saves_z(act: ActivationPlan) -> bool:
    return "z" in act.saved


def activation_body(act: ActivationPlan, dtype: str, prefix: str = "") -> str:
    """``{prefix}fwd_b``, ``{prefix}fwd`` and ``{prefix}bwd`` of one activation."""
    s = Src()
    name = source_comment_text(act.name)
    zs = ", Zs" if saves_z(act) else ""
    forward = print_expr(act.stable_forward, {Z: "z"}, dtype)
    # f over the whole contiguous batch, one flat loop (z saved first where f' reads it)
    flat_loop = ["    z_ = Z.reshape(Z.size)", *(["    zs_ = Zs.reshape(Zs.size)"] if zs else []),
                 "    for k in range(z_.size):", "        z = z_[k]",
                 *(["        zs_[k] = z"] if zs else []), f"        z_[k] = {forward}", "", ""]

    def row_loop(bias: str, row_start: tuple[str, ...] = ()) -> list[str]:
        """Bias + f fused in one loop over each row (z saved where f' reads it)."""
        return ["    for i in range(Z.shape[0]):", *("        " + line for line in row_start),
                "        for j in range(Z.shape[1]):", f"            z = Z[i, j] + {bias}",
                *(["            Zs[i, j] = z"] if zs else []), f"            Z[i, j] = {forward}",
                "", ""]
    s(f"@njit({KERNEL_JIT})", f"def {prefix}fwd_b(Z, b{zs}):",
      f'    """Z = {name}(Z + b) in place' + (", z saved in Zs" if zs else "") + '."""')
    if re.search(r"\b(vm_\w+|math\.\w+)\(", forward):
        # f calls a function: it runs as one flat loop over the contiguous batch, the bias
        # added row by row first. LLVM vectorises a row loop of run-time length for whole
        # vectors only and leaves the rest to scalar code, so a Dense layer whose width is
        # not a multiple of the vector (12, or 100 in float64) ran tanh scalar, 2-5x slower
        # than flat (measured on rows of 4: 2304 x 4 tanh, 15.6 -> 6-8 us); the extra pass
        # costs 0-5 % where the rows were whole vectors.
        s("    for i in range(Z.shape[0]):", "        for j in range(Z.shape[1]):",
          "            Z[i, j] += b[j]", *flat_loop)
    else:
        # Arithmetic and selects only (ReLU): scalar remainder code is cheap, a second
        # pass is not (ReLU on 36864 rows of 8, float64: 48 us fused, 93 us in two passes).
        s(*row_loop("b[j]"))
    # An image map is channel-major (C, H*W*m): the bias is one value per row, and the
    # rows are long, so one fused loop per row vectorises for every f.
    s(f"@njit({KERNEL_JIT})", f"def {prefix}fwd_cb(Z, b{zs}):",
      f'    """Z[c] = {name}(Z[c] + b[c]) in place, per channel row'
      + (", z saved in Zs" if zs else "") + '."""', *row_loop("bi", ("bi = b[i]",)))
    s(f"@njit({KERNEL_JIT})", f"def {prefix}fwd(Z{zs}):",
      f'    """Z = {name}(Z) in place' + (", z saved in Zs" if zs else "") + '."""',
      *flat_loop)
    deriv = print_expr(act.kernel_derivative, {A: "a_[k]", Z: "zs_[k]"}, dtype)
    s(f"@njit({KERNEL_JIT})", f"def {prefix}bwd(D, A, Zs):",
      f"    \"\"\"D *= {name}'(z), as derived: {source_comment_text(act.kernel_derivative)}.\"\"\"",
      "    d_ = D.reshape(D.size)", "    a_ = A.reshape(A.size)", "    zs_ = Zs.reshape(Zs.size)",
      "    for k in range(d_.size):", f"        d_[k] *= {deriv}", "", "")
    return s.text()


def output_body(out: OutputPlan, dtype: str, classify: bool) -> str:
    """``_output``: the output activation + loss fused, for any batch and class count.

    Written as passes without a reduction or a branch inside, so LLVM vectorises them:
    one computes p (into P) and each element's loss (into D, used as scratch), then a
    plain loop sums the losses (a float sum in order: a reduction LLVM may not reorder),
    then, for training, one computes D = scale * delta from the stored p. Elementwise
    heads run each pass over the whole batch as one flat loop (a sigmoid head has one
    column: a loop per row would have one iteration); softmax heads row by row.
    """
    cast = dtype_cast(dtype)
    # Softmax rows are evaluated from zmax and acc = sum exp(z - zmax), not through lse:
    # zmax + log(acc) rounds log(acc) away once the logits are large.
    symbols = {Z: "z", Y: "y", P: "p", LSE: "lse", ZMAX: "zmax", SUMEXP: "acc"}
    computed: dict[sp.Expr, str] = {}
    if out.kind == "softmax":
        # Values the row pass has computed already are read, not evaluated again: the
        # shifted exponential of each logit (stored in D) and the log of the row's sum
        # (once per row). One vectorised exp and a log per element fewer, and one
        # inlined copy less of each for Numba to type and LLVM to optimise.
        computed = {sp.exp(Z - ZMAX): "e", sp.log(SUMEXP): "log_acc"}
    pred = print_expr(out.evaluated_prediction, symbols, dtype, computed)
    loss = print_expr(out.evaluated_loss, symbols, dtype, computed)
    delta = print_expr(out.delta, symbols, dtype)   # its pass reads p; D holds losses then
    uses = {key for key in computed if out.evaluated_prediction.has(key)
            or out.evaluated_loss.has(key)}
    per = "rows" if out.reduction == "rows" else "elements"
    s = Src()
    s(f"@njit({KERNEL_JIT})", "def _output(ZL, Yb, D, P, want_delta):")
    s(f'    """{source_comment_text(out.activation_name)} + '
      f'{source_comment_text(out.loss_name)} fused: returns (loss sum over {per},'
      ' correct count); fills P (and D = scale * dL/dz; D is scratch otherwise)."""')
    s.indent()
    s("m = ZL.shape[0]", "k = ZL.shape[1]", "loss = 0.0", "correct = 0")
    scale = "1.0 / m" if out.reduction == "rows" else "1.0 / (m * k)"
    s(f"scale = {cast}({scale})")
    if out.kind == "softmax":
        exp, log = vecmath.function_name("exp", dtype), vecmath.function_name("log", dtype)
        # The shifted logits' exponentials in one flat pass over D: row by row, a row of
        # 10 classes is shorter than the vector loop and ran exp scalar (the row passes
        # left have no function call per element).
        row_max = ("zmax = ZL[i, 0]", "for j in range(1, k):", "    zmax = max(zmax, ZL[i, j])")
        s("for i in range(m):", *("    " + line for line in row_max),
          "    for j in range(k):", "        D[i, j] = ZL[i, j] - zmax",
          "Df = D.reshape(-1)", "for t in range(m * k):", f"    Df[t] = {exp}(Df[t])")
        s("for i in range(m):")
        s.indent()
        s(*row_max, f"acc = {cast}(0.0)", "for j in range(k):", "    acc += D[i, j]")
        if any(e.has(LSE) for e in (out.evaluated_prediction, out.evaluated_loss, out.delta)):
            s(f"lse = zmax + {log}(acc)")   # only plans still written through lse
        if sp.log(SUMEXP) in uses:
            s(f"log_acc = {log}(acc)")
        s("for j in range(k):",
          "    z = ZL[i, j]", "    y = Yb[i, j]",
          *(["    e = D[i, j]"] if sp.exp(Z - ZMAX) in uses else []),
          f"    p = {pred}", "    P[i, j] = p",
          f"    D[i, j] = {loss}",
          "for j in range(k):", "    loss += D[i, j]",
          "if want_delta:", "    for j in range(k):",
          "        z = ZL[i, j]", "        y = Yb[i, j]", "        p = P[i, j]",
          f"        D[i, j] = scale * ({delta})")
        if classify:  # one decision per row: argmax of the logits vs of the target
            s("best_z = 0", "best_y = 0", "for j in range(1, k):",
              "    if ZL[i, j] > ZL[i, best_z]:", "        best_z = j",
              "    if Yb[i, j] > Yb[i, best_y]:", "        best_y = j",
              "if best_z == best_y:", "    correct += 1")
        s.dedent()
    else:
        s("Zf = ZL.reshape(-1)", "Yf = Yb.reshape(-1)", "Pf = P.reshape(-1)",
          "Df = D.reshape(-1)", "size = m * k",
          "for e in range(size):",
          "    z = Zf[e]", "    y = Yf[e]", f"    p = {pred}", "    Pf[e] = p",
          f"    Df[e] = {loss}",
          "for e in range(size):", "    loss += Df[e]",
          "if want_delta:", "    for e in range(size):",
          "        z = Zf[e]", "        y = Yf[e]", "        p = Pf[e]",
          f"        Df[e] = scale * ({delta})")
        if classify:
            s("if k > 1:")   # one decision per row: argmax of the logits vs of the target
            s.indent()
            s("for i in range(m):", "    best_z = 0", "    best_y = 0",
              "    for j in range(1, k):", "        if ZL[i, j] > ZL[i, best_z]:",
              "            best_z = j", "        if Yb[i, j] > Yb[i, best_y]:",
              "            best_y = j", "    if best_z == best_y:", "        correct += 1")
            s.dedent()
            s("else:", "    for e in range(size):",
              "        correct += (Pf[e] > 0.5) == (Yf[e] > 0.5)")
    s("return loss, correct")
    s.dedent()
    s("", "")
    return s.text()


def prologue_names(optimizer) -> list[str]:
    """The scalars the optimizer's prologue binds (lr, beta1, bc1, ...), in order."""
    return [line.split("=", 1)[0].strip() for line in optimizer.prologue("f64")]


def optimizer_body(optimizer, dtype: str) -> str:
    """``_prologue`` (the step's scalars, once per step) and ``_step`` (one flat parameter)."""
    cast = dtype_cast(dtype)
    states = [f"s_{st}" for st in optimizer.state_names]
    names = prologue_names(optimizer)
    s = Src()
    # The prologue (bias corrections: two powers for Adam) runs once per step, not once
    # per parameter: _step reads its results from Hs.
    s(f"@njit({KERNEL_JIT})", "def _prologue(H, t, Hs):",
      f'    """{type(optimizer).__name__}: the step\'s scalars from H and t into Hs."""')
    s.indent()
    s(*optimizer.prologue(cast))
    s(*[f"Hs[{i}] = {name}" for i, name in enumerate(names)])
    s.dedent()
    s("", "")
    s(f"@njit({KERNEL_JIT})", f"def _step({', '.join(['w_', 'g_'] + states + ['Hs'])}):",
      f'    """{type(optimizer).__name__} step (written rule) on one parameter\'s flat view."""')
    s.indent()
    s(*[f"{name} = Hs[{i}]" for i, name in enumerate(names)])
    s("for k in range(w_.size):", "    w = w_[k]", "    g = g_[k]",
      *["    " + line for line in optimizer.update()], "    w_[k] = w")
    s.dedent()
    s("", "")
    return s.text()


def activation_links(act: ActivationPlan) -> dict[str, str]:
    """The argument types a driver calls each activation kernel with (its ``LINK``,
    see `symgrad.codegen.linked_calls`): batch matrices, a bias vector; lower case where
    the kernel only reads."""
    zs = " A2" if saves_z(act) else ""
    return {"fwd_b": "A2 a1" + zs, "fwd_cb": "A2 a1" + zs, "fwd": "A2" + zs, "bwd": "A2 a2 a2"}


OUTPUT_LINKS = {"_output": "a2 a2 A2 A2 b"}


def optimizer_links(optimizer) -> dict[str, str]:
    """``_prologue(H, t, Hs)`` (float64 hyperparameters, int64 step count) and
    ``_step`` over flat parameter, gradient and state views."""
    states = ["A1"] * len(optimizer.state_names)
    return {"_prologue": "f1 i1 A1", "_step": " ".join(["A1", "a1", *states, "a1"])}


def shared_module_source(title: str, body: str, dtype: str,
                         links: dict[str, str] | None = None) -> str:
    """A shared module: imports, the vectorisable math it may call, typed constants, body.

    ``links``: the ``LINK`` table (kernel name -> argument types) drivers link by."""
    s = Src()
    s(f'"""symgrad shared kernels: {source_comment_text(title)} ({dtype}).',
      "",
      "Generated from SymPy expressions; sizes come from the arrays, so every model",
      'using this formula shares this module (compiled once, cached on disk)."""', "",
      "import math  # noqa: F401", "", "import numpy as np", "from numba import njit", "",
      "# ---- vectorisable elementary functions (symgrad's vecmath module) ----",
      vecmath.kernel_source().rstrip("\n"), "# ---- end of vecmath ----", "", "",
      "f32 = np.float32", "f64 = np.float64", f"DTYPE = np.{dtype}",
      f"LINK = {links or {}!r}  # the argument types drivers call these kernels with", "", "")
    return s.text() + body
