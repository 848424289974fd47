"""Training quality: a symgrad MLP matches scikit-learn's MLPClassifier (same architecture,
optimizer, batch size and epochs) on scikit-learn's bundled digits and breast-cancer sets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad as sg

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is a test extra")
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

EPOCHS, BATCH, HIDDEN = 30, 32, {"digits": 32, "breast_cancer": 16}


@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
def test_test_accuracy_matches_sklearn(name: str) -> None:
    loader = load_digits if name == "digits" else load_breast_cancer
    X, y = loader(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    k, h = len(np.unique(y)), HIDDEN[name]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # fixed epochs on purpose
        ref = MLPClassifier((h,), activation="relu", solver="adam", alpha=0.0,
                            batch_size=BATCH, learning_rate_init=1e-3, max_iter=EPOCHS,
                            random_state=0).fit(Xtr, ytr)
    ref_acc = ref.score(Xte, yte)

    if k > 2:
        net = sg.Sequential(sg.Dense(X.shape[1], h), sg.ReLU(), sg.Dense(h, k), sg.Softmax())
        loss = "cross_entropy"
    else:
        net = sg.Sequential(sg.Dense(X.shape[1], h), sg.ReLU(), sg.Dense(h, 1), sg.Sigmoid())
        loss = "bce"
    model = sg.compile(net, loss=loss, optimizer=sg.Adam(lr=1e-3), seed=0)
    hist = model.fit(Xtr, ytr, epochs=EPOCHS, batch_size=BATCH, seed=0)
    acc = float(np.mean(model.predict(Xte) == yte))

    chance = np.bincount(yte).max() / len(yte)
    assert ref_acc > chance + 0.2 and acc > chance + 0.2
    assert abs(acc - ref_acc) <= 0.03, (acc, ref_acc)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert model.evaluate(Xte, yte)["accuracy"] == pytest.approx(acc)
