"""Seed 003: Value.sin and Value.cos, their limit derivation in real terms (angle-sum
formula and the two standard limits, computed by SymPy), and the plot of a function with
its derivative."""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.simplify.limit import limit_steps

a, h = sp.Symbol("a", real=True), sp.Symbol("h", real=True)
POINTS = (-2.7, -1.0, 0.0, 0.3, 1.2, 3.1)


@pytest.mark.parametrize("x", POINTS)
def test_forward_is_math_sin_and_cos(x):
    assert sg.Value(x).sin().data == math.sin(x)
    assert sg.Value(x).cos().data == math.cos(x)


def _graph(xv: float, wv: float):
    x, w = sg.Value(xv, label="x"), sg.Value(wv, label="w")
    y = (x * w).sin() + x.cos() * w
    y.label = "y"
    return y, x, w


@pytest.mark.parametrize("xv, wv", [(0.4, -1.3), (2.0, 0.7), (-1.1, 2.5)])
def test_backward_matches_the_calculus_and_finite_differences(xv, wv):
    y, x, w = _graph(xv, wv)
    y.backward()
    # d/dx [sin(xw) + w cos x] = w cos(xw) - w sin x; d/dw = x cos(xw) + cos x
    assert x.grad == pytest.approx(wv * math.cos(xv * wv) - wv * math.sin(xv), rel=1e-12)
    assert w.grad == pytest.approx(xv * math.cos(xv * wv) + math.cos(xv), rel=1e-12)
    step = 1e-6
    for leaf, args in ((x, lambda d: (xv + d, wv)), (w, lambda d: (xv, wv + d))):
        slope = (_graph(*args(step))[0].data - _graph(*args(-step))[0].data) / (2 * step)
        assert leaf.grad == pytest.approx(slope, rel=1e-6, abs=1e-8)
    xs, ws = sp.Symbol("x", real=True), sp.Symbol("w", real=True)
    assert sp.expand(sg.grad(y, x) - (ws * sp.cos(ws * xs) - ws * sp.sin(xs))) == 0


@pytest.mark.parametrize("f, shifted, identity, grouped, result", [
    (sp.sin(a), sp.sin(a + h), sp.sin(a) * sp.cos(h) + sp.cos(a) * sp.sin(h),
     "sin(a)*(cos(h) - 1)/h + cos(a)*sin(h)/h", sp.cos(a)),
    (sp.cos(a), sp.cos(a + h), sp.cos(a) * sp.cos(h) - sp.sin(a) * sp.sin(h),
     "cos(a)*(cos(h) - 1)/h - sin(a)*sin(h)/h", -sp.sin(a)),
])
def test_limit_runs_through_the_angle_sum_and_the_standard_limits(f, shifted, identity,
                                                                  grouped, result):
    steps = limit_steps(f, a, output=sp.Symbol("o", real=True))
    by_label = {s.label: s for s in steps}
    # the angle-sum formula, as SymPy's expand_trig gives it, a true identity
    (eq,) = by_label["angle-sum formula"].expr
    assert eq.lhs == shifted and eq.rhs == sp.expand_trig(shifted)
    assert sp.expand(eq.rhs - identity) == 0
    # regrouped by what does not depend on h
    assert by_label["group by the part without h"].text == grouped
    # the two standard limits, with the right values, each sympy.limit's
    limits = {lim.lhs.args[0]: lim.rhs for lim in by_label["standard limits"].expr}
    assert limits == {sp.sin(h) / h: 1, (sp.cos(h) - 1) / h: 0}
    assert all(sp.limit(q, h, 0) == v for q, v in limits.items())
    final = [s for s in steps if s.relation == "->"]
    assert len(final) == 1 and final[0].expr == result
    # in real terms: no imaginary unit, no complex exponentials, in any line
    for s in steps:
        assert s.expr is None or not s.expr.has(sp.I, sp.exp), s.label
        assert not re.search(r"\bI\b|exp", s.text), s.text
        assert "e^{" not in s.latex and r"\mathrm{i}" not in s.latex, s.latex


@pytest.mark.parametrize("f", [sp.sin(2 * a), a * sp.sin(a), sp.sin(a) ** 2,
                               sp.cos(a) * sp.sin(a)])
def test_composite_trig_formulas_take_the_same_route_to_sympys_derivative(f):
    steps = limit_steps(f, a)
    assert "standard limits" in [s.label for s in steps]
    final = next(s for s in steps if s.relation == "->")
    assert sp.simplify(final.expr - sp.diff(f, a)) == 0
    quotient = (f.xreplace({a: a + h}) - f) / h
    rng = random.Random(2)
    for s in steps:
        if s.relation == "=" and s.expr is not None and not s.label.startswith("equals"):
            at = {a: rng.uniform(0.2, 1.5), h: rng.uniform(0.01, 0.5)}
            assert float(s.expr.subs(at)) == pytest.approx(float(quotient.subs(at)), rel=1e-9)


def test_the_printout_of_a_sine_node_shows_the_notes_derivation():
    x = sg.Value(0.5, label="a")
    y = x.sin()
    y.label = "y"
    text = sg.derivation(y, steps="limit").text()
    assert "sin(a + h) = sin(a)*cos(h) + sin(h)*cos(a)" in text
    assert "-> sin(a)*0 + cos(a)*1 = cos(a)" in text
    assert "exp(" not in text and "I*" not in text


def _curves(fig) -> list[tuple[np.ndarray, np.ndarray, str]]:
    lines = [ln for ln in fig.axes[0].lines if not ln.get_label().startswith("_")]
    return [(np.asarray(ln.get_xdata()), np.asarray(ln.get_ydata()), ln.get_label())
            for ln in lines]


def test_plot_of_sin_shows_sin_and_its_derivative_cos(tmp_path):
    t = sp.Symbol("t", real=True)
    fig = sg.plot_derivative(sp.sin(t), t, interval=(0, 2 * math.pi), points=25,
                             path=tmp_path / "sin.png")
    (xs, ys, label), (xs2, dys, dlabel) = _curves(fig)
    assert len(xs) == 25 and xs[0] == 0 and xs[-1] == pytest.approx(2 * math.pi)
    np.testing.assert_allclose(ys, np.sin(xs), atol=1e-12)
    np.testing.assert_allclose(dys, np.cos(xs2), atol=1e-12)
    assert label == "sin(t)" and dlabel == "sin(t)' = cos(t)"
    assert (tmp_path / "sin.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ticks = [tk.get_text() for tk in fig.axes[0].get_xticklabels()]
    assert ticks == ["0", "π/2", "π", "3π/2", "2π"]


@pytest.mark.parametrize("f", [sg.Value.cos, lambda v: v.cos(), "cos"],
                         ids=["method", "lambda", "op name"])
def test_plot_of_a_function_built_from_values(f, tmp_path):
    fig = sg.plot_derivative(f, interval=(-1.0, 4.0), path=tmp_path / "cos.pdf")
    (xs, ys, _), (_, dys, dlabel) = _curves(fig)
    np.testing.assert_allclose(ys, np.cos(xs), atol=1e-12)
    np.testing.assert_allclose(dys, -np.sin(xs), atol=1e-12)
    assert dlabel == "cos(x)' = -sin(x)"
    assert (tmp_path / "cos.pdf").read_bytes()[:4] == b"%PDF"


def test_plot_reads_a_composite_value_function_at_the_intervals_middle(tmp_path):
    # log is defined only for positive values: the formula is read at the middle, 2.5
    fig = sg.plot_derivative(lambda v: (v * v).log(), "u", interval=(1.0, 4.0))
    (xs, ys, label), (_, dys, _) = _curves(fig)
    assert label == "log(u**2)"
    np.testing.assert_allclose(ys, np.log(xs**2), rtol=1e-12)
    np.testing.assert_allclose(dys, 2 / xs, rtol=1e-12)


def test_plot_refuses_what_it_cannot_plot(tmp_path):
    x, y = sp.symbols("x y", real=True)
    with pytest.raises(ValueError, match="pass var="):
        sg.plot_derivative(x * y)
    with pytest.raises(ValueError, match="besides the variable"):
        sg.plot_derivative(x * y, x)
    with pytest.raises(ValueError, match="lo < hi"):
        sg.plot_derivative(sp.sin(x), interval=(1.0, 1.0))
    with pytest.raises(ValueError, match="suffix"):
        sg.plot_derivative(sp.sin(x), path=tmp_path / "p.jpg")
    with pytest.raises(ValueError, match="not defined"):
        sg.plot_derivative(lambda v: v.log(), interval=(-3.0, -1.0))
    with pytest.raises(ValueError, match="one-operand"):
        sg.plot_derivative("mul")
    with pytest.raises(TypeError, match="not a Value"):
        sg.plot_derivative(lambda v: 3.0)
    assert not list(tmp_path.iterdir())
