"""Kernels are shared by formula: neither widths nor depth change a compiled source.

The shared modules (GEMM helpers, image-layer loops, one per activation, per output +
loss, per optimizer) depend on formulas and the dtype only; the driver runs the Dense
layers as one loop over a layout table, so it depends on which activations are used,
not on how many layers or how wide. Two models that differ in widths or depth load the
very same compiled modules. Checked on the sources (`kernel_sources`) and, across
processes, on Numba's cache statistics.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import symgrad as sg
from symgrad.codegen.kernels import kernel_sources
from symgrad.runtime.optimizers import Adam


def _mlp(width: int, depth: int, act=sg.Tanh) -> sg.Sequential:
    layers = [sg.Dense(3, width), act()]
    for _ in range(depth - 1):
        layers += [sg.Dense(width, width), sg.ReLU()]
    return sg.Sequential(*layers, sg.Dense(width, 2), sg.Softmax())


def _sources(net: sg.Sequential, dtype: str = "float64") -> dict[str, list[str]]:
    plan = sg.compile(net, loss="cross_entropy").plan
    out: dict[str, list[str]] = {}
    for stem, source in kernel_sources(plan, dtype, Adam()):
        out.setdefault(stem, []).append(source)
    return out


def test_widths_change_no_compiled_source() -> None:
    a, b = _sources(_mlp(16, 2)), _sources(_mlp(40, 2))
    for stem in ("gemm", "act", "output", "opt", "driver"):
        assert a[stem] == b[stem], stem
    assert a["kernels"] != b["kernels"]   # only the plain-Python API holds the shapes
    assert not re.search(r"\b40\b", b["driver"][0]) and not re.search(r"\b16\b", a["driver"][0])


def test_depth_changes_no_compiled_source() -> None:
    a, b = _sources(_mlp(16, 2)), _sources(_mlp(16, 5))
    for stem in ("gemm", "act", "output", "opt", "driver"):
        assert a[stem] == b[stem], stem
    assert a["kernels"] != b["kernels"]   # the layout table DENSE_LAYOUT is in the API
    # The order in which a model uses its activations does not matter either ...
    swapped = sg.Sequential(sg.Dense(3, 8), sg.ReLU(), sg.Dense(8, 8), sg.Tanh(),
                            sg.Dense(8, 2), sg.Softmax())
    assert _sources(swapped)["driver"] == a["driver"]
    # ... but the set does: one branch per activation.
    assert _sources(_mlp(16, 1))["driver"] != a["driver"]   # tanh only


def test_a_new_activation_adds_one_module_and_dtype_is_part_of_the_key() -> None:
    a, b = _sources(_mlp(16, 2)), _sources(_mlp(16, 2, act=sg.GELU))
    assert len(a["act"]) == len(b["act"]) == 2            # tanh/gelu + relu
    assert len(set(a["act"]) & set(b["act"])) == 1        # relu's module is shared
    assert _sources(_mlp(16, 2), "float32")["act"] != a["act"]


_CHILD = r"""
import json, sys
import numpy as np
import symgrad as sg
from symgrad.runtime.training import trainer_for
width, depth = int(sys.argv[1]), int(sys.argv[2])
layers = [sg.Dense(3, width), sg.Tanh()]
for _ in range(depth - 1):
    layers += [sg.Dense(width, width), sg.ReLU()]
model = sg.compile(sg.Sequential(*layers, sg.Dense(width, 2), sg.Softmax()),
                   loss="cross_entropy", optimizer=sg.Adam())
X = np.random.default_rng(0).normal(size=(16, 3))
model.fit(X, np.arange(16) % 2, epochs=1, batch_size=8)
driver = sys.modules[trainer_for(model).module._epoch.py_func.__module__]
stats = {}
for name in ("a0_fwd_b", "a0_bwd", "a1_fwd_b", "_output", "_step", "_mm", "_epoch"):
    fn = getattr(driver, name, None) or getattr(trainer_for(model).module, name)
    fn = getattr(fn, "kernel", fn)   # a kernel the driver calls by symbol: its dispatcher
    stats[name] = [sum(fn.stats.cache_hits.values()), sum(fn.stats.cache_misses.values())]
print(json.dumps(stats))
"""


def _child(tmp_path, width: int, depth: int) -> dict[str, list[int]]:
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(width), str(depth)], env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_new_process_with_new_widths_and_depth_compiles_nothing(tmp_path) -> None:
    first = _child(tmp_path, 8, 2)
    assert all(hits == 0 for hits, _ in first.values())   # a cold cache compiles everything
    assert first["_epoch"] == [0, 1]
    # New widths, and new widths with a new depth: the whole epoch driver is found
    # compiled, and the kernels it calls by symbol are loaded from the disk cache
    # (_mm is inlined into the driver: never compiled alone); nothing compiles.
    for width, depth in ((24, 2), (12, 4)):
        other = _child(tmp_path, width, depth)
        assert other["_epoch"] == [1, 0] and all(m == 0 for _, m in other.values()), other
        assert all(other[k] == [1, 0] for k in ("a0_fwd_b", "a0_bwd", "_output", "_step"))
        assert other["_mm"] == [0, 0]


def test_image_sizes_and_channels_change_no_compiled_source() -> None:
    """A CNN's driver reads channels and image sizes from GEOMETRY, not from its text."""
    def cnn(c: int, size: int) -> sg.Sequential:
        side = (size - 2) // 2
        return sg.Sequential(sg.Conv2d(1, c, 3), sg.ReLU(), sg.MaxPool2d(2), sg.Flatten(),
                             sg.Dense(c * side * side, 3), sg.Softmax(),
                             input_shape=(1, size, size))

    a, b = _sources(cnn(4, 8)), _sources(cnn(6, 12))
    for stem in ("gemm", "layers", "act", "output", "opt", "driver"):
        assert a[stem] == b[stem], stem
    assert "GEOMETRY = np.array([(1, 8, 8, 4, 6, 6)" in a["kernels"][0]
    other_kernel = sg.Sequential(sg.Conv2d(1, 4, 5), sg.ReLU(), sg.MaxPool2d(2), sg.Flatten(),
                                 sg.Dense(16, 3), sg.Softmax(), input_shape=(1, 8, 8))
    assert _sources(other_kernel)["driver"] != a["driver"]   # the window is a kind setting
