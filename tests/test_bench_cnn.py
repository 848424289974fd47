"""The CNN benchmark measures the same computation everywhere and its correctness gate bites.

Needs neither torch nor jax (their tests skip when absent; their absence in a run
is tested by shadowing them with modules that fail to import). The end-to-end
run trains the smallest network with symgrad and the NumPy reference only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_cnn  # noqa: E402
from cnn_setup import (  # noqa: E402
    SIZES,
    CnnSize,
    flops_per_epoch,
    gemms,
    make_problem,
    param_layers,
    shapes,
)
from run_cnn_numpy import NumpyCnnTrainer, gemm_floor_ms, loss_and_gradients  # noqa: E402

# Every layer kind and option of the benchmark (padding, both poolings, two convs so
# the second one's dX is needed, a hidden dense layer) at a size the tests can afford.
MIXED = CnnSize("mixed", (2, 8, 8), (("conv", 2, 3, 3, 1), ("relu",), ("maxpool", 2),
                                     ("conv", 3, 4, 3, 0), ("relu",), ("avgpool", 2),
                                     ("flatten",), ("dense", 4, 5), ("relu",), ("dense", 5, 3)),
                8, 8)


def test_problem_is_deterministic_and_typed():
    a, b = make_problem("lenet", "float32"), make_problem("lenet", "float32")
    assert a.X.shape == (4096, 1, 28, 28) and a.X.dtype == np.float32 and a.X.flags.c_contiguous
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert list(a.params) == ["conv0.W", "conv0.b", "conv1.W", "conv1.b", "dense0.W",
                              "dense0.b", "dense1.W", "dense1.b"]
    assert a.params["conv1.W"].shape == (16, 8, 5, 5) and a.params["dense0.W"].shape == (256, 64)
    assert all(v.dtype == np.float32 for v in a.params.values())
    assert set(np.unique(a.labels)) == set(range(10))


@pytest.mark.parametrize("size, dtype", [("huge", "float64"), ("tiny", "float16")])
def test_bad_size_or_dtype_is_named(size, dtype):
    with pytest.raises(ValueError, match=size if size == "huge" else dtype):
        make_problem(size, dtype)
    with pytest.raises(SystemExit, match="unknown"):
        bench_cnn.main(["--sizes", size] if size == "huge" else ["--dtypes", dtype])


def test_every_size_fits_together():
    assert shapes(SIZES["wide"])[-2] == (32 * 8 * 8,)
    assert shapes(SIZES["tiny"])[-1] == (10,)
    bad = CnnSize("bad", (1, 8, 8), (("conv", 2, 4, 3, 0),), 8, 8)
    with pytest.raises(ValueError, match="gets 1 channels"):
        shapes(bad)


def test_flop_count_is_the_conv_formula():
    """Forward 2 n O OH OW C kh kw per conv, dW and dX as much again (no dX for the first)."""
    s = SIZES["lenet"]
    conv0 = 2 * s.batch * 8 * 24 * 24 * 1 * 5 * 5
    conv1 = 2 * s.batch * 16 * 8 * 8 * 8 * 5 * 5
    dense = 2 * s.batch * (256 * 64 + 64 * 10)
    per_batch = 2 * conv0 + 3 * conv1 + 3 * dense
    assert flops_per_epoch(s) == s.n_batches * per_batch
    # The network: 4 forward products, 4 dW, 3 dX/dA (none into the images).
    kinds = [g.what.split()[1] for g in gemms(s)]
    assert kinds.count("forward") == 4 and kinds.count("dW") == 4
    assert kinds.count("dcols") + kinds.count("dA") == 3
    assert not any(g.what == "conv0 dcols" for g in gemms(s))


def test_gemm_floor_runs_every_product():
    assert gemm_floor_ms(make_problem("tiny", "float32"), repeats=1) > 0


def test_numpy_reference_step_equals_symgrad_gradients():
    """One SGD step of the benchmark's hand-written im2col backprop == symgrad's derived
    gradients, through every layer kind of the benchmark."""
    from run_cnn_symgrad import build_net

    import symgrad as sg

    p = make_problem(MIXED, "float64")
    trainer = NumpyCnnTrainer(p)
    loss = trainer.epoch()
    model = sg.compile(build_net(MIXED), loss="cross_entropy", dtype="float64")
    ref_loss, grads = model.backward(p.X, p.labels, params=p.params)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert sorted(grads) == sorted(p.params)
    after = trainer.weights()
    for key, g in grads.items():
        assert np.abs(g).max() > 0, key   # every parameter is reached by the gradient
        np.testing.assert_allclose((p.params[key] - after[key]) / p.lr, g, atol=1e-12,
                                   err_msg=key)


def test_torch_peer_computes_the_reference_step():
    pytest.importorskip("torch")
    from run_cnn_torch import TorchCnnTrainer

    p = make_problem(MIXED, "float64")
    ref, peer = NumpyCnnTrainer(p), TorchCnnTrainer(p)
    assert peer.epoch() == pytest.approx(ref.epoch(), rel=1e-12)
    for key, w in ref.weights().items():
        np.testing.assert_allclose(peer.weights()[key], w, rtol=0, atol=1e-14, err_msg=key)


def test_jax_peer_computes_the_reference_gradients():
    jax = pytest.importorskip("jax")
    from run_cnn_jax import make_loss

    p = make_problem(MIXED, "float64")
    loss, grads = jax.jit(jax.value_and_grad(make_loss(MIXED)))(
        {k: jax.numpy.asarray(v) for k, v in p.params.items()}, p.X, p.onehot)
    ref_loss, ref_grads = loss_and_gradients(MIXED, p.params, p.X, p.onehot)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12)
    for key, g in ref_grads.items():
        np.testing.assert_allclose(np.asarray(grads[key]), g, rtol=0, atol=1e-14, err_msg=key)


def test_param_names_follow_symgrad():
    assert list(param_layers(MIXED).values()) == ["conv0", "conv1", "dense0", "dense1"]


def _run_bench(tmp_path: Path, frameworks: str, env_path: Path | None = None) -> dict:
    out = tmp_path / "out.json"
    env = None
    if env_path is not None:  # modules here shadow installed ones in the worker processes
        env = dict(os.environ,
                   PYTHONPATH=f"{env_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_cnn.py"), "--sizes", "tiny", "--dtypes", "float64",
         "--repeats", "1", "--warmup", "0", "--frameworks", frameworks, "--no-compile-times",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    report["stdout"] = proc.stdout
    return report


def test_symgrad_trains_the_same_weights_as_numpy(tmp_path):
    report = _run_bench(tmp_path, "numpy,symgrad")
    cells = report["results"][0]["frameworks"]
    cell = cells["symgrad"]
    assert "error" not in cell, cell.get("error")
    assert cell["max_weight_diff_vs_numpy"] < 1e-12
    assert cell["loss_diff_vs_numpy"] < 1e-12
    assert cell["median_ms"] > 0 and cells["numpy"]["floor_ms"] > 0
    row = next(line for line in report["stdout"].splitlines() if line.startswith("| tiny ("))
    cells_md = [c.strip() for c in row.split("|")[1:-1]]
    assert cells_md[1] == "float64" and float(cells_md[2]) > 0 and float(cells_md[6]) > 0
    assert "MISMATCH" not in report["stdout"]
    assert float(cells_md[-1].split(" / ")[0]) < 1e-12      # the sanity column: symgrad's diff


def test_missing_peers_show_na_and_the_run_goes_on(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("torch", "jax"):
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name} blocked for the test')\n")
    report = _run_bench(tmp_path, "numpy,torch,jax", blocked)
    assert "torch blocked for the test" in report["notes"]["torch"]
    assert "jax blocked for the test" in report["notes"]["jax"]
    row = next(line for line in report["stdout"].splitlines() if line.startswith("| tiny ("))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[2] == cells[4] == cells[5] == "n/a"        # symgrad (not run), torch, jax
    assert float(cells[3]) > 0 and float(cells[6]) > 0      # numpy and the floor measured


def _fake_worker(perturb: float):
    """A run_cnn_worker that trains the real NumPy reference and a 'symgrad' off by ``perturb``."""
    def run(framework, size, dtypes, repeats, out, timeout, threads=None, warmup=0.0):
        out.mkdir(parents=True, exist_ok=True)
        results = []
        for dtype in dtypes:
            p = make_problem(size, dtype)
            trainer = NumpyCnnTrainer(p)
            loss = trainer.epoch()
            weights = trainer.weights()
            if framework != "numpy":
                weights = {k: v + v.dtype.type(perturb) for k, v in weights.items()}
            np.savez(out / f"{framework}_{p.tag}.npz", **weights)
            results.append({"size": size, "dtype": dtype, "median_ms": 1.0, "times_ms": [1.0],
                            "compile_ms": 0.0, "loss_epoch1": loss, "floor_ms": 0.5})
        return {"framework": framework, "results": results}
    return run


def test_the_gate_fails_a_run_whose_weights_differ(tmp_path, monkeypatch, capsys):
    """Through collect and main: 1e-6 off is a float64 mismatch (exit 1) but float32 noise."""
    monkeypatch.setattr(bench_cnn, "run_cnn_worker", _fake_worker(1e-6))
    args = ["--sizes", "tiny", "--frameworks", "numpy,symgrad", "--repeats", "1",
            "--no-compile-times", "--json", str(tmp_path / "r.json")]
    assert bench_cnn.main(args) == 1
    captured = capsys.readouterr()
    assert "tiny float64 symgrad" in captured.err and "tiny float32" not in captured.err
    report = json.loads((tmp_path / "r.json").read_text())
    diffs = {e["dtype"]: e["frameworks"]["symgrad"]["max_weight_diff_vs_numpy"]
             for e in report["results"]}
    assert diffs["float64"] == pytest.approx(1e-6, rel=1e-6)
    assert "MISMATCH" in captured.out
    monkeypatch.setattr(bench_cnn, "run_cnn_worker", _fake_worker(0.0))
    assert bench_cnn.main(args) == 0


def test_an_unchecked_result_does_not_pass():
    """No reference to compare with (it failed) is a failure, not a pass; NaN never passes."""
    res = {"median_ms": 1.0, "times_ms": [1.0], "compile_ms": 0.0, "loss_epoch1": 0.5}
    report = {"results": [{"size": "tiny", "arch": "a", "n": 1, "batch": 1, "dtype": "float32",
                           "gflop_per_epoch": 1.0, "frameworks": {"symgrad": res}}],
              "notes": {}}
    assert bench_cnn.mismatches(report) == ["tiny float32 symgrad"]
    assert "unchecked MISMATCH" in bench_cnn.markdown(report)
    res.update(max_weight_diff_vs_numpy=float("nan"), loss_diff_vs_numpy=0.0)
    assert bench_cnn.mismatches(report) == ["tiny float32 symgrad"]
    res["max_weight_diff_vs_numpy"] = 1e-7
    assert bench_cnn.mismatches(report) == []


def test_compile_table_marks_the_latency_target():
    phase = {"import_s": 0.4, "derive_s": 0.1, "kernel_s": 0.5, "first_epoch_s": 0.6,
             "epoch_s": 0.1, "compile_s": 0.6, "ready_s": 1.0}
    slow = dict(phase, kernel_s=9.0, ready_s=9.5)
    table = bench_cnn.compile_markdown([{"size": "lenet", "dtype": "float32", "cold": slow,
                                         "warm": phase, "resized": slow}])
    rows = [line for line in table.splitlines() if line.startswith("| lenet")]
    assert [r.split("|")[3].strip() for r in rows] == ["cold", "warm", "changed widths (warm)"]
    assert [r.split("|")[-2].strip() for r in rows] == ["", "yes", "no"]


@pytest.mark.parametrize("module", ["cnn_setup", "run_cnn_numpy", "bench_cnn"])
def test_benchmark_doctests(module):
    """benchmarks/ is outside pytest's doctest paths: its examples are run here."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
