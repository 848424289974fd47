"""Layer kinds' backward rules and index formulas, proven by SymPy; and that the proof can fail.

Every registered kind x every proof instance is parametrised from the registry, so a new
kind gets its proof tests for free. The negative tests register wrong variants of the
kinds (``dataclasses.replace``) for the length of one test.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sympy as sp

from symgrad.definition.conv import Conv2d, conv2d_backward, conv2d_index_formula, pad_images
from symgrad.definition.layer_kinds import LAYER_KINDS, object_zeros, register_layer_kind
from symgrad.definition.pooling import AvgPool2d, Flatten, MaxPool2d, avgpool_backward
from symgrad.prove import layer_rules
from symgrad.prove.identity import ProofError
from symgrad.prove.layer_rules import (
    prove_all_layer_kinds,
    prove_index_formula,
    prove_layer_kind,
    require_proven,
)

# The issue's example: input 1x2x5x5, kernel 3x2x3x3, stride 2, padding 1.
ISSUE_CONV = Conv2d(2, 3, 3, stride=2, padding=1)
ISSUE_INSTANCE = (ISSUE_CONV, (2, 5, 5), 1)

CASES = [(name, i) for name, kind in LAYER_KINDS.items()
         for i in range(len(kind.proof_instances))]


def _instance(name: str, i: int):
    return LAYER_KINDS[name].proof_instances[i]


@pytest.fixture(scope="module")
def registry_proofs():
    """The whole registry proven once, through the entry point over the registry."""
    return prove_all_layer_kinds()


def _of_instance(proofs, name: str, i: int):
    layer, in_shape, samples = layer_rules._instance(_instance(name, i))
    return [p for p in proofs if p.kind == name and p.layer == repr(layer)
            and p.in_shape == (samples, *in_shape)]


@pytest.mark.parametrize(("name", "i"), CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_every_backward_rule_is_proven(registry_proofs, name, i):
    kind = LAYER_KINDS[name]
    layer, in_shape = _instance(name, i)[:2]
    proofs = [p for p in _of_instance(registry_proofs, name, i) if p.target != "forward"]
    assert [p for p in proofs if not p.passed] == []
    wanted = {"dX", *(f"d{p}" for p in layer.param_shapes(in_shape))}
    if kind.piecewise:
        wanted.add("route")
    assert {p.target for p in proofs} == wanted
    for p in proofs:
        assert p.compared > 0 and type(p.max_abs_diff) is float and p.max_abs_diff < 1e-12
        assert p.symbolic is (not kind.piecewise)


@pytest.mark.parametrize(("name", "i"), CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_index_formula_equals_forward(registry_proofs, name, i):
    layer, in_shape, samples = layer_rules._instance(_instance(name, i))
    (proof,) = [p for p in _of_instance(registry_proofs, name, i) if p.target == "forward"]
    assert proof.passed, proof.detail
    assert proof.symbolic
    assert proof.compared == samples * np.prod(layer.out_shape(in_shape, "test"))


def test_prove_all_covers_the_registry(registry_proofs):
    assert {p.kind for p in registry_proofs} == set(LAYER_KINDS)
    for name, kind in LAYER_KINDS.items():
        forward = [p for p in registry_proofs if p.kind == name and p.target == "forward"]
        assert len(forward) == len(kind.proof_instances)
    assert require_proven(registry_proofs) == registry_proofs


def test_prove_layer_kind_defaults_to_the_kinds_instances():
    kind = LAYER_KINDS["avgpool2d"]
    proofs = prove_layer_kind(kind)
    assert [(p.layer, p.in_shape[1:]) for p in proofs] == [
        (repr(layer), shape) for layer, shape in kind.proof_instances]
    assert all(p.passed and p.symbolic for p in proofs)


def test_issue_example_conv_instance():
    proofs = prove_layer_kind(LAYER_KINDS["conv2d"], [ISSUE_INSTANCE])
    got = {p.target: (p.compared, p.symbolic, p.passed, p.in_shape) for p in proofs}
    assert got == {"dX": (50, True, True, (1, 2, 5, 5)), "dW": (54, True, True, (1, 2, 5, 5)),
                   "db": (3, True, True, (1, 2, 5, 5))}
    formula = prove_index_formula(LAYER_KINDS["conv2d"], ISSUE_CONV, (2, 5, 5), samples=1)
    assert formula.passed and formula.compared == 3 * 3 * 3


def test_prove_all_reports_a_wrong_kind(temporary_kind):
    wrong = temporary_kind("flatten", backward=lambda layer, X, params, dY:
                           (dY.reshape(X.shape, order="F"), {}))
    proofs = prove_all_layer_kinds()    # the registry, now with the wrong kind in it
    assert {p.kind for p in proofs} == set(LAYER_KINDS)
    assert [(p.target, p.passed) for p in proofs if p.kind == wrong.name] == [
        ("dX", False), ("forward", True)]
    assert all(p.passed for p in proofs if p.kind != wrong.name)
    with pytest.raises(ProofError, match=f"{wrong.name} Flatten.*dX: at"):
        require_proven(proofs)


# --- the checker can fail -----------------------------------------------------------------


@pytest.fixture
def temporary_kind():
    """register(base, **changes): a wrong variant of a registered kind, removed afterwards."""
    added: list[str] = []

    def register(base: str, **changes):
        kind = dataclasses.replace(LAYER_KINDS[base], name=f"{base}_wrong{len(added)}",
                                   **changes)
        added.append(kind.name)
        return register_layer_kind(kind)

    yield register
    for name in added:
        del LAYER_KINDS[name]


def _failed(proofs) -> dict[str, str]:
    return {p.target: p.detail for p in proofs if not p.passed}


def _conv_rule(stride_in_dW: bool = True, flip: bool = True, sum_samples: bool = True):
    """The conv rules written out again, with one mistake switched on at a time."""

    def backward(layer, X, params, dZ):
        W = params["W"]
        (kh, kw), (ph, pw) = layer.kernel, layer.padding
        sh, sw = layer.stride if stride_in_dW else (1, 1)
        oh, ow = dZ.shape[2:]
        Xp = pad_images(X, layer.padding)
        dW = object_zeros(W.shape, X)
        dXp = object_zeros(Xp.shape, X)
        # the scatter of dZ W through the windows IS the full convolution with the flipped
        # kernel; the unflipped variant scatters W[.., kh-1-p, kw-1-q] instead
        kernel = W if flip else W[:, :, ::-1, ::-1]
        s0, s1 = layer.stride
        for p in range(kh):
            for q in range(kw):
                patch = Xp[:, :, p:p + sh * (oh - 1) + 1:sh, q:q + sw * (ow - 1) + 1:sw]
                dW[:, :, p, q] = np.tensordot(dZ, patch, axes=([0, 2, 3], [0, 2, 3]))
                region = dXp[:, :, p:p + s0 * (oh - 1) + 1:s0, q:q + s1 * (ow - 1) + 1:s1]
                region += np.tensordot(dZ, kernel[:, :, p, q], axes=([1], [0])
                                       ).transpose(0, 3, 1, 2)
        db = dZ.sum(axis=(0, 2, 3)) if sum_samples else dZ[0].sum(axis=(1, 2))
        return dXp[:, :, ph:ph + X.shape[2], pw:pw + X.shape[3]], {"W": dW, "b": db}

    return backward


def test_conv_rules_written_out_again_are_proven(temporary_kind):
    # The positive control of the three mistakes below: without a mistake it passes.
    kind = temporary_kind("conv2d", backward=_conv_rule())
    assert _failed(prove_layer_kind(kind, [ISSUE_INSTANCE])) == {}


def test_conv_dW_forgetting_the_stride_fails(temporary_kind):
    kind = temporary_kind("conv2d", backward=_conv_rule(stride_in_dW=False))
    failed = _failed(prove_layer_kind(kind, [ISSUE_INSTANCE]))
    assert set(failed) == {"dW"} and "sympy.diff gives" in failed["dW"]


def test_conv_dX_without_flipping_W_fails(temporary_kind):
    kind = temporary_kind("conv2d", backward=_conv_rule(flip=False))
    assert set(_failed(prove_layer_kind(kind, [ISSUE_INSTANCE]))) == {"dX"}


def test_conv_db_summing_one_sample_fails(temporary_kind):
    kind = temporary_kind("conv2d", backward=_conv_rule(sum_samples=False))
    assert set(_failed(prove_layer_kind(kind, [(ISSUE_CONV, (2, 5, 5), 2)]))) == {"db"}


def _dense_rule(transpose_W: bool = True, sum_rows: bool = True, transpose_X: bool = True):
    """Dense's rules with one mistake switched on at a time (the textbook slips)."""

    def backward(layer, X, params, dZ):
        W = params["W"]
        dX = dZ @ W.T if transpose_W else dZ @ W[::-1].T   # dZ W (rows reversed to fit)
        dW = X.T @ dZ if transpose_X else X[:1].T @ dZ[:1] * X.shape[0]
        grads = {"W": dW}
        if layer.bias:
            grads["b"] = dZ.sum(axis=0) if sum_rows else dZ[0]
        return dX, grads

    return backward


def test_dense_rules_written_out_again_are_proven(temporary_kind):
    kind = temporary_kind("dense", backward=_dense_rule())
    assert _failed(prove_layer_kind(kind)) == {}


@pytest.mark.parametrize(("mistake", "target"), [
    ({"transpose_W": False}, "dX"), ({"sum_rows": False}, "db"), ({"transpose_X": False}, "dW")])
def test_dense_rule_mistakes_fail(temporary_kind, mistake, target):
    kind = temporary_kind("dense", backward=_dense_rule(**mistake))
    assert set(_failed(prove_layer_kind(kind))) == {target}


def test_avgpool_spreading_by_one_over_k_plus_one_fails(temporary_kind):
    def backward(layer, X, params, dY):
        k = layer.kernel[0] * layer.kernel[1]
        return avgpool_backward(layer, X, params, dY)[0] * sp.Rational(k, k + 1), {}

    kind = temporary_kind("avgpool2d", backward=backward)
    failed = _failed(prove_layer_kind(kind))
    assert set(failed) == {"dX"}
    assert not any(p.passed for p in prove_layer_kind(kind))


def _maxpool_rule(route: str):
    """Max pooling's rule with the tie broken by ``route``: "first", "last" or "all"."""

    def backward(layer, X, params, dY):
        (kh, kw), (sh, sw) = layer.kernel, layer.stride
        oh, ow = dY.shape[2:]
        views = [(p, q, X[:, :, p:p + sh * (oh - 1) + 1:sh, q:q + sw * (ow - 1) + 1:sw])
                 for p in range(kh) for q in range(kw)]
        Y = np.maximum.reduce([v for _, _, v in views])
        dX, taken = np.zeros(X.shape), np.zeros(Y.shape, dtype=bool)
        for p, q, view in views[::-1] if route == "last" else views:
            hit = (view == Y) & (~taken if route != "all" else True)
            taken |= hit
            dX[:, :, p:p + sh * (oh - 1) + 1:sh, q:q + sw * (ow - 1) + 1:sw] += np.where(hit, dY, 0)
        return dX, {}

    return backward


def test_maxpool_rule_written_out_again_is_proven(temporary_kind):
    # The positive control of the two wrong tie rules below, on the same instance.
    kind = temporary_kind("maxpool2d", backward=_maxpool_rule("first"))
    assert _failed(prove_layer_kind(kind, [(MaxPool2d(2), (1, 4, 4))])) == {}


@pytest.mark.parametrize("route", ["last", "all"])
def test_maxpool_routing_to_another_maximum_fails_at_a_tie(temporary_kind, route):
    kind = temporary_kind("maxpool2d", backward=_maxpool_rule(route))
    proofs = prove_layer_kind(kind, [(MaxPool2d(2), (1, 4, 4))])
    failed = _failed(proofs)
    # Without ties every rule routes to the only maximum: only the tied points tell.
    assert set(failed) == {"dX"} and failed["dX"].startswith("tied point")
    assert [p.passed for p in proofs if p.target == "route"] == [True]


def test_maxpool_derivative_is_split_at_an_unbroken_tie():
    # Why tied points are perturbed: at an exact tie SymPy's Heaviside(0) = 1/2 splits the
    # gradient, and the route check says so.
    kind, layer = LAYER_KINDS["maxpool2d"], MaxPool2d(2)
    X, params, Y = layer_rules._setup(kind, layer, (1, 2, 2), 1)
    G = layer_rules._symbols("dY", Y.shape)
    dX = layer_rules._derived(G, Y, {"dX": X})["dX"]
    values = {x: sp.Integer(1) for x in X.ravel()}
    coeffs, bad = layer_rules._coefficients(dX, values, {G[0, 0, 0, 0]: (0, 0, 0, 0)})
    assert bad == ""
    assert "want one 1" in layer_rules._route_detail(coeffs, Y.shape, "tied")


def test_a_rule_that_raises_is_a_failed_proof(temporary_kind):
    def backward(layer, X, params, dY):
        raise ValueError("no rule")

    kind = temporary_kind("flatten", backward=backward)
    (proof,) = prove_layer_kind(kind)
    assert not proof.passed and "ValueError: no rule" in proof.detail


def test_missing_parameter_gradient_fails(temporary_kind):
    kind = temporary_kind("conv2d", backward=lambda layer, X, params, dZ:
                          (conv2d_backward(layer, X, params, dZ)[0], {}))
    assert set(_failed(prove_layer_kind(kind, [ISSUE_INSTANCE]))) == {"dX", "dW", "db"}


def _flatten_hcw():
    n, c, h, w, C, W = sp.symbols("n c h w C W", integer=True, nonnegative=True)
    return sp.IndexedBase("Y")[n, (h * C + c) * W + w], sp.IndexedBase("X")[n, c, h, w]


@pytest.mark.parametrize(("base", "layer", "in_shape", "formula"), [
    # conv without the padding shift: reads X[s i + p] instead of X[s i + p - P]
    ("conv2d", ISSUE_CONV, (2, 5, 5), lambda layer: conv2d_index_formula(
        Conv2d(layer.in_ch, layer.out_ch, layer.kernel, stride=layer.stride, bias=layer.bias))),
    # avg pool dividing by k + 1
    ("avgpool2d", AvgPool2d(2), (1, 4, 4), lambda layer: (
        LAYER_KINDS["avgpool2d"].index_formula(layer)[0],
        LAYER_KINDS["avgpool2d"].index_formula(layer)[1] * sp.Rational(4, 5))),
    # max pool over a window one column short
    ("maxpool2d", MaxPool2d(2), (1, 4, 4), lambda layer: (
        LAYER_KINDS["maxpool2d"].index_formula(MaxPool2d((2, 1), stride=2))[0],
        LAYER_KINDS["maxpool2d"].index_formula(MaxPool2d((2, 1), stride=2))[1])),
    # flatten in (H, C, W) order
    ("flatten", Flatten(), (2, 2, 3), lambda layer: _flatten_hcw()),
], ids=["conv-no-padding-shift", "avgpool-k+1", "maxpool-short-window", "flatten-HCW"])
def test_wrong_index_formula_fails(temporary_kind, base, layer, in_shape, formula):
    assert prove_index_formula(LAYER_KINDS[base], layer, in_shape).passed
    kind = temporary_kind(base, index_formula=formula)
    proof = prove_index_formula(kind, layer, in_shape)
    assert not proof.passed and proof.detail
