"""How the printout of a convolutional network names its image tensors and reads the rules.

The Dense head keeps the lecture notes' numbering (``Z_1`` is the first Dense layer,
fed by the flattened features ``F``), so the image layers go by their names, as their
parameters do: ``Z_conv0`` is conv0's output, ``A_conv0`` the activation after it,
``Y_maxpool0`` a pooling layer's output (the letter is the one its kind's index
formula defines), and the last image layer, Flatten, gives ``F``.

A layer kind states its backward rules in generic letters (X the layer's input, Z or
Y its output, W and b its parameters); `ImageNames.bind` maps them to one layer's
tensors, and `substitute_latex` / `substitute_text` rewrite a rule with that map for
the summary. `index_text` reads a rule's index-form LaTeX as plain text.

>>> index_text(r"\\frac{\\partial L}{\\partial b_{o}} = \\sum_{n,i,j} "
...            r"\\frac{\\partial L}{\\partial Z_{noij}}")
'dL/db[o] = sum_(n,i,j) dL/dZ[noij]'
>>> shape_of((4, 8, 8)), shape_of((8,))
(('(n, 4, 8, 8)', '(n, 4, 8, 8)'), ('(n \\\\times 8)', '(n x 8)'))
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

import sympy as sp

from symgrad.definition.layer_kinds import BackwardRule, layer_kind
from symgrad.derive.plan import FeaturePlan, NetworkPlan
from symgrad.render.prose import escape_latex_text

Name = tuple[str, str]   # (LaTeX, plain text)


def shape_of(shape: tuple[int, ...], batch: str = "n") -> Name:
    """A batch shape: images read (n, C, H, W); the flat features (n x F) as the head's rows."""
    if len(shape) == 1:
        return rf"({batch} \times {shape[0]})", f"({batch} x {shape[0]})"
    text = "(" + ", ".join([batch, *map(str, shape)]) + ")"
    return text, text


def plain_shape(shape: tuple[int, ...]) -> str:
    """A parameter's shape as Python writes it: (4, 1, 3, 3), (4,)."""
    return str(tuple(shape))


def tensor(letter: str, layer: str) -> Name:
    """(LaTeX, text) of an image tensor: Z_{\\mathrm{conv0}}, Z_conv0."""
    return rf"{letter}_{{\mathrm{{{layer}}}}}", f"{letter}_{layer}"


def grad(name: Name) -> Name:
    """The loss gradient of a tensor, as the printout writes it: dZ_conv0."""
    return f"d{name[0]}", f"d{name[1]}"


def output_letter(feature: FeaturePlan) -> str:
    """The letter the kind's index formula gives the layer's output (Z, Y)."""
    lhs, _ = layer_kind(feature.kind).index_formula(feature.layer)
    return str(lhs.base.label)


@dataclass(frozen=True)
class LayerTensors:
    """The tensors around one image layer, by role."""

    feature: FeaturePlan
    input: Name        # what the layer reads: X or the previous layer's output
    raw: Name          # what the layer computes (before its activation)
    output: Name       # what the next layer reads (after the activation, if any)
    letter: str        # the generic letter of ``raw`` in the kind's rules

    def bind(self) -> dict[str, Name]:
        """Generic rule letters -> this layer's tensors (X, dX, Z, dZ, W, dW, ...)."""
        f = self.feature
        out = {"X": self.input, "dX": grad(self.input), self.letter: self.raw,
               "d" + self.letter: grad(self.raw)}
        for p, _ in f.param_shapes:
            out[p] = tensor(p, f.name)
            out["d" + p] = grad(out[p])
        return out

    def shapes(self) -> dict[str, tuple[int, ...] | Name]:
        """Generic rule letters -> shapes as printed (batch shapes carry the n)."""
        f = self.feature
        out: dict[str, tuple[int, ...] | Name] = {
            "X": shape_of(f.in_shape), "dX": shape_of(f.in_shape),
            self.letter: shape_of(f.out_shape), "d" + self.letter: shape_of(f.out_shape)}
        for p, s in f.param_shapes:
            out[p] = out["d" + p] = (plain_shape(s), plain_shape(s))
        return out


def image_tensors(plan: NetworkPlan) -> list[LayerTensors]:
    """Every image layer's tensors, in forward order; the last (Flatten) gives F."""
    found, prev = [], ("X", "X")
    for feature in plan.features:
        letter = output_letter(feature)
        raw = ("F", "F") if len(feature.out_shape) == 1 else tensor(letter, feature.name)
        out = tensor("A", feature.name) if feature.activation is not None else raw
        found.append(LayerTensors(feature, prev, raw, out, letter))
        prev = out
    return found


# -- reading the rules ------------------------------------------------------------------
_DL = r"\\frac\{\\partial L\}\{\\partial ([A-Za-z])((?:_\{[^{}]*\}|_[A-Za-z0-9])?)\}"
# A generic tensor letter standing alone (not a command, not part of a word).
_TOKEN = re.compile(r"(?<![A-Za-z\\])(d?[A-Z]|d?b)(?![A-Za-z])")
_SUBSCRIPT = r"((?:_\{[^{}]*\}|_[A-Za-z0-9])?)"
_SUBSTITUTE = re.compile(_DL + "|" + _TOKEN.pattern + _SUBSCRIPT)


def rule_operands(rule: BackwardRule, tensors: Collection[str]) -> list[str]:
    """The tensors (among ``tensors``: X, dZ, W...) the right side of a rule's operator
    form reads; size letters (s, P) and the loss L are not tensors.

    >>> rule_operands(BackwardRule("dW", r"\\frac{\\partial L}{\\partial W} = X \\star "
    ...                            r"\\frac{\\partial L}{\\partial Z}", "", ""), {"X", "dZ", "W"})
    ['X', 'dZ']
    """
    rhs = re.sub(_DL, r" d\1 ", rule.latex.split("=", 1)[1])
    return list(dict.fromkeys(t for t in _TOKEN.findall(rhs) if t in tensors))


def substitute_latex(latex: str, names: dict[str, Name]) -> str:
    r"""An operator-form rule with its generic letters replaced by one layer's tensors.

    One pass over the rule, so a name put in is never read again as a generic letter.

    >>> print(substitute_latex(r"\frac{\partial L}{\partial b_o} = \sum_{n,i,j} Z_{noij}",
    ...                        {"db": ("db_{c}", ""), "Z": ("Z_{c}", "")}))
    \left(db_{c}\right)_o = \sum_{n,i,j} \left(Z_{c}\right)_{noij}
    """
    def replace(m: re.Match) -> str:
        if m.group(1) is not None:          # dL/dT: the gradient of T
            key, sub = "d" + m.group(1), m.group(2)
        else:
            key, sub = m.group(3), m.group(4)
        if key not in names:
            return m.group(0)
        return _subscripted(names[key][0], sub)

    return _SUBSTITUTE.sub(replace, latex)


def _subscripted(name: str, sub: str) -> str:
    # An index subscript on a named tensor: (dZ_conv1)_{noij}, never a double subscript.
    return name if not sub else rf"\left({name}\right){sub}"


def substitute_text(text: str, names: dict[str, Name]) -> str:
    """A rule's plain-text form with its generic letters replaced by one layer's tensors.

    >>> substitute_text("dW = X (correlation) dZ", {"dW": ("", "dW_c"), "X": ("", "X"),
    ...                                               "dZ": ("", "dZ_c")})
    'dW_c = X (correlation) dZ_c'
    """
    return re.sub(r"(?<![A-Za-z_])(d?[A-Za-z])(?![A-Za-z0-9_])",
                  lambda m: names[m.group(1)][1] if m.group(1) in names else m.group(0), text)


_INDEX_TEXT = [
    (re.compile(_DL), r"dL/d\1\2"),
    (re.compile(r"\\substack\{([^{}]*)\}"), lambda m: m.group(1).replace(r"\\", " ")),
    (re.compile(r"\\sum_\{([^{}]*)\}"), r"sum_(\1) "),
    (re.compile(r"\\t?frac\{([^{}]*)\}\{([^{}]*)\}"), r"\1/(\2)"),
    (re.compile(r"\\mathrel\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\(?:operatorname|mathrm|text)\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\arg\\max"), "argmax"),
    (re.compile(r"\\[Bb]ig[lr]?"), ""),
    (re.compile(r"\\[,;:! ]"), " "),
    (re.compile(r"_\{([^{}]*)\}"), r"[\1]"),
    (re.compile(r"\\([A-Za-z]+)"), r"\1"),
    (re.compile(r"[{}]"), ""),
    (re.compile(r"\[\s+"), "["),
    (re.compile(r"\s+\]"), "]"),
    (re.compile(r"\s+"), " "),
]


def index_text(latex: str) -> str:
    """A rule's index form (LaTeX) as plain text: dL/dW[ocpq] = sum_(n,i,j) ..."""
    for pattern, repl in _INDEX_TEXT:
        latex = pattern.sub(repl, latex)
    return latex.strip()


# -- the definition in index form ---------------------------------------------------------
MAX_ARGS_PER_ROW = 4   # a 3x3 max-pool window is 9 indexed elements: too wide for one line


def _window_order(args: tuple[sp.Expr, ...]) -> list[sp.Expr]:
    # SymPy sorts Max's arguments its own way; the window reads row-major (p, then q).
    def key(arg: sp.Expr):
        if not isinstance(arg, sp.Indexed):
            return (1, sp.default_sort_key(arg))
        at_zero = [ix.subs({s: 0 for s in ix.free_symbols}) for ix in arg.indices]
        return (0, tuple(int(v) if v.is_Integer else 0 for v in at_zero))
    return sorted(args, key=key)


def index_formula(feature: FeaturePlan) -> tuple[list[str], str]:
    """The kind's definition in index form: LaTeX rows (``lhs &= ...``) and its text.

    Printed by SymPy's printers; a long ``Max`` (a pooling window) is broken over rows
    with its elements in the window's row-major order.
    """
    lhs, rhs = layer_kind(feature.kind).index_formula(feature.layer)
    if isinstance(rhs, (sp.Max, sp.Min)):
        fn = "max" if isinstance(rhs, sp.Max) else "min"
        args = _window_order(rhs.args)
        chunks = [args[i:i + MAX_ARGS_PER_ROW] for i in range(0, len(args), MAX_ARGS_PER_ROW)]
        rows = [", ".join(sp.latex(a) for a in chunk) for chunk in chunks]
        rows[0] = rf"{sp.latex(lhs)} &= \{fn}\big({rows[0]}"
        rows[1:] = [rf"&\qquad {row}" for row in rows[1:]]
        rows = [row + "," for row in rows[:-1]] + [rows[-1] + r"\big)"]
        return rows, f"{sp.sstr(lhs)} = {fn}({', '.join(sp.sstr(a) for a in args)})"
    return [f"{sp.latex(lhs)} &= {sp.latex(rhs)}"], f"{sp.sstr(lhs)} = {sp.sstr(rhs)}"


def forward_form(feature: FeaturePlan) -> Name:
    """The layer's definition in operator form, in the kind's generic letters.

    Convolution reads as a correlation with the kernel (PyTorch's Conv2d); every other
    kind as the function its registry name says.
    """
    has = {p for p, _ in feature.param_shapes}
    if feature.kind == "conv2d":
        bias = ("+ b", "+ b") if "b" in has else ("", "")
        return rf"X \star W {bias[0]}".strip(), f"X (correlation) W {bias[1]}".strip()
    return rf"\operatorname{{{feature.kind}}}(X)", f"{feature.kind}(X)"


_SETTING = re.compile(r"[A-Za-z0-9 ,>x-]*")   # what a built-in layer's repr is made of


def layer_setting(layer: object) -> Name:
    r"""(LaTeX math, text) of a layer as its repr states it, typeset: arrows and times.

    The text is the repr itself. A repr of other characters (a user's layer kind) is
    shown as escaped text in the math.

    >>> class Conv2d:
    ...     def __repr__(self): return "Conv2d(1 -> 4, kernel 3x3, stride 1x2)"
    >>> print(layer_setting(Conv2d())[0])
    \mathrm{Conv2d}(1 \to 4,\ \text{kernel } 3 \times 3,\ \text{stride } 1 \times 2)
    """
    text, name = repr(layer), type(layer).__name__
    inner = text[len(name) + 1:-1] if text.startswith(f"{name}(") and text.endswith(")") \
        else None
    if inner is None or not name.isidentifier() or not _SETTING.fullmatch(inner):
        return rf"\text{{{escape_latex_text(text)}}}", text
    parts = []
    for part in filter(None, (p.strip() for p in inner.split(","))):
        part = re.sub(r"(\d+)x(\d+)", r"\1 \\times \2", part).replace(" -> ", r" \to ")
        part = re.sub(r"^([A-Za-z]+) ", r"\\text{\1 } ", part)
        parts.append(part)
    return rf"\mathrm{{{name}}}(" + r",\ ".join(parts) + ")", text
