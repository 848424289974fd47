"""The benchmark harness measures the same computation everywhere and reports missing peers.

These tests need neither torch nor jax: the peers' absence is itself tested by
shadowing them with modules that fail to import.
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

from mlp_setup import (  # noqa: E402
    ACTIVATIONS,
    ADAM,
    SIZES,
    Size,
    activation_numpy,
    flops_per_epoch,
    make_problem,
    matmul_shapes,
)
from run_numpy import NumpyTrainer, matmul_floor_ms  # noqa: E402

import symgrad as sg  # noqa: E402


def test_problem_is_deterministic_and_typed():
    a, b = make_problem("small", "float32"), make_problem("small", "float32")
    assert a.X.dtype == np.float32 and a.X.flags.c_contiguous
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.labels, b.labels)
    for (Wa, ba), (Wb, bb) in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)
    # Both classes of the teacher occur, else the task would be trivial.
    assert set(np.unique(make_problem("tiny", "float64").labels)) == {0, 1}
    assert np.all(a.onehot.sum(axis=1) == 1)


@pytest.mark.parametrize("size, dtype", [("huge", "float64"), ("tiny", "float16")])
def test_bad_size_or_dtype_is_named(size, dtype):
    with pytest.raises(ValueError, match=size if size == "huge" else dtype):
        make_problem(size, dtype)


@pytest.mark.parametrize("activation, optimizer", [("mish", "sgd"), ("relu", "rmsprop")])
def test_bad_activation_or_optimizer_is_named(activation, optimizer):
    bad = activation if activation == "mish" else optimizer
    with pytest.raises(ValueError, match=f"unknown (activation|optimizer) '{bad}'"):
        make_problem("tiny", "float64", activation, optimizer)
    import bench_mlp

    flag = "--activations" if activation == "mish" else "--optimizers"
    with pytest.raises(SystemExit, match=f"{flag}: unknown.*{bad}"):
        bench_mlp.main([flag, bad])


def test_flop_count_matches_the_products_of_a_step():
    s = SIZES["medium"]
    shapes = matmul_shapes(s)
    # 3 forward products, 3 dW, 2 dA (no dX for the first layer).
    assert len(shapes) == 8
    assert (784, 128, 256) in shapes and (128, 256, 784) not in shapes
    assert flops_per_epoch(s) == s.n_batches * sum(2 * m * k * n for m, k, n in shapes)


def test_matmul_floor_runs_every_shape():
    p = make_problem("tiny", "float64")
    assert matmul_floor_ms(p, repeats=2) > 0


def _symgrad_gradients(p):
    from run_symgrad import build_net

    model = sg.compile(build_net(p.size.dims, p.activation), loss="cross_entropy",
                       dtype="float64")
    init = {f"dense{i}.{k}": v for i, (W, b) in enumerate(p.params)
            for k, v in (("W", W), ("b", b))}
    return model.backward(p.X, p.labels, params=init)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_numpy_reference_step_equals_symgrad_gradients(activation):
    """One SGD step of the benchmark's hand-written backprop == symgrad's derived gradients,
    for every activation of the benchmark."""
    one_batch = Size("one", (3, 5, 4, 3), 8, 8)
    p = make_problem(one_batch, "float64", activation)
    trainer = NumpyTrainer(p)
    loss = trainer.epoch()
    ref_loss, grads = _symgrad_gradients(p)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for i, (W, b) in enumerate(trainer.weights()):
        np.testing.assert_allclose((p.params[i][0] - W) / p.lr, grads[f"dense{i}.W"], atol=1e-12)
        np.testing.assert_allclose((p.params[i][1] - b) / p.lr, grads[f"dense{i}.b"], atol=1e-12)


def test_numpy_reference_adam_step_is_the_bias_corrected_update():
    """Adam's first step from zero moments: w -= lr * g / (|g| + eps), g symgrad's gradient."""
    one_batch = Size("one", (3, 5, 4, 3), 8, 8)
    p = make_problem(one_batch, "float64", "swish", "adam")
    trainer = NumpyTrainer(p)
    trainer.epoch()
    _, grads = _symgrad_gradients(p)
    for i, (W, b) in enumerate(trainer.weights()):
        for name, before, after in (("W", p.params[i][0], W), ("b", p.params[i][1], b)):
            g = grads[f"dense{i}.{name}"]
            expected = before - ADAM["lr"] * g / (np.abs(g) + ADAM["eps"])
            np.testing.assert_allclose(after, expected, rtol=0, atol=1e-15)


def _points(dtype=np.float64):
    return np.linspace(-6, 6, 97).astype(dtype)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_torch_peer_uses_the_same_activation(activation):
    torch = pytest.importorskip("torch")
    from run_torch import ACTIVATIONS as TORCH

    f, df = activation_numpy(activation)
    z = torch.tensor(_points(), requires_grad=True)
    a = TORCH[activation]()(z)
    a.sum().backward()
    zn = _points()
    np.testing.assert_allclose(a.detach().numpy(), f(zn), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(z.grad.numpy(), df(zn, f(zn)), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_jax_peer_uses_the_same_activation(activation):
    jax = pytest.importorskip("jax")
    from run_jax import ACTIVATIONS as JAX

    f, df = activation_numpy(activation)
    zn = _points()
    values = np.asarray(JAX[activation](jax.numpy.asarray(zn)))
    slopes = np.asarray(jax.vmap(jax.grad(JAX[activation]))(jax.numpy.asarray(zn)))
    np.testing.assert_allclose(values, f(zn), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(slopes, df(zn, f(zn)), rtol=1e-12, atol=1e-14)


def _run_bench(tmp_path: Path, frameworks: str, env_path: Path | None = None,
               activations: str = "relu", optimizers: str = "sgd") -> dict:
    out = tmp_path / "out.json"
    env = None
    if env_path is not None:  # modules here shadow installed ones in the worker processes
        env = dict(os.environ,
                   PYTHONPATH=f"{env_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_mlp.py"), "--sizes", "tiny", "--dtypes", "float64",
         "--activations", activations, "--optimizers", optimizers,
         "--repeats", "1", "--warmup", "0", "--frameworks", frameworks, "--no-compile-times",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    report["stdout"] = proc.stdout
    return report


def test_missing_peers_show_na_and_the_run_goes_on(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("torch", "jax"):
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name} blocked for the test')\n")
    report = _run_bench(tmp_path, "numpy,torch,jax", blocked, "tanh,swish", "sgd,adam")
    assert "torch blocked for the test" in report["notes"]["torch"]
    assert "jax blocked for the test" in report["notes"]["jax"]
    rows = [line for line in report["stdout"].splitlines() if line.startswith("| tiny (")]
    seen = set()
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        seen.add((cells[2], cells[3]))                     # activation, optimizer
        assert cells[4] == cells[6] == cells[7] == "n/a"   # symgrad (not run), torch, jax ms
        assert float(cells[5]) > 0 and float(cells[8]) > 0  # numpy ms and the floor measured
    assert seen == {(a, o) for a in ("tanh", "swish") for o in ("sgd", "adam")}


def test_symgrad_trains_the_same_weights_as_numpy(tmp_path):
    report = _run_bench(tmp_path, "numpy,symgrad", activations="gelu", optimizers="adam")
    assert (report["results"][0]["activation"], report["results"][0]["optimizer"]) == \
        ("gelu", "adam")
    cell = report["results"][0]["frameworks"]["symgrad"]
    assert "error" not in cell, cell.get("error")
    assert cell["max_weight_diff_vs_numpy"] < 1e-12
    assert cell["loss_diff_vs_numpy"] < 1e-12
    assert cell["loss_epoch1"] == pytest.approx(
        report["results"][0]["frameworks"]["numpy"]["loss_epoch1"], rel=1e-12)
    assert cell["median_ms"] > 0


def test_mismatch_is_flagged():
    import bench_mlp

    diff = {"max_weight_diff_vs_numpy": 1e-3, "median_ms": 1.0, "times_ms": [1.0],
            "compile_ms": 0.0, "loss_epoch1": 0.5}
    report = {"results": [{"size": "tiny", "arch": "2-16-16-2", "n": 1024, "batch": 16,
                           "dtype": "float64", "activation": "gelu", "optimizer": "adam",
                           "gflop_per_epoch": 1e-3,
                           "frameworks": {"symgrad": diff}}], "notes": {}}
    assert "MISMATCH" in bench_mlp.markdown(report)
    assert "| float64 | gelu | adam |" in bench_mlp.markdown(report)
    diff["max_weight_diff_vs_numpy"] = 1e-15
    assert "MISMATCH" not in bench_mlp.markdown(report)
    diff["loss_diff_vs_numpy"] = 1e-6   # same weights but another loss: still a mismatch
    assert "MISMATCH" in bench_mlp.markdown(report)


def test_thread_cap_pins_the_worker_to_that_many_cores():
    import bench_mlp

    assert bench_mlp.pin_to_cores(None) is None
    code = "import os; print(len(os.sched_getaffinity(0)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, preexec_fn=bench_mlp.pin_to_cores(1)).stdout
    assert out.strip() == "1"


def test_adam_float32_gate_accepts_few_sign_flips_only(tmp_path):
    # Adam moves a weight by ~lr whatever its gradient's size, so in float32 a gradient
    # that rounds to the other sign leaves that weight up to 2*lr per step off. The gate
    # accepts a few such weights, never many, never more than 2*lr*steps, and never in
    # float64 or with SGD.
    import bench_mlp

    tag, ref = "medium_float32_relu_adam", np.zeros(10_000, dtype=np.float32)
    np.savez(tmp_path / f"numpy_{tag}.npz", W0=ref)
    steps = SIZES["medium"].n // SIZES["medium"].batch
    flipped = ref.copy()
    flipped[:3] = 2 * 1e-3 * 0.9          # three sign flips of an lr = 1e-3 step
    np.savez(tmp_path / f"symgrad_{tag}.npz", W0=flipped)
    res = {"size": "medium", "dtype": "float32", "optimizer": "adam",
           "max_weight_diff_vs_numpy": bench_mlp.max_weight_diff(tmp_path, "symgrad", tag),
           "weights_over_tol": bench_mlp.weights_over(tmp_path, "symgrad", tag, 1e-3),
           "loss_diff_vs_numpy": 0.0}
    assert res["weights_over_tol"] == pytest.approx(3e-4)
    assert bench_mlp._agrees(res, "float32")
    assert "sign flips" in bench_mlp._diff(res, "float32")
    assert not bench_mlp._agrees(dict(res, optimizer="sgd"), "float32")
    assert not bench_mlp._agrees(dict(res, dtype="float64"), "float64")
    assert not bench_mlp._agrees(dict(res, weights_over_tol=0.01), "float32")   # too many
    far = dict(res, max_weight_diff_vs_numpy=2 * 1e-3 * steps * 1.5)
    assert not bench_mlp._agrees(far, "float32")                                   # too far
    assert "MISMATCH" in bench_mlp._diff(far, "float32")
    assert not bench_mlp._agrees(dict(res, loss_diff_vs_numpy=0.1), "float32")


def test_many_sign_flips_pass_only_as_far_from_float64_as_reordered_numpy(tmp_path):
    """More flips than SIGN_FLIP_FRACTION pass where the run is no further from the
    float64 run of the same start than NumPy float32 with its sums reordered is."""
    import bench_mlp

    tag, n = "medium_float32_relu_adam", 10_000
    exact = np.zeros(n, dtype=np.float32)
    np.savez(tmp_path / f"numpy64_{tag}.npz", W0=exact)
    np.savez(tmp_path / f"numpy_{tag}.npz", W0=exact)
    step = np.float32(2 * 1e-3 * 0.9)
    reordered, run, wrong = exact.copy(), exact.copy(), exact.copy()
    reordered[:110] = step                 # 1.1 %: rounding alone, another order of sums
    run[5000:5120] = step                  # 1.2 %, other weights: as far from float64
    wrong[:2500] = step                    # 25 %: further than rounding takes any run
    for name, w in (("numpy32r", reordered), ("symgrad", run), ("torch", wrong)):
        np.savez(tmp_path / f"{name}_{tag}.npz", W0=w)

    def cell(fw):
        return {"size": "medium", "dtype": "float32", "optimizer": "adam",
                "loss_diff_vs_numpy": 0.0,
                "max_weight_diff_vs_numpy": bench_mlp.max_weight_diff(tmp_path, fw, tag),
                "weights_over_tol": bench_mlp.weights_over(tmp_path, fw, tag, 1e-3),
                "weights_off_float64": bench_mlp.weights_over(tmp_path, fw, tag, 1e-3,
                                                              "numpy64"),
                "reordered_off_float64": bench_mlp.weights_over(tmp_path, "numpy32r", tag, 1e-3,
                                                            "numpy64")}

    ok, bad = cell("symgrad"), cell("torch")
    assert ok["weights_over_tol"] == pytest.approx(0.012)   # over SIGN_FLIP_FRACTION
    assert bench_mlp._agrees(ok, "float32")
    assert "reordered NumPy float32 1.1 %" in bench_mlp._diff(ok, "float32")
    assert not bench_mlp._agrees(bad, "float32")
    assert not bench_mlp._agrees(dict(ok, reordered_off_float64=None), "float32")   # no yardstick


def test_reports_say_which_machine_they_ran_on():
    """Tables from an AVX2 day and an AVX-512 day are not comparable: each report says
    which CPU, which vector extension and how fast a single thread ran."""
    import machine

    cpuinfo = "model name\t: Intel Xeon\nflags\t\t: sse4_2 avx avx2 avx512f\n"
    assert machine.cpu_model_and_vectors(cpuinfo) == ("Intel Xeon", "avx512f")
    assert machine.cpu_model_and_vectors("flags\t: fpu sse2\n")[1] == "unknown"
    report = {"machine": machine.describe(), "notes": {}}
    assert report["machine"]["python_loop_ms"] > 0
    machine.add_notes(report, load_start=0.0)
    assert report["notes"]["cpu"].startswith(report["machine"]["cpu_model"])
    assert report["machine"]["loadavg_at_start"] == 0.0


def test_compact_table_puts_the_optimizers_of_a_cell_side_by_side():
    import bench_mlp

    def cell(ms):
        return {"median_ms": ms, "floor_ms": 2.0}

    results = [{"size": "small", "dtype": "float32", "activation": "tanh", "optimizer": opt,
                "frameworks": {"symgrad": cell(sg), "numpy": cell(9.0), "jax": cell(6.0),
                               "torch": cell(30.0)}}
               for opt, sg in (("sgd", 3.0), ("adam", 4.0))]
    lines = bench_mlp.compact_markdown({"results": results}).splitlines()
    assert lines[0].count("symgrad ms") == 2 and "adam jax/symgrad" in lines[0]
    assert lines[2] == ("| small | float32 | tanh | 3.00 | 2.00 | 10.00 | 1.50 | "
                        "4.00 | 1.50 | 7.50 | 2.00 |")


def test_rounds_take_each_frameworks_best_round():
    """A cell's time is its fastest round's median (a slow process left out), the floor's
    likewise; the pooled median of every epoch stays beside it."""
    import bench_mlp

    row: dict = {}
    for median, times, floor in [(30.0, [29.0, 30.0, 31.0], 20.0),
                                 (45.0, [44.0, 45.0, 46.0], 27.0),
                                 (32.0, [31.0, 32.0, 33.0], 21.0)]:
        bench_mlp._merge(row, "symgrad", {"median_ms": median, "times_ms": times,
                                          "compile_ms": 1.0, "floor_ms": floor})
    cell = row["symgrad"]
    assert cell["rounds"] == 3 and cell["round_medians_ms"] == [30.0, 45.0, 32.0]
    assert cell["median_ms"] == 30.0 and cell["floor_ms"] == 20.0
    assert cell["pooled_median_ms"] == 32.0
