"""GridSearchCV over symgrad estimators through joblib's Dask backend on a 2-process LocalCluster.

The workers start on an empty kernel cache, so both derive and compile the same
architectures at the same moment: the atomic cache writes must keep that safe. The
search must give exactly the sequential search's results.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV

from symgrad.sklearn import SymgradClassifier

distributed = pytest.importorskip(
    "distributed", reason="dask[distributed] is a test extra (pip install -e '.[test]')")
joblib = pytest.importorskip("joblib")


def _search() -> GridSearchCV:
    est = SymgradClassifier(epochs=15, batch_size=16, learning_rate=0.05, random_state=0)
    grid = {"hidden_layer_sizes": [(4,), (8,)], "activation": ["tanh", "relu"]}
    # error_score="raise": a failed fit on a worker must fail the test, not score NaN.
    return GridSearchCV(est, grid, cv=3, error_score="raise")


def test_grid_search_on_two_dask_workers_equals_sequential(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path / "cache"))   # cold, shared by all
    X, y = make_classification(n_samples=150, n_features=4, n_informative=3, n_redundant=0,
                               random_state=0)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        start = time.perf_counter()
        with joblib.parallel_backend("dask"):
            parallel = _search().fit(X, y)
        cold_seconds = time.perf_counter() - start
        start = time.perf_counter()
        with joblib.parallel_backend("dask"):
            again = _search().fit(X, y)   # warm: the workers hold the compiled kernels
        dask_seconds = time.perf_counter() - start
        workers = client.run(lambda: __import__("os").environ.get("SYMGRAD_CACHE_DIR"))
    assert len(workers) == 2 and set(workers.values()) == {str(tmp_path / "cache")}
    start = time.perf_counter()
    sequential = _search().fit(X, y)
    sequential_seconds = time.perf_counter() - start
    print(f"\nGridSearchCV 4 candidates x 3 folds: 2 dask workers {cold_seconds:.1f} s cold "
          f"cache, {dask_seconds:.1f} s warm; sequential {sequential_seconds:.1f} s")
    for key in ("mean_test_score", "split0_test_score", "split1_test_score",
                "split2_test_score"):
        np.testing.assert_array_equal(parallel.cv_results_[key], sequential.cv_results_[key])
        np.testing.assert_array_equal(again.cv_results_[key], sequential.cv_results_[key])
    assert parallel.best_params_ == sequential.best_params_
    np.testing.assert_array_equal(parallel.predict_proba(X), sequential.predict_proba(X))
    # Both caches were written by racing processes: complete files, no temporaries left.
    cache = tmp_path / "cache"
    assert len(list(cache.glob("kernels_*.py"))) >= 2
    assert [f for f in (cache / "derivations").iterdir() if not f.name.startswith(".")]
    assert not list(cache.rglob(".*.tmp"))
