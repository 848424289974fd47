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

* ``_mm``/``_mm_tn``/``_mm_nt``: out = alpha*A@B + beta*out, A.T@B, A@B.T, always
  through BLAS, no operand copied (`symgrad.codegen.gemm_module`, which writes the
  shared GEMM module).
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
  loss and accuracy sums) in one njit call; workspaces allocated once. With image
  layers each batch splits into parts, one per core (`symgrad.codegen.split_batches`).

The names and sizes of the driver's arrays come from `symgrad.codegen.layout`.

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
from collections.abc import Callable

import sympy as sp

from symgrad.codegen import (
    dense_layers,
    elementwise_kernels,
    feature_layers,
    libraries,
    vecmath,
)
from symgrad.codegen.api_source import API as _API
from symgrad.codegen.checks import LOGISTIC_LOSSES
from symgrad.codegen.elementwise_kernels import dtype_cast as _cast
from symgrad.codegen.gemm_module import GEMM_LINKS, _gemm_header, _gemm_helpers, gemm_source
from symgrad.codegen.layout import (
    KernelLayout,
    activation_key,
    batch_pass_jit,
    batch_rows,
    is_classification,
    logits,
    output_keys,
)
from symgrad.codegen.source_text import JIT as _JIT
from symgrad.codegen.source_text import Src as _Src
from symgrad.codegen.source_text import cited as _cited
from symgrad.codegen.split_batches import (
    ensure_split_fn,
    has_split_epoch,
    part_call_lines,
    part_fn,
    part_link,
    split_epoch_fn,
    splits_batches,
)
from symgrad.definition.formulas import A, P, Y, Z
from symgrad.definition.names import source_comment_text
from symgrad.derive.plan import (
    LOSS_KEY,
    LSE,
    PREDICTION_KEY,
    UPDATE_KEY,
    NetworkPlan,
)
from symgrad.simplify.op_count import evaluation_cost

__all__ = ["generate_module_source", "kernel_sources", "layers_source"]

# Rows per chunk in predict/evaluate: bounds workspace memory for big X.
PREDICT_CHUNK = 1024


def _forward_fn(s: _Src, lay: KernelLayout, dtype: str) -> None:
    args = ", ".join(["X", "G"] + lay.fparams + ["theta", "LT"] + lay.forward_arrays() + ["ab"])
    s(f"@njit({batch_pass_jit(lay)})", f"def _forward({args}):",
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
    s(f"@njit({batch_pass_jit(lay)})", f"def {name}({', '.join(args)}):",
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
    s(f"@njit({batch_pass_jit(lay)})", f"def _update({args}):",
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


def _epoch_fn(s: _Src, lay: KernelLayout, optimizer, fused: bool) -> None:
    if splits_batches(lay):
        part_fn(s, lay)
        split_epoch_fn(s, lay, optimizer)
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
    batch_rows(s)
    fwd_arrays = [lay.view(n) for n in lay.forward_arrays()]
    s("_forward(" + ", ".join(["xb", "G"] + lay.fparams + ["theta", "LT"] + fwd_arrays + ["ab"])
      + ")")
    logits(s)
    s(_cited("batch_loss, batch_correct = _output(ZL, yb, DL, P[:m], True)", *output_keys(lay)))
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
    logits(s)
    s(_cited("loss, _ = _output(ZL, Y, DL, P, True)", *output_keys(lay)))
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
        used = {activation_key(layer.activation) for layer in plan.layers[:-1]}
        acts = [act.name for key, (_, act) in KernelLayout(plan).activations.items()
                if key in used]
        parts.append(f"dense layers ({', '.join(acts) or 'no activation'})")
        parts.append(f"dense({plan.output.activation_name})")
    for layer in plan.layers if widths else ():
        act = layer.activation.name if layer.activation else plan.output.activation_name
        parts.append(f"{layer.out_dim}({act})")
    # Pasted into the module docstring: only characters inert there (names are data).
    return source_comment_text("-".join(parts) + f", loss {plan.output.loss_name}")


def layers_source() -> str:
    """Source of the shared module of image-layer loops (one for every dtype and size)."""
    head = '"""symgrad image-layer loops (shape-generic; see symgrad.codegen.layer_kernels)."""'
    return (head + "\n\n" + libraries.layer_loops_source()
            + f"\nLINK = {libraries.LAYER_LINKS!r}  # the argument types drivers call them with\n")


def _fused(plan: NetworkPlan, optimizer, cast: str) -> bool:
    # The SGD step fused into the dW GEMMs covers Dense layers; with image layers every
    # gradient goes through the buffers and the written update loop.
    return getattr(optimizer, "fused_gemm", lambda cast: None)(cast) is not None \
        and not plan.features


def _shared_pieces(lay: KernelLayout, dtype: str, optimizer
                   ) -> list[tuple[str, str, Callable[[], str], str, dict[str, str]]]:
    """(stem, title, body, prefix, links) of every shared piece the driver calls.

    ``body()`` writes the piece's source, unprefixed (only `kernel_sources` needs it);
    ``prefix`` is the name the driver calls an activation's functions under (``a0_``),
    empty for the output and optimizer pieces; ``links`` the argument types the driver
    calls each function with (`linked_calls`: across modules, or within an export).
    """
    plan = lay.plan
    pieces = [("act", f"activation {act.name}",
               lambda act=act: elementwise_kernels.activation_body(act, dtype), prefix,
               elementwise_kernels.activation_links(act))
              for prefix, act in lay.activations.values()]
    out = plan.output
    pieces.append(("output", f"output {out.activation_name} + loss {out.loss_name}",
                   lambda: elementwise_kernels.output_body(out, dtype, is_classification(plan)),
                   "", elementwise_kernels.OUTPUT_LINKS))
    # Also where the SGD step is fused into the GEMMs: a split epoch (`_epoch_split`) sums
    # the parts' gradients first, then steps with the written rule.
    pieces.append(("opt", f"optimizer {optimizer.key}",
                   lambda: elementwise_kernels.optimizer_body(optimizer, dtype), "",
                   elementwise_kernels.optimizer_links(optimizer)))
    return pieces


def _driver(plan: NetworkPlan, dtype: str, optimizer) -> tuple[str, str]:
    """The per-model njit functions: (main, split), where ``split`` holds what only a
    Dense-only driver's ``_epoch_split`` calls (its kernels are linked lazily), or "".
    """
    lay = KernelLayout(plan)
    cast = _cast(dtype)
    s = _Src()
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
    if not has_split_epoch(lay):
        return s.text(), ""
    split = _Src()
    if fused:   # the split epoch sums the parts' gradients, then steps
        _update_fn(split, lay, optimizer)
    part_fn(split, lay)
    split_epoch_fn(split, lay, optimizer, "_epoch_split")
    return s.text(), split.text()


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
      "# Whether _epoch splits each batch into parts, one per core (takes a parts count),",
      "# and whether the driver has _epoch_split beside a serial _epoch (Dense layers only).",
      f"SPLITS_BATCHES = {splits_batches(lay)}", f"SPLIT_EPOCH = {has_split_epoch(lay)}",
      "# Special-function evaluations (forward + derivative) of each activation branch of LT:",
      "# the loop work a split spreads over the cores (see dense_parts).",
      f"ACTIVATION_COST = {_activation_costs(lay)!r}",
      f"REDUCTION = {plan.output.reduction!r}",
      f"LOGISTIC_TARGETS = {plan.output.loss_name.lower() in LOGISTIC_LOSSES}",
      f"PREDICT_CHUNK = {chunk}",
      "# Image layers' (C_in, H_in, W_in, C_out, OH, OW), one row each: the driver reads",
      "# every image size from here (an MLP has none).",
      f"GEOMETRY = np.array({feature_layers.geometry(plan.features)!r}, dtype=np.int64)"
      ".reshape(-1, 6)", "", "")
    return s.text()


def _activation_costs(lay: KernelLayout) -> tuple[int, ...]:
    """Each activation branch's `evaluation_cost` (forward + derivative), in code order."""
    return tuple(evaluation_cost(act.stable_forward) + evaluation_cost(act.kernel_derivative)
                 for _, act in lay.activations.values())


_DRIVER_NAMES = ("_forward", "_backward", "_epoch", "_predict", "_loss_and_grads")


def _calls(text: str, name: str) -> bool:
    """Whether the source ``text`` calls ``name``."""
    return re.search(rf"\b{re.escape(name)}\(", text) is not None


def _linked_imports(module: str, alias: str, names: dict[str, str], body: str,
                    split: str, lazy: list[str]) -> list[str]:
    """Lines binding each ``local: kernel`` of ``module`` that the driver calls to a call by
    symbol (`linked_calls`): those ``body`` calls when the driver is imported, those only
    ``split`` (``_epoch_split``) calls lazily, their locals appended to ``lazy``; kernels
    the driver never calls are not compiled."""
    used = {local: kernel for local, kernel in names.items() if _calls(body, local)}
    later = {local: kernel for local, kernel in names.items()
             if local not in used and _calls(split, local)}
    if not used and not later:
        return []
    lazy += later
    return ([f"import {module} as {alias}"]
            + [f'{local} = linked({alias}, "{kernel}", LINK_DTYPE)'
               for local, kernel in used.items()]
            + [f'{local} = linked({alias}, "{kernel}", LINK_DTYPE, lazy=True)'
               for local, kernel in later.items()])


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
    body, split = _driver(plan, dtype, optimizer)
    lazy: list[str] = []
    gemm = gemm_source(dtype, cblas)
    gemm_name = module_name(gemm, "gemm")
    sources = [("gemm", gemm)]
    imports = ["import math  # noqa: F401", "", "import numpy as np", "from numba import njit",
               "from numba import prange  # noqa: F401",
               "", f"from {gemm_name} import BLAS_PINNED, LINK_DTYPE, _add_bias, _dense_view, "
               "_mm, _mm_nt, _mm_tn, _pin_blas, _sum_parts, linked  # noqa: F401",
               "# Shared kernels are called by symbol: compiled once in their own modules, not",
               "# copied into this one (symgrad/codegen/linked_calls.py).", ""]
    imports += _linked_imports(gemm_name, "_k_gemm", {f: f for f in GEMM_LINKS}, body,
                               split, lazy)
    if plan.features:
        layers = layers_source()
        sources.append(("layers", layers))
        plain = [f for f in libraries.LAYER_FUNCTIONS if f not in libraries.LAYER_LINKS]
        imports.append(f"from {module_name(layers, 'layers')} import "
                       f"{', '.join(plain)}  # noqa: F401")
        imports += _linked_imports(module_name(layers, "layers"), "_k_layers",
                                   {f: f for f in libraries.LAYER_LINKS}, body, split, lazy)
    output_module = None
    for k, (stem, title, source_body, p, links) in enumerate(
            _shared_pieces(lay, dtype, optimizer)):
        source = elementwise_kernels.shared_module_source(title, source_body(), dtype, links)
        sources.append((stem, source))
        name = module_name(source, stem)
        output_module = name if stem == "output" else output_module
        imports += _linked_imports(name, f"_k_{stem}{k}", {p + f: f for f in links}, body,
                                   split, lazy)
    head = [f'"""symgrad driver: {_describe(plan, widths=False)}; {dtype}; '
            f'optimizer {optimizer.key}.', "",
            "The per-model njit functions; every formula lives in the shared modules it",
            'imports, and every width and image size is read from the arrays."""', ""]
    driver = "\n".join(head + imports + [""]) + "\n" + body + split + part_call_lines(lay)
    names = list(_DRIVER_NAMES)
    names.insert(3, "_backward_step" if _fused(plan, optimizer, _cast(dtype)) else "_update")
    if has_split_epoch(lay):
        driver += ensure_split_fn(lazy + ["_part_call"])
        names += ["_epoch_split", "_ensure_split"]
    sources.append(("driver", driver))
    api = "\n".join([
        f'"""symgrad kernels: {_describe(plan)}; {dtype}; optimizer {optimizer.key}.', "",
        "The model's shapes, the argument checks and the NumPy-level API; the compiled",
        'functions are imported from its driver."""', "", "import numpy as np", "",
        f"from {module_name(driver, 'driver')} import BLAS_PINNED, {', '.join(names)}"
        "  # noqa: F401",
        f"from {output_module} import _output  # noqa: F401",
        f"from {gemm_name} import _count_nonfinite, _fill_one_hot  # noqa: F401", "", ""])
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
          f"from {gemm_module} import BLAS_PINNED, _add_bias, _column_sums, "
          "_count_nonfinite, _dense_view, _fill_one_hot, _mm, _mm_nt, _mm_tn, _pin_blas, "
          "_sum_parts"
          "  # noqa: F401", "")
    else:
        _gemm_header(s, dtype)
        s(f"DTYPE = np.{dtype}", "")
        _gemm_helpers(s)
    if plan.features:
        s("# ---- image-layer loops (symgrad's codegen/layer_kernels.py) ----",
          libraries.layer_loops_source().rstrip("\n"), "# ---- end of image-layer loops ----",
          "", "")
    s("f32 = np.float32", "f64 = np.float64", f"DTYPE = np.{dtype}", "")
    for prefix, act in lay.activations.values():
        s(f"# ---- activation {source_comment_text(act.name)} ----",
          elementwise_kernels.activation_body(act, dtype, prefix).rstrip("\n"), "", "")
    s(elementwise_kernels.output_body(plan.output, dtype, is_classification(plan)).rstrip("\n"),
      "", "")
    s(elementwise_kernels.optimizer_body(optimizer, dtype).rstrip("\n"), "", "")
    body, split = _driver(plan, dtype, optimizer)
    kernels = s.text() + body + split
    return (kernels + _export_links(lay, dtype, optimizer, body, split, kernels)
            + _constants(plan, dtype, optimizer) + _API)


def _export_links(lay: KernelLayout, dtype: str, optimizer, body: str, split: str,
                  kernels: str) -> str:
    """An exported trainer's calls by symbol: the kernels its driver ``body`` calls, as
    `kernel_sources` links them across modules (`linked_calls`), here within one module;
    those only the ``split`` epoch calls lazily, as there.

    Without them Numba optimises the code of every kernel again inside each function
    that calls it: a CNN trainer's first epoch compiled for 101 s instead of ~40 s. The
    symbols are named after a hash of the ``kernels`` text, which keeps two exported
    trainers loaded in one process apart (a module name can repeat; this text cannot
    differ under one hash).
    """
    plan = lay.plan
    links = dict(GEMM_LINKS)
    if plan.features:
        links.update(libraries.LAYER_LINKS)
    for _, _, _, prefix, piece_links in _shared_pieces(lay, dtype, optimizer):
        links.update({prefix + f: tokens for f, tokens in piece_links.items()})
    used = {name: tokens for name, tokens in links.items() if _calls(body, name)}
    lazy = [name for name in links if name not in used and _calls(split, name)]
    used.update({name: links[name] for name in lazy})
    if splits_batches(lay) or has_split_epoch(lay):
        used["_part"] = part_link(lay)   # last: its compile sees the others linked
        lazy += ["_part"] if has_split_epoch(lay) else []
    tag = hashlib.sha256(kernels.encode("utf-8")).hexdigest()[:16]
    s = _Src()
    s("# ---- calls by symbol (symgrad's codegen/linked_calls.py) ----",
      libraries.linked_calls_source().rstrip("\n"), "# ---- end of calls by symbol ----", "",
      "from types import SimpleNamespace as _LinkScope  # noqa: E402", "",
      f"LINK_DTYPE = _ln_types.{dtype}",
      f"LINK = {used!r}  # the argument types the driver calls these kernels with",
      "# Each kernel the driver calls is compiled once, on import, and called by symbol",
      "# (named after this file's kernels: two exported trainers never share a symbol).",
      f"_LINKED = _LinkScope(__name__='symgrad_export_{tag}', LINK=LINK,",
      "                     **{name: globals()[name] for name in LINK})")
    for name in used:
        local = "_part_call" if name == "_part" else name
        s(f"{local} = linked(_LINKED, {name!r}, LINK_DTYPE" + (", lazy=True)" if name in lazy
                                                                 else ")"))
    if has_split_epoch(lay):
        s(ensure_split_fn(["_part_call" if name == "_part" else name for name in lazy]))
    s("", "")
    return s.text()


def expression_symbols() -> tuple[sp.Symbol, ...]:
    """The canonical symbols a kernel loop binds (z, a, p, y, lse)."""
    return (Z, A, P, Y, LSE)
