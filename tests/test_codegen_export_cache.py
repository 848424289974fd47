"""Standalone export (runs with sympy and symgrad unimportable) and the on-disk kernel
cache (a second process reuses the cached file and Numba's compiled code)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symgrad as sg

BLOCKER = textwrap.dedent("""
    import sys
    class _Block:
        # Refuse sympy and symgrad: the exported trainer must not need them.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("sympy", "symgrad"):
                raise ImportError(f"blocked for this test: {name}")
            return None
    sys.meta_path.insert(0, _Block())
""")


def _run(code: str, cwd: str, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    net = sg.Sequential(sg.Dense(4, 6), sg.Tanh(), sg.Dense(6, 3), sg.Softmax())
    model = sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.5), seed=2)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.3)
    np.save(folder / "X.npy", X)
    np.save(folder / "Y.npy", np.eye(3)[y])
    model.export(str(folder / "trainer.py"))
    model.save(str(folder / "weights.npz"))
    return model, folder, X, y


def test_export_trains_without_sympy_or_symgrad(trained) -> None:
    model, folder, X, y = trained
    code = BLOCKER + textwrap.dedent("""
        import json
        import numpy as np
        import trainer
        for banned in ("sympy", "symgrad"):
            try:
                __import__(banned)
                raise SystemExit(f"{banned} was importable")
            except ImportError:
                pass
        X, Y = np.load("X.npy"), np.load("Y.npy")
        order = np.arange(len(X))[::-1].copy()
        trainer.load_weights("weights.npz")
        before = trainer.evaluate(X, Y)[0]
        P0 = trainer.predict(X)
        for _ in range(3):
            loss, acc = trainer.train_epoch(X, Y, batch_size=16, order=order)
        print(json.dumps({"before": before, "after": trainer.evaluate(X, Y)[0], "acc": acc,
                          "P0": P0.tolist(), "W": trainer.WEIGHTS["dense0.W"].tolist(),
                          "mods": sorted(m for m in sys.modules if m.split(".")[0]
                                         in ("sympy", "symgrad"))}))
    """)
    out = _run(code, str(folder))
    assert out["mods"] == []
    assert out["after"] < out["before"]
    # Same numbers as the model that exported it (same kernels, same weights, same order).
    np.testing.assert_allclose(out["P0"], model.predict_proba(X), rtol=1e-13)
    model.fit(X, y, epochs=3, batch_size=16, order=np.arange(len(X))[::-1].copy())
    np.testing.assert_allclose(out["W"], model.params["dense0.W"], rtol=1e-13)


def test_exported_module_refuses_bad_weights(trained, tmp_path) -> None:
    model, folder, X, y = trained
    np.savez(tmp_path / "bad.npz", **{**model.params, "dense0.W": np.zeros((5, 6))})
    code = BLOCKER + textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(folder)!r})
        import trainer
        try:
            trainer.load_weights({str(tmp_path / "bad.npz")!r})
            print(json.dumps({{"error": None}}))
        except ValueError as err:
            print(json.dumps({{"error": str(err)}}))
    """)
    out = _run(code, str(tmp_path))
    assert "dense0.W" in out["error"] and "(5, 6)" in out["error"]


def test_second_process_hits_the_kernel_cache(tmp_path) -> None:
    cache = tmp_path / "cache"
    code = textwrap.dedent("""
        import json, os
        import numpy as np
        import symgrad as sg
        net = sg.Sequential(sg.Dense(3, 5), sg.ReLU(), sg.Dense(5, 2), sg.Softmax())
        model = sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(lr=0.1))
        X = np.random.default_rng(0).normal(size=(32, 3))
        model.fit(X, (X[:, 0] > 0).astype(int), epochs=1, batch_size=8)
        from symgrad.runtime.training import trainer_for
        mod = trainer_for(model).module
        st = mod._epoch.stats
        print(json.dumps({"file": mod.__file__, "mtime": os.stat(mod.__file__).st_mtime_ns,
                          "hits": sum(st.cache_hits.values()),
                          "misses": sum(st.cache_misses.values())}))
    """)
    env = {"SYMGRAD_CACHE_DIR": str(cache)}
    first = _run(code, str(tmp_path), env)
    files = sorted(os.listdir(cache))
    index = sorted(os.listdir(cache / "__pycache__"))
    # __pycache__, the derived plans, the shared modules (GEMM helpers, the ReLU kernels,
    # the softmax + cross-entropy output, the SGD step), the model's driver and API
    # modules, and the (empty: no scalar Value here) folder of scalar backward steps
    stems = sorted(name.split("_")[0] for name in files if name.endswith(".py"))
    assert stems == ["act", "driver", "gemm", "kernels", "opt", "output"], files
    assert "__pycache__" in files and "derivations" in files and len(files) == 9
    # Plain SGD is fused into the GEMMs: its module serves only a split epoch (big batches),
    # and these batches never split, so nothing of it (nor the driver's _part) was compiled.
    # (Numba names a cache entry <module>.<function>-<line>...: the driver's `_part`, not a
    # vecmath helper such as `_vm_log_parts`, which has entries of its own.)
    assert not [name for name in index if name.startswith("opt_") or "._part-" in name], index
    assert "scalar_steps" in files and os.listdir(cache / "scalar_steps") == []
    assert len(os.listdir(cache / "derivations")) == 2   # the hidden activation, the output
    assert any(name.endswith(".nbi") for name in index) and any(n.endswith(".nbc") for n in index)
    assert first["misses"] >= 1 and first["hits"] == 0
    second = _run(code, str(tmp_path), env)
    assert second["file"] == first["file"] and second["mtime"] == first["mtime"]  # not rewritten
    assert second["hits"] >= 1 and second["misses"] == 0                        # loaded, not built
    assert sorted(os.listdir(cache / "__pycache__")) == index
    assert len(os.listdir(cache / "derivations")) == 2   # read, not written again


def test_two_exported_trainers_of_one_name_keep_their_own_kernels(trained, tmp_path) -> None:
    """An exported driver calls its kernels by symbol (`linked_calls`); the symbols are
    named after the kernels' text, not the module name, so a second trainer imported
    under the same name (another folder) does not take over the first one's kernels."""
    first, data, X, _ = trained
    # Fresh folders: Numba rebuilds a cached function's globals by importing its module by
    # name, which a module loaded from a path without a sys.modules entry cannot serve.
    folder = tmp_path / "one"
    folder.mkdir()
    first.export(str(folder / "trainer.py"))
    first.save(str(folder / "weights.npz"))
    # The same layout with another activation: its kernels take the same symbol names
    # if a module name made them.
    net = sg.Sequential(sg.Dense(4, 5), sg.Sigmoid(), sg.Dense(5, 3), sg.Softmax())
    second = sg.compile(net, loss="cross_entropy", seed=3)
    other = tmp_path / "other"
    other.mkdir()
    second.export(str(other / "trainer.py"))
    second.save(str(other / "weights.npz"))
    code = BLOCKER + textwrap.dedent("""
        import importlib.util, json, sys
        import numpy as np
        X = np.load(sys.argv[1])
        trainers = []
        for folder in sys.argv[2:]:   # both imported (kernels linked) before either predicts
            spec = importlib.util.spec_from_file_location("trainer", folder + "/trainer.py")
            trainer = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(trainer)
            trainer.load_weights(folder + "/weights.npz")
            trainers.append(trainer)
        print(json.dumps([trainer.predict(X).tolist() for trainer in trainers]))
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(data / "X.npy"), str(folder),
                           str(other)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got[0], first.predict_proba(X), rtol=1e-12)
    np.testing.assert_allclose(got[1], second.predict_proba(X), rtol=1e-12)
