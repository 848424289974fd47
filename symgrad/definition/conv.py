"""Conv2d: the 2-D convolution (PyTorch's cross-correlation) as a layer kind.

Definition (NCHW, kernel W of shape (out_ch, in_ch, kh, kw), stride s, zero padding P)::

    Z[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] * X[n, c, s_h i + p - P_h, s_w j + q - P_w]

with X read as 0 outside the image. The backward rules below are *stated*:
dW is the correlation of the input with dZ, db sums dZ over n, i, j, and dX is
the full convolution of dZ with the flipped kernel -- for stride s, of dZ spread
out with s - 1 zeros between its entries, then cropped by the padding; the array
rule does it as a scatter of dZ W through the same windows, which is that.
`symgrad.prove.layer_rules` proves each one against ``sympy.diff`` of the expanded
definition.

>>> layer = Conv2d(1, 2, 3, stride=2, padding=1)
>>> layer.out_shape((1, 5, 5), "conv0")
(2, 3, 3)
>>> Conv2d(1, 2, 7).out_shape((1, 5, 5), "conv0")
Traceback (most recent call last):
...
symgrad.definition.errors.LayerSizeError: conv0 Conv2d(1 -> 2, kernel 7x7): the 7x7 kernel \
is larger than its (padded) input 5x5 (input shape (C, H, W) = (1, 5, 5), padding 0)
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from symgrad.definition.errors import DefinitionError, LayerSizeError
from symgrad.definition.layer_kinds import (
    INITS,
    BackwardRule,
    FeatureLayer,
    LayerKind,
    object_zeros,
    out_size,
    pair,
    positive_int,
    register_layer_kind,
    window,
)


class Conv2d(FeatureLayer):
    """``Conv2d(in_ch, out_ch, kernel_size, stride=1, padding=0, bias=True, init="he")``.

    Input (n, in_ch, H, W), output (n, out_ch, H', W') with
    H' = (H + 2 padding - kh) // stride + 1 (PyTorch's floor rule). ``kernel_size``,
    ``stride`` and ``padding`` are ints or (h, w) pairs. W has PyTorch's layout
    (out_ch, in_ch, kh, kw); ``init`` as for Dense with fan-in in_ch*kh*kw.
    """

    kind = "conv2d"
    prefix = "conv"

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 bias: bool = True, init: str = "he") -> None:
        self.in_ch = positive_int(in_ch, "Conv2d: in_ch")
        self.out_ch = positive_int(out_ch, "Conv2d: out_ch")
        self.kernel = pair(kernel_size, f"{self!r}: kernel_size")
        self.stride = pair(stride, f"{self!r}: stride")
        self.padding = pair(padding, f"{self!r}: padding", minimum=0)
        if not isinstance(bias, bool):
            raise DefinitionError(f"{self!r}: bias must be True or False")
        if init not in INITS:
            raise DefinitionError(f"{self!r}: init must be one of {INITS}, got {init!r}")
        self.bias, self.init = bias, init

    def __repr__(self) -> str:
        # Also called while __init__ validates (messages name the layer): attributes
        # not set yet are left out.
        kernel = getattr(self, "kernel", None)
        head = f"Conv2d({getattr(self, 'in_ch', '?')} -> {getattr(self, 'out_ch', '?')}"
        if kernel is None:
            return head + ")"
        stride = getattr(self, "stride", (1, 1))
        extra = "" if stride == (1, 1) else f", stride {_pair_text(stride)}"
        if getattr(self, "padding", (0, 0)) != (0, 0):
            extra += f", padding {_pair_text(self.padding)}"
        return head + f", kernel {kernel[0]}x{kernel[1]}{extra})"

    def config(self) -> tuple[tuple[str, object], ...]:
        return (("in_ch", self.in_ch), ("out_ch", self.out_ch), ("kernel", self.kernel),
                ("stride", self.stride), ("padding", self.padding), ("bias", self.bias))

    def out_shape(self, in_shape: tuple[int, ...], where: str) -> tuple[int, ...]:
        if len(in_shape) != 3:
            raise LayerSizeError(f"{where} {self!r} needs images (C, H, W) as input, but its "
                                 f"input has shape {in_shape}")
        c, h, w = in_shape
        if c != self.in_ch:
            raise LayerSizeError(f"{where} {self!r} expects {self.in_ch} input channels, but "
                                 f"its input has {c} (input shape (C, H, W) = {in_shape})")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        if kh > h + 2 * ph or kw > w + 2 * pw:
            raise LayerSizeError(
                f"{where} {self!r}: the {kh}x{kw} kernel is larger than its (padded) input "
                f"{h + 2 * ph}x{w + 2 * pw} (input shape (C, H, W) = {in_shape}, padding "
                f"{_pair_text(self.padding)})")
        return (self.out_ch, out_size(h, kh, sh, ph), out_size(w, kw, sw, pw))

    def param_shapes(self, in_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        shapes = {"W": (self.out_ch, self.in_ch, *self.kernel)}
        if self.bias:
            shapes["b"] = (self.out_ch,)
        return shapes


def _pair_text(value: tuple[int, int]) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"


def pad_images(X: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """X with ``padding`` zeros around each image (any dtype, object arrays too)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return X
    n, c, h, w = X.shape
    out = object_zeros((n, c, h + 2 * ph, w + 2 * pw), X)
    out[:, :, ph:ph + h, pw:pw + w] = X
    return out


def conv2d_forward(layer: Conv2d, X: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """Z = b + sum over the window of W * X (the definition, as an array rule)."""
    W = params["W"]
    n, _, h, w = X.shape
    oh, ow = (out_size(h, layer.kernel[0], layer.stride[0], layer.padding[0]),
              out_size(w, layer.kernel[1], layer.stride[1], layer.padding[1]))
    Xp = pad_images(X, layer.padding)
    Z = object_zeros((n, layer.out_ch, oh, ow), np.empty(0, np.result_type(X, W)))
    for p in range(layer.kernel[0]):
        for q in range(layer.kernel[1]):
            patch = window(Xp, p, q, layer.stride, oh, ow)     # (n, C, oh, ow)
            Z = Z + np.tensordot(W[:, :, p, q], patch, axes=([1], [1])).transpose(1, 0, 2, 3)
    if layer.bias:
        Z = Z + params["b"][None, :, None, None]
    return Z


def conv2d_backward(layer: Conv2d, X: np.ndarray, params: dict[str, np.ndarray],
                    dZ: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The stated rules: dW = X correlated with dZ, db = sum dZ, dX = dZ scattered through W."""
    W = params["W"]
    oh, ow = dZ.shape[2], dZ.shape[3]
    Xp = pad_images(X, layer.padding)
    dXp = object_zeros(Xp.shape, np.empty(0, np.result_type(dZ, W)))
    dW = object_zeros(W.shape, np.empty(0, np.result_type(dZ, X)))
    for p in range(layer.kernel[0]):
        for q in range(layer.kernel[1]):
            patch = window(Xp, p, q, layer.stride, oh, ow)
            dW[:, :, p, q] = np.tensordot(dZ, patch, axes=([0, 2, 3], [0, 2, 3]))
            region = window(dXp, p, q, layer.stride, oh, ow)
            region += np.tensordot(dZ, W[:, :, p, q], axes=([1], [0])).transpose(0, 3, 1, 2)
    ph, pw = layer.padding
    dX = dXp[:, :, ph:ph + X.shape[2], pw:pw + X.shape[3]]
    grads = {"W": dW}
    if layer.bias:
        grads["b"] = dZ.sum(axis=(0, 2, 3))
    return dX, grads


def conv2d_index_formula(layer: Conv2d) -> tuple[sp.Expr, sp.Expr]:
    """Z[n,o,i,j] = b[o] + Sum_{c,p,q} W[o,c,p,q] X[n, c, s i + p - P, s j + q - P]."""
    n, o, i, j, c, p, q = sp.symbols("n o i j c p q", integer=True, nonnegative=True)
    Zb, Wb, Xb, bb = (sp.IndexedBase(name) for name in ("Z", "W", "X", "b"))
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
    body = Wb[o, c, p, q] * Xb[n, c, sh * i + p - ph, sw * j + q - pw]
    rhs = sp.Sum(body, (c, 0, layer.in_ch - 1), (p, 0, kh - 1), (q, 0, kw - 1))
    if layer.bias:
        rhs = bb[o] + rhs
    return Zb[n, o, i, j], rhs


CONV2D = register_layer_kind(LayerKind(
    name="conv2d",
    title="2-D convolution",
    layer_type=Conv2d,
    params=("W", "b"),
    forward=conv2d_forward,
    backward=conv2d_backward,
    index_formula=conv2d_index_formula,
    rules=(
        BackwardRule("dW", r"\frac{\partial L}{\partial W} = X \star \frac{\partial L}{\partial Z}",
                     r"\frac{\partial L}{\partial W_{ocpq}} = \sum_{n,i,j} "
                     r"\frac{\partial L}{\partial Z_{noij}}\, X_{n,c,\,s i+p-P,\,s j+q-P}",
                     "dW = X (correlation) dZ"),
        BackwardRule("db", r"\frac{\partial L}{\partial b_o} = \sum_{n,i,j} "
                     r"\frac{\partial L}{\partial Z_{noij}}",
                     r"\frac{\partial L}{\partial b_{o}} = \sum_{n,i,j} "
                     r"\frac{\partial L}{\partial Z_{noij}}",
                     "db = sum over n, i, j of dZ"),
        BackwardRule("dX", r"\frac{\partial L}{\partial X} = \frac{\partial L}{\partial Z} "
                     r"\ast_{\mathrm{full}} \operatorname{flip}(W)"
                     r"\quad(\text{stride } s\text{: } dZ \text{ dilated by } s\text{, "
                     r"cropped by } P)",
                     r"\frac{\partial L}{\partial X_{nchw}} = \sum_{o}\sum_{\substack{p,q,i,j:"
                     r"\\ s i+p-P=h,\ s j+q-P=w}} \frac{\partial L}{\partial Z_{noij}}\, W_{ocpq}",
                     "dX = full convolution of dZ (dilated by the stride) with the flipped "
                     "kernel, cropped by the padding"),
    ),
    proof_instances=(
        (Conv2d(2, 3, 3, stride=2, padding=1), (2, 5, 5)),
        (Conv2d(1, 2, (2, 3), stride=(1, 2), padding=(0, 1)), (1, 4, 5)),
        (Conv2d(2, 1, 2, bias=False), (2, 3, 3)),
        # padding beyond the kernel: the corner outputs see only padding (bias alone)
        (Conv2d(1, 2, (1, 2), stride=(2, 1), padding=(1, 2)), (1, 2, 3)),
    ),
))
