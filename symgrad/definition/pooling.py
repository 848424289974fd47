"""MaxPool2d, AvgPool2d and Flatten as layer kinds.

Max pooling is defined with ``Max`` over the window; its backward rule (route
dY to the window's first maximum, the kernels' and PyTorch's tie rule) is
proven against ``sympy.diff`` of ``Max``, whose derivative is a Heaviside
step of the element minus the window's other maxima. Average pooling is
``(1/k) sum`` over the window, so its rule spreads dY by 1/k (k = kh kw).
Flatten reads (C, H, W) in C order (PyTorch's ``nn.Flatten``).

>>> MaxPool2d(2).out_shape((8, 24, 24), "maxpool0")
(8, 12, 12)
>>> AvgPool2d(3, stride=1).out_shape((4, 2, 5), "avgpool0")
Traceback (most recent call last):
...
symgrad.definition.errors.LayerSizeError: avgpool0 AvgPool2d(3x3, stride 1x1): the 3x3 window \
is larger than its input 2x5 (input shape (C, H, W) = (4, 2, 5))
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from symgrad.definition.errors import LayerSizeError
from symgrad.definition.layer_kinds import (
    BackwardRule,
    FeatureLayer,
    LayerKind,
    object_zeros,
    out_size,
    pair,
    register_layer_kind,
    window,
)


class _Pool2d(FeatureLayer):
    """Shared shape rule of the pooling kinds: no padding, stride defaults to the window."""

    title = ""

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None) -> None:
        name = type(self).__name__
        self.kernel = pair(kernel_size, f"{name}: kernel_size")
        self.stride = self.kernel if stride is None else pair(stride, f"{name}: stride")

    def __repr__(self) -> str:
        kh, kw = self.kernel
        extra = "" if self.stride == self.kernel else f", stride {self.stride[0]}x{self.stride[1]}"
        return f"{type(self).__name__}({kh}x{kw}{extra})"

    def config(self) -> tuple[tuple[str, object], ...]:
        return (("kernel", self.kernel), ("stride", self.stride))

    def out_shape(self, in_shape: tuple[int, ...], where: str) -> tuple[int, ...]:
        if len(in_shape) != 3:
            raise LayerSizeError(f"{where} {self!r} needs images (C, H, W) as input, but its "
                                 f"input has shape {in_shape}")
        c, h, w = in_shape
        (kh, kw), (sh, sw) = self.kernel, self.stride
        if kh > h or kw > w:
            raise LayerSizeError(f"{where} {self!r}: the {kh}x{kw} window is larger than its "
                                 f"input {h}x{w} (input shape (C, H, W) = {in_shape})")
        return (c, out_size(h, kh, sh, 0), out_size(w, kw, sw, 0))


class MaxPool2d(_Pool2d):
    """``MaxPool2d(kernel_size, stride=None)``: Y = max over each kh x kw window."""

    kind = "maxpool2d"
    prefix = "maxpool"


class AvgPool2d(_Pool2d):
    """``AvgPool2d(kernel_size, stride=None)``: Y = mean over each kh x kw window."""

    kind = "avgpool2d"
    prefix = "avgpool"


class Flatten(FeatureLayer):
    """``Flatten()``: (n, C, H, W) -> (n, C*H*W) in C order, as PyTorch's nn.Flatten."""

    kind = "flatten"
    prefix = "flatten"

    def __repr__(self) -> str:
        return "Flatten()"

    def out_shape(self, in_shape: tuple[int, ...], where: str) -> tuple[int, ...]:
        return (math.prod(in_shape),)


def _windows(layer: _Pool2d, X: np.ndarray):
    """(p, q, view of X at that window offset) for every offset, and the output size."""
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    oh, ow = out_size(X.shape[2], kh, sh, 0), out_size(X.shape[3], kw, sw, 0)
    views = [(p, q, window(X, p, q, layer.stride, oh, ow)) for p in range(kh) for q in range(kw)]
    return views, oh, ow


def maxpool_forward(layer: MaxPool2d, X: np.ndarray, params: dict) -> np.ndarray:
    views, _, _ = _windows(layer, X)
    if X.dtype == object:   # the symbolic definition: SymPy's Max of the window
        return np.frompyfunc(lambda *v: sp.Max(*v), len(views), 1)(*[v for _, _, v in views])
    return np.maximum.reduce([v for _, _, v in views])


def maxpool_backward(layer: MaxPool2d, X: np.ndarray, params: dict, dY: np.ndarray
                     ) -> tuple[np.ndarray, dict]:
    """dX: dY routed to the first maximum of each window (row-major window order)."""
    views, _, _ = _windows(layer, X)
    Y = np.maximum.reduce([v for _, _, v in views])
    dX = np.zeros(X.shape, dtype=np.result_type(X, dY))
    taken = np.zeros(Y.shape, dtype=bool)
    for p, q, view in views:
        hit = (view == Y) & ~taken
        taken |= hit
        window(dX, p, q, layer.stride, Y.shape[2], Y.shape[3])[...] += np.where(hit, dY, 0)
    return dX, {}


def avgpool_forward(layer: AvgPool2d, X: np.ndarray, params: dict) -> np.ndarray:
    views, _, _ = _windows(layer, X)
    k = layer.kernel[0] * layer.kernel[1]
    total = views[0][2]
    for _, _, v in views[1:]:
        total = total + v
    return total * (sp.Rational(1, k) if X.dtype == object else 1.0 / k)


def avgpool_backward(layer: AvgPool2d, X: np.ndarray, params: dict, dY: np.ndarray
                     ) -> tuple[np.ndarray, dict]:
    """dX: every element of a window receives dY / k (k = kh kw)."""
    k = layer.kernel[0] * layer.kernel[1]
    share = dY * (sp.Rational(1, k) if dY.dtype == object else 1.0 / k)
    dX = object_zeros(X.shape, np.empty(0, np.result_type(X, dY)))
    for p in range(layer.kernel[0]):
        for q in range(layer.kernel[1]):
            window(dX, p, q, layer.stride, dY.shape[2], dY.shape[3])[...] += share
    return dX, {}


def flatten_forward(layer: Flatten, X: np.ndarray, params: dict) -> np.ndarray:
    return X.reshape(X.shape[0], -1)


def flatten_backward(layer: Flatten, X: np.ndarray, params: dict, dY: np.ndarray
                     ) -> tuple[np.ndarray, dict]:
    return dY.reshape(X.shape), {}


def _pool_formula(layer: _Pool2d, reduce: str) -> tuple[sp.Expr, sp.Expr]:
    n, c, i, j, p, q = sp.symbols("n c i j p q", integer=True, nonnegative=True)
    Yb, Xb = sp.IndexedBase("Y"), sp.IndexedBase("X")
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    elems = [Xb[n, c, sh * i + a, sw * j + b] for a in range(kh) for b in range(kw)]
    if reduce == "max":
        return Yb[n, c, i, j], sp.Max(*elems, evaluate=False)
    body = Xb[n, c, sh * i + p, sw * j + q]
    return Yb[n, c, i, j], sp.Sum(body, (p, 0, kh - 1), (q, 0, kw - 1)) / (kh * kw)


def _flatten_formula(layer: Flatten) -> tuple[sp.Expr, sp.Expr]:
    n, c, h, w, H, W = sp.symbols("n c h w H W", integer=True, nonnegative=True)
    return sp.IndexedBase("Y")[n, (c * H + h) * W + w], sp.IndexedBase("X")[n, c, h, w]


MAXPOOL2D = register_layer_kind(LayerKind(
    name="maxpool2d", title="2-D max pooling", layer_type=MaxPool2d, params=(),
    forward=maxpool_forward, backward=maxpool_backward,
    index_formula=lambda layer: _pool_formula(layer, "max"),
    rules=(BackwardRule("dX", r"\frac{\partial L}{\partial X} = \operatorname{route}_{\arg\max}"
                        r"\Big(\frac{\partial L}{\partial Y}\Big)",
                        r"\frac{\partial L}{\partial X_{n,c,\,s i+p,\,s j+q}} \mathrel{+}= "
                        r"[\,(p,q) = \arg\max\,]\, \frac{\partial L}{\partial Y_{ncij}}",
                        "dX = dY routed to each window's (first) maximum"),),
    proof_instances=((MaxPool2d(2), (1, 4, 4)), (MaxPool2d(3, stride=2), (2, 5, 5)),
                     (MaxPool2d((2, 1), stride=1), (1, 3, 2))),
    piecewise=True,
    notes=("d max(x_1, ..., x_k) / d x_m = 1 where x_m is the maximum and 0 elsewhere "
           "(SymPy: a Heaviside step of x_m minus the other elements' max); at a tie the "
           "kernels route the gradient to the first maximum in the window, as PyTorch does.",),
))

AVGPOOL2D = register_layer_kind(LayerKind(
    name="avgpool2d", title="2-D average pooling", layer_type=AvgPool2d, params=(),
    forward=avgpool_forward, backward=avgpool_backward,
    index_formula=lambda layer: _pool_formula(layer, "mean"),
    rules=(BackwardRule("dX", r"\frac{\partial L}{\partial X} = \tfrac{1}{k}\,"
                        r"\operatorname{spread}\Big(\frac{\partial L}{\partial Y}\Big)",
                        r"\frac{\partial L}{\partial X_{n,c,\,s i+p,\,s j+q}} \mathrel{+}= "
                        r"\tfrac{1}{k_h k_w}\, \frac{\partial L}{\partial Y_{ncij}}",
                        "dX = dY / (kh kw) spread over each window"),),
    proof_instances=((AvgPool2d(2), (1, 4, 4)), (AvgPool2d(3, stride=2), (2, 5, 5)),
                     (AvgPool2d((1, 2), stride=1), (1, 2, 3))),
))

FLATTEN = register_layer_kind(LayerKind(
    name="flatten", title="flatten", layer_type=Flatten, params=(),
    forward=flatten_forward, backward=flatten_backward, index_formula=_flatten_formula,
    rules=(BackwardRule("dX", r"\frac{\partial L}{\partial X} = \operatorname{reshape}\Big("
                        r"\frac{\partial L}{\partial Y}\Big)",
                        r"\frac{\partial L}{\partial X_{nchw}} = "
                        r"\frac{\partial L}{\partial Y_{n,(cH+h)W+w}}",
                        "dX = dY reshaped to (n, C, H, W)"),),
    proof_instances=((Flatten(), (2, 2, 3)),),
))
