"""The network examples run and show what they promise (the seed-000 ones: test_scalar_value)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import sympy as sp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
p, y, a = (sp.Symbol(s, real=True) for s in "pya")

# custom_activation registers "mish" and "logcosh": drop them when this module is done.
pytestmark = pytest.mark.usefixtures("scratch_registries")


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed001_steps_come_out_as_in_the_notes_and_xor_is_learned(tmp_path, capsys):
    got = _example("seed001_network").main(tmp_path / "out")
    assert sp.simplify(got["step_a"] - (p - y) / (p * (1 - p))) == 0
    assert sp.expand(got["step_b"] - p * (1 - p)) == 0
    assert got["delta"] == p - y
    assert got["relu"] == sp.Piecewise((1, a > 0), (0, True))
    assert str(got["dW2"]) == "A1.T*dZ2"
    assert got["loss"][-1] < 0.1 * got["loss"][0] and got["accuracy"] == 1.0
    assert (tmp_path / "out" / "seed001_network.tex").read_text().startswith(r"\documentclass")
    assert "Step C" in capsys.readouterr().out


def test_custom_activation_and_loss_derive_prove_compile_and_fit(capsys):
    got = _example("custom_activation").main()
    assert got["saved"] == ("z",)                 # Mish has no form in its own output
    assert got["delta"] == sp.tanh(p - y)         # d/dp log cosh(p - y), from SymPy
    names = [e.name for e in got["report"].entries]
    assert any("mish" in n for n in names) and any("logcosh" in n for n in names)
    assert any("vm_tanh_f64(" in line for line in got["kernel_lines"])
    assert got["loss"][-1] < 0.01 * got["loss"][0] and got["max_error"] < 0.15


def test_seed004_heads_cancel_to_p_minus_y_and_the_cnn_learns_digits(tmp_path, capsys):
    pytest.importorskip("sklearn")
    got = _example("seed004_pytorch_layers").main(tmp_path / "out", epochs=20)
    assert [str(delta) for _, _, delta in got["heads"]] == ["p - y", "p - y"]
    assert got["accuracy"] >= 0.97 and got["zero_accuracy"] >= 0.97
    assert got["loss"][-1] < 0.1 * got["loss"][0]
    names = got["report"].names()
    assert any("conv0.W" in n for n in names) and any("kernel" in n for n in names)
    assert (tmp_path / "out" / "seed004_cnn.tex").read_text().startswith(r"\documentclass")


def test_seed003_limits_derive_sin_and_cos_by_the_angle_sum_and_plot(tmp_path, capsys):
    got = _example("seed003_limits").main(tmp_path / "out")
    out = capsys.readouterr().out
    assert got["derivatives"] == {"b": "cos(a)", "c": "-sin(a)", "p": "3*x**2"}
    assert got["grads"]["b"] == pytest.approx(math.cos(math.pi / 6))
    assert got["grads"]["c"] == pytest.approx(-0.5) and got["grads"]["p"] == pytest.approx(6.75)
    assert "sin(a + h) = sin(a)*cos(h) + sin(h)*cos(a)" in out
    assert "lim_(h->0) (cos(h) - 1)/h = 0,  lim_(h->0) sin(h)/h = 1" in out
    assert "-> cos(a)*0 - sin(a)*1 = -sin(a)" in out
    assert all(p.stat().st_size > 0 for p in got["files"])
