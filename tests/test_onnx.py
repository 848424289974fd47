"""Model.to_onnx: the exported file, run by onnxruntime, predicts what the kernels predict.

Every registered activation (hidden) and every output head, in float32 (1e-6 relative)
and float64 (1e-12 relative; relative to the output's largest entry where values cancel
to ~0). onnxruntime has no float64 kernel for a few valid ONNX ops (Erf, Sinh, Cosh,
Atan, Tan and the inverse functions); such a file is run by ONNX's reference evaluator
instead, with an exact double erf, so the graph itself is still checked to 1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.codegen.onnx_export import OnnxExportError, OnnxPrinter, _Graph
from symgrad.definition.activations import REGISTRY
from symgrad.definition.formulas import Z
from symgrad.definition.layers import Dense

onnx = pytest.importorskip("onnx", reason="onnx is a test extra (pip install -e '.[test]')")
ort = pytest.importorskip("onnxruntime")

RTOL = {"float32": 1e-6, "float64": 1e-12}
NO_DOUBLE_KERNEL_IN_ORT = {"Erf", "Sinh", "Cosh", "Atan", "Tan", "Asin", "Acos", "Asinh",
                           "Acosh", "Atanh", "Conv", "MaxPool", "AveragePool"}
ELEMENTWISE = sorted(n for n, cls in REGISTRY.items() if cls.entry.kind == "elementwise")
HEADS = [("softmax", "cross_entropy", 3), ("sigmoid", "bce", 2), ("identity", "mse", 2)]


def _run_exact_reference(path: str, X: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.ops._op import OpRunUnaryNum

    class Erf(OpRunUnaryNum):   # the stock reference op rounds through float32
        def _run(self, x):
            return (np.vectorize(math.erf, otypes=[x.dtype])(x),)

    return ReferenceEvaluator(path, new_ops=[Erf]).run(None, {"X": X})[0]


def _onnx_predict(path: str, X: np.ndarray) -> np.ndarray:
    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as err:   # noqa: BLE001 - onnxruntime raises its own exception types
        ops = {node.op_type for node in onnx.load(path).graph.node}
        assert X.dtype == np.float64 and "NOT_IMPLEMENTED" in str(err), err
        assert ops & NO_DOUBLE_KERNEL_IN_ORT, (ops, err)
        return _run_exact_reference(path, X)
    return session.run(None, {"X": X})[0]


def _compare(model, tmp_path, X: np.ndarray) -> None:
    path = model.to_onnx(str(tmp_path / "model.onnx"))
    X = X.astype(model.dtype)
    got = _onnx_predict(path, X)
    want = model.predict_proba(X)
    assert got.dtype == want.dtype and got.shape == want.shape
    # Relative to the output's scale: an identity output near 0 is a sum that cancelled,
    # where float32 rounding of the O(1) terms is all either side can promise.
    rtol = RTOL[model.dtype.name]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.max(np.abs(want))))


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(0).normal(scale=2.0, size=(64, 3))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_registered_activation(name, dtype, tmp_path, X) -> None:
    net = sg.Sequential(sg.Dense(3, 6), REGISTRY[name](), sg.Dense(6, 2), sg.Sigmoid())
    model = sg.compile(net, loss="bce", dtype=dtype, seed=2)
    _compare(model, tmp_path, X)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("head,loss,k", HEADS)
def test_every_output_head_after_training(head, loss, k, dtype, tmp_path, X) -> None:
    net = sg.Sequential(sg.Dense(3, 5), sg.Tanh(), sg.Dense(5, 4, bias=False), sg.ReLU(),
                        sg.Dense(4, k), REGISTRY[head]())
    model = sg.compile(net, loss=loss, dtype=dtype, seed=0, optimizer=sg.Adam(lr=0.01))
    y = np.arange(len(X)) % k if head == "softmax" else (X[:, :k] > 0).astype(float)
    model.fit(X, y, epochs=3, batch_size=16, seed=0)   # trained weights, not the initial ones
    _compare(model, tmp_path, X)


def test_custom_activations_export_from_their_formula(tmp_path, X, scratch_registries) -> None:
    x = sg.var("x")
    Mish = sg.activation("mish_onnx", x * sp.tanh(sp.log(1 + sp.exp(x))))
    Clip = sg.activation("clip_onnx", sp.Piecewise((-1, x < -1), (x, x <= 1), (1, True)))
    Cubic = sg.activation("cubic_onnx", x**3 / 6 - x / 2 + sp.Abs(x) ** sp.Rational(3, 2))
    for layer in (Mish(), Clip(), Cubic()):
        for dtype in ("float32", "float64"):
            net = sg.Sequential(sg.Dense(3, 4), layer, sg.Dense(4, 1))
            _compare(sg.compile(net, loss="mse", dtype=dtype, seed=1), tmp_path, X)


INVERSE_AND_TAN = {   # each function on arguments inside its domain
    "tan": lambda x: sp.tan(sp.atan(x) / 2), "asin": lambda x: sp.asin(x / (1 + sp.Abs(x))),
    "acos": lambda x: sp.acos(x / (1 + x**2)), "asinh": sp.asinh,
    "acosh": lambda x: sp.acosh(2 + x**2), "atanh": lambda x: sp.atanh(sp.tanh(x) / 2)}


@pytest.mark.parametrize("name", sorted(INVERSE_AND_TAN))
def test_inverse_functions_and_tan_export(name, tmp_path, X, scratch_registries) -> None:
    layer = sg.activation(f"{name}_onnx", INVERSE_AND_TAN[name](sg.var("x")))
    for dtype in ("float32", "float64"):
        net = sg.Sequential(sg.Dense(3, 4), layer(), sg.Dense(4, 1))
        _compare(sg.compile(net, loss="mse", dtype=dtype, seed=1), tmp_path, X)


def test_no_onnx_operator_names_the_layer_and_function(tmp_path, monkeypatch) -> None:
    g = _Graph(np.dtype("float64"))
    with pytest.raises(OnnxExportError, match="my layer: the SymPy function zeta"):
        OnnxPrinter(g, {Z: "z"}, "my layer").emit(sp.zeta(Z))
    # Through the model: without a Tanh operator, the tanh layer is the one named.
    table = {k: v for k, v in OnnxPrinter.known_functions.items() if k is not sp.tanh}
    monkeypatch.setattr(OnnxPrinter, "known_functions", table)
    net = sg.Sequential(sg.Dense(2, 3), sg.ReLU(), sg.Dense(3, 3), sg.Tanh(), sg.Dense(3, 1))
    model = sg.compile(net, loss="mse")
    with pytest.raises(OnnxExportError, match="layer dense1 activation 'tanh'.*tanh"):
        model.to_onnx(str(tmp_path / "m.onnx"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_convolutional_network(dtype, tmp_path) -> None:
    """Conv (stride, padding, no bias), max and average pooling, Flatten: NCHW as ONNX's."""
    from symgrad.definition.layers import AvgPool2d, Conv2d, Flatten, MaxPool2d

    net = sg.Sequential(Conv2d(2, 3, 3, stride=2, padding=1), sg.Tanh(), MaxPool2d(2),
                        Conv2d(3, 4, (2, 3), padding=(1, 1), bias=False), sg.GELU(),
                        AvgPool2d(2, stride=1), Flatten(), Dense(8, 5), sg.ReLU(), Dense(5, 3),
                        sg.Softmax(), input_shape=(2, 9, 9))
    model = sg.compile(net, loss="cross_entropy", dtype=dtype, seed=4)
    X = np.random.default_rng(1).normal(size=(16, 2, 9, 9))
    _compare(model, tmp_path, X)
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert [d.dim_value or d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == \
        ["n", 2, 9, 9]


def test_a_float64_cnn_exported_as_float32_runs_on_onnxruntime(tmp_path) -> None:
    """onnxruntime's CPU provider has no float64 Conv: dtype="float32" gives a file it runs."""
    from symgrad.definition.layers import Conv2d, Flatten, MaxPool2d

    net = sg.Sequential(Conv2d(1, 2, 3), sg.GELU(), MaxPool2d(2), Flatten(), Dense(8, 3),
                        sg.Softmax(), input_shape=(1, 6, 6))
    model = sg.compile(net, loss="cross_entropy", dtype="float64", seed=2)
    X = np.random.default_rng(3).normal(size=(10, 1, 6, 6))
    path = model.to_onnx(str(tmp_path / "m.onnx"), dtype="float32")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {"X": X.astype(np.float32)})[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, model.predict_proba(X), rtol=1e-5, atol=1e-6)
    with pytest.raises(OnnxExportError, match="dtype must be 'float32' or 'float64', got 'float1"):
        model.to_onnx(str(tmp_path / "h.onnx"), dtype="float16")
    assert not (tmp_path / "h.onnx").exists()


@pytest.mark.parametrize("formula", ["x - tanh(x)", "5*x*asinh(3*x/2)/2 + x"])
def test_a_taylor_branch_exports_as_its_polynomial(formula, tmp_path, X, scratch_registries):
    """Forms that cancel near 0 evaluate a Taylor polynomial there (TaylorPolynomial);
    the file holds it in Horner form, as the kernels do (found by fuzz_formulas --cnn)."""
    from symgrad.simplify.series import TaylorPolynomial

    layer = sg.activation(f"taylor_onnx_{len(formula)}", formula)
    for dtype in ("float32", "float64"):
        model = sg.compile(sg.Sequential(sg.Dense(3, 4), layer(), sg.Dense(4, 1)), loss="mse",
                           dtype=dtype, seed=1)
        act = model.plan.layers[0].activation
        assert act.stable_forward.has(TaylorPolynomial) or act.derivative.has(TaylorPolynomial)
        scale = np.logspace(-9, 0, len(X))[:, None]   # rows whose z reach the branch
        _compare(model, tmp_path, X * scale)
