"""Dense-only models split big batches into parts, one per core (`_epoch_split`).

The split epoch must train like the NumPy reference (the parts' gradients summed,
weighted by their rows) for every optimizer, the SGD one included, whose serial step is
fused into the GEMMs; it is compiled only for a model whose batches split.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy_steps import reference_epochs

from symgrad.definition import activations as acts
from symgrad.definition.layers import Dense, Sequential
from symgrad.model import compile as sg_compile
from symgrad.runtime.optimizers import SGD, Adam, AdamW
from symgrad.runtime.training import trainer_for

N, BATCH = 26, 8   # 8 rows: 4+4 or 3+3+2 parts; the 2-row remainder: 1+1

CONFIGS = {
    "sgd": lambda: SGD(lr=0.3),                                   # fused serial step
    "sgd-l2": lambda: SGD(lr=0.2, weight_decay=0.01),             # fused, beta = 1 - lr wd
    "sgd-momentum": lambda: SGD(lr=0.1, momentum=0.9),
    "adam": lambda: Adam(lr=0.01),
    "adamw": lambda: AdamW(lr=0.01, weight_decay=0.05),
}


def _net() -> Sequential:
    # GELU's derivative reads the saved z (its own workspace per part); tanh reads a.
    return Sequential(Dense(3, 7), acts.GELU(), Dense(7, 5), acts.Tanh(), Dense(5, 3),
                      acts.Softmax())


def _data():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(N, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y, rng.permutation(N)


def test_the_split_epoch_compiles_only_when_a_batch_splits(monkeypatch) -> None:
    # An activation set no other test of this file uses: this driver is fresh here.
    net = Sequential(Dense(3, 4), acts.Softplus(), Dense(4, 2), acts.Softmax())
    model = sg_compile(net, loss="cross_entropy", optimizer=SGD(lr=0.1), seed=1)
    X, y, order = _data()
    y = y % 2
    model.fit(X, y, epochs=1, batch_size=BATCH, order=order)
    module = trainer_for(model).module
    driver = __import__(module._epoch_split.py_func.__module__)
    assert not module._epoch_split.overloads and not driver._part_call.kernel.overloads
    monkeypatch.setattr(module, "dense_parts", lambda batch_size: 2)
    model.fit(X, y, epochs=1, batch_size=BATCH, order=order)
    assert module._epoch_split.overloads and driver._part_call.kernel.overloads


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize(("name", "dtype"), [(name, "float64") for name in CONFIGS]
                         + [("sgd", "float32"), ("adamw", "float32")])
def test_split_batches_train_like_the_reference(name: str, dtype: str, parts: int,
                                                monkeypatch) -> None:
    model = sg_compile(_net(), loss="cross_entropy", optimizer=CONFIGS[name](), dtype=dtype,
                       seed=4)
    X, y, order = _data()
    start = {k: v.copy() for k, v in model.params.items()}
    want = reference_epochs(model.net, "cross_entropy", CONFIGS[name](), model.params, X, y,
                            order, BATCH, epochs=2)
    module = trainer_for(model).module
    asked = []
    monkeypatch.setattr(module, "dense_parts",
                        lambda batch_size: asked.append(batch_size) or parts)
    model.fit(X, y, epochs=2, batch_size=BATCH, order=order)
    assert asked and set(asked) == {BATCH}   # asked per epoch (and by the compile note)
    for key, value in want.items():
        assert not np.allclose(model.params[key], start[key]), f"{key} did not move"
        rtol = 1e-12 if dtype == "float64" else 1e-5
        np.testing.assert_allclose(model.params[key], value, rtol=rtol,
                                   atol=rtol * np.abs(value).max(), err_msg=key)


def test_only_batches_worth_it_split() -> None:
    """A split needs big batches and loop work: GELU's (5 units of special functions a
    value: its forward's erfc and exp, its derivative's exp) on a wide network splits,
    ReLU's (none) does not, nor a network whose GEMMs outweigh its loops, nor a small one."""
    import numba

    def module(act, dims):
        layers = []
        for a, b in zip(dims[:-2], dims[1:-1], strict=True):
            layers += [Dense(a, b), act()]
        net = Sequential(*layers, Dense(dims[-2], dims[-1]), acts.Softmax())
        return trainer_for(sg_compile(net, loss="cross_entropy")).module

    big = module(acts.GELU, (64, 512, 512, 10))
    assert big.ROW_MACS == 64 * 512 + 512 * 512 + 512 * 10
    assert big.ACTIVATION_COST == (5,) and big.ROW_LOOP_COST == 5 * (512 + 512)
    can = big.BLAS_PINNED and numba.get_num_threads() > 1
    assert big.dense_parts(128) == (min(numba.get_num_threads(), 128 // big.DENSE_PART_ROWS)
                                    if can else 1)
    assert big.dense_parts(big.DENSE_PART_ROWS * 2 - 1) == 1   # parts would be too short
    assert big.dense_parts(16) == 1                           # too little work a batch
    assert module(acts.ReLU, (64, 512, 512, 10)).dense_parts(128) == 1    # no loop work
    # GELU's loops are 0.8 % of a 784-256-128-10 row's GEMM work: below DENSE_SPLIT_SHARE
    assert module(acts.GELU, (784, 256, 128, 10)).dense_parts(128) == 1
    assert module(acts.GELU, (4, 8, 2)).dense_parts(4096) == 1            # tiny GEMMs
    elsewhere = []
    worker = threading.Thread(target=lambda: elsewhere.append(big.dense_parts(128)))
    worker.start()
    worker.join()
    assert elsewhere == [1]   # a worker thread never splits (the BLAS count is process-wide)


def test_an_exported_trainer_splits_like_fit(tmp_path, monkeypatch) -> None:
    """The export links the split epoch's kernels lazily too, and trains bit-identically."""
    import json
    import os
    import subprocess
    import sys
    import textwrap

    model = sg_compile(_net(), loss="cross_entropy", optimizer=Adam(lr=0.01), seed=6)
    X, y, order = _data()
    model.export(str(tmp_path / "split_trainer.py"))
    model.save(str(tmp_path / "start.npz"))
    np.savez(tmp_path / "data.npz", X=X, Y=np.eye(3)[y], order=order)
    code = textwrap.dedent(f"""
        import json
        import numpy as np
        import split_trainer as t
        d = np.load("data.npz")
        t.load_weights("start.npz")
        t.dense_parts = lambda batch_size: 2
        losses = [t.train_epoch(d["X"], d["Y"], batch_size={BATCH}, order=d["order"])[0]
                  for _ in range(2)]
        np.savez("out.npz", **t.WEIGHTS)
        print(json.dumps({{"losses": losses, "split": len(t._epoch_split.overloads)}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    losses = out["losses"]
    assert out["split"] == 1   # the exported trainer ran its split epoch
    monkeypatch.setattr(trainer_for(model).module, "dense_parts", lambda batch_size: 2)
    history = model.fit(X, y, epochs=2, batch_size=BATCH, order=order)
    np.testing.assert_array_equal(losses, history.history["loss"])
    exported = np.load(tmp_path / "out.npz")
    for name, value in model.params.items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)


@pytest.mark.parametrize(("head", "loss", "targets"), [
    (acts.Sigmoid, "bce", lambda y: (y > 0).astype(float)),     # one logistic output
    (None, "mse", lambda y: np.stack([y % 2, y / 3.0], axis=1)),  # two regression outputs
])
def test_split_batches_follow_the_reference_for_other_losses(head, loss, targets,
                                                             monkeypatch) -> None:
    """The output kernel scales each part's error by 1 / its rows (and outputs): the
    parts' weights must undo exactly that, for per-row and per-element reductions."""
    k = 1 if head is not None else 2
    layers = [Dense(3, 6), acts.Swish(), Dense(6, k)] + ([head()] if head else [])
    model = sg_compile(Sequential(*layers), loss=loss, optimizer=SGD(lr=0.1), seed=2)
    X, y, order = _data()
    Y = targets(y.astype(float))
    params = reference_epochs(model.net, loss, SGD(lr=0.1), model.params, X, Y, order, BATCH)
    monkeypatch.setattr(trainer_for(model).module, "dense_parts", lambda batch_size: 3)
    model.fit(X, Y, epochs=1, batch_size=BATCH, order=order)
    for name, value in params.items():
        np.testing.assert_allclose(model.params[name], value, rtol=1e-12,
                                   atol=1e-12 * np.abs(value).max(), err_msg=name)


def test_a_second_process_loads_the_split_epoch_from_the_cache(tmp_path) -> None:
    """A cached _epoch_split is loaded without being typed, so the kernels it calls by
    symbol must be linked first (`_ensure_split`): without that the load cannot resolve
    them. The second process hits the cache and trains to the same weights."""
    import json
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import json
        import numpy as np
        import symgrad as sg
        from symgrad.runtime.training import trainer_for
        net = sg.Sequential(sg.Dense(5, 7), sg.GELU(), sg.Dense(7, 3), sg.Softmax())
        model = sg.compile(net, loss="cross_entropy", optimizer=sg.SGD(0.1), seed=3)
        module = trainer_for(model).module
        module.dense_parts = lambda batch_size: 2
        X = np.random.default_rng(0).normal(size=(40, 5))
        model.fit(X, np.arange(40) % 3, epochs=2, batch_size=16, shuffle=False)
        st = module._epoch_split.stats
        print(json.dumps({"hits": sum(st.cache_hits.values()),
                          "misses": sum(st.cache_misses.values()),
                          "W": model.params["dense0.W"].tolist()}))
    """)
    env = {**os.environ, "SYMGRAD_CACHE_DIR": str(tmp_path / "cache")}
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert runs[0]["misses"] == 1 and runs[0]["hits"] == 0     # compiled, then cached
    assert runs[1]["hits"] == 1 and runs[1]["misses"] == 0     # loaded, not built
    assert runs[1]["W"] == runs[0]["W"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(widths=st.lists(st.integers(1, 9), min_size=1, max_size=4), n=st.integers(1, 40),
       batch=st.integers(1, 17), parts=st.integers(2, 4), seed=st.integers(0, 2**16))
def test_any_mlp_splits_to_the_serial_epochs(widths, n, batch, parts, seed) -> None:
    """Random depths, widths, data sizes, batch sizes and part counts (parts of one row,
    parts beyond the rows, a batch larger than the data): the split epochs train to the
    serial epochs' weights, up to the rounding of the weighted sum. One driver serves every
    shape here (widths and depth are run-time values), so only the first example compiles."""
    rng = np.random.default_rng(seed)
    dims = [3, *widths, 2]
    layers = []
    for k, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(Dense(a, b))
        if k < len(dims) - 2:
            layers.append(acts.GELU() if k % 2 == 0 else acts.Tanh())
    net = Sequential(*layers, acts.Softmax())
    X = rng.normal(size=(n, 3))
    y = rng.integers(0, 2, n)
    order = rng.permutation(n)
    models = [sg_compile(net, loss="cross_entropy", optimizer=SGD(lr=0.1, momentum=0.9),
                          seed=seed % 97)
              for _ in range(2)]
    serial, split = models
    module = trainer_for(split).module
    original = module.dense_parts
    module.dense_parts = lambda batch_size: parts
    try:
        split.fit(X, y, epochs=2, batch_size=batch, order=order)
    finally:
        module.dense_parts = original
    serial.fit(X, y, epochs=2, batch_size=batch, order=order)
    for name, value in serial.params.items():
        np.testing.assert_allclose(split.params[name], value, rtol=1e-10,
                                   atol=1e-12 * max(1.0, np.abs(value).max()), err_msg=name)
