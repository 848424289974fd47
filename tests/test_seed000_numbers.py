"""Seed 000's numbers: the finite-difference slope with h = 1e-4 and its float error explained."""

import math
import shutil

import pytest
from seed_graphs import leaf, neuron

import symgrad as sg
from symgrad.render.slope import slope_report


def _seed000():
    a, b, c = sg.Value(2.0, label="a"), sg.Value(-3.0, label="b"), sg.Value(10.0, label="c")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    return d, (a, b, c)


def _notes_slope(a=2.0, b=-3.0, c=10.0, h=0.0001, bump="c"):
    # the notes' own code, verbatim in spirit: bump one input, rerun, divide by h
    d1 = a * b + c
    if bump == "a":
        a += h
    elif bump == "b":
        b += h
    else:
        c += h
    d2 = a * b + c
    return (d2 - d1) / h


def test_slope_of_dd_dc_is_the_notes_number_and_its_error_is_explained():
    d, (a, b, c) = _seed000()
    r = slope_report(d, c)
    assert r.slope == _notes_slope() == 0.9999999999976694  # what the notes print
    assert r.exact == 1.0
    assert r.error == pytest.approx(-2.3306e-12, rel=1e-3)
    # the explanation: 10 + 1e-4 is stored as the nearest double, so the step taken differs
    assert r.stored == 10.0 + 1e-4 and r.taken == r.stored - 10.0 != 1e-4
    assert abs(r.taken - 1e-4) <= math.ulp(r.stored) / 2
    assert r.over_taken == 1.0          # over the step actually taken, the slope is exact
    assert r.second == 0.0 and r.truncation == 0.0   # linear in c: no truncation error
    assert (r.taken - 1e-4) / 1e-4 == pytest.approx(r.error, rel=1e-9)


@pytest.mark.parametrize("leaf, bump", [(0, "a"), (1, "b")])
def test_every_input_matches_the_notes_code(leaf, bump):
    d, leaves = _seed000()
    r = slope_report(d, leaves[leaf])
    assert r.slope == _notes_slope(bump=bump)
    assert r.exact == {"a": -3.0, "b": 2.0}[bump]


def test_slope_printout_shows_the_numbers(tmp_path):
    d, (a, b, c) = _seed000()
    d.backward()
    grads = [v.grad for v in (a, b, c)]
    doc = sg.derivation(d, steps="slope")
    text = doc.text()
    assert "Finite differences: the slope with h = 0.0001" in text
    assert "(4.0001 - 4.0)/0.0001 = 0.9999999999976694" in text
    assert "exact dd/dc = 1.0; error -2.331e-12" in text
    assert "10.000099999999999767" in text          # the stored double, 20 digits
    assert "9.999999999976694e-05" in text          # the step actually taken
    assert [v.grad for v in (a, b, c)] == grads     # the printout leaves grads alone
    assert [v.data for v in (a, b, c)] == [2.0, -3.0, 10.0] and d.data == 4.0
    assert "Finite differences" not in sg.derivation(d).text()
    # combined with the limit tables, and the LaTeX compiles without overfull lines
    both = sg.derivation(d, steps="limit+slope")
    lines = [line.strip() for line in both.text().splitlines()]
    assert any(line.startswith("->") for line in lines)     # a limit as h goes to 0
    assert "Finite differences" in both.text()
    if shutil.which("pdflatex"):
        both.to_tex(tmp_path / "slope.tex", compile_pdf=True)
        assert "Overfull" not in (tmp_path / "slope.log").read_text(errors="replace")


def test_nonlinear_graph_truncation_error_from_sympy():
    x, w, b = sg.Value(0.5, label="x"), sg.Value(-0.8, label="w"), sg.Value(0.3, label="b")
    o = (x * w + b).tanh()
    o.label = "o"
    h = 1e-3
    r = slope_report(o, b, h)
    t = math.tanh(0.5 * -0.8 + 0.3)
    assert r.exact == pytest.approx(1 - t * t, abs=1e-15)
    assert r.second == pytest.approx(-2 * t * (1 - t * t), rel=1e-12)
    # the forward difference is the derivative plus h/2 f'', up to O(h^2)
    assert r.slope == pytest.approx(r.exact + r.truncation, abs=h * h)
    assert abs(r.slope - r.exact) > 1e-5


def test_bad_slope_options():
    d, (a, _, _) = _seed000()
    with pytest.raises(ValueError, match="steps must be"):
        sg.derivation(d, steps="slopes")
    with pytest.raises(ValueError, match="h must be a positive"):
        sg.derivation(d, steps="slope", h=0.0)
    with pytest.raises(ValueError, match="not an input leaf"):
        slope_report(d, d)


def _neuron_loss():
    o = neuron()
    x1, x2, w1, w2, b = (leaf(o, name) for name in ("x1", "x2", "w1", "w2", "b"))
    loss = (o - 1.0) ** 2
    loss.label = "L"
    return loss, o, (x1, x2), (w1, w2, b)


def test_stage_table_is_filled_with_the_graphs_numbers():
    from symgrad.render.stages import stages

    loss, o, (x1, x2), (w1, w2, b) = _neuron_loss()
    lr = 0.05
    table = stages(loss, lr=lr, params=[w1, w2, b], output=o)
    assert [s.name for s in table] == ["Input", "Forward pass", "Output", "Loss",
                                       "Backpropagation", "Update"]
    got = {s.name: dict(s.values) for s in table}
    # the same step by hand, in plain floats
    n = 2.0 * -3.0 + 0.0 * 1.0 + 6.8813735870195432
    t = math.tanh(n)
    L = (t - 1.0) ** 2
    dL_dn = 2 * (t - 1.0) * (1 - t * t)
    grads = {"w1": dL_dn * 2.0, "w2": dL_dn * 0.0, "b": dL_dn}
    assert got["Input"] == {"x1": 2.0, "x2": 0.0}
    assert got["Forward pass"]["n"] == pytest.approx(n, abs=1e-15)
    assert got["Forward pass"]["o"] == pytest.approx(t, abs=1e-15)
    assert got["Output"] == {"o": pytest.approx(t, abs=1e-15)}
    assert got["Loss"]["L"] == pytest.approx(L, abs=1e-15)
    for p in ("w1", "w2", "b"):
        assert got["Backpropagation"][f"dL/d{p}"] == pytest.approx(grads[p], abs=1e-12)
    new = {"w1": -3.0 - lr * grads["w1"], "w2": 1.0 - lr * grads["w2"],
           "b": 6.8813735870195432 - lr * grads["b"]}
    for p, v in new.items():
        assert got["Update"][p] == pytest.approx(v, abs=1e-12)
    after = (math.tanh(2.0 * new["w1"] + 0.0 * new["w2"] + new["b"]) - 1.0) ** 2
    assert got["Update"]["L after"] == pytest.approx(after, abs=1e-12)
    assert after < L
    # the graph is left as it was
    assert (w1.data, b.data, loss.data) == (-3.0, 6.8813735870195432, pytest.approx(L, abs=0))


def test_stage_table_printout(tmp_path):
    loss, o, _, (w1, w2, b) = _neuron_loss()
    doc = sg.stage_table(loss, lr=0.1, params=[w1, w2, b], output=o)
    text = doc.text()
    for heading in ("1. Input", "2. Forward pass", "3. Output", "4. Loss",
                    "5. Backpropagation", "6. Update"):
        assert heading in text
    assert "L = (o - 1)**2 = 0.0857864" in text
    assert "w1 <- -3 - 0.1 * (-0.585786) = -2.94142" in text
    assert "L after the update = " in text
    if shutil.which("pdflatex"):
        doc.to_tex(tmp_path / "stages.tex", compile_pdf=True)
        assert "Overfull" not in (tmp_path / "stages.log").read_text(errors="replace")
    # defaults: every leaf is a parameter, the loss is its own output
    default = sg.stage_table(loss)
    assert "(none: every leaf is a parameter)" in default.text()
    with pytest.raises(ValueError, match="lr must be"):
        sg.stage_table(loss, lr=-1)
    with pytest.raises(ValueError, match=r"params\[0\]"):
        sg.stage_table(loss, params=[o])
