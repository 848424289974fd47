"""Benchmark one epoch of MLP training: symgrad vs NumPy, PyTorch, JAX and the matmul floor.

Every framework trains the same network (hidden layers with one activation --
ReLU, tanh, sigmoid, exact GELU or swish -- softmax + cross-entropy) from the
same initial weights on the same synthetic data, with the same minibatch order
(no shuffling) and the same optimizer (plain SGD or Adam). Each framework runs in
its own subprocess (see worker.py); before the timed epochs, the weights after
one epoch are compared with the hand-written NumPy reference, and the table
shows the largest difference: timings of different computations would be
worthless.

Run it with OpenBLAS left to pick its own kernels::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mlp.py
    python benchmarks/bench_mlp.py --sizes tiny,small --dtypes float64 --repeats 5 --json out.json
    python benchmarks/bench_mlp.py --activations relu --optimizers sgd     # the original table
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import machine  # noqa: E402
from mlp_setup import (  # noqa: E402
    ACTIVATIONS,
    ADAM,
    DTYPES,
    OPTIMIZERS,
    SIZES,
    WARMUP_S,
    flops_per_epoch,
)

FRAMEWORKS = ("numpy", "symgrad", "torch", "jax")
# Largest acceptable |w - w_numpy| after one epoch; far above rounding, far below a real bug.
TOLERANCE = {"float64": 1e-9, "float32": 1e-3}


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment for a worker limited to ``threads`` threads in every pool (None: defaults).

    OpenBLAS (NumPy's and SciPy's, which Numba calls), OpenMP (PyTorch), Numba
    and XLA each keep their own pool; all are capped alike so that no framework
    gets more cores than another.
    """
    env = dict(os.environ)
    if threads is None:
        return env
    n = str(threads)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "BENCH_THREADS"):
        env[var] = n
    if threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                            " intra_op_parallelism_threads=1").strip()
    return env


def pin_to_cores(threads: int | None):
    """A preexec_fn pinning the worker to ``threads`` cores (None: no pinning).

    The thread variables are not enough: JAX 0.10's XLA CPU runtime ignores
    ``--xla_cpu_multi_thread_eigen=false`` and ran a "one-thread" medium epoch on
    1.8 cores (measured: user time / wall time of 20 extra epochs). CPU affinity
    is inherited by every thread the process starts, whatever the library.
    """
    if threads is None or not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))[:threads]
    return lambda: os.sched_setaffinity(0, cores)


def run_worker(framework: str, size: str, dtypes: str, repeats: int, out: Path,
               timeout: float, threads: int | None = None, activations: str = "relu",
               optimizers: str = "sgd", warmup: float = WARMUP_S) -> dict:
    """Run worker.py for one framework and one size; return its JSON report."""
    cmd = [sys.executable, str(HERE / "worker.py"), framework, "--sizes", size,
           "--dtypes", dtypes, "--activations", activations, "--optimizers", optimizers,
           "--repeats", str(repeats), "--warmup", str(warmup), "--out", str(out)]
    return run_json_worker(cmd, framework, out, timeout, threads)


def run_json_worker(cmd: list[str], framework: str, out: Path, timeout: float,
                    threads: int | None = None) -> dict:
    """Run a worker command that writes ``<out>/<framework>.json``; return that report.

    The worker runs with ``threads`` capped and pinned (`thread_env`, `pin_to_cores`);
    a timeout, a non-zero exit or a missing report comes back as ``{"missing": why}``.
    """
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=thread_env(threads), preexec_fn=pin_to_cores(threads))
    except subprocess.TimeoutExpired:
        return {"framework": framework, "missing": f"timed out after {timeout:.0f} s",
                "results": []}
    path = out / f"{framework}.json"
    if proc.returncode != 0 or not path.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"framework": framework, "results": [],
                "missing": f"worker exited {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(path.read_text())


def _case(res: dict) -> tuple[str, str, str, str]:
    """(size, dtype, activation, optimizer) of a worker result."""
    return (res["size"], res["dtype"], res.get("activation", "relu"),
            res.get("optimizer", "sgd"))


def max_weight_diff(out: Path, framework: str, tag: str) -> float | None:
    """Largest absolute difference of any weight or bias vs the NumPy reference.

    ``tag`` is ``size_dtype_activation_optimizer`` (`mlp_setup.Problem.tag`).
    """
    ref, other = out / f"numpy_{tag}.npz", out / f"{framework}_{tag}.npz"
    if not (ref.exists() and other.exists()):
        return None
    with np.load(ref) as a, np.load(other) as b:
        if sorted(a.files) != sorted(b.files):
            return float("inf")
        return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64))))
                   for k in a.files)


def weights_over(out: Path, framework: str, tag: str, tol: float,
                 reference: str = "numpy") -> float | None:
    """Fraction of all weights and biases that differ from the reference by > tol
    (``reference`` "numpy64": NumPy's float64 run of a float32 problem)."""
    ref, other = out / f"{reference}_{tag}.npz", out / f"{framework}_{tag}.npz"
    if not (ref.exists() and other.exists()):
        return None
    with np.load(ref) as a, np.load(other) as b:
        if sorted(a.files) != sorted(b.files):
            return 1.0
        over = sum(int(np.count_nonzero(np.abs(a[k].astype(np.float64)
                                               - b[k].astype(np.float64)) > tol))
                   for k in a.files)
        return over / sum(a[k].size for k in a.files)


def _merge(row: dict, fw: str, res: dict) -> None:
    """Add one round's result for ``fw`` to its cell: its time is the best round's median.

    Whole processes can run slow on these shared machines (benchmarks/README.md: about
    one medium process in six ran every epoch ~1.6x slower, for every framework). Pooling
    the rounds' epochs let such a process supply half the sample, and a cell's ratio
    then said which framework drew the slow process. The fastest round's median is the
    one that ran undisturbed, taken alike for every framework and for the NumPy floor;
    the pooled median stays in the JSON (``pooled_median_ms``). Keeps the worst diff.
    """
    if fw not in row or "error" in row[fw]:
        row[fw] = dict(res, rounds=1, round_medians_ms=[res["median_ms"]],
                       pooled_median_ms=res["median_ms"],
                       floor_rounds_ms=[res["floor_ms"]] if "floor_ms" in res else [])
        return
    if "error" in res:
        return
    cell = row[fw]
    cell["rounds"] += 1
    cell["times_ms"] = cell["times_ms"] + res["times_ms"]
    cell["round_medians_ms"].append(res["median_ms"])
    cell["median_ms"] = min(cell["round_medians_ms"])
    cell["pooled_median_ms"] = statistics.median(cell["times_ms"])
    cell["compile_ms"] = min(cell["compile_ms"], res["compile_ms"])
    if "floor_ms" in res:
        cell["floor_rounds_ms"].append(res["floor_ms"])
        cell["floor_ms"] = min(cell["floor_rounds_ms"])
    if res.get("loss_diff_vs_numpy") is not None:
        cell["loss_diff_vs_numpy"] = max(cell.get("loss_diff_vs_numpy") or 0.0,
                                         res["loss_diff_vs_numpy"])
    for key in ("max_weight_diff_vs_numpy", "weights_over_tol", "weights_off_float64",
                "reordered_off_float64"):
        if res.get(key) is not None:
            cell[key] = max(cell.get(key) or 0.0, res[key])


def collect(sizes: list[str], dtypes: list[str], frameworks: list[str], repeats: int,
            workdir: Path, timeout: float, log=print, threads: int | None = None,
            rounds: int = 1, activations: list[str] | None = None,
            optimizers: list[str] | None = None, warmup: float = WARMUP_S) -> dict:
    """Run every framework for every size; gather timings, sanity diffs and notes."""
    activations = activations or ["relu"]
    optimizers = optimizers or ["sgd"]
    rows: dict[tuple[str, str, str, str], dict] = {}
    notes: dict[str, str] = {}
    versions: dict[str, str | None] = {}
    for size in sizes:
        # All frameworks of one size run back to back, so drift on a shared machine
        # hits them alike; each gets a fresh interpreter. With several rounds the
        # order rotates, and each cell pools the epoch times of all its rounds.
        for rnd in range(rounds):
            out = workdir / size / f"round{rnd}"
            order = frameworks[rnd % len(frameworks):] + frameworks[:rnd % len(frameworks)]
            done: list[tuple[str, dict]] = []
            for fw in order:
                t0 = time.perf_counter()
                rep = run_worker(fw, size, ",".join(dtypes), repeats, out, timeout, threads,
                                 ",".join(activations), ",".join(optimizers), warmup)
                log(f"  {size:<6} round {rnd + 1} {fw:<8} {time.perf_counter() - t0:6.1f} s"
                    + (f"  ({rep['missing']})" if "missing" in rep else ""))
                if "missing" in rep:
                    notes[fw] = rep["missing"]
                versions[fw] = rep.get("version")
                done.extend((fw, res) for res in rep["results"])
            # Compared only now: the NumPy reference may have run last in this round.
            ref_loss = {_case(res): res.get("loss_epoch1") for fw, res in done if fw == "numpy"}
            for fw, res in done:
                case = _case(res)
                if "error" in res:
                    notes[f"{fw} {' '.join(case)}"] = res["error"]
                    _merge(rows.setdefault(case, {}), fw, res)
                    continue
                tag, tol = "_".join(case), TOLERANCE[res["dtype"]]
                if res["dtype"] == "float32":
                    # How far each run strays from the float64 run of the same start, and
                    # how far NumPy float32 with its sums reordered does (`_agrees`)
                    res["weights_off_float64"] = weights_over(out, fw, tag, tol, "numpy64")
                    res["reordered_off_float64"] = weights_over(out, "numpy32r", tag, tol,
                                                            "numpy64")
                if fw != "numpy":
                    res["max_weight_diff_vs_numpy"] = max_weight_diff(out, fw, tag)
                    res["weights_over_tol"] = weights_over(out, fw, tag, tol)
                    if ref_loss.get(case) is not None:
                        # The epoch-1 loss must agree too (relative, as losses are O(1)).
                        res["loss_diff_vs_numpy"] = abs(res["loss_epoch1"] - ref_loss[case])
                _merge(rows.setdefault(case, {}), fw, res)
    results = []
    for size in sizes:
        for dtype in dtypes:
            for act in activations:
                for opt in optimizers:
                    results.append({
                        "size": size, "arch": SIZES[size].arch, "n": SIZES[size].n,
                        "batch": SIZES[size].batch, "dtype": dtype, "activation": act,
                        "optimizer": opt, "gflop_per_epoch": flops_per_epoch(SIZES[size]) / 1e9,
                        "frameworks": rows.get((size, dtype, act, opt), {})})
    return {"results": results, "notes": notes, "versions": versions,
            "machine": machine.describe()}


def compile_times(sizes: list[str], dtypes: list[str], timeout: float,
                  threads: int | None = None, log=print, activation: str = "relu",
                  optimizer: str = "sgd") -> list[dict]:
    """Cold and warm compile of symgrad per size and dtype, each in a fresh process.

    Cold: an empty cache directory. Warm: a second process on the same directory,
    so the derived plans, the generated module and Numba's machine code are reused.
    One network per size and dtype: ``activation`` and ``optimizer``.
    """
    rows = []
    for size in sizes:
        for dtype in dtypes:
            row: dict = {"size": size, "dtype": dtype, "activation": activation,
                         "optimizer": optimizer}
            with tempfile.TemporaryDirectory(prefix="symgrad_cache_") as cache:
                env = thread_env(threads)
                env["SYMGRAD_CACHE_DIR"] = cache
                for phase in ("cold", "warm"):
                    try:
                        proc = subprocess.run(
                            [sys.executable, str(HERE / "compile_probe.py"), size, dtype,
                             activation, optimizer],
                            capture_output=True, text=True, timeout=timeout, env=env)
                        lines = proc.stdout.strip().splitlines()
                        if proc.returncode != 0 or not lines:
                            err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                            row["error"] = f"{phase}: {err}"
                            break
                        row[phase] = json.loads(lines[-1])
                    except subprocess.TimeoutExpired:
                        row["error"] = f"{phase}: timed out after {timeout:.0f} s"
                        break
            log(f"  compile {size:<6} {dtype}: "
                + (row.get("error") or f"cold {row['cold']['compile_s']:.2f} s, "
                                       f"warm {row['warm']['compile_s']:.2f} s"))
            rows.append(row)
    return rows


def compile_markdown(rows: list[dict]) -> str:
    """Table of symgrad's compile times: symbolic derivation plus kernel build."""
    net = f" ({rows[0].get('activation', 'relu')}, {rows[0].get('optimizer', 'sgd')})" \
        if rows else ""
    lines = [f"symgrad compile{net} (fresh process each; cold = empty cache directory, warm = "
             "second process on the same directory: derived plans and kernels reused); seconds:",
             "", "| size | dtype | import symgrad | derive cold | derive warm | kernels cold "
             "| kernels warm | total cold | total warm |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['size']} | {r['dtype']} | {r['error']} |||||||")
            continue
        c, w = r["cold"], r["warm"]
        lines.append(f"| {r['size']} | {r['dtype']} | {w['import_s']:.2f} | {c['derive_s']:.2f} "
                     f"| {w['derive_s']:.2f} | {c['kernel_s']:.2f} | {w['kernel_s']:.2f} "
                     f"| {c['compile_s']:.2f} | {w['compile_s']:.2f} |")
    return "\n".join(lines)


def _ms(res: dict | None, key: str = "median_ms") -> float | None:
    if not res or "error" in res or res.get(key) is None:
        return None
    return float(res[key])


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if x == 0 or abs(x) >= 10 ** (digits - 1):
        return f"{x:.0f}"
    return f"{x:.{max(digits - 1 - int(np.floor(np.log10(abs(x)))), 0)}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


# Adam in float32: a weight whose gradient is ~0 (below float32's rounding of the sum
# that forms it) can get either sign, and Adam moves it by ~lr whatever the gradient's
# size, so it may end up to 2*lr per step away from the reference. A few such weights
# are always accepted; more only if the run strays from the float64 run of the same
# start no further than NumPy float32 with its sums in another order does (measured per
# cell, `_agrees`).
SIGN_FLIP_FRACTION = 1e-3


def _sign_flip_bound(res: dict) -> float | None:
    """The largest difference a sign flip can make in epoch 1 (Adam float32), else None."""
    if res.get("optimizer") != "adam" or res.get("dtype") != "float32" \
            or res.get("size") not in SIZES:
        return None
    size = SIZES[res["size"]]
    return 2 * ADAM["lr"] * (size.n // size.batch)


def _agrees(res: dict, dtype: str) -> bool:
    """Weights and epoch-1 loss within the dtype's tolerance of the NumPy reference.

    Adam in float32 may also leave weights further off, by at most 2*lr per step
    (`_sign_flip_bound`): up to `SIGN_FLIP_FRACTION` of them, or more where its own run
    strays from the float64 run of the same start (the exact trajectory, up to float64
    rounding) on at most twice the share of weights that NumPy float32 with every sum in
    another order strays, plus that fraction. Flips are rounding, so a float32 run may
    have as many as another order of the same sums gives; a wrong gradient moves a run
    further from the exact trajectory. (Plain NumPy float32 is no yardstick: on medium
    ReLU + Adam it happens to leave only 0.003 % of its weights 1e-4 from the float64 run,
    and summing each product in two halves puts 1.1 % of them 1e-3 off, as far as
    symgrad, PyTorch and JAX.)

    >>> ok = {"optimizer": "adam", "dtype": "float32", "size": "medium",
    ...       "max_weight_diff_vs_numpy": 4e-3, "weights_over_tol": 0.012}
    >>> _agrees(ok, "float32"), _agrees(dict(ok, weights_off_float64=0.011,
    ...                                      reordered_off_float64=0.010), "float32")
    (False, True)
    >>> _agrees(dict(ok, weights_off_float64=0.2, reordered_off_float64=0.010), "float32")
    False
    """
    tol = TOLERANCE[dtype]
    if (res.get("loss_diff_vs_numpy") or 0.0) > tol:
        return False
    worst = res.get("max_weight_diff_vs_numpy") or 0.0
    if worst <= tol:
        return True
    bound = _sign_flip_bound(res)
    over = res.get("weights_over_tol")
    if bound is None or over is None or worst > bound:
        return False
    if over <= SIGN_FLIP_FRACTION:
        return True
    own, plain = res.get("weights_off_float64"), res.get("reordered_off_float64")
    return own is not None and plain is not None \
        and own <= 2 * plain + SIGN_FLIP_FRACTION


def _diff(res: dict | None, dtype: str) -> str:
    if not res or "error" in res:
        return "n/a"
    d = res.get("max_weight_diff_vs_numpy")
    if d is None:
        return "n/a"
    if not _agrees(res, dtype):
        return f"{d:.0e} MISMATCH"
    if d > TOLERANCE[dtype]:   # accepted as Adam float32 sign flips: say how many
        text = f"{d:.0e} ({100 * res['weights_over_tol']:.2g} % sign flips"
        if res.get("weights_off_float64") is not None and res.get("reordered_off_float64"):
            text += (f"; {100 * res['weights_off_float64']:.2g} % off the float64 run, "
                     f"reordered NumPy float32 {100 * res['reordered_off_float64']:.2g} %")
        return text + ")"
    return f"{d:.0e}"


def markdown(report: dict) -> str:
    """The main table (required columns + sanity column) and a details table."""
    lines = [
        "| size | dtype | activation | optimizer | symgrad ms | numpy ms | torch ms | jax ms | "
        "floor ms | symgrad GFLOP/s | torch/symgrad | jax/symgrad | symgrad/floor | "
        "max abs ΔW vs numpy (sg / torch / jax) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for e in report["results"]:
        f = e["frameworks"]
        npy, sg, th, jx = (_ms(f.get(k)) for k in FRAMEWORKS)
        floor = _ms(f.get("numpy"), "floor_ms")
        gflops = None if sg is None else e["gflop_per_epoch"] / (sg / 1e3)
        diffs = " / ".join(_diff(f.get(k), e["dtype"]) for k in ("symgrad", "torch", "jax"))
        lines.append(
            f"| {e['size']} ({e['arch']}, n={e['n']}, b={e['batch']}) | {e['dtype']} | "
            f"{e.get('activation', 'relu')} | {e.get('optimizer', 'sgd')} | {_fmt(sg)} | "
            f"{_fmt(npy)} | {_fmt(th)} | {_fmt(jx)} | {_fmt(floor)} | "
            f"{_fmt(gflops)} | {_ratio(th, sg)} | {_ratio(jx, sg)} | {_ratio(sg, floor)} | "
            f"{diffs} |")
    lines += ["", "Details: GFLOP/s (matmul FLOPs / epoch time), one-off cost of the first epoch "
              "beyond a warm one (compile/trace), mean batch loss of epoch 1.", "",
              "| size | dtype | activation | optimizer | framework | ms/epoch (median) | min ms "
              "| GFLOP/s | compile ms | loss epoch 1 |",
              "|---|---|---|---|---|---:|---:|---:|---:|---:|"]
    for e in report["results"]:
        for fw in FRAMEWORKS:
            res = e["frameworks"].get(fw)
            med = _ms(res)
            if med is None:
                continue
            lines.append(
                f"| {e['size']} | {e['dtype']} | {e.get('activation', 'relu')} "
                f"| {e.get('optimizer', 'sgd')} | {fw} | {_fmt(med)} "
                f"| {_fmt(min(res['times_ms']))} "
                f"| {_fmt(e['gflop_per_epoch'] / (med / 1e3))} | {_fmt(res['compile_ms'])} | "
                f"{res['loss_epoch1']:.6f} |")
    if report["notes"]:
        lines += ["", "Notes:"] + [f"- {k}: {v}" for k, v in sorted(report["notes"].items())]
    return "\n".join(lines)


def compact_markdown(report: dict) -> str:
    """One row per size, dtype and activation, the optimizers side by side: symgrad's
    epoch and the peers' epochs over it (above 1: symgrad is faster), plus symgrad over the
    matmul floor. The README's table; `markdown` has every column.

    >>> cell = lambda ms: {"median_ms": ms, "floor_ms": 1.0}
    >>> r = {"results": [{"size": "tiny", "dtype": "float64", "activation": "relu",
    ...       "optimizer": "sgd", "frameworks": {"symgrad": cell(2.0), "numpy": cell(9.0),
    ...       "torch": cell(50.0), "jax": cell(3.0)}}]}
    >>> print(compact_markdown(r).splitlines()[-1])
    | tiny | float64 | relu | 2.00 | 1.50 | 25.00 | 2.00 |
    """
    optimizers = list(dict.fromkeys(e.get("optimizer", "sgd") for e in report["results"]))
    head = "| size | dtype | activation |" + "".join(
        f" {o} symgrad ms | {o} jax/symgrad | {o} torch/symgrad | {o} symgrad/floor |"
        for o in optimizers)
    lines = [head, "|---|---|---|" + "---:|" * (4 * len(optimizers))]
    rows: dict[tuple, dict] = {}
    for e in report["results"]:
        key = (e["size"], e["dtype"], e.get("activation", "relu"))
        rows.setdefault(key, {})[e.get("optimizer", "sgd")] = e["frameworks"]
    for (size, dtype, act), cells in rows.items():
        line = f"| {size} | {dtype} | {act} |"
        for o in optimizers:
            f = cells.get(o, {})
            sg = _ms(f.get("symgrad"))
            line += (f" {_fmt(sg)} | {_ratio(_ms(f.get('jax')), sg)} | "
                     f"{_ratio(_ms(f.get('torch')), sg)} | "
                     f"{_ratio(sg, _ms(f.get('numpy'), 'floor_ms'))} |")
        lines.append(line)
    return "\n".join(lines)


def check_run_args(args: argparse.Namespace) -> None:
    """Exit with a message if --repeats, --rounds or --threads is below 1."""
    for name in ("repeats", "rounds"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")


def warn_openblas_env() -> None:
    """Warn when this machine's OpenBLAS variables (which slow NumPy's BLAS) are set."""
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var}={os.environ[var]} is set; run under "
                  "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` for comparable numbers",
                  file=sys.stderr)


def _csv(value: str, allowed, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise SystemExit(f"--{what}: unknown {bad or value!r}; choose from {','.join(allowed)}")
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,small,medium", help="comma list of tiny,small,medium")
    ap.add_argument("--dtypes", default="float64,float32", help="comma list of float64,float32")
    ap.add_argument("--activations", default=",".join(ACTIVATIONS),
                    help=f"hidden activations, comma list of {','.join(ACTIVATIONS)}")
    ap.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                    help=f"comma list of {','.join(OPTIMIZERS)}")
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                    help="comma list (numpy is always run: it is the reference and the floor)")
    ap.add_argument("--repeats", type=int, default=11, help="timed epochs per cell (median)")
    ap.add_argument("--warmup", type=float, default=WARMUP_S,
                    help="seconds of untimed epochs before each cell's timed ones")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every framework this many times per size, order rotated; each "
                         "cell takes its best round's median (a slow process is left out)")
    ap.add_argument("--json", type=Path, help="also write the full results here")
    ap.add_argument("--threads", type=int, default=None,
                    help="cap every framework's thread pools at N (default: each library's own, "
                         "all cores); 1 gives steadier numbers on a busy machine")
    ap.add_argument("--no-compile-times", action="store_true",
                    help="skip the cold/warm compile measurement of symgrad")
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds per worker process (one framework, one size, every "
                         "dtype x activation x optimizer)")
    args = ap.parse_args(argv)
    check_run_args(args)
    sizes = _csv(args.sizes, list(SIZES), "sizes")
    dtypes = _csv(args.dtypes, DTYPES, "dtypes")
    activations = _csv(args.activations, ACTIVATIONS, "activations")
    optimizers = _csv(args.optimizers, OPTIMIZERS, "optimizers")
    frameworks = _csv(args.frameworks, FRAMEWORKS, "frameworks")
    frameworks = ["numpy"] + [f for f in frameworks if f != "numpy"]
    warn_openblas_env()
    load_start = os.getloadavg()[0]
    print(f"# bench_mlp: sizes={','.join(sizes)} dtypes={','.join(dtypes)} "
          f"activations={','.join(activations)} optimizers={','.join(optimizers)} "
          f"repeats={args.repeats} threads={args.threads or 'default'} cpus={os.cpu_count()}",
          file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench_mlp_") as tmp:
        report = collect(sizes, dtypes, frameworks, args.repeats, Path(tmp), args.timeout,
                         log=lambda s: print(s, file=sys.stderr, flush=True),
                         threads=args.threads, rounds=args.rounds, activations=activations,
                         optimizers=optimizers, warmup=args.warmup)
    if "symgrad" in frameworks and not args.no_compile_times:
        report["compile_times"] = compile_times(
            sizes, dtypes, args.timeout, args.threads,
            log=lambda s: print(s, file=sys.stderr, flush=True), activation=activations[0],
            optimizer=optimizers[0])
    for fw in FRAMEWORKS:
        if fw not in frameworks:
            report["notes"][fw] = "not run (left out of --frameworks)"
    report["config"] = {"sizes": sizes, "dtypes": dtypes, "activations": activations,
                        "optimizers": optimizers, "repeats": args.repeats,
                        "warmup_s": args.warmup, "rounds": args.rounds,
                        "threads": args.threads or "default"}
    machine.add_notes(report, load_start)
    if args.json:  # first: the numbers survive a closed stdout pipe
        args.json.write_text(json.dumps(report, indent=1))
    print(markdown(report))
    print("\n" + compact_markdown(report))
    if report.get("compile_times"):
        print("\n" + compile_markdown(report["compile_times"]))
    mismatched = [f"{e['size']} {e['dtype']} {e.get('activation', 'relu')} "
                  f"{e.get('optimizer', 'sgd')} {fw}"
                  for e in report["results"]
                  for fw, res in e["frameworks"].items()
                  if "error" not in res and not _agrees(res, e["dtype"])]
    if mismatched:
        print(f"error: weights or loss differ from the NumPy reference: {', '.join(mismatched)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
