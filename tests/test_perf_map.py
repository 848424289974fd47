"""tools/perf_map.py names every compiled Numba function at its entry address."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from numba import njit


def _tool():
    path = Path(__file__).resolve().parent.parent / "tools" / "perf_map.py"
    spec = importlib.util.spec_from_file_location("perf_map", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@njit
def _perf_map_probe(x):
    return x.sum() * 2.0


def test_the_map_names_a_compiled_function_at_its_entry(tmp_path) -> None:
    assert _perf_map_probe(np.ones(3)) == 6.0
    cres = next(iter(_perf_map_probe.overloads.values()))
    entry = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
    path = _tool().write_perf_map(str(tmp_path / "perf.map"))
    lines = [line.split() for line in Path(path).read_text().splitlines()]
    named = {int(start, 16): name for start, size, name in lines}
    assert named[entry] == "test_perf_map._perf_map_probe"
    starts = sorted(named)
    assert all(int(size, 16) > 0 for _, size, _ in lines) and len(starts) == len(set(starts))
