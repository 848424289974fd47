"""Benchmark one epoch of CNN training: symgrad vs NumPy, PyTorch, JAX and the GEMM floor.

Every framework trains the same convolutional network (cnn_setup.SIZES: conv,
ReLU, max/average pooling, flatten, dense, softmax + cross-entropy) from the
same initial weights on the same synthetic images, with the same minibatch
order (no shuffling) and plain SGD. Each framework runs in its own subprocess
(cnn_worker.py), its thread pools capped and pinned as in bench_mlp.py. Before
the timed epochs, the weights after one epoch are compared with the NumPy
reference (run_cnn_numpy.py, im2col written out by hand): timings of different
computations would be worthless. The floor is NumPy's ``np.dot`` doing only the
epoch's im2col matrix products. Then symgrad's compile latency in fresh
processes: cold cache, warm cache, and the same layer kinds with other widths.

Run it with OpenBLAS left to pick its own kernels::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_cnn.py
    python benchmarks/bench_cnn.py --sizes lenet --dtypes float32 --repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import machine  # noqa: E402
from bench_mlp import (  # noqa: E402
    TOLERANCE,
    _csv,
    _fmt,
    _merge,
    _ratio,
    check_run_args,
    max_weight_diff,
    pin_to_cores,
    run_json_worker,
    thread_env,
    warn_openblas_env,
)
from cnn_setup import DTYPES, SIZES, flops_per_epoch  # noqa: E402
from mlp_setup import WARMUP_S  # noqa: E402

FRAMEWORKS = ("numpy", "symgrad", "torch", "jax")
PEERS = ("symgrad", "torch", "jax")
# The compile-latency target for a model whose layer kinds were compiled before.
READY_TARGET_S = 1.5
PHASES = ("cold", "warm", "resized")
PHASE_TEXT = {"cold": "cold", "warm": "warm", "resized": "changed widths (warm)"}


def run_cnn_worker(framework: str, size: str, dtypes: list[str], repeats: int, out: Path,
                   timeout: float, threads: int | None = None, warmup: float = WARMUP_S
                   ) -> dict:
    """Run cnn_worker.py for one framework and one size; return its JSON report."""
    cmd = [sys.executable, str(HERE / "cnn_worker.py"), framework, "--sizes", size,
           "--dtypes", ",".join(dtypes), "--repeats", str(repeats), "--warmup", str(warmup),
           "--out", str(out)]
    return run_json_worker(cmd, framework, out, timeout, threads)


def verified(res: dict, dtype: str) -> bool:
    """Weights and epoch-1 loss were compared with the reference and agree within tolerance.

    Stricter than an absent difference: a result never compared (the reference
    failed) does not pass, and NaN never passes.

    >>> verified({"max_weight_diff_vs_numpy": 1e-12, "loss_diff_vs_numpy": 0.0}, "float64")
    True
    >>> verified({"max_weight_diff_vs_numpy": None, "loss_diff_vs_numpy": 0.0}, "float64")
    False
    """
    tol = TOLERANCE[dtype]
    diffs = (res.get("max_weight_diff_vs_numpy"), res.get("loss_diff_vs_numpy"))
    return all(d is not None and d <= tol for d in diffs)


def collect(sizes: list[str], dtypes: list[str], frameworks: list[str], repeats: int,
            workdir: Path, timeout: float, log=print, threads: int | None = None,
            rounds: int = 1, warmup: float = WARMUP_S) -> dict:
    """Run every framework for every size; gather timings, sanity diffs and notes."""
    rows: dict[tuple[str, str], dict] = {}
    notes: dict[str, str] = {}
    versions: dict[str, str | None] = {}
    for size in sizes:
        # All frameworks of one size run back to back (drift on a shared machine hits
        # them alike), each in a fresh interpreter; rounds rotate the order.
        for rnd in range(rounds):
            out = workdir / size / f"round{rnd}"
            k = rnd % len(frameworks)
            done: list[tuple[str, dict]] = []
            for fw in frameworks[k:] + frameworks[:k]:
                t0 = time.perf_counter()
                rep = run_cnn_worker(fw, size, dtypes, repeats, out, timeout, threads, warmup)
                log(f"  {size:<6} round {rnd + 1} {fw:<8} {time.perf_counter() - t0:6.1f} s"
                    + (f"  ({rep['missing']})" if "missing" in rep else ""))
                if "missing" in rep:
                    notes[fw] = rep["missing"]
                versions[fw] = rep.get("version")
                done.extend((fw, res) for res in rep["results"])
            # Compared only now: the NumPy reference may have run last in this round.
            ref_loss = {(res["size"], res["dtype"]): res["loss_epoch1"]
                        for fw, res in done if fw == "numpy" and "error" not in res}
            for fw, res in done:
                case = (res["size"], res["dtype"])
                if "error" in res:
                    notes[f"{fw} {' '.join(case)}"] = res["error"]
                elif fw != "numpy":
                    res["max_weight_diff_vs_numpy"] = max_weight_diff(out, fw, "_".join(case))
                    if case in ref_loss:
                        res["loss_diff_vs_numpy"] = abs(res["loss_epoch1"] - ref_loss[case])
                _merge(rows.setdefault(case, {}), fw, res)
    results = [{"size": size, "arch": SIZES[size].arch, "n": SIZES[size].n,
                "batch": SIZES[size].batch, "dtype": dtype,
                "gflop_per_epoch": flops_per_epoch(SIZES[size]) / 1e9,
                "frameworks": rows.get((size, dtype), {})}
               for size in sizes for dtype in dtypes]
    return {"results": results, "notes": notes, "versions": versions,
            "machine": machine.describe()}


def compile_times(sizes: list[str], dtypes: list[str], timeout: float,
                  threads: int | None = None, log=print) -> list[dict]:
    """symgrad's compile latency per size and dtype, each phase in a fresh process.

    One cache directory per (size, dtype), used in order by: ``cold`` (empty),
    ``warm`` (the same network again) and ``resized`` (the same layer kinds with
    other channel counts, `cnn_setup.RESIZED`).
    """
    rows = []
    for size in sizes:
        for dtype in dtypes:
            row: dict = {"size": size, "dtype": dtype}
            with tempfile.TemporaryDirectory(prefix="symgrad_cache_") as cache:
                env = thread_env(threads)
                env["SYMGRAD_CACHE_DIR"] = cache
                for phase in PHASES:
                    cmd = [sys.executable, str(HERE / "cnn_compile_probe.py"), size, dtype]
                    try:
                        proc = subprocess.run(cmd + (["--resized"] if phase == "resized" else []),
                                              capture_output=True, text=True, timeout=timeout,
                                              env=env, preexec_fn=pin_to_cores(threads))
                    except subprocess.TimeoutExpired:
                        row["error"] = f"{phase}: timed out after {timeout:.0f} s"
                        break
                    lines = proc.stdout.strip().splitlines()
                    if proc.returncode != 0 or not lines:
                        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                        row["error"] = f"{phase}: {err}"
                        break
                    row[phase] = json.loads(lines[-1])
            log(f"  compile {size:<6} {dtype}: " + (row.get("error") or ", ".join(
                f"{p} {row[p]['ready_s']:.2f} s" for p in PHASES)))
            rows.append(row)
    return rows


def compile_markdown(rows: list[dict]) -> str:
    """Table of symgrad's compile latency: cold, warm, and changed widths on a warm cache."""
    lines = ["symgrad compile (fresh process each, one cache directory per size and dtype: "
             "cold = empty, warm = the same network again, changed widths = other channel "
             "counts, same layer kinds); seconds. `ready` = import + derive + kernel build "
             "(first fit minus a later epoch); the target for a warm cache is "
             f"< {READY_TARGET_S} s:", "",
             "| size | dtype | cache | import symgrad | derive | kernels | first epoch | ready "
             f"| ready < {READY_TARGET_S} s |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['size']} | {r['dtype']} | {r['error']} |||||||")
            continue
        for phase in PHASES:
            c = r[phase]
            met = "" if phase == "cold" else ("yes" if c["ready_s"] < READY_TARGET_S else "no")
            lines.append(f"| {r['size']} | {r['dtype']} | {PHASE_TEXT[phase]} "
                         f"| {c['import_s']:.2f} | {c['derive_s']:.2f} | {c['kernel_s']:.2f} "
                         f"| {c['first_epoch_s']:.2f} | {c['ready_s']:.2f} | {met} |")
    return "\n".join(lines)


def _ms(res: dict | None, key: str = "median_ms") -> float | None:
    if not res or "error" in res or res.get(key) is None:
        return None
    return float(res[key])


def _diff(res: dict | None, dtype: str) -> str:
    if not res or "error" in res:
        return "n/a"
    d = res.get("max_weight_diff_vs_numpy")
    flag = "" if verified(res, dtype) else " MISMATCH"
    return ("unchecked" if d is None else f"{d:.0e}") + flag


def _gflops(e: dict, ms: float | None) -> float | None:
    return None if ms is None else e["gflop_per_epoch"] / (ms / 1e3)


def markdown(report: dict) -> str:
    """The main table (times, GFLOP/s, ratios, sanity column) and a details table."""
    lines = [
        "| size | dtype | symgrad ms | numpy ms | torch ms | jax ms | floor ms | "
        "GFLOP/s (sg / torch / jax / floor) | torch/symgrad | jax/symgrad | symgrad/floor | "
        "max abs ΔW vs numpy (sg / torch / jax) |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for e in report["results"]:
        f = e["frameworks"]
        npy, sg, th, jx = (_ms(f.get(k)) for k in FRAMEWORKS)
        floor = _ms(f.get("numpy"), "floor_ms")
        gflops = " / ".join(_fmt(_gflops(e, t)) for t in (sg, th, jx, floor))
        diffs = " / ".join(_diff(f.get(k), e["dtype"]) for k in PEERS)
        lines.append(
            f"| {e['size']} ({e['arch']}, n={e['n']}, b={e['batch']}, "
            f"{_fmt(e['gflop_per_epoch'])} GFLOP) | {e['dtype']} | {_fmt(sg)} | {_fmt(npy)} "
            f"| {_fmt(th)} | {_fmt(jx)} | {_fmt(floor)} | {gflops} | {_ratio(th, sg)} "
            f"| {_ratio(jx, sg)} | {_ratio(sg, floor)} | {diffs} |")
    lines += ["", "Details: one-off cost of setup + first epoch beyond a warm epoch "
              "(compile/trace), mean batch loss of epoch 1.", "",
              "| size | dtype | framework | ms/epoch (median) | min ms | GFLOP/s | compile ms "
              "| loss epoch 1 |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for e in report["results"]:
        for fw in FRAMEWORKS:
            res = e["frameworks"].get(fw)
            med = _ms(res)
            if med is None:
                continue
            lines.append(f"| {e['size']} | {e['dtype']} | {fw} | {_fmt(med)} "
                         f"| {_fmt(min(res['times_ms']))} | {_fmt(_gflops(e, med))} "
                         f"| {_fmt(res['compile_ms'])} | {res['loss_epoch1']:.6f} |")
    if report["notes"]:
        lines += ["", "Notes:"] + [f"- {k}: {v}" for k, v in sorted(report["notes"].items())]
    return "\n".join(lines)


def mismatches(report: dict) -> list[str]:
    """``size dtype framework`` of every peer result that failed the correctness gate."""
    return [f"{e['size']} {e['dtype']} {fw}" for e in report["results"]
            for fw, res in e["frameworks"].items()
            if fw != "numpy" and "error" not in res and not verified(res, e["dtype"])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(SIZES), help=f"comma list of {','.join(SIZES)}")
    ap.add_argument("--dtypes", default=",".join(DTYPES), help="comma list of float64,float32")
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
                    help="cap and pin every framework's thread pools to N cores (default: each "
                         "library's own, all cores)")
    ap.add_argument("--no-compile-times", action="store_true",
                    help="skip the cold/warm/changed-widths compile measurement of symgrad")
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds per worker process (one framework, one size, every dtype)")
    args = ap.parse_args(argv)
    check_run_args(args)
    sizes = _csv(args.sizes, list(SIZES), "sizes")
    dtypes = _csv(args.dtypes, DTYPES, "dtypes")
    frameworks = _csv(args.frameworks, FRAMEWORKS, "frameworks")
    frameworks = ["numpy"] + [f for f in frameworks if f != "numpy"]
    warn_openblas_env()
    load_start = os.getloadavg()[0]
    print(f"# bench_cnn: sizes={','.join(sizes)} dtypes={','.join(dtypes)} "
          f"repeats={args.repeats} threads={args.threads or 'default'} cpus={os.cpu_count()}",
          file=sys.stderr)

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_cnn_") as tmp:
        report = collect(sizes, dtypes, frameworks, args.repeats, Path(tmp), args.timeout,
                         log=log, threads=args.threads, rounds=args.rounds, warmup=args.warmup)
    if "symgrad" in frameworks and not args.no_compile_times:
        report["compile_times"] = compile_times(sizes, dtypes, args.timeout, args.threads, log)
    for fw in FRAMEWORKS:
        if fw not in frameworks:
            report["notes"][fw] = "not run (left out of --frameworks)"
    report["config"] = {"sizes": sizes, "dtypes": dtypes, "repeats": args.repeats,
                        "warmup_s": args.warmup, "rounds": args.rounds,
                        "threads": args.threads or "default"}
    machine.add_notes(report, load_start)
    if args.json:  # first: the numbers survive a closed stdout pipe
        args.json.write_text(json.dumps(report, indent=1))
    print(markdown(report))
    if report.get("compile_times"):
        print("\n" + compile_markdown(report["compile_times"]))
    bad = mismatches(report)
    if bad:
        print(f"error: weights or loss differ from the NumPy reference: {', '.join(bad)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
