"""A damaged cache entry is repaired once, with one warning, never fatal on every later run.

Each run is a fresh process with a private SYMGRAD_CACHE_DIR. One warm cache is built once
(the only cold Numba compile); each test damages a copy of it, runs the model (which must
succeed, warn and heal the entry), then runs again (no warning, served from the cache).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from symgrad.derive.memo import EXPECTED
from symgrad.derive.memo_format import decode, encode

FIT = textwrap.dedent("""
    import json, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import numpy as np
        import symgrad as sg
        from symgrad.runtime.training import trainer_for
        net = sg.Sequential(sg.Dense(2, 3), sg.Tanh(), sg.Dense(3, 1))
        model = sg.compile(net, loss="mse", optimizer=sg.SGD(lr=0.1))
        X = np.random.default_rng(0).normal(size=(16, 2))
        history = model.fit(X, X[:, :1] * X[:, 1:], epochs=2, batch_size=4, shuffle=False)
        stats = trainer_for(model).module._epoch.stats
    print(json.dumps({"loss": float(model.evaluate(X, X[:, :1] * X[:, 1:])["loss"]),
                      "hits": sum(stats.cache_hits.values()),
                      "misses": sum(stats.cache_misses.values()),
                      "warnings": [str(w.message) for w in caught
                                   if w.category.__name__ == "CacheWarning"]}))
""")


def _run(cache, code: str = FIT, env: dict | None = None) -> dict:
    full = {**os.environ, "SYMGRAD_CACHE_DIR": str(cache), **(env or {})}
    full.pop("SYMGRAD_DERIVATION_CACHE", None)
    proc = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    cache = tmp_path_factory.mktemp("warm") / "cache"
    first = _run(cache)
    assert first["warnings"] == [] and first["misses"] >= 1
    return cache, first["loss"]


def _copy(warm, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(warm[0], cache)   # copy2 keeps mtimes: Numba's index stays valid
    return cache


def test_damaged_kernel_source_and_derivations_are_rebuilt(warm, tmp_path) -> None:
    cache = _copy(warm, tmp_path)
    kernel = next(cache.glob("driver_*.py"))   # the compiled per-model module
    text = kernel.read_bytes()
    kernel.write_bytes(text[:200] + b"\xff\xfe not UTF-8 \x80" + text[200:])
    entries = sorted((cache / "derivations").iterdir())
    entries[0].write_text(encode(42))              # well-formed, of the wrong type
    entries[1].write_bytes(os.urandom(300))        # garbage
    second = _run(cache)
    assert second["loss"] == pytest.approx(warm[1], rel=1e-12)
    assert any(kernel.name in w and "does not match" in w for w in second["warnings"])
    for entry in entries[:2]:
        assert any(entry.name in w for w in second["warnings"])
    assert len(second["warnings"]) == 3
    kernel.read_bytes().decode("utf-8")   # healed: the generated source again
    for entry in entries:
        decode(entry.read_bytes(), EXPECTED[entry.name.split("_")[0]])
    third = _run(cache)
    assert third["warnings"] == [] and third["hits"] >= 1 and third["misses"] == 0


def test_damaged_numba_index_and_data_are_recompiled(warm, tmp_path) -> None:
    cache = _copy(warm, tmp_path)
    pycache = cache / "__pycache__"
    data = next(pycache.glob("driver_*._epoch-*.nbc"))
    data.write_bytes(os.urandom(4096))              # random machine-code pickle
    # Importing the driver links the shared kernels it calls by symbol
    # (codegen/linked_calls.py), which loads their entries: here the activation's fwd_b.
    index = next(pycache.glob("act_*.fwd_b-*.nbi"))
    index.write_bytes(index.read_bytes()[:20])     # truncated index
    second = _run(cache)
    assert second["loss"] == pytest.approx(warm[1], rel=1e-12)
    assert second["misses"] >= 1
    assert len(second["warnings"]) == 2
    assert any("._epoch-" in w and "Numba" in w for w in second["warnings"])
    assert any(index.name in w and "Numba" in w for w in second["warnings"])
    assert index.stat().st_size > 20                # written afresh
    third = _run(cache)
    assert third["warnings"] == [] and third["hits"] >= 1 and third["misses"] == 0


PROBE = textwrap.dedent("""
    import json, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from symgrad.codegen.cache import load_source
        module = load_source("VALUE = 6 * 7\\n", stem="probe")
    print(json.dumps({"value": module.VALUE, "warnings": [str(w.message) for w in caught]}))
""")


def test_damaged_bytecode_is_dropped_and_the_module_imported_from_source(tmp_path) -> None:
    cache = tmp_path / "cache"
    env = {"PYTHONDONTWRITEBYTECODE": ""}   # let Python write the .pyc next to the module
    assert _run(cache, PROBE, env) == {"value": 42, "warnings": []}
    (pyc,) = (cache / "__pycache__").glob("probe_*.pyc")
    pyc.write_bytes(pyc.read_bytes()[:16] + b"\x00" * 64)   # valid header, bad marshal data
    second = _run(cache, PROBE, env)
    assert second["value"] == 42
    assert len(second["warnings"]) == 1 and "compiled cache files" in second["warnings"][0]
    assert _run(cache, PROBE, env) == {"value": 42, "warnings": []}
