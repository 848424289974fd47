"""The layer-kind registry holds every layer but the activations, and each entry is complete."""

from __future__ import annotations

import pytest

import symgrad as sg
from symgrad.codegen.feature_layers import EMITTERS
from symgrad.definition.errors import LayerSizeError
from symgrad.definition.layer_kinds import LAYER_KINDS, FeatureLayer


def test_dense_and_every_image_layer_are_registered():
    assert {"dense", "conv2d", "maxpool2d", "avgpool2d", "flatten"} <= set(LAYER_KINDS)
    assert LAYER_KINDS["dense"].layer_type is sg.Dense


@pytest.mark.parametrize("name", sorted(LAYER_KINDS))
def test_every_entry_names_its_layer_class_and_its_code(name):
    kind = LAYER_KINDS[name]
    assert kind.layer_type.kind == name          # the class knows its entry
    layer, in_shape = kind.proof_instances[0][:2]
    assert isinstance(layer, kind.layer_type)
    assert set(layer.param_shapes(in_shape)) <= set(kind.params)
    assert len(layer.out_shape(in_shape, "test")) >= 1
    # Image kinds are emitted by codegen/feature_layers (keyed by name); Dense by the
    # GEMM code of codegen/kernels. A new image kind without an emitter fails here.
    if issubclass(kind.layer_type, FeatureLayer):
        assert name in EMITTERS
    else:
        assert name == "dense"


def test_dense_shape_rule_names_the_layer_and_shapes():
    with pytest.raises(LayerSizeError, match=r"layer 2 Dense\(3 -> 2\) expects input "
                                                r"shape \(3,\), got \(4,\)"):
        sg.Dense(3, 2).out_shape((4,), "layer 2")
