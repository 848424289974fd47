"""Softmax over a single output is always 1: loss 0, gradient 0, nothing learns. Refused."""

from __future__ import annotations

import pytest

import symgrad as sg
from symgrad.definition.errors import DefinitionError, PairingError


@pytest.mark.parametrize("layers", [
    [sg.Dense(3, 1), sg.Softmax()],
    [sg.Dense(2, 4), sg.Tanh(), sg.Dense(4, 1), sg.Softmax()],
])
def test_softmax_over_one_output_is_refused_at_compile_with_the_fix(layers):
    with pytest.raises(PairingError) as info:
        sg.compile(sg.Sequential(*layers), loss="cross_entropy")
    msg = str(info.value)
    assert isinstance(info.value, DefinitionError)
    last = len(layers) // 2 - 1
    assert f"dense{last}" in msg and "1 output" in msg          # which layer, what is wrong
    assert "never learns" in msg                                # why
    assert "Sigmoid" in msg and "bce" in msg                    # what to use instead


def test_softmax_over_two_outputs_still_compiles():
    model = sg.compile(sg.Sequential(sg.Dense(3, 2), sg.Softmax()), loss="cross_entropy")
    assert str(model.plan.output.delta) == "p - y"
