"""Emit the Dense chain as one loop over the layers: a driver that fits every depth.

A model's Dense layers are run by a loop that reads each layer's sizes and places from
a layout table ``LT`` (one row per layer, `LAYOUT_COLUMNS`), so the driver's source,
and hence its compiled code, depends only on *which* activations the model uses (one
branch each), the output + loss, the optimizer and the image layers in front: two MLPs
that differ in widths or depth share one driver, compiled once (in any process, through
the disk cache).

Every Dense parameter lives in one flat buffer ``theta`` (W0, b0, W1, b1, ... in the
model's parameter order; ``gtheta`` holds the gradients in the same places, the
optimizer state is ``S[k]`` per state). A layer's weights are the view
``_dense_view(theta, w_at, n_in, n_out)``; its bias ``theta[b_at:b_at + n_out]``
(``b_at`` < 0: no bias). Activations, saved z and errors of all layers share three
buffers (``Abuf``, ``Zbuf``, ``Dbuf``); layer l's block of a batch of m rows starts at
``m * LT[l, 5]``. The last layer's block holds the logits.

Equation keys: a loop statement implements the equation of every layer, so it cites the
layer-generic keys of `symgrad.derive.plan` (``[eq dW_l]``); the printout resolves each
layer's equation to them.
"""

from __future__ import annotations

from symgrad.codegen.source_text import cited
from symgrad.definition.names import source_comment_text
from symgrad.derive.plan import FEATURES_GRAD_KEY, UPDATE_KEY, generic_dense_key

__all__ = ["LAYOUT_COLUMNS", "layout", "emit_forward", "emit_backward", "saves_any_z"]

#: The columns of ``LT``: inputs, outputs, W's offset in theta, b's (-1: none), the
#: activation's branch (-1: none, the output layer), the layer's block in the buffers
#: (in rows of the batch: the sum of the widths before it).
LAYOUT_COLUMNS = ("n_in", "n_out", "w_at", "b_at", "activation", "block")


def layout(plan, activation_code) -> tuple[list[list[int]], list[tuple[int, tuple[int, ...]]]]:
    """(LT rows, (offset, shape) of each Dense parameter in theta, in parameter order)."""
    rows, slots, at, block = [], [], 0, 0
    for layer in plan.layers:
        w_at = at
        slots.append((w_at, (layer.in_dim, layer.out_dim)))
        at += layer.in_dim * layer.out_dim
        b_at = -1
        if layer.bias:
            b_at = at
            slots.append((b_at, (layer.out_dim,)))
            at += layer.out_dim
        code = -1 if layer.activation is None else activation_code(layer.activation)
        rows.append([layer.in_dim, layer.out_dim, w_at, b_at, code, block])
        block += layer.out_dim
    return rows, slots


def saves_any_z(lay) -> bool:
    """True if some Dense activation's derivative reads z (then Zbuf is used)."""
    return any(layer.activation is not None and "z" in layer.activation.saved
               for layer in lay.layers[:-1])


def _hidden_activations(lay):
    """(code, prefix, plan) of each activation a hidden Dense layer uses."""
    used = {lay.code(layer.activation) for layer in lay.layers[:-1]}
    return [(code, prefix, act) for code, (prefix, act) in enumerate(lay.activations.values())
            if code in used]


def _unpack(s, row: str = "l") -> None:
    s(f"n_in, n_out = LT[{row}, 0], LT[{row}, 1]",
      f"w_at, b_at = LT[{row}, 2], LT[{row}, 3]",
      f"at = m * LT[{row}, 5]",
      "W = _dense_view(theta, w_at, n_in, n_out)")


def emit_forward(s, lay, source: str) -> None:
    """Z = src @ W (+ b), then the layer's activation, for every Dense layer in turn."""
    z = generic_dense_key("Z")
    s("# Dense layers, one loop for any depth; layer l's sizes and places are LT[l].",
      f"src = {source}",
      "for l in range(LT.shape[0]):")
    s.indent()
    _unpack(s)
    s("out = _dense_view(Abuf, at, m, n_out)",
      cited("_mm(src, W, out, ONE, ZERO, ab)", z),
      "act = LT[l, 4]")
    first = True
    for code, prefix, act in _hidden_activations(lay):
        zs = ", _dense_view(Zbuf, at, m, n_out)" if "z" in act.saved else ""
        # Only the variants the model has (a bias-free layer is rare): each one is code
        # to compile.
        biases = {layer.bias for layer in lay.layers[:-1] if lay.code(layer.activation) == code}
        with_bias = cited(f"{prefix}fwd_b(out, theta[b_at:b_at + n_out]{zs})", z)
        without = cited(f"{prefix}fwd(out{zs})", z)
        s(f"{'if' if first else 'elif'} act == {code}:  # {source_comment_text(act.name)}")
        if len(biases) == 2:
            s("    if b_at >= 0:", "        " + with_bias, "    else:", "        " + without)
        else:
            s("    " + (with_bias if True in biases else without))
        first = False
    s(f"{'if' if first else 'elif'} b_at >= 0:  # no activation (the output layer's logits)",
      "    " + cited("_add_bias(out, theta[b_at:b_at + n_out])", z),
      "src = out")
    s.dedent()


def emit_backward(s, lay, source: str, optimizer=None, cast: str = "") -> None:
    """From the output error in the last block down to layer 0: dA, dW, db, dZ per layer.

    With ``optimizer`` (a step fused into the GEMM, plain SGD) dW is accumulated straight
    into W (alpha = -lr, beta = 1 - lr*wd) after dA has read the old W, and each bias is
    stepped by the written rule right after its gradient.
    """
    hidden = _hidden_activations(lay)
    s("# Dense layers, last to first; D's block of layer l holds dL/dZ_l on entry.",
      "for l in range(LT.shape[0] - 1, -1, -1):")
    s.indent()
    _unpack(s)
    s("D = _dense_view(Dbuf, at, m, n_out)",
      f"src = {source}", "below = D", "if l > 0:")
    s.indent()
    s("under = m * LT[l - 1, 5]",
      "src = _dense_view(Abuf, under, m, n_in)",
      "below = _dense_view(Dbuf, under, m, n_in)")
    keys = [generic_dense_key("dA")]
    if any(act.derivative == 1 for _, _, act in hidden):
        keys.append(generic_dense_key("dZ"))   # identity below: this product is dZ too
    # dA before the (possibly fused) update: it must see the old W.
    s(cited("_mm_nt(D, W, below, ONE, ZERO, ab)", *keys))
    s.dedent()
    if optimizer is not None:
        s(cited("_mm_tn(src, D, W, alpha, beta, ab)", generic_dense_key("dW"), UPDATE_KEY,
                note="W = beta*W + alpha*dW"))
    else:
        s(cited("_mm_tn(src, D, _dense_view(gtheta, w_at, n_in, n_out), ONE, ZERO, ab)",
                generic_dense_key("dW")))
    s("if b_at >= 0:")
    s("    " + cited("_column_sums(D, gtheta[b_at:b_at + n_out])", generic_dense_key("db")))
    if optimizer is not None:
        s("    " + cited("for k in range(b_at, b_at + n_out):", UPDATE_KEY),
          "        w = theta[k]", "        g = gtheta[k]",
          *["        " + line for line in optimizer.update()], "        theta[k] = w")
    derivatives = [(code, prefix, act) for code, prefix, act in hidden if act.derivative != 1]
    if derivatives:
        s("if l > 0:")
        s.indent()
        s("act = LT[l - 1, 4]")
        for k, (code, prefix, act) in enumerate(derivatives):
            saved = "_dense_view(Zbuf, under, m, n_in)" if "z" in act.saved else "src"
            s(f"{'if' if k == 0 else 'elif'} act == {code}:  # {source_comment_text(act.name)}'"
              f"(z), as derived: {source_comment_text(act.derivative)}",
              "    " + cited(f"{prefix}bwd(below, src, {saved})", generic_dense_key("dZ")))
        s.dedent()
    s.dedent()


def emit_features_error(s, target: str) -> None:
    """dF = dZ_0 @ W0.T: the first Dense layer's error passed back to the image layers."""
    s("m0, n0 = LT[0, 0], LT[0, 1]",
      cited(f"_mm_nt(_dense_view(Dbuf, 0, m, n0), _dense_view(theta, LT[0, 2], m0, n0), "
            f"{target}, ONE, ZERO, ab)", FEATURES_GRAD_KEY,
            note="dF = dZ @ W0.T: into the image layers"))
