"""symgrad.sklearn: scikit-learn's own estimator checks, pipelines, search, clone and pickle."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import symgrad as sg
from symgrad.sklearn import SymgradClassifier, SymgradRegressor

# Small and quick, but enough epochs to pass the checks' accuracy thresholds.
_CHECKED = [
    SymgradClassifier(hidden_layer_sizes=(8,), learning_rate=0.05, epochs=40, batch_size=16),
    SymgradRegressor(hidden_layer_sizes=(8,), learning_rate=0.05, epochs=40, batch_size=16),
    # one sigmoid per class (rows of predict_proba must still sum to 1), a layer instance
    # as the activation (it must pickle), float32 (predictions still float64)
    SymgradClassifier(hidden_layer_sizes=(8,), loss="bce", activation=sg.LeakyReLU(0.2),
                      learning_rate=0.05, epochs=40, batch_size=16),
    SymgradRegressor(hidden_layer_sizes=(8,), dtype="float32", learning_rate=0.05, epochs=40,
                     batch_size=16),
]


@parametrize_with_checks(_CHECKED)
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(n_samples=200, n_features=5, n_informative=3, n_redundant=0,
                               n_classes=3, n_clusters_per_class=1, random_state=0)
    return X * 10 + 5, y   # badly scaled on purpose: the pipeline's scaler must matter


def test_pipeline_grid_search_and_cross_val(blobs) -> None:
    X, y = blobs
    pipe = make_pipeline(StandardScaler(), SymgradClassifier(epochs=30, random_state=0))
    search = GridSearchCV(pipe, {"symgradclassifier__hidden_layer_sizes": [(4,), (16,)],
                                 "symgradclassifier__activation": ["tanh", "relu"]}, cv=3)
    search.fit(X, y)
    assert search.best_score_ > 0.8
    assert set(search.cv_results_["param_symgradclassifier__activation"]) == {"tanh", "relu"}
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    fitted = search.best_estimator_[-1]
    assert "softmax" in fitted.model_.derivation.text().lower()


def test_clone_keeps_params_and_drops_fit(blobs) -> None:
    X, y = blobs
    est = SymgradClassifier(hidden_layer_sizes=(5, 3), activation=sg.LeakyReLU(0.2),
                            epochs=3, random_state=1).fit(X, y)
    twin = clone(est)
    assert twin.get_params()["hidden_layer_sizes"] == (5, 3)
    assert twin.activation.params == {"alpha": 0.2} and not hasattr(twin, "model_")
    np.testing.assert_array_equal(twin.fit(X, y).predict_proba(X), est.predict_proba(X))


def test_feature_names_from_dataframe(blobs) -> None:
    pd = pytest.importorskip("pandas")
    X, y = blobs
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = SymgradClassifier(epochs=2, random_state=0).fit(frame, np.array(["a", "b", "c"])[y])
    assert list(est.feature_names_in_) == list(frame.columns) and est.n_features_in_ == 5
    assert set(est.predict(frame)) <= {"a", "b", "c"} and list(est.classes_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="feature names"):
        est.predict(frame.rename(columns={"f0": "other"}))


def test_binary_and_regressor_heads(blobs) -> None:
    X, y = blobs
    binary = SymgradClassifier(epochs=5, random_state=0).fit(X, y > 0)
    assert binary.model_.plan.output.activation_name == "sigmoid"
    P = binary.predict_proba(X)
    assert P.shape == (len(X), 2)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_array_equal(binary.predict(X), binary.classes_[P.argmax(axis=1)])
    Xr, yr = make_regression(n_samples=100, n_features=4, n_targets=2, random_state=0)
    reg = SymgradRegressor(loss="huber", epochs=5, random_state=0).fit(Xr, yr / 100)
    assert reg.predict(Xr).shape == (100, 2) and reg.model_.plan.output.loss_name == "huber"


def test_bad_hyperparameters_are_named(blobs) -> None:
    X, y = blobs
    with pytest.raises(ValueError, match="'nope' is not a registered activation"):
        SymgradClassifier(activation="nope").fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        SymgradClassifier(hidden_layer_sizes=(4, 0)).fit(X, y)
    with pytest.raises(ValueError, match="classification loss"):
        SymgradRegressor(loss="cross_entropy").fit(X, y)


def test_pickle_custom_activation_in_a_new_process(tmp_path, blobs, scratch_registries
                                                   ) -> None:
    """The pickle holds weights and the activation's formula, not code: a fresh process
    (which never defined the activation) predicts the same numbers."""
    X, y = blobs
    x = sp.Symbol("x", real=True)
    Cubic = sg.activation("cubic_sk", x + x**3 / 10)
    est = SymgradClassifier(hidden_layer_sizes=(6,), activation=Cubic, epochs=5,
                            random_state=0).fit(X / 10, y)
    path = tmp_path / "est.pkl"
    path.write_bytes(pickle.dumps(est))
    np.save(tmp_path / "X.npy", X / 10)
    blob = pickle.dumps(est)
    assert b"numba" not in blob and b"CPUDispatcher" not in blob
    code = ("import pickle, numpy as np, sys; est = pickle.load(open(sys.argv[1], 'rb')); "
            "np.save(sys.argv[2], est.predict_proba(np.load(sys.argv[3])))")
    out = tmp_path / "P.npy"
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(out),
                           str(tmp_path / "X.npy")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_array_equal(np.load(out), est.predict_proba(X / 10))


def test_a_pickle_rebuilds_the_network_that_was_fitted_not_the_current_params(blobs) -> None:
    X, y = blobs
    clf = SymgradClassifier(hidden_layer_sizes=(6,), activation="tanh", epochs=3,
                            random_state=0).fit(X, y)
    before = clf.predict_proba(X)
    clf.set_params(activation="relu", hidden_layer_sizes=(4, 4), loss="bce", dtype="float32")
    for copy_of in (pickle.loads(pickle.dumps(clf)), __import__("copy").deepcopy(clf)):
        np.testing.assert_array_equal(copy_of.predict_proba(X), before)
        assert copy_of.activation == "relu"   # the hyperparameters are kept as set
    refit = clone(clf).fit(X, y)               # and a new fit uses them
    assert refit.model_.dtype == "float32" and len(refit.model_.plan.layers) == 3


def test_builtin_and_custom_activation_layers_pickle(scratch_registries) -> None:
    for layer in (sg.ReLU(), sg.LeakyReLU(0.2), sg.ELU(0.5), sg.GELU(), sg.SiLU(), sg.Tanh()):
        back = pickle.loads(pickle.dumps(layer))
        assert type(back) is type(layer) and back.params == layer.params
    assert repr(sg.LeakyReLU(0.2)) == "LeakyReLU(alpha=0.2)"
    Cube = sg.activation("pickle_cube", "x**3 + x")
    assert pickle.loads(pickle.dumps(Cube())).entry.name == "pickle_cube"
    data = pickle.dumps(Cube())
    from symgrad.definition.activations import REGISTRY
    del REGISTRY["pickle_cube"]
    with pytest.raises(sg.DefinitionError, match="'pickle_cube' is not registered"):
        pickle.loads(data)
