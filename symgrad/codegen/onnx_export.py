"""Export a trained network to ONNX (``Model.to_onnx``), built with the ``onnx`` package.

Each Dense layer becomes ``Gemm`` (``MatMul`` without a bias); image layers become
ONNX's ``Conv``, ``MaxPool``, ``AveragePool`` and ``Flatten`` (NCHW and PyTorch's
kernel layout are ONNX's too, so weights go in unchanged); each activation
is translated from the *same* SymPy formula the kernels evaluate (the plan's
stable forward form) into ONNX elementwise operators by `OnnxPrinter`, a
printer in SymPy's style: one ``_print_<Class>`` method per node type and a
table of function -> operator names. So a custom activation exports with no
extra work, and a formula with a node ONNX has no operator for raises
`OnnxExportError` naming the layer and the function. A softmax output is
ONNX's ``Softmax`` over the class axis.

Needs the optional ``onnx`` package (``pip install "symgrad[onnx]"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import sympy as sp
from sympy.core.relational import Relational

from symgrad.codegen.atomic import write_user_file
from symgrad.definition.formulas import Z

__all__ = ["OnnxExportError", "OnnxPrinter", "to_onnx"]

OPSET = 17   # Gemm, Where, Softmax(axis), Erf, Max/Min broadcasting; widely supported
IR_VERSION = 8


class OnnxExportError(ValueError):
    """A model or formula that has no ONNX translation."""


class _Graph:
    """Nodes and initializers under construction, with unique tensor names."""

    def __init__(self, dtype: np.dtype) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.dtype = dtype
        self.nodes: list = []
        self.initializers: list = []
        self._consts: dict[tuple, str] = {}
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def node(self, op: str, *inputs: str, **attrs: object) -> str:
        out = self.name(op.lower())
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def const(self, value: float | bool) -> str:
        """A scalar initializer (broadcasts in elementwise ops), one per distinct value."""
        dtype = np.bool_ if isinstance(value, (bool, np.bool_)) else self.dtype
        key = (np.dtype(dtype).name, repr(value))
        if key not in self._consts:
            name = self.name("const")
            self.initializers.append(self.numpy_helper.from_array(
                np.asarray(value, dtype=dtype), name))
            self._consts[key] = name
        return self._consts[key]

    def array(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(
            np.ascontiguousarray(value, dtype=self.dtype), name))
        return name


class OnnxPrinter:
    """SymPy expression -> ONNX nodes in a `_Graph`; returns the result tensor's name.

    Like SymPy's printers: ``_print_<Class>`` per node type, dispatched along the
    class's MRO, and ``known_functions`` as data.
    """

    known_functions: Mapping[type, str] = {
        sp.exp: "Exp", sp.log: "Log", sp.tanh: "Tanh", sp.cosh: "Cosh", sp.sinh: "Sinh",
        sp.sin: "Sin", sp.cos: "Cos", sp.atan: "Atan", sp.erf: "Erf", sp.Abs: "Abs",
        sp.tan: "Tan", sp.asin: "Asin", sp.acos: "Acos", sp.asinh: "Asinh",
        sp.acosh: "Acosh", sp.atanh: "Atanh",
        sp.sign: "Sign",
    }
    # SymPy relational class -> (ONNX operator, negate the result)
    relations: Mapping[str, tuple[str, bool]] = {
        "StrictGreaterThan": ("Greater", False), "GreaterThan": ("GreaterOrEqual", False),
        "StrictLessThan": ("Less", False), "LessThan": ("LessOrEqual", False),
        "Equality": ("Equal", False), "Unequality": ("Equal", True)}

    def __init__(self, graph: _Graph, symbols: Mapping[sp.Symbol, str], where: str) -> None:
        self.g, self.symbols, self.where = graph, dict(symbols), where

    def emit(self, expr: sp.Basic) -> str:
        for cls in type(expr).__mro__:
            method = getattr(self, f"_print_{cls.__name__}", None)
            if method is not None:
                return method(expr)
        return self._unsupported(expr)

    def _unsupported(self, expr: sp.Basic) -> str:
        name = type(expr).__name__
        raise OnnxExportError(f"{self.where}: the SymPy function {name} (in {expr}) has no ONNX "
                              "operator; use elementary functions (exp, log, tanh, erf, Abs, "
                              "Max, Piecewise, ...) in the formula")

    # -- leaves --------------------------------------------------------------------------
    def _print_Symbol(self, expr: sp.Symbol) -> str:
        if expr not in self.symbols:
            raise OnnxExportError(f"{self.where}: free symbol {expr} is not an input")
        return self.symbols[expr]

    def _print_Number(self, expr: sp.Number) -> str:
        return self.g.const(float(expr))

    _print_NumberSymbol = _print_Number

    def _print_BooleanTrue(self, expr: sp.Basic) -> str:
        return self.g.const(True)

    def _print_BooleanFalse(self, expr: sp.Basic) -> str:
        return self.g.const(False)

    # -- arithmetic ----------------------------------------------------------------------
    def _print_Add(self, expr: sp.Add) -> str:
        terms = list(expr.as_ordered_terms())
        out = self.emit(terms[0])
        for term in terms[1:]:
            coeff, rest = term.as_coeff_Mul()
            if coeff < 0:   # x - y reads (and rounds) better than x + (-1)*y
                out = self.g.node("Sub", out, self.emit(-coeff * rest))
            else:
                out = self.g.node("Add", out, self.emit(term))
        return out

    def _print_Mul(self, expr: sp.Mul) -> str:
        coeff, rest = expr.as_coeff_Mul()
        numer, denom = [], []
        for factor in sp.Mul.make_args(rest):
            base, exp = factor.as_base_exp()
            if exp.is_number and exp.is_negative:
                denom.append(base if exp == -1 else sp.Pow(base, -exp))
            else:
                numer.append(factor)
        if coeff.is_Rational and coeff.q != 1:
            # Exact halves and thirds: divide by q instead of multiplying by a rounded 1/q.
            if coeff.p != 1:
                numer.insert(0, sp.Integer(coeff.p))
            denom.insert(0, sp.Integer(coeff.q))
        elif coeff != 1:
            numer.insert(0, coeff)
        if not numer:
            numer = [sp.Integer(1)]
        if numer[0] == -1 and len(numer) > 1:
            out = self.g.node("Neg", self._product(numer[1:]))
        else:
            out = self._product(numer)
        for factor in denom:
            out = self.g.node("Div", out, self.emit(factor))
        return out

    def _product(self, factors: list[sp.Expr]) -> str:
        out = self.emit(factors[0])
        for factor in factors[1:]:
            out = self.g.node("Mul", out, self.emit(factor))
        return out

    def _print_Pow(self, expr: sp.Pow) -> str:
        base, exp = expr.args
        if exp == sp.Rational(1, 2):
            return self.g.node("Sqrt", self.emit(base))
        if exp.is_Integer and 1 < int(exp) <= 4:
            return self._product([base] * int(exp))   # exact products, as the kernels do
        if exp.is_number and exp.is_negative:
            return self.g.node("Div", self.g.const(1.0), self.emit(sp.Pow(base, -exp)))
        return self.g.node("Pow", self.emit(base), self.emit(exp))

    # -- functions -----------------------------------------------------------------------
    def _print_Function(self, expr: sp.Function) -> str:
        if getattr(expr, "polynomial_branch", False):   # a Taylor branch: as the kernels do
            return self.emit(expr.horner())
        op = self.known_functions.get(type(expr))
        if op is None or len(expr.args) != 1:
            # A function with an elementary definition (expm1 -> exp(x) - 1, log1p, Cbrt, ...)
            # is emitted through it; ONNX lacks the fused op, so tiny |x| lose relative digits.
            elementary = sp.expand_func(expr)
            if elementary != expr:
                return self.emit(elementary)
            return self._unsupported(expr)
        return self.g.node(op, self.emit(expr.args[0]))

    def _print_erfc(self, expr: sp.Expr) -> str:
        return self.g.node("Sub", self.g.const(1.0), self.emit(sp.erf(expr.args[0])))

    def _print_Heaviside(self, expr: sp.Expr) -> str:
        x = expr.args[0]
        at_zero = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
        inner = self.g.node("Where", self.emit(sp.StrictLessThan(x, 0)), self.g.const(0.0),
                            self.emit(at_zero))
        return self.g.node("Where", self.emit(sp.StrictGreaterThan(x, 0)), self.g.const(1.0),
                           inner)

    def _print_Max(self, expr: sp.Expr) -> str:
        return self.g.node("Max", *(self.emit(a) for a in expr.args))

    def _print_Min(self, expr: sp.Expr) -> str:
        return self.g.node("Min", *(self.emit(a) for a in expr.args))

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        pieces = list(expr.args)
        last_value, last_cond = pieces[-1]
        if last_cond != sp.true:
            raise OnnxExportError(f"{self.where}: Piecewise {expr} has no otherwise branch "
                                  "(its last condition must be True)")
        out = self.emit(last_value)
        for value, cond in reversed(pieces[:-1]):
            out = self.g.node("Where", self.emit(cond), self.emit(value), out)
        return out

    # -- conditions ----------------------------------------------------------------------
    def _print_Relational(self, expr: Relational) -> str:
        op, negate = self.relations.get(type(expr).__name__, (None, False))
        if op is None:
            return self._unsupported(expr)
        out = self.g.node(op, self.emit(expr.lhs), self.emit(expr.rhs))
        return self.g.node("Not", out) if negate else out

    def _print_And(self, expr: sp.And) -> str:
        return self._chain("And", expr.args)

    def _print_Or(self, expr: sp.Or) -> str:
        return self._chain("Or", expr.args)

    def _print_Not(self, expr: sp.Not) -> str:
        return self.g.node("Not", self.emit(expr.args[0]))

    def _chain(self, op: str, args: tuple) -> str:
        out = self.emit(args[0])
        for arg in args[1:]:
            out = self.g.node(op, out, self.emit(arg))
        return out


def _feature_node(g: _Graph, model, feature, current: str) -> str:
    """One image layer (NCHW, as ONNX's Conv/MaxPool/AveragePool/Flatten) and its activation."""
    layer, kind = feature.layer, feature.kind
    if kind == "conv2d":
        inputs = [current, g.array(f"{feature.name}.W", model.params[f"{feature.name}.W"])]
        if layer.bias:
            inputs.append(g.array(f"{feature.name}.b", model.params[f"{feature.name}.b"]))
        (ph, pw) = layer.padding
        out = g.node("Conv", *inputs, kernel_shape=list(layer.kernel),
                     strides=list(layer.stride), pads=[ph, pw, ph, pw])
    elif kind in ("maxpool2d", "avgpool2d"):
        op = "MaxPool" if kind == "maxpool2d" else "AveragePool"
        out = g.node(op, current, kernel_shape=list(layer.kernel), strides=list(layer.stride))
    elif kind == "flatten":
        out = g.node("Flatten", current, axis=1)
    else:
        raise OnnxExportError(f"layer {feature.name}: layer kind {kind!r} has no ONNX "
                              "translation")
    act = feature.activation
    if act is None:
        return out
    where = f"layer {feature.name} activation {act.name!r}"
    return OnnxPrinter(g, {Z: out}, where).emit(act.stable_forward)


def onnx_dtype(model, dtype: object = None) -> np.dtype:
    """The dtype of the exported file: ``dtype`` if given (float32 or float64), else the model's.

    >>> onnx_dtype(None, "float32")
    dtype('float32')
    """
    if dtype is None:
        return np.dtype(model.dtype)
    try:
        chosen = np.dtype(dtype)
    except TypeError:
        chosen = None
    if chosen not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise OnnxExportError(f"to_onnx: dtype must be 'float32' or 'float64', got {dtype!r}")
    return chosen


def build_onnx(model, dtype: object = None) -> object:
    """The `onnx.ModelProto` of a compiled symgrad `Model` with its current weights.

    ``dtype`` (float32 or float64; default the model's) is the type of the file's input,
    weights and output: a float64 model exported as float32 runs on onnxruntime's CPU
    provider, which has no float64 Conv, MaxPool, AveragePool or Erf.
    """
    dtype = onnx_dtype(model, dtype)
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:   # pragma: no cover - the optional extra is missing
        raise ImportError('to_onnx needs the onnx package: pip install "symgrad[onnx]"') from None
    plan = model.plan
    elem = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}[dtype.name]
    g = _Graph(dtype)
    current = "X"
    for feature in plan.features:
        current = _feature_node(g, model, feature, current)
    last = len(plan.layers) - 1
    for i, layer in enumerate(plan.layers):
        W = g.array(f"{layer.name}.W", model.params[f"{layer.name}.W"])
        if layer.bias:
            b = g.array(f"{layer.name}.b", model.params[f"{layer.name}.b"])
            z = g.node("Gemm", current, W, b)
        else:
            z = g.node("MatMul", current, W)
        if i < last:
            act = layer.activation
            if act is None:
                current = z
                continue
            where = f"layer {layer.name} activation {act.name!r}"
            current = OnnxPrinter(g, {Z: z}, where).emit(act.stable_forward)
        else:
            out = plan.output
            where = f"output layer {layer.name} activation {out.activation_name!r}"
            if out.kind == "softmax":
                current = g.node("Softmax", z, axis=1)
            else:
                current = OnnxPrinter(g, {Z: z}, where).emit(out.evaluated_prediction)
    g.nodes.append(helper.make_node("Identity", [current], ["P"]))
    graph = helper.make_graph(
        g.nodes, "symgrad_network",
        [helper.make_tensor_value_info("X", elem, ["n", *plan.input_shape] if plan.features
                                       else ["n", plan.input_dim])],
        [helper.make_tensor_value_info("P", elem, ["n", plan.output_dim])],
        initializer=g.initializers,
        doc_string=f"symgrad {model!r}: P = predictions ({plan.output.activation_name} output)")
    proto = helper.make_model(graph, producer_name="symgrad",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_onnx(model, path: str | os.PathLike, dtype: object = None) -> str:
    """Write ``model`` (weights included) to ``path`` as ONNX, atomically; returns the path.

    ``dtype``: see `build_onnx`.
    """
    proto = build_onnx(model, dtype)   # every error happens before the file is touched
    path = os.fspath(path)
    # Atomic, the umask's mode, stale temporaries of a killed write cleaned (as Model.save).
    write_user_file(path, lambda handle: handle.write(proto.SerializeToString()), "onnx",
                    ".onnx")
    return path
