"""symgrad.nn: micrograd's nn API on symgrad Values; same losses as micrograd; symbolic loss."""

import random

import micrograd.engine as micrograd_engine  # the reference (test extra)
import micrograd.nn as micrograd_nn
import pytest

import symgrad as sg
from symgrad import nn as snn


def _moons(n: int, seed: int):
    from sklearn import datasets
    X, y = datasets.make_moons(n_samples=n, noise=0.1, random_state=seed)
    return X, y * 2 - 1


def _demo_loss(model, X, y, value_cls):
    # micrograd's demo.ipynb loss, verbatim apart from the Value class
    inputs = [list(map(value_cls, xrow)) for xrow in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores, strict=True)]
    data_loss = sum(losses) * (1.0 / len(losses))
    alpha = 1e-4
    reg_loss = alpha * sum(p * p for p in model.parameters())
    return data_loss + reg_loss


def _train(model, X, y, value_cls, steps):
    losses = []
    for k in range(steps):
        total_loss = _demo_loss(model, X, y, value_cls)
        model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        losses.append(float(total_loss.data))
    return losses


def test_moons_demo_matches_micrograd_with_copied_weights():
    X, y = _moons(20, seed=4)
    theirs = micrograd_nn.MLP(2, [16, 16, 1])
    ours = snn.MLP(2, [16, 16, 1])
    assert len(ours.parameters()) == len(theirs.parameters()) == 337
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        p.data = float(q.data)
    ref = _train(theirs, X, y, micrograd_engine.Value, steps=4)
    got = _train(ours, X, y, sg.Value, steps=4)
    assert got == pytest.approx(ref, abs=1e-12)
    assert len(set(got)) == 4  # the steps changed the weights
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert p.data == pytest.approx(q.data, abs=1e-12)


def test_same_seed_gives_micrograd_weights_and_reprs():
    random.seed(1337)
    theirs = micrograd_nn.MLP(3, [4, 2, 1])
    random.seed(1337)
    ours = snn.MLP(3, [4, 2, 1])
    assert [p.data for p in ours.parameters()] == [q.data for q in theirs.parameters()]
    assert repr(ours) == repr(theirs)
    assert repr(ours.layers[0]) == repr(theirs.layers[0])
    assert repr(snn.Neuron(3, nonlin=False)) == "LinearNeuron(3)"
    assert isinstance(ours, snn.Module)
    assert ours([1.0, 2.0, 3.0]).data == pytest.approx(theirs([1.0, 2.0, 3.0]).data, abs=1e-15)
    layer = snn.Layer(2, 3, nonlin=False)
    assert len(layer([1.0, 2.0])) == 3 and len(layer.parameters()) == 9
    assert isinstance(snn.Layer(2, 1)([1.0, 2.0]), sg.Value)


def test_zero_grad_and_parameters():
    net = snn.MLP(2, [3, 1])
    out = net([0.5, -1.5])
    out.backward()
    net.zero_grad()
    assert all(p.grad == 0.0 for p in net.parameters())
    assert snn.Module().parameters() == []


def test_loss_derived_symbolically_matches_backward():
    random.seed(7)
    net = snn.MLP(2, [2, 1])
    X = [[0.5, -1.0], [1.5, 0.3]]
    Y = [1, -1]
    inputs = [[sg.Value(v, label=f"x{n}_{i}") for i, v in enumerate(row, start=1)]
              for n, row in enumerate(X, start=1)]
    scores = [net(row) for row in inputs]
    loss = sum((1 + -yi * s).relu() for yi, s in zip(Y, scores, strict=True)) * 0.5
    loss.backward()
    leaves = net.parameters() + [v for row in inputs for v in row]
    data = {v.label: v.data for v in leaves}
    nonzero = 0
    for p in net.parameters():
        assert p.label  # labelled by position, so the symbolic loss reads w1_11, b2_1, ...
        d = sg.grad(loss, p)
        at = {s: data[s.name] for s in d.free_symbols}
        assert float(d.subs(at)) == pytest.approx(p.grad, abs=1e-12), p.label
        nonzero += p.grad != 0.0
    assert nonzero >= 3
    text = sg.derivation(loss).text()
    assert "w1_11" in text and "relu" in text


@pytest.mark.parametrize("bad, match", [
    (lambda: snn.MLP(2, []), "at least one layer"),
    (lambda: snn.MLP(0, [1]), "nin"),
    (lambda: snn.Layer(2, 0), "nout"),
    (lambda: snn.MLP(2, [3, 1])([1.0]), "takes 2 inputs, got 1"),
    (lambda: snn.Neuron(2)([1.0, "a"]), "input 1"),
])
def test_bad_input_named(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad()
