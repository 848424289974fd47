"""Kernel emitters of the image layer kinds: what the generated driver calls per layer.

One emitter per registered layer kind (`symgrad.definition.layer_kinds`), keyed by
the kind's name; `tests/test_layer_kinds.py` asserts every kind has one. An emitter
declares its workspaces and writes the driver's lines for its forward and backward
pass. The loops themselves are shape-generic and shared
(`symgrad.codegen.layer_kernels`); the driver passes every size as an argument.
The activation after a layer is its shared kernel (`elementwise_kernels`), called
with the bias in the pass after the convolution's GEMM, exactly as for Dense layers.

Buffers are maps: m * H * W * C values, declared as (m * H * W, C) rows, holding the
channel-major (C, H*W*m) matrix `layer_kernels.lk_cm` views them as (CHWN, see
`layer_kernels`). In the names below ``j`` is the image layer's index: ``FA{j}`` its
output (after the activation), ``FZ{j}`` its saved pre-activation, ``FD{j}`` the
gradient of the loss w.r.t. its output (multiplied in place by the activation's
derivative), ``FC{j}`` a convolution's (K, R) im2col matrix (reused for dcols in the
backward pass), ``FS{j}`` its bias gradient's 16 partial sums, ``FP{j}`` a max
pooling's value per sample for its backward, ``FM{j}`` its maxima kept before an
activation that saves no z. ``FX`` is the input batch as a map.
A convolution's kernel ``CW{j}`` (PyTorch's (O, C, kh, kw)) and its gradient enter
the GEMMs as they are, seen as (O, C*kh*kw).
"""

from __future__ import annotations

import math

from symgrad.codegen.source_text import cited
from symgrad.definition.names import source_comment_text
from symgrad.derive.plan import FeaturePlan, feature_key

__all__ = ["EMITTERS", "Workspace", "workspaces", "emit_forward", "emit_backward",
           "feature_params"]

# (name, rows per sample or 0 for a fixed-size array, columns, fixed rows); sizes are
# expressions in G, the geometry array the driver receives: row j of G is image layer
# j's (C_in, H_in, W_in, C_out, OH, OW), so the driver's source holds no image size or
# channel count and a model that changes only those reuses its compiled driver.
Workspace = tuple[str, object, object, object]
GEOMETRY_COLUMNS = ("C_in", "H_in", "W_in", "C_out", "OH", "OW")


def geometry(features: tuple[FeaturePlan, ...]) -> list[tuple[int, ...]]:
    """Row j: image layer j's (C_in, H_in, W_in, C_out, OH, OW); Flatten: (C, H, W, CHW, 1, 1)."""
    rows = []
    for f in features:
        c, h, w = f.in_shape
        out = f.out_shape if len(f.out_shape) == 3 else (f.out_shape[0], 1, 1)
        rows.append((c, h, w, *out))
    return rows


def _cited(line: str, f: FeaturePlan, *what: str, note: str = "") -> str:
    """``line`` citing the printout's equations ``what`` of image layer ``f`` (plan keys)."""
    return cited(line, *(feature_key(f.name, w) for w in what), note=note)


def _g(j: int, column: str) -> str:
    return f"G[{j}, {GEOMETRY_COLUMNS.index(column)}]"


def feature_params(feature: FeaturePlan) -> list[str]:
    """Kernel variable names of a layer's parameters: CW0, Cb0, ..."""
    return [f"C{p}{feature.index}" for p, _ in feature.param_shapes]


def _out_rows(j: int) -> str:
    return f"{_g(j, 'OH')} * {_g(j, 'OW')}"


def _src(features: tuple[FeaturePlan, ...], j: int) -> str:
    return "FX" if j == 0 else f"FA{j - 1}"


def first_trained(features: tuple[FeaturePlan, ...]) -> int:
    """Index of the first image layer with parameters (len(features) if none).

    The backward pass stops there: below it no parameter needs an error, so the
    layer computes no dX and the layers under it do no backward work at all.
    """
    return next((f.index for f in features if f.param_shapes), len(features))


def _needs_dx(f: FeaturePlan, features: tuple[FeaturePlan, ...]) -> bool:
    return f.index > first_trained(features)


def _saves_z(feature: FeaturePlan) -> bool:
    return feature.activation is not None and "z" in feature.activation.saved


def _map_buffers(feature: FeaturePlan) -> list[Workspace]:
    j = feature.index
    rows, cols = _out_rows(j), _g(j, "C_out")
    out = [(f"FA{j}", rows, cols, 0)]
    if _saves_z(feature):
        out.append((f"FZ{j}", rows, cols, 0))
    return out


def _conv_buffers(feature: FeaturePlan) -> list[Workspace]:
    out = [(f"FC{feature.index}", _out_rows(feature.index), _k(feature), 0)]
    if feature.layer.bias:   # the bias gradient's partial sums (`lk_row_sums`, _LK_LANES)
        out.append((f"FS{feature.index}", 0, 16, 1))
    return out + _map_buffers(feature)


def _k(f: FeaturePlan) -> str:
    """A convolution's K = C_in * kh * kw: the rows of its im2col matrix."""
    return f"{_g(f.index, 'C_in')} * {f.layer.kernel[0] * f.layer.kernel[1]}"


def _cm(buffer: str, rows: str) -> str:
    """The channel-major (rows, ...) view of a workspace or kernel (`lk_cm`)."""
    return f"lk_cm({buffer}, {rows})"


def _window_args(feature: FeaturePlan) -> str:
    """m, H, W, C, kh, kw, sh, sw[, ph, pw], OH, OW as the shared loops take them.

    Sizes come from G; the kernel window, stride and padding (the layer's kind
    settings) are written in.
    """
    layer, j = feature.layer, feature.index
    pad = getattr(layer, "padding", None)
    pads = f", {pad[0]}, {pad[1]}" if pad is not None else ""
    return (f"m, {_g(j, 'H_in')}, {_g(j, 'W_in')}, {_g(j, 'C_in')}, {layer.kernel[0]}, "
            f"{layer.kernel[1]}, {layer.stride[0]}, {layer.stride[1]}{pads}, {_g(j, 'OH')}, "
            f"{_g(j, 'OW')}")


def _activation_pass(s, feature: FeaturePlan, prefix, bias: str | None) -> None:
    """The pass after a layer: add the bias (one per channel row), save z, apply the
    activation (shared kernels)."""
    j, act = feature.index, feature.activation
    if act is None:
        if bias is not None:
            s(_cited(f"lk_add_bias(FA{j}, {bias})", feature, "fwd"))
        return
    if bias is not None:
        rows = _g(j, "C_out")
        zs = f", {_cm(f'FZ{j}', rows)}" if _saves_z(feature) else ""
        s(_cited(f"{prefix(act)}fwd_cb({_cm(f'FA{j}', rows)}, {bias}{zs})", feature, "fwd",
                 "act"))
    else:
        zs = f", FZ{j}" if _saves_z(feature) else ""
        s(_cited(f"{prefix(act)}fwd(FA{j}{zs})", feature, "act"))


def _derivative_pass(s, feature: FeaturePlan, prefix) -> None:
    """FD{j} *= f'(z) of the layer's activation, as derived (in saved a or z)."""
    act, j = feature.activation, feature.index
    if act is None or act.derivative == 1:
        return
    saved = f"FZ{j}" if _saves_z(feature) else f"FA{j}"
    s(f"# {source_comment_text(act.name)}'(z), as derived: "
      f"{source_comment_text(act.derivative)}",
      _cited(f"{prefix(act)}bwd(FD{j}, FA{j}, {saved})", feature, "dZ"))


class _Conv:
    """Convolution as im2col + GEMM on channel-major maps: Z = W @ cols, dW = dZ @ cols.T,
    dcols = W.T @ dZ, with W the PyTorch kernel seen as (O, K) (`layer_kernels`)."""

    buffers = staticmethod(_conv_buffers)

    @staticmethod
    def forward(s, f: FeaturePlan, features, prefix) -> None:
        j, layer = f.index, f.layer
        o, k = _g(j, "C_out"), _k(f)
        s(_cited(f"lk_im2col({_src(features, j)}, {_window_args(f)}, FC{j})", f, "fwd"),
          _cited(f"_mm({_cm(f'CW{j}', o)}, {_cm(f'FC{j}', k)}, {_cm(f'FA{j}', o)}, ONE, ZERO, "
                 "ab)", f, "fwd"))
        _activation_pass(s, f, prefix, f"Cb{j}" if layer.bias else None)

    @staticmethod
    def backward(s, f: FeaturePlan, features, prefix) -> None:
        j, layer = f.index, f.layer
        o, k = _g(j, "C_out"), _k(f)
        _derivative_pass(s, f, prefix)
        s(_cited(f"_mm_nt({_cm(f'FD{j}', o)}, {_cm(f'FC{j}', k)}, {_cm(f'gCW{j}', o)}, ONE, "
                 "ZERO, ab)", f, "dW", note="dW = dZ @ cols.T (correlation)"))
        if layer.bias:
            s(_cited(f"lk_row_sums(FD{j}, gCb{j}, FS{j})", f, "db",
                     note="db = sum of dZ over n, i, j"))
        if _needs_dx(f, features):
            s(_cited(f"_mm_tn({_cm(f'CW{j}', o)}, {_cm(f'FD{j}', o)}, {_cm(f'FC{j}', k)}, ONE, "
                     "ZERO, ab)", f, "dX", note="dcols = W.T @ dZ"),
              _cited(f"lk_col2im(FC{j}, {_window_args(f)}, FD{j - 1})", f, "dX",
                     note="full convolution"))


def _pool_maxima(f: FeaturePlan) -> str:
    """The buffer that holds a max pooling's output before its activation, which its
    backward compares each window with: FA{j} without an activation, the saved z
    FZ{j} where the activation's derivative reads z, else FM{j}, a copy kept for it."""
    j = f.index
    if f.activation is None:
        return f"FA{j}"
    return f"FZ{j}" if _saves_z(f) else f"FM{j}"


class _Pool:
    def __init__(self, name: str) -> None:
        self.name = name

    def buffers(self, f: FeaturePlan) -> list[Workspace]:
        if self.name != "maxpool":
            return _map_buffers(f)
        # max pooling's backward: each sample's dY not yet routed (1 value per sample)
        out = [(f"FP{f.index}", 1, 1, 0)]
        if _pool_maxima(f).startswith("FM"):
            out.append((f"FM{f.index}", _out_rows(f.index), _g(f.index, "C_out"), 0))
        return out + _map_buffers(f)

    def forward(self, s, f: FeaturePlan, features, prefix) -> None:
        j = f.index
        s(_cited(f"lk_{self.name}({_src(features, j)}, {_window_args(f)}, FA{j})", f, "fwd"))
        if self.name == "maxpool" and _pool_maxima(f).startswith("FM"):
            s(_cited(f"lk_copy(FA{j}, FM{j})", f, "fwd", note="the maxima, for the backward"))
        _activation_pass(s, f, prefix, None)

    def backward(self, s, f: FeaturePlan, features, prefix) -> None:
        j = f.index
        _derivative_pass(s, f, prefix)
        if not _needs_dx(f, features):
            return
        if self.name == "maxpool":
            s(_cited(f"lk_maxpool_back({_src(features, j)}, {_pool_maxima(f)}, FD{j}, "
                     f"{_window_args(f)}, FD{j - 1}, FP{j})", f, "dX"))
        else:
            s(_cited(f"lk_avgpool_back(FD{j}, {_window_args(f)}, FD{j - 1})", f, "dX"))


class _Flatten:
    @staticmethod
    def buffers(f: FeaturePlan) -> list[Workspace]:
        return _map_buffers(f)

    @staticmethod
    def forward(s, f: FeaturePlan, features, prefix) -> None:
        j = f.index
        s(_cited(f"lk_map_to_rows({_src(features, j)}, FA{j})", f, "fwd"))

    @staticmethod
    def backward(s, f: FeaturePlan, features, prefix) -> None:
        j = f.index
        if _needs_dx(f, features):
            s(_cited(f"lk_rows_to_map(FD{j}, FD{j - 1})", f, "dX"))


EMITTERS: dict[str, object] = {"conv2d": _Conv(), "maxpool2d": _Pool("maxpool"),
                               "avgpool2d": _Pool("avgpool"), "flatten": _Flatten()}


def _emitter(kind: str):
    try:
        return EMITTERS[kind]
    except KeyError:
        raise NotImplementedError(f"layer kind {kind!r} has no kernel emitter in "
                                  "symgrad.codegen.feature_layers") from None


def workspaces(features: tuple[FeaturePlan, ...]) -> list[Workspace]:
    """Every buffer the image layers use, in a fixed order (input map first)."""
    if not features:
        return []
    out: list[Workspace] = [("FX", f"{_g(0, 'H_in')} * {_g(0, 'W_in')}", _g(0, "C_in"), 0)]
    for f in features:
        out += _emitter(f.kind).buffers(f)
    return out


def deltas(features: tuple[FeaturePlan, ...]) -> list[Workspace]:
    """The gradient buffer of each image layer's output, shaped like its FA."""
    out = []
    for f in features:
        name, rows, cols, _ = _map_buffers(f)[0]
        out.append((f"FD{f.index}", rows, cols, 0))
    return out


def emit_forward(s, features: tuple[FeaturePlan, ...], prefix) -> None:
    """The image layers' forward pass: X (NCHW rows) to the flattened features."""
    s("lk_rows_to_map(X, FX)  # NCHW rows (m, C*H*W) -> the channel-major map, (C*H*W, m)")
    for f in features:
        settings = ", ".join(f"{k} {v}" for k, v in f.layer.config()
                             if k in ("kernel", "stride", "padding", "bias"))
        # Kind names and settings come from (possibly user-registered) layer kinds: data.
        s("# " + source_comment_text(f"{f.name}: {f.kind}" + (f" ({settings})" if settings else ""))
          + ("" if f.activation is None else
             f"; then {source_comment_text(f.activation.name)}"))
        _emitter(f.kind).forward(s, f, features, prefix)


def emit_backward(s, features: tuple[FeaturePlan, ...], prefix) -> None:
    """Back through the image layers; FD{last} holds the flattened features' gradient."""
    for f in reversed(features[first_trained(features):]):
        s("# " + source_comment_text(f"{f.name} backward ({f.kind}: stated rules, proven in "
                                     "prove.layer_rules)"))
        _emitter(f.kind).backward(s, f, features, prefix)


def per_sample_elements(features: tuple[FeaturePlan, ...]) -> int:
    """Workspace elements per sample (bounds the rows of a predict chunk)."""
    total = 0
    for f, (c, _, _, c_out, oh, ow) in zip(features, geometry(features), strict=True):
        window = f.layer.kernel[0] * f.layer.kernel[1] if f.kind == "conv2d" else 0
        total += oh * ow * (2 * c_out + c * window)   # output, its gradient, im2col
    return total + math.prod(features[0].in_shape)

