"""Training animations: GIF frame counts, frames that change, titles from the model's numbers."""

import numpy as np
import pytest
from PIL import Image

import symgrad as sg
from symgrad.render.animate import animate_network_training, animate_training, recompute


def _neuron(w1=-3.0, w2=1.0, b=6.8813735870195432):
    x1, x2 = sg.Value(2.0, label="x1"), sg.Value(0.5, label="x2")
    w1, w2, b = sg.Value(w1, label="w1"), sg.Value(w2, label="w2"), sg.Value(b, label="b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    loss = (o - 1.0) ** 2
    loss.label = "L"
    return loss, (w1, w2, b)


def _frames(path):
    im = Image.open(path)
    out = []
    for k in range(im.n_frames):
        im.seek(k)
        out.append(np.asarray(im.convert("RGB"), dtype=np.int16))
    return out


def test_scalar_animation_frames_follow_gradient_descent(tmp_path):
    loss, params = _neuron()
    steps, lr = 3, 0.5
    anim = animate_training(loss, tmp_path / "neuron.gif", params=list(params), steps=steps,
                            lr=lr)
    frames = _frames(anim.path)
    assert len(frames) == anim.frames == steps + 1
    for a, b in zip(frames, frames[1:], strict=False):
        assert np.abs(a - b).sum() > 0  # every frame shows new numbers

    # the same descent computed independently: fresh graph per step, micrograd style
    w = [-3.0, 1.0, 6.8813735870195432]
    for k in range(steps + 1):
        fresh, leaves = _neuron(*w)
        fresh.backward()
        assert anim.losses[k] == pytest.approx(fresh.data, abs=1e-12)
        title = anim.titles[k]
        assert f"loss = {fresh.data:.4g}" in title
        if k < steps:
            g = leaves[0].grad
            assert f"w1 = {w[0]:.4g} - {lr:g}*({g:.4g}) = {w[0] - lr * g:.4g}" in title
            w = [p.data - lr * p.grad for p in leaves]
    # the user's leaves were trained in place, the graph re-evaluated
    assert [p.data for p in params] == pytest.approx(w, abs=1e-12)
    assert anim.losses[-1] < anim.losses[0]


def test_recompute_runs_the_forward_pass_again():
    loss, (w1, _, _) = _neuron()
    before = loss.data
    w1.data = 0.0
    assert recompute(loss) != before
    fresh, _ = _neuron(w1=0.0)
    assert loss.data == pytest.approx(fresh.data, abs=1e-15)


def test_scalar_animation_bad_input(tmp_path):
    loss, params = _neuron()
    with pytest.raises(ValueError, match="must end in .gif"):
        animate_training(loss, tmp_path / "x.png")
    with pytest.raises(ValueError, match="steps"):
        animate_training(loss, tmp_path / "x.gif", steps=0)
    with pytest.raises(ValueError, match=r"params\[0\]"):
        animate_training(loss, tmp_path / "x.gif", params=[sg.Value(1.0)])


def test_network_animation_loss_curve_and_boundary(tmp_path):
    from sklearn.datasets import make_moons

    X, y = make_moons(60, noise=0.1, random_state=0)
    net = sg.Sequential(sg.Dense(2, 6), sg.Tanh(), sg.Dense(6, 1), sg.Sigmoid())
    model = sg.compile(net, loss="bce", optimizer=sg.Adam(lr=0.05), seed=0)
    anim = animate_network_training(model, X, y, tmp_path / "net.gif", epochs=4, batch_size=16)
    frames = _frames(anim.path)
    assert len(frames) == anim.frames == 4
    assert all(np.abs(a - b).sum() > 0 for a, b in zip(frames, frames[1:], strict=False))
    # the titles carry fit's own per-epoch losses: an identical run without the animation
    twin = sg.compile(net, loss="bce", optimizer=sg.Adam(lr=0.05), seed=0)
    hist = twin.fit(X, y, epochs=4, batch_size=16, seed=0)
    assert anim.losses == pytest.approx(hist.history["loss"], abs=1e-12)
    for k, loss in enumerate(hist.history["loss"], start=1):
        assert anim.titles[k - 1] == f"epoch {k} of 4: loss = {loss:.4f}"
    with pytest.raises(ValueError, match="takes 3 inputs, not 2"):
        wide = sg.compile(sg.Sequential(sg.Dense(3, 1), sg.Sigmoid()), loss="bce")
        animate_network_training(wide, np.zeros((4, 3)), np.zeros(4), tmp_path / "w.gif")
